package httpapi

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/problem"
)

// Write health. A database that is up but refuses writes (disk full, out of
// memory or connections, read-only after a failover) answers pings, so
// /readyz would stay 200 while every purchase fails. The error handler
// records each refusal; /readyz answers 503 while the last one is recent and
// no write has succeeded since, so a load balancer sends traffic elsewhere
// and retries the node after refusalHoldFor.

// refusalHoldFor is how long one refusal keeps /readyz at 503 when no write
// succeeds meanwhile: long enough for a balancer to notice, short enough to
// try again soon after the operator frees space.
const refusalHoldFor = 15 * time.Second

// retryAfterSeconds tells clients when to try again per refusal: freeing a
// disk takes an operator; the others pass by themselves.
var retryAfterSeconds = map[string]int{
	database.RefusalDiskFull:           30,
	database.RefusalOutOfMemory:        5,
	database.RefusalTooManyConnections: 2,
	database.RefusalReadOnly:           2,
}

type writeHealth struct {
	logger   *slog.Logger
	refusals *prometheus.CounterVec
	now      func() time.Time

	mu           sync.Mutex
	failingSince time.Time // zero while writes work
	lastRefusal  time.Time
	reason       string
}

func newWriteHealth(logger *slog.Logger, reg *prometheus.Registry) *writeHealth {
	w := &writeHealth{
		logger: logger,
		now:    time.Now,
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatpay_database_refusals_total",
			Help: "Requests the database refused for want of a resource or because it is read-only, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(w.refusals, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chatpay_database_writes_failing",
			Help: "1 while the database refuses writes (disk full, out of memory or connections, read-only), else 0.",
		}, func() float64 {
			if w.failing() != "" {
				return 1
			}
			return 0
		}))
	}
	return w
}

// refused records a refusal and returns the problem the client gets.
func (w *writeHealth) refused(reason string, err error) *problem.Error {
	w.refusals.WithLabelValues(reason).Inc()
	now := w.now()
	w.mu.Lock()
	first := w.failingSince.IsZero()
	if first {
		w.failingSince = now
	}
	w.lastRefusal, w.reason = now, reason
	w.mu.Unlock()
	if first {
		w.logger.Error("database refuses writes; answering 503 and /readyz not ready", "reason", reason,
			"sqlstate", database.SQLState(err), "error", err.Error())
	}
	return problem.New(problem.KindUnavailable, "database_"+reason,
		"the database cannot take this change now (%s); retry later with the same Idempotency-Key", reason).
		With("retry_after_seconds", retryAfterSeconds[reason])
}

// wrote records a change that went through.
func (w *writeHealth) wrote() {
	w.mu.Lock()
	since, reason := w.failingSince, w.reason
	w.failingSince = time.Time{}
	w.mu.Unlock()
	if !since.IsZero() {
		w.logger.Info("database takes writes again", "reason_was", reason, "failing_for", w.now().Sub(since).Round(time.Millisecond))
	}
}

// failing returns the reason writes fail, or "".
func (w *writeHealth) failing() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failingSince.IsZero() || w.now().Sub(w.lastRefusal) > refusalHoldFor {
		return ""
	}
	return w.reason
}
