package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// receiver is a loopback webhook endpoint that notes when each event
// arrived, and how long after its transaction.
type receiver struct {
	mu        sync.Mutex
	seen      map[string]bool
	latencies []time.Duration
	repeats   int
	first     time.Time
	last      time.Time
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	var envelope struct {
		ID        string    `json:"id"`
		Timestamp time.Time `json:"timestamp"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil || envelope.ID == "" {
		http.Error(w, "not an event", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.seen[envelope.ID] {
		rc.repeats++
	} else {
		rc.seen[envelope.ID] = true
		rc.latencies = append(rc.latencies, arrived.Sub(envelope.Timestamp))
		if rc.first.IsZero() {
			rc.first = arrived
		}
		rc.last = arrived
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.seen)
}

// scenarioWebhooks buys over the spread merchants through a channel of its
// own whose webhook endpoint (created through the API) is a loopback
// receiver, then waits for the outbox to drain.
func (e *env) scenarioWebhooks(ctx context.Context, w *world) (*Result, error) {
	rc := &receiver{seen: map[string]bool{}}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	server := &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(listener) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = server.Shutdown(shutdownCtx)
		cancel()
	}()

	channel, err := e.app.CreateChannel(ctx, "bench webhooks "+e.runID)
	if err != nil {
		return nil, err
	}
	url := "http://" + listener.Addr().String() + "/hooks"
	r, err := e.call(ctx, http.MethodPost, "/v1/webhooks/endpoints", channel.Key, "",
		map[string]any{"url": url, "description": "bench receiver"})
	if _, err := created("create webhook endpoint", r, err); err != nil {
		return nil, err
	}
	shoppers, err := e.createShoppers(ctx, channel, "hooks-"+e.runID, e.opts.Clients*2)
	if err != nil {
		return nil, err
	}
	var rngs = clientRands(e.opts.Clients, 3)
	l := e.drive(ctx, ScenarioWebhooks, e.opts.PurchasesMax, func(ctx context.Context, c, n int) outcome {
		item := w.items[rngs[c].IntN(len(w.items))]
		return e.purchase(ctx, channel, shoppers[c*2+n%2], item, e.key(ScenarioWebhooks, c, n))
	}, nil)
	res := l.result(ScenarioWebhooks)

	// Every paid order sends order.paid and coupon.issued.
	expected := 2 * res.Purchases
	receivedAtEnd := rc.count()
	deadline := time.Now().Add(drainTimeoutMax)
	for rc.count() < expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	lat := slices.Clone(rc.latencies)
	slices.Sort(lat)
	wh := &WebhookResult{Expected: expected, Received: len(rc.seen), ReceivedDuringLoad: receivedAtEnd, Repeats: rc.repeats,
		LatencyMs: latencies(lat)}
	if !rc.last.IsZero() {
		wh.DrainSeconds = round(max(0, rc.last.Sub(l.end).Seconds()), 2)
		span := rc.last.Sub(l.start).Seconds()
		wh.EventsPerSecond = round(float64(len(rc.seen))/span, 1)
	}
	res.Webhooks = wh
	return res, nil
}
