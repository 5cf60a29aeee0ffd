package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/testdb"
)

// hookLog records the webhooks a receiver got, with when they arrived.
type hookLog struct {
	mu   sync.Mutex
	got  []hookArrival
	hits chan struct{}
}

type hookArrival struct {
	Type      string
	Livemode  bool
	Timestamp time.Time
	Data      map[string]any
	At        time.Time
}

// startHookReceiver answers 204 to every webhook and logs it; it stops with the test.
func startHookReceiver(t *testing.T) (*hookLog, string) {
	t.Helper()
	log := &hookLog{hits: make(chan struct{}, 1024)}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var env struct {
			Type      string         `json:"type"`
			Livemode  bool           `json:"livemode"`
			Timestamp time.Time      `json:"timestamp"`
			Data      map[string]any `json:"data"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Errorf("webhook body: %v: %s", err, raw)
		}
		log.mu.Lock()
		log.got = append(log.got, hookArrival{Type: env.Type, Livemode: env.Livemode, Timestamp: env.Timestamp, Data: env.Data, At: time.Now()})
		log.mu.Unlock()
		log.hits <- struct{}{}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(server.Close)
	return log, server.URL
}

// waitFor returns the first arrival of type typ whose data passes match, or
// fails the test after within.
func (l *hookLog) waitFor(t *testing.T, typ string, match func(map[string]any) bool, within time.Duration) hookArrival {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, a := range l.got {
			if a.Type == typ && (match == nil || match(a.Data)) {
				l.mu.Unlock()
				return a
			}
		}
		l.mu.Unlock()
		select {
		case <-l.hits:
		case <-deadline.C:
			t.Fatalf("no %s webhook within %s", typ, within)
		}
	}
}

// orderPaidOf matches the order.paid of one order.
func orderPaidOf(orderID string) func(map[string]any) bool {
	return func(data map[string]any) bool {
		order, _ := data["order"].(map[string]any)
		return order != nil && order["id"] == orderID
	}
}

// Regression: `chatpay expire --now T` with T months ahead used to schedule
// the coupon.expired delivery at T, and since a conversation's deliveries go
// out in order, every later event of that chat waited months behind it. The
// event's timestamp is T; its delivery is due at once.
func TestExpireInTheFutureDoesNotParkTheChat(t *testing.T) {
	ta := startTestApp(t, storyStart)
	log, receiverURL := startHookReceiver(t)
	shop := ta.teaShop(100)
	endpoint := ta.call("POST", "/v1/webhooks/endpoints", shop.channel.APIKey, "", map[string]any{"url": receiverURL})
	if endpoint.Status != http.StatusCreated {
		t.Fatalf("endpoint: %d %s", endpoint.Status, endpoint.Body)
	}
	// A dispatcher that LISTENs, as serve's does: "at once" is not a poll away.
	dispatcher, err := ta.app.cfg.Webhooks.dispatcher(ta.db, ta.dsn, testdb.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dispatcher.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
	first, _ := ta.buy(shop, "42", map[string]int{shop.itemID: 1})
	log.waitFor(t, "order.paid", orderPaidOf(first), 10*time.Second)

	expiry := shanghai(t, 2027, 2, 22, 0, 0, 0) // the day after t0 + P3M
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"expire", "--database-url", ta.dsn, "--dev-allow-unsafe-durability",
		"--now", expiry.Format(time.RFC3339)}, &out, &errOut, func(string) string { return "" })
	if err != nil || out.String() != "expired 1 coupons\n" {
		t.Fatalf("expire: %v %q %s", err, out.String(), errOut.String())
	}
	expired := log.waitFor(t, "coupon.expired", nil, 10*time.Second)
	if !expired.Timestamp.Equal(expiry) {
		t.Fatalf("coupon.expired timestamp %s, want the --now instant %s", expired.Timestamp, expiry)
	}

	bought := time.Now()
	second, _ := ta.buy(shop, "42", map[string]int{shop.itemID: 1})
	paid := log.waitFor(t, "order.paid", orderPaidOf(second), 10*time.Second)
	if took := paid.At.Sub(bought); took > time.Second {
		t.Fatalf("the next order.paid of the chat took %s, want under a second", took)
	}
	t.Logf("order.paid after an expire at %s delivered %s after the purchase", expiry.Format(time.DateOnly), paid.At.Sub(bought).Round(time.Millisecond))
}
