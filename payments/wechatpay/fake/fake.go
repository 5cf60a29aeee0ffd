// Package fake is a WeChat Pay APIv3 server for tests, on loopback: it
// checks every request's WECHATPAY2-SHA256-RSA2048 signature with the
// merchant's public key, keeps orders and refunds, signs every answer with
// its own platform key, and builds payment notifications encrypted with the
// APIv3 key and signed as WeChat Pay does. Keys are generated per server.
package fake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatpay/chatpay/payments/wechatpay"
)

// Identities of the fake merchant account.
const (
	MchID          = "1900000109"
	AppID          = "wxd678efh567hg6787"
	MerchantSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	PlatformSerial = "PUB_KEY_ID_0119000001092024111400000000001"
	APIv3Key       = "0123456789abcdefghijklmnopqrstuv"
)

// Order is one order the fake holds.
type Order struct {
	OutTradeNo    string
	TransactionID string
	Method        string // jsapi, native
	PrepayID      string
	CodeURL       string
	OpenID        string
	Total         int64
	Currency      string
	TradeState    string // NOTPAY, SUCCESS, CLOSED, REFUND
	NotifyURL     string
	Creates       int
}

// Refund is one refund the fake made.
type Refund struct {
	RefundID, OutRefundNo, TransactionID string
	Amount                               int64
}

// Server is the fake WeChat Pay.
type Server struct {
	URL string
	// MerchantKey is the merchant's API certificate key the client signs
	// with; PlatformKey is WeChat Pay's (its public half verifies answers).
	MerchantKey *rsa.PrivateKey
	PlatformKey *rsa.PrivateKey

	now     func() time.Time
	mu      sync.Mutex
	orders  map[string]*Order
	refunds map[string]Refund
	down    bool
	server  *http.Server
}

// New makes a fake with fresh 2048-bit key pairs.
func New(now func() time.Time) (*Server, error) {
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	platform, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &Server{MerchantKey: merchant, PlatformKey: platform, now: now, orders: map[string]*Order{}, refunds: map[string]Refund{}}, nil
}

// Listen serves on addr (a loopback address) until stop.
func (s *Server) Listen(addr string) (stop func(), err error) {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.URL = "http://" + listener.Addr().String()
	s.server = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.server.Serve(listener) }()
	return func() { _ = s.server.Close() }, nil
}

// MerchantKeyPEM and PlatformPublicKeyPEM are the keys as a merchant
// downloads them (apiclient_key.pem, the WeChat Pay public key).
func (s *Server) MerchantKeyPEM() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(s.MerchantKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// PlatformPublicKeyPEM is WeChat Pay's public key as PEM.
func (s *Server) PlatformPublicKeyPEM() []byte {
	der, _ := x509.MarshalPKIXPublicKey(&s.PlatformKey.PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// SetDown makes every call answer 500 SYSTEM_ERROR.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Order returns an order by out_trade_no.
func (s *Server) Order(outTradeNo string) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[outTradeNo]
	if !ok {
		return Order{}, false
	}
	return *o, true
}

// Refunds returns the refunds made, by out_refund_no.
func (s *Server) Refunds() map[string]Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Refund, len(s.refunds))
	for k, v := range s.refunds {
		out[k] = v
	}
	return out
}

// Pay marks an open order paid, as the shopper confirming in WeChat does.
func (s *Server) Pay(outTradeNo string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[outTradeNo]
	if !ok || o.TradeState != "NOTPAY" {
		return fmt.Errorf("fake wechatpay: order %s cannot be paid", outTradeNo)
	}
	o.TradeState, o.TransactionID = "SUCCESS", "4200000"+randomDigits(21)
	return nil
}

func randomDigits(n int) string {
	var b [32]byte
	_, _ = rand.Read(b[:n])
	out := make([]byte, n)
	for i := range out {
		out[i] = '0' + b[i]%10
	}
	return string(out)
}

// Notification is a signed TRANSACTION.SUCCESS notification of a paid order
// with event id, signed at signedAt, as WeChat Pay posts it to notify_url.
func (s *Server) Notification(outTradeNo, eventID string, signedAt time.Time) (http.Header, []byte, error) {
	s.mu.Lock()
	o, ok := s.orders[outTradeNo]
	var order Order
	if ok {
		order = *o
	}
	s.mu.Unlock()
	if !ok || order.TradeState != "SUCCESS" {
		return nil, nil, fmt.Errorf("fake wechatpay: order %s is not paid", outTradeNo)
	}
	plain, _ := json.Marshal(s.transaction(order))
	nonce := randomDigits(12)
	ciphertext, err := wechatpay.Encrypt(APIv3Key, nonce, "transaction", plain)
	if err != nil {
		return nil, nil, err
	}
	var n wechatpay.NotificationBody
	n.ID, n.CreateTime, n.ResourceType = eventID, signedAt.Format(time.RFC3339), "encrypt-resource"
	n.EventType, n.Summary = "TRANSACTION.SUCCESS", "支付成功"
	n.Resource.OriginalType, n.Resource.Algorithm = "transaction", "AEAD_AES_256_GCM"
	n.Resource.Ciphertext, n.Resource.AssociatedData, n.Resource.Nonce = ciphertext, "transaction", nonce
	body, _ := json.Marshal(n)
	header, err := s.sign(body, signedAt)
	return header, body, err
}

func (s *Server) transaction(o Order) map[string]any {
	t := map[string]any{
		"appid": AppID, "mchid": MchID, "out_trade_no": o.OutTradeNo, "trade_state": o.TradeState,
		"trade_type": strings.ToUpper(o.Method), "trade_state_desc": o.TradeState,
		"amount": map[string]any{"total": o.Total, "currency": o.Currency, "payer_total": o.Total, "payer_currency": o.Currency},
	}
	if o.TransactionID != "" {
		t["transaction_id"] = o.TransactionID
		t["payer"] = map[string]string{"openid": o.OpenID}
		t["success_time"] = s.now().Format(time.RFC3339)
	}
	return t
}

// sign makes the Wechatpay-* headers of an answer or notification.
func (s *Server) sign(body []byte, at time.Time) (http.Header, error) {
	timestamp, nonce := strconv.FormatInt(at.Unix(), 10), wechatpay.Nonce()
	sig, err := wechatpay.Sign(s.PlatformKey, wechatpay.AnswerMessage(timestamp, nonce, body))
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(wechatpay.HeaderTimestamp, timestamp)
	h.Set(wechatpay.HeaderNonce, nonce)
	h.Set(wechatpay.HeaderSignature, sig)
	h.Set(wechatpay.HeaderSerial, PlatformSerial)
	h.Set("Content-Type", "application/json")
	return h, nil
}

func (s *Server) answer(w http.ResponseWriter, status int, v any) {
	var body []byte
	if v != nil {
		body, _ = json.Marshal(v)
	}
	header, err := s.sign(body, s.now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) fail(w http.ResponseWriter, status int, code, message string) {
	s.answer(w, status, map[string]string{"code": code, "message": message})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		s.fail(w, http.StatusInternalServerError, "SYSTEM_ERROR", "system error")
		return
	}
	if err := s.checkSignature(r, body); err != nil {
		s.fail(w, http.StatusUnauthorized, "SIGN_ERROR", err.Error())
		return
	}
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && (path == "/v3/pay/transactions/jsapi" || path == "/v3/pay/transactions/native"):
		s.order(w, strings.TrimPrefix(path, "/v3/pay/transactions/"), body)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v3/pay/transactions/out-trade-no/"):
		s.query(w, strings.TrimPrefix(path, "/v3/pay/transactions/out-trade-no/"), r.URL.Query().Get("mchid"))
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/close") && strings.HasPrefix(path, "/v3/pay/transactions/out-trade-no/"):
		s.close(w, strings.TrimSuffix(strings.TrimPrefix(path, "/v3/pay/transactions/out-trade-no/"), "/close"))
	case r.Method == http.MethodPost && path == "/v3/refund/domestic/refunds":
		s.refund(w, body)
	default:
		s.fail(w, http.StatusNotFound, "NOT_FOUND", "no such API")
	}
}

// checkSignature verifies a request as WeChat Pay does: the merchant, its
// certificate serial, a fresh timestamp and the signature.
func (s *Server) checkSignature(r *http.Request, body []byte) error {
	fields, err := wechatpay.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	if fields["mchid"] != MchID || fields["serial_no"] != MerchantSerial {
		return fmt.Errorf("unknown merchant %s / serial %s", fields["mchid"], fields["serial_no"])
	}
	seconds, err := strconv.ParseInt(fields["timestamp"], 10, 64)
	if err != nil || s.now().Sub(time.Unix(seconds, 0)).Abs() > wechatpay.TimestampSkewMax {
		return fmt.Errorf("stale timestamp %s", fields["timestamp"])
	}
	message := wechatpay.RequestMessage(r.Method, r.URL.RequestURI(), fields["timestamp"], fields["nonce_str"], body)
	return wechatpay.Verify(&s.MerchantKey.PublicKey, message, fields["signature"])
}

func (s *Server) order(w http.ResponseWriter, method string, body []byte) {
	var in struct {
		AppID       string `json:"appid"`
		MchID       string `json:"mchid"`
		Description string `json:"description"`
		OutTradeNo  string `json:"out_trade_no"`
		TimeExpire  string `json:"time_expire"`
		NotifyURL   string `json:"notify_url"`
		Amount      struct {
			Total    int64  `json:"total"`
			Currency string `json:"currency"`
		} `json:"amount"`
		Payer struct {
			OpenID string `json:"openid"`
		} `json:"payer"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.AppID != AppID || in.MchID != MchID || in.OutTradeNo == "" ||
		len(in.OutTradeNo) < 6 || len(in.OutTradeNo) > 32 || in.Description == "" || in.Amount.Total <= 0 || in.NotifyURL == "" ||
		(method == "jsapi" && in.Payer.OpenID == "") {
		s.fail(w, http.StatusBadRequest, "PARAM_ERROR", "invalid order")
		return
	}
	if _, err := time.Parse(time.RFC3339, in.TimeExpire); err != nil {
		s.fail(w, http.StatusBadRequest, "PARAM_ERROR", "time_expire")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[in.OutTradeNo]
	switch {
	case ok && (o.Total != in.Amount.Total || o.Method != method):
		s.fail(w, http.StatusBadRequest, "INVALID_REQUEST", "out_trade_no used with other parameters")
		return
	case ok && o.TradeState == "CLOSED":
		s.fail(w, http.StatusBadRequest, "ORDER_CLOSED", "order closed")
		return
	case ok && o.TradeState != "NOTPAY":
		s.fail(w, http.StatusBadRequest, "ORDERPAID", "order paid")
		return
	case !ok:
		var b [16]byte
		_, _ = rand.Read(b[:])
		o = &Order{
			OutTradeNo: in.OutTradeNo, Method: method, OpenID: in.Payer.OpenID, Total: in.Amount.Total,
			Currency: in.Amount.Currency, TradeState: "NOTPAY", NotifyURL: in.NotifyURL,
			PrepayID: "wx" + hex.EncodeToString(b[:]), CodeURL: "weixin://wxpay/bizpayurl?pr=" + hex.EncodeToString(b[:4]),
		}
		if o.Currency == "" {
			o.Currency = "CNY"
		}
		s.orders[in.OutTradeNo] = o
	}
	o.Creates++
	if method == "jsapi" {
		s.answer(w, http.StatusOK, map[string]string{"prepay_id": o.PrepayID})
		return
	}
	s.answer(w, http.StatusOK, map[string]string{"code_url": o.CodeURL})
}

func (s *Server) query(w http.ResponseWriter, outTradeNo, mchID string) {
	s.mu.Lock()
	o, ok := s.orders[outTradeNo]
	var order Order
	if ok {
		order = *o
	}
	s.mu.Unlock()
	if !ok || mchID != MchID {
		s.fail(w, http.StatusNotFound, "ORDER_NOT_EXIST", "order does not exist")
		return
	}
	s.answer(w, http.StatusOK, s.transaction(order))
}

func (s *Server) close(w http.ResponseWriter, outTradeNo string) {
	s.mu.Lock()
	o, ok := s.orders[outTradeNo]
	if !ok {
		// WeChat Pay closes an unknown out_trade_no too: it can no longer
		// be ordered.
		o = &Order{OutTradeNo: outTradeNo, TradeState: "CLOSED", Currency: "CNY"}
		s.orders[outTradeNo] = o
	}
	state := o.TradeState
	if state == "NOTPAY" {
		o.TradeState = "CLOSED"
	}
	s.mu.Unlock()
	if state == "SUCCESS" || state == "REFUND" {
		s.fail(w, http.StatusBadRequest, "ORDERPAID", "order paid")
		return
	}
	s.answer(w, http.StatusNoContent, nil)
}

func (s *Server) refund(w http.ResponseWriter, body []byte) {
	var in struct {
		TransactionID string `json:"transaction_id"`
		OutRefundNo   string `json:"out_refund_no"`
		Amount        struct {
			Refund   int64  `json:"refund"`
			Total    int64  `json:"total"`
			Currency string `json:"currency"`
		} `json:"amount"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.OutRefundNo == "" || in.Amount.Refund <= 0 {
		s.fail(w, http.StatusBadRequest, "PARAM_ERROR", "invalid refund")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refunds[in.OutRefundNo]; ok {
		s.answer(w, http.StatusOK, refundAnswer(r, in.Amount.Total, in.Amount.Currency))
		return
	}
	var paid *Order
	var refunded int64
	for _, o := range s.orders {
		if o.TransactionID == in.TransactionID && in.TransactionID != "" {
			paid = o
		}
	}
	for _, r := range s.refunds {
		if r.TransactionID == in.TransactionID {
			refunded += r.Amount
		}
	}
	if paid == nil || paid.Total != in.Amount.Total {
		s.fail(w, http.StatusBadRequest, "RESOURCE_NOT_EXISTS", "no such transaction")
		return
	}
	if refunded+in.Amount.Refund > paid.Total {
		s.fail(w, http.StatusForbidden, "NOT_ENOUGH", "refund exceeds the payment")
		return
	}
	r := Refund{RefundID: "5030" + randomDigits(24), OutRefundNo: in.OutRefundNo, TransactionID: in.TransactionID, Amount: in.Amount.Refund}
	s.refunds[in.OutRefundNo] = r
	paid.TradeState = "REFUND"
	s.answer(w, http.StatusOK, refundAnswer(r, in.Amount.Total, in.Amount.Currency))
}

func refundAnswer(r Refund, total int64, currency string) map[string]any {
	return map[string]any{
		"refund_id": r.RefundID, "out_refund_no": r.OutRefundNo, "transaction_id": r.TransactionID,
		"channel": "ORIGINAL", "status": "PROCESSING",
		"amount": map[string]any{"refund": r.Amount, "total": total, "currency": currency, "payer_refund": r.Amount},
	}
}
