// Package sandbox is a stand-in card payment provider that runs as a real
// HTTP service, so that chatpay's provider client, its timeouts and its
// reconciliation are exercised over the network exactly as they would be
// against a real provider. It simulates an external system, so its records
// live in memory behind a mutex and vanish when it stops.
//
// Test cards (any spacing) decide the outcome of a charge:
//
//	4242 4242 4242 4242  captured
//	4000 0000 0000 0002  declined: card_declined
//	4000 0000 0000 9995  declined: insufficient_funds
//	4000 0000 0000 0119  captured, but the answer comes after SlowDelay (past a client's timeout)
//	4000 0000 0000 0500  captured, but the answer is a 500
//	4000 0000 0000 0341  the connection is reset before anything is recorded
//	4000 0000 0000 0259  the request is held in the network: nothing is recorded and the
//	                     client hears nothing until ReleaseLate; then it is captured,
//	                     unless its key was voided in the meantime
//
// Tokens "tok_visa", "tok_declined" and "tok_insufficient" stand for the
// first three. Any other card is declined as card_declined.
//
// API (JSON, amounts in minor units):
//
//	POST /v1/charges               {"amount_minor","currency","card"}; Idempotency-Key required
//	GET  /v1/charges?key=<key>     the charge made with that key, or 404
//	POST /v1/charges/void          {"key"}: no charge may be made with key from now on;
//	                               200 with the charge made before, or 404 when there was none
//	POST /v1/charges/{id}/refunds  {"amount_minor"}; Idempotency-Key required
//	GET  /v1/charges/{id}
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Test cards.
const (
	CardSuccess      = "4242424242424242"
	CardDeclined     = "4000000000000002"
	CardInsufficient = "4000000000009995"
	CardSlow         = "4000000000000119"
	CardServerError  = "4000000000000500"
	CardReset        = "4000000000000341"
	CardLate         = "4000000000000259"
)

// Charge statuses.
const (
	StatusCaptured = "captured"
	StatusDeclined = "declined"
)

// Limits of the sandbox.
const (
	// SlowDelayDefault is how long a CardSlow answer waits; clients time out first.
	SlowDelayDefault = 5 * time.Second
	// bodyBytesMax bounds a request body.
	bodyBytesMax = 4 << 10
	// chargesMax bounds the in-memory store; a sandbox is for tests and demos.
	chargesMax = 100_000
	// keyLengthMax bounds idempotency keys.
	keyLengthMax = 255
	// lateHoldMax bounds how long a CardLate request waits for ReleaseLate.
	lateHoldMax = time.Minute
)

// Charge is the provider's record of one charge.
type Charge struct {
	ID            string    `json:"id"`
	Key           string    `json:"key"`
	Status        string    `json:"status"`
	DeclineCode   string    `json:"decline_code,omitempty"`
	AmountMinor   int64     `json:"amount_minor"`
	Currency      string    `json:"currency"`
	RefundedMinor int64     `json:"refunded_minor"`
	CardLast4     string    `json:"card_last4"`
	CreatedAt     time.Time `json:"created_at"`
	requestHash   string
}

// Refund is the provider's record of one refund.
type Refund struct {
	ID          string `json:"id"`
	ChargeID    string `json:"charge_id"`
	Key         string `json:"key"`
	AmountMinor int64  `json:"amount_minor"`
}

// Server is the sandbox provider.
type Server struct {
	// SlowDelay is how long CardSlow answers wait.
	SlowDelay time.Duration
	now       func() time.Time

	mu          sync.Mutex
	charges     map[string]*Charge // by the client's idempotency key
	byID        map[string]*Charge
	refunds     map[string]*Refund // by the client's idempotency key
	voided      map[string]bool    // keys no charge may be made with
	lookupsDown bool
	late        chan struct{} // closed by ReleaseLate
	lateDone    chan string   // the key of each late request once processed
}

// New returns an empty sandbox with an injected clock.
func New(now func() time.Time) *Server {
	return &Server{
		SlowDelay: SlowDelayDefault, now: now,
		charges: map[string]*Charge{}, byID: map[string]*Charge{}, refunds: map[string]*Refund{}, voided: map[string]bool{},
		late: make(chan struct{}), lateDone: make(chan string, 64),
	}
}

// ReleaseLate lets every held CardLate request (and any later one) reach
// the sandbox.
func (s *Server) ReleaseLate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.late:
	default:
		close(s.late)
	}
}

// LateProcessed returns the keys of late requests processed since the last
// call, waiting up to wait for the first.
func (s *Server) LateProcessed(wait time.Duration) []string {
	var keys []string
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case key := <-s.lateDone:
		keys = append(keys, key)
	case <-timer.C:
		return nil
	}
	for {
		select {
		case key := <-s.lateDone:
			keys = append(keys, key)
		default:
			return keys
		}
	}
}

// SetLookupsDown makes status lookups answer 503, so tests can leave an
// outcome unknown until reconciliation.
func (s *Server) SetLookupsDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookupsDown = down
}

// Charges returns a copy of every charge, in creation order.
func (s *Server) Charges() []Charge {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Charge, 0, len(s.byID))
	for _, c := range s.byID {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Charge) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out
}

// Handler serves the sandbox API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/charges", s.charge)
	mux.HandleFunc("GET /v1/charges", s.lookup)
	mux.HandleFunc("POST /v1/charges/void", s.void)
	mux.HandleFunc("GET /v1/charges/{id}", s.get)
	mux.HandleFunc("POST /v1/charges/{id}/refunds", s.refund)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// Listen serves the sandbox on addr (a loopback address; port 0 picks a
// free one) until ctx ends or the returned stop is called. It returns the
// base URL.
func (s *Server) Listen(ctx context.Context, addr string) (baseURL string, stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", nil, fmt.Errorf("sandbox address %q: %w", addr, ErrNotLoopback)
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox listen: %w", err)
	}
	server := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(listener) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			s.ReleaseLate() // held requests end with the server, not a minute later
			shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if server.Shutdown(shutdownCtx) != nil {
				_ = server.Close() // slow answers still sleeping are cut off
			}
		})
	}
	go func() {
		<-ctx.Done()
		stop()
	}()
	return "http://" + listener.Addr().String(), stop, nil
}

type chargeRequest struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
	Card        string `json:"card"`
}

func (s *Server) charge(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" || len(key) > keyLengthMax {
		writeError(w, http.StatusBadRequest, "idempotency_key_required")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, bodyBytesMax))
	var in chargeRequest
	if err != nil || json.Unmarshal(raw, &in) != nil || in.AmountMinor <= 0 || len(in.Currency) != 3 {
		writeError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	card := normalizeCard(in.Card)
	if card == CardReset {
		// The connection dies before the charge is recorded: the client
		// cannot know, and a lookup finds nothing.
		resetConnection(w)
		return
	}
	hash := fmt.Sprintf("%d|%s|%s", in.AmountMinor, in.Currency, card)
	if card == CardLate {
		// Held in the network: the client times out long before the
		// provider sees the request, which then arrives on its own.
		select {
		case <-s.late:
		case <-time.After(lateHoldMax):
		}
		defer func() {
			select {
			case s.lateDone <- key:
			default:
			}
		}()
	}

	s.mu.Lock()
	c, found := s.charges[key]
	switch {
	case !found && s.voided[key]:
		s.mu.Unlock()
		writeError(w, http.StatusConflict, "key_voided")
		return
	case found && c.requestHash != hash:
		s.mu.Unlock()
		writeError(w, http.StatusUnprocessableEntity, "idempotency_key_reused")
		return
	case !found && len(s.charges) >= chargesMax:
		s.mu.Unlock()
		writeError(w, http.StatusInsufficientStorage, "sandbox_full")
		return
	case !found:
		c = &Charge{
			ID: newID("ch"), Key: key, Status: StatusCaptured, AmountMinor: in.AmountMinor, Currency: in.Currency,
			CardLast4: last4(card), CreatedAt: s.now(), requestHash: hash,
		}
		switch card {
		case CardSuccess, CardSlow, CardServerError, CardLate:
		case CardInsufficient:
			c.Status, c.DeclineCode = StatusDeclined, "insufficient_funds"
		default:
			c.Status, c.DeclineCode = StatusDeclined, "card_declined"
		}
		s.charges[key], s.byID[c.ID] = c, c
	}
	answer := *c
	delay := s.SlowDelay
	s.mu.Unlock()

	switch card {
	case CardSlow:
		// Captured, but the answer arrives after the client gave up.
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	case CardServerError:
		writeError(w, http.StatusInternalServerError, "internal_error")
		return
	}
	status := http.StatusCreated
	if found {
		status = http.StatusOK
	}
	writeJSON(w, status, answer)
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	s.mu.Lock()
	down := s.lookupsDown
	c, found := s.charges[key]
	var answer Charge
	if found {
		answer = *c
	}
	s.mu.Unlock()
	switch {
	case down:
		writeError(w, http.StatusServiceUnavailable, "lookups_unavailable")
	case !found:
		writeError(w, http.StatusNotFound, "charge_not_found")
	default:
		writeJSON(w, http.StatusOK, answer)
	}
}

// void closes a key: a charge request with it that arrives from now on is
// refused, so a client that gave up on a request can call it failed for good.
func (s *Server) void(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Key string `json:"key"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, bodyBytesMax))
	if err != nil || json.Unmarshal(raw, &in) != nil || in.Key == "" || len(in.Key) > keyLengthMax {
		writeError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	s.mu.Lock()
	c, found := s.charges[in.Key]
	var answer Charge
	full := !found && len(s.voided) >= chargesMax
	switch {
	case found:
		answer = *c
	case !full:
		s.voided[in.Key] = true
	}
	s.mu.Unlock()
	if full {
		writeError(w, http.StatusInsufficientStorage, "sandbox_full")
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, "charge_not_found")
		return
	}
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c, found := s.byID[r.PathValue("id")]
	var answer Charge
	if found {
		answer = *c
	}
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "charge_not_found")
		return
	}
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) refund(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" || len(key) > keyLengthMax {
		writeError(w, http.StatusBadRequest, "idempotency_key_required")
		return
	}
	var in struct {
		AmountMinor int64 `json:"amount_minor"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, bodyBytesMax))
	if err != nil || json.Unmarshal(raw, &in) != nil || in.AmountMinor <= 0 {
		writeError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if done, ok := s.refunds[key]; ok {
		writeJSON(w, http.StatusOK, *done)
		return
	}
	c, found := s.byID[r.PathValue("id")]
	switch {
	case !found:
		writeError(w, http.StatusNotFound, "charge_not_found")
	case c.Status != StatusCaptured:
		writeError(w, http.StatusUnprocessableEntity, "charge_not_captured")
	case in.AmountMinor > c.AmountMinor-c.RefundedMinor:
		writeError(w, http.StatusUnprocessableEntity, "refund_exceeds_charge")
	default:
		c.RefundedMinor += in.AmountMinor
		rf := &Refund{ID: newID("re"), ChargeID: c.ID, Key: key, AmountMinor: in.AmountMinor}
		s.refunds[key] = rf
		writeJSON(w, http.StatusCreated, *rf)
	}
}

// resetConnection hijacks the connection and closes it without a reply,
// which the client sees as a reset or an unexpected EOF.
func resetConnection(w http.ResponseWriter) {
	hijacker, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, http.StatusInternalServerError, "cannot_reset")
		return
	}
	conn, _, err := hijacker.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // a RST rather than an orderly FIN
	}
	_ = conn.Close()
}

func normalizeCard(card string) string {
	switch card {
	case "tok_visa":
		return CardSuccess
	case "tok_declined":
		return CardDeclined
	case "tok_insufficient":
		return CardInsufficient
	}
	return strings.NewReplacer(" ", "", "-", "").Replace(card)
}

func last4(card string) string {
	if len(card) < 4 {
		return card
	}
	return card[len(card)-4:]
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"code": code})
}

// ErrNotLoopback is returned by Listen for addresses off the machine.
var ErrNotLoopback = errors.New("sandbox: only loopback addresses are allowed")
