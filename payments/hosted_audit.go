package payments

import "github.com/chatpay/chatpay/ledger"

// ProviderChecks are `chatpay verify`'s cross-checks of real providers'
// records against the ledger: every credited hosted top-up carries the
// provider's payment and capture ids, no capture id credits two top-ups,
// every notification that credited names a top-up whose credit exists, and
// every top-up refund's wallet debit (and reversal, when the provider
// refused) is in the ledger with the amounts the refunds table says.
func ProviderChecks() []ledger.Check {
	return []ledger.Check{
		ledger.SQLCheck("hosted_topups_have_provider_ids",
			"every credited hosted top-up names the provider's payment and capture, and no capture is credited twice",
			`SELECT count(*) FROM topups WHERE method <> 'card'`, hostedTopUpIDsSQL),
		ledger.SQLCheck("provider_events_match_topups",
			"every provider notification that credited a top-up points at a succeeded top-up of the same provider",
			`SELECT count(*) FROM provider_events`, providerEventsSQL),
		ledger.SQLCheck("topup_refunds_match_ledger",
			"every top-up refund debits the wallet by its amount in the ledger, a failed one is reversed, and each top-up's refunded amount is the sum of its live refunds",
			`SELECT count(*) FROM topup_refunds`, topUpRefundsSQL),
	}
}

const hostedTopUpIDsSQL = `
SELECT 'top-up ' || t.id AS subject,
       CASE WHEN t.payment_id IS NULL THEN 'succeeded without the provider''s payment id'
            WHEN t.provider_charge_id IS NULL THEN 'succeeded without the provider''s capture id'
            ELSE 'capture ' || t.provider_charge_id || ' also credits another top-up' END AS detail,
       count(*) OVER () AS total
FROM topups t
WHERE t.method <> 'card' AND t.status = 'succeeded'
  AND (t.payment_id IS NULL OR t.provider_charge_id IS NULL OR EXISTS (
        SELECT 1 FROM topups o WHERE o.provider = t.provider AND o.provider_charge_id = t.provider_charge_id
          AND o.id <> t.id AND o.status = 'succeeded'))
ORDER BY t.id
LIMIT $1`

const providerEventsSQL = `
SELECT 'event ' || e.provider || ':' || e.event_id AS subject,
       'credited top-up ' || COALESCE(e.top_up_id, '(none)') || ' which is ' || COALESCE(t.status || ' via ' || t.provider, 'missing') AS detail,
       count(*) OVER () AS total
FROM provider_events e
LEFT JOIN topups t ON t.id = e.top_up_id
WHERE e.outcome = 'credited' AND (t.id IS NULL OR t.status <> 'succeeded' OR t.provider <> e.provider)
ORDER BY e.provider, e.event_id
LIMIT $1`

const topUpRefundsSQL = `
WITH refund_moves AS (
    SELECT r.id, r.top_up_id, r.status, r.amount_minor,
           (SELECT -sum(p.amount) FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
             WHERE p.transaction_id = r.ledger_transaction_id AND a.kind = 'shopper_wallet') AS debited,
           (SELECT sum(p.amount) FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
             WHERE p.transaction_id = r.reversal_transaction_id AND a.kind = 'shopper_wallet') AS restored
    FROM topup_refunds r
), per_topup AS (
    SELECT t.id, t.refunded_minor, COALESCE(sum(m.amount_minor) FILTER (WHERE m.status <> 'failed'), 0) AS live
    FROM topups t JOIN refund_moves m ON m.top_up_id = t.id
    GROUP BY t.id, t.refunded_minor
)
SELECT subject, detail, count(*) OVER () AS total FROM (
    SELECT 'top-up refund ' || m.id AS subject,
           'amount ' || m.amount_minor || ' but the wallet was debited ' || COALESCE(m.debited, 0) ||
           ' and restored ' || COALESCE(m.restored, 0) AS detail
    FROM refund_moves m
    WHERE COALESCE(m.debited, 0) <> m.amount_minor
       OR (m.status = 'failed') <> (COALESCE(m.restored, 0) = m.amount_minor)
    UNION ALL
    SELECT 'top-up ' || p.id, 'refunded_minor ' || p.refunded_minor || ' but its live refunds sum to ' || p.live
    FROM per_topup p WHERE p.refunded_minor <> p.live
) v
ORDER BY subject
LIMIT $1`
