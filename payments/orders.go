package payments

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
)

// Order statuses.
const (
	OrderPaid              = "paid"
	OrderPartiallyRefunded = "partially_refunded"
	OrderRefunded          = "refunded"
)

// Order is a paid purchase.
type Order struct {
	ID string `db:"id"`
	// CheckoutID is the checkout the order paid; "" for a one-call purchase.
	CheckoutID          string        `db:"checkout_id"`
	MerchantID          string        `db:"merchant_id"`
	ShopperID           string        `db:"shopper_id"`
	ChatID              string        `db:"chat_id"`
	Currency            string        `db:"currency"`
	TotalMinor          int64         `db:"total_minor"`
	RefundedMinor       int64         `db:"refunded_minor"`
	Status              string        `db:"status"`
	LedgerTransactionID sql.NullInt64 `db:"ledger_transaction_id"`
	CreatedAt           time.Time     `db:"created_at"`
	Lines               []OrderLine   `db:"-"`
}

// OrderLine is what was bought, as it was at purchase.
type OrderLine struct {
	LineNo         int    `db:"line_no"`
	ItemID         string `db:"item_id"`
	SKU            string `db:"sku"`
	Title          string `db:"title"`
	Category       string `db:"category"`
	Kind           string `db:"kind"`
	Quantity       int    `db:"quantity"`
	UnitPriceMinor int64  `db:"unit_price_minor"`
}

const orderColumns = `id, COALESCE(checkout_id, '') AS checkout_id, merchant_id, shopper_id, chat_id, currency, total_minor, refunded_minor, status, ledger_transaction_id, created_at`

func loadOrderLines(ctx context.Context, q sqlx.QueryerContext, o *Order) error {
	const lines = `SELECT line_no, item_id, sku, title, category, kind, quantity, unit_price_minor FROM order_lines WHERE order_id = $1 ORDER BY line_no`
	if err := sqlx.SelectContext(ctx, q, &o.Lines, lines, o.ID); err != nil {
		return fmt.Errorf("read order lines: %w", err)
	}
	return nil
}

// MerchantOrder returns one of a merchant's orders, or not_found.
func (s *Service) MerchantOrder(ctx context.Context, merchantID, orderID string) (Order, error) {
	var o Order
	err := s.db.GetContext(ctx, &o, `SELECT `+orderColumns+` FROM orders WHERE id = $1 AND merchant_id = $2`, orderID, merchantID)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, problem.NotFound("order")
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order: %w", err)
	}
	return o, loadOrderLines(ctx, s.db, &o)
}

// ShopperOrder returns one of a shopper's orders, or not_found.
func (s *Service) ShopperOrder(ctx context.Context, shopperID, orderID string) (Order, error) {
	var o Order
	err := s.db.GetContext(ctx, &o, `SELECT `+orderColumns+` FROM orders WHERE id = $1 AND shopper_id = $2`, orderID, shopperID)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, problem.NotFound("order")
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order: %w", err)
	}
	return o, loadOrderLines(ctx, s.db, &o)
}

// OrderPage is one page of a merchant's orders, newest first.
type OrderPage struct {
	Orders     []Order
	NextCursor string
}

type orderCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"i"`
}

// MerchantOrders lists a merchant's orders newest first with an opaque cursor.
func (s *Service) MerchantOrders(ctx context.Context, merchantID, cursor string, limit int) (OrderPage, error) {
	if limit <= 0 {
		limit = ListPageSizeDefault
	}
	if limit > ListPageSizeMax {
		return OrderPage{}, problem.Field("limit", "invalid_limit", "limit must be 1 to %d", ListPageSizeMax)
	}
	after := orderCursor{CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: "~"}
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || json.Unmarshal(raw, &after) != nil {
			return OrderPage{}, problem.Field("cursor", "invalid_cursor", "the cursor is not one this API returned")
		}
	}
	var orders []Order
	const list = `SELECT ` + orderColumns + ` FROM orders
		WHERE merchant_id = $1 AND (created_at, id) < ($2, $3)
		ORDER BY created_at DESC, id DESC LIMIT $4`
	if err := s.db.SelectContext(ctx, &orders, list, merchantID, after.CreatedAt, after.ID, limit+1); err != nil {
		return OrderPage{}, fmt.Errorf("list orders: %w", err)
	}
	page := OrderPage{Orders: orders}
	if len(orders) > limit {
		page.Orders = orders[:limit]
		last := page.Orders[limit-1]
		raw, _ := json.Marshal(orderCursor{CreatedAt: last.CreatedAt, ID: last.ID})
		page.NextCursor = base64.RawURLEncoding.EncodeToString(raw)
	}
	for i := range page.Orders {
		if err := loadOrderLines(ctx, s.db, &page.Orders[i]); err != nil {
			return OrderPage{}, err
		}
	}
	return page, nil
}

// Receipt is the answer to a confirmation: what was paid, the coupons, and
// what a bot needs to reply without a second call.
type Receipt struct {
	Order   Order
	Coupons []Coupon
	Wallet  money.Amount
	// Remaining is how many more units the shopper may buy, per limited item.
	Remaining map[string]int
}

// WalletBalance returns a shopper's wallet balance in currency.
func (s *Service) WalletBalance(ctx context.Context, shopperID string, currency money.Currency) (money.Amount, error) {
	balance, err := s.ledger.Balance(ctx, s.db, ledger.ShopperWallet(shopperID), currency)
	if err != nil {
		return money.Amount{}, err
	}
	return money.New(balance, currency), nil
}

// withTx is database.WithTx with default options.
func withTx(ctx context.Context, db *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	return database.WithTx(ctx, db, nil, fn)
}
