package payments

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/webhooks"
)

// Coupon statuses.
const (
	CouponActive   = "active"
	CouponRedeemed = "redeemed"
	CouponExpired  = "expired"
	CouponRefunded = "refunded"
)

// Coupon is one issued voucher with its rules snapshotted at purchase.
type Coupon struct {
	ID         string        `db:"id"`
	OrderID    string        `db:"order_id"`
	LineNo     int           `db:"line_no"`
	MerchantID string        `db:"merchant_id"`
	ShopperID  string        `db:"shopper_id"`
	ItemID     string        `db:"item_id"`
	Code       string        `db:"code"`
	Secret     []byte        `db:"secret"`
	RulesJSON  []byte        `db:"rules"`
	TimeZone   string        `db:"time_zone"`
	ValueMinor int64         `db:"value_minor"`
	Currency   string        `db:"currency"`
	IssuedAt   time.Time     `db:"issued_at"`
	ValidUntil sql.NullTime  `db:"valid_until"`
	UsesTotal  int           `db:"uses_total"`
	UsesLeft   int           `db:"uses_left"`
	Status     string        `db:"status"`
	ClosedAt   sql.NullTime  `db:"closed_at"`
	Title      string        `db:"title"`
	RulesText  string        `db:"-"`
	Rules      catalog.Rules `db:"-"`
	// LinkToken is the token of the chat's coupon link, known only to the
	// purchase that issued the coupon (coupon_credentials.go).
	LinkToken string `db:"-"`
}

// couponAlphabet is Crockford's base32: no I, L, O, U, so codes survive
// being read aloud or typed from a screenshot.
const couponAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func newCouponCode() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	var out strings.Builder
	for i, v := range b {
		if i > 0 && i%4 == 0 {
			out.WriteByte('-')
		}
		out.WriteByte(couponAlphabet[int(v)%len(couponAlphabet)]) // 256 is a multiple of 32: no bias
	}
	return out.String()
}

// NormalizeCouponCode accepts what a cashier types: any case, spaces or
// dashes anywhere, and the letters people confuse with digits.
func NormalizeCouponCode(typed string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch r {
		case ' ', '-', '\t':
			continue
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		b.WriteRune(r)
	}
	s := b.String()
	if len(s) != 12 {
		return s
	}
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12]
}

// newCoupons makes one coupon per voucher unit of lines, each with the
// template's rules as they are now, validity counted from the purchase, a
// code, a secret and the token of its chat link; pay writes them.
func newCoupons(order Order, lines []saleLine, merchant catalog.Merchant) ([]Coupon, error) {
	var coupons []Coupon
	loc := merchant.Location()
	for _, l := range lines {
		if l.item.Kind != catalog.KindVoucher || l.item.Rules == nil {
			continue
		}
		rules := *l.item.Rules
		rulesJSON, err := json.Marshal(rules)
		if err != nil {
			return nil, fmt.Errorf("snapshot rules: %w", err)
		}
		issuedAt := order.CreatedAt
		for range l.Quantity {
			c := Coupon{
				ID: ids.New("cpn"), OrderID: order.ID, LineNo: l.LineNo, MerchantID: order.MerchantID,
				ShopperID: order.ShopperID, ItemID: l.ItemID, Code: newCouponCode(), RulesJSON: rulesJSON, Rules: rules,
				TimeZone: merchant.TimeZone, ValueMinor: l.UnitPriceMinor, Currency: order.Currency, IssuedAt: issuedAt,
				UsesTotal: rules.Uses(), UsesLeft: rules.Uses(), Status: CouponActive, Title: l.item.Title,
				RulesText: catalog.RenderRules(rules, "en", loc, &issuedAt), LinkToken: newCouponToken(),
			}
			if until := rules.ExpiresAt(issuedAt, loc); until != nil {
				c.ValidUntil = sql.NullTime{Time: until.UTC(), Valid: true}
			}
			c.Secret = make([]byte, 20)
			_, _ = rand.Read(c.Secret)
			coupons = append(coupons, c)
		}
	}
	return coupons, nil
}

const couponColumns = `c.id, c.order_id, c.line_no, c.merchant_id, c.shopper_id, c.item_id, c.code, c.secret, c.rules, c.time_zone,
	c.value_minor, c.currency, c.issued_at, c.valid_until, c.uses_total, c.uses_left, c.status, c.closed_at, l.title`

const couponFrom = ` FROM coupons c JOIN order_lines l ON l.order_id = c.order_id AND l.line_no = c.line_no`

// decodeRules restores the snapshotted rules and their plain-words text.
func (c *Coupon) decodeRules() error {
	if err := json.Unmarshal(c.RulesJSON, &c.Rules); err != nil {
		return fmt.Errorf("coupon %s rules: %w", c.ID, err)
	}
	issued := c.IssuedAt
	c.RulesText = catalog.RenderRules(c.Rules, "en", c.Location(), &issued)
	return nil
}

// Location is the zone the coupon's windows are in (the merchant's at purchase).
func (c Coupon) Location() *time.Location {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return time.UTC // zones were validated when the merchant set them
	}
	return loc
}

// ShopperCoupons lists a shopper's coupons, newest first (at most limit).
func (s *Service) ShopperCoupons(ctx context.Context, shopperID string, limit int) ([]Coupon, error) {
	if limit <= 0 || limit > ListPageSizeMax {
		limit = ListPageSizeMax
	}
	var coupons []Coupon
	q := `SELECT ` + couponColumns + couponFrom + ` WHERE c.shopper_id = $1 ORDER BY c.issued_at DESC, c.id DESC LIMIT $2`
	if err := s.db.SelectContext(ctx, &coupons, q, shopperID, limit); err != nil {
		return nil, fmt.Errorf("list coupons: %w", err)
	}
	for i := range coupons {
		if err := coupons[i].decodeRules(); err != nil {
			return nil, err
		}
	}
	return coupons, nil
}

// OrderCoupons returns the coupons an order issued.
func (s *Service) OrderCoupons(ctx context.Context, orderID string) ([]Coupon, error) {
	var coupons []Coupon
	q := `SELECT ` + couponColumns + couponFrom + ` WHERE c.order_id = $1 ORDER BY c.line_no, c.id`
	if err := s.db.SelectContext(ctx, &coupons, q, orderID); err != nil {
		return nil, fmt.Errorf("list order coupons: %w", err)
	}
	for i := range coupons {
		if err := coupons[i].decodeRules(); err != nil {
			return nil, err
		}
	}
	return coupons, nil
}

// couponByCode finds a merchant's coupon by its printed code, locked for update.
func couponByCodeForUpdate(ctx context.Context, tx *sqlx.Tx, merchantID, code string) (Coupon, error) {
	var c Coupon
	q := `SELECT ` + couponColumns + couponFrom + ` WHERE c.code = $1 AND c.merchant_id = $2 FOR UPDATE OF c`
	err := tx.GetContext(ctx, &c, q, code, merchantID)
	if errors.Is(err, sql.ErrNoRows) {
		return Coupon{}, problem.New(problem.KindNotFound, "coupon_not_found", "no coupon with this code at this merchant")
	}
	if err != nil {
		return Coupon{}, fmt.Errorf("find coupon: %w", err)
	}
	return c, nil
}

// webhook is the coupon as events show it, in the REST API's vocabulary
// (status active, redeemed, expired, refunded) with where to open it.
func (c Coupon) webhook(status, redeemURL string) webhooks.Coupon {
	validFrom := c.IssuedAt.UTC()
	if c.Rules.ValidFrom != nil && c.Rules.ValidFrom.After(validFrom) {
		validFrom = c.Rules.ValidFrom.UTC()
	}
	w := webhooks.Coupon{
		ID: c.ID, OrderID: c.OrderID, MerchantID: c.MerchantID, ShopperID: c.ShopperID, ItemID: c.ItemID,
		Title: c.Title, Code: c.Code, Status: status, Rules: c.RulesText, ValidFrom: &validFrom, RedeemURL: redeemURL,
	}
	if c.ValidUntil.Valid {
		until := c.ValidUntil.Time
		w.ValidUntil = &until
	}
	return w
}
