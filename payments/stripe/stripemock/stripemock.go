// Package stripemock runs Stripe's own mock server (stripe-mock, installed
// by `make ensure-stripe-mock`) on a loopback port for tests, behind a small
// loopback proxy that remembers what a test says happened on Stripe's side.
//
// stripe-mock validates every request against Stripe's OpenAPI document and
// answers with fixture objects, but keeps no state: every Checkout Session it
// returns has the same id and is "open" and "unpaid". The proxy therefore
// gives each session created under a new idempotency key its own id (as
// Stripe does), and overlays on stripe-mock's answers what the test declared
// with Pay or Expire. Every request still goes to stripe-mock first: one it
// refuses fails the calling code exactly as Stripe would.
package stripemock

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/stripe/stripe-go/v82"
)

// startTimeout bounds how long stripe-mock may take to listen.
const startTimeout = 60 * time.Second

// Session is what the proxy knows of one Checkout Session.
type Session struct {
	ID            string
	TopUpID       string
	AmountMinor   int64
	Currency      string
	Status        string // open, complete, expired
	PaymentStatus string // unpaid, paid
	PaymentIntent string
}

// Refund is a refund request stripe-mock accepted.
type Refund struct {
	ID, PaymentIntent, IdempotencyKey string
	AmountMinor                       int64
}

// Server is stripe-mock with its state-keeping proxy.
type Server struct {
	// URL is the proxy's base URL, to use as the Stripe API URL.
	URL string

	mock     *url.URL
	mu       sync.Mutex
	sessions map[string]*Session // by id
	byKey    map[string]string   // idempotency key → session id
	refunds  map[string]Refund   // by idempotency key
	creates  int
	down     bool
}

var listening = regexp.MustCompile(`Listening for HTTP at address: (\S+)`)

// Binary finds stripe-mock: $STRIPE_MOCK_BIN, bin/stripe-mock at the
// module's root, or the PATH.
func Binary() (string, error) {
	if bin := os.Getenv("STRIPE_MOCK_BIN"); bin != "" {
		return bin, nil
	}
	if dir, err := os.Getwd(); err == nil {
		for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if bin := filepath.Join(dir, "bin", "stripe-mock"); fileExists(bin) {
					return bin, nil
				}
				break
			}
		}
	}
	if bin, err := exec.LookPath("stripe-mock"); err == nil {
		return bin, nil
	}
	return "", fmt.Errorf("stripe-mock is not installed: run `make ensure-stripe-mock` (it installs Stripe's mock server into bin/)")
}

func fileExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir()
}

// Start runs stripe-mock and its proxy until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Both listeners on loopback: stripe-mock's HTTPS one would otherwise
	// bind every interface.
	cmd := exec.CommandContext(ctx, bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start stripe-mock: %v", err)
	}
	t.Cleanup(func() {
		cancel() // kills the process we started, by its PID
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if m := listening.FindStringSubmatch(scanner.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var mockAddr string
	select {
	case mockAddr = <-addr:
	case <-time.After(startTimeout):
		t.Fatalf("stripe-mock did not listen within %s", startTimeout)
	}
	s := &Server{
		mock:     &url.URL{Scheme: "http", Host: mockAddr},
		sessions: map[string]*Session{}, byKey: map[string]string{}, refunds: map[string]Refund{},
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(func() { _ = server.Close() })
	s.URL = "http://" + listener.Addr().String()
	return s
}

// Pay says the shopper paid the session: Stripe now reports it complete and
// paid, with a payment intent. It returns the intent's id.
func (s *Server) Pay(sessionID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	session := s.sessions[sessionID]
	if session == nil {
		panic("stripemock: no session " + sessionID)
	}
	session.Status, session.PaymentStatus = "complete", "paid"
	return session.PaymentIntent
}

// Session returns what the proxy knows of a session.
func (s *Server) Session(id string) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	session, ok := s.sessions[id]
	if !ok {
		return Session{}, false
	}
	return *session, true
}

// Creates counts the sessions created (not replayed by idempotency key).
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// Refunds returns the refunds made, by idempotency key.
func (s *Server) Refunds() map[string]Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Refund, len(s.refunds))
	for k, v := range s.refunds {
		out[k] = v
	}
	return out
}

// SetDown makes every call fail with a 503, as an outage would.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

var sessionPath = regexp.MustCompile(`^/v1/checkout/sessions/([^/]+)(/expire)?$`)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		http.Error(w, `{"error":{"type":"api_error","message":"down"}}`, http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	status, answer, err := s.forward(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if status == http.StatusOK {
		form, _ := url.ParseQuery(string(body))
		key := r.Header.Get("Idempotency-Key")
		switch m := sessionPath.FindStringSubmatch(r.URL.Path); {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions":
			answer = s.created(key, form, answer)
		case m != nil && m[2] == "/expire":
			status, answer = s.expired(m[1], answer)
		case m != nil && r.Method == http.MethodGet:
			answer = s.overlay(m[1], answer)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/refunds":
			answer = s.refunded(key, form, answer)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

func (s *Server) forward(r *http.Request, body []byte) (int, []byte, error) {
	target := *s.mock
	target.Path, target.RawQuery = r.URL.Path, r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, err
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (s *Server) created(key string, form url.Values, answer []byte) []byte {
	s.mu.Lock()
	id, replay := s.byKey[key]
	if !replay || key == "" {
		id = newID("cs_test_")
		var amount int64
		_, _ = fmt.Sscan(form.Get("line_items[0][price_data][unit_amount]"), &amount)
		s.sessions[id] = &Session{
			ID: id, TopUpID: form.Get("client_reference_id"), AmountMinor: amount,
			Currency: form.Get("line_items[0][price_data][currency]"), Status: "open", PaymentStatus: "unpaid",
			PaymentIntent: newID("pi_"),
		}
		s.byKey[key] = id
		s.creates++
	}
	s.mu.Unlock()
	return s.overlay(id, answer)
}

// expired answers an expire call as Stripe does: an open session expires,
// any other is refused.
func (s *Server) expired(id string, answer []byte) (int, []byte) {
	s.mu.Lock()
	session := s.sessions[id]
	if session != nil && session.Status != "open" {
		s.mu.Unlock()
		return http.StatusBadRequest, []byte(`{"error":{"type":"invalid_request_error","message":"Only Checkout Sessions with a status of open can be expired."}}`)
	}
	if session != nil {
		session.Status = "expired"
	}
	s.mu.Unlock()
	return http.StatusOK, s.overlay(id, answer)
}

func (s *Server) overlay(id string, answer []byte) []byte {
	s.mu.Lock()
	session := s.sessions[id]
	var copied Session
	if session != nil {
		copied = *session
	}
	s.mu.Unlock()
	if session == nil {
		return answer
	}
	var object map[string]any
	if err := json.Unmarshal(answer, &object); err != nil {
		return answer
	}
	object["id"], object["status"], object["payment_status"] = copied.ID, copied.Status, copied.PaymentStatus
	object["amount_total"], object["currency"], object["client_reference_id"] = copied.AmountMinor, copied.Currency, copied.TopUpID
	object["metadata"] = map[string]string{"chatpay_top_up_id": copied.TopUpID}
	object["url"] = "https://checkout.stripe.com/c/pay/" + copied.ID
	if pi, ok := object["payment_intent"].(map[string]any); ok {
		pi["id"] = copied.PaymentIntent
	} else {
		object["payment_intent"] = copied.PaymentIntent
	}
	out, err := json.Marshal(object)
	if err != nil {
		return answer
	}
	return out
}

func (s *Server) refunded(key string, form url.Values, answer []byte) []byte {
	var object map[string]any
	if err := json.Unmarshal(answer, &object); err != nil {
		return answer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, replay := s.refunds[key]
	if !replay || key == "" {
		r = Refund{ID: newID("re_"), PaymentIntent: form.Get("payment_intent"), IdempotencyKey: key}
		_, _ = fmt.Sscan(form.Get("amount"), &r.AmountMinor)
		s.refunds[key] = r
	}
	object["id"], object["amount"], object["payment_intent"], object["status"] = r.ID, r.AmountMinor, r.PaymentIntent, "succeeded"
	out, err := json.Marshal(object)
	if err != nil {
		return answer
	}
	return out
}

// Event builds a webhook event body of type about object, as Stripe sends
// it (the test signs it with webhook.GenerateTestSignedPayload).
func Event(id, eventType string, object map[string]any) []byte {
	body, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": eventType, "api_version": sdk.APIVersion,
		"created": time.Now().Unix(), "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": object},
	})
	return body
}

// SessionObject is the checkout.session object of an event about session.
func SessionObject(session Session) map[string]any {
	return map[string]any{
		"id": session.ID, "object": "checkout.session", "status": session.Status, "payment_status": session.PaymentStatus,
		"amount_total": session.AmountMinor, "currency": strings.ToLower(session.Currency),
		"client_reference_id": session.TopUpID, "payment_intent": session.PaymentIntent,
		"metadata": map[string]string{"chatpay_top_up_id": session.TopUpID},
	}
}

// PaymentIntentObject is the payment_intent object of an event about
// session's payment.
func PaymentIntentObject(session Session) map[string]any {
	return map[string]any{
		"id": session.PaymentIntent, "object": "payment_intent", "status": "succeeded",
		"amount": session.AmountMinor, "amount_received": session.AmountMinor, "currency": strings.ToLower(session.Currency),
		"metadata": map[string]string{"chatpay_top_up_id": session.TopUpID},
	}
}
