package payments

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/problem"
)

// Test clocks (sandbox only; docs/sandbox.md). A merchant with a clock reads
// the clock's frozen time wherever payments asks "what time is it for this
// merchant" (nowFor): creating and paying checkouts, issuing coupons,
// redeeming them (time windows, rotating tokens), and the events' timestamps.
// The background expiry jobs leave such merchants alone; Advance runs their
// expiries instead, at the clock's new time. Everything else (ledger entry
// times, webhook delivery and retries, sessions) keeps the real clock.

// Problem codes of test clocks.
const (
	CodeTestClockExists      = "test_clock_exists"
	CodeTestClockBackwards   = "test_clock_cannot_go_back"
	CodeTestClockOutOfRange  = "test_clock_out_of_range"
	testClockAdvanceMax      = 2 * 366 * 24 * time.Hour // one advance covers at most two years
	testClockStepsShownMax   = 100                      // steps listed in one advance report
	testClockExpiryBatchMax  = 1000                     // objects of one kind one advance expires
	testClockTopUpsBatchMax  = 100                      // top-ups one advance reconciles
	testClockFrozenTimeRange = 10 * 366 * 24 * time.Hour
)

// TestClock is a merchant's frozen time.
type TestClock struct {
	ID         string    `db:"id" json:"id"`
	MerchantID string    `db:"merchant_id" json:"merchant_id"`
	FrozenTime time.Time `db:"frozen_time" json:"frozen_time"`
	CreatedAt  time.Time `db:"created_at" json:"created_at"`
	UpdatedAt  time.Time `db:"updated_at" json:"updated_at"`
}

// AdvanceStep is one thing an advance ran, at the instant it was due.
type AdvanceStep struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // checkout.expired, coupon.expired
	ID   string    `json:"id"`
}

// AdvanceReport says what an advance did.
type AdvanceReport struct {
	ClockID          string        `json:"clock_id"`
	From             time.Time     `json:"from"`
	To               time.Time     `json:"to"`
	CheckoutsExpired int           `json:"checkouts_expired"`
	CouponsExpired   int           `json:"coupons_expired"`
	TopUpsSettled    int           `json:"top_ups_settled"`
	Steps            []AdvanceStep `json:"steps"`
}

// channelKeyPrefix starts new channel keys: ck, or ck_test on a sandbox.
func (s *Service) channelKeyPrefix() string {
	if s.sandbox {
		return "ck_test"
	}
	return "ck"
}

// nowFor is the time for merchantID: its test clock's frozen time on a
// sandbox, else the service's clock. q is the caller's transaction, so a
// purchase reads the clock an advance may be moving consistently.
func (s *Service) nowFor(ctx context.Context, q sqlx.QueryerContext, merchantID string) (time.Time, error) {
	if !s.sandbox {
		return s.now().UTC(), nil
	}
	var frozen []time.Time
	if err := sqlx.SelectContext(ctx, q, &frozen, clockTimeSQL, merchantID); err != nil {
		return time.Time{}, fmt.Errorf("read test clock: %w", err)
	}
	if len(frozen) == 0 {
		return s.now().UTC(), nil
	}
	return frozen[0].UTC(), nil
}

// NowFor is the time for merchantID, for readers outside payments (pages,
// statements, the dashboard).
func (s *Service) NowFor(ctx context.Context, merchantID string) (time.Time, error) {
	return s.nowFor(ctx, s.db, merchantID)
}

// CreateTestClock freezes merchantID's time at frozen. A merchant has one
// clock; a second is test_clock_exists (409). Only a sandbox has clocks.
func (s *Service) CreateTestClock(ctx context.Context, merchantID string, frozen time.Time) (TestClock, error) {
	if !s.sandbox {
		return TestClock{}, problem.NotFound("test clock")
	}
	now := s.now().UTC()
	if frozen.IsZero() || frozen.Sub(now).Abs() > testClockFrozenTimeRange {
		return TestClock{}, problem.Field("frozen_time", CodeTestClockOutOfRange,
			"frozen_time is an RFC 3339 instant within %s of now", testClockFrozenTimeRange)
	}
	c := TestClock{ID: ids.New("clk"), MerchantID: merchantID, FrozenTime: frozen.UTC().Truncate(time.Microsecond), CreatedAt: now, UpdatedAt: now}
	res, err := s.db.ExecContext(ctx, insertClockSQL, c.ID, c.MerchantID, c.FrozenTime, now)
	if err != nil {
		return TestClock{}, fmt.Errorf("insert test clock: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return TestClock{}, fmt.Errorf("insert test clock: %w", err)
	} else if n == 0 {
		return TestClock{}, problem.New(problem.KindConflict, CodeTestClockExists, "this merchant already has a test clock")
	}
	return c, nil
}

// TestClock returns merchantID's clock id, or not_found.
func (s *Service) TestClock(ctx context.Context, merchantID, id string) (TestClock, error) {
	var c TestClock
	err := s.db.GetContext(ctx, &c, getClockSQL, id, merchantID)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !s.sandbox) {
		return TestClock{}, problem.NotFound("test clock")
	}
	if err != nil {
		return TestClock{}, fmt.Errorf("read test clock: %w", err)
	}
	return c, nil
}

// AdvanceTestClock moves merchantID's clock forward to `to` and runs, in
// the order they fell due, the checkout and coupon expiries of the merchant
// that happened meanwhile, in one transaction with the clock's move; then it
// settles unconfirmed top-ups with the provider. Advancing to the same
// instant again answers the first report; going back is
// test_clock_cannot_go_back (409).
func (s *Service) AdvanceTestClock(ctx context.Context, merchantID, id string, to time.Time) (AdvanceReport, error) {
	to = to.UTC().Truncate(time.Microsecond)
	var report AdvanceReport
	fresh := false
	err := withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		var c TestClock
		if err := tx.GetContext(ctx, &c, lockClockSQL, id, merchantID); errors.Is(err, sql.ErrNoRows) || !s.sandbox {
			return problem.NotFound("test clock")
		} else if err != nil {
			return fmt.Errorf("lock test clock: %w", err)
		}
		var stored []byte
		if err := tx.GetContext(ctx, &stored, advanceOfSQL, id, to); err == nil {
			return json.Unmarshal(stored, &report)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read advance: %w", err)
		}
		if err := checkAdvance(c.FrozenTime.UTC(), to); err != nil {
			return err
		}
		fresh = true
		var err error
		report, err = s.runAdvance(ctx, tx, c, to)
		return err
	})
	if err != nil || !fresh {
		return report, err
	}
	// Top-ups belong to shoppers, not to the merchant, and ask the provider:
	// they settle after the clock's transaction, as the real job does, at the
	// later of the real time and the clock's (a clock in the past must not
	// hold back what the real job would settle).
	at := func() time.Time {
		if now := s.now(); now.After(to) {
			return now
		}
		return to
	}
	settled, err := s.reconcileTopUpsAt(ctx, at, testClockTopUpsBatchMax)
	report.TopUpsSettled = settled.Succeeded + settled.Failed
	return report, err
}

func checkAdvance(from, to time.Time) error {
	if to.Before(from) {
		return problem.New(problem.KindConflict, CodeTestClockBackwards,
			"a test clock only moves forward; it is at %s", from.Format(time.RFC3339)).With("frozen_time", from)
	}
	if to.Sub(from) > testClockAdvanceMax {
		return problem.Field("to", CodeTestClockOutOfRange, "one advance moves at most %s", testClockAdvanceMax)
	}
	return nil
}

// dueItem is a checkout or a coupon that fell due during an advance.
type dueItem struct {
	at       time.Time
	checkout *Checkout
	coupon   *Coupon
}

// runAdvance expires, in tx and in due order, what fell due up to `to`, then
// moves the clock and stores the report.
func (s *Service) runAdvance(ctx context.Context, tx *sqlx.Tx, c TestClock, to time.Time) (AdvanceReport, error) {
	report := AdvanceReport{ClockID: c.ID, From: c.FrozenTime.UTC(), To: to, Steps: []AdvanceStep{}}
	var checkouts []Checkout
	if err := tx.SelectContext(ctx, &checkouts, clockCheckoutsSQL, c.MerchantID, to, testClockExpiryBatchMax); err != nil {
		return report, fmt.Errorf("due checkouts: %w", err)
	}
	var coupons []Coupon
	if err := tx.SelectContext(ctx, &coupons, clockCouponsSQL, c.MerchantID, to, testClockExpiryBatchMax); err != nil {
		return report, fmt.Errorf("due coupons: %w", err)
	}
	due := make([]dueItem, 0, len(checkouts)+len(coupons))
	for i := range checkouts {
		due = append(due, dueItem{at: checkouts[i].ExpiresAt.UTC(), checkout: &checkouts[i]})
	}
	for i := range coupons {
		due = append(due, dueItem{at: coupons[i].ValidUntil.Time.UTC(), coupon: &coupons[i]})
	}
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, d := range due {
		step := AdvanceStep{At: d.at}
		if d.checkout != nil {
			if err := s.expireCheckout(ctx, tx, *d.checkout, d.at); err != nil {
				return report, err
			}
			step.Kind, step.ID = "checkout.expired", d.checkout.ID
			report.CheckoutsExpired++
		} else {
			if err := s.expireCoupon(ctx, tx, *d.coupon, d.at); err != nil {
				return report, err
			}
			step.Kind, step.ID = "coupon.expired", d.coupon.ID
			report.CouponsExpired++
		}
		if len(report.Steps) < testClockStepsShownMax {
			report.Steps = append(report.Steps, step)
		}
	}
	stored, err := json.Marshal(report)
	if err != nil {
		return report, fmt.Errorf("encode advance report: %w", err)
	}
	if _, err := tx.ExecContext(ctx, moveClockSQL, c.ID, to, s.now().UTC(), stored); err != nil {
		return report, fmt.Errorf("move test clock: %w", err)
	}
	return report, nil
}

const (
	clockTimeSQL   = `SELECT frozen_time FROM test_clocks WHERE merchant_id = $1`
	insertClockSQL = `INSERT INTO test_clocks (id, merchant_id, frozen_time, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4) ON CONFLICT (merchant_id) DO NOTHING`
	clockColumns = `id, merchant_id, frozen_time, created_at, updated_at`
	getClockSQL  = `SELECT ` + clockColumns + ` FROM test_clocks WHERE id = $1 AND merchant_id = $2`
	lockClockSQL = getClockSQL + ` FOR UPDATE`
	advanceOfSQL = `SELECT report FROM test_clock_advances WHERE clock_id = $1 AND to_time = $2`
	moveClockSQL = `WITH moved AS (UPDATE test_clocks SET frozen_time = $2, updated_at = $3 WHERE id = $1)
		INSERT INTO test_clock_advances (clock_id, to_time, report, created_at) VALUES ($1, $2, $4, $3)`
	clockCheckoutsSQL = `SELECT ` + checkoutColumns + ` FROM checkouts
		WHERE merchant_id = $1 AND status = 'open' AND expires_at <= $2 ORDER BY expires_at, id LIMIT $3 FOR UPDATE`
	clockCouponsSQL = `SELECT ` + couponColumns + couponFrom + `
		WHERE c.merchant_id = $1 AND c.status = 'active' AND c.valid_until <= $2
		ORDER BY c.valid_until, c.id LIMIT $3 FOR UPDATE OF c`
	// notClockedSQL keeps the real-time jobs off merchants with a test clock.
	notClockedSQL = `NOT EXISTS (SELECT 1 FROM test_clocks tc WHERE tc.merchant_id = %s)`
)
