-- +goose Up
-- ledger_post with plans that stay index look-ups (issue 19). 00104 dropped
-- plan_cache_mode = force_generic_plan; PL/pgSQL then kept choosing custom
-- plans for the statements over its array parameters and planned them on
-- every call (in `chatpay bench` the balance update spent 1.6 ms planning per
-- post). With the setting back, the generic plans of 00104's joins of
-- unnest(...) with ledger_accounts hash a sequential scan of every account,
-- three times per post. Now the accounts are looked up once, per code, in a
-- LATERAL subquery the planner cannot flatten, and the postings and balance
-- updates reuse the ids found. Outcomes as in 00011.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_post(
    p_key text, p_hash bytea, p_description text, p_reverses_id bigint, p_now timestamptz,
    p_codes text[], p_currencies text[], p_amounts bigint[])
RETURNS TABLE (o_outcome text, o_transaction_id bigint, o_account_code text, o_account_currency text, o_balance bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_existing   record;
    v_account    record;
    v_wanted     integer;
    v_found      integer := 0;
    v_short      boolean := false;
    v_short_code text;
    v_short_cur  text;
    v_short_bal  bigint;
    v_id         bigint;
    v_ids        bigint[] := '{}';
    v_codes      text[] := '{}';
    v_curs       text[] := '{}';
    v_buckets    integer[] := '{}';
    v_deltas     bigint[] := '{}';
BEGIN
    -- Lock one balance row per account in account id order (the sort runs
    -- below the row locks), the one order every post uses, so that
    -- concurrent posts cannot deadlock on them. A no_negative account has one
    -- row, so its check sees the whole balance; other accounts spread over
    -- buckets, picked by backend pid so that concurrent sessions mostly
    -- update different rows of a hot account.
    SELECT count(DISTINCT (c, k)) INTO v_wanted FROM unnest(p_codes, p_currencies) AS x (c, k);
    FOR v_account IN
        SELECT a.id, a.code, a.currency, a.no_negative, b.bucket, b.balance, d.delta
        FROM (SELECT x.code, x.currency, sum(x.amount)::bigint AS delta
              FROM unnest(p_codes, p_currencies, p_amounts) AS x (code, currency, amount)
              GROUP BY x.code, x.currency) d
        -- OFFSET 0 keeps the look-up a per-code index probe: a generic plan
        -- of the plain join hashes a sequential scan of every account.
        CROSS JOIN LATERAL (SELECT la.id, la.code, la.currency, la.no_negative, la.buckets FROM ledger_accounts la
                            WHERE la.code = d.code AND la.currency = d.currency OFFSET 0) a
        JOIN ledger_balances b ON b.account_id = a.id AND b.bucket = pg_backend_pid() % a.buckets
        ORDER BY a.id
        FOR UPDATE OF b
    LOOP
        v_found := v_found + 1;
        v_ids := v_ids || v_account.id;
        v_codes := v_codes || v_account.code;
        v_curs := v_curs || v_account.currency;
        v_buckets := v_buckets || v_account.bucket;
        v_deltas := v_deltas || v_account.delta;
        IF NOT v_short AND v_account.no_negative AND v_account.balance + v_account.delta < 0 THEN
            v_short := true;
            v_short_code := v_account.code;
            v_short_cur := v_account.currency;
            v_short_bal := v_account.balance;
        END IF;
    END LOOP;

    IF v_short OR v_found < v_wanted THEN
        -- A refusal, unless the key was used already: a replay answers as
        -- the original did, whatever the balances are now.
        SELECT id, request_hash INTO v_existing FROM ledger_transactions WHERE idempotency_key = p_key;
        IF FOUND THEN
            RETURN QUERY SELECT CASE WHEN v_existing.request_hash = p_hash THEN 'replayed' ELSE 'conflict' END,
                v_existing.id, NULL::text, NULL::text, NULL::bigint;
        ELSIF v_found < v_wanted THEN
            RETURN QUERY SELECT 'missing_accounts', NULL::bigint, NULL::text, NULL::text, NULL::bigint;
        ELSE
            RETURN QUERY SELECT 'insufficient_funds', NULL::bigint, v_short_code, v_short_cur, v_short_bal;
        END IF;
        RETURN;
    END IF;

    -- A key claimed already (or by a post that commits meanwhile: this
    -- insert waits for it) answers as a replay.
    INSERT INTO ledger_transactions (idempotency_key, request_hash, description, reverses_id, created_at, postings_count)
    VALUES (p_key, p_hash, p_description, p_reverses_id, p_now, cardinality(p_amounts))
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id, request_hash INTO v_existing FROM ledger_transactions WHERE idempotency_key = p_key;
        RETURN QUERY SELECT CASE WHEN v_existing.request_hash = p_hash THEN 'replayed' ELSE 'conflict' END,
            v_existing.id, NULL::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;

    -- The accounts found above, by code: no table is read again.
    INSERT INTO ledger_postings (transaction_id, account_id, currency, amount, created_at)
    SELECT v_id, m.id, x.currency, x.amount, p_now
    FROM unnest(p_codes, p_currencies, p_amounts) WITH ORDINALITY AS x (code, currency, amount, ord)
    JOIN unnest(v_codes, v_curs, v_ids) AS m (code, currency, id) ON m.code = x.code AND m.currency = x.currency
    ORDER BY x.ord;

    -- One primary-key update per account (its generic plan cannot scan).
    FOR i IN 1 .. cardinality(v_ids) LOOP
        CONTINUE WHEN v_deltas[i] = 0;
        UPDATE ledger_balances SET balance = balance + v_deltas[i] WHERE account_id = v_ids[i] AND bucket = v_buckets[i];
    END LOOP;

    RETURN QUERY SELECT 'posted', v_id, NULL::text, NULL::text, NULL::bigint;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- 00104's ledger_post is the one to go back to; its text is in that file.
SELECT 1;
