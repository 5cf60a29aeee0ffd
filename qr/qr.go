// Package qr owns chatpay's QR codes: the unguessable tokens behind them,
// their lifecycle (static item codes that live until revoked, dynamic
// checkout codes that are used once and expire), the scans they collect, and
// their renderings as PNG, SVG and terminal text.
//
// It imports no other domain package. Merchants, items and checkouts are only
// id strings here; payments resolves a token to a Code, checks the target
// against its own tables, and consumes dynamic codes inside its checkout
// transaction. The wiring in cmd passes catalog's item check to NewService,
// so qr needs no import of catalog; the dashboard joins qr's scan counts with
// payments' checkout counts, so qr needs none of payments either.
package qr

import (
	"time"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// Kind says whether a code is reusable or one-time.
type Kind string

const (
	// KindStatic codes point at an item; they are printed and reused until revoked.
	KindStatic Kind = "static"
	// KindDynamic codes point at one checkout; they are used once and expire.
	KindDynamic Kind = "dynamic"
)

// TargetType names what a code opens.
type TargetType string

const (
	TargetItem     TargetType = "item"
	TargetCheckout TargetType = "checkout"
)

// Status is a code's state at a given time, derived from its timestamps.
type Status string

const (
	StatusActive  Status = "active"
	StatusRevoked Status = "revoked"
	StatusUsed    Status = "used"
	StatusExpired Status = "expired"
)

// Limits. Every input that can grow is bounded here, units last.
const (
	// PlacementLengthMax bounds the free-text placement label ("counter").
	PlacementLengthMax = 64
	// TargetIDLengthMax and MerchantIDLengthMax bound foreign ids, which are
	// ours (ids.New makes 24 characters plus a prefix) and never long.
	TargetIDLengthMax   = 64
	MerchantIDLengthMax = 64
	// ShopperRefLengthMax bounds the optional shopper reference of a scan.
	ShopperRefLengthMax = 128
	// UserAgentLengthMax is how much of a scanner's User-Agent is kept: enough
	// to tell the messenger and platform apart, no more.
	UserAgentLengthMax = 256

	// DynamicTTLDefault is how long a checkout code stays scannable when the
	// caller does not say: a till's screen, not a poster.
	DynamicTTLDefault = 15 * time.Minute
	// DynamicTTLMin and DynamicTTLMax bound the lifetime of a dynamic code; a
	// one-time payment code that lives for days is a liability, not a feature.
	DynamicTTLMin = 30 * time.Second
	DynamicTTLMax = 24 * time.Hour

	// PageSizeDefault and PageSizeMax bound list pages.
	PageSizeDefault = 50
	PageSizeMax     = 100
	// FunnelCodesMax bounds how many codes one funnel report covers (the
	// merchant's newest static codes).
	FunnelCodesMax = 500

	// PublicBaseURLLengthMax keeps the encoded URL short enough for a small,
	// easily scanned QR version.
	PublicBaseURLLengthMax = 200
)

// Code is one QR code as stored. Amount is set for dynamic codes only.
type Code struct {
	ID         string
	MerchantID string
	Kind       Kind
	TargetType TargetType
	TargetID   string
	Placement  string
	Token      string
	Amount     *money.Amount
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	ConsumedAt *time.Time
	// ScanCount is filled by List and Get; other calls leave it zero.
	ScanCount int64
	// Opens and ChannelID say which messenger the code opens (messengers.go).
	Opens     string
	ChannelID string
}

// StatusAt derives the code's state at now. Revocation wins over use, and use
// over expiry, so a shopper re-scanning a paid code is told it was used
// rather than that it expired since.
func (c Code) StatusAt(now time.Time) Status {
	switch {
	case c.RevokedAt != nil:
		return StatusRevoked
	case c.ConsumedAt != nil:
		return StatusUsed
	case c.ExpiresAt != nil && !now.Before(*c.ExpiresAt):
		return StatusExpired
	}
	return StatusActive
}

// Error codes for codes that exist but can no longer be used, and for tokens
// that match nothing. Pages show a clear message for each.
const (
	CodeNotFound      = "not_found" // one word for absence across the API
	CodeRevoked       = "qr_revoked"
	CodeExpired       = "qr_expired"
	CodeUsed          = "qr_used"
	CodeNotConsumable = "qr_not_consumable"
)

func errNotFound() error {
	return problem.New(problem.KindNotFound, CodeNotFound, "this QR code does not exist")
}

// statusError is the problem for a code that is not active, or nil.
func statusError(status Status) error {
	switch status {
	case StatusRevoked:
		return problem.New(problem.KindConflict, CodeRevoked, "this QR code was withdrawn by the merchant")
	case StatusUsed:
		return problem.New(problem.KindConflict, CodeUsed, "this QR code has already been used")
	case StatusExpired:
		return problem.New(problem.KindConflict, CodeExpired, "this QR code has expired; ask for a new one")
	}
	return nil
}

// StaticInput describes a new static code.
type StaticInput struct {
	ItemID    string
	Placement string
	// Opens is the messenger the printed code opens (messengers.go); empty
	// means OpensWeb. ChannelID names the channel for telegram, whatsapp and
	// wechat.
	Opens     string
	ChannelID string
}

// Scan is what is known about one scan of a code.
type Scan struct {
	// ShopperRef identifies the shopper when the messenger said who they
	// are (a shopper id); empty for anonymous scans.
	ShopperRef string
	// UserAgent is the scanner's User-Agent header; only its first
	// UserAgentLengthMax characters are kept.
	UserAgent string
	// Messenger is the messenger the page was opened in ("telegram",
	// "wechat", …); empty counts as "web". See messengers.go.
	Messenger string
}

// FunnelRow is one code's line in the merchant's funnel report.
type FunnelRow struct {
	QRID      string
	TargetID  string
	Placement string
	CreatedAt time.Time
	RevokedAt *time.Time
	Scans     int64
}
