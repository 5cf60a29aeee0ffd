-- +goose Up
-- The double-entry ledger (package ledger owns these tables; see docs/ledger.md).
--
-- Every invariant the Go code checks before writing is also held here, so that
-- a bug in one place cannot silently corrupt the book of record:
--   * amounts are non-zero and within money.MinorMax (10^15 minor units);
--   * a posting's currency is its account's currency (composite foreign key);
--   * a no_negative account's balance row never drops below zero (CHECK on a
--     copy of the flag, itself tied to the account by a foreign key);
--   * every transaction has at least two postings summing to zero per
--     currency (a deferred constraint trigger, run at commit);
--   * postings and transactions are never updated or deleted (triggers);
--   * a transaction is reversed at most once (UNIQUE reverses_id).

CREATE TABLE ledger_accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text        NOT NULL CHECK (length(code) BETWEEN 3 AND 200),
    currency    text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    kind        text        NOT NULL CHECK (kind IN ('shopper_wallet', 'merchant_deferred', 'merchant_available',
                                                     'merchant_breakage', 'platform_fees', 'provider_clearing')),
    owner       text        NOT NULL CHECK (length(owner) <= 64),
    no_negative boolean     NOT NULL,
    -- buckets is how many balance rows the account's balance is spread over;
    -- a no_negative account keeps one row so that its check sees the whole balance.
    buckets     integer     NOT NULL CHECK (buckets BETWEEN 1 AND 256),
    created_at  timestamptz NOT NULL,
    CONSTRAINT ledger_accounts_code_currency_key UNIQUE (code, currency),
    CONSTRAINT ledger_accounts_id_currency_key UNIQUE (id, currency),
    CONSTRAINT ledger_accounts_id_no_negative_key UNIQUE (id, no_negative),
    CONSTRAINT ledger_accounts_no_negative_one_bucket CHECK (NOT no_negative OR buckets = 1),
    CONSTRAINT ledger_accounts_wallet_no_negative CHECK ((kind = 'shopper_wallet') = no_negative)
);

-- The balance of an account is the sum of its bucket rows. Rows are created
-- with the account, so posting is a plain UPDATE of one row per account.
CREATE TABLE ledger_balances (
    account_id  bigint  NOT NULL,
    bucket      integer NOT NULL CHECK (bucket >= 0),
    no_negative boolean NOT NULL,
    balance     bigint  NOT NULL,
    PRIMARY KEY (account_id, bucket),
    CONSTRAINT ledger_balances_account_fkey FOREIGN KEY (account_id, no_negative)
        REFERENCES ledger_accounts (id, no_negative),
    CONSTRAINT ledger_balances_no_negative CHECK (NOT no_negative OR balance >= 0)
);

CREATE TABLE ledger_transactions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    -- request_hash is SHA-256 of the canonical content, to tell a replay
    -- (same key, same content) from a conflict (same key, other content).
    request_hash    bytea       NOT NULL CHECK (length(request_hash) = 32),
    description     text        NOT NULL CHECK (length(description) <= 500),
    reverses_id     bigint      REFERENCES ledger_transactions (id),
    created_at      timestamptz NOT NULL,
    CONSTRAINT ledger_transactions_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT ledger_transactions_reverses_id_key UNIQUE (reverses_id),
    CONSTRAINT ledger_transactions_reverses_earlier CHECK (reverses_id < id)
);

CREATE TABLE ledger_postings (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id bigint      NOT NULL REFERENCES ledger_transactions (id),
    account_id     bigint      NOT NULL,
    currency       text        NOT NULL,
    -- amount > 0 credits the account (raises its balance), < 0 debits it.
    amount         bigint      NOT NULL CHECK (amount <> 0 AND amount BETWEEN -1000000000000000 AND 1000000000000000),
    created_at     timestamptz NOT NULL,
    CONSTRAINT ledger_postings_account_currency_fkey FOREIGN KEY (account_id, currency)
        REFERENCES ledger_accounts (id, currency)
);
-- Statements page through an account's postings newest first; the INCLUDE
-- columns let balance-as-of and running balances be index-only scans.
CREATE INDEX ledger_postings_account ON ledger_postings (account_id, id) INCLUDE (amount, created_at);
CREATE INDEX ledger_postings_transaction ON ledger_postings (transaction_id);

-- +goose StatementBegin
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger % rows are immutable; post a reversal instead', TG_TABLE_NAME
        USING ERRCODE = 'P0001';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_postings_immutable BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_postings_no_truncate BEFORE TRUNCATE ON ledger_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_immutable BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- +goose StatementBegin
-- ledger_check_transaction runs at commit for every new transaction: by then
-- all its postings are written, so it can hold the double-entry rule.
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

-- +goose Down
DROP TABLE ledger_postings;
DROP TABLE ledger_transactions;
DROP TABLE ledger_balances;
DROP TABLE ledger_accounts;
DROP FUNCTION ledger_check_transaction();
DROP FUNCTION ledger_refuse_change();
