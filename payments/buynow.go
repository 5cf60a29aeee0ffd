package payments

import (
	"context"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// buyNow is the one-call purchase: quantity units of one item paid in tx,
// the transaction that claims the caller's Idempotency-Key, with no checkout
// row. A checkout exists to hold stock and a price between two calls; when
// the shopper pays in the call that asks, there is nothing to hold, and the
// checkout, its line, reading them back and marking them paid are four
// writes and two reads the purchase does not need. The guarantees are
// confirm's: the item is read once (with its merchant, from the catalog's
// cache, see priceSale) and must be sellable, reservations count towards
// the per-shopper limit, and pay takes the stock, raises the per-shopper
// count and writes the ledger, order, coupons and events together, in one
// call (purchase_pay). The sale's ledger key is the new order's, so it is
// unique per purchase; a retry finds the caller's stored answer through the
// Idempotency-Key before reaching here.
func (s *Service) buyNow(ctx context.Context, tx *sqlx.Tx, p Purchase, itemID, qrID string) (Receipt, error) {
	sl, err := s.priceSale(func(read itemReader) (sale, error) { return s.buyNowSale(ctx, tx, p, itemID, qrID, read) })
	if err != nil {
		return Receipt{}, err
	}
	return s.pay(ctx, tx, sl)
}

// buyNowSale prices buyNow's sale with items from read and checks it.
func (s *Service) buyNowSale(ctx context.Context, tx *sqlx.Tx, p Purchase, itemID, qrID string, read itemReader) (sale, error) {
	quantity := p.Quantity
	if quantity == 0 {
		quantity = 1
	}
	lines, merchant, err := s.priceLines(ctx, tx, []LineRequest{{ItemID: itemID, Quantity: quantity}}, read)
	if err != nil {
		return sale{}, oneLineFields(err)
	}
	// What the shopper holds in open reservations counts, as when a
	// checkout is opened; pay's count of purchases is the final word.
	if err := s.checkLimits(ctx, tx, p.Shopper.ID, lines); err != nil {
		return sale{}, err
	}
	now, err := s.nowFor(ctx, tx, merchant.ID)
	if err != nil {
		return sale{}, err
	}
	chatID := p.ChatID
	if chatID == "" {
		chatID = p.Shopper.ExternalUserID
	}
	if utf8.RuneCountInString(chatID) > ChatIDLengthMax {
		return sale{}, problem.Field("chat_id", "too_long", "a chat id has at most %d characters", ChatIDLengthMax)
	}
	line := lines[0]
	total := line.UnitPriceMinor * int64(line.Quantity)
	if total > money.MinorMax {
		return sale{}, problem.Field("quantity", "amount_out_of_range", "the total is too large")
	}
	order := Order{
		ID: ids.New("ord"), MerchantID: merchant.ID, ShopperID: p.Shopper.ID, ChatID: chatID,
		Currency: line.item.Price.Currency.Code(), TotalMinor: total, Status: OrderPaid, CreatedAt: now,
	}
	return sale{
		order: order, lines: lines, merchant: merchant, shopper: p.Shopper, takeStock: true, qrID: qrID,
		ledgerKey: "order:" + order.ID + ":pay", ledgerDescription: "sale " + order.ID,
	}, nil
}

// oneLineFields renames priceLines' field errors for a request that names
// one item and a quantity rather than lines.
func oneLineFields(err error) error {
	p, ok := problem.As(err)
	if !ok || len(p.Fields) == 0 {
		return err
	}
	for i, f := range p.Fields {
		switch f.Field {
		case "lines[0].item_id":
			p.Fields[i].Field = "item_id"
		case "lines[0].quantity":
			p.Fields[i].Field = "quantity"
		}
	}
	return p
}
