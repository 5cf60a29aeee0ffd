// Package payments is where money changes hands: channels (messenger
// backends) and their shoppers, checkout sessions, the one-tap confirmation
// that pays an order, wallets and their top-ups through a payment provider,
// the coupons a voucher sale issues, their redemption at the till, refunds
// and expiry (docs/aftersale.md).
//
// Every confirmation is one database transaction that takes stock (or
// converts the checkout's reservation), enforces the per-shopper limit,
// debits the wallet through ledger.Post, writes the order and its coupons,
// and queues order.paid and coupon.issued in the webhooks outbox. Any refusal
// or failure rolls all of it back.
package payments

import (
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/instancemode"
	"github.com/chatpay/chatpay/internal/memo"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/qr"
	"github.com/chatpay/chatpay/webhooks"
)

// Limits of a checkout.
const (
	CheckoutTTLDefault = 15 * time.Minute
	CheckoutTTLMax     = 24 * time.Hour
	// CheckoutTTLMin is the shortest hold a caller may ask for: less cannot
	// survive one slow round trip from the chat.
	CheckoutTTLMin = 30 * time.Second
	// ChatIDLengthMax bounds where to answer, in characters, as the schema does.
	ChatIDLengthMax     = 256
	LinesMax            = 20
	LineQuantityMax     = 100
	ListPageSizeMax     = 100
	ListPageSizeDefault = 20
)

// Stable problem codes of this package.
const (
	CodeSoldOut         = "sold_out"
	CodeLimitReached    = "purchase_limit_reached"
	CodeAlreadyPaid     = "already_paid"
	CodeCheckoutExpired = "checkout_expired"
	CodeCheckoutClosed  = "checkout_canceled"
	CodeItemUnavailable = "item_unavailable"
	CodeMixedMerchants  = "mixed_merchants"
)

// Config holds what cmd decides for payments.
type Config struct {
	// PlatformFee is taken from revenue when it is recognised (a product sale
	// or a coupon redemption), rounded by internal/money's rule.
	PlatformFee  money.Rate
	CheckoutTTL  time.Duration
	LaunchMaxAge time.Duration
	// Provider funds wallets (top-ups); nil answers top-ups with
	// provider_unavailable.
	Provider Provider
	// Providers finds the real payment provider (Stripe, WeChat Pay) a
	// merchant takes top-ups with; nil leaves every merchant on Provider.
	Providers ProviderDirectory
	// PublicBaseURL is where providers reach chatpay's notification
	// endpoint (/v1/providers/{provider}/notify/{merchant}).
	PublicBaseURL string
	// Outbox writes the events; nil writes them without its prepared statements.
	Outbox *webhooks.Service
	// Sandbox makes a test-mode service: channel keys are ck_test_… and
	// test clocks apply (testclock.go).
	Sandbox bool
}

// Service runs the payment flows.
type Service struct {
	db           *sqlx.DB
	now          func() time.Time
	ledger       *ledger.Ledger
	catalog      *catalog.Service
	qr           *qr.Service
	fee          money.Rate
	checkoutTTL  time.Duration
	launchMaxAge time.Duration
	provider     Provider
	hosted       ProviderDirectory
	publicURL    string
	outbox       *webhooks.Service
	// stmts runs the statements of every purchase prepared.
	stmts *database.Stmts
	// sandbox is Config.Sandbox.
	sandbox bool
	// channelShoppers is cachedShopperOfChannel's cache (channels.go).
	channelShoppers *memo.Map[channelShopper, Shopper]
}

// NewService wires the payment flows to their collaborators.
func NewService(db *sqlx.DB, now func() time.Time, l *ledger.Ledger, c *catalog.Service, q *qr.Service, cfg Config) *Service {
	if cfg.CheckoutTTL <= 0 || cfg.CheckoutTTL > CheckoutTTLMax {
		cfg.CheckoutTTL = CheckoutTTLDefault
	}
	return &Service{
		db: db, now: now, ledger: l, catalog: c, qr: q,
		fee: cfg.PlatformFee, checkoutTTL: cfg.CheckoutTTL, launchMaxAge: cfg.LaunchMaxAge,
		provider: cfg.Provider, hosted: cfg.Providers, publicURL: strings.TrimRight(cfg.PublicBaseURL, "/"), outbox: cfg.Outbox,
		stmts: database.NewStmts(db), sandbox: cfg.Sandbox,
		channelShoppers: memo.New[channelShopper, Shopper](channelShoppersMax),
	}
}

// Mode says whether the service runs a live or a sandbox instance: shopper
// pages name the sandbox's test cards only in a sandbox.
func (s *Service) Mode() instancemode.Mode { return instancemode.Of(s.sandbox) }

func soldOut(title string) error {
	return problem.New(problem.KindConflict, CodeSoldOut, "%s is sold out", title)
}
