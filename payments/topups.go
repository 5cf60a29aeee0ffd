package payments

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/webhooks"
)

// Top-up statuses: pending → succeeded | failed | unknown; unknown →
// succeeded | failed (by a lookup now or by reconciliation).
const (
	TopUpPending   = "pending"
	TopUpSucceeded = "succeeded"
	TopUpFailed    = "failed"
	TopUpUnknown   = "unknown"
)

// Top-up limits.
const (
	// TopUpMinorMax bounds one top-up, in minor units of its currency.
	TopUpMinorMax int64 = 1_000_000_00
	// ReconcileMinAge is how long a pending or unknown top-up is left alone
	// before reconciliation looks at it: longer than a request's provider
	// call and lookup, so it never races the request that is still running.
	ReconcileMinAge = 30 * time.Second
	// TopUpAbandonAfter is how long a top-up the provider has never heard of
	// stays unknown before reconciliation voids its key at the provider and,
	// once the provider confirms no charge was made, marks it failed. The
	// wait lets a slow request land and be credited rather than refused.
	TopUpAbandonAfter = 10 * time.Minute
	// providerLookupTimeout bounds the lookup that settles an unknown
	// outcome while the shopper waits.
	providerLookupTimeout = 5 * time.Second
)

// Stable problem codes of top-ups.
const (
	CodeCardDeclined        = "card_declined"
	CodeProviderUnavailable = "provider_unavailable"
	// FailureNotReceived is the failure code of a top-up the provider never
	// received (found by reconciliation after TopUpAbandonAfter).
	FailureNotReceived = "not_received_by_provider"
)

// TopUp is one attempt to fund a wallet by card.
type TopUp struct {
	ID                  string         `db:"id"`
	ShopperID           string         `db:"shopper_id"`
	RequestKey          string         `db:"request_key"`
	RequestHash         []byte         `db:"request_hash"`
	Provider            string         `db:"provider"`
	ProviderKey         string         `db:"provider_key"`
	ProviderChargeID    sql.NullString `db:"provider_charge_id"`
	CardLast4           string         `db:"card_last4"`
	AmountMinor         int64          `db:"amount_minor"`
	Currency            string         `db:"currency"`
	Status              string         `db:"status"`
	FailureCode         sql.NullString `db:"failure_code"`
	ChatID              string         `db:"chat_id"`
	LedgerTransactionID sql.NullInt64  `db:"ledger_transaction_id"`
	BalanceAfterMinor   sql.NullInt64  `db:"balance_after_minor"`
	Attempts            int            `db:"attempts"`
	CreatedAt           time.Time      `db:"created_at"`
	UpdatedAt           time.Time      `db:"updated_at"`
}

const topUpColumns = `id, shopper_id, request_key, request_hash, provider, provider_key, provider_charge_id, card_last4,
	amount_minor, currency, status, failure_code, chat_id, ledger_transaction_id, balance_after_minor, attempts, created_at, updated_at`

// Err is the refusal a failed top-up answers with, nil otherwise.
func (t TopUp) Err() error {
	if t.Status != TopUpFailed {
		return nil
	}
	detail := "the card was declined"
	if t.FailureCode.String == FailureNotReceived {
		detail = "the payment provider never received this top-up; nothing was charged"
	}
	return problem.New(problem.KindRefused, CodeCardDeclined, "%s", detail).
		With("decline_code", t.FailureCode.String).With("top_up_id", t.ID)
}

// TopUp funds shopper's wallet with amount charged to card (a test card
// number or token for the sandbox). key is the caller's idempotency key
// (required): the same key answers the same top-up, never a second charge.
//
// It records the top-up as pending before calling the provider, so that
// whatever happens next a row exists to finish: captured → succeeded (D
// provider clearing, C wallet, wallet.topped_up queued, all in one
// transaction); declined → failed; no answer → a lookup now, and unknown if
// that cannot tell either (reconciliation finishes it; the caller should show
// "confirming").
//
// Errors: validation_failed (amount, card), idempotency_key_reused (same key,
// other amount or card), card_declined (422, with decline_code),
// provider_unavailable (no provider configured).
func (s *Service) TopUp(ctx context.Context, shopper Shopper, amount money.Amount, card, key string) (TopUp, error) {
	if s.provider == nil {
		return TopUp{}, problem.New(problem.KindUnavailable, CodeProviderUnavailable, "no payment provider is configured")
	}
	card = strings.TrimSpace(card)
	if err := validateTopUp(amount, card, key); err != nil {
		return TopUp{}, err
	}
	t, fresh, err := s.claimTopUp(ctx, shopper, amount, card, key)
	if err != nil {
		return TopUp{}, err
	}
	// The shopper may hang up; the charge and its booking still finish, so
	// the work is detached from the request and bounded by the client's own
	// timeouts instead.
	ctx = context.WithoutCancel(ctx)
	switch {
	case fresh:
		charge, err := s.provider.Charge(ctx, t.ProviderKey, amount, card)
		if err != nil && errors.Is(err, ErrOutcomeUnknown) {
			return s.resolve(ctx, t)
		}
		if err != nil {
			// The provider refused the request itself (not the card): a bug
			// on one side. Keep the row for reconciliation and say so.
			if _, markErr := s.markUnknown(ctx, t.ID); markErr != nil {
				return TopUp{}, errors.Join(err, markErr)
			}
			return TopUp{}, fmt.Errorf("top-up %s: %w", t.ID, err)
		}
		t, err = s.applyCharge(ctx, t.ID, charge)
		if err != nil {
			return TopUp{}, err
		}
		return t, t.Err()
	case t.Status == TopUpPending || t.Status == TopUpUnknown:
		return s.resolve(ctx, t)
	}
	return t, t.Err()
}

func validateTopUp(amount money.Amount, card, key string) error {
	if amount.Currency.IsZero() || amount.Minor <= 0 || amount.Minor > TopUpMinorMax {
		return problem.Field("amount", "invalid_amount", "a top-up is more than zero and at most %d minor units", TopUpMinorMax)
	}
	if card == "" || len(card) > CardLengthMax || strings.Trim(card, "0123456789 -abcdefghijklmnopqrstuvwxyz_") != "" {
		return problem.Field("card", "invalid_card", "card must be a card number or a token of at most %d characters", CardLengthMax)
	}
	if key == "" || len(key) > idempotency.KeyLengthMax {
		return problem.New(problem.KindBadRequest, "idempotency_key_required",
			"top-ups need an Idempotency-Key of 1 to %d characters, so that a retry never charges twice", idempotency.KeyLengthMax)
	}
	return nil
}

// cardLast4 keeps the last four digits (or a token's last characters):
// enough for the shopper to recognise the card, useless to anyone else.
func cardLast4(card string) string {
	card = strings.NewReplacer(" ", "", "-", "").Replace(card)
	if len(card) > 4 {
		card = card[len(card)-4:]
	}
	return card
}

func topUpHash(amount money.Amount, card string) []byte {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d\n%s\n%s", amount.Minor, amount.Currency.Code(), card)))
	return sum[:]
}

// claimTopUp records the top-up as pending, or finds the one recorded
// earlier under the same key. fresh reports a new row.
func (s *Service) claimTopUp(ctx context.Context, shopper Shopper, amount money.Amount, card, key string) (TopUp, bool, error) {
	now := s.now().UTC()
	id := ids.New("top")
	hash := topUpHash(amount, card)
	const insert = `
		INSERT INTO topups (id, shopper_id, request_key, request_hash, provider, provider_key, card_last4,
			amount_minor, currency, status, chat_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11)
		ON CONFLICT (shopper_id, request_key) DO NOTHING`
	res, err := s.db.ExecContext(ctx, insert, id, shopper.ID, key, hash, s.provider.Name(), "topup:"+id,
		cardLast4(card), amount.Minor, amount.Currency.Code(), shopper.ExternalUserID, now)
	if err != nil {
		return TopUp{}, false, fmt.Errorf("record top-up: %w", err)
	}
	inserted, _ := res.RowsAffected()
	var t TopUp
	const sel = `SELECT ` + topUpColumns + ` FROM topups WHERE shopper_id = $1 AND request_key = $2`
	if err := s.db.GetContext(ctx, &t, sel, shopper.ID, key); err != nil {
		return TopUp{}, false, fmt.Errorf("read top-up: %w", err)
	}
	if inserted == 0 && string(t.RequestHash) != string(hash) {
		return TopUp{}, false, problem.New(problem.KindInvalid, "idempotency_key_reused",
			"this Idempotency-Key was used for another top-up; use a new key for a new top-up")
	}
	return t, inserted == 1, nil
}

// resolve settles an unknown outcome by a lookup now; if the provider cannot
// tell either, the top-up stays unknown for reconciliation.
func (s *Service) resolve(ctx context.Context, t TopUp) (TopUp, error) {
	lookupCtx, cancel := context.WithTimeout(ctx, providerLookupTimeout)
	defer cancel()
	charge, err := s.provider.Lookup(lookupCtx, t.ProviderKey)
	if err == nil {
		t, err = s.applyCharge(ctx, t.ID, charge)
		if err != nil {
			return TopUp{}, err
		}
		return t, t.Err()
	}
	// Not found right after a lost answer may still be a request in flight,
	// so only reconciliation, after TopUpAbandonAfter, may call it failed.
	return s.markUnknown(ctx, t.ID)
}

// markUnknown records one more unsettled attempt.
func (s *Service) markUnknown(ctx context.Context, id string) (TopUp, error) {
	var t TopUp
	const update = `
		UPDATE topups SET status = CASE WHEN status IN ('pending', 'unknown') THEN 'unknown' ELSE status END,
			attempts = attempts + 1, updated_at = $2
		WHERE id = $1 RETURNING ` + topUpColumns
	if err := s.db.GetContext(ctx, &t, update, id, s.now().UTC()); err != nil {
		return TopUp{}, fmt.Errorf("mark top-up unknown: %w", err)
	}
	return t, nil
}

// applyCharge books what the provider says in one transaction.
func (s *Service) applyCharge(ctx context.Context, id string, charge ProviderCharge) (TopUp, error) {
	var t TopUp
	err := withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		var err error
		t, err = topUpForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		t, err = s.applyChargeTx(ctx, tx, t, charge)
		return err
	})
	return t, err
}

func topUpForUpdate(ctx context.Context, tx *sqlx.Tx, id string) (TopUp, error) {
	var t TopUp
	if err := tx.GetContext(ctx, &t, `SELECT `+topUpColumns+` FROM topups WHERE id = $1 FOR UPDATE`, id); err != nil {
		return TopUp{}, fmt.Errorf("lock top-up %s: %w", id, err)
	}
	return t, nil
}

// applyChargeTx settles a locked top-up: a captured charge credits the
// wallet (once: a settled top-up is returned as it is), a declined one fails
// it. The charge must match the top-up's amount; a mismatch is a provider
// bug that is never booked.
func (s *Service) applyChargeTx(ctx context.Context, tx *sqlx.Tx, t TopUp, charge ProviderCharge) (TopUp, error) {
	if t.Status == TopUpSucceeded || t.Status == TopUpFailed {
		return t, nil
	}
	now := s.now().UTC()
	switch charge.Status {
	case ChargeDeclined:
		code := charge.DeclineCode
		if code == "" {
			code = CodeCardDeclined
		}
		return finishTopUp(ctx, tx, t.ID, TopUpFailed, charge.ID, code, sql.NullInt64{}, sql.NullInt64{}, now)
	case ChargeCaptured:
	default:
		return TopUp{}, fmt.Errorf("top-up %s: provider charge status %q", t.ID, charge.Status)
	}
	if charge.AmountMinor != t.AmountMinor || charge.Currency != t.Currency {
		return TopUp{}, fmt.Errorf("top-up %s: provider captured %d %s, expected %d %s",
			t.ID, charge.AmountMinor, charge.Currency, t.AmountMinor, t.Currency)
	}
	currency, err := money.ParseCurrency(t.Currency)
	if err != nil {
		return TopUp{}, fmt.Errorf("top-up currency: %w", err)
	}
	posted, err := s.ledger.Post(ctx, tx, ledger.Transaction{
		Key:         "topup:" + t.ID,
		Description: "top-up " + t.ID + " via " + t.Provider,
		Postings: []ledger.Posting{
			ledger.Debit(ledger.ProviderClearing(t.Provider), currency, t.AmountMinor),
			ledger.Credit(ledger.ShopperWallet(t.ShopperID), currency, t.AmountMinor),
		},
	})
	if err != nil {
		return TopUp{}, fmt.Errorf("book top-up %s: %w", t.ID, err)
	}
	balance, err := s.ledger.Balance(ctx, tx, ledger.ShopperWallet(t.ShopperID), currency)
	if err != nil {
		return TopUp{}, fmt.Errorf("wallet balance: %w", err)
	}
	done, err := finishTopUp(ctx, tx, t.ID, TopUpSucceeded, charge.ID, "",
		sql.NullInt64{Int64: posted.ID, Valid: true}, sql.NullInt64{Int64: balance, Valid: true}, now)
	if err != nil {
		return TopUp{}, err
	}
	var channelID string
	if err := tx.GetContext(ctx, &channelID, `SELECT channel_id FROM shoppers WHERE id = $1`, t.ShopperID); err != nil {
		return TopUp{}, fmt.Errorf("top-up shopper: %w", err)
	}
	added, after := money.New(t.AmountMinor, currency), money.New(balance, currency)
	event := webhooks.WalletToppedUp(now, webhooks.WalletToppedUpData{
		ChatData: webhooks.ChatData{
			Chat:    webhooks.Chat{ChannelID: channelID, ChatID: t.ChatID, ExternalUserID: t.ChatID},
			Message: fmt.Sprintf("Topped up %s — wallet balance %s", added, after),
		},
		ShopperID: t.ShopperID, TopUpID: t.ID, Amount: webhookAmount(added), Balance: webhookAmount(after),
	})
	if err := s.outbox.Enqueue(ctx, tx, event); err != nil {
		return TopUp{}, fmt.Errorf("enqueue wallet.topped_up: %w", err)
	}
	return done, nil
}

func finishTopUp(ctx context.Context, tx *sqlx.Tx, id, status, chargeID, failure string, ledgerID, balance sql.NullInt64, now time.Time) (TopUp, error) {
	var t TopUp
	const update = `
		UPDATE topups SET status = $2, provider_charge_id = NULLIF($3, ''), failure_code = NULLIF($4, ''),
			ledger_transaction_id = $5, balance_after_minor = $6, updated_at = $7
		WHERE id = $1 RETURNING ` + topUpColumns
	if err := tx.GetContext(ctx, &t, update, id, status, chargeID, failure, ledgerID, balance, now); err != nil {
		return TopUp{}, fmt.Errorf("finish top-up %s: %w", id, err)
	}
	return t, nil
}

// ReconcileReport says what one reconciliation run did.
type ReconcileReport struct {
	Checked   int
	Succeeded int
	Failed    int
	Unknown   int // still unknown: the provider could not tell
}

// ReconcileTopUps finishes pending and unknown top-ups older than
// ReconcileMinAge by asking the provider, at most batchMax of them. Each is
// claimed with SKIP LOCKED in its own transaction, so several processes can
// reconcile at once without looking at the same top-up; the provider lookup
// runs while the row is locked, bounded by providerLookupTimeout.
func (s *Service) ReconcileTopUps(ctx context.Context, batchMax int) (ReconcileReport, error) {
	return s.reconcileTopUpsAt(ctx, s.now, batchMax)
}

// reconcileTopUpsAt is ReconcileTopUps on the clock clock (a test clock's
// advance passes its own; testclock.go).
func (s *Service) reconcileTopUpsAt(ctx context.Context, clock func() time.Time, batchMax int) (ReconcileReport, error) {
	var report ReconcileReport
	if s.provider == nil {
		return report, nil
	}
	for range batchMax {
		done, err := s.reconcileOne(ctx, clock, &report)
		if err != nil || done {
			return report, err
		}
	}
	return report, nil
}

func (s *Service) reconcileOne(ctx context.Context, clock func() time.Time, report *ReconcileReport) (done bool, err error) {
	// The outcome is counted after the commit, as WithTx may run fn again.
	var outcome string
	err = withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		now := clock().UTC()
		var t TopUp
		const claim = `SELECT ` + topUpColumns + ` FROM topups
			WHERE status IN ('pending', 'unknown') AND provider = $1 AND updated_at <= $2
			ORDER BY updated_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`
		err := tx.GetContext(ctx, &t, claim, s.provider.Name(), now.Add(-ReconcileMinAge))
		if errors.Is(err, sql.ErrNoRows) {
			done = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim top-up: %w", err)
		}
		lookupCtx, cancel := context.WithTimeout(ctx, providerLookupTimeout)
		charge, err := s.provider.Lookup(lookupCtx, t.ProviderKey)
		cancel()
		switch {
		case err == nil:
			t, err = s.applyChargeTx(ctx, tx, t, charge)
			if err != nil {
				return err
			}
		case errors.Is(err, ErrChargeNotFound) && !now.Before(t.CreatedAt.Add(TopUpAbandonAfter)):
			// Not seen yet is not never: close the key first, so a request
			// still held somewhere cannot capture after we call it failed.
			voidCtx, cancel := context.WithTimeout(ctx, providerLookupTimeout)
			charge, err := s.provider.Void(voidCtx, t.ProviderKey)
			cancel()
			switch {
			case err == nil: // it arrived after all, between look-up and void
				if t, err = s.applyChargeTx(ctx, tx, t, charge); err != nil {
					return err
				}
			case errors.Is(err, ErrChargeNotFound):
				if t, err = finishTopUp(ctx, tx, t.ID, TopUpFailed, "", FailureNotReceived, sql.NullInt64{}, sql.NullInt64{}, now); err != nil {
					return err
				}
			default:
				if err := markTopUpUnknown(ctx, tx, t.ID, now); err != nil {
					return err
				}
				t.Status = TopUpUnknown
			}
		default:
			if err := markTopUpUnknown(ctx, tx, t.ID, now); err != nil {
				return err
			}
			t.Status = TopUpUnknown
		}
		outcome = t.Status
		return nil
	})
	if err != nil || done {
		return done, err
	}
	report.count(outcome)
	return false, nil
}

// count adds one checked top-up that ended in outcome.
func (r *ReconcileReport) count(outcome string) {
	r.Checked++
	switch outcome {
	case TopUpSucceeded:
		r.Succeeded++
	case TopUpFailed:
		r.Failed++
	default:
		r.Unknown++
	}
}

// markTopUpUnknown leaves a claimed top-up for the next reconciliation.
func markTopUpUnknown(ctx context.Context, tx *sqlx.Tx, id string, now time.Time) error {
	const again = `UPDATE topups SET status = 'unknown', attempts = attempts + 1, updated_at = $2 WHERE id = $1`
	if _, err := tx.ExecContext(ctx, again, id, now); err != nil {
		return fmt.Errorf("mark top-up unknown: %w", err)
	}
	return nil
}

// ShopperTopUp returns one of a shopper's top-ups, or not_found.
func (s *Service) ShopperTopUp(ctx context.Context, shopperID, id string) (TopUp, error) {
	var t TopUp
	err := s.db.GetContext(ctx, &t, `SELECT `+topUpColumns+` FROM topups WHERE id = $1 AND shopper_id = $2`, id, shopperID)
	if errors.Is(err, sql.ErrNoRows) {
		return TopUp{}, problem.NotFound("top-up")
	}
	if err != nil {
		return TopUp{}, fmt.Errorf("get top-up: %w", err)
	}
	return t, nil
}
