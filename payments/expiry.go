package payments

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/webhooks"
)

// Expiry limits.
const (
	// ExpiryBatchMax bounds the coupons one expiry transaction claims.
	ExpiryBatchMax = 200
	// expiryBatchesPerRunMax bounds one run, so a backlog is worked off over
	// several runs instead of one endless loop.
	expiryBatchesPerRunMax = 50
)

// ExpireCoupons expires active coupons whose validity ended at or before the
// service's now: the value not yet recognised moves from the merchant's
// deferred revenue to its breakage (D deferred, C breakage), the coupon
// becomes expired and coupon.expired is queued, each batch in one
// transaction. Batches of batchMax (ExpiryBatchMax when 0) are claimed with
// SKIP LOCKED, so several processes can run it at once and a coupon being
// redeemed or refunded right now is left for the next run. It returns how
// many coupons it expired.
func (s *Service) ExpireCoupons(ctx context.Context, batchMax int) (int, error) {
	if batchMax <= 0 || batchMax > ExpiryBatchMax {
		batchMax = ExpiryBatchMax
	}
	total := 0
	for range expiryBatchesPerRunMax {
		n := 0
		err := withTx(ctx, s.db, func(tx *sqlx.Tx) error {
			var err error
			n, err = s.expireBatch(ctx, tx, batchMax)
			return err
		})
		total += n
		if err != nil {
			return total, err
		}
		if n < batchMax {
			break
		}
	}
	return total, nil
}

func (s *Service) expireBatch(ctx context.Context, tx *sqlx.Tx, batchMax int) (int, error) {
	now := s.now().UTC()
	var due []Coupon
	q := `SELECT ` + couponColumns + couponFrom + `
		WHERE c.status = 'active' AND c.valid_until <= $1 AND ` + fmt.Sprintf(notClockedSQL, "c.merchant_id") + `
		ORDER BY c.valid_until, c.id LIMIT $2 FOR UPDATE OF c SKIP LOCKED`
	if err := tx.SelectContext(ctx, &due, q, now, batchMax); err != nil {
		return 0, fmt.Errorf("claim expired coupons: %w", err)
	}
	for i := range due {
		if err := s.expireCoupon(ctx, tx, due[i], now); err != nil {
			return 0, err
		}
	}
	return len(due), nil
}

func (s *Service) expireCoupon(ctx context.Context, tx *sqlx.Tx, c Coupon, now time.Time) error {
	if err := c.decodeRules(); err != nil {
		return err
	}
	currency, err := money.ParseCurrency(c.Currency)
	if err != nil {
		return fmt.Errorf("coupon currency: %w", err)
	}
	// A coupon of several uses recognised part of its value already.
	var recognised int64
	if err := tx.GetContext(ctx, &recognised, `SELECT COALESCE(sum(value_minor), 0) FROM redemptions WHERE coupon_id = $1`, c.ID); err != nil {
		return fmt.Errorf("recognised value: %w", err)
	}
	breakage := c.ValueMinor - recognised
	if breakage > 0 {
		_, err := s.ledger.Post(ctx, tx, ledger.Transaction{
			Key:         "coupon:" + c.ID + ":expire",
			Description: "breakage of expired coupon " + c.Code,
			Postings: []ledger.Posting{
				ledger.Debit(ledger.MerchantDeferred(c.MerchantID), currency, breakage),
				ledger.Credit(ledger.MerchantBreakage(c.MerchantID), currency, breakage),
			},
		})
		if err != nil {
			return fmt.Errorf("book breakage: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE coupons SET status = 'expired', closed_at = $2 WHERE id = $1`, c.ID, now); err != nil {
		return fmt.Errorf("expire coupon: %w", err)
	}
	amount := webhookAmount(money.New(breakage, currency))
	return s.enqueueCouponEvent(ctx, tx, c, "expired", now, func(d *webhooks.CouponData, loc *time.Location) {
		expiredAt := c.ValidUntil.Time
		d.ExpiredAt = &expiredAt
		d.Breakage = &amount
		d.Message = fmt.Sprintf("Your %s coupon %s expired on %s", c.Title, c.Code, expiredAt.In(loc).Format("2 Jan 2006"))
	})
}
