-- +goose Up
-- ledger_post records one ledger transaction in one round trip; package
-- ledger calls it from Post after validating the transaction in Go.
--
-- Why a function rather than statements sent from Go (docs/ledger.md has the
-- numbers): PL/pgSQL keeps its query plans per session, so a post is not
-- re-planned every time, and the balance rows it locks are held for one
-- round trip less, which is what a hot account's throughput depends on.
--
-- Outcomes (o_outcome):
--   posted             the transaction was written; o_transaction_id is its id
--   replayed           the key exists with the same content hash; o_transaction_id
--   conflict           the key exists with another content hash
--   insufficient_funds a no_negative account would drop below zero; o_account_*
--                      name it and o_balance is its balance. Nothing was written.
--   missing_accounts   some account does not exist yet; nothing was written
--                      (the caller creates the accounts and calls again)
-- +goose StatementBegin
CREATE FUNCTION ledger_post(
    p_key text, p_hash bytea, p_description text, p_reverses_id bigint, p_now timestamptz,
    p_codes text[], p_currencies text[], p_amounts bigint[])
RETURNS TABLE (o_outcome text, o_transaction_id bigint, o_account_code text, o_account_currency text, o_balance bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_existing   record;
    v_account    record;
    v_wanted     integer;
    v_ids        bigint[] := '{}';
    v_buckets    integer[] := '{}';
    v_deltas     bigint[] := '{}';
    v_bucket     integer;
    v_balance    bigint;
    v_id         bigint;
BEGIN
    SELECT id, request_hash INTO v_existing FROM ledger_transactions WHERE idempotency_key = p_key;
    IF FOUND THEN
        RETURN QUERY SELECT CASE WHEN v_existing.request_hash = p_hash THEN 'replayed' ELSE 'conflict' END,
            v_existing.id, NULL::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;

    SELECT count(*) INTO v_wanted FROM (SELECT DISTINCT c, k FROM unnest(p_codes, p_currencies) AS x (c, k)) d;
    -- Lock one balance row per account in account id order, the one order
    -- every post uses, so that concurrent posts cannot deadlock on them.
    -- A no_negative account has one row, so its check sees the whole
    -- balance; other accounts spread over buckets, picked by backend pid so
    -- that concurrent sessions mostly update different rows of a hot account.
    FOR v_account IN
        SELECT a.id, a.code, a.currency, a.no_negative, a.buckets, d.delta
        FROM (SELECT x.code, x.currency, sum(x.amount)::bigint AS delta
              FROM unnest(p_codes, p_currencies, p_amounts) AS x (code, currency, amount)
              GROUP BY x.code, x.currency) d
        JOIN ledger_accounts a ON a.code = d.code AND a.currency = d.currency
        ORDER BY a.id
    LOOP
        v_wanted := v_wanted - 1;
        CONTINUE WHEN v_account.delta = 0;
        v_bucket := pg_backend_pid() % v_account.buckets;
        SELECT b.balance INTO v_balance FROM ledger_balances b
        WHERE b.account_id = v_account.id AND b.bucket = v_bucket
        FOR UPDATE;
        IF v_account.no_negative AND v_balance + v_account.delta < 0 THEN
            RETURN QUERY SELECT 'insufficient_funds', NULL::bigint, v_account.code, v_account.currency, v_balance;
            RETURN;
        END IF;
        v_ids := v_ids || v_account.id;
        v_buckets := v_buckets || v_bucket;
        v_deltas := v_deltas || v_account.delta;
    END LOOP;
    IF v_wanted > 0 THEN
        RETURN QUERY SELECT 'missing_accounts', NULL::bigint, NULL::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;

    -- The key may have been claimed since the look-up by a post that has
    -- committed meanwhile (this insert waits for it): answer as a replay.
    INSERT INTO ledger_transactions (idempotency_key, request_hash, description, reverses_id, created_at)
    VALUES (p_key, p_hash, p_description, p_reverses_id, p_now)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id, request_hash INTO v_existing FROM ledger_transactions WHERE idempotency_key = p_key;
        RETURN QUERY SELECT CASE WHEN v_existing.request_hash = p_hash THEN 'replayed' ELSE 'conflict' END,
            v_existing.id, NULL::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;

    INSERT INTO ledger_postings (transaction_id, account_id, currency, amount, created_at)
    SELECT v_id, a.id, x.currency, x.amount, p_now
    FROM unnest(p_codes, p_currencies, p_amounts) WITH ORDINALITY AS x (code, currency, amount, ord)
    JOIN ledger_accounts a ON a.code = x.code AND a.currency = x.currency
    ORDER BY x.ord;

    UPDATE ledger_balances b SET balance = b.balance + d.delta
    FROM unnest(v_ids, v_buckets, v_deltas) AS d (account_id, bucket, delta)
    WHERE b.account_id = d.account_id AND b.bucket = d.bucket;

    RETURN QUERY SELECT 'posted', v_id, NULL::text, NULL::text, NULL::bigint;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION ledger_post(text, bytea, text, bigint, timestamptz, text[], text[], bigint[]);
