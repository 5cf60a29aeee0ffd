package main

import (
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments"
)

// crossChecks tie the business records to the ledger and the outbox. They
// read several packages' tables at once, which is why they live here, at the
// composition root, rather than in any one of those packages.
func crossChecks() []ledger.Check {
	return append([]ledger.Check{
		ledger.SQLCheck("paid_orders_in_ledger",
			"every paid order with a total has its own sale transaction in the ledger, debiting the shopper's wallet by exactly the total",
			`SELECT count(*) FROM orders`, paidOrdersInLedgerSQL),
		ledger.SQLCheck("paid_orders_have_events",
			"every paid order has its order.paid event in the outbox",
			`SELECT count(*) FROM orders`, paidOrdersHaveEventsSQL),
		ledger.SQLCheck("coupons_have_events",
			"every coupon has its coupon.issued event in the outbox",
			`SELECT count(*) FROM coupons`, couponsHaveEventsSQL),
		ledger.SQLCheck("paid_checkouts_have_orders",
			"every paid checkout points at an order of the same checkout",
			`SELECT count(*) FROM checkouts WHERE status = 'paid'`, paidCheckoutsHaveOrdersSQL),
	}, afterSaleChecks()...)
}

const paidOrdersInLedgerSQL = `
SELECT 'order ' || o.id AS subject,
       CASE WHEN t.id IS NULL THEN 'has no ledger transaction'
            ELSE 'wallet debit ' || COALESCE(-w.amount, 0) || ' differs from the total ' || o.total_minor END AS detail,
       count(*) OVER () AS total
FROM orders o
LEFT JOIN ledger_transactions t ON t.id = o.ledger_transaction_id
    AND t.idempotency_key = COALESCE('checkout:' || o.checkout_id, 'order:' || o.id) || ':pay'
LEFT JOIN LATERAL (
    SELECT sum(p.amount) AS amount FROM ledger_postings p
    JOIN ledger_accounts a ON a.id = p.account_id
    WHERE p.transaction_id = t.id AND a.kind = 'shopper_wallet' AND a.owner = o.shopper_id
) w ON true
WHERE o.total_minor > 0 AND (t.id IS NULL OR COALESCE(-w.amount, 0) <> o.total_minor)
ORDER BY o.id
LIMIT $1`

const paidOrdersHaveEventsSQL = `
SELECT 'order ' || o.id AS subject, 'has no order.paid event' AS detail, count(*) OVER () AS total
FROM orders o
WHERE NOT EXISTS (
    SELECT 1 FROM webhook_events e
    WHERE e.type = 'order.paid' AND convert_from(e.body, 'UTF8')::jsonb -> 'data' -> 'order' ->> 'id' = o.id)
ORDER BY o.id
LIMIT $1`

const couponsHaveEventsSQL = `
SELECT 'coupon ' || c.id AS subject, 'has no coupon.issued event' AS detail, count(*) OVER () AS total
FROM coupons c
WHERE NOT EXISTS (
    SELECT 1 FROM webhook_events e
    WHERE e.type = 'coupon.issued' AND convert_from(e.body, 'UTF8')::jsonb -> 'data' -> 'coupon' ->> 'id' = c.id)
ORDER BY c.id
LIMIT $1`

const paidCheckoutsHaveOrdersSQL = `
SELECT 'checkout ' || c.id AS subject, 'is paid but order ' || COALESCE(c.order_id, '(none)') || ' does not belong to it' AS detail,
       count(*) OVER () AS total
FROM checkouts c
LEFT JOIN orders o ON o.id = c.order_id AND o.checkout_id = c.id
WHERE c.status = 'paid' AND o.id IS NULL
ORDER BY c.id
LIMIT $1`

// afterSaleChecks tie top-ups, redemptions and refunds to the ledger for
// `chatpay verify`.
func afterSaleChecks() []ledger.Check {
	return append([]ledger.Check{
		ledger.SQLCheck("topups_credited_once",
			"every succeeded top-up has exactly its ledger credit of the wallet, and no other top-up has one",
			`SELECT count(*) FROM topups`, topUpsCreditedSQL),
		ledger.SQLCheck("refunds_match_orders",
			"every order's refunded amount is the sum of its refunds, each with its ledger transaction crediting the wallet",
			`SELECT count(*) FROM orders`, refundsMatchOrdersSQL),
		ledger.SQLCheck("redemptions_match_coupons",
			"every coupon has as many redemptions as uses taken, and each redemption with a value its ledger transaction",
			`SELECT count(*) FROM coupons`, redemptionsMatchCouponsSQL),
	}, payments.ProviderChecks()...)
}

const topUpsCreditedSQL = `
SELECT 'top-up ' || t.id AS subject,
       t.status || ' with ' || count(l.id) || ' ledger transaction(s) crediting ' || COALESCE(sum(w.amount), 0) AS detail,
       count(*) OVER () AS total
FROM topups t
LEFT JOIN ledger_transactions l ON l.idempotency_key = 'topup:' || t.id
LEFT JOIN LATERAL (
    SELECT sum(p.amount) AS amount FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
    WHERE p.transaction_id = l.id AND a.kind = 'shopper_wallet' AND a.owner = t.shopper_id
) w ON true
GROUP BY t.id, t.status, t.amount_minor, t.ledger_transaction_id
HAVING (t.status = 'succeeded') <> (count(l.id) = 1)
    OR (t.status = 'succeeded' AND (COALESCE(sum(w.amount), 0) <> t.amount_minor OR min(l.id) <> t.ledger_transaction_id))
ORDER BY t.id
LIMIT $1`

const refundsMatchOrdersSQL = `
SELECT 'order ' || o.id AS subject,
       'refunded_minor ' || o.refunded_minor || ' but refunds sum to ' || COALESCE(r.amount, 0) ||
       ' and credit the wallet ' || COALESCE(r.credited, 0) AS detail,
       count(*) OVER () AS total
FROM orders o
LEFT JOIN LATERAL (
    SELECT sum(f.amount_minor) AS amount, sum(w.amount) AS credited FROM refunds f
    LEFT JOIN LATERAL (
        SELECT sum(p.amount) AS amount FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
        WHERE p.transaction_id = f.ledger_transaction_id AND a.kind = 'shopper_wallet' AND a.owner = o.shopper_id
    ) w ON true
    WHERE f.order_id = o.id
) r ON true
WHERE o.refunded_minor <> COALESCE(r.amount, 0) OR COALESCE(r.amount, 0) <> COALESCE(r.credited, 0)
ORDER BY o.id
LIMIT $1`

const redemptionsMatchCouponsSQL = `
SELECT 'coupon ' || c.id AS subject,
       (c.uses_total - c.uses_left) || ' uses taken, ' || count(r.id) || ' redemptions, ' ||
       count(r.id) FILTER (WHERE r.value_minor > 0 AND l.id IS NULL) || ' without their ledger transaction' AS detail,
       count(*) OVER () AS total
FROM coupons c
LEFT JOIN redemptions r ON r.coupon_id = c.id
LEFT JOIN ledger_transactions l ON l.id = r.ledger_transaction_id
GROUP BY c.id, c.uses_total, c.uses_left
HAVING count(r.id) <> c.uses_total - c.uses_left OR count(r.id) FILTER (WHERE r.value_minor > 0 AND l.id IS NULL) > 0
ORDER BY c.id
LIMIT $1`
