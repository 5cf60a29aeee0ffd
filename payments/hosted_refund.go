package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
)

// Top-up refund statuses.
const (
	TopUpRefundPending   = "pending"
	TopUpRefundSucceeded = "succeeded"
	TopUpRefundFailed    = "failed"
)

// Stable problem codes of top-up refunds.
const (
	CodeTopUpNotRefundable = "topup_not_refundable"
	CodeRefundExceedsTopUp = "refund_exceeds_topup"
	FailureProviderRefused = "provider_refused"
	// topUpRefundRetryMinimum is how long an unanswered refund waits before
	// reconciliation asks again.
	topUpRefundRetryMinimum = ReconcileMinAge
)

// TopUpRefund gives (part of) a top-up back to the payment method it came
// from.
type TopUpRefund struct {
	ID                    string         `db:"id"`
	TopUpID               string         `db:"top_up_id"`
	RequestKey            string         `db:"request_key"`
	AmountMinor           int64          `db:"amount_minor"`
	Currency              string         `db:"currency"`
	Status                string         `db:"status"`
	ProviderRefundID      sql.NullString `db:"provider_refund_id"`
	FailureCode           sql.NullString `db:"failure_code"`
	LedgerTransactionID   int64          `db:"ledger_transaction_id"`
	ReversalTransactionID sql.NullInt64  `db:"reversal_transaction_id"`
	Attempts              int            `db:"attempts"`
	CreatedAt             time.Time      `db:"created_at"`
	UpdatedAt             time.Time      `db:"updated_at"`
}

const topUpRefundColumns = `id, top_up_id, request_key, amount_minor, currency, status, provider_refund_id, failure_code,
	ledger_transaction_id, reversal_transaction_id, attempts, created_at, updated_at`

// RefundTopUp gives amount of a succeeded hosted top-up of shopperID back to
// the card or WeChat Pay balance it was paid with. In one transaction it
// records the refund and debits the wallet (D wallet, C provider clearing),
// so the money cannot be spent while the provider works; then it asks the
// provider, keyed by the refund's id. A refusal reverses the debit; no
// answer leaves the refund pending for reconciliation, which asks again with
// the same key. key is the caller's idempotency key.
//
// Errors: not_found; validation_failed; topup_not_refundable (not a
// succeeded hosted top-up); refund_exceeds_topup; insufficient_funds (the
// shopper spent it); idempotency_key_reused.
func (s *Service) RefundTopUp(ctx context.Context, shopperID, topUpID string, amount money.Amount, key string) (TopUpRefund, error) {
	if key == "" {
		return TopUpRefund{}, problem.New(problem.KindBadRequest, "idempotency_key_required", "a top-up refund needs an Idempotency-Key")
	}
	var r TopUpRefund
	var t HostedTopUp
	err := withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		var err error
		t, err = hostedForUpdate(ctx, tx, topUpID)
		if errors.Is(err, sql.ErrNoRows) || err == nil && t.ShopperID != shopperID {
			return problem.NotFound("top-up")
		}
		if err != nil {
			return err
		}
		r, err = s.recordTopUpRefund(ctx, tx, t, amount, key)
		return err
	})
	if err != nil || r.Status != TopUpRefundPending {
		return r, err
	}
	return s.sendTopUpRefund(context.WithoutCancel(ctx), t, r)
}

func (s *Service) recordTopUpRefund(ctx context.Context, tx *sqlx.Tx, t HostedTopUp, amount money.Amount, key string) (TopUpRefund, error) {
	var r TopUpRefund
	const existing = `SELECT ` + topUpRefundColumns + ` FROM topup_refunds WHERE top_up_id = $1 AND request_key = $2`
	err := tx.GetContext(ctx, &r, existing, t.ID, key)
	if err == nil {
		if r.AmountMinor != amount.Minor || r.Currency != amount.Currency.Code() {
			return TopUpRefund{}, problem.New(problem.KindInvalid, "idempotency_key_reused", "this Idempotency-Key was used for another refund")
		}
		return r, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return TopUpRefund{}, fmt.Errorf("read top-up refund: %w", err)
	}
	if t.Method == MethodCard || t.Status != TopUpSucceeded {
		return TopUpRefund{}, problem.New(problem.KindInvalid, CodeTopUpNotRefundable,
			"only a succeeded top-up paid through a payment provider can be refunded to its payment method")
	}
	if amount.Currency.Code() != t.Currency || amount.Minor <= 0 {
		return TopUpRefund{}, problem.Field("amount", "invalid_amount", "the refund must be more than zero in the top-up's currency %s", t.Currency)
	}
	if t.RefundedMinor+amount.Minor > t.AmountMinor {
		return TopUpRefund{}, problem.New(problem.KindInvalid, CodeRefundExceedsTopUp,
			"the top-up has %d minor units left to refund", t.AmountMinor-t.RefundedMinor)
	}
	id := ids.New("tre")
	posted, err := s.ledger.Post(ctx, tx, ledger.Transaction{
		Key:         "topup-refund:" + id,
		Description: "refund of top-up " + t.ID + " to its payment method via " + t.Provider,
		Postings: []ledger.Posting{
			ledger.Debit(ledger.ShopperWallet(t.ShopperID), amount.Currency, amount.Minor),
			ledger.Credit(ledger.ProviderClearing(t.Provider), amount.Currency, amount.Minor),
		},
	})
	if err != nil {
		return TopUpRefund{}, fmt.Errorf("book top-up refund: %w", err)
	}
	now := s.now().UTC()
	const insert = `INSERT INTO topup_refunds (id, top_up_id, request_key, amount_minor, currency, status, ledger_transaction_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7) RETURNING ` + topUpRefundColumns
	if err := tx.GetContext(ctx, &r, insert, id, t.ID, key, amount.Minor, t.Currency, posted.ID, now); err != nil {
		return TopUpRefund{}, fmt.Errorf("record top-up refund: %w", err)
	}
	const add = `UPDATE topups SET refunded_minor = refunded_minor + $2, updated_at = $3 WHERE id = $1`
	if _, err := tx.ExecContext(ctx, add, t.ID, amount.Minor, now); err != nil {
		return TopUpRefund{}, fmt.Errorf("top-up refunded amount: %w", err)
	}
	return r, nil
}

// sendTopUpRefund asks the provider for a recorded refund and books its
// answer.
func (s *Service) sendTopUpRefund(ctx context.Context, t HostedTopUp, r TopUpRefund) (TopUpRefund, error) {
	p, err := s.hostedProvider(ctx, t.MerchantID.String)
	if err != nil {
		return r, nil // pending: reconciliation retries once the provider is back
	}
	currency, err := money.ParseCurrency(r.Currency)
	if err != nil {
		return TopUpRefund{}, fmt.Errorf("refund currency: %w", err)
	}
	callCtx, cancel := context.WithTimeout(ctx, ProviderTimeoutDefault)
	refund, callErr := p.Refund(callCtx, r.ID, s.hostedPayment(t), t.ProviderChargeID.String, money.New(r.AmountMinor, currency))
	cancel()
	err = withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		var err error
		r, err = s.finishTopUpRefund(ctx, tx, r.ID, refund, callErr)
		return err
	})
	return r, err
}

func (s *Service) finishTopUpRefund(ctx context.Context, tx *sqlx.Tx, id string, refund ProviderRefund, callErr error) (TopUpRefund, error) {
	var r TopUpRefund
	if err := tx.GetContext(ctx, &r, `SELECT `+topUpRefundColumns+` FROM topup_refunds WHERE id = $1 FOR UPDATE`, id); err != nil {
		return TopUpRefund{}, fmt.Errorf("lock top-up refund %s: %w", id, err)
	}
	if r.Status != TopUpRefundPending {
		return r, nil
	}
	now := s.now().UTC()
	switch {
	case callErr == nil:
		const done = `UPDATE topup_refunds SET status = 'succeeded', provider_refund_id = $2, attempts = attempts + 1, updated_at = $3
			WHERE id = $1 RETURNING ` + topUpRefundColumns
		err := tx.GetContext(ctx, &r, done, id, refund.ID, now)
		return r, wrapErr("finish top-up refund", err)
	case errors.Is(callErr, ErrOutcomeUnknown):
		// The provider may have refunded: only its answer to the same key
		// may settle it, however many tries that takes. Reversing here could
		// pay the shopper twice.
		const again = `UPDATE topup_refunds SET attempts = attempts + 1, updated_at = $2 WHERE id = $1 RETURNING ` + topUpRefundColumns
		err := tx.GetContext(ctx, &r, again, id, now)
		return r, wrapErr("retry top-up refund", err)
	}
	// Refused by the provider: the money goes back to the wallet, in the
	// same transaction as the refund's failure.
	reversal, err := s.ledger.Reverse(ctx, tx, r.LedgerTransactionID, "topup-refund-reversal:"+r.ID)
	if err != nil {
		return TopUpRefund{}, fmt.Errorf("reverse top-up refund %s: %w", id, err)
	}
	const failed = `UPDATE topup_refunds SET status = 'failed', failure_code = $2, reversal_transaction_id = $3,
		attempts = attempts + 1, updated_at = $4 WHERE id = $1 RETURNING ` + topUpRefundColumns
	if err := tx.GetContext(ctx, &r, failed, id, FailureProviderRefused, reversal.ID, now); err != nil {
		return TopUpRefund{}, fmt.Errorf("fail top-up refund %s: %w", id, err)
	}
	const back = `UPDATE topups SET refunded_minor = refunded_minor - $2, updated_at = $3 WHERE id = $1`
	if _, err := tx.ExecContext(ctx, back, r.TopUpID, r.AmountMinor, now); err != nil {
		return TopUpRefund{}, fmt.Errorf("top-up refunded amount: %w", err)
	}
	return r, nil
}

func wrapErr(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// ReconcileTopUpRefunds asks the provider again about refunds it has not
// answered, at most batchMax of them, with the refund's own key (so the
// provider refunds once).
func (s *Service) ReconcileTopUpRefunds(ctx context.Context, batchMax int) (int, error) {
	const sel = `SELECT ` + topUpRefundColumns + ` FROM topup_refunds
		WHERE status = 'pending' AND updated_at <= $1 ORDER BY updated_at, id LIMIT $2`
	var open []TopUpRefund
	if err := s.db.SelectContext(ctx, &open, sel, s.now().UTC().Add(-topUpRefundRetryMinimum), batchMax); err != nil {
		return 0, fmt.Errorf("open top-up refunds: %w", err)
	}
	for _, r := range open {
		var t HostedTopUp
		if err := s.db.GetContext(ctx, &t, `SELECT `+hostedColumns+` FROM topups WHERE id = $1`, r.TopUpID); err != nil {
			return 0, fmt.Errorf("top-up of refund %s: %w", r.ID, err)
		}
		if _, err := s.sendTopUpRefund(ctx, t, r); err != nil {
			return 0, err
		}
	}
	return len(open), nil
}
