package payments

import (
	"time"

	"github.com/chatpay/chatpay/internal/money"
)

// The JSON shapes of the API. Amounts are always {"amount":"3.00","currency":"CNY"}.

type checkoutLineJSON struct {
	ItemID    string       `json:"item_id"`
	Quantity  int          `json:"quantity"`
	UnitPrice money.Amount `json:"unit_price"`
}

type checkoutJSON struct {
	ID         string             `json:"id"`
	MerchantID string             `json:"merchant_id"`
	ShopperID  string             `json:"shopper_id"`
	ChatID     string             `json:"chat_id"`
	Status     string             `json:"status"`
	Reserved   bool               `json:"reserved"`
	Total      money.Amount       `json:"total"`
	Lines      []checkoutLineJSON `json:"lines"`
	OrderID    string             `json:"order_id,omitempty"`
	CreatedAt  time.Time          `json:"created_at"`
	ExpiresAt  time.Time          `json:"expires_at"`
}

func amount(minor int64, code string) money.Amount {
	c, err := money.ParseCurrency(code)
	if err != nil {
		panic("payments: stored currency " + code + " is not valid") // the schema's CHECK keeps this unreachable
	}
	return money.New(minor, c)
}

func toCheckoutJSON(co Checkout) checkoutJSON {
	out := checkoutJSON{
		ID: co.ID, MerchantID: co.MerchantID, ShopperID: co.ShopperID, ChatID: co.ChatID, Status: co.Status,
		Reserved: co.Reserved, Total: amount(co.TotalMinor, co.Currency), OrderID: co.OrderID.String,
		CreatedAt: co.CreatedAt, ExpiresAt: co.ExpiresAt, Lines: []checkoutLineJSON{},
	}
	for _, l := range co.Lines {
		out.Lines = append(out.Lines, checkoutLineJSON{ItemID: l.ItemID, Quantity: l.Quantity, UnitPrice: amount(l.UnitPriceMinor, co.Currency)})
	}
	return out
}

type orderLineJSON struct {
	ItemID    string       `json:"item_id"`
	SKU       string       `json:"sku"`
	Title     string       `json:"title"`
	Category  string       `json:"category"`
	Kind      string       `json:"kind"`
	Quantity  int          `json:"quantity"`
	UnitPrice money.Amount `json:"unit_price"`
}

type orderJSON struct {
	ID         string          `json:"id"`
	CheckoutID *string         `json:"checkout_id"` // null for a one-call purchase
	MerchantID string          `json:"merchant_id"`
	ShopperID  string          `json:"shopper_id"`
	Status     string          `json:"status"`
	Total      money.Amount    `json:"total"`
	Refunded   money.Amount    `json:"refunded"`
	Lines      []orderLineJSON `json:"lines"`
	Coupons    []couponJSON    `json:"coupons,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
}

func toOrderJSON(o Order) orderJSON {
	out := orderJSON{
		ID: o.ID, MerchantID: o.MerchantID, ShopperID: o.ShopperID, Status: o.Status,
		Total: amount(o.TotalMinor, o.Currency), Refunded: amount(o.RefundedMinor, o.Currency),
		CreatedAt: o.CreatedAt, Lines: []orderLineJSON{},
	}
	if o.CheckoutID != "" {
		out.CheckoutID = &o.CheckoutID
	}
	for _, l := range o.Lines {
		out.Lines = append(out.Lines, orderLineJSON{ItemID: l.ItemID, SKU: l.SKU, Title: l.Title, Category: l.Category,
			Kind: l.Kind, Quantity: l.Quantity, UnitPrice: amount(l.UnitPriceMinor, o.Currency)})
	}
	return out
}

type couponJSON struct {
	ID         string       `json:"id"`
	OrderID    string       `json:"order_id"`
	ItemID     string       `json:"item_id"`
	Title      string       `json:"title"`
	Code       string       `json:"code"`
	Status     string       `json:"status"`
	Value      money.Amount `json:"value"`
	UsesLeft   int          `json:"uses_left"`
	IssuedAt   time.Time    `json:"issued_at"`
	ValidUntil *time.Time   `json:"valid_until,omitempty"`
	Rules      string       `json:"rules"`
}

func toCouponJSON(c Coupon) couponJSON {
	out := couponJSON{
		ID: c.ID, OrderID: c.OrderID, ItemID: c.ItemID, Title: c.Title, Code: c.Code, Status: c.Status,
		Value: amount(c.ValueMinor, c.Currency), UsesLeft: c.UsesLeft, IssuedAt: c.IssuedAt, Rules: c.RulesText,
	}
	if c.ValidUntil.Valid {
		t := c.ValidUntil.Time
		out.ValidUntil = &t
	}
	return out
}

type limitJSON struct {
	ItemID    string `json:"item_id"`
	Remaining int    `json:"remaining"`
}

type receiptJSON struct {
	Order   orderJSON    `json:"order"`
	Coupons []couponJSON `json:"coupons"`
	Wallet  money.Amount `json:"wallet_balance"`
	Limits  []limitJSON  `json:"purchase_limits"`
}

func toReceiptJSON(r Receipt) receiptJSON {
	out := receiptJSON{Order: toOrderJSON(r.Order), Wallet: r.Wallet, Coupons: []couponJSON{}, Limits: []limitJSON{}}
	for _, c := range r.Coupons {
		out.Coupons = append(out.Coupons, toCouponJSON(c))
	}
	for _, l := range r.Order.Lines {
		if remaining, ok := r.Remaining[l.ItemID]; ok {
			out.Limits = append(out.Limits, limitJSON{ItemID: l.ItemID, Remaining: remaining})
		}
	}
	return out
}
