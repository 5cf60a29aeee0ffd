-- +goose Up
-- purchase_pay as in 00124, with p_catalog_version after p_merchant_id and
-- checked first (00125): a sale priced from a stale cache of the catalog
-- raises 40001 before it writes anything, and runs again from a fresh read.
DROP FUNCTION purchase_pay;
-- +goose StatementBegin
CREATE FUNCTION purchase_pay(
    p_shopper_id text,
    p_stock_items text[], p_stock_quantities bigint[],
    p_limit_items text[], p_limit_quantities integer[], p_limits integer[],
    p_order_id text, p_checkout_id text, p_merchant_id text, p_catalog_version bigint, p_chat_id text, p_currency text, p_total bigint,
    p_status text, p_created_at timestamptz, p_qr_id text,
    p_line_nos integer[], p_line_items text[], p_line_skus text[], p_line_titles text[], p_line_categories text[],
    p_line_kinds text[], p_line_quantities integer[], p_line_prices bigint[],
    p_time_zone text, p_coupon_ids text[], p_coupon_line_nos integer[], p_coupon_items text[], p_coupon_codes text[],
    p_coupon_secrets bytea[], p_coupon_rules text[], p_coupon_values bigint[], p_coupon_valid_until text[],
    p_coupon_uses integer[], p_credential_hashes bytea[], p_credential_source text,
    p_post boolean,
    p_ledger_key text, p_ledger_hash bytea, p_ledger_description text, p_ledger_reverses bigint, p_ledger_now timestamptz,
    p_ledger_codes text[], p_ledger_currencies text[], p_ledger_amounts bigint[],
    p_ev_conversations text[], p_ev_ids text[], p_ev_types text[], p_ev_ordering_keys text[], p_ev_bodies bytea[],
    p_ev_created_at timestamptz[], p_ev_owners text[], p_ev_owner_events text[], p_ev_owner_kinds text[], p_ev_owner_ids text[],
    p_ev_target text, p_ev_notify text)
RETURNS TABLE (o_outcome text, o_ledger_id bigint, o_wallet_code text, o_wallet_currency text, o_wallet_balance bigint,
    o_limit_totals integer[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_total  integer;
    v_totals integer[] := '{}';
    v_post   record;
    v_ledger_id    bigint;
    v_wallet_code  text;
    v_wallet_cur   text;
    v_wallet_after bigint;
    v_n      integer;
BEGIN
    IF NOT catalog_version_is(p_merchant_id, p_catalog_version) THEN
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'catalog_changed',
            DETAIL = 'the purchase was priced from a catalog version that changed; try again';
    END IF;

    IF p_post AND ledger_missing_accounts(p_ledger_codes, p_ledger_currencies) THEN
        RETURN QUERY SELECT 'missing_accounts', NULL::bigint, NULL::text, NULL::text, NULL::bigint, NULL::integer[];
        RETURN;
    END IF;

    FOR i IN 1 .. coalesce(cardinality(p_stock_items), 0) LOOP
        IF NOT catalog_take_stock(p_stock_items[i], p_stock_quantities[i]) THEN
            RAISE EXCEPTION USING ERRCODE = 'CP001', MESSAGE = 'sold_out',
                DETAIL = json_build_object('item_id', p_stock_items[i])::text;
        END IF;
    END LOOP;

    -- Every purchase is counted, limited or not; only a limit refuses.
    FOR i IN 1 .. coalesce(cardinality(p_limit_items), 0) LOOP
        INSERT INTO shopper_item_purchases AS p (shopper_id, item_id, quantity)
        VALUES (p_shopper_id, p_limit_items[i], p_limit_quantities[i])
        ON CONFLICT (shopper_id, item_id) DO UPDATE SET quantity = p.quantity + EXCLUDED.quantity
        RETURNING p.quantity INTO v_total;
        IF p_limits[i] IS NOT NULL AND v_total > p_limits[i] THEN
            RAISE EXCEPTION USING ERRCODE = 'CP001', MESSAGE = 'limit_reached',
                DETAIL = json_build_object('item_id', p_limit_items[i], 'bought', v_total - p_limit_quantities[i])::text;
        END IF;
        v_totals := v_totals || v_total;
    END LOOP;

    IF p_post THEN
        SELECT * INTO v_post FROM ledger_post(p_ledger_key, p_ledger_hash, p_ledger_description, p_ledger_reverses,
            p_ledger_now, p_ledger_codes, p_ledger_currencies, p_ledger_amounts);
        IF v_post.o_outcome <> 'posted' THEN
            RAISE EXCEPTION USING ERRCODE = 'CP001', MESSAGE = 'ledger', DETAIL = json_build_object(
                'outcome', v_post.o_outcome, 'transaction_id', v_post.o_transaction_id, 'account_code', v_post.o_account_code,
                'account_currency', v_post.o_account_currency, 'balance', v_post.o_balance)::text;
        END IF;
        v_ledger_id := v_post.o_transaction_id;
        v_wallet_code := v_post.o_account_code;
        v_wallet_cur := v_post.o_account_currency;
        v_wallet_after := v_post.o_balance;
    END IF;

    WITH o AS (
        INSERT INTO orders (id, checkout_id, merchant_id, shopper_id, chat_id, currency, total_minor, status, ledger_transaction_id, created_at, qr_id)
        VALUES (p_order_id, p_checkout_id, p_merchant_id, p_shopper_id, p_chat_id, p_currency, p_total, p_status,
            v_ledger_id, p_created_at, p_qr_id)
        RETURNING id)
    INSERT INTO order_lines (order_id, line_no, item_id, sku, title, category, kind, quantity, unit_price_minor)
    SELECT o.id, l.line_no, l.item_id, l.sku, l.title, l.category, l.kind, l.quantity, l.unit_price_minor
    FROM o, unnest(p_line_nos, p_line_items, p_line_skus, p_line_titles, p_line_categories, p_line_kinds,
        p_line_quantities, p_line_prices) AS l (line_no, item_id, sku, title, category, kind, quantity, unit_price_minor);

    IF coalesce(cardinality(p_coupon_ids), 0) > 0 THEN
        INSERT INTO coupons (id, order_id, line_no, merchant_id, shopper_id, item_id, code, secret, rules, time_zone,
            value_minor, currency, issued_at, valid_until, uses_total, uses_left, status)
        SELECT c.id, p_order_id, c.line_no, p_merchant_id, p_shopper_id, c.item_id, c.code, c.secret, c.rules::jsonb, p_time_zone,
            c.value_minor, p_currency, p_created_at, NULLIF(c.valid_until, '')::timestamptz, c.uses, c.uses, 'active'
        FROM unnest(p_coupon_ids, p_coupon_line_nos, p_coupon_items, p_coupon_codes, p_coupon_secrets, p_coupon_rules,
            p_coupon_values, p_coupon_valid_until, p_coupon_uses)
            AS c (id, line_no, item_id, code, secret, rules, value_minor, valid_until, uses)
        ON CONFLICT (code) DO NOTHING;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n < cardinality(p_coupon_ids) THEN
            RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'a new coupon code is taken already; try again';
        END IF;
        INSERT INTO coupon_credentials (token_hash, coupon_id, shopper_id, merchant_id, source, created_at)
        SELECT h.token_hash, h.coupon_id, p_shopper_id, p_merchant_id, p_credential_source, p_created_at
        FROM unnest(p_credential_hashes, p_coupon_ids) AS h (token_hash, coupon_id);
    END IF;

    IF p_checkout_id IS NOT NULL THEN
        UPDATE checkouts SET status = 'paid', reserved = false, order_id = p_order_id, closed_at = p_created_at
        WHERE id = p_checkout_id;
    END IF;

    IF coalesce(cardinality(p_ev_ids), 0) > 0 THEN
        PERFORM webhook_enqueue(p_ev_conversations, p_ev_ids, p_ev_types, p_ev_ordering_keys, p_ev_bodies, p_ev_created_at,
            p_ev_owners, p_ev_owner_events, p_ev_owner_kinds, p_ev_owner_ids, p_ev_target, p_ev_notify);
    END IF;

    RETURN QUERY SELECT 'paid', v_ledger_id, v_wallet_code, v_wallet_cur, v_wallet_after, v_totals;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- 00124's purchase_pay is the one to go back to; its text is in that file.
DROP FUNCTION purchase_pay;
