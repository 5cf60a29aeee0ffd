// Package webhooks tells messenger backends (channels) and merchants what
// happened to their payments. It owns webhook endpoints, the transactional
// outbox (Enqueue writes an event in the caller's transaction, so an event
// exists exactly when the business change committed), the dispatcher that
// delivers events with retries, and signing per the Standard Webhooks
// specification.
//
// The package imports no domain package: owners are plain (kind, id) pairs and
// payloads are the documented shapes in events.go. Fan-out happens at enqueue
// time: Enqueue creates one delivery per enabled endpoint of the event's owners
// whose filter matches, so an endpoint created later never receives older
// events, and the dispatcher only ever reads deliveries.
package webhooks

import (
	"errors"
	"time"
)

// Owner is who an endpoint belongs to and whom an event is for.
type Owner struct {
	Kind string `json:"kind"` // OwnerChannel or OwnerMerchant
	ID   string `json:"id"`
}

// Owner kinds.
const (
	OwnerChannel  = "channel"
	OwnerMerchant = "merchant"
)

func (o Owner) String() string { return o.Kind + ":" + o.ID }

func (o Owner) valid() bool {
	return (o.Kind == OwnerChannel || o.Kind == OwnerMerchant) && o.ID != "" && len(o.ID) <= ownerIDLengthMax
}

// Event types. Every type is documented with an example in docs/webhooks.md.
const (
	TypeOrderPaid        = "order.paid"
	TypeCouponIssued     = "coupon.issued"
	TypeCouponRedeemed   = "coupon.redeemed"
	TypeCouponExpired    = "coupon.expired"
	TypeOrderRefunded    = "order.refunded"
	TypeWalletToppedUp   = "wallet.topped_up"
	TypeEndpointDisabled = "endpoint.disabled"
	TypeTestPing         = "test.ping"
)

// EventTypes lists every type an endpoint filter may name.
var EventTypes = []string{
	TypeOrderPaid, TypeCouponIssued, TypeCouponRedeemed, TypeCouponExpired,
	TypeOrderRefunded, TypeWalletToppedUp, TypeEndpointDisabled, TypeTestPing,
}

func knownType(t string) bool {
	for _, known := range EventTypes {
		if known == t {
			return true
		}
	}
	return false
}

// Limits, units last.
const (
	ownerIDLengthMax       = 64
	ownersPerEventMax      = 4
	orderingKeyLengthMax   = 300
	urlLengthMax           = 2048
	descriptionLengthMax   = 500
	eventTypesPerFilterMax = 32
	// eventBodyBytesMax bounds one event's JSON body; chat payloads are small.
	eventBodyBytesMax = 64 << 10
	// responseExcerptBytesMax bounds the stored start of a receiver's answer.
	responseExcerptBytesMax = 1024
	// responseReadBytesMax bounds how much of an answer is read at all, so a
	// receiver cannot make the dispatcher download without end.
	responseReadBytesMax = 64 << 10
	// secretRandomBytes is the key size of a new secret (192 bits).
	secretRandomBytes = 24
	// SecretGraceDefault keeps the old secret valid after a rotation.
	SecretGraceDefault = 24 * time.Hour
	// secretGraceMax bounds the grace period a caller may ask for.
	secretGraceMax = 7 * 24 * time.Hour
	// pageSizeDefault and pageSizeMax bound list endpoints.
	pageSizeDefault = 20
	pageSizeMax     = 100
	// attemptsShownMax bounds the attempts listed per delivery (newest first).
	attemptsShownMax = 20
	// replayBatchMax bounds how many failed deliveries one "replay since" call
	// resets; the caller repeats it to go further back.
	replayBatchMax = 10000
	// NotifyChannel is the PostgreSQL channel Enqueue notifies at commit.
	NotifyChannel = "chatpay_webhooks"
)

// Errors Verify returns.
var (
	ErrMissingHeaders      = errors.New("webhooks: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrInvalidTimestamp    = errors.New("webhooks: invalid webhook-timestamp header")
	ErrTimestampTooOld     = errors.New("webhooks: timestamp too old")
	ErrTimestampTooNew     = errors.New("webhooks: timestamp too new")
	ErrNoMatchingSignature = errors.New("webhooks: no matching signature")
	ErrInvalidSecret       = errors.New("webhooks: secret must be whsec_ followed by base64")
)
