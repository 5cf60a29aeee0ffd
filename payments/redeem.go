package payments

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HOTP (RFC 4226) is defined over HMAC-SHA1, which stays sound as a MAC
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/webhooks"
)

// Redemption tokens make a screenshot of the coupon useless after a minute
// or so: the coupon page's script (web/static/coupon.js) draws a QR whose
// content carries a token derived from the coupon's secret and the current
// 30-second step (TOTP, RFC 6238, over HOTP, RFC 4226, with HMAC-SHA1) on the
// phone, with no connection needed, and the till accepts the current step
// and one step either side for clock skew and scanning time.
const (
	// RedemptionTokenStep is the lifetime of one token step; the coupon
	// page's script draws a new QR at each step.
	RedemptionTokenStep = 30 * time.Second
	// redemptionTokenSkewSteps is how many steps either side are accepted.
	redemptionTokenSkewSteps = 1
	// RedemptionTokenDigits is the token's length in decimal digits.
	RedemptionTokenDigits = 8
	// RedemptionQRPrefix starts the content of a redemption QR.
	RedemptionQRPrefix = "CP1:"
	// RedeemAtSkewMax bounds how far a till's "at" may be from chatpay's
	// clock: tills with a wrong clock or a short queue of offline scans.
	RedeemAtSkewMax = 15 * time.Minute
	// RedeemLinesMax bounds the basket a till sends.
	RedeemLinesMax = 100
	// redeemCodeLengthMax bounds the code field (a QR's content fits easily).
	redeemCodeLengthMax = 128
)

// Stable problem codes of redemptions, besides catalog's Reason codes.
const (
	CodeCouponNotFound       = "coupon_not_found"
	CodeCouponRefunded       = "coupon_refunded"
	CodeTokenRequired        = "redemption_token_required"
	CodeTokenInvalid         = "redemption_token_invalid"
	CodeTypedCodesNotAllowed = "typed_code_not_allowed"
)

// RedemptionToken is the token of secret for the step that holds now.
func RedemptionToken(secret []byte, now time.Time) string {
	return hotp(secret, uint64(now.Unix())/uint64(RedemptionTokenStep/time.Second))
}

// RedemptionQRContent is what the receipt page encodes in the coupon's QR:
// "CP1:<code>:<token>". It changes every RedemptionTokenStep.
func RedemptionQRContent(c Coupon, now time.Time) string {
	return RedemptionQRPrefix + c.Code + ":" + RedemptionToken(c.Secret, now)
}

// hotp is RFC 4226's HOTP with dynamic truncation to RedemptionTokenDigits.
func hotp(secret []byte, counter uint64) string {
	mac := hmac.New(sha1.New, secret)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	offset := sum[len(sum)-1] & 0x0f
	value := binary.BigEndian.Uint32(sum[offset:offset+4]) & 0x7fffffff
	modulus := uint32(1)
	for range RedemptionTokenDigits {
		modulus *= 10
	}
	return fmt.Sprintf("%0*d", RedemptionTokenDigits, value%modulus)
}

// validRedemptionToken accepts the token of now's step or of one step
// either side, comparing in constant time.
func validRedemptionToken(secret []byte, token string, now time.Time) bool {
	step := int64(RedemptionTokenStep / time.Second)
	counter := now.Unix() / step
	ok := false
	for d := int64(-redemptionTokenSkewSteps); d <= redemptionTokenSkewSteps; d++ {
		want := hotp(secret, uint64(counter+d))
		if subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1 {
			ok = true
		}
	}
	return ok
}

// RedeemRequest is what a till sends to redeem a coupon.
type RedeemRequest struct {
	// Code is the scanned QR content ("CP1:<code>:<token>") or, with Typed,
	// the printed code as the cashier typed it.
	Code string
	// Lines is the basket; empty means the voucher's own item.
	Lines []catalog.Line
	// At is when the redemption happens at the till; zero means now. It may
	// differ from chatpay's clock by RedeemAtSkewMax at most.
	At time.Time
	// Typed says the cashier typed the printed code, which the merchant must
	// allow (Merchant.AllowTypedCodes).
	Typed bool
}

// Redemption is one accepted use of a coupon.
type Redemption struct {
	ID         string
	CouponID   string
	Code       string
	Title      string
	MerchantID string
	UseNo      int
	Value      money.Amount // the deferred revenue recognised
	Fee        money.Amount
	Net        money.Amount
	UsesLeft   int
	Status     string // the coupon's status after this use
	RedeemedAt time.Time
	Typed      bool
}

// Redeem redeems a coupon of merchantID at the till, in tx. It evaluates the
// coupon's snapshotted rules in its snapshotted zone, and on success uses it
// once (status redeemed when no uses are left), records a redemption,
// recognises the revenue (D deferred the value, C available the net, C
// platform fees the fee) and queues coupon.redeemed, all in tx. The coupon
// row is locked first, so concurrent scans of one coupon take turns and a
// single-use coupon is redeemed once.
//
// Refusals are *problem.Error of KindRefused (422) with Code one of
// catalog's Reason codes (already_redeemed, not_yet_valid, expired,
// outside_time_window with extension next_valid_at, category_excluded…),
// coupon_refunded, redemption_token_required, redemption_token_invalid or
// typed_code_not_allowed; coupon_not_found (404); validation_failed for a
// bad request. On a refusal nothing is written.
func (s *Service) Redeem(ctx context.Context, tx *sqlx.Tx, merchantID string, req RedeemRequest) (Redemption, error) {
	now, err := s.nowFor(ctx, tx, merchantID)
	if err != nil {
		return Redemption{}, err
	}
	at, err := redeemTime(req.At, now)
	if err != nil {
		return Redemption{}, err
	}
	code, token, scanned := parseRedemptionCode(req.Code)
	if code == "" || len(req.Code) > redeemCodeLengthMax {
		return Redemption{}, problem.Field("code", "invalid_code", "code is the scanned QR content or the printed coupon code")
	}
	if len(req.Lines) > RedeemLinesMax {
		return Redemption{}, problem.Field("lines", "too_many_lines", "a basket has at most %d lines", RedeemLinesMax)
	}
	if !scanned {
		if !req.Typed {
			return Redemption{}, problem.New(problem.KindRefused, CodeTokenRequired,
				"scan the coupon's QR code on the shopper's screen; a printed code alone is accepted only when typed in")
		}
		merchant, err := s.catalog.Merchant(ctx, merchantID)
		if err != nil {
			return Redemption{}, err
		}
		if !merchant.AllowTypedCodes {
			return Redemption{}, problem.New(problem.KindRefused, CodeTypedCodesNotAllowed,
				"this merchant accepts scanned coupon QR codes only")
		}
	}
	c, err := couponByCodeForUpdate(ctx, tx, merchantID, code)
	if err != nil {
		return Redemption{}, err
	}
	if scanned && !validRedemptionToken(c.Secret, token, now) {
		return Redemption{}, problem.New(problem.KindRefused, CodeTokenInvalid,
			"the coupon's QR code has expired or is not genuine; ask the shopper to open the receipt again")
	}
	if err := c.decodeRules(); err != nil {
		return Redemption{}, err
	}
	if err := redeemableStatus(c); err != nil {
		return Redemption{}, err
	}
	currency, err := money.ParseCurrency(c.Currency)
	if err != nil {
		return Redemption{}, fmt.Errorf("coupon currency: %w", err)
	}
	basket, err := s.redeemBasket(ctx, tx, c, currency, req.Lines)
	if err != nil {
		return Redemption{}, err
	}
	result := catalog.Check(c.Rules, catalog.CouponState{IssuedAt: c.IssuedAt, UsesLeft: c.UsesLeft}, basket, at, c.Location())
	if !result.OK {
		return Redemption{}, refusal(result)
	}
	if basket.Lines[0].Amount.Currency != currency {
		return Redemption{}, problem.New(problem.KindRefused, string(catalog.ReasonCurrencyMismatch),
			"the basket is in %s, the coupon in %s", basket.Lines[0].Amount.Currency.Code(), currency.Code())
	}
	return s.recordRedemption(ctx, tx, c, currency, basket, at, req.Typed && !scanned)
}

func redeemTime(at, now time.Time) (time.Time, error) {
	if at.IsZero() {
		return now, nil
	}
	if d := at.Sub(now); d > RedeemAtSkewMax || d < -RedeemAtSkewMax {
		return time.Time{}, problem.Field("at", "at_out_of_range",
			"at must be within %s of now (%s)", RedeemAtSkewMax, now.Format(time.RFC3339))
	}
	return at.UTC(), nil
}

// parseRedemptionCode splits "CP1:<code>:<token>" (scanned) from a typed code.
func parseRedemptionCode(raw string) (code, token string, scanned bool) {
	raw = strings.TrimSpace(raw)
	if rest, ok := strings.CutPrefix(raw, RedemptionQRPrefix); ok {
		code, token, _ = strings.Cut(rest, ":")
		return NormalizeCouponCode(code), token, true
	}
	return NormalizeCouponCode(raw), "", false
}

func redeemableStatus(c Coupon) error {
	switch c.Status {
	case CouponRefunded:
		return problem.New(problem.KindRefused, CodeCouponRefunded, "this coupon was refunded")
	case CouponExpired:
		return problem.New(problem.KindRefused, string(catalog.ReasonExpired), "this coupon expired")
	case CouponRedeemed:
		return problem.New(problem.KindRefused, string(catalog.ReasonAlreadyRedeemed), "this coupon was already redeemed")
	}
	return nil
}

// refusal turns a rules verdict into the problem the till shows.
func refusal(r catalog.Result) error {
	details := map[catalog.Reason]string{
		catalog.ReasonAlreadyRedeemed:     "this coupon was already redeemed",
		catalog.ReasonNotYetValid:         "this coupon is not valid yet",
		catalog.ReasonExpired:             "this coupon expired",
		catalog.ReasonOutsideTimeWindow:   "this coupon cannot be used at this time of day",
		catalog.ReasonEmptyBasket:         "the basket is empty",
		catalog.ReasonCurrencyMismatch:    "the basket's currencies do not match the coupon",
		catalog.ReasonCategoryExcluded:    "the basket holds a category this coupon excludes",
		catalog.ReasonCategoryNotIncluded: "the basket holds a category this coupon does not cover",
		catalog.ReasonBelowMinSpend:       "the basket is below the coupon's minimum spend",
	}
	detail, ok := details[r.Reason]
	if !ok {
		detail = "the coupon cannot be used"
	}
	p := problem.New(problem.KindRefused, string(r.Reason), "%s", detail)
	if r.NextValidAt != nil {
		p = p.With("next_valid_at", r.NextValidAt.UTC().Format(time.RFC3339))
	}
	if r.ExpiresAt != nil {
		p = p.With("expires_at", r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return p
}

// redeemBasket is the till's basket, or the voucher's own item when empty.
func (s *Service) redeemBasket(ctx context.Context, tx *sqlx.Tx, c Coupon, currency money.Currency, lines []catalog.Line) (catalog.Basket, error) {
	if len(lines) > 0 {
		return catalog.Basket{Lines: lines}, nil
	}
	var own struct {
		SKU      string `db:"sku"`
		Category string `db:"category"`
	}
	const q = `SELECT sku, category FROM order_lines WHERE order_id = $1 AND line_no = $2`
	if err := tx.GetContext(ctx, &own, q, c.OrderID, c.LineNo); err != nil {
		return catalog.Basket{}, fmt.Errorf("coupon item: %w", err)
	}
	return catalog.Basket{Lines: []catalog.Line{{SKU: own.SKU, Category: own.Category, Amount: money.New(c.ValueMinor, currency)}}}, nil
}

// recordRedemption uses the coupon once and books the revenue. A coupon of
// several uses recognises its value in equal shares (money.Allocate), so the
// shares add up to exactly what was paid.
func (s *Service) recordRedemption(ctx context.Context, tx *sqlx.Tx, c Coupon, currency money.Currency, basket catalog.Basket, at time.Time, typed bool) (Redemption, error) {
	now, err := s.nowFor(ctx, tx, c.MerchantID)
	if err != nil {
		return Redemption{}, err
	}
	useNo := c.UsesTotal - c.UsesLeft + 1
	weights := make([]int64, c.UsesTotal)
	for i := range weights {
		weights[i] = 1
	}
	value := money.Allocate(c.ValueMinor, weights)[useNo-1]
	fee, net := s.fee.Split(value)
	r := Redemption{
		ID: ids.New("red"), CouponID: c.ID, Code: c.Code, Title: c.Title, MerchantID: c.MerchantID, UseNo: useNo,
		Value: money.New(value, currency), Fee: money.New(fee, currency), Net: money.New(net, currency),
		UsesLeft: c.UsesLeft - 1, Status: c.Status, RedeemedAt: at, Typed: typed,
	}
	if r.UsesLeft == 0 {
		r.Status = CouponRedeemed
	}
	var ledgerID *int64
	if value > 0 {
		postings := []ledger.Posting{ledger.Debit(ledger.MerchantDeferred(c.MerchantID), currency, value)}
		if net > 0 {
			postings = append(postings, ledger.Credit(ledger.MerchantAvailable(c.MerchantID), currency, net))
		}
		if fee > 0 {
			postings = append(postings, ledger.Credit(ledger.PlatformFees(), currency, fee))
		}
		posted, err := s.ledger.Post(ctx, tx, ledger.Transaction{
			Key:         fmt.Sprintf("coupon:%s:redeem:%d", c.ID, useNo),
			Description: "redemption of coupon " + c.Code,
			Postings:    postings,
		})
		if err != nil {
			return Redemption{}, fmt.Errorf("book redemption: %w", err)
		}
		ledgerID = &posted.ID
	}
	const use = `
		UPDATE coupons SET uses_left = uses_left - 1,
			status = CASE WHEN uses_left = 1 THEN 'redeemed' ELSE status END,
			closed_at = CASE WHEN uses_left = 1 THEN $2 ELSE closed_at END
		WHERE id = $1 AND uses_left > 0`
	if _, err := tx.ExecContext(ctx, use, c.ID, now); err != nil {
		return Redemption{}, fmt.Errorf("use coupon: %w", err)
	}
	basketJSON, err := json.Marshal(basketRecord(basket))
	if err != nil {
		return Redemption{}, fmt.Errorf("encode basket: %w", err)
	}
	const insert = `
		INSERT INTO redemptions (id, coupon_id, merchant_id, use_no, value_minor, fee_minor, net_minor, currency,
			basket, typed, redeemed_at, ledger_transaction_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	if _, err := tx.ExecContext(ctx, insert, r.ID, c.ID, c.MerchantID, useNo, value, fee, net, currency.Code(),
		basketJSON, typed, at, ledgerID, now); err != nil {
		return Redemption{}, fmt.Errorf("record redemption: %w", err)
	}
	if err := s.enqueueCouponEvent(ctx, tx, c, "redeemed", now, func(d *webhooks.CouponData, loc *time.Location) {
		d.RedeemedAt = &at
		d.Message = fmt.Sprintf("Redeemed: %s at %s", c.Title, at.In(loc).Format("15:04, 2 Jan 2006"))
	}); err != nil {
		return Redemption{}, err
	}
	return r, nil
}

type basketLineRecord struct {
	SKU      string       `json:"sku"`
	Category string       `json:"category"`
	Amount   money.Amount `json:"amount"`
}

func basketRecord(b catalog.Basket) []basketLineRecord {
	out := make([]basketLineRecord, len(b.Lines))
	for i, l := range b.Lines {
		out[i] = basketLineRecord{SKU: l.SKU, Category: l.Category, Amount: l.Amount}
	}
	return out
}

// enqueueCouponEvent queues coupon.redeemed or coupon.expired for the
// conversation the coupon was bought in.
func (s *Service) enqueueCouponEvent(ctx context.Context, tx *sqlx.Tx, c Coupon, status string, now time.Time, fill func(*webhooks.CouponData, *time.Location)) error {
	var chat webhooks.Chat
	const q = `SELECT s.channel_id, s.external_user_id, o.chat_id FROM orders o JOIN shoppers s ON s.id = o.shopper_id WHERE o.id = $1`
	if err := tx.QueryRowxContext(ctx, q, c.OrderID).Scan(&chat.ChannelID, &chat.ExternalUserID, &chat.ChatID); err != nil {
		return fmt.Errorf("coupon conversation: %w", err)
	}
	// No redeem_url: the link of coupon.issued stays the coupon's link, and
	// its token is not kept in clear anywhere to send again.
	data := webhooks.CouponData{ChatData: webhooks.ChatData{Chat: chat}, Coupon: c.webhook(status, "")}
	fill(&data, c.Location())
	var event webhooks.Event
	switch status {
	case "redeemed":
		event = webhooks.CouponRedeemed(now, data)
	case "expired":
		event = webhooks.CouponExpired(now, data)
	default:
		return fmt.Errorf("coupon event %q", status)
	}
	if err := s.outbox.Enqueue(ctx, tx, event); err != nil {
		return fmt.Errorf("enqueue coupon.%s: %w", status, err)
	}
	return nil
}
