// Package stripe takes wallet top-ups through Stripe Checkout: chatpay
// creates a Checkout Session for the top-up's amount, the shopper pays on
// Stripe's own page (chatpay never sees the card), and the wallet is
// credited only from a verified checkout.session.completed or
// payment_intent.succeeded webhook, or by reconciliation retrieving the
// session — never from the shopper's return to chatpay. It implements
// payments.HostedProvider with the official Go SDK.
package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	sdk "github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/payments"
)

// Name is the provider's name in the chart of accounts.
const Name = "stripe"

// Limits of the Stripe client.
const (
	// TimeoutDefault bounds one API call; a later answer is an unknown
	// outcome settled by a lookup.
	TimeoutDefault = 10 * time.Second
	// SignatureToleranceDefault is the replay window of webhooks: a
	// Stripe-Signature timestamp older than this is refused (Stripe's own
	// recommendation). Real time, not the test clock: it is about delivery.
	SignatureToleranceDefault = 5 * time.Minute
	// metadataTopUp names chatpay's top-up in Stripe's metadata.
	metadataTopUp = "chatpay_top_up_id"
)

// Config is one merchant's Stripe account.
type Config struct {
	// SecretKey is the account's secret (sk_…) or restricted (rk_…) key.
	SecretKey string
	// WebhookSecret is the signing secret (whsec_…) of the endpoint the
	// merchant created for chatpay in the Stripe dashboard.
	WebhookSecret string
	// BaseURL is the API's URL; "" is Stripe's. Tests use stripe-mock.
	BaseURL string
	// Timeout bounds one call (TimeoutDefault when 0).
	Timeout time.Duration
	// SignatureTolerance is the webhook replay window
	// (SignatureToleranceDefault when 0).
	SignatureTolerance time.Duration
}

// Provider is one merchant's Stripe account as a payments.HostedProvider.
type Provider struct {
	client        *sdk.Client
	webhookSecret string
	tolerance     time.Duration
}

var _ payments.HostedProvider = (*Provider)(nil)

// New returns the provider of cfg's account.
func New(cfg Config) (*Provider, error) {
	if cfg.SecretKey == "" || cfg.WebhookSecret == "" {
		return nil, errors.New("stripe: a secret key and a webhook signing secret are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = TimeoutDefault
	}
	if cfg.SignatureTolerance <= 0 {
		cfg.SignatureTolerance = SignatureToleranceDefault
	}
	backend := &sdk.BackendConfig{
		HTTPClient: &http.Client{Timeout: cfg.Timeout},
		// chatpay settles unanswered calls itself (a lookup, reconciliation);
		// the SDK's own retries would stretch one call past its timeout.
		MaxNetworkRetries: sdk.Int64(0),
		LeveledLogger:     &sdk.LeveledLogger{Level: sdk.LevelNull},
	}
	if cfg.BaseURL != "" {
		backend.URL = sdk.String(strings.TrimRight(cfg.BaseURL, "/"))
	}
	return &Provider{
		client:        sdk.NewClient(cfg.SecretKey, sdk.WithBackends(sdk.NewBackendsWithConfig(backend))),
		webhookSecret: cfg.WebhookSecret,
		tolerance:     cfg.SignatureTolerance,
	}, nil
}

// Name implements payments.HostedProvider.
func (p *Provider) Name() string { return Name }

// Supports implements payments.HostedProvider: Stripe Checkout only.
func (p *Provider) Supports(method string) bool { return method == payments.MethodCheckout }

// idempotencyKey is the key Stripe sees for the session of a top-up: one
// top-up, one session, however often it is asked for.
func idempotencyKey(payment payments.HostedPayment) string { return "chatpay-session-" + payment.Key }

// Start implements payments.HostedProvider: a Checkout Session in payment
// mode for the top-up's amount, expiring with the top-up's payment window.
func (p *Provider) Start(ctx context.Context, payment payments.HostedPayment) (payments.PaymentPage, error) {
	if payment.Method != payments.MethodCheckout {
		return payments.PaymentPage{}, problem.Field("method", payments.CodeMethodUnsupported, "Stripe takes top-ups through its Checkout page (method checkout)")
	}
	session, err := p.createSession(ctx, payment)
	if err != nil {
		return payments.PaymentPage{}, err
	}
	return payments.PaymentPage{PaymentID: session.ID, RedirectURL: session.URL}, nil
}

func (p *Provider) createSession(ctx context.Context, payment payments.HostedPayment) (*sdk.CheckoutSession, error) {
	meta := map[string]string{metadataTopUp: payment.TopUpID}
	params := &sdk.CheckoutSessionCreateParams{
		Mode:              sdk.String(string(sdk.CheckoutSessionModePayment)),
		ClientReferenceID: sdk.String(payment.TopUpID),
		SuccessURL:        sdk.String(payment.ReturnURL),
		CancelURL:         sdk.String(payment.ReturnURL),
		ExpiresAt:         sdk.Int64(payment.ExpiresAt.Unix()),
		Metadata:          meta,
		// The wallet is in the top-up's currency: Stripe must not present
		// (and report) the amount converted into the shopper's.
		AdaptivePricing:   &sdk.CheckoutSessionCreateAdaptivePricingParams{Enabled: sdk.Bool(false)},
		PaymentIntentData: &sdk.CheckoutSessionCreatePaymentIntentDataParams{Metadata: meta},
		LineItems: []*sdk.CheckoutSessionCreateLineItemParams{{
			Quantity: sdk.Int64(1),
			PriceData: &sdk.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:    sdk.String(strings.ToLower(payment.Amount.Currency.Code())),
				UnitAmount:  sdk.Int64(payment.Amount.Minor),
				ProductData: &sdk.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: sdk.String(payment.Description)},
			},
		}},
	}
	params.SetIdempotencyKey(idempotencyKey(payment))
	session, err := p.client.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return nil, classify("create checkout session", err)
	}
	return session, nil
}

// Lookup implements payments.HostedProvider by retrieving the session. A
// top-up whose session was never handed to the shopper has none to pay.
func (p *Provider) Lookup(ctx context.Context, payment payments.HostedPayment) (payments.ProviderCharge, error) {
	if payment.PaymentID == "" {
		return payments.ProviderCharge{}, payments.ErrChargeNotFound
	}
	params := &sdk.CheckoutSessionRetrieveParams{}
	params.AddExpand("payment_intent")
	session, err := p.client.V1CheckoutSessions.Retrieve(ctx, payment.PaymentID, params)
	if err != nil {
		var se *sdk.Error
		if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
			return payments.ProviderCharge{}, payments.ErrChargeNotFound
		}
		return payments.ProviderCharge{}, classify("retrieve checkout session", err)
	}
	return sessionCharge(session), nil
}

// Close implements payments.HostedProvider by expiring the session. A
// session chatpay never recorded is found again through the idempotency key
// of its creation (Stripe keeps keys 24 hours), so a request whose answer
// was lost cannot leave a payable page behind.
func (p *Provider) Close(ctx context.Context, payment payments.HostedPayment) (payments.ProviderCharge, error) {
	if payment.PaymentID == "" {
		session, err := p.createSession(ctx, payment)
		if err != nil {
			return payments.ProviderCharge{}, err
		}
		payment.PaymentID = session.ID
	}
	session, err := p.client.V1CheckoutSessions.Expire(ctx, payment.PaymentID, &sdk.CheckoutSessionExpireParams{})
	if err == nil && session.Status == sdk.CheckoutSessionStatusExpired {
		return payments.ProviderCharge{}, payments.ErrChargeNotFound
	}
	// Stripe refuses to expire a session that is no longer open: what it
	// became decides.
	charge, err := p.Lookup(ctx, payment)
	switch {
	case err != nil:
		return payments.ProviderCharge{}, err
	case charge.Status == payments.ChargeCaptured:
		return charge, nil
	case charge.Status == payments.ChargeDeclined:
		return payments.ProviderCharge{}, payments.ErrChargeNotFound
	}
	return payments.ProviderCharge{}, fmt.Errorf("checkout session %s still open after expiring it: %w", payment.PaymentID, payments.ErrOutcomeUnknown)
}

// sessionCharge maps a session onto chatpay's charge statuses. An
// asynchronous method (a bank debit) completes the session unpaid: it stays
// open until checkout.session.async_payment_succeeded or _failed.
func sessionCharge(s *sdk.CheckoutSession) payments.ProviderCharge {
	charge := payments.ProviderCharge{Status: payments.ChargeOpen, AmountMinor: s.AmountTotal, Currency: strings.ToUpper(string(s.Currency))}
	if s.PaymentIntent != nil {
		charge.ID = s.PaymentIntent.ID
	}
	switch {
	case s.PaymentStatus == sdk.CheckoutSessionPaymentStatusPaid:
		charge.Status = payments.ChargeCaptured
	case s.Status == sdk.CheckoutSessionStatusExpired:
		charge.Status, charge.DeclineCode = payments.ChargeDeclined, payments.FailurePaymentClosed
	}
	return charge
}

// Refund implements payments.HostedProvider: a refund of the payment
// intent, to the card it was paid with, keyed by chatpay's refund id.
func (p *Provider) Refund(ctx context.Context, key string, payment payments.HostedPayment, chargeID string, amount money.Amount) (payments.ProviderRefund, error) {
	params := &sdk.RefundCreateParams{
		PaymentIntent: sdk.String(chargeID),
		Amount:        sdk.Int64(amount.Minor),
		Metadata:      map[string]string{metadataTopUp: payment.TopUpID, "chatpay_refund_id": key},
	}
	params.SetIdempotencyKey("chatpay-refund-" + key)
	refund, err := p.client.V1Refunds.Create(ctx, params)
	if err != nil {
		return payments.ProviderRefund{}, classify("create refund", err)
	}
	if refund.Status == sdk.RefundStatusFailed || refund.Status == sdk.RefundStatusCanceled {
		return payments.ProviderRefund{}, fmt.Errorf("refund %s is %s", refund.ID, refund.Status)
	}
	return payments.ProviderRefund{ID: refund.ID, ChargeID: chargeID, AmountMinor: refund.Amount}, nil
}

// classify tells a refusal (Stripe answered 4xx: nothing was done) from an
// unknown outcome (no answer, or a 5xx: Stripe may have acted).
func classify(what string, err error) error {
	var se *sdk.Error
	if errors.As(err, &se) && se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500 && se.HTTPStatusCode != http.StatusConflict && se.HTTPStatusCode != http.StatusTooManyRequests {
		return fmt.Errorf("stripe %s: %s (%s %s)", what, se.Msg, se.Type, se.Code)
	}
	return fmt.Errorf("stripe %s: %w: %w", what, payments.ErrOutcomeUnknown, err)
}

// ParseNotification implements payments.HostedProvider: the
// Stripe-Signature header is verified with the SDK against the endpoint's
// signing secret, within the replay window. The event's API version may
// differ from the SDK's: only fields stable across versions are read.
func (p *Provider) ParseNotification(_ context.Context, header http.Header, body []byte) (payments.Notification, error) {
	event, err := webhook.ConstructEventWithOptions(body, header.Get("Stripe-Signature"), p.webhookSecret,
		webhook.ConstructEventOptions{Tolerance: p.tolerance, IgnoreAPIVersionMismatch: true})
	if err != nil {
		return payments.Notification{}, fmt.Errorf("%w: %w", payments.ErrInvalidNotification, err)
	}
	if event.ID == "" || event.Data == nil {
		return payments.Notification{}, fmt.Errorf("%w: event without id or data", payments.ErrInvalidNotification)
	}
	n := payments.Notification{EventID: event.ID, EventType: string(event.Type)}
	switch event.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded",
		"checkout.session.async_payment_failed", "checkout.session.expired":
		var s sdk.CheckoutSession
		if err := json.Unmarshal(event.Data.Raw, &s); err != nil {
			return payments.Notification{}, fmt.Errorf("%w: checkout session: %w", payments.ErrInvalidNotification, err)
		}
		n.TopUpID, n.PaymentID = topUpOf(s.ClientReferenceID, s.Metadata), s.ID
		charge := sessionCharge(&s)
		if event.Type == "checkout.session.async_payment_failed" {
			charge.Status, charge.DeclineCode = payments.ChargeDeclined, "payment_failed"
		}
		if charge.Status != payments.ChargeOpen {
			n.Charge = &charge
		}
	case "payment_intent.succeeded":
		var pi sdk.PaymentIntent
		if err := json.Unmarshal(event.Data.Raw, &pi); err != nil {
			return payments.Notification{}, fmt.Errorf("%w: payment intent: %w", payments.ErrInvalidNotification, err)
		}
		n.TopUpID = topUpOf("", pi.Metadata)
		n.Charge = &payments.ProviderCharge{ID: pi.ID, Status: payments.ChargeCaptured,
			AmountMinor: pi.AmountReceived, Currency: strings.ToUpper(string(pi.Currency))}
	}
	return n, nil
}

func topUpOf(reference string, meta map[string]string) string {
	if id := meta[metadataTopUp]; id != "" {
		return id
	}
	return reference
}
