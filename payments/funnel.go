package payments

import (
	"context"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/qr"
)

// Reporting for the merchant dashboard: the numbers behind its charts, read
// from payments' own tables so that no other package queries them.

// Limits of the reports.
const (
	// SalesDaysMax bounds the days of one sales report.
	SalesDaysMax = 366
	// FunnelQRIDsMax matches qr.FunnelCodesMax: one funnel report's codes.
	FunnelQRIDsMax = qr.FunnelCodesMax
)

// CheckoutCounts are the checkouts opened from one QR code and how many of
// them were paid; a one-call purchase from the code counts as a checkout
// opened and paid.
type CheckoutCounts struct {
	Checkouts int64
	Paid      int64
}

// CheckoutCountsByQR counts, for each of the merchant's codes in qrIDs, the
// checkouts opened from it and how many of those were paid; the dashboard
// joins them with qr's scan counts. Codes without checkouts are left out of
// the map. It returns a validation problem when qrIDs has more than
// FunnelQRIDsMax ids.
func (s *Service) CheckoutCountsByQR(ctx context.Context, merchantID string, qrIDs []string) (map[string]CheckoutCounts, error) {
	if len(qrIDs) > FunnelQRIDsMax {
		return nil, problem.Field("qr_ids", "too_many", "at most %d codes per report", FunnelQRIDsMax)
	}
	counts := map[string]CheckoutCounts{}
	if len(qrIDs) == 0 {
		return counts, nil
	}
	const q = `
		SELECT qr_id, count(*) AS checkouts, count(*) FILTER (WHERE paid) AS paid
		FROM (SELECT qr_id, status = 'paid' AS paid FROM checkouts WHERE merchant_id = $1 AND qr_id = ANY($2)
		      UNION ALL
		      SELECT qr_id, true FROM orders WHERE merchant_id = $1 AND qr_id = ANY($2)) opened
		GROUP BY qr_id`
	var rows []struct {
		QRID      string `db:"qr_id"`
		Checkouts int64  `db:"checkouts"`
		Paid      int64  `db:"paid"`
	}
	if err := s.db.SelectContext(ctx, &rows, q, merchantID, pq.Array(qrIDs)); err != nil {
		return nil, fmt.Errorf("count checkouts per qr code: %w", err)
	}
	for _, r := range rows {
		counts[r.QRID] = CheckoutCounts{Checkouts: r.Checkouts, Paid: r.Paid}
	}
	return counts, nil
}

// UnitsSold counts the units of an item that orders hold.
func (s *Service) UnitsSold(ctx context.Context, itemID string) (int64, error) {
	var sold int64
	const q = `SELECT COALESCE(sum(quantity), 0) FROM order_lines WHERE item_id = $1`
	if err := s.db.GetContext(ctx, &sold, q, itemID); err != nil {
		return 0, fmt.Errorf("count units sold: %w", err)
	}
	return sold, nil
}

// DaySales is one local day of a merchant's sales in one currency.
type DaySales struct {
	Day     time.Time // midnight of the day in the merchant's zone
	Orders  int64
	Revenue money.Amount
}

// SalesByDay returns the merchant's paid orders and their total per local
// day in loc, for the days days ending with the day of until (inclusive),
// in currency. Every day is present, with zeros where nothing sold, oldest
// first. It returns a validation problem for days outside 1..SalesDaysMax.
func (s *Service) SalesByDay(ctx context.Context, merchantID string, currency money.Currency, loc *time.Location, until time.Time, days int) ([]DaySales, error) {
	if days < 1 || days > SalesDaysMax {
		return nil, problem.Field("days", "out_of_range", "days must be 1 to %d", SalesDaysMax)
	}
	if loc == nil {
		loc = time.UTC
	}
	local := until.In(loc)
	last := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	first := last.AddDate(0, 0, -(days - 1))
	end := last.AddDate(0, 0, 1)
	// Days are cut in the merchant's zone by PostgreSQL, which knows the
	// same IANA rules, so a sale at 23:30 local counts for that local day.
	const q = `
		SELECT to_char(created_at AT TIME ZONE $2, 'YYYY-MM-DD') AS day, count(*) AS orders, coalesce(sum(total_minor), 0) AS revenue
		FROM orders
		WHERE merchant_id = $1 AND currency = $3 AND created_at >= $4 AND created_at < $5
		GROUP BY 1`
	var rows []struct {
		Day     string `db:"day"`
		Orders  int64  `db:"orders"`
		Revenue int64  `db:"revenue"`
	}
	if err := s.db.SelectContext(ctx, &rows, q, merchantID, loc.String(), currency.Code(), first.UTC(), end.UTC()); err != nil {
		return nil, fmt.Errorf("sales by day: %w", err)
	}
	byDay := make(map[string]DaySales, len(rows))
	for _, r := range rows {
		byDay[r.Day] = DaySales{Orders: r.Orders, Revenue: money.New(r.Revenue, currency)}
	}
	out := make([]DaySales, 0, days)
	for day := first; day.Before(end); day = day.AddDate(0, 0, 1) {
		d := byDay[day.Format(time.DateOnly)]
		d.Day = day
		if d.Revenue.Currency.IsZero() {
			d.Revenue = money.New(0, currency)
		}
		out = append(out, d)
	}
	return out, nil
}

// CouponCounts are a merchant's coupons by what became of them.
type CouponCounts struct {
	Issued   int64
	Active   int64
	Redeemed int64 // used at least once
	Expired  int64
	Refunded int64
}

// CouponFunnel counts the merchant's coupons: issued, redeemed, expired.
func (s *Service) CouponFunnel(ctx context.Context, merchantID string) (CouponCounts, error) {
	const q = `
		SELECT count(*) AS issued,
			count(*) FILTER (WHERE status = 'active') AS active,
			count(*) FILTER (WHERE status = 'redeemed' OR uses_left < uses_total) AS redeemed,
			count(*) FILTER (WHERE status = 'expired') AS expired,
			count(*) FILTER (WHERE status = 'refunded') AS refunded
		FROM coupons WHERE merchant_id = $1`
	var c CouponCounts
	row := s.db.QueryRowxContext(ctx, q, merchantID)
	if err := row.Scan(&c.Issued, &c.Active, &c.Redeemed, &c.Expired, &c.Refunded); err != nil {
		return CouponCounts{}, fmt.Errorf("coupon funnel: %w", err)
	}
	return c, nil
}

// RecognisedRevenue is the merchant's revenue that has been earned in
// currency: product sales and the value of redeemed coupons, before fees.
func (s *Service) RecognisedRevenue(ctx context.Context, merchantID string, currency money.Currency) (money.Amount, error) {
	const q = `
		SELECT
			coalesce((SELECT sum(l.unit_price_minor * l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id
				WHERE o.merchant_id = $1 AND o.currency = $2 AND l.kind = 'product'), 0)
			+ coalesce((SELECT sum(value_minor * (uses_total - uses_left) / uses_total) FROM coupons
				WHERE merchant_id = $1 AND currency = $2 AND uses_left < uses_total), 0)`
	var minor int64
	if err := s.db.GetContext(ctx, &minor, q, merchantID, currency.Code()); err != nil {
		return money.Amount{}, fmt.Errorf("recognised revenue: %w", err)
	}
	return money.New(minor, currency), nil
}

// PlatformFee is the share of recognised revenue the platform takes.
func (s *Service) PlatformFee() money.Rate { return s.fee }

// MerchantCoupons lists the merchant's coupons newest first, at most limit
// (1 to ListPageSizeMax); status filters when not empty. Redeemed coupons
// are ordered by when they were used.
func (s *Service) MerchantCoupons(ctx context.Context, merchantID, status string, limit int) ([]Coupon, error) {
	if limit < 1 || limit > ListPageSizeMax {
		return nil, problem.Field("limit", "invalid_limit", "limit must be 1 to %d", ListPageSizeMax)
	}
	switch status {
	case "", CouponActive, CouponRedeemed, CouponExpired, CouponRefunded:
	default:
		return nil, problem.Field("status", "invalid_status", "status must be active, redeemed, expired or refunded")
	}
	q := `SELECT ` + couponColumns + couponFrom + `
		WHERE c.merchant_id = $1 AND ($2 = '' OR c.status = $2)
		ORDER BY coalesce(c.closed_at, c.issued_at) DESC, c.id DESC LIMIT $3`
	var coupons []Coupon
	if err := s.db.SelectContext(ctx, &coupons, q, merchantID, status, limit); err != nil {
		return nil, fmt.Errorf("list merchant coupons: %w", err)
	}
	for i := range coupons {
		if err := coupons[i].decodeRules(); err != nil {
			return nil, err
		}
	}
	return coupons, nil
}
