package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/webhooks"
)

// A database that refuses writes for want of a resource, or because it is
// read-only, is an outage, not a bug: the answer is 503 with Retry-After
// and a stable code, /readyz is 503 while writes fail, a metric counts the
// refusals, and nothing is half-written. The refusals come from the real
// PostgreSQL: a trigger on items raises each SQLSTATE the server itself
// raises when its disk or memory runs out or it is a standby.
func TestDatabaseRefusalsFailSoft(t *testing.T) {
	for _, tc := range []struct {
		name, errcode, code, retryAfter string
	}{
		{"DiskFull", "disk_full", "database_disk_full", "30"},
		{"OutOfMemory", "out_of_memory", "database_out_of_memory", "5"},
		{"TooManyConnections", "too_many_connections", "database_too_many_connections", "2"},
		{"ReadOnly", "read_only_sql_transaction", "database_read_only", "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ta := startTestApp(t, time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC))
			_, key := ta.merchant("Tea House", "Asia/Shanghai")
			ta.db.MustExec(fmt.Sprintf(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'simulated refusal' USING ERRCODE = '%s'; END $$`, tc.errcode))
			ta.db.MustExec(`CREATE TRIGGER refuse BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION refuse()`)

			r := ta.call("POST", "/v1/items", key, "item-1", teaCard(10))
			if r.Status != http.StatusServiceUnavailable || r.JSON(t)["code"] != tc.code || r.Header.Get("Retry-After") != tc.retryAfter {
				t.Fatalf("want 503 %s with Retry-After %s, got %d (Retry-After %q): %s", tc.code, tc.retryAfter, r.Status, r.Header.Get("Retry-After"), r.Body)
			}
			if n := ta.count(`SELECT count(*) FROM items`); n != 0 {
				t.Fatalf("%d items written by a refused request", n)
			}
			if got := ta.get("/readyz"); got.Status != http.StatusServiceUnavailable || !strings.Contains(string(got.Body), "refuses writes") {
				t.Fatalf("/readyz while writes fail: %d %s", got.Status, got.Body)
			}
			metrics := ta.get("/metrics").Body
			for _, want := range []string{
				fmt.Sprintf(`chatpay_database_refusals_total{reason=%q} 1`, strings.TrimPrefix(tc.code, "database_")),
				"chatpay_database_writes_failing 1",
			} {
				if !strings.Contains(string(metrics), want) {
					t.Errorf("metrics lack %s", want)
				}
			}

			// Space freed: the retry with the same key goes through and
			// readiness comes back without a restart.
			ta.db.MustExec(`DROP TRIGGER refuse ON items`)
			if r := ta.call("POST", "/v1/items", key, "item-1", teaCard(10)); r.Status != http.StatusCreated {
				t.Fatalf("retry after the refusal: %d %s", r.Status, r.Body)
			}
			if got := ta.get("/readyz"); got.Status != http.StatusOK {
				t.Fatalf("/readyz after writes work again: %d %s", got.Status, got.Body)
			}
			if m := ta.get("/metrics").Body; !strings.Contains(string(m), "chatpay_database_writes_failing 0") {
				t.Errorf("writes_failing gauge not back to 0")
			}
		})
	}
}

// The webhook backlog is exported for alerting: pending deliveries and the
// age of the oldest.
func TestWebhookBacklogMetrics(t *testing.T) {
	ta := startTestApp(t, time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC))
	m, _ := ta.merchant("Tea House", "Asia/Shanghai")
	owner := webhooks.Owner{Kind: webhooks.OwnerMerchant, ID: m.ID}
	ep, _, err := ta.app.webhooks.CreateEndpoint(context.Background(), owner, webhooks.EndpointInput{URL: "http://127.0.0.1:1/hook"})
	if err != nil {
		t.Fatal(err)
	}
	if metrics := string(ta.get("/metrics").Body); !strings.Contains(metrics, "chatpay_webhook_deliveries_pending 0") {
		t.Fatalf("no backlog yet:\n%s", metrics)
	}
	for range 3 {
		if _, err := ta.app.webhooks.SendTest(context.Background(), owner, ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	ta.clock.Add(90 * time.Second) // no dispatcher runs: they wait
	metrics := string(ta.get("/metrics").Body)
	if !strings.Contains(metrics, "chatpay_webhook_deliveries_pending 3") || !strings.Contains(metrics, "chatpay_webhook_oldest_pending_seconds 90") {
		t.Fatalf("backlog of 3, 90 s old, not in the metrics:\n%s", metrics)
	}
}
