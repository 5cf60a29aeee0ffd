package httpapi

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatpay/chatpay/internal/database"
)

// Readiness follows refusals: not ready from the first refusal until a write
// goes through, or until refusalHoldFor passes without another refusal (a
// balancer that stopped sending traffic must get to try the node again).
func TestWriteHealth(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	w := newWriteHealth(slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	w.now = func() time.Time { return now }
	if got := w.failing(); got != "" {
		t.Fatalf("failing before any refusal: %q", got)
	}
	p := w.refused(database.RefusalDiskFull, &pq.Error{Code: database.CodeDiskFull})
	if p.Code != "database_disk_full" || p.Extensions["retry_after_seconds"] != 30 {
		t.Fatalf("problem %+v", p)
	}
	now = now.Add(refusalHoldFor - time.Second)
	if got := w.failing(); got != database.RefusalDiskFull {
		t.Fatalf("failing within the hold: %q", got)
	}
	now = now.Add(2 * time.Second)
	if got := w.failing(); got != "" {
		t.Fatalf("still failing after the hold without a new refusal: %q", got)
	}
	w.refused(database.RefusalReadOnly, errors.New("x"))
	w.wrote()
	if got := w.failing(); got != "" {
		t.Fatalf("failing after a write went through: %q", got)
	}
}
