package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chatpay/chatpay/webhooks"
)

// dashboardClient is a browser-like client: it keeps cookies and does not
// follow redirects, so tests see each answer.
type dashboardClient struct {
	t    *testing.T
	ta   *testApp
	http *http.Client
}

func newDashboardClient(t *testing.T, ta *testApp) *dashboardClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &dashboardClient{t: t, ta: ta, http: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (d *dashboardClient) get(path string) (int, string) {
	d.t.Helper()
	resp, err := d.http.Get(d.ta.URL + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post sends a form; with withToken it first reads the CSRF token from the
// page at tokenFrom.
func (d *dashboardClient) post(path, tokenFrom string, form url.Values, withToken bool) (int, string, http.Header) {
	d.t.Helper()
	if withToken {
		_, page := d.get(tokenFrom)
		m := csrfField.FindStringSubmatch(page)
		if m == nil {
			d.t.Fatalf("no csrf token on %s", tokenFrom)
		}
		form.Set("csrf_token", m[1])
	}
	resp, err := d.http.PostForm(d.ta.URL+path, form)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (d *dashboardClient) signup(name, email string) {
	d.t.Helper()
	status, body, header := d.post("/dashboard/signup", "/dashboard/signup", url.Values{"name": {name}, "time_zone": {"Asia/Shanghai"},
		"currency": {"CNY"}, "email": {email}, "password": {"correct-horse-1"}}, true)
	if status != http.StatusSeeOther {
		d.t.Fatalf("signup: %d %s", status, body)
	}
	if cookie := header.Get("Set-Cookie"); !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Lax") {
		d.t.Fatalf("session cookie %q", cookie)
	}
}

func TestDashboardSecurity(t *testing.T) {
	ta := startTestApp(t, storyStart)
	alice := newDashboardClient(t, ta)
	alice.signup("Alice Tea", "alice@example.com")
	status, body, _ := alice.post("/dashboard/items", "/dashboard/items/new", url.Values{"title": {"Tea card"}, "sku": {"TEA"},
		"kind": {"product"}, "price": {"3.00"}, "currency": {"CNY"}, "active": {"on"}}, true)
	if status != http.StatusSeeOther {
		t.Fatalf("create item: %d %s", status, body)
	}
	var itemID string
	if err := ta.db.Get(&itemID, `SELECT id FROM items`); err != nil {
		t.Fatal(err)
	}

	t.Run("ErrPostWithoutCSRFToken", func(t *testing.T) {
		status, body, _ := alice.post("/dashboard/items/"+itemID+"/deactivate", "", url.Values{}, false)
		if status != http.StatusForbidden || !strings.Contains(body, "csrf_token_invalid") {
			t.Fatalf("%d %s", status, body)
		}
		status, body, _ = alice.post("/dashboard/items/"+itemID+"/deactivate", "", url.Values{"csrf_token": {"forged"}}, false)
		if status != http.StatusForbidden {
			t.Fatalf("forged token: %d %s", status, body)
		}
		if n := ta.count(`SELECT count(*) FROM items WHERE active`); n != 1 {
			t.Fatal("the item was deactivated without a token")
		}
	})
	t.Run("ErrLoginFormWithoutCSRFToken", func(t *testing.T) {
		stranger := newDashboardClient(t, ta)
		status, _, _ := stranger.post("/dashboard/login", "", url.Values{"email": {"alice@example.com"}, "password": {"x"}}, false)
		if status != http.StatusForbidden {
			t.Fatalf("%d", status)
		}
	})
	t.Run("ErrOtherMerchantsItemIsNotFound", func(t *testing.T) {
		bob := newDashboardClient(t, ta)
		bob.signup("Bob Coffee", "bob@example.com")
		if status, _ := bob.get("/dashboard/items/" + itemID); status != http.StatusNotFound {
			t.Fatalf("bob reads alice's item: %d", status)
		}
		status, _, _ := bob.post("/dashboard/items/"+itemID+"/deactivate", "/dashboard/items", url.Values{"confirmed": {"yes"}}, true)
		if status != http.StatusNotFound {
			t.Fatalf("bob deactivates alice's item: %d", status)
		}
	})
	t.Run("ErrSignedOutIsSentToLogin", func(t *testing.T) {
		stranger := newDashboardClient(t, ta)
		status, _ := stranger.get("/dashboard/orders")
		if status != http.StatusSeeOther {
			t.Fatalf("%d", status)
		}
	})
	t.Run("ErrTooManyLogins", func(t *testing.T) {
		guesser := newDashboardClient(t, ta)
		var last int
		for range 6 {
			last, _, _ = guesser.post("/dashboard/login", "/dashboard/login", url.Values{"email": {"alice@example.com"}, "password": {"wrong-password"}}, true)
		}
		if last != http.StatusTooManyRequests {
			t.Fatalf("sixth wrong password: %d", last)
		}
		// Even the right password waits until the window ends.
		status, _, _ := guesser.post("/dashboard/login", "/dashboard/login", url.Values{"email": {"alice@example.com"}, "password": {"correct-horse-1"}}, true)
		if status != http.StatusTooManyRequests {
			t.Fatalf("right password while locked out: %d", status)
		}
	})
	t.Run("OKEveryResourceIsSameOrigin", func(t *testing.T) {
		external := regexp.MustCompile(`(?i)(src|href|action)\s*=\s*"(https?:)?//`)
		for _, path := range []string{"/dashboard", "/dashboard/items", "/dashboard/items/new", "/dashboard/items/" + itemID,
			"/dashboard/qr", "/dashboard/orders", "/dashboard/redemptions", "/dashboard/till", "/dashboard/money", "/dashboard/integrations"} {
			status, body := alice.get(path)
			if status != http.StatusOK {
				t.Fatalf("%s: %d", path, status)
			}
			if m := external.FindString(body); m != "" {
				t.Errorf("%s loads something from elsewhere: %s", path, m)
			}
			if strings.Contains(body, "@import") || strings.Contains(body, "url(http") {
				t.Errorf("%s imports a stylesheet or image from elsewhere", path)
			}
		}
	})
}

// The shopper pages follow Accept-Language: Chinese for zh, English otherwise.
func TestShopperPagesSpeakChinese(t *testing.T) {
	ta := startTestApp(t, storyStart)
	_, key := ta.merchant("McDonald's", "Asia/Shanghai")
	itemID := ta.call("POST", "/v1/items", key, "", teaCard(500)).JSON(t)["id"].(string)
	qrURL := ta.call("POST", "/v1/qr-codes", key, "", map[string]any{"item_id": itemID, "placement": "counter"}).JSON(t)["url"].(string)
	// The merchant names its category in Chinese: the rules use it.
	if put := ta.call("PUT", "/v1/category-labels", key, "", map[string]any{"categories": map[string]any{"coffee": map[string]string{"zh": "咖啡"}}}); put.Status != http.StatusOK {
		t.Fatalf("category labels: %d %s", put.Status, put.Body)
	}
	channel := ta.channel()
	req, _ := http.NewRequest("GET", qrURL+"?launch="+url.QueryEscape(ta.launch(channel, "42", "Li Wei")), nil)
	req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	html := string(body)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("shopper page CSP %q, want one that loads nothing by default", csp)
	}
	for _, want := range []string{`lang="zh"`, "每天 14:00–17:00", "不适用于咖啡", "钱包余额不足"} {
		if !strings.Contains(html, want) {
			t.Errorf("Chinese checkout lacks %q", want)
		}
	}

	// The coupon the chat's link opens names the category the same way.
	shopperID := ta.call("POST", "/v1/channel/shoppers", channel.APIKey, "", map[string]any{"user_id": "43"}).JSON(t)["id"].(string)
	ta.fund(shopperID, 500, "CNY")
	bought := ta.call("POST", "/v1/channel/purchases", channel.APIKey, "zh-coupon", map[string]any{"shopper_id": shopperID, "item_id": itemID}).JSON(t)
	couponID := bought["coupons"].([]any)[0].(map[string]any)["id"].(string)
	req, _ = http.NewRequest("GET", issuedRedeemURL(t, ta, couponID), nil)
	req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9")
	coupon, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer coupon.Body.Close()
	body, _ = io.ReadAll(coupon.Body)
	if page := string(body); !strings.Contains(page, "不适用于咖啡") || strings.Contains(page, "coffee") {
		t.Errorf("the Chinese coupon page does not name the category by the merchant's label:\n%s", page)
	}
}

// Staff refund an unredeemed tea card from the order page: the money goes
// back to the wallet once, whatever the number of clicks.
func TestDashboardRefundsAnOrder(t *testing.T) {
	ta := startTestApp(t, storyStart)
	staff := newDashboardClient(t, ta)
	staff.signup("McDonald's", "staff@example.com")
	var merchantID string
	if err := ta.db.Get(&merchantID, `SELECT id FROM merchants`); err != nil {
		t.Fatal(err)
	}
	_, key, err := ta.app.catalog.CreateKey(context.Background(), merchantID, "pos")
	if err != nil {
		t.Fatal(err)
	}
	itemID := ta.call("POST", "/v1/items", key, "", teaCard(10)).JSON(t)["id"].(string)
	channel := ta.channel()
	shopperID := ta.call("POST", "/v1/channel/shoppers", channel.APIKey, "", map[string]any{"user_id": "42"}).JSON(t)["id"].(string)
	ta.fund(shopperID, 300, "CNY")
	checkoutID := ta.call("POST", "/v1/channel/checkouts", channel.APIKey, "", map[string]any{
		"shopper_id": shopperID, "lines": []map[string]any{{"item_id": itemID, "quantity": 1}}}).JSON(t)["id"].(string)
	orderID := ta.call("POST", "/v1/channel/checkouts/"+checkoutID+"/confirm", channel.APIKey, "pay", nil).JSON(t)["order"].(map[string]any)["id"].(string)

	// The order page only links to the refund page, which asks what and why.
	if _, page := staff.get("/dashboard/orders/" + orderID); strings.Contains(page, `action="/dashboard/orders/`+orderID+`/refund"`) {
		t.Fatal("the order page refunds in one click")
	}
	_, page := staff.get("/dashboard/orders/" + orderID + "/refund")
	refundKey := regexp.MustCompile(`name="idempotency_key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	status, body, _ := staff.post("/dashboard/orders/"+orderID+"/refund", "/dashboard/orders/"+orderID+"/refund",
		url.Values{"idempotency_key": {refundKey}, "scope": {"all"}}, true)
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "choose why you refund") {
		t.Fatalf("a refund without a reason: %d %s", status, body)
	}
	for range 2 {
		status, body, header := staff.post("/dashboard/orders/"+orderID+"/refund", "/dashboard/orders/"+orderID+"/refund",
			url.Values{"idempotency_key": {refundKey}, "scope": {"all"}, "reason": {"duplicate"}}, true)
		if status != http.StatusSeeOther || !strings.Contains(header.Get("Location"), "Refunded") {
			t.Fatalf("refund: %d %s %s", status, header.Get("Location"), body)
		}
	}
	if wallet := ta.count(`SELECT refunded_minor FROM orders WHERE id = $1`, orderID); wallet != 300 {
		t.Fatalf("refunded %d, want 300 once", wallet)
	}
	if n := ta.count(`SELECT count(*) FROM refunds WHERE reason = 'Charged twice'`); n != 1 {
		t.Fatalf("%d refunds keep the reason given", n)
	}
	if status := ta.count(`SELECT count(*) FROM coupons WHERE status = 'refunded'`); status != 1 {
		t.Fatalf("%d refunded coupons", status)
	}
	// The refunded card is for sale again and no longer counts toward the limit.
	if stock := ta.count(`SELECT sum(quantity) FROM item_stock WHERE item_id = $1`, itemID); stock != 10 {
		t.Fatalf("stock %d after the refund, want 10", stock)
	}
	if bought := ta.count(`SELECT quantity FROM shopper_item_purchases WHERE shopper_id = $1`, shopperID); bought != 0 {
		t.Fatalf("purchases counted %d after the refund, want 0", bought)
	}
	_, after := staff.get("/dashboard/orders/" + orderID)
	if strings.Contains(after, `id="refund-order"`) {
		t.Fatal("a fully refunded order still offers a refund")
	}
	if _, page := staff.get("/dashboard/orders/" + orderID + "/refund"); !strings.Contains(page, `data-testid="nothing-to-refund"`) || strings.Contains(page, `id="confirm-refund"`) {
		t.Fatal("the refund page of a fully refunded order still offers a refund")
	}
	assertVerifyClean(t, ta)
}

// "Send waiting now" in the dashboard: after the merchant fixed its
// receiver, deliveries waiting for a retry become due at once.
func TestDashboardSendsWaitingWebhooksNow(t *testing.T) {
	ta := startTestApp(t, storyStart)
	staff := newDashboardClient(t, ta)
	staff.signup("McDonald's", "staff@example.com")
	var merchantID string
	if err := ta.db.Get(&merchantID, `SELECT id FROM merchants`); err != nil {
		t.Fatal(err)
	}
	owner := webhooks.Owner{Kind: webhooks.OwnerMerchant, ID: merchantID}
	ep, _, err := ta.app.webhooks.CreateEndpoint(context.Background(), owner, webhooks.EndpointInput{URL: "http://127.0.0.1:1/hook"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := ta.app.webhooks.SendTest(context.Background(), owner, ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	// As after failed attempts: both wait an hour for their next one.
	ta.db.MustExec(`UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour', attempt_count = 2`)

	status, body, header := staff.post("/dashboard/webhooks/"+ep.ID+"/send-waiting", "/dashboard/webhooks/"+ep.ID, url.Values{}, true)
	if status != http.StatusSeeOther || !strings.Contains(header.Get("Location"), "2+waiting") {
		t.Fatalf("send waiting: %d %s %s", status, header.Get("Location"), body)
	}
	if n := ta.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()`); n != 2 {
		t.Fatalf("%d deliveries due now, want 2", n)
	}
}

// The operator's "send waiting now", for any owner's endpoint.
func TestOperatorSendsWaitingWebhooksNow(t *testing.T) {
	ta := startTestApp(t, storyStart)
	m, _ := ta.merchant("Tea House", "Asia/Shanghai")
	owner := webhooks.Owner{Kind: webhooks.OwnerMerchant, ID: m.ID}
	ep, _, err := ta.app.webhooks.CreateEndpoint(context.Background(), owner, webhooks.EndpointInput{URL: "http://127.0.0.1:1/hook"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ta.app.webhooks.SendTest(context.Background(), owner, ep.ID); err != nil {
		t.Fatal(err)
	}
	ta.db.MustExec(`UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour', attempt_count = 2`)
	stdout, stderr, err := runMerchantCLI(t, ta.dsn, "webhooks", "send-waiting", "--endpoint", ep.ID)
	if err != nil || !strings.HasPrefix(stdout, "1 waiting deliveries of "+ep.ID+" are due now") {
		t.Fatalf("send-waiting: %v\n%s%s", err, stdout, stderr)
	}
	if n := ta.count(`SELECT count(*) FROM webhook_deliveries WHERE next_attempt_at <= now()`); n != 1 {
		t.Fatalf("%d deliveries due now, want 1", n)
	}
	if _, _, err := runMerchantCLI(t, ta.dsn, "webhooks", "send-waiting", "--endpoint", "whe_nope"); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("unknown endpoint: %v", err)
	}
}
