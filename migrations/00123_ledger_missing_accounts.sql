-- +goose Up
-- ledger_missing_accounts says whether any of the accounts a post names does
-- not exist yet (accounts are created on first use, by Go:
-- ledger.EnsureAccounts). purchase_pay asks it before it writes anything, so
-- that a merchant's first sale can create the accounts and call again in the
-- same transaction instead of rolling back a stock take and a count.
-- PL/pgSQL, not SQL: a SQL function called from PL/pgSQL is planned again
-- on every call (0.26 ms a purchase in `chatpay bench`); PL/pgSQL keeps the
-- plan for the session.
-- +goose StatementBegin
CREATE FUNCTION ledger_missing_accounts(p_codes text[], p_currencies text[]) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM unnest(p_codes, p_currencies) AS x (code, currency)
        WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.code = x.code AND a.currency = x.currency));
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION ledger_missing_accounts(text[], text[]);
