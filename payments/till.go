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
	"github.com/chatpay/chatpay/qr"
)

// A till checkout is what a point of sale shows as a dynamic QR code: the
// merchant rings up the lines, the code is bound to that amount, expires in
// minutes, and the first shopper who scans it and taps "Buy now" pays it.
// Until then the checkout has no shopper. Nothing is reserved: the goods are
// on the counter.

// TillCheckout is a till checkout with the code to show.
type TillCheckout struct {
	Checkout Checkout
	Code     qr.Code
}

// CreateTillCheckout opens a checkout for the merchant's own items and its
// one-time QR code. It returns validation_failed (a line names another
// merchant's item as unknown_item), item_unavailable or currency_mismatch.
func (s *Service) CreateTillCheckout(ctx context.Context, tx *sqlx.Tx, merchantID string, lines []LineRequest, ttl time.Duration) (TillCheckout, error) {
	priced, merchant, err := s.priceLines(ctx, tx, lines, s.catalog.ItemForSale)
	if err != nil {
		return TillCheckout{}, err
	}
	if merchant.ID != merchantID {
		return TillCheckout{}, problem.Field("lines[0].item_id", "unknown_item", "no item %q", lines[0].ItemID)
	}
	if ttl <= 0 {
		ttl = qr.DynamicTTLDefault
	}
	now, err := s.nowFor(ctx, tx, merchantID)
	if err != nil {
		return TillCheckout{}, err
	}
	co := Checkout{
		ID: ids.New("chk"), MerchantID: merchantID, Status: StatusOpen,
		Currency: priced[0].item.Price.Currency.Code(), CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	for _, l := range priced {
		co.TotalMinor += l.UnitPriceMinor * int64(l.Quantity)
		co.Lines = append(co.Lines, l.CheckoutLine)
	}
	code, err := s.qr.CreateDynamic(ctx, tx, merchantID, co.ID, money.New(co.TotalMinor, priced[0].item.Price.Currency), ttl)
	if err != nil {
		return TillCheckout{}, err
	}
	co.QRID.String, co.QRID.Valid = code.ID, true
	const insert = `
		INSERT INTO checkouts (id, merchant_id, shopper_id, chat_id, qr_id, status, reserved, currency, total_minor, created_at, expires_at)
		VALUES ($1, $2, NULL, NULL, $3, 'open', false, $4, $5, $6, $7)`
	if _, err := tx.ExecContext(ctx, insert, co.ID, co.MerchantID, code.ID, co.Currency, co.TotalMinor, co.CreatedAt, co.ExpiresAt); err != nil {
		return TillCheckout{}, fmt.Errorf("insert till checkout: %w", err)
	}
	if err := s.insertCheckoutLines(ctx, tx, co); err != nil {
		return TillCheckout{}, err
	}
	return TillCheckout{Checkout: co, Code: code}, nil
}

// payTillCheckout pays the till checkout behind a dynamic QR token for the
// shopper who scanned it: the code is consumed, the checkout becomes the
// shopper's and is confirmed, all in tx, so a refusal (insufficient funds)
// leaves the code usable. It returns the qr errors (qr_used, qr_expired,
// qr_revoked, qr_not_found) and confirm's. Buy is its one caller.
func (s *Service) payTillCheckout(ctx context.Context, tx *sqlx.Tx, token string, shopper Shopper, chatID string) (Receipt, error) {
	code, err := s.qr.Consume(ctx, tx, token)
	if err != nil {
		return Receipt{}, err
	}
	if code.TargetType != qr.TargetCheckout {
		return Receipt{}, problem.New(problem.KindConflict, qr.CodeNotConsumable, "this code is not a payment code")
	}
	const claim = `
		UPDATE checkouts SET shopper_id = $2, chat_id = $3
		WHERE id = $1 AND shopper_id IS NULL AND status = 'open' AND total_minor = $4
		RETURNING id`
	var claimed string
	err = tx.GetContext(ctx, &claimed, claim, code.TargetID, shopper.ID, chatID, code.Amount.Minor)
	if errors.Is(err, sql.ErrNoRows) {
		// The code was unused, but its checkout closed meanwhile (the expiry
		// job runs on its own clock reading).
		return Receipt{}, problem.New(problem.KindConflict, CodeCheckoutExpired, "this payment code has expired; ask for a new one")
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("claim till checkout %s for code %s: %w", code.TargetID, code.ID, err)
	}
	return s.confirm(ctx, tx, claimed, shopper)
}

// TillCheckoutForCode returns the checkout behind a dynamic code, for the
// page that shows the shopper what they are about to pay.
func (s *Service) TillCheckoutForCode(ctx context.Context, code qr.Code) (Checkout, error) {
	if code.TargetType != qr.TargetCheckout {
		return Checkout{}, problem.NotFound("checkout")
	}
	return s.readCheckout(ctx, s.db, `id = $1 AND merchant_id = $2`, code.TargetID, code.MerchantID)
}
