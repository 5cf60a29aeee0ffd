package webhooks

import (
	"encoding/json"
	"time"
)

// Event is one thing that happened, written to the outbox by Enqueue in the
// caller's transaction.
type Event struct {
	// ID is assigned by Enqueue ("evt_…") when empty.
	ID   string
	Type string
	// CreatedAt defaults to Enqueue's clock; callers pass their transaction's now.
	CreatedAt time.Time
	// Owners receive the event on their enabled endpoints whose filter matches:
	// the merchant and/or the channel of the conversation.
	Owners []Owner
	// OrderingKey groups events that must arrive in commit order at each
	// endpoint: the conversation (channel + chat id). The constructors set it.
	OrderingKey string
	// Data is the event's "data" object; it must encode to a JSON object.
	Data any
	// Test marks an event of a sandbox instance (livemode false).
	Test bool
}

// Envelope is the JSON body of every webhook request.
type Envelope struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// APIVersion names the shape of data, so a receiver can tell a payload
	// of another version from a bug.
	APIVersion string `json:"api_version"`
	// Livemode is false for events of a sandbox (test) instance.
	Livemode  bool            `json:"livemode"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// APIVersion is the version of every payload this build sends; it changes
// only when a field changes meaning or goes away (new fields are additions).
const APIVersion = "2026-12-01"

// Chat is the conversation an event belongs to, so that the messenger backend
// can answer in the right chat.
type Chat struct {
	ChannelID      string `json:"channel_id"`
	ExternalUserID string `json:"external_user_id,omitempty"`
	ChatID         string `json:"chat_id"`
}

// OrderingKey is the conversation: the channel and the chat.
func (c Chat) OrderingKey() string { return "chat:" + c.ChannelID + ":" + c.ChatID }

// Amount is money as the API shows it: a decimal string with its currency.
type Amount struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// OrderLine is one line of an order.
type OrderLine struct {
	ItemID    string `json:"item_id"`
	SKU       string `json:"sku,omitempty"`
	Title     string `json:"title"`
	Quantity  int    `json:"quantity"`
	UnitPrice Amount `json:"unit_price"`
}

// Order is the order part of order events.
type Order struct {
	ID         string      `json:"id"`
	MerchantID string      `json:"merchant_id"`
	Lines      []OrderLine `json:"lines"`
	Total      Amount      `json:"total"`
	PaidAt     time.Time   `json:"paid_at"`
}

// Coupon is the coupon part of coupon events.
type Coupon struct {
	ID         string `json:"id"`
	OrderID    string `json:"order_id"`
	MerchantID string `json:"merchant_id"`
	ShopperID  string `json:"shopper_id"`
	ItemID     string `json:"item_id"`
	Title      string `json:"title"`
	// Code is what a till scans or types; it is shown only to the chat's shopper.
	Code       string     `json:"code"`
	Status     string     `json:"status"` // active, redeemed, expired, refunded: as in the REST API
	ValidFrom  *time.Time `json:"valid_from,omitempty"`
	ValidUntil *time.Time `json:"valid_until,omitempty"`
	// Rules is the plain-words summary the checkout page shows.
	Rules string `json:"rules,omitempty"`
	// RedeemURL opens the coupon with its rotating code for the till.
	RedeemURL string `json:"redeem_url,omitempty"`
}

// ChatData is the part every chat event's data shares: the conversation and a
// short message the bot can post as is.
type ChatData struct {
	Chat    Chat   `json:"chat"`
	Message string `json:"message"`
}

// OrderPaidData is the data of order.paid.
type OrderPaidData struct {
	ChatData
	Order Order `json:"order"`
}

// CouponData is the data of coupon.issued, coupon.redeemed and coupon.expired.
type CouponData struct {
	ChatData
	Coupon     Coupon     `json:"coupon"`
	RedeemedAt *time.Time `json:"redeemed_at,omitempty"`
	ExpiredAt  *time.Time `json:"expired_at,omitempty"`
	// Breakage is the amount moved to the merchant's breakage on expiry.
	Breakage *Amount `json:"breakage,omitempty"`
}

// OrderRefundedData is the data of order.refunded.
type OrderRefundedData struct {
	ChatData
	OrderID    string    `json:"order_id"`
	MerchantID string    `json:"merchant_id"`
	CouponID   string    `json:"coupon_id,omitempty"`
	Refund     Amount    `json:"refund"`
	RefundedAt time.Time `json:"refunded_at"`
}

// WalletToppedUpData is the data of wallet.topped_up.
type WalletToppedUpData struct {
	ChatData
	ShopperID string `json:"shopper_id"`
	TopUpID   string `json:"top_up_id"`
	Amount    Amount `json:"amount"`
	Balance   Amount `json:"balance"`
}

// EndpointDisabledData is the data of endpoint.disabled.
type EndpointDisabledData struct {
	Message      string    `json:"message"`
	EndpointID   string    `json:"endpoint_id"`
	URL          string    `json:"url"`
	Reason       string    `json:"reason"`
	FailingSince time.Time `json:"failing_since"`
}

// TestPingData is the data of test.ping.
type TestPingData struct {
	Message    string `json:"message"`
	EndpointID string `json:"endpoint_id"`
}

// chatOwners is the usual audience of a chat event: the channel that carries
// the conversation and the merchant it is about.
func chatOwners(chat Chat, merchantID string) []Owner {
	var owners []Owner
	if chat.ChannelID != "" {
		owners = append(owners, Owner{Kind: OwnerChannel, ID: chat.ChannelID})
	}
	if merchantID != "" {
		owners = append(owners, Owner{Kind: OwnerMerchant, ID: merchantID})
	}
	return owners
}

// OrderPaid builds an order.paid event for the channel and the merchant.
func OrderPaid(now time.Time, d OrderPaidData) Event {
	return Event{Type: TypeOrderPaid, CreatedAt: now, Owners: chatOwners(d.Chat, d.Order.MerchantID), OrderingKey: d.Chat.OrderingKey(), Data: d}
}

// CouponIssued builds a coupon.issued event.
func CouponIssued(now time.Time, d CouponData) Event {
	return Event{Type: TypeCouponIssued, CreatedAt: now, Owners: chatOwners(d.Chat, d.Coupon.MerchantID), OrderingKey: d.Chat.OrderingKey(), Data: d}
}

// CouponRedeemed builds a coupon.redeemed event.
func CouponRedeemed(now time.Time, d CouponData) Event {
	return Event{Type: TypeCouponRedeemed, CreatedAt: now, Owners: chatOwners(d.Chat, d.Coupon.MerchantID), OrderingKey: d.Chat.OrderingKey(), Data: d}
}

// CouponExpired builds a coupon.expired event.
func CouponExpired(now time.Time, d CouponData) Event {
	return Event{Type: TypeCouponExpired, CreatedAt: now, Owners: chatOwners(d.Chat, d.Coupon.MerchantID), OrderingKey: d.Chat.OrderingKey(), Data: d}
}

// OrderRefunded builds an order.refunded event.
func OrderRefunded(now time.Time, d OrderRefundedData) Event {
	return Event{Type: TypeOrderRefunded, CreatedAt: now, Owners: chatOwners(d.Chat, d.MerchantID), OrderingKey: d.Chat.OrderingKey(), Data: d}
}

// WalletToppedUp builds a wallet.topped_up event; it goes to the channel only,
// as no merchant is involved.
func WalletToppedUp(now time.Time, d WalletToppedUpData) Event {
	return Event{Type: TypeWalletToppedUp, CreatedAt: now, Owners: chatOwners(d.Chat, ""), OrderingKey: d.Chat.OrderingKey(), Data: d}
}
