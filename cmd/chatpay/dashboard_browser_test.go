package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/webhooks"
)

// minReadableTextPx is the smallest text the dashboard may show, chart
// labels included, on any screen.
const minReadableTextPx = 12

// The dashboard on a merchant's phone (360×740) and laptop (1366×800): the
// menu folds, tables become cards, charts stay readable, no page scrolls
// sideways and each page's main button is in view; refunds (part of the
// products, with a reason) and revocations ask first; form errors name the
// form's own fields; "Valid for" takes "3 months"; the till says in plain
// words why a coupon is refused and when it is valid again. Home, orders,
// the item editor and the till pass axe-core and Lighthouse on both screens.
func TestDashboardOnAPhone(t *testing.T) {
	ta := startTestApp(t, storyStart) // 14:30 in Shanghai
	b := startBrowser(t)
	b.atViewport(true)

	// Sign up on the phone; the empty overview says what to do first.
	b.do(chromedp.Navigate(ta.URL+"/dashboard/signup"), chromedp.WaitVisible(chromedp.CSS("#signup")))
	b.assertFitsPhone("signup")
	if icon := ta.get("/favicon.ico"); icon.Status != http.StatusOK || !strings.HasPrefix(string(icon.Body), "\x89PNG") {
		t.Errorf("favicon.ico: %d", icon.Status)
	}
	b.do(fill(map[string]string{"name": "McDonald's", "time_zone": "Asia/Shanghai", "currency": "CNY",
		"email": "owner@mcd.example", "password": "tea-time-1400"})...)
	b.do(chromedp.Click(chromedp.CSS("#signup")), chromedp.WaitVisible(chromedp.CSS("[data-testid=sales-chart]")))
	if home := b.text("main"); strings.Contains(home, "max 0") || !strings.Contains(home, "No sales in the last 30 days") {
		t.Errorf("the empty overview reads: %s", home)
	}
	b.assertFitsPhone("overview-empty")
	b.screenshot("phone-overview-empty")

	// The menu is one line while closed and opens without script.
	h := b.eval(`String(Math.round(document.querySelector('header.top').getBoundingClientRect().height))`)
	t.Logf("the closed menu takes %s px of a 740 px screen", h)
	if atoi(t, h) > 80 {
		t.Errorf("the closed menu takes %s px of a 740 px screen", h)
	}
	if shown := b.eval(`String(document.querySelector('#nav-panel').offsetParent !== null)`); shown != "false" {
		t.Error("the navigation is open on a phone before anyone asked")
	}
	b.do(chromedp.Click(chromedp.CSS("#nav-button")), chromedp.WaitVisible(chromedp.CSS(`#nav-panel a[href="/dashboard/orders"]`)))
	b.axe("menu-open-360")
	b.screenshot("phone-menu-open")
	b.do(chromedp.Click(chromedp.CSS(`#nav-panel a[href="/dashboard/orders"]`)), chromedp.WaitVisible(chromedp.CSS("h1")))
	if !strings.Contains(b.text("main"), "No orders yet") {
		t.Errorf("the empty orders page reads: %s", b.text("main"))
	}

	m := ta.merchantOfStaff("owner@mcd.example")
	typed := true // the till below types the printed code, whatever the default for new merchants
	if _, err := ta.app.catalog.UpdateMerchant(context.Background(), m.ID, catalog.MerchantPatch{AllowTypedCodes: &typed}); err != nil {
		t.Fatal(err)
	}

	// A form with mistakes: the summary names the form's fields, once each.
	b.do(chromedp.Navigate(ta.URL+"/dashboard/items/new"), chromedp.WaitVisible(chromedp.CSS("#title")))
	b.do(fill(map[string]string{"title": "Tea card", "sku": "TEA-CARD", "category": "tea", "price": "three",
		"currency": "CNY", "windows": "14:00-26:00", "valid_for": "3 moons"})...)
	b.do(chromedp.Click(chromedp.CSS("#save-item")), chromedp.WaitVisible(chromedp.CSS("#form-error")))
	summary := b.text("#form-error")
	for _, want := range []string{"Price", "Hours", "Valid for after purchase"} {
		if !strings.Contains(summary, want) {
			t.Errorf("the error summary lacks %q: %s", want, summary)
		}
	}
	for _, internal := range []string{"rules.", "price.amount", "windows[", "percent_off", "_"} {
		if strings.Contains(summary, internal) {
			t.Errorf("the error summary shows %q: %s", internal, summary)
		}
	}
	lines := strings.Split(b.eval(`[...document.querySelectorAll('#form-error li')].map(li => li.textContent).join('\n')`), "\n")
	seen := map[string]bool{}
	for _, line := range lines {
		if seen[line] {
			t.Errorf("the error summary repeats %q", line)
		}
		seen[line] = true
	}
	b.assertFitsPhone("item-errors")
	b.axe("item-errors-360")
	b.screenshot("phone-item-errors")

	// "3 months" is a length; it is shown back the same way.
	b.do(fill(map[string]string{"price": "3.00", "stock": "500", "per_shopper_limit": "2", "windows": "14:00-17:00",
		"valid_for": "3 months", "exclude_categories": "coffee"})...)
	b.do(chromedp.Click(chromedp.CSS("#save-item")), chromedp.WaitVisible(chromedp.CSS("[data-testid=rules-text]")))
	if rules := b.text("[data-testid=rules-text]"); !strings.Contains(rules, "for 3 months after purchase") {
		t.Errorf("rules read %q", rules)
	}
	if v := b.eval(`document.querySelector('#valid_for').value`); v != "3 months" {
		t.Errorf("valid for shows %q, want 3 months", v)
	}
	b.assertFitsPhone("item-editor")
	b.screenshot("phone-item-saved")
	teaID := strings.TrimPrefix(b.location(), ta.URL+"/dashboard/items/")
	teaID, _, _ = strings.Cut(teaID, "?")

	// A shopper buys a tea card and a dim sum basket (a product, refunded in part).
	_, key, err := ta.app.catalog.CreateKey(context.Background(), m.ID, "backend")
	if err != nil {
		t.Fatal(err)
	}
	dimSum := ta.call("POST", "/v1/items", key, "", map[string]any{"sku": "DIM-SUM", "title": "Dim sum basket", "category": "food",
		"kind": "product", "price": map[string]string{"amount": "20.00", "currency": "CNY"}})
	if dimSum.Status != http.StatusCreated {
		t.Fatalf("create dim sum: %d %s", dimSum.Status, dimSum.Body)
	}
	shop := teaShop{merchant: m, key: key, itemID: teaID, channel: ta.channel()}
	orderID, coupons := ta.buy(shop, "42", map[string]int{teaID: 1, dimSum.JSON(t)["id"].(string): 1})

	// The orders list on a phone: items, total and status in view.
	b.do(chromedp.Navigate(ta.URL+"/dashboard/orders"), chromedp.WaitVisible(chromedp.CSS("[data-testid=order-row]")))
	for _, cell := range []string{"order-items", "order-total", "order-status"} {
		inView := b.eval(fmt.Sprintf(`(() => { const r = document.querySelector('[data-testid=%s]').getBoundingClientRect();
			return String(r.width > 0 && r.left >= 0 && r.right <= innerWidth && r.bottom <= innerHeight); })()`, cell))
		if inView != "true" {
			t.Errorf("%s is not in view on a 360 px phone", cell)
		}
	}
	if row := b.text("[data-testid=order-row]"); !strings.Contains(row, "Tea card") || !strings.Contains(row, "23.00 CNY") || !strings.Contains(row, "paid") {
		t.Errorf("order card %q", row)
	}
	b.assertFitsPhone("orders")
	b.screenshot("phone-orders")

	// The coupon's end reads as its rule text does.
	b.do(chromedp.Navigate(ta.URL+"/dashboard/orders/"+orderID), chromedp.WaitVisible(chromedp.CSS("#refund-order")))
	if until := b.text("[data-testid=coupon-valid-until]"); until != "21 Feb 2027" || !strings.Contains(coupons[0].RulesText, "until 21 Feb 2027") {
		t.Errorf("the order page says valid until %q; the rule text says %q", until, coupons[0].RulesText)
	}
	b.assertFitsPhone("order")
	b.screenshot("phone-order")

	// Refund 5.00 of the dim sum, with a reason: a page asks first.
	b.do(chromedp.Click(chromedp.CSS("#refund-order")), chromedp.WaitVisible(chromedp.CSS("#confirm-refund")))
	if n := ta.count(`SELECT count(*) FROM refunds`); n != 0 {
		t.Fatalf("%d refunds before confirming", n)
	}
	b.assertFitsPhone("refund")
	b.axe("refund-360")
	b.do(chromedp.Click(chromedp.CSS("#scope-amount")), chromedp.SetValue(chromedp.CSS("#amount"), "5.00"),
		chromedp.SetValue(chromedp.CSS("#reason"), "unavailable"), chromedp.SetValue(chromedp.CSS("#note"), "Out of dumplings"))
	b.screenshot("phone-refund-confirm")
	b.do(chromedp.Click(chromedp.CSS("#confirm-refund")), chromedp.WaitVisible(chromedp.CSS("[data-testid=refund-row]")))
	if flash := b.text(".flash"); flash != "Refunded 5.00 CNY to the shopper's wallet." {
		t.Errorf("after the refund: %q", flash)
	}
	if row := b.text("[data-testid=refund-row]"); !strings.Contains(row, "5.00 CNY") || !strings.Contains(row, "We could not provide it — Out of dumplings") {
		t.Errorf("refund row %q", row)
	}
	if n := ta.count(`SELECT count(*) FROM refunds WHERE amount_minor = 500 AND product_minor = 500 AND reason = 'We could not provide it — Out of dumplings'`); n != 1 {
		t.Errorf("%d refunds of 5.00 with their reason", n)
	}
	b.screenshot("phone-order-refunded")

	// At 17:30 the till refuses the tea card in plain words, with when it
	// can be used again, inside its box.
	ta.clock.Set(storyStart.Add(3 * time.Hour))
	b.do(chromedp.Navigate(ta.URL+"/dashboard/till"), chromedp.WaitVisible(chromedp.CSS("#code")))
	b.do(chromedp.SetValue(chromedp.CSS("#code"), coupons[0].Code), chromedp.Click(chromedp.CSS("#redeem")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=verdict]")))
	verdict := b.text("[data-testid=verdict]")
	if !strings.Contains(verdict, "Not valid at this hour") || !strings.Contains(verdict, "Valid again tomorrow at 14:00") || strings.Contains(verdict, "_") {
		t.Errorf("the till says %q", verdict)
	}
	if fits := b.eval(`(() => { const v = document.querySelector('[data-testid=verdict]'); return String(v.scrollWidth <= v.clientWidth); })()`); fits != "true" {
		t.Error("the verdict overflows its box")
	}
	b.assertFitsPhone("till-refused")
	b.axe("till-refused-360")
	b.screenshot("phone-till-refused")

	// Revoking a QR code asks first; Cancel changes nothing.
	b.do(chromedp.Navigate(ta.URL+"/dashboard/qr?item_id="+teaID), chromedp.WaitVisible(chromedp.CSS("#placement")))
	b.assertFitsPhone("qr-list")
	b.do(chromedp.SetValue(chromedp.CSS("#placement"), "counter"), chromedp.Click(chromedp.CSS("#create-qr")),
		chromedp.WaitVisible(chromedp.CSS("#revoke-qr")))
	b.assertFitsPhone("qr")
	qrPage, _, _ := strings.Cut(strings.TrimPrefix(b.location(), ta.URL), "?")
	b.do(chromedp.Click(chromedp.CSS("#revoke-qr")), chromedp.WaitVisible(chromedp.CSS("#confirm-revoke")))
	b.assertFitsPhone("qr-revoke")
	b.axe("qr-revoke-360")
	b.screenshot("phone-qr-revoke-confirm")
	b.do(chromedp.Click(chromedp.CSS("#cancel")), chromedp.WaitVisible(chromedp.CSS("#revoke-qr")))
	if n := ta.count(`SELECT count(*) FROM qr_codes WHERE revoked_at IS NOT NULL`); n != 0 {
		t.Fatal("the QR code was revoked without confirmation")
	}
	b.do(chromedp.Click(chromedp.CSS("#revoke-qr")), chromedp.WaitVisible(chromedp.CSS("#confirm-revoke")),
		chromedp.Click(chromedp.CSS("#confirm-revoke")), chromedp.WaitVisible(chromedp.CSS("[data-testid=qr-status]")))
	if status := b.text("[data-testid=qr-status]"); status != "revoked" {
		t.Errorf("after confirming, the code is %q", status)
	}

	// Revoking an API key asks first, too.
	b.do(chromedp.Navigate(ta.URL+"/dashboard/integrations"), chromedp.WaitVisible(chromedp.CSS("#key-name")))
	b.do(chromedp.SetValue(chromedp.CSS("#key-name"), "Counter POS"), chromedp.Click(chromedp.CSS("#create-key")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=new-key]")))
	b.assertFitsPhone("integrations")
	b.eval(`[...document.querySelectorAll('[data-testid=key-row]')].find(r => r.textContent.includes('Counter POS'))
		.querySelector('[data-testid=revoke-key]').click(), ''`)
	b.do(chromedp.WaitVisible(chromedp.CSS("#confirm-revoke")))
	if n := ta.count(`SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL`); n != 0 {
		t.Fatal("the key was revoked without confirmation")
	}
	b.assertFitsPhone("key-revoke")
	b.screenshot("phone-key-revoke-confirm")
	b.do(chromedp.Click(chromedp.CSS("#confirm-revoke")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if n := ta.count(`SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL AND name = 'Counter POS'`); n != 1 {
		t.Fatal("the confirmed revocation did not revoke the key")
	}

	// The overview after the sale: charts with words of at least 12 px.
	b.do(chromedp.Navigate(ta.URL+"/dashboard"), chromedp.WaitVisible(chromedp.CSS("[data-testid=sales-chart] svg")))
	smallest := b.eval(`String(Math.min(...[...document.querySelectorAll('.colchart .chart-peak, .colchart .tick, .funnel-row dt, .funnel-value')]
		.filter(e => e.offsetParent !== null).map(e => parseFloat(getComputedStyle(e).fontSize))))`)
	t.Logf("the smallest chart text on a 360 px phone is %s px", smallest)
	if px := atoi(t, strings.Split(smallest, ".")[0]); px < minReadableTextPx {
		t.Errorf("the smallest chart text is %s px", smallest)
	}
	b.assertFitsPhone("overview")
	b.screenshot("phone-overview")

	// A webhook delivery tried once says "1 attempt".
	owner := webhooks.Owner{Kind: webhooks.OwnerMerchant, ID: m.ID}
	endpoint, _, err := ta.app.webhooks.CreateEndpoint(context.Background(), owner, webhooks.EndpointInput{URL: "http://127.0.0.1:1/hook"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ta.app.webhooks.SendTest(context.Background(), owner, endpoint.ID); err != nil {
		t.Fatal(err)
	}
	ta.db.MustExec(`UPDATE webhook_deliveries SET attempt_count = 1 WHERE endpoint_id = $1`, endpoint.ID)
	b.do(chromedp.Navigate(ta.URL+"/dashboard/webhooks/"+endpoint.ID), chromedp.WaitVisible(chromedp.CSS("[data-testid=delivery]")))
	if delivery := b.text("[data-testid=delivery] p"); !strings.Contains(delivery, "· 1 attempt ·") {
		t.Errorf("delivery reads %q", delivery)
	}

	// Every page on both screens: no sideways scroll, main button in view.
	pages := []string{"/dashboard/webhooks/" + endpoint.ID, qrPage + "/poster", "/dashboard", "/dashboard/items", "/dashboard/items/new", "/dashboard/items/" + teaID,
		"/dashboard/items/" + teaID + "/deactivate", "/dashboard/qr", qrPage, "/dashboard/orders",
		"/dashboard/orders/" + orderID, "/dashboard/orders/" + orderID + "/refund", "/dashboard/redemptions",
		"/dashboard/till", "/dashboard/money", "/dashboard/integrations", "/dashboard/settings",
		"/dashboard/orders/ord_unknown", "/dashboard/login", "/dashboard/signup"}
	for _, phone := range []bool{true, false} {
		b.atViewport(phone)
		for _, path := range pages {
			b.do(chromedp.Navigate(ta.URL+path), chromedp.WaitReady(chromedp.CSS("body")))
			b.assertFits(path, phone)
		}
	}
	b.do(chromedp.Navigate(ta.URL+"/dashboard/orders"), chromedp.WaitVisible(chromedp.CSS("[data-testid=order-row]")))
	b.screenshot("laptop-orders")
	b.do(chromedp.Navigate(ta.URL+"/dashboard"), chromedp.WaitVisible(chromedp.CSS("[data-testid=sales-chart] svg")))
	b.screenshot("laptop-overview")
	b.do(chromedp.Navigate(ta.URL+"/dashboard/orders/"+orderID+"/refund"), chromedp.WaitVisible(chromedp.CSS("#confirm-refund")))
	b.screenshot("laptop-refund")

	// Accessibility of home, orders, the item editor and the till.
	checked := map[string]string{"home": "/dashboard", "orders": "/dashboard/orders", "item-editor": "/dashboard/items/" + teaID, "till": "/dashboard/till"}
	for _, phone := range []bool{true, false} {
		b.atViewport(phone)
		for name, path := range checked {
			b.do(chromedp.Navigate(ta.URL+path), chromedp.WaitReady(chromedp.CSS("main")))
			b.axe(fmt.Sprintf("%s-%d", name, map[bool]int{true: phoneViewportWidthPx, false: desktopViewportWidth}[phone]))
		}
	}
	// Lighthouse's Chromium is not the test's: it gets a session of its own.
	lighthouseStaff := newDashboardClient(t, ta)
	if status, body, _ := lighthouseStaff.post("/dashboard/login", "/dashboard/login",
		url.Values{"email": {"owner@mcd.example"}, "password": {"tea-time-1400"}}, true); status != http.StatusSeeOther {
		t.Fatalf("sign in for lighthouse: %d %s", status, body)
	}
	var session string
	for _, c := range lighthouseStaff.http.Jar.Cookies(mustParseURL(t, ta.URL+"/dashboard")) {
		if c.Name == "chatpay_session" {
			session = c.Name + "=" + c.Value
		}
	}
	var lighthousePages []lighthousePage
	for name, path := range checked {
		lighthousePages = append(lighthousePages, onBothScreens(name, ta.URL+path, map[string]string{"Cookie": session})...)
	}
	lighthouseAccessibility(t, lighthousePages...)
	assertVerifyClean(t, ta)
}

// assertFitsPhone checks the page open on the phone.
func (b *browser) assertFitsPhone(name string) {
	b.t.Helper()
	b.assertFits(name, true)
}

// assertFits fails the test when the open page scrolls sideways, or when
// its main button (data-primary) is below the fold of the screen.
func (b *browser) assertFits(name string, phone bool) {
	b.t.Helper()
	screen := "laptop"
	if phone {
		screen = "phone"
	}
	report := b.eval(`(() => {
		const out = [];
		if (document.documentElement.scrollWidth > innerWidth) out.push('scrolls sideways: ' + document.documentElement.scrollWidth + ' px on a ' + innerWidth + ' px screen');
		const primary = document.querySelector('[data-primary]');
		if (primary) {
			const r = primary.getBoundingClientRect();
			if (r.bottom > innerHeight || r.top < 0) out.push('its main button "' + primary.textContent.trim() + '" is at ' + Math.round(r.top) + '–' + Math.round(r.bottom) + ' px of ' + innerHeight);
		}
		return out.join('; ');
	})()`)
	if report != "" {
		b.t.Errorf("%s on the %s: %s", name, screen, report)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

func mustParseURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
