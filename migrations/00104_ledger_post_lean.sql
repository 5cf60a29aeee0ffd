-- +goose Up
-- A leaner money path (issue 19), measured with `chatpay bench`
-- (docs/performance.md has the figures):
--
-- * The double-entry rule is held where the postings are written: the
--   statement trigger of 00102 checks that a statement writes all of a
--   transaction's postings (the count recorded on its row, no others) and
--   that they sum to zero per currency. The deferred trigger of 00010, which
--   re-read every new transaction's postings at commit, goes; a transaction
--   row written with no postings at all is left to `chatpay verify`
--   (ledger_transactions_two_postings), which re-checks everything.
-- * The seal's two scans of the new rows become one in the common case of
--   one currency per transaction.
-- * ledger_post locks and reads its balance rows in one statement instead of
--   one per account, and looks its key up only when it would refuse (the
--   insert's ON CONFLICT finds a replay on the way to success). It no longer
--   forces generic plans: a plan built while ledger_transactions was small
--   scanned it for the key for the life of the connection, and the SET
--   clause cost a GUC save and restore on every call.

DROP TRIGGER ledger_transactions_balanced ON ledger_transactions;
DROP FUNCTION ledger_check_transaction();

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_check_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_bad record;
BEGIN
    SELECT n.transaction_id, n.written, t.postings_count AS recorded, n.currencies, n.total,
           (SELECT count(*) FROM ledger_postings p WHERE p.transaction_id = n.transaction_id) AS stored
    INTO v_bad
    FROM (SELECT transaction_id, count(*) AS written, count(DISTINCT currency) AS currencies, sum(amount) AS total
          FROM new_postings GROUP BY transaction_id) n
    JOIN ledger_transactions t ON t.id = n.transaction_id
    WHERE n.written <> t.postings_count
       OR (n.currencies = 1 AND n.total <> 0)
       OR n.currencies > 1
       OR (SELECT count(*) FROM ledger_postings p WHERE p.transaction_id = n.transaction_id) <> t.postings_count
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_bad.written <> v_bad.recorded OR v_bad.stored <> v_bad.recorded THEN
        RAISE EXCEPTION 'ledger transaction % has % postings; this statement wrote % and the table holds %: postings are written once, with their transaction',
            v_bad.transaction_id, v_bad.recorded, v_bad.written, v_bad.stored
            USING ERRCODE = '23514', CONSTRAINT = 'ledger_postings_sealed';
    END IF;
    -- One currency that does not sum to zero, or several: check each.
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

-- Outcomes as in 00011.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_post(
    p_key text, p_hash bytea, p_description text, p_reverses_id bigint, p_now timestamptz,
    p_codes text[], p_currencies text[], p_amounts bigint[])
RETURNS TABLE (o_outcome text, o_transaction_id bigint, o_account_code text, o_account_currency text, o_balance bigint)
LANGUAGE plpgsql AS $$
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
        JOIN ledger_accounts a ON a.code = d.code AND a.currency = d.currency
        JOIN ledger_balances b ON b.account_id = a.id AND b.bucket = pg_backend_pid() % a.buckets
        ORDER BY a.id
        FOR UPDATE OF b
    LOOP
        v_found := v_found + 1;
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

    INSERT INTO ledger_postings (transaction_id, account_id, currency, amount, created_at)
    SELECT v_id, a.id, x.currency, x.amount, p_now
    FROM unnest(p_codes, p_currencies, p_amounts) WITH ORDINALITY AS x (code, currency, amount, ord)
    JOIN ledger_accounts a ON a.code = x.code AND a.currency = x.currency
    ORDER BY x.ord;

    UPDATE ledger_balances b SET balance = b.balance + d.delta
    FROM (SELECT a.id, pg_backend_pid() % a.buckets AS bucket, sum(x.amount)::bigint AS delta
          FROM unnest(p_codes, p_currencies, p_amounts) AS x (code, currency, amount)
          JOIN ledger_accounts a ON a.code = x.code AND a.currency = x.currency
          GROUP BY a.id, a.buckets) d
    WHERE b.account_id = d.id AND b.bucket = d.bucket AND d.delta <> 0;

    RETURN QUERY SELECT 'posted', v_id, NULL::text, NULL::text, NULL::bigint;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- The deferred check comes back as 00010 wrote it; ledger_post and the seal
-- stay as they are (they hold the same rules).
-- +goose StatementBegin
CREATE FUNCTION ledger_check_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    postings_count bigint;
    unbalanced     text;
BEGIN
    SELECT count(*) INTO postings_count FROM ledger_postings WHERE transaction_id = NEW.id;
    IF postings_count < 2 THEN
        RAISE EXCEPTION 'ledger transaction % has % postings; at least 2 are required', NEW.id, postings_count
            USING ERRCODE = '23514', CONSTRAINT = 'ledger_transactions_balanced';
    END IF;
    SELECT currency INTO unbalanced FROM ledger_postings WHERE transaction_id = NEW.id
        GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transaction % does not sum to zero in %', NEW.id, unbalanced
            USING ERRCODE = '23514', CONSTRAINT = 'ledger_transactions_balanced';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction();
