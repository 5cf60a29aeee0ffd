package payments

import (
	"context"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/qr"
)

// The one purchase path. The shopper pages ("Buy now" on a scanned code),
// the channel API (a one-call purchase, or confirming a bot's checkout) and
// `chatpay bench` all pay through Buy, so a rule added to a purchase is added
// for every caller and the bench measures what shoppers run
// (purchase_path_test.go checks it).

// Purchase says who pays and for what: exactly one of Code, ItemID and
// CheckoutID.
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
	// ItemID buys the item in one call, as an item's code does.
	ItemID string
	// Quantity is how many units an item code or ItemID buys; 0 means 1.
	// A till code or a checkout has its own lines and takes none.
	Quantity int
}

// Buy pays for p in tx, the transaction that claims the caller's
// Idempotency-Key, so a double tap or a retry pays once. It returns
// validation_failed for a purchase naming no or several targets or a bad
// quantity, the qr errors of a scanned code (qr_not_found, qr_revoked,
// qr_expired, qr_used), unknown_item, and confirm's (already_paid,
// checkout_expired, checkout_canceled, item_unavailable, sold_out,
// purchase_limit_reached, insufficient_funds); on any of them nothing is
// written.
func (s *Service) Buy(ctx context.Context, tx *sqlx.Tx, p Purchase) (Receipt, error) {
	named := 0
	for _, v := range []string{p.Code, p.ItemID, p.CheckoutID} {
		if v != "" {
			named++
		}
	}
	if named != 1 {
		return Receipt{}, problem.Field("item_id", "one_target", "a purchase names exactly one of an item, a code or a checkout")
	}
	if p.Quantity < 0 || p.Quantity > LineQuantityMax {
		return Receipt{}, problem.Field("quantity", "invalid_quantity", "quantity must be 1 to %d", LineQuantityMax)
	}
	switch {
	case p.ItemID != "":
		return s.buyNow(ctx, tx, p, p.ItemID, "")
	case p.Code != "":
		return s.buyFromCode(ctx, tx, p)
	}
	if p.Quantity != 0 {
		return Receipt{}, quantityNotApplicable()
	}
	return s.confirm(ctx, tx, p.CheckoutID, p.Shopper)
}

func quantityNotApplicable() error {
	return problem.Field("quantity", "quantity_not_applicable", "a checkout or a till's payment code has its own lines; leave quantity out")
}

// buyFromCode resolves a scanned code inside tx and pays in the same call:
// an item's code through buyNow (no checkout row), a till's code through
// the checkout it is bound to. A retry of a purchase that
// used the code up (or ran after the merchant revoked it) must get the
// caller's stored receipt, which it does because the key is claimed first.
func (s *Service) buyFromCode(ctx context.Context, tx *sqlx.Tx, p Purchase) (Receipt, error) {
	code, err := s.qr.Resolve(ctx, tx, p.Code)
	if err != nil {
		return Receipt{}, err
	}
	if code.TargetType == qr.TargetCheckout {
		if p.Quantity != 0 {
			return Receipt{}, quantityNotApplicable()
		}
		return s.payTillCheckout(ctx, tx, code.Token, p.Shopper, p.ChatID)
	}
	return s.buyNow(ctx, tx, p, code.TargetID, code.ID)
}

// itemReader reads an item for sale with its merchant: from the catalog's
// cache (CachedItemForSale) or from the database now (ItemForSale).
type itemReader func(ctx context.Context, q sqlx.ExtContext, itemID string) (catalog.Item, catalog.Merchant, error)

// priceSale prices a purchase with items from the catalog's cache and, if
// that is refused, again with items read now. A sale priced from a stale
// entry cannot commit: purchase_pay refuses it when the merchant's catalog
// version moved, and writeSale forgets the entry so that the retry reads
// afresh. A refusal decided before that write, though (item_unavailable,
// purchase_limit_reached, …), must be the catalog's current word.
func (s *Service) priceSale(price func(read itemReader) (sale, error)) (sale, error) {
	sl, err := price(s.catalog.CachedItemForSale)
	if _, refused := problem.As(err); refused {
		return price(s.catalog.ItemForSale)
	}
	return sl, err
}

// sellable is the one rule of what may be sold, checked when a checkout is
// opened and again when it is paid: an active item of an active merchant.
func sellable(item catalog.Item, m catalog.Merchant) error {
	if !item.Active || m.Status != catalog.MerchantActive {
		return problem.New(problem.KindConflict, CodeItemUnavailable, "%s is no longer sold", item.Title)
	}
	return nil
}
