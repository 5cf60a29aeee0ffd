package payments

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/qr"
)

// The one purchase path. The shopper pages ("Buy now" on a scanned code),
// the channel API (confirming a bot's checkout) and `chatpay bench` all pay
// through Buy, so a rule added to a purchase is added for every caller and
// the bench measures what shoppers run (purchase_path_test.go checks it).

// Purchase says who pays and for what: exactly one of Code and CheckoutID.
type Purchase struct {
	Shopper Shopper
	// ChatID is the chat the receipt and webhooks go to; empty means the
	// checkout's own chat (or the shopper's private chat).
	ChatID string
	// Code is a scanned QR token: a till's one-time code pays the checkout
	// it is bound to, an item's static code buys one unit of the item.
	Code string
	// CheckoutID is an open checkout of the shopper's (the channel API's
	// two-step checkout: a bot opened it with a reservation).
	CheckoutID string
}

// Buy pays for p in tx, the transaction that claims the caller's
// Idempotency-Key, so a double tap or a retry pays once. It returns the qr
// errors of a scanned code (qr_not_found, qr_revoked, qr_expired, qr_used),
// CreateCheckout's refusals for an item code, and confirm's (already_paid,
// checkout_expired, checkout_canceled, item_unavailable, sold_out,
// purchase_limit_reached, insufficient_funds); on any of them nothing is
// written.
func (s *Service) Buy(ctx context.Context, tx *sqlx.Tx, p Purchase) (Receipt, error) {
	switch {
	case p.Code != "" && p.CheckoutID == "":
		return s.buyFromCode(ctx, tx, p)
	case p.CheckoutID != "" && p.Code == "":
		return s.confirm(ctx, tx, p.CheckoutID, p.Shopper)
	}
	return Receipt{}, fmt.Errorf("payments: a purchase names a code or a checkout, not %q and %q", p.Code, p.CheckoutID)
}

// buyFromCode resolves a scanned code inside tx: a retry of a purchase that
// used the code up (or ran after the merchant revoked it) must get the
// caller's stored receipt, which it does because the key is claimed first.
func (s *Service) buyFromCode(ctx context.Context, tx *sqlx.Tx, p Purchase) (Receipt, error) {
	code, err := s.qr.Resolve(ctx, tx, p.Code)
	if err != nil {
		return Receipt{}, err
	}
	if code.TargetType == qr.TargetCheckout {
		return s.payTillCheckout(ctx, tx, code.Token, p.Shopper, p.ChatID)
	}
	co, err := s.CreateCheckout(ctx, tx, CheckoutRequest{
		Shopper: p.Shopper, ChatID: p.ChatID, QRID: code.ID,
		Lines: []LineRequest{{ItemID: code.TargetID, Quantity: 1}},
	})
	if err != nil {
		return Receipt{}, err
	}
	return s.confirm(ctx, tx, co.ID, p.Shopper)
}

// sellable is the one rule of what may be sold, checked when a checkout is
// opened and again when it is paid: an active item of an active merchant.
func sellable(item catalog.Item, m catalog.Merchant) error {
	if !item.Active || m.Status != catalog.MerchantActive {
		return problem.New(problem.KindConflict, CodeItemUnavailable, "%s is no longer sold", item.Title)
	}
	return nil
}
