-- +goose Up
-- Postings are written once, with their transaction (issue 19).
--
-- The double-entry trigger of 00010 runs only when a ledger transaction is
-- inserted, so a posting appended to an existing transaction later (an
-- UPDATE/DELETE was already refused) committed, unbalancing it, and only
-- `chatpay verify` noticed. Now the transaction row records how many
-- postings it has, and a statement trigger on the postings holds, for every
-- transaction the statement writes postings of: the statement wrote all of
-- them (its count is the recorded count, and the table holds no others) and
-- they sum to zero per currency. Any later posting of that transaction makes
-- the table's count pass the recorded one, and the recorded count itself can
-- never change (transactions are immutable).

ALTER TABLE ledger_transactions DISABLE TRIGGER ledger_transactions_immutable;
ALTER TABLE ledger_transactions ADD COLUMN postings_count integer;
UPDATE ledger_transactions t SET postings_count = (SELECT count(*) FROM ledger_postings p WHERE p.transaction_id = t.id);
ALTER TABLE ledger_transactions ENABLE TRIGGER ledger_transactions_immutable;
ALTER TABLE ledger_transactions ALTER COLUMN postings_count SET NOT NULL;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_postings_count CHECK (postings_count >= 2);

-- +goose StatementBegin
CREATE FUNCTION ledger_check_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_bad record;
BEGIN
    SELECT n.transaction_id, n.written, t.postings_count AS recorded,
           (SELECT count(*) FROM ledger_postings p WHERE p.transaction_id = n.transaction_id) AS stored
    INTO v_bad
    FROM (SELECT transaction_id, count(*) AS written FROM new_postings GROUP BY transaction_id) n
    JOIN ledger_transactions t ON t.id = n.transaction_id
    WHERE n.written <> t.postings_count
       OR (SELECT count(*) FROM ledger_postings p WHERE p.transaction_id = n.transaction_id) <> t.postings_count
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % has % postings; this statement wrote % and the table holds %: postings are written once, with their transaction',
            v_bad.transaction_id, v_bad.recorded, v_bad.written, v_bad.stored
            USING ERRCODE = '23514', CONSTRAINT = 'ledger_postings_sealed';
    END IF;
    SELECT transaction_id, currency INTO v_bad FROM new_postings
        GROUP BY transaction_id, currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not sum to zero in %', v_bad.transaction_id, v_bad.currency
            USING ERRCODE = '23514', CONSTRAINT = 'ledger_transactions_balanced';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_postings_sealed AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_postings();

-- ledger_post as in 00011, recording the count of postings on the transaction.
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
-- The column stays (ledger_post writes it); only the seal goes.
DROP TRIGGER ledger_postings_sealed ON ledger_postings;
DROP FUNCTION ledger_check_postings();
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_postings_count;
