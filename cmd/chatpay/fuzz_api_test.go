package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/chatpay/chatpay/internal/apifuzz"
	"github.com/chatpay/chatpay/internal/httpapi"
)

var (
	fuzzAPIExamples = flag.Int("apifuzz.examples", 100, "requests per operation and seed in TestAPIFuzz")
	fuzzAPISeeds    = flag.Int("apifuzz.seeds", 3, "seeds TestAPIFuzz runs (1, 2, …)")
)

// TestAPIFuzz sends every /v1 operation of openapi.yaml valid and mutated
// requests with valid credentials and fails on any 5xx, undocumented status,
// non-problem error, answer that does not match its schema, or 201 without
// Location; the ledger audit must be clean afterwards. A longer run:
// go test ./cmd/chatpay -run TestAPIFuzz -apifuzz.examples 1000 -apifuzz.seeds 10
func TestAPIFuzz(t *testing.T) {
	start := time.Date(2026, 12, 1, 6, 30, 0, 0, time.UTC) // 14:30 in Shanghai
	ta := startTestApp(t, start)
	fx := newFuzzFixtures(t, ta)
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	var total apifuzz.Report
	for seed := 1; seed <= *fuzzAPISeeds; seed++ {
		report, err := apifuzz.Run(context.Background(), apifuzz.Config{
			BaseURL: ta.URL, Doc: doc, Client: &http.Client{Timeout: 10 * time.Second}, Seed: uint64(seed),
			ExamplesPerOperation: *fuzzAPIExamples, Authorization: fx.authorization, PathValue: fx.pathValue,
			Hints: fx.hints(), Skip: fx.skip, Deadline: time.Now().Add(5 * time.Minute), Now: start,
		})
		if err != nil {
			t.Fatal(err)
		}
		total.Requests += report.Requests
		total.Operations = report.Operations
		total.Failures = append(total.Failures, report.Failures...)
	}
	t.Logf("apifuzz: %d requests, %d operations, %d seeds, %d failures, %s",
		total.Requests, total.Operations, *fuzzAPISeeds, len(total.Failures), time.Since(began).Round(time.Millisecond))
	reportFuzzFailures(t, total.Failures)
	assertVerifyClean(t, ta)
}

// reportFuzzFailures prints one failure per operation and reason, with its
// curl line, so a broken promise is read once, not a hundred times.
func reportFuzzFailures(t *testing.T, failures []apifuzz.Failure) {
	t.Helper()
	seen := map[string]bool{}
	var lines []string
	for _, f := range failures {
		reason := f.Reason
		if i := strings.IndexAny(reason, ":\n"); i > 0 {
			reason = reason[:i]
		}
		key := fmt.Sprintf("%s|%d|%s", f.Operation, f.Status, reason)
		if seen[key] {
			continue
		}
		seen[key] = true
		lines = append(lines, fmt.Sprintf("%s [%s] → %d: %s\n    %s", f.Operation, f.Mutation, f.Status, f.Reason, f.Curl))
	}
	sort.Strings(lines)
	for i, l := range lines {
		if i == 40 {
			t.Errorf("… and %d more", len(lines)-40)
			break
		}
		t.Error(l)
	}
}

// fuzzFixtures are real objects for the fuzzer to aim at: a tea shop with an
// order, a coupon, a QR code, a webhook endpoint and a top-up.
type fuzzFixtures struct {
	authorization map[string]string
	ids           map[string][]string // path template → param values
	itemID        string
	shopperID     string
	channelID     string
	merchantID    string
}

func newFuzzFixtures(t *testing.T, ta *testApp) *fuzzFixtures {
	t.Helper()
	m, key := ta.merchant("McDonald's", "Asia/Shanghai")
	ch := ta.channel()
	item := ta.call("POST", "/v1/items", key, "", teaCard(500)).JSON(t)
	itemID := item["id"].(string)
	shopper := ta.call("POST", "/v1/channel/shoppers", ch.APIKey, "", map[string]any{"user_id": "42", "name": "Li Wei"}).JSON(t)
	shopperID := shopper["id"].(string)
	ta.fund(shopperID, 100000, "CNY")
	checkout := ta.call("POST", "/v1/channel/checkouts", ch.APIKey, "", map[string]any{
		"shopper_id": shopperID, "lines": []map[string]any{{"item_id": itemID, "quantity": 1}}}).JSON(t)
	checkoutID := checkout["id"].(string)
	receipt := ta.call("POST", "/v1/channel/checkouts/"+checkoutID+"/confirm", ch.APIKey, "fx-confirm", nil).JSON(t)
	orderID := receipt["order"].(map[string]any)["id"].(string)
	qrCode := ta.call("POST", "/v1/qr-codes", key, "", map[string]any{"item_id": itemID, "placement": "counter"}).JSON(t)
	endpoint := ta.call("POST", "/v1/webhooks/endpoints", key, "", map[string]any{"url": "https://127.0.0.1:9/hook"}).JSON(t)
	open := ta.call("POST", "/v1/channel/checkouts", ch.APIKey, "", map[string]any{
		"shopper_id": shopperID, "lines": []map[string]any{{"item_id": itemID, "quantity": 1}}}).JSON(t)
	str := func(v any) string { s, _ := v.(string); return s }
	return &fuzzFixtures{
		authorization: map[string]string{
			"merchantKey": "Bearer " + key, "channelKey": "Bearer " + ch.APIKey, "operatorToken": "Bearer " + testOperatorToken,
		},
		ids: map[string][]string{
			"/v1/items/{id}":                       {itemID},
			"/v1/orders/{id}":                      {orderID},
			"/v1/orders/{id}/refunds":              {orderID},
			"/v1/channel/shoppers/{id}":            {shopperID},
			"/v1/channel/checkouts/{id}":           {checkoutID, str(open["id"])},
			"/v1/qr-codes/{id}":                    {str(qrCode["id"])},
			"/v1/webhooks/endpoints/{id}":          {str(endpoint["id"])},
			"/v1/admin/channels/{id}":              {ch.Channel.ID},
			"/v1/admin/merchants/{id}":             {m.ID},
			"/v1/ledger/accounts/{kind}/statement": {"available", "deferred", "breakage"},
		},
		itemID: itemID, shopperID: shopperID, channelID: ch.Channel.ID, merchantID: m.ID,
	}
}

// pathValue picks a real id for the longest matching path prefix, so that
// /v1/items/{id} and /v1/channel/shoppers/{id}/wallet both find theirs.
func (fx *fuzzFixtures) pathValue(path, param string, r *rand.Rand) string {
	best := ""
	for prefix := range fx.ids {
		if strings.HasPrefix(path, prefix) && strings.Contains(prefix, "{"+param+"}") && len(prefix) > len(best) {
			best = prefix
		}
	}
	if best == "" {
		return ""
	}
	values := fx.ids[best]
	return values[r.IntN(len(values))]
}

func (fx *fuzzFixtures) hints() apifuzz.Hints {
	constant := func(v any) func(*rand.Rand) any { return func(*rand.Rand) any { return v } }
	return apifuzz.Hints{
		"currency":   constant("CNY"),
		"item_id":    constant(fx.itemID),
		"shopper_id": constant(fx.shopperID),
		"time_zone":  constant("Asia/Shanghai"),
		"status":     constant("active"), // suspending the merchant would end the run's credentials
		"quantity":   func(r *rand.Rand) any { return 1 + r.IntN(2) },
	}
}

// skip leaves out the operations that would take the fuzzer's own
// credentials away; their own tests cover them.
func (fx *fuzzFixtures) skip(method, path string) bool {
	return path == "/v1/admin/channels/{id}/rotate-key"
}
