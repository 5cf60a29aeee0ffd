package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/webhooks"
)

// raw sends bytes exactly as given, with the headers given and nothing else,
// so hostile requests reach the server as a hostile client would send them.
func (ta *testApp) raw(method, path string, header map[string]string, body []byte) apiResponse {
	ta.t.Helper()
	req, err := http.NewRequest(method, ta.URL+path, bytes.NewReader(body))
	if err != nil {
		ta.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// TestContractRegressions holds one case for every contract breach found by
// trying the API from outside (issue 14): none may answer 5xx, each answers
// the documented problem, and nothing is half-written.
func TestContractRegressions(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	orderID, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 2})
	shopperID := coupons[0].ShopperID
	merchantJSON := map[string]string{"Authorization": "Bearer " + shop.key, "Content-Type": "application/json"}
	channelJSON := map[string]string{"Authorization": "Bearer " + shop.channel.APIKey, "Content-Type": "application/json"}
	want := func(t *testing.T, r apiResponse, status int, code string) {
		t.Helper()
		if r.Status != status || !strings.Contains(string(r.Body), `"code":"`+code+`"`) ||
			!strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("want %d %s, got %d %s %s", status, code, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
	}
	ordersBefore := ta.count(`SELECT count(*) FROM orders`)

	t.Run("ErrNULInSignInForm", func(t *testing.T) {
		r := ta.postForm("/dashboard/login", url.Values{"email": {"demo\x00@x"}, "password": {"x"}})
		want(t, r, http.StatusUnprocessableEntity, "validation_failed")
	})
	t.Run("ErrNULInLaunchContext", func(t *testing.T) {
		launch := payments.SignLaunch(shop.channel.LaunchSecret, map[string]string{
			"channel_id": shop.channel.Channel.ID, "user_id": "4\x002", "auth_date": strconv.FormatInt(ta.clock.Now().Unix(), 10)})
		codeURL := ta.call("POST", "/v1/qr-codes", shop.key, "", map[string]any{"item_id": shop.itemID}).JSON(t)["url"].(string)
		u, _ := url.Parse(codeURL)
		r := ta.get(u.Path + "?launch=" + url.QueryEscape(launch))
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("ErrNULInPathID", func(t *testing.T) {
		want(t, ta.raw("GET", "/v1/channel/shoppers/%00/wallet?currency=CNY", channelJSON, nil), http.StatusNotFound, "not_found")
	})
	t.Run("ErrLoneSurrogateInPathID", func(t *testing.T) {
		want(t, ta.raw("GET", "/v1/channel/checkouts/%ed%a0%80", channelJSON, nil), http.StatusNotFound, "not_found")
	})
	t.Run("ErrNULInRedemptionCode", func(t *testing.T) {
		want(t, ta.raw("POST", "/v1/redemptions", merchantJSON, []byte(`{"code":"\u0000"}`)), http.StatusUnprocessableEntity, "validation_failed")
	})
	t.Run("OKChineseNameKeptWhole", func(t *testing.T) {
		name := strings.Repeat("测试", 50) // 100 characters, 300 bytes
		r := ta.call("POST", "/v1/channel/shoppers", shop.channel.APIKey, "", map[string]any{"user_id": "cn", "name": name})
		if r.Status != http.StatusOK || r.JSON(t)["display_name"] != name {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("ErrNameOverLimitRefusedNotCut", func(t *testing.T) {
		r := ta.call("POST", "/v1/channel/shoppers", shop.channel.APIKey, "", map[string]any{"user_id": "cn2", "name": strings.Repeat("测", 257)})
		want(t, r, http.StatusUnprocessableEntity, "validation_failed")
	})
	t.Run("OKCategoryCountedInCharacters", func(t *testing.T) {
		item := teaCard(5)
		item["sku"], item["category"] = "TEA-CN", strings.Repeat("茶", 64)
		if r := ta.call("POST", "/v1/items", shop.key, "", item); r.Status != http.StatusCreated {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		item["sku"], item["category"] = "TEA-CN2", strings.Repeat("茶", 65)
		want(t, ta.call("POST", "/v1/items", shop.key, "", item), http.StatusUnprocessableEntity, "validation_failed")
	})
	for name, body := range map[string]string{"ErrRefundEmptyCouponID": `{"coupon_id":""}`, "ErrRefundNullCouponID": `{"coupon_id":null}`} {
		t.Run(name, func(t *testing.T) {
			want(t, ta.raw("POST", "/v1/orders/"+orderID+"/refunds", merchantJSON, []byte(body)), http.StatusUnprocessableEntity, "validation_failed")
			if n := ta.count(`SELECT count(*) FROM refunds WHERE order_id = $1`, orderID); n != 0 {
				t.Fatalf("%d refunds written", n)
			}
		})
	}
	for _, ttl := range []string{"-1", "0", "86401", "10000000000000"} {
		t.Run("ErrTTL"+ttl, func(t *testing.T) {
			till := `{"ttl_seconds":` + ttl + `,"lines":[{"item_id":"` + shop.itemID + `","quantity":1}]}`
			want(t, ta.raw("POST", "/v1/checkouts", merchantJSON, []byte(till)), http.StatusUnprocessableEntity, "validation_failed")
			hold := `{"ttl_seconds":` + ttl + `,"shopper_id":"` + shopperID + `","lines":[{"item_id":"` + shop.itemID + `","quantity":1}]}`
			want(t, ta.raw("POST", "/v1/channel/checkouts", channelJSON, []byte(hold)), http.StatusUnprocessableEntity, "validation_failed")
		})
	}
	t.Run("ErrLimitZero", func(t *testing.T) {
		want(t, ta.raw("GET", "/v1/orders?limit=0", merchantJSON, nil), http.StatusUnprocessableEntity, "validation_failed")
		want(t, ta.raw("GET", "/v1/ledger/accounts/deferred/statement?limit=0", merchantJSON, nil), http.StatusUnprocessableEntity, "validation_failed")
		want(t, ta.raw("GET", "/v1/items?limit=0", merchantJSON, nil), http.StatusUnprocessableEntity, "validation_failed")
	})
	t.Run("ErrQRCodeNotFoundIsNotFound", func(t *testing.T) {
		want(t, ta.raw("GET", "/v1/qr-codes/qr_nosuchcode", merchantJSON, nil), http.StatusNotFound, "not_found")
	})
	t.Run("OKListsShareOneShape", func(t *testing.T) {
		for _, path := range []string{"/v1/items", "/v1/orders", "/v1/qr-codes", "/v1/webhooks/endpoints", "/v1/ledger/accounts/deferred/statement"} {
			var page map[string]json.RawMessage
			r := ta.raw("GET", path, merchantJSON, nil)
			if err := json.Unmarshal(r.Body, &page); err != nil || page["data"] == nil || page["next_cursor"] == nil {
				t.Fatalf("%s: %d %s", path, r.Status, r.Body)
			}
		}
		r := ta.raw("GET", "/v1/channel/shoppers/"+shopperID+"/coupons", channelJSON, nil)
		if !bytes.Contains(r.Body, []byte(`"data":[`)) || !bytes.Contains(r.Body, []byte(`"next_cursor":null`)) {
			t.Fatalf("coupons: %s", r.Body)
		}
	})
	t.Run("OKLocationOnCreatedAndReplayed", func(t *testing.T) {
		item := teaCard(5)
		item["sku"] = "TEA-LOC"
		first := ta.call("POST", "/v1/items", shop.key, "loc-1", item)
		again := ta.call("POST", "/v1/items", shop.key, "loc-1", item)
		loc := first.Header.Get("Location")
		if first.Status != http.StatusCreated || loc != "/v1/items/"+first.JSON(t)["id"].(string) || again.Header.Get("Location") != loc {
			t.Fatalf("Location %q then %q", loc, again.Header.Get("Location"))
		}
		if got := ta.raw("GET", loc, merchantJSON, nil); got.Status != http.StatusOK {
			t.Fatalf("GET Location: %d", got.Status)
		}
	})
	t.Run("ErrBadAmountIs422Everywhere", func(t *testing.T) {
		bad := `{"amount":{"amount":"1.001","currency":"CNY"}}`
		want(t, ta.raw("POST", "/v1/channel/shoppers/"+shopperID+"/topups", channelJSON, []byte(bad)), http.StatusUnprocessableEntity, "validation_failed")
		want(t, ta.raw("POST", "/v1/orders/"+orderID+"/refunds", merchantJSON, []byte(bad)), http.StatusUnprocessableEntity, "validation_failed")
		item := `{"sku":"X","title":"X","kind":"product","price":{"amount":"1.001","currency":"CNY"}}`
		want(t, ta.raw("POST", "/v1/items", merchantJSON, []byte(item)), http.StatusUnprocessableEntity, "validation_failed")
	})
	t.Run("ErrBodyNotSentAsJSON", func(t *testing.T) {
		body := []byte(`{"item_id":"` + shop.itemID + `"}`)
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
			h := map[string]string{"Authorization": "Bearer " + shop.key}
			if ct != "" {
				h["Content-Type"] = ct
			}
			want(t, ta.raw("POST", "/v1/qr-codes", h, body), http.StatusUnsupportedMediaType, "unsupported_media_type")
		}
	})
	t.Run("ErrDuplicateAndCaseFoldedNames", func(t *testing.T) {
		want(t, ta.raw("POST", "/v1/qr-codes", merchantJSON, []byte(`{"item_id":"`+shop.itemID+`","item_id":"x"}`)), http.StatusUnprocessableEntity, "validation_failed")
		want(t, ta.raw("POST", "/v1/qr-codes", merchantJSON, []byte(`{"ITEM_ID":"`+shop.itemID+`"}`)), http.StatusUnprocessableEntity, "validation_failed")
		want(t, ta.raw("PATCH", "/v1/merchant", merchantJSON, []byte(`{"Name":"Renamed"}`)), http.StatusUnprocessableEntity, "validation_failed")
	})
	t.Run("ErrBlankIdempotencyKey", func(t *testing.T) {
		h := map[string]string{"Authorization": "Bearer " + shop.key, "Content-Type": "application/json", "Idempotency-Key": " "}
		want(t, ta.raw("POST", "/v1/qr-codes", h, []byte(`{"item_id":"`+shop.itemID+`"}`)), http.StatusBadRequest, "idempotency_key_invalid")
	})
	if n := ta.count(`SELECT count(*) FROM orders`); n != ordersBefore {
		t.Fatalf("orders %d → %d: a refused request wrote one", ordersBefore, n)
	}
	assertVerifyClean(t, ta)
}

// TestWebhookDocsMatchPayloads: every example in docs/webhooks.md has exactly
// the members of the payload chatpay really sends for its type, so the page
// cannot drift from the code.
func TestWebhookDocsMatchPayloads(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	orderID, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 2})
	ta.clock.Set(shanghai(t, 2026, 11, 21, 14, 30, 0))
	if r := ta.redeem(shop.key, "", payments.RedemptionQRContent(coupons[0], ta.clock.Now()), nil); r.Status != http.StatusOK {
		t.Fatalf("redeem: %d %s", r.Status, r.Body)
	}
	if r := ta.call("POST", "/v1/orders/"+orderID+"/refunds", shop.key, "", map[string]any{"coupon_id": coupons[1].ID}); r.Status != http.StatusCreated {
		t.Fatalf("refund: %d %s", r.Status, r.Body)
	}
	top := ta.call("POST", "/v1/channel/shoppers/"+coupons[0].ShopperID+"/topups", shop.channel.APIKey, "top-1",
		map[string]any{"amount": map[string]string{"amount": "50.00", "currency": "CNY"}, "card": "4242 4242 4242 4242"})
	if top.Status != http.StatusCreated {
		t.Fatalf("top-up: %d %s", top.Status, top.Body)
	}
	_, later := ta.buy(shop, "43", map[string]int{shop.itemID: 1})
	ta.clock.Set(later[0].ValidUntil.Time.Add(time.Hour))
	if _, err := ta.app.payments.ExpireCoupons(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
	endpoint := ta.call("POST", "/v1/webhooks/endpoints", shop.key, "", map[string]any{"url": "https://127.0.0.1:9/hook"}).JSON(t)
	ta.call("POST", "/v1/webhooks/endpoints/"+endpoint["id"].(string)+"/test", shop.key, "", nil)

	real := map[string][]string{}
	rows, err := ta.db.Query(`SELECT type, body FROM webhook_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		var body []byte
		if err := rows.Scan(&typ, &body); err != nil {
			t.Fatal(err)
		}
		if _, seen := real[typ]; !seen {
			real[typ] = shapeOf(t, body)
			if os.Getenv("CHATPAY_PRINT_EVENTS") != "" {
				t.Logf("%s\n%s", typ, body)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Disabling an endpoint takes days of failures; its payload is built
	// by the same constructor the dispatcher uses.
	disabled, err := json.Marshal(webhooks.Envelope{ID: "evt_x", Type: webhooks.TypeEndpointDisabled, APIVersion: webhooks.APIVersion,
		Livemode: true, Timestamp: storyStart, Data: json.RawMessage(mustJSON(webhooks.EndpointDisabledData{FailingSince: storyStart}))})
	if err != nil {
		t.Fatal(err)
	}
	real[webhooks.TypeEndpointDisabled] = shapeOf(t, disabled)
	doc, err := os.ReadFile("../../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	examples := regexp.MustCompile("(?s)### ([a-z._]+)\n.*?```json\n(.*?)```").FindAllSubmatch(doc, -1)
	documented := map[string]bool{}
	for _, m := range examples {
		typ := string(m[1])
		documented[typ] = true
		got, ok := real[typ]
		if !ok {
			t.Errorf("docs/webhooks.md shows %s, which the scenario did not send", typ)
			continue
		}
		if example := shapeOf(t, m[2]); strings.Join(example, " ") != strings.Join(got, " ") {
			t.Errorf("%s: docs/webhooks.md has\n  %v\nchatpay sends\n  %v", typ, example, got)
		}
	}
	for typ := range real {
		if !documented[typ] {
			t.Errorf("%s is sent but has no example in docs/webhooks.md", typ)
		}
	}
}

// shapeOf lists the member paths of a JSON document (array elements merged),
// which is what a receiver's parser depends on.
func shapeOf(t *testing.T, raw []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	set := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				set[prefix+"."+k] = true
				walk(prefix+"."+k, e)
			}
		case []any:
			for _, e := range x {
				walk(prefix+"[]", e)
			}
		}
	}
	walk("", v)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
