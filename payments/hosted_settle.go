package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/problem"
)

// Outcomes of one provider notification (provider_events.outcome).
const (
	NotificationCredited = "credited"
	NotificationFailed   = "failed"
	NotificationIgnored  = "ignored"
)

// HandleNotification verifies a notification that merchantID's provider
// sent and applies it, in one transaction with the event's record: a
// captured payment credits the wallet (once: the event id and the top-up's
// state both make a repeat change nothing), a payment closed for good fails
// the top-up. Duplicates, events out of order and events about top-ups
// already settled by reconciliation answer the same success and change
// nothing.
//
// Errors: invalid_notification (400: forged, stale or unreadable — nothing
// is written), not_found (no such provider for the merchant).
func (s *Service) HandleNotification(ctx context.Context, providerName, merchantID string, header http.Header, body []byte) (string, error) {
	p, err := s.hostedProvider(ctx, merchantID)
	if err != nil {
		if problemCode(err) == CodeProviderNotConfigured {
			return "", problem.NotFound("payment provider")
		}
		return "", err
	}
	if p.Name() != providerName {
		return "", problem.NotFound("payment provider")
	}
	if len(body) > notificationBytesMax {
		return "", problem.New(problem.KindBadRequest, CodeInvalidNotification, "notification larger than %d bytes", notificationBytesMax)
	}
	n, err := p.ParseNotification(ctx, header, body)
	if errors.Is(err, ErrInvalidNotification) {
		return "", problem.New(problem.KindBadRequest, CodeInvalidNotification, "the notification failed verification")
	}
	if err != nil {
		return "", fmt.Errorf("read %s notification: %w", providerName, err)
	}
	var outcome string
	err = withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		outcome, err = s.applyNotification(ctx, tx, p.Name(), merchantID, n)
		return err
	})
	return outcome, err
}

func problemCode(err error) string {
	if p, ok := problem.As(err); ok {
		return p.Code
	}
	return ""
}

func (s *Service) applyNotification(ctx context.Context, tx *sqlx.Tx, provider, merchantID string, n Notification) (string, error) {
	now := s.now().UTC()
	// The event's row first: a concurrent duplicate waits on it and then
	// finds it, so only one delivery ever acts.
	const claim = `INSERT INTO provider_events (provider, event_id, event_type, outcome, received_at)
		VALUES ($1, $2, $3, 'ignored', $4) ON CONFLICT DO NOTHING`
	res, err := tx.ExecContext(ctx, claim, provider, n.EventID, n.EventType, now)
	if err != nil {
		return "", fmt.Errorf("record notification %s: %w", n.EventID, err)
	}
	if fresh, _ := res.RowsAffected(); fresh == 0 {
		return NotificationIgnored, nil
	}
	if n.TopUpID == "" || n.Charge == nil {
		return NotificationIgnored, nil
	}
	var t HostedTopUp
	const lock = `SELECT ` + hostedColumns + ` FROM topups WHERE id = $1 AND provider = $2 AND merchant_id = $3 FOR UPDATE`
	err = tx.GetContext(ctx, &t, lock, n.TopUpID, provider, merchantID)
	if errors.Is(err, sql.ErrNoRows) {
		// Signed by the merchant's account but about nothing of ours (a
		// payment made elsewhere on the same account): acknowledged, so the
		// provider stops sending it.
		return NotificationIgnored, nil
	}
	if err != nil {
		return "", fmt.Errorf("lock top-up %s: %w", n.TopUpID, err)
	}
	before := t.Status
	settled, err := s.settleHostedTx(ctx, tx, t, *n.Charge)
	if err != nil {
		return "", err
	}
	outcome := NotificationIgnored
	switch {
	case settled.Status == TopUpSucceeded && before != TopUpSucceeded:
		outcome = NotificationCredited
	case settled.Status == TopUpFailed && before != TopUpFailed:
		outcome = NotificationFailed
	}
	const mark = `UPDATE provider_events SET outcome = $3, top_up_id = $4 WHERE provider = $1 AND event_id = $2`
	if _, err := tx.ExecContext(ctx, mark, provider, n.EventID, outcome, t.ID); err != nil {
		return "", fmt.Errorf("record notification outcome: %w", err)
	}
	return outcome, nil
}

// settleHostedTx books the provider's record of a locked hosted top-up. An
// open payment changes nothing. A capture reported for a top-up already
// failed is still credited: the provider holds the shopper's money, and the
// provider's record wins over chatpay's guess.
func (s *Service) settleHostedTx(ctx context.Context, tx *sqlx.Tx, t HostedTopUp, charge ProviderCharge) (HostedTopUp, error) {
	switch charge.Status {
	case ChargeOpen:
		return t, nil
	case ChargeCaptured:
		if t.Status == TopUpFailed {
			t.Status = TopUpUnknown
		}
	}
	done, err := s.applyChargeTx(ctx, tx, t.TopUp, charge)
	if err != nil {
		return HostedTopUp{}, err
	}
	t.TopUp = done
	return t, nil
}

// ReconcileHostedTopUps settles hosted top-ups that are still pending or
// unknown after ReconcileMinAge by asking each merchant's provider, at most
// batchMax of them: a capture whose notification never came is credited, a
// payment the provider closed fails, and one still open after
// HostedAbandonAfter is closed at the provider first and failed only once
// the provider confirms no capture can happen. Rows are claimed with SKIP
// LOCKED, so several reconcilers never look at the same top-up.
func (s *Service) ReconcileHostedTopUps(ctx context.Context, batchMax int) (ReconcileReport, error) {
	var report ReconcileReport
	if s.hosted == nil {
		return report, nil
	}
	for range batchMax {
		done, err := s.reconcileHostedOne(ctx, &report)
		if err != nil || done {
			return report, err
		}
	}
	return report, nil
}

func (s *Service) reconcileHostedOne(ctx context.Context, report *ReconcileReport) (done bool, err error) {
	var outcome string
	err = withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		now := s.now().UTC()
		var t HostedTopUp
		const claim = `SELECT ` + hostedColumns + ` FROM topups
			WHERE status IN ('pending', 'unknown') AND method <> 'card' AND updated_at <= $1
			ORDER BY updated_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`
		err := tx.GetContext(ctx, &t, claim, now.Add(-ReconcileMinAge))
		if errors.Is(err, sql.ErrNoRows) {
			done = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim hosted top-up: %w", err)
		}
		t, err = s.reconcileHosted(ctx, tx, t, now)
		outcome = t.Status
		return err
	})
	if err != nil || done {
		return done, err
	}
	report.count(outcome)
	return false, nil
}

// reconcileHosted asks the provider about one claimed top-up.
func (s *Service) reconcileHosted(ctx context.Context, tx *sqlx.Tx, t HostedTopUp, now time.Time) (HostedTopUp, error) {
	p, err := s.hostedProvider(ctx, t.MerchantID.String)
	if err != nil {
		// The merchant's provider is gone or broken: leave the top-up for a
		// later run rather than guess.
		return t, s.touchHosted(ctx, tx, &t, now, true)
	}
	payment := s.hostedPayment(t)
	lookupCtx, cancel := context.WithTimeout(ctx, providerLookupTimeout)
	charge, err := p.Lookup(lookupCtx, payment)
	cancel()
	abandoned := !now.Before(t.CreatedAt.Add(HostedAbandonAfter))
	switch {
	case err == nil && (charge.Status != ChargeOpen || !abandoned):
		if charge.Status == ChargeOpen {
			return t, s.touchHosted(ctx, tx, &t, now, false)
		}
		return s.settleHostedTx(ctx, tx, t, charge)
	case err == nil || errors.Is(err, ErrChargeNotFound) && abandoned:
		// Still open (or never seen) past the payment's lifetime: close it
		// first, so a shopper still on the page cannot pay after we call
		// the top-up failed.
		closeCtx, cancel := context.WithTimeout(ctx, providerLookupTimeout)
		charge, err := p.Close(closeCtx, payment)
		cancel()
		switch {
		case err == nil:
			return s.settleHostedTx(ctx, tx, t, charge)
		case errors.Is(err, ErrChargeNotFound):
			return s.settleHostedTx(ctx, tx, t, ProviderCharge{Status: ChargeDeclined, DeclineCode: FailurePaymentClosed})
		}
	}
	return t, s.touchHosted(ctx, tx, &t, now, true)
}

// touchHosted puts a claimed top-up at the back of the queue; unknown says
// the provider did not answer (a payment still open stays pending).
func (s *Service) touchHosted(ctx context.Context, tx *sqlx.Tx, t *HostedTopUp, now time.Time, unknown bool) error {
	if unknown {
		if err := markTopUpUnknown(ctx, tx, t.ID, now); err != nil {
			return err
		}
		t.Status = TopUpUnknown
		return nil
	}
	const again = `UPDATE topups SET attempts = attempts + 1, updated_at = $2 WHERE id = $1`
	if _, err := tx.ExecContext(ctx, again, t.ID, now); err != nil {
		return fmt.Errorf("requeue top-up %s: %w", t.ID, err)
	}
	return nil
}
