package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
)

// The operator registers a messenger backend through the admin API, rotates
// its key after a leak (the old key stops at once), and suspends and
// reinstates a merchant (its key and its sales stop and resume).
func TestAdminAPI(t *testing.T) {
	ta := startTestApp(t, storyStart)
	const op = testOperatorToken

	t.Run("ErrNoOrWrongToken", func(t *testing.T) {
		for _, token := range []string{"", "sk_not_the_operator", op + "x", strings.ToUpper(op)} {
			wantProblem(t, ta.call("POST", "/v1/admin/channels", token, "", map[string]any{"name": "Tea bot", "kind": "telegram"}),
				http.StatusUnauthorized, "unauthorized")
		}
		if n := ta.count(`SELECT count(*) FROM channels`); n != 0 {
			t.Fatalf("%d channels after refused calls", n)
		}
	})
	t.Run("ErrInvalidChannel", func(t *testing.T) {
		for _, body := range []map[string]any{
			{"name": "", "kind": "telegram"},
			{"name": "Tea bot", "kind": "icq"},
			{"name": "Tea bot", "kind": "telegram", "ed25519_launch_public_key": "not base64!"},
			{"name": "Tea bot", "kind": "telegram", "ed25519_launch_public_key": "AAEC"},
		} {
			r := ta.call("POST", "/v1/admin/channels", op, "", body)
			if r.Status != http.StatusUnprocessableEntity {
				t.Errorf("%v: %d %s, want 422", body, r.Status, r.Body)
			}
		}
		if n := ta.count(`SELECT count(*) FROM channels`); n != 0 {
			t.Fatalf("%d channels after refused calls", n)
		}
	})

	created := ta.call("POST", "/v1/admin/channels", op, "", map[string]any{"name": "Tea bot", "kind": "telegram"})
	if created.Status != http.StatusCreated {
		t.Fatalf("create channel: %d %s", created.Status, created.Body)
	}
	doc := created.JSON(t)
	channelID := doc["channel"].(map[string]any)["id"].(string)
	oldKey := doc["api_key"].(string)
	if ta.call("POST", "/v1/channel/shoppers", oldKey, "", map[string]any{"user_id": "42"}).Status != http.StatusOK {
		t.Fatal("the new channel's key does not work")
	}
	if got := ta.call("GET", "/v1/admin/channels/"+channelID, op, "", nil); got.Status != http.StatusOK ||
		bytes.Contains(got.Body, []byte(oldKey)) || bytes.Contains(got.Body, []byte(doc["launch_secret"].(string))) {
		t.Fatalf("get channel: %d %s (secrets must never be shown again)", got.Status, got.Body)
	}

	rotated := ta.call("POST", "/v1/admin/channels/"+channelID+"/rotate-key", op, "", nil)
	if rotated.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", rotated.Status, rotated.Body)
	}
	newKey := rotated.JSON(t)["api_key"].(string)
	wantProblem(t, ta.call("POST", "/v1/channel/shoppers", oldKey, "", map[string]any{"user_id": "42"}), http.StatusUnauthorized, "invalid_api_key")
	if r := ta.call("POST", "/v1/channel/shoppers", newKey, "", map[string]any{"user_id": "42"}); r.Status != http.StatusOK {
		t.Fatalf("the rotated key: %d %s", r.Status, r.Body)
	}
	wantProblem(t, ta.call("POST", "/v1/admin/channels/chn_nosuchchannel/rotate-key", op, "", nil), http.StatusNotFound, "not_found")

	// Suspension: the merchant's key and its sales stop; reinstated, both resume.
	shop := ta.teaShop(10)
	ta.buy(shop, "7", map[string]int{shop.itemID: 1})
	status := func(s string) {
		t.Helper()
		r := ta.call("PUT", "/v1/admin/merchants/"+shop.merchant.ID+"/status", op, "", map[string]any{"status": s})
		if r.Status != http.StatusOK || r.JSON(t)["status"] != s {
			t.Fatalf("set status %s: %d %s", s, r.Status, r.Body)
		}
	}
	status("suspended")
	status("suspended") // a repeated PUT is harmless
	wantProblem(t, ta.call("GET", "/v1/merchant", shop.key, "", nil), http.StatusForbidden, "merchant_suspended")
	shopper, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, shop.channel.Channel.ID, "8", "Li Wei")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(shopper.ID, 10_000, "CNY")
	wantProblem(t, ta.call("POST", "/v1/channel/checkouts", shop.channel.APIKey, "", map[string]any{
		"shopper_id": shopper.ID, "lines": []map[string]any{{"item_id": shop.itemID, "quantity": 1}},
	}), http.StatusConflict, "item_unavailable")
	wantProblem(t, ta.call("PUT", "/v1/admin/merchants/"+shop.merchant.ID+"/status", op, "", map[string]any{"status": "closed"}),
		http.StatusUnprocessableEntity, "validation_failed")
	if r := ta.call("GET", "/v1/admin/merchants/"+shop.merchant.ID, op, "", nil); r.Status != http.StatusOK || r.JSON(t)["status"] != "suspended" {
		t.Fatalf("get merchant: %d %s", r.Status, r.Body)
	}
	status("active")
	if r := ta.call("GET", "/v1/merchant", shop.key, "", nil); r.Status != http.StatusOK {
		t.Fatalf("reinstated merchant's key: %d %s", r.Status, r.Body)
	}
	ta.buy(shop, "8", map[string]int{shop.itemID: 1})
	assertVerifyClean(t, ta)
}

// Without an operator token the admin API does not exist.
func TestAdminAPIOffWithoutToken(t *testing.T) {
	ta := startTestAppWith(t, storyStart, func(cfg *appConfig) { cfg.OperatorToken = "" })
	for _, token := range []string{"", testOperatorToken} {
		wantProblem(t, ta.call("POST", "/v1/admin/channels", token, "", map[string]any{"name": "Tea bot", "kind": "telegram"}),
			http.StatusNotFound, "route_not_found")
	}
}

// serve refuses a short operator token instead of guarding everything with it.
func TestServeRefusesShortOperatorToken(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--operator-token", "short", "--database-url", "postgres://127.0.0.1:1/none"},
		&out, &errOut, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "--operator-token: at least 32 characters") {
		t.Fatalf("serve with a short token: %v", err)
	}
}
