package payments

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// How a shopper pays a top-up. MethodCard is the sandbox's own card form;
// the others are hosted by a real provider, so chatpay never sees a card.
const (
	MethodCard     = "card"
	MethodCheckout = "checkout" // Stripe Checkout: a redirect to Stripe's page
	MethodJSAPI    = "jsapi"    // WeChat Pay inside WeChat: WeixinJSBridge getBrandWCPayRequest
	MethodNative   = "native"   // WeChat Pay QR code (code_url) for other browsers
)

// ChargeOpen is a hosted payment the shopper has not finished: it may still
// be paid, so it is neither credited nor failed.
const ChargeOpen = "open"

// Hosted top-up limits.
const (
	// HostedPaymentTTL is how long a provider's payment page stays payable;
	// the provider closes it after that (Stripe needs 30 min to 24 h).
	HostedPaymentTTL = time.Hour
	// HostedAbandonAfter is when reconciliation closes a payment still open
	// at the provider and, once closed without capture, fails the top-up:
	// after the provider's own expiry, so a shopper paying is never cut off.
	HostedAbandonAfter = HostedPaymentTTL + 5*time.Minute
	// returnURLLengthMax bounds the URL a provider sends the shopper back to.
	returnURLLengthMax = 2048
	// notificationBytesMax bounds a provider notification's body.
	notificationBytesMax = 64 << 10
)

// Stable problem codes of hosted payments.
const (
	CodeInvalidNotification = "invalid_notification"
	CodeMethodUnsupported   = "payment_method_unsupported"
	// CodeProviderNotConfigured: the merchant has no Stripe or WeChat Pay
	// account configured.
	CodeProviderNotConfigured = "provider_not_configured"
	// FailurePaymentClosed is the failure code of a top-up whose payment the
	// provider closed (expired, or closed by reconciliation) without capture.
	FailurePaymentClosed = "payment_closed"
)

// HostedProvider is a payment provider whose shopper pays on the provider's
// own page or sheet (Stripe Checkout, WeChat Pay). Money is confirmed only
// asynchronously: by a notification the provider signs, or by a lookup.
// Every call is keyed by HostedPayment.Key, derived from chatpay's own
// idempotency key, so repeating a call never creates a second payment.
type HostedProvider interface {
	// Name is the provider's name in the chart of accounts.
	Name() string
	// Supports reports whether the provider takes payments by method.
	Supports(method string) bool
	// Start creates (or, under the same key, finds) the provider's payment
	// for p and returns what the shopper's page needs. ErrOutcomeUnknown
	// when the provider may or may not have created it;
	// CodeMethodUnsupported problems for a method it does not take.
	Start(ctx context.Context, p HostedPayment) (PaymentPage, error)
	// Lookup returns the provider's record of p: ChargeCaptured,
	// ChargeDeclined (closed for good without payment) or ChargeOpen.
	// ErrChargeNotFound when the provider has no such payment;
	// ErrOutcomeUnknown when it cannot tell now.
	Lookup(ctx context.Context, p HostedPayment) (ProviderCharge, error)
	// Close makes p unpayable. It returns a capture made before, which the
	// caller must honour; ErrChargeNotFound when the payment is closed
	// without capture (or never existed), so none can ever be made;
	// ErrOutcomeUnknown when it cannot tell now.
	Close(ctx context.Context, p HostedPayment) (ProviderCharge, error)
	// Refund gives amount of p's capture chargeID back to the payment
	// method it came from, once per key.
	Refund(ctx context.Context, key string, p HostedPayment, chargeID string, amount money.Amount) (ProviderRefund, error)
	// ParseNotification verifies a notification's signature (and freshness)
	// and reads it. ErrInvalidNotification (wrapped) for anything forged,
	// stale or unreadable.
	ParseNotification(ctx context.Context, header http.Header, body []byte) (Notification, error)
}

// HostedPayment is what a provider is told about one top-up. Every field
// derives from the top-up's row, so a repeated call is the same request.
type HostedPayment struct {
	TopUpID     string
	Key         string // the provider idempotency key (out_trade_no for WeChat Pay)
	PaymentID   string // the provider's id, once known
	Method      string
	PayerID     string // WeChat openid for JSAPI
	Amount      money.Amount
	Description string
	ReturnURL   string // where the provider sends the shopper back
	NotifyURL   string // where the provider sends its notifications
	ExpiresAt   time.Time
}

// PaymentPage is what the shopper's page needs to pay.
type PaymentPage struct {
	PaymentID   string            `json:"payment_id"`
	RedirectURL string            `json:"redirect_url,omitempty"`
	QRContent   string            `json:"qr_content,omitempty"`
	JSAPI       map[string]string `json:"jsapi,omitempty"`
}

// Notification is a verified provider notification.
type Notification struct {
	EventID   string
	EventType string
	// TopUpID is chatpay's top-up the event is about; "" for events about
	// nothing of ours.
	TopUpID   string
	PaymentID string
	// Charge is the outcome the event reports, nil when it changes nothing
	// (a payment still processing, an event type chatpay does not act on).
	Charge *ProviderCharge
}

// ErrInvalidNotification marks a notification that failed verification.
var ErrInvalidNotification = errors.New("provider notification failed verification")

// ErrNoHostedProvider means the merchant takes top-ups with the sandbox.
var ErrNoHostedProvider = errors.New("merchant has no hosted payment provider")

// ProviderDirectory finds the provider a merchant takes top-ups with.
type ProviderDirectory interface {
	// HostedProvider returns merchantID's provider; ErrNoHostedProvider
	// when it has none.
	HostedProvider(ctx context.Context, merchantID string) (HostedProvider, error)
}

// HostedTopUp is a top-up paid on a provider's page.
type HostedTopUp struct {
	TopUp
	Method        string         `db:"method"`
	MerchantID    sql.NullString `db:"merchant_id"`
	PaymentID     sql.NullString `db:"payment_id"`
	PaymentPage   []byte         `db:"payment_page"`
	RefundedMinor int64          `db:"refunded_minor"`
	ReturnURL     sql.NullString `db:"return_url"`
}

const hostedColumns = topUpColumns + `, method, merchant_id, payment_id, payment_page, refunded_minor, return_url`

// Page is the stored payment page, zero before the provider answered.
func (h HostedTopUp) Page() PaymentPage {
	var p PaymentPage
	if len(h.PaymentPage) > 0 {
		_ = json.Unmarshal(h.PaymentPage, &p) // written by us from this type
	}
	return p
}

// HostedStart is a shopper's request to top up through a hosted provider.
type HostedStart struct {
	MerchantID string
	Amount     money.Amount
	Method     string
	ReturnURL  string
	Key        string // the caller's idempotency key
}

// HasHostedProvider reports whether merchantID takes top-ups with a real
// provider (and which), so pages offer its payment page, not a card form.
func (s *Service) HasHostedProvider(ctx context.Context, merchantID string) (string, bool, error) {
	if s.hosted == nil {
		return "", false, nil
	}
	p, err := s.hosted.HostedProvider(ctx, merchantID)
	if errors.Is(err, ErrNoHostedProvider) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return p.Name(), true, nil
}

// hostedProvider is merchantID's provider. A merchant without one is the
// caller's mistake (422 provider_not_configured), not an outage.
func (s *Service) hostedProvider(ctx context.Context, merchantID string) (HostedProvider, error) {
	notConfigured := problem.New(problem.KindInvalid, CodeProviderNotConfigured,
		"this merchant takes no payments through a payment provider; top up by card (the sandbox) instead")
	if s.hosted == nil {
		return nil, notConfigured
	}
	p, err := s.hosted.HostedProvider(ctx, merchantID)
	if errors.Is(err, ErrNoHostedProvider) {
		return nil, notConfigured
	}
	if err != nil {
		return nil, fmt.Errorf("payment provider of %s: %w", merchantID, err)
	}
	return p, nil
}

// StartHostedTopUp records a top-up and creates its payment at the
// merchant's provider. Nothing is credited here: the wallet is credited only
// from the provider's verified notification or by reconciliation, never from
// the shopper coming back. The same key answers the same top-up and the same
// payment page.
//
// Errors: validation_failed (amount), idempotency_key_reused,
// payment_method_unsupported, provider_unavailable (no provider, or the
// provider did not answer: retry with the same key).
func (s *Service) StartHostedTopUp(ctx context.Context, shopper Shopper, in HostedStart) (HostedTopUp, error) {
	p, err := s.hostedProvider(ctx, in.MerchantID)
	if err != nil {
		return HostedTopUp{}, err
	}
	if err := validateHostedStart(in); err != nil {
		return HostedTopUp{}, err
	}
	if !p.Supports(in.Method) {
		return HostedTopUp{}, problem.New(problem.KindInvalid, CodeMethodUnsupported,
			"%s does not take payments by %s", p.Name(), in.Method)
	}
	t, err := s.claimHostedTopUp(ctx, shopper, p.Name(), in)
	if err != nil {
		return HostedTopUp{}, err
	}
	if t.Status == TopUpFailed {
		return t, problem.New(problem.KindRefused, "topup_failed", "this top-up failed (%s); start a new one", t.FailureCode.String).
			With("top_up_id", t.ID)
	}
	if t.PaymentID.Valid || t.Status != TopUpPending && t.Status != TopUpUnknown {
		return t, nil
	}
	ctx = context.WithoutCancel(ctx)
	page, err := p.Start(ctx, s.hostedPayment(t))
	if err != nil {
		return HostedTopUp{}, s.startFailed(ctx, t, p.Name(), err)
	}
	raw, err := json.Marshal(page)
	if err != nil {
		return HostedTopUp{}, fmt.Errorf("payment page: %w", err)
	}
	const update = `UPDATE topups SET payment_id = $2, payment_page = $3, updated_at = $4
		WHERE id = $1 RETURNING ` + hostedColumns
	if err := s.db.GetContext(ctx, &t, update, t.ID, page.PaymentID, raw, s.now().UTC()); err != nil {
		return HostedTopUp{}, fmt.Errorf("record payment of top-up %s: %w", t.ID, err)
	}
	return t, nil
}

// NotifyURL is where merchantID's provider sends its notifications.
func (s *Service) NotifyURL(provider, merchantID string) string {
	return s.publicURL + "/v1/providers/" + provider + "/notify/" + merchantID
}

// startFailed records why the provider's payment could not be created. No
// answer leaves the top-up unknown (the shopper retries with the same key,
// or reconciliation closes whatever the provider made); a refusal means the
// provider created nothing, so the top-up fails at once.
func (s *Service) startFailed(ctx context.Context, t HostedTopUp, provider string, cause error) error {
	if errors.Is(cause, ErrOutcomeUnknown) {
		if _, err := s.markUnknown(ctx, t.ID); err != nil {
			return errors.Join(cause, err)
		}
		return problem.New(problem.KindUnavailable, CodeProviderUnavailable,
			"the payment provider did not answer; try again (the same request never pays twice)").With("top_up_id", t.ID)
	}
	err := withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		_, err := finishTopUp(ctx, tx, t.ID, TopUpFailed, "", FailureProviderRefused, sql.NullInt64{}, sql.NullInt64{}, s.now().UTC())
		return err
	})
	if err != nil {
		return errors.Join(cause, err)
	}
	if p, ok := problem.As(cause); ok {
		return p
	}
	// A configuration or programming error on our side, not the shopper's
	// to retry: logged as a 500 with its cause.
	return fmt.Errorf("start top-up %s at %s: %w", t.ID, provider, cause)
}

// hostedPayment is the provider's view of a top-up; every field comes from
// the row, so Start, Lookup and Close repeat the same request.
func (s *Service) hostedPayment(t HostedTopUp) HostedPayment {
	currency, _ := money.ParseCurrency(t.Currency) // checked by the schema
	payer := ""
	if t.Method == MethodJSAPI {
		payer = t.ChatID
	}
	return HostedPayment{
		TopUpID: t.ID, Key: t.ProviderKey, PaymentID: t.PaymentID.String, Method: t.Method, PayerID: payer,
		Amount: money.New(t.AmountMinor, currency), Description: "Wallet top-up " + t.ID,
		ReturnURL: t.ReturnURL.String, NotifyURL: s.NotifyURL(t.Provider, t.MerchantID.String), ExpiresAt: t.CreatedAt.Add(HostedPaymentTTL).Truncate(time.Second),
	}
}

func (s *Service) claimHostedTopUp(ctx context.Context, shopper Shopper, provider string, in HostedStart) (HostedTopUp, error) {
	now := s.now().UTC()
	id := ids.New("top")
	sum := sha256.Sum256(fmt.Appendf(nil, "%d\n%s\n%s\n%s", in.Amount.Minor, in.Amount.Currency.Code(), in.Method, in.MerchantID))
	// The provider key is what the provider sees as our idempotency key and
	// order number: WeChat Pay's out_trade_no takes 6–32 of [0-9A-Za-z_-*|].
	const insert = `
		INSERT INTO topups (id, shopper_id, request_key, request_hash, provider, provider_key, card_last4,
			amount_minor, currency, status, chat_id, created_at, updated_at, method, merchant_id, return_url)
		VALUES ($1, $2, $3, $4, $5, $6, '', $7, $8, 'pending', $9, $10, $10, $11, $12, NULLIF($13, ''))
		ON CONFLICT (shopper_id, request_key) DO NOTHING`
	res, err := s.db.ExecContext(ctx, insert, id, shopper.ID, in.Key, sum[:], provider, id,
		in.Amount.Minor, in.Amount.Currency.Code(), shopper.ExternalUserID, now, in.Method, in.MerchantID, in.ReturnURL)
	if err != nil {
		return HostedTopUp{}, fmt.Errorf("record top-up: %w", err)
	}
	inserted, _ := res.RowsAffected()
	var t HostedTopUp
	const sel = `SELECT ` + hostedColumns + ` FROM topups WHERE shopper_id = $1 AND request_key = $2`
	if err := s.db.GetContext(ctx, &t, sel, shopper.ID, in.Key); err != nil {
		return HostedTopUp{}, fmt.Errorf("read top-up: %w", err)
	}
	if inserted == 0 && string(t.RequestHash) != string(sum[:]) {
		return HostedTopUp{}, problem.New(problem.KindInvalid, "idempotency_key_reused",
			"this Idempotency-Key was used for another top-up; use a new key for a new top-up")
	}
	return t, nil
}

func validateHostedStart(in HostedStart) error {
	if in.Amount.Currency.IsZero() || in.Amount.Minor <= 0 || in.Amount.Minor > TopUpMinorMax {
		return problem.Field("amount", "invalid_amount", "a top-up is more than zero and at most %d minor units", TopUpMinorMax)
	}
	switch in.Method {
	case MethodCheckout, MethodNative:
	case MethodJSAPI:
		// The JSAPI sheet pays as the WeChat user who opened the page; the
		// shopper's external id is their openid under the channel.
	default:
		return problem.Field("method", CodeMethodUnsupported, "method must be checkout, jsapi or native")
	}
	if len(in.ReturnURL) > returnURLLengthMax {
		return problem.Field("return_url", "invalid_return_url", "return_url is at most %d characters", returnURLLengthMax)
	}
	if in.Key == "" || len(in.Key) > idempotency.KeyLengthMax {
		return problem.New(problem.KindBadRequest, "idempotency_key_required",
			"top-ups need an Idempotency-Key of 1 to %d characters, so that a retry never charges twice", idempotency.KeyLengthMax)
	}
	return nil
}

// HostedTopUpByID returns one of a shopper's top-ups with its payment page.
func (s *Service) HostedTopUpByID(ctx context.Context, shopperID, id string) (HostedTopUp, error) {
	var t HostedTopUp
	err := s.db.GetContext(ctx, &t, `SELECT `+hostedColumns+` FROM topups WHERE id = $1 AND shopper_id = $2`, id, shopperID)
	if errors.Is(err, sql.ErrNoRows) {
		return HostedTopUp{}, problem.NotFound("top-up")
	}
	if err != nil {
		return HostedTopUp{}, fmt.Errorf("get top-up: %w", err)
	}
	return t, nil
}

func hostedForUpdate(ctx context.Context, tx *sqlx.Tx, id string) (HostedTopUp, error) {
	var t HostedTopUp
	err := tx.GetContext(ctx, &t, `SELECT `+hostedColumns+` FROM topups WHERE id = $1 FOR UPDATE`, id)
	if err != nil {
		return HostedTopUp{}, fmt.Errorf("lock top-up %s: %w", id, err)
	}
	return t, nil
}

// StaticProviders is a fixed directory, merchant id → provider (tests, and
// a single-merchant instance configured by flags).
type StaticProviders map[string]HostedProvider

// HostedProvider implements ProviderDirectory.
func (d StaticProviders) HostedProvider(_ context.Context, merchantID string) (HostedProvider, error) {
	if p, ok := d[merchantID]; ok {
		return p, nil
	}
	return nil, ErrNoHostedProvider
}
