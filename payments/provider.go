package payments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chatpay/chatpay/internal/money"
)

// Provider is a card payment provider that funds wallets. Every call that
// moves money carries chatpay's own idempotency key, so asking twice never
// charges twice.
type Provider interface {
	// Name is the provider's name in the chart of accounts
	// (provider:<name>:clearing).
	Name() string
	// Charge authorizes and captures amount on card in one step. A decline
	// is a ProviderCharge with Status ChargeDeclined, not an error. It
	// returns ErrOutcomeUnknown (wrapped) when the provider may or may not
	// have charged: a timeout, a 5xx, a broken connection.
	Charge(ctx context.Context, key string, amount money.Amount, card string) (ProviderCharge, error)
	// Lookup returns the charge made with key, ErrChargeNotFound when the
	// provider has none, or ErrOutcomeUnknown when it cannot tell now.
	Lookup(ctx context.Context, key string) (ProviderCharge, error)
	// Void closes key: a charge request with it that reaches the provider
	// afterwards is refused. It returns the charge made before, which the
	// caller must honour; ErrChargeNotFound when there was none, so none can
	// ever be made; or ErrOutcomeUnknown when it cannot tell now. Only after
	// ErrChargeNotFound from Void may a charge that never answered be called
	// failed: a request held in the network could otherwise still capture.
	Void(ctx context.Context, key string) (ProviderCharge, error)
	// Refund gives amount of a captured charge back to its card, once per key.
	Refund(ctx context.Context, key, chargeID string, amount money.Amount) (ProviderRefund, error)
}

// Charge statuses a provider answers.
const (
	ChargeCaptured = "captured"
	ChargeDeclined = "declined"
)

// ProviderCharge is the provider's record of a charge.
type ProviderCharge struct {
	ID          string
	Status      string // ChargeCaptured or ChargeDeclined
	DeclineCode string // "card_declined", "insufficient_funds"… when declined
	AmountMinor int64
	Currency    string
}

// ProviderRefund is the provider's record of a refund to a card.
type ProviderRefund struct {
	ID          string
	ChargeID    string
	AmountMinor int64
}

var (
	// ErrOutcomeUnknown means the provider may or may not have acted; only a
	// lookup (now or by reconciliation) can tell.
	ErrOutcomeUnknown = errors.New("payment provider outcome unknown")
	// ErrChargeNotFound means the provider has no charge with the key.
	ErrChargeNotFound = errors.New("payment provider has no such charge")
)

// Provider client limits.
const (
	// ProviderTimeoutDefault bounds one call to the provider; an answer
	// later than this is an unknown outcome, settled by a lookup.
	ProviderTimeoutDefault = 10 * time.Second
	// providerResponseBytesMax bounds what the client reads of an answer.
	providerResponseBytesMax = 64 << 10
	// CardLengthMax bounds a card number or token as the API takes it.
	CardLengthMax = 64
)

// HTTPProvider talks to a provider speaking the sandbox's API (package
// payments/sandbox documents it) over HTTP.
type HTTPProvider struct {
	name    string
	baseURL string
	client  *http.Client
}

// NewHTTPProvider returns a client of the provider at baseURL; every call
// gives up after timeout (ProviderTimeoutDefault when 0).
func NewHTTPProvider(name, baseURL string, timeout time.Duration) (*HTTPProvider, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("provider URL %q must be an absolute http(s) URL", baseURL)
	}
	if timeout <= 0 {
		timeout = ProviderTimeoutDefault
	}
	// A fresh transport per provider: its connections are not shared with
	// anything else, and a broken one is never reused for the next call.
	transport := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	return &HTTPProvider{
		name:    name,
		baseURL: strings.TrimRight(baseURL, "/"),
		client:  &http.Client{Timeout: timeout, Transport: transport},
	}, nil
}

// Name implements Provider.
func (p *HTTPProvider) Name() string { return p.name }

type chargeWire struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	DeclineCode string `json:"decline_code"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

func (w chargeWire) charge() ProviderCharge {
	return ProviderCharge(w)
}

// Charge implements Provider.
func (p *HTTPProvider) Charge(ctx context.Context, key string, amount money.Amount, card string) (ProviderCharge, error) {
	body, _ := json.Marshal(map[string]any{"amount_minor": amount.Minor, "currency": amount.Currency.Code(), "card": card})
	status, raw, err := p.do(ctx, http.MethodPost, "/v1/charges", key, body)
	if err != nil {
		return ProviderCharge{}, err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return ProviderCharge{}, fmt.Errorf("charge %s: provider answered %d: %s", key, status, raw)
	}
	var w chargeWire
	if err := json.Unmarshal(raw, &w); err != nil || (w.Status != ChargeCaptured && w.Status != ChargeDeclined) {
		return ProviderCharge{}, fmt.Errorf("charge %s: unreadable answer: %w", key, ErrOutcomeUnknown)
	}
	return w.charge(), nil
}

// Lookup implements Provider.
func (p *HTTPProvider) Lookup(ctx context.Context, key string) (ProviderCharge, error) {
	status, raw, err := p.do(ctx, http.MethodGet, "/v1/charges?key="+url.QueryEscape(key), "", nil)
	return chargeAnswer("look up "+key, status, raw, err)
}

// Void implements Provider.
func (p *HTTPProvider) Void(ctx context.Context, key string) (ProviderCharge, error) {
	body, _ := json.Marshal(map[string]string{"key": key})
	status, raw, err := p.do(ctx, http.MethodPost, "/v1/charges/void", "", body)
	return chargeAnswer("void "+key, status, raw, err)
}

// chargeAnswer reads an answer that is a charge (200) or charge_not_found
// (404); anything else leaves the outcome unknown.
func chargeAnswer(what string, status int, raw []byte, err error) (ProviderCharge, error) {
	if err != nil {
		return ProviderCharge{}, err
	}
	switch status {
	case http.StatusOK:
		var w chargeWire
		if err := json.Unmarshal(raw, &w); err != nil || (w.Status != ChargeCaptured && w.Status != ChargeDeclined) {
			return ProviderCharge{}, fmt.Errorf("%s: unreadable answer: %w", what, ErrOutcomeUnknown)
		}
		return w.charge(), nil
	case http.StatusNotFound:
		return ProviderCharge{}, ErrChargeNotFound
	}
	return ProviderCharge{}, fmt.Errorf("%s: provider answered %d: %w", what, status, ErrOutcomeUnknown)
}

// Refund implements Provider.
func (p *HTTPProvider) Refund(ctx context.Context, key, chargeID string, amount money.Amount) (ProviderRefund, error) {
	body, _ := json.Marshal(map[string]any{"amount_minor": amount.Minor})
	status, raw, err := p.do(ctx, http.MethodPost, "/v1/charges/"+url.PathEscape(chargeID)+"/refunds", key, body)
	if err != nil {
		return ProviderRefund{}, err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return ProviderRefund{}, fmt.Errorf("refund %s: provider answered %d: %s", key, status, raw)
	}
	var w struct {
		ID          string `json:"id"`
		ChargeID    string `json:"charge_id"`
		AmountMinor int64  `json:"amount_minor"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return ProviderRefund{}, fmt.Errorf("refund %s: unreadable answer: %w", key, ErrOutcomeUnknown)
	}
	return ProviderRefund{ID: w.ID, ChargeID: w.ChargeID, AmountMinor: w.AmountMinor}, nil
}

// do sends one request. Transport failures and 5xx answers are
// ErrOutcomeUnknown, because the provider may have acted before failing;
// 4xx answers are returned for the caller to read.
func (p *HTTPProvider) do(ctx context.Context, method, path, key string, body []byte) (int, []byte, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.baseURL+path, reader)
	if err != nil {
		return 0, nil, fmt.Errorf("provider request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w: %w", method, path, ErrOutcomeUnknown, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, providerResponseBytesMax))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read answer: %w: %w", method, path, ErrOutcomeUnknown, err)
	}
	if resp.StatusCode >= 500 {
		return 0, nil, fmt.Errorf("%s %s: provider answered %d: %w", method, path, resp.StatusCode, ErrOutcomeUnknown)
	}
	return resp.StatusCode, raw, nil
}
