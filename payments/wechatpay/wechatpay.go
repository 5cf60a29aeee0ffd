// Package wechatpay takes wallet top-ups through WeChat Pay APIv3: JSAPI
// payment inside WeChat (a prepay_id, then the page calls WeixinJSBridge
// getBrandWCPayRequest with parameters signed here) and Native payment (a
// code_url QR) for other browsers; payment notifications verified with
// WeChat Pay's public key and decrypted with the APIv3 key
// (AEAD_AES_256_GCM); query and close order for reconciliation; refunds.
//
// The official SDK is not available to this build, so this is a small
// client on the standard library that follows the APIv3 rules exactly:
// every request is signed WECHATPAY2-SHA256-RSA2048 with the merchant's API
// certificate key, and every answer's signature is verified before it is
// believed (an unsigned 2xx is treated as forged).
package wechatpay

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/payments"
)

// Name is the provider's name in the chart of accounts.
const Name = "wechatpay"

// BaseURLDefault is WeChat Pay's API.
const BaseURLDefault = "https://api.mch.weixin.qq.com"

// Client limits.
const (
	TimeoutDefault = 10 * time.Second
	// TimestampSkewMax is how far a signed answer's or notification's
	// timestamp may be from now: WeChat Pay's own advice is 5 minutes.
	TimestampSkewMax = 5 * time.Minute
	// answerBytesMax bounds what the client reads of an answer.
	answerBytesMax = 64 << 10
)

// Config is one merchant's WeChat Pay account.
type Config struct {
	MchID string // 商户号
	AppID string // the official account / mini program the shopper pays in
	// MerchantSerial is the serial number of the merchant API certificate
	// whose key signs requests.
	MerchantSerial string
	MerchantKey    *rsa.PrivateKey
	// APIv3Key decrypts notification resources (32 characters).
	APIv3Key string
	// PlatformSerial and PlatformKey verify WeChat Pay's signatures: the
	// WeChat Pay public key (serial PUB_KEY_ID_…) or a platform certificate.
	PlatformSerial string
	PlatformKey    *rsa.PublicKey
	BaseURL        string // "" is BaseURLDefault
	Timeout        time.Duration
	Now            func() time.Time
}

// Provider is one merchant's WeChat Pay account as a
// payments.HostedProvider.
type Provider struct {
	cfg    Config
	client *http.Client
}

var _ payments.HostedProvider = (*Provider)(nil)

// New returns the provider of cfg's account.
func New(cfg Config) (*Provider, error) {
	switch {
	case cfg.MchID == "" || cfg.AppID == "" || cfg.MerchantSerial == "" || cfg.PlatformSerial == "":
		return nil, errors.New("wechatpay: mchid, appid and both serial numbers are required")
	case cfg.MerchantKey == nil || cfg.PlatformKey == nil:
		return nil, errors.New("wechatpay: the merchant private key and WeChat Pay's public key are required")
	case len(cfg.APIv3Key) != APIv3KeyLength:
		return nil, fmt.Errorf("wechatpay: the APIv3 key must have %d characters", APIv3KeyLength)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = BaseURLDefault
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = TimeoutDefault
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}}, nil
}

// Name implements payments.HostedProvider.
func (p *Provider) Name() string { return Name }

// Supports implements payments.HostedProvider: JSAPI inside WeChat, Native
// (QR) elsewhere.
func (p *Provider) Supports(method string) bool {
	return method == payments.MethodJSAPI || method == payments.MethodNative
}

type amountWire struct {
	Total       int64  `json:"total"`
	Currency    string `json:"currency"`
	PayerTotal  int64  `json:"payer_total,omitempty"`
	Refund      int64  `json:"refund,omitempty"`
	PayerRefund int64  `json:"payer_refund,omitempty"`
}

// Start implements payments.HostedProvider: a JSAPI or Native order whose
// out_trade_no is the top-up's provider key, so asking again is the same
// order (WeChat Pay answers a repeated order with its prepay_id).
func (p *Provider) Start(ctx context.Context, payment payments.HostedPayment) (payments.PaymentPage, error) {
	order := map[string]any{
		"appid": p.cfg.AppID, "mchid": p.cfg.MchID, "description": payment.Description,
		"out_trade_no": payment.Key, "time_expire": payment.ExpiresAt.Format(time.RFC3339),
		"notify_url": payment.NotifyURL,
		"amount":     amountWire{Total: payment.Amount.Minor, Currency: payment.Amount.Currency.Code()},
	}
	path := "/v3/pay/transactions/native"
	if payment.Method == payments.MethodJSAPI {
		path = "/v3/pay/transactions/jsapi"
		order["payer"] = map[string]string{"openid": payment.PayerID}
	}
	var answer struct {
		PrepayID string `json:"prepay_id"`
		CodeURL  string `json:"code_url"`
	}
	status, err := p.call(ctx, http.MethodPost, path, order, &answer)
	if err != nil {
		return payments.PaymentPage{}, err
	}
	if status != http.StatusOK {
		return payments.PaymentPage{}, fmt.Errorf("wechatpay order %s: answered %d", payment.Key, status)
	}
	page := payments.PaymentPage{PaymentID: payment.Key}
	if payment.Method == payments.MethodNative {
		if answer.CodeURL == "" {
			return payments.PaymentPage{}, fmt.Errorf("wechatpay native order %s: no code_url: %w", payment.Key, payments.ErrOutcomeUnknown)
		}
		page.QRContent = answer.CodeURL
		return page, nil
	}
	if answer.PrepayID == "" {
		return payments.PaymentPage{}, fmt.Errorf("wechatpay jsapi order %s: no prepay_id: %w", payment.Key, payments.ErrOutcomeUnknown)
	}
	page.JSAPI, err = p.JSAPIParams(answer.PrepayID)
	return page, err
}

// JSAPIParams are the parameters the page passes to WeixinJSBridge
// getBrandWCPayRequest: paySign signs appId, timeStamp, nonceStr and
// package, each followed by "\n", with the merchant key.
func (p *Provider) JSAPIParams(prepayID string) (map[string]string, error) {
	params := map[string]string{
		"appId": p.cfg.AppID, "timeStamp": strconv.FormatInt(p.cfg.Now().Unix(), 10), "nonceStr": Nonce(),
		"package": "prepay_id=" + prepayID, "signType": "RSA",
	}
	message := params["appId"] + "\n" + params["timeStamp"] + "\n" + params["nonceStr"] + "\n" + params["package"] + "\n"
	sig, err := Sign(p.cfg.MerchantKey, []byte(message))
	if err != nil {
		return nil, err
	}
	params["paySign"] = sig
	return params, nil
}

// Transaction is WeChat Pay's record of an order (query answer, and the
// decrypted resource of a payment notification).
type Transaction struct {
	AppID         string     `json:"appid"`
	MchID         string     `json:"mchid"`
	OutTradeNo    string     `json:"out_trade_no"`
	TransactionID string     `json:"transaction_id"`
	TradeState    string     `json:"trade_state"`
	Amount        amountWire `json:"amount"`
}

// charge maps trade_state onto chatpay's statuses: SUCCESS (and REFUND, a
// success refunded since) captured; CLOSED, REVOKED and PAYERROR closed for
// good; NOTPAY and USERPAYING still open.
func (t Transaction) charge() payments.ProviderCharge {
	c := payments.ProviderCharge{ID: t.TransactionID, AmountMinor: t.Amount.Total, Currency: t.Amount.Currency, Status: payments.ChargeOpen}
	switch t.TradeState {
	case "SUCCESS", "REFUND":
		c.Status = payments.ChargeCaptured
	case "CLOSED", "REVOKED":
		c.Status, c.DeclineCode = payments.ChargeDeclined, payments.FailurePaymentClosed
	case "PAYERROR":
		c.Status, c.DeclineCode = payments.ChargeDeclined, "payment_error"
	}
	return c
}

// Lookup implements payments.HostedProvider: query order by out_trade_no.
func (p *Provider) Lookup(ctx context.Context, payment payments.HostedPayment) (payments.ProviderCharge, error) {
	var t Transaction
	path := "/v3/pay/transactions/out-trade-no/" + url.PathEscape(payment.Key) + "?mchid=" + url.QueryEscape(p.cfg.MchID)
	status, err := p.call(ctx, http.MethodGet, path, nil, &t)
	switch {
	case err != nil:
		return payments.ProviderCharge{}, err
	case status == http.StatusNotFound:
		return payments.ProviderCharge{}, payments.ErrChargeNotFound
	case status != http.StatusOK:
		return payments.ProviderCharge{}, fmt.Errorf("wechatpay query %s: answered %d: %w", payment.Key, status, payments.ErrOutcomeUnknown)
	case t.OutTradeNo != payment.Key || t.MchID != p.cfg.MchID:
		return payments.ProviderCharge{}, fmt.Errorf("wechatpay query %s: answer about %s of %s: %w", payment.Key, t.OutTradeNo, t.MchID, payments.ErrOutcomeUnknown)
	}
	return t.charge(), nil
}

// Close implements payments.HostedProvider: close order, then query, since
// WeChat Pay answers a close of a paid order with an error and the order's
// state is what counts.
func (p *Provider) Close(ctx context.Context, payment payments.HostedPayment) (payments.ProviderCharge, error) {
	path := "/v3/pay/transactions/out-trade-no/" + url.PathEscape(payment.Key) + "/close"
	status, err := p.call(ctx, http.MethodPost, path, map[string]string{"mchid": p.cfg.MchID}, nil)
	if err != nil {
		return payments.ProviderCharge{}, err
	}
	charge, err := p.Lookup(ctx, payment)
	switch {
	case errors.Is(err, payments.ErrChargeNotFound):
		// Never ordered, and the closed out_trade_no cannot be ordered
		// later with another amount; an order still in flight would be
		// refused as a repeat of a closed one.
		return payments.ProviderCharge{}, payments.ErrChargeNotFound
	case err != nil:
		return payments.ProviderCharge{}, err
	case charge.Status == payments.ChargeCaptured:
		return charge, nil
	case charge.Status == payments.ChargeDeclined:
		return payments.ProviderCharge{}, payments.ErrChargeNotFound
	}
	return payments.ProviderCharge{}, fmt.Errorf("wechatpay close %s answered %d and the order is still open: %w", payment.Key, status, payments.ErrOutcomeUnknown)
}

// Refund implements payments.HostedProvider: a domestic refund of the
// transaction, out_refund_no = key, to the payer's original method.
func (p *Provider) Refund(ctx context.Context, key string, payment payments.HostedPayment, chargeID string, amount money.Amount) (payments.ProviderRefund, error) {
	body := map[string]any{
		"transaction_id": chargeID, "out_refund_no": key,
		"amount": amountWire{Refund: amount.Minor, Total: payment.Amount.Minor, Currency: amount.Currency.Code()},
	}
	var answer struct {
		RefundID    string     `json:"refund_id"`
		OutRefundNo string     `json:"out_refund_no"`
		Status      string     `json:"status"`
		Amount      amountWire `json:"amount"`
	}
	status, err := p.call(ctx, http.MethodPost, "/v3/refund/domestic/refunds", body, &answer)
	switch {
	case err != nil:
		return payments.ProviderRefund{}, err
	case status != http.StatusOK:
		return payments.ProviderRefund{}, fmt.Errorf("wechatpay refund %s: answered %d", key, status)
	case answer.Status == "CLOSED" || answer.Status == "ABNORMAL":
		return payments.ProviderRefund{}, fmt.Errorf("wechatpay refund %s is %s", key, answer.Status)
	}
	// PROCESSING is accepted: WeChat Pay pays it out to the original method
	// and does not take it back.
	return payments.ProviderRefund{ID: answer.RefundID, ChargeID: chargeID, AmountMinor: answer.Amount.Refund}, nil
}

// call sends one signed request and verifies the answer's signature. A 5xx,
// no answer, or an answer whose signature does not verify is an unknown
// outcome; 4xx statuses are returned (404 for a missing order), others
// decoded into out.
func (p *Provider) call(ctx context.Context, method, pathAndQuery string, in, out any) (int, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, fmt.Errorf("wechatpay request: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, p.cfg.BaseURL+pathAndQuery, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("wechatpay request: %w", err)
	}
	timestamp, nonce := strconv.FormatInt(p.cfg.Now().Unix(), 10), Nonce()
	sig, err := Sign(p.cfg.MerchantKey, RequestMessage(method, pathAndQuery, timestamp, nonce, body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", Authorization(p.cfg.MchID, p.cfg.MerchantSerial, nonce, timestamp, sig))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("wechatpay %s %s: %w: %w", method, pathAndQuery, payments.ErrOutcomeUnknown, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, answerBytesMax))
	if err != nil {
		return 0, fmt.Errorf("wechatpay %s %s: read: %w: %w", method, pathAndQuery, payments.ErrOutcomeUnknown, err)
	}
	// 5xx and 429 (FREQUENCY_LIMITED) say nothing about whether WeChat Pay
	// acted; only a later query or a retry with the same key can tell.
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return 0, fmt.Errorf("wechatpay %s %s: answered %d: %w", method, pathAndQuery, resp.StatusCode, payments.ErrOutcomeUnknown)
	}
	if err := p.verify(resp.Header, raw); err != nil {
		return 0, fmt.Errorf("wechatpay %s %s: answer not signed by WeChat Pay: %w: %w", method, pathAndQuery, payments.ErrOutcomeUnknown, err)
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return 0, fmt.Errorf("wechatpay %s %s: unreadable answer: %w: %w", method, pathAndQuery, payments.ErrOutcomeUnknown, err)
		}
	}
	return resp.StatusCode, nil
}

// verify checks a signed answer or notification: the serial names the key
// configured, the timestamp is within TimestampSkewMax of now, and the
// signature over timestamp, nonce and body verifies.
func (p *Provider) verify(header http.Header, body []byte) error {
	if serial := header.Get(HeaderSerial); serial != p.cfg.PlatformSerial {
		return fmt.Errorf("signed with key %q, not the configured %q", serial, p.cfg.PlatformSerial)
	}
	timestamp := header.Get(HeaderTimestamp)
	seconds, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q", timestamp)
	}
	if skew := p.cfg.Now().Sub(time.Unix(seconds, 0)); skew > TimestampSkewMax || skew < -TimestampSkewMax {
		return fmt.Errorf("timestamp %s is %s away from now", timestamp, skew)
	}
	return Verify(p.cfg.PlatformKey, AnswerMessage(timestamp, header.Get(HeaderNonce), body), header.Get(HeaderSignature))
}

// NotificationBody is a payment notification as WeChat Pay posts it.
type NotificationBody struct {
	ID           string `json:"id"`
	CreateTime   string `json:"create_time"`
	ResourceType string `json:"resource_type"`
	EventType    string `json:"event_type"`
	Summary      string `json:"summary"`
	Resource     struct {
		OriginalType   string `json:"original_type"`
		Algorithm      string `json:"algorithm"`
		Ciphertext     string `json:"ciphertext"`
		AssociatedData string `json:"associated_data"`
		Nonce          string `json:"nonce"`
	} `json:"resource"`
}

// ParseNotification implements payments.HostedProvider: the signature is
// verified with WeChat Pay's key (within TimestampSkewMax), then the
// resource is decrypted with the APIv3 key; a decryption failure is a
// forgery too, since only WeChat Pay and the merchant hold that key.
func (p *Provider) ParseNotification(_ context.Context, header http.Header, body []byte) (payments.Notification, error) {
	if err := p.verify(header, body); err != nil {
		return payments.Notification{}, fmt.Errorf("%w: %w", payments.ErrInvalidNotification, err)
	}
	var n NotificationBody
	if err := json.Unmarshal(body, &n); err != nil || n.ID == "" {
		return payments.Notification{}, fmt.Errorf("%w: unreadable notification", payments.ErrInvalidNotification)
	}
	out := payments.Notification{EventID: n.ID, EventType: n.EventType}
	if n.EventType != "TRANSACTION.SUCCESS" || n.Resource.OriginalType != "transaction" {
		// Refund notifications and others change no top-up.
		return out, nil
	}
	if n.Resource.Algorithm != "AEAD_AES_256_GCM" {
		return payments.Notification{}, fmt.Errorf("%w: algorithm %q", payments.ErrInvalidNotification, n.Resource.Algorithm)
	}
	plain, err := Decrypt(p.cfg.APIv3Key, n.Resource.Nonce, n.Resource.AssociatedData, n.Resource.Ciphertext)
	if err != nil {
		return payments.Notification{}, fmt.Errorf("%w: %w", payments.ErrInvalidNotification, err)
	}
	var t Transaction
	if err := json.Unmarshal(plain, &t); err != nil {
		return payments.Notification{}, fmt.Errorf("%w: transaction: %w", payments.ErrInvalidNotification, err)
	}
	if t.MchID != p.cfg.MchID {
		return out, nil // another merchant's account: nothing of ours
	}
	charge := t.charge()
	out.TopUpID, out.PaymentID = t.OutTradeNo, t.OutTradeNo
	if charge.Status != payments.ChargeOpen {
		out.Charge = &charge
	}
	return out, nil
}
