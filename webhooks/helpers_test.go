package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/testdb"
)

// devPolicy lets tests reach receivers on 127.0.0.1.
var devPolicy = URLPolicy{AllowHTTP: true, AllowLoopback: true}

// received is one webhook a test receiver accepted.
type received struct {
	Envelope Envelope
	Data     OrderPaidData
	At       time.Time
}

// receiver is a real HTTP server on 127.0.0.1 that verifies every webhook
// and answers what decide says (200 when decide is nil).
type receiver struct {
	t      *testing.T
	server *httptest.Server
	secret string
	decide func(env Envelope) int

	mu       sync.Mutex
	accepted []received
	counts   map[string]int // event id → 2xx answers
	requests int
	badSigs  int
}

func newReceiver(t *testing.T, decide func(env Envelope) int) *receiver {
	r := &receiver{t: t, decide: decide, counts: map[string]int{}}
	r.server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.server.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.secret != "" {
		if err := Verify(r.secret, req.Header, body, VerifyToleranceDefault, time.Now()); err != nil {
			r.badSigs++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	var env Envelope
	if err := json.Unmarshal(body, &env); err != nil || env.ID != req.Header.Get(HeaderID) {
		r.badSigs++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	status := http.StatusOK
	if r.decide != nil {
		status = r.decide(env)
	}
	if status >= 200 && status < 300 {
		var data OrderPaidData
		_ = json.Unmarshal(env.Data, &data)
		r.accepted = append(r.accepted, received{Envelope: env, Data: data, At: time.Now()})
		r.counts[env.ID]++
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (r *receiver) snapshot() (accepted []received, counts map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts = make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		counts[k] = v
	}
	return append([]received(nil), r.accepted...), counts
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fixture struct {
	db  *sqlx.DB
	dsn string
	svc *Service
}

func newFixture(t *testing.T) *fixture {
	dsn := testdb.DSN(t)
	db, err := database.Open(context.Background(), dsn, database.PoolOptions{MaxOpenConns: 60, MaxIdleConns: 60})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &fixture{db: db, dsn: dsn, svc: NewService(db, devPolicy, time.Now)}
}

// endpoint creates an endpoint for owner pointing at r and gives r its secret.
func (f *fixture) endpoint(t *testing.T, owner Owner, r *receiver, types ...string) Endpoint {
	t.Helper()
	ep, secret, err := f.svc.CreateEndpoint(context.Background(), owner, EndpointInput{URL: r.server.URL + "/hook", EventTypes: types})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.secret = secret.Secret
	r.mu.Unlock()
	return ep
}

// fastConfig compresses every delay so tests run in milliseconds.
func (f *fixture) fastConfig(t *testing.T) DispatcherConfig {
	return DispatcherConfig{
		DB: f.db, ListenDSN: f.dsn, Logger: testdb.Logger(t), Policy: devPolicy,
		PollInterval:  50 * time.Millisecond,
		HTTPTimeout:   2 * time.Second,
		RetrySchedule: []time.Duration{0, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond},
	}
}

// start runs a dispatcher until the returned stop is called (or the test ends).
func start(t *testing.T, d *Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("dispatcher: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newDispatcher(t *testing.T, cfg DispatcherConfig) *Dispatcher {
	t.Helper()
	d, err := NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// paid builds an order.paid event in chat chatID of channel ch for merchant m.
func paid(ch, m, chatID string, n int) Event {
	return OrderPaid(time.Now(), OrderPaidData{
		ChatData: ChatData{Chat: Chat{ChannelID: ch, ExternalUserID: "u1", ChatID: chatID}, Message: "Paid 3.00 CNY — Tea card"},
		Order:    Order{ID: "ord_" + chatID + "_" + itoa(n), MerchantID: m, Total: Amount{Amount: "3.00", Currency: "CNY"}, Lines: []OrderLine{{ItemID: "item_1", Title: "Tea card", Quantity: n, UnitPrice: Amount{Amount: "3.00", Currency: "CNY"}}}},
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// enqueueCommitted writes events in one committed transaction.
func (f *fixture) enqueueCommitted(t testing.TB, events ...Event) {
	t.Helper()
	err := database.WithTx(context.Background(), f.db, nil, func(tx *sqlx.Tx) error {
		for _, e := range events {
			if err := Enqueue(context.Background(), tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.db.GetContext(context.Background(), &n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}
