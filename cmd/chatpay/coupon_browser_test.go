package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/labstack/echo/v4"
	"github.com/makiuchi-d/gozxing"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/payments"
)

// couponWaitMs bounds a wait for the coupon script inside the page.
const couponWaitMs = 10_000

// issuedRedeemURL is the redeem_url that coupon.issued carried for couponID:
// the link the shopper has in the chat.
func issuedRedeemURL(t *testing.T, ta *testApp, couponID string) string {
	t.Helper()
	var link string
	err := ta.db.Get(&link, `SELECT convert_from(body, 'UTF8')::jsonb #>> '{data,coupon,redeem_url}' FROM webhook_events
		WHERE type = 'coupon.issued' AND convert_from(body, 'UTF8')::jsonb #>> '{data,coupon,id}' = $1`, couponID)
	if err != nil {
		t.Fatalf("redeem_url of %s: %v", couponID, err)
	}
	if !strings.HasPrefix(link, ta.URL+payments.CouponLinkPath) {
		t.Fatalf("redeem_url %q is not a coupon link", link)
	}
	return link
}

// waitFor evaluates expression (a JavaScript expression giving a string)
// in the page until it gives a non-empty string, and returns it.
func (b *browser) waitFor(expression string) string {
	b.t.Helper()
	expression = strings.ReplaceAll(expression, "\n", " ")
	return b.eval(`new Promise((resolve, reject) => {
		const started = performance.now();
		(function poll() {
			Promise.resolve().then(() => ` + expression + `).catch(() => '').then(value => {
				if (value) { resolve(String(value)); return; }
				if (performance.now() - started > ` + strconv.Itoa(couponWaitMs) + `) { reject(new Error('timed out waiting for ' + ` + jsString(expression) + `)); return; }
				setTimeout(poll, 100);
			});
		})();
	})`)
}

// couponQR is what the coupon page's QR shows now: the content the script
// drew (read from the canvas's pixels with a QR decoder) and its time step.
func (b *browser) couponQR() (content string, step int64) {
	b.t.Helper()
	b.waitFor(`document.querySelector('[data-testid=coupon-qr][data-content] canvas') ? 'drawn' : ''`)
	// One evaluation, so the three agree even if a step ends meanwhile.
	var drawn struct {
		Content string `json:"content"`
		Step    string `json:"step"`
		PNG     string `json:"png"`
	}
	snapshot := b.eval(`(() => { const box = document.querySelector('[data-testid=coupon-qr]');
		return JSON.stringify({content: box.dataset.content, step: box.dataset.step,
			png: box.querySelector('canvas').toDataURL('image/png').split(',')[1]}); })()`)
	if err := json.Unmarshal([]byte(snapshot), &drawn); err != nil {
		b.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(drawn.PNG)
	if err != nil {
		b.t.Fatal(err)
	}
	if decoded := decodePureQR(b.t, png); decoded != drawn.Content {
		b.t.Fatalf("the canvas shows %q, the script says it drew %q", decoded, drawn.Content)
	}
	step, err = strconv.ParseInt(drawn.Step, 10, 64)
	if err != nil {
		b.t.Fatal(err)
	}
	return drawn.Content, step
}

// showCoupon opens a coupon link as the shopper does at the till and
// returns what its QR says now, as the till's scanner reads it.
func (b *browser) showCoupon(link string) string {
	b.t.Helper()
	b.do(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	content, _ := b.couponQR()
	return content
}

// decodePureQR reads a QR image that holds nothing but the code (the
// canvas), which gozxing's pure-barcode mode reads without the finder
// pattern estimate that now and then misjudges a small code's size.
func decodePureQR(t *testing.T, pngBytes []byte) string {
	t.Helper()
	return decodeQRWith(t, pngBytes, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
}

// setOffline cuts (or restores) the browser's network, the service
// worker's included, as a phone in a basement.
func setOffline(offline bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		if _, err := cdp.Call(ctx, target, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, target, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: false}); err != nil {
			return err
		}
		rule := &network.Conditions{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1}
		if _, err := cdp.Call(ctx, target, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			EmulateOfflineServiceWorker: &offline, MatchedNetworkConditions: []*network.Conditions{rule}}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, target, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: offline, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	})
}

// The coupon at the till, in a basement, all afternoon: the chat's link
// opens the coupon with no launch context; offline, a reload still shows it
// and the QR, computed on the phone, moves to the next step and redeems at
// the till; two hours later the link still opens the other coupon, which
// redeems too; My coupons lists what is left; a used and a refunded
// coupon's links say so in plain words.
func TestBrowserCouponOfflineAllDay(t *testing.T) {
	ta := startTestApp(t, storyStart) // 14:30 in Shanghai, inside the tea card's hours
	// Offline, the phone reaches nothing: Chromium's emulation cuts the
	// page's network, and this cuts the service worker's (a worker is a
	// target of its own), by dropping the connection as a dead link would.
	// The till's API stays up: the till has its own line.
	var offlineNow atomic.Bool
	var pagesServed atomic.Int64
	ta.app.echo.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if offlineNow.Load() && !strings.HasPrefix(c.Request().URL.Path, "/v1/") {
				conn, _, err := http.NewResponseController(c.Response().Writer).Hijack()
				if err == nil {
					_ = conn.Close()
				}
				return err
			}
			if strings.HasPrefix(c.Request().URL.Path, payments.CouponLinkPath) {
				pagesServed.Add(1)
			}
			return next(c)
		}
	})
	shop := ta.teaShop(500)
	_, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 2})
	first, second := issuedRedeemURL(t, ta, coupons[0].ID), issuedRedeemURL(t, ta, coupons[1].ID)

	b := startBrowser(t)
	b.do(chromedp.EmulateViewport(phoneViewportWidthPx, phoneViewportHeight), chromedp.Navigate(first),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	if width := b.eval(`String(document.documentElement.scrollWidth)`); width != strconv.Itoa(phoneViewportWidthPx) {
		t.Errorf("the coupon page is %s px wide on a 360 px phone", width)
	}
	if text := b.text("main"); strings.Contains(text, coupons[0].Code) {
		t.Errorf("the printed code is on the page although the merchant refuses typed codes: %q", text)
	}
	online, onlineStep := b.couponQR()
	if b.eval(`document.querySelector('.qr-fallback').hidden ? 'hidden' : 'shown'`) != "hidden" {
		t.Errorf("the page says its code lasts a minute although the phone draws the next ones")
	}
	b.screenshot("coupon-online")
	// The page that installed the worker asked it to keep a copy.
	b.waitFor(`caches.match(location.href).then(hit => hit ? 'kept' : '')`)

	// 1. No signal: a reload still shows the coupon, from the phone.
	servedBefore := pagesServed.Load()
	offlineNow.Store(true)
	b.do(setOffline(true), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	if served := pagesServed.Load() - servedBefore; served != 0 {
		t.Errorf("offline, the server served the page %d times", served)
	}
	if b.eval(`navigator.onLine ? 'online' : 'offline'`) != "offline" || b.eval(`document.getElementById('offline-note').hidden ? 'hidden' : 'shown'`) != "shown" {
		t.Errorf("offline, the page does not say the code still works")
	}
	offline, offlineStep := b.couponQR()
	if offline != online || offlineStep != onlineStep {
		t.Errorf("offline in the same step the QR reads %q (step %d), online %q (step %d)", offline, offlineStep, online, onlineStep)
	}
	b.screenshot("coupon-offline")

	// 2. Thirty seconds on (the page's clock moves; the till's test clock
	// follows), the phone draws the next step's code, with no network.
	b.eval(`(() => { const real = Date.now; Date.now = () => real() + 30000; return 'ok'; })()`)
	b.waitFor(`Number(document.querySelector('[data-testid=coupon-qr]').dataset.step) > ` + strconv.FormatInt(offlineStep, 10) + ` ? 'next' : ''`)
	next, nextStep := b.couponQR()
	if next == offline || !strings.HasPrefix(next, payments.RedemptionQRPrefix+coupons[0].Code+":") {
		t.Fatalf("the next step's QR reads %q (was %q)", next, offline)
	}
	b.screenshot("coupon-offline-next-step")
	ta.clock.Set(time.Unix(nextStep*int64(payments.RedemptionTokenStep/time.Second), 0).Add(payments.RedemptionTokenStep / 2))
	if r := ta.redeem(shop.key, "", next, nil); r.Status != http.StatusOK {
		t.Fatalf("the till refused the QR drawn offline: %d %s", r.Status, r.Body)
	}
	if r := ta.redeem(shop.key, "", online, nil); r.Status == http.StatusOK {
		t.Fatalf("the first step's QR redeemed again")
	}

	// 3. Two hours later, online again: the chat's other link still opens,
	// the code it draws redeems, and My coupons lists that coupon.
	offlineNow.Store(false)
	b.do(setOffline(false))
	ta.clock.Add(2 * time.Hour)
	b.do(chromedp.Navigate(second), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	b.do(chromedp.Click(chromedp.CSS("[data-testid=wallet-link]")), chromedp.WaitVisible(chromedp.CSS("[data-testid=wallet-intro]")))
	entries := b.eval(`String(document.querySelectorAll('[data-testid=wallet-coupon]').length)`)
	if entries != "1" {
		t.Errorf("My coupons lists %s coupons, want the one not yet used", entries)
	}
	b.screenshot("my-coupons")
	// My coupons, once opened, opens offline too.
	offlineNow.Store(true)
	b.do(setOffline(true), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("[data-testid=wallet-coupon]")))
	offlineNow.Store(false)
	b.do(setOffline(false))
	b.do(chromedp.Click(chromedp.CSS("[data-testid=wallet-coupon]")), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	later, _ := b.couponQR()
	if !strings.HasPrefix(later, payments.RedemptionQRPrefix+coupons[1].Code+":") {
		t.Fatalf("My coupons opened %q", later)
	}
	b.screenshot("coupon-two-hours-later")
	if r := ta.redeem(shop.key, "", later, nil); r.Status != http.StatusOK {
		t.Fatalf("two hours later the till refused: %d %s", r.Status, r.Body)
	}

	// 4. A used coupon's link says so, and no longer opens the wallet.
	b.do(chromedp.Navigate(first), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-status]")))
	if status := b.text("[data-testid=coupon-status]"); status != "You have used this coupon." {
		t.Errorf("a used coupon's link says %q", status)
	}
	if n := b.eval(`String(document.querySelectorAll('[data-testid=wallet-link], [data-testid=coupon-qr]').length)`); n != "0" {
		t.Errorf("a used coupon's page still has %s code or wallet elements", n)
	}
	b.screenshot("coupon-used")

	// 5. A refunded coupon's link says so in plain words.
	orderID, refunded := ta.buy(shop, "43", map[string]int{shop.itemID: 1})
	if r := ta.call("POST", "/v1/orders/"+orderID+"/refunds", shop.key, "", map[string]any{"coupon_id": refunded[0].ID}); r.Status != http.StatusCreated {
		t.Fatalf("refund: %d %s", r.Status, r.Body)
	}
	b.do(chromedp.Navigate(issuedRedeemURL(t, ta, refunded[0].ID)), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-status]")))
	if status := b.text("[data-testid=coupon-status]"); !strings.Contains(status, "refunded") || !strings.Contains(status, "cannot be used") {
		t.Errorf("a refunded coupon's link says %q", status)
	}
	b.screenshot("coupon-refunded")

	// 6. A link cut short by a chat is a plain-words page, not an error code.
	b.do(chromedp.Navigate(first[:len(first)-5]), chromedp.WaitVisible(chromedp.CSS("[role=alert]")))
	if text := b.text("[role=alert]"); !strings.Contains(text, "This coupon link does not work") || strings.Contains(text, "_") {
		t.Errorf("a truncated link says %q", text)
	}
	assertVerifyClean(t, ta)
}

// getWithLanguage fetches a page as a phone set to language would.
func (ta *testApp) getWithLanguage(link, language string) apiResponse {
	ta.t.Helper()
	req, err := http.NewRequest(http.MethodGet, link, nil)
	if err != nil {
		ta.t.Fatal(err)
	}
	req.Header.Set("Accept-Language", language)
	resp, err := noRedirect.Do(req)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// The coupon link's page without a browser: strict headers, the printed
// code only behind a tap and only when the merchant accepts typed codes,
// the shopper's language, and scripts served with cache headers.
func TestCouponLinkPage(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	orderID, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 1})
	link := issuedRedeemURL(t, ta, coupons[0].ID)
	token := strings.TrimPrefix(link, ta.URL+payments.CouponLinkPath)
	if n := ta.count(`SELECT count(*) FROM coupon_credentials WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND coupon_id = $2`, token, coupons[0].ID); n != 1 {
		t.Fatalf("%d credentials hold the link's hash", n)
	}
	if n := ta.count(`SELECT count(*) FROM coupon_credentials c WHERE position(convert_to($1, 'UTF8') IN c.token_hash) > 0 OR c::text LIKE '%' || $1 || '%'`, token); n != 0 {
		t.Fatalf("the link's token is stored in clear")
	}
	// Each view of the receipt mints a link of its own; a coupon keeps ten.
	receipt := "/receipts/" + orderID + "?launch=" + url.QueryEscape(ta.launch(shop.channel, "42", "Shopper 42"))
	for range 12 {
		if r := ta.get(receipt); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `data-testid="coupon-link" href="/c/`) {
			t.Fatalf("receipt: %d %s", r.Status, r.Body)
		}
	}
	if n := ta.count(`SELECT count(*) FROM coupon_credentials WHERE coupon_id = $1 AND source = 'receipt'`, coupons[0].ID); n != 10 {
		t.Errorf("%d receipt links kept, want 10", n)
	}

	page := ta.getWithLanguage(link, "en")
	body := string(page.Body)
	if page.Status != http.StatusOK {
		t.Fatalf("coupon link: %d %s", page.Status, body)
	}
	csp := page.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe-eval") ||
		strings.Contains(csp, "script-src 'self' 'unsafe-inline'") {
		t.Errorf("coupon page CSP %q", csp)
	}
	if page.Header.Get("Referrer-Policy") != "no-referrer" || strings.Contains(body, "http-equiv") || strings.Contains(body, "<script>") {
		t.Errorf("the coupon page leaks its link, reloads itself or runs inline script:\n%s", body)
	}
	if strings.Contains(body, "<details") || strings.Contains(body, `data-testid="coupon-code"`) {
		t.Errorf("the printed code is offered although the merchant refuses typed codes")
	}

	allow := true
	if _, err := ta.app.catalog.UpdateMerchant(context.Background(), shop.merchant.ID, catalog.MerchantPatch{AllowTypedCodes: &allow}); err != nil {
		t.Fatal(err)
	}
	body = string(ta.getWithLanguage(link, "en").Body)
	details := regexp.MustCompile(`(?s)<details class="typed"><summary>[^<]+</summary>\s*<p class="code" data-testid="coupon-code">` + coupons[0].Code + `</p>`)
	if !details.MatchString(body) {
		t.Errorf("with typed codes on, the code is not behind a tap:\n%s", body)
	}

	zh := string(ta.getWithLanguage(link, "zh-CN,zh;q=0.9").Body)
	for _, want := range []string{`lang="zh"`, "请在收银台出示此码", "我在本店的全部券"} {
		if !strings.Contains(zh, want) {
			t.Errorf("the Chinese coupon page lacks %q", want)
		}
	}
	// Russian through the pages' language switch (seed 000's messenger).
	ru := string(ta.getWithLanguage(link+"?lang=ru", "en").Body)
	for _, want := range []string{`lang="ru"`, "Покажите этот код на кассе", "Все мои купоны этого магазина"} {
		if !strings.Contains(ru, want) {
			t.Errorf("the Russian coupon page lacks %q", want)
		}
	}
	cut := ta.getWithLanguage(link[:len(link)-3], "zh-CN")
	if cut.Status != http.StatusNotFound || !strings.Contains(string(cut.Body), "此券链接无效") {
		t.Errorf("a cut link in Chinese: %d %s", cut.Status, cut.Body)
	}

	script := regexp.MustCompile(`src="(/static/coupon\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(body)
	if script == nil {
		t.Fatalf("no versioned coupon.js in the page")
	}
	js := ta.get(script[1])
	if js.Status != http.StatusOK || !strings.Contains(js.Header.Get("Cache-Control"), "immutable") ||
		!strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") || js.Header.Get("ETag") == "" {
		t.Errorf("coupon.js: %d %v", js.Status, js.Header)
	}
	if old := ta.get("/static/coupon.js?v=0"); old.Header.Get("Cache-Control") != "public, no-cache" {
		t.Errorf("an old version is cached as %q", old.Header.Get("Cache-Control"))
	}
	// Used, the link says so, and My coupons through it leads back there.
	if r := ta.redeem(shop.key, "", payments.RedemptionQRContent(coupons[0], ta.clock.Now()), nil); r.Status != http.StatusOK {
		t.Fatalf("redeem: %d %s", r.Status, r.Body)
	}
	if r := ta.get(strings.TrimPrefix(link, ta.URL) + "/wallet"); r.Status != http.StatusSeeOther || r.Header.Get("Location") != strings.TrimPrefix(link, ta.URL) {
		t.Errorf("My coupons through a used coupon's link: %d %v", r.Status, r.Header)
	}
	if r := ta.get(strings.TrimPrefix(link, ta.URL)); !strings.Contains(string(r.Body), "You have used this coupon.") || strings.Contains(string(r.Body), "data-secret") {
		t.Errorf("a used coupon's link: %d %s", r.Status, r.Body)
	}

	worker := ta.get(payments.CouponLinkPath + "sw.js")
	if worker.Status != http.StatusOK || worker.Header.Get("Cache-Control") != "no-cache" || strings.Contains(string(worker.Body), "__ASSETS__") {
		t.Errorf("service worker: %d %v", worker.Status, worker.Header)
	}
	if r := ta.get("/static/coupon-sw.js"); r.Status != http.StatusNotFound {
		t.Errorf("the worker's template is served as %d", r.Status)
	}
}

// The coupon page and My coupons pass axe-core with no violation and score
// at least minLighthouseAccessibility in Lighthouse, on a phone and on a
// laptop; the code behind a tap (typed codes on) is part of the check.
func TestCouponPagesAccessible(t *testing.T) {
	a11yTools(t)
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	allow := true
	if _, err := ta.app.catalog.UpdateMerchant(context.Background(), shop.merchant.ID, catalog.MerchantPatch{AllowTypedCodes: &allow}); err != nil {
		t.Fatal(err)
	}
	orderID, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 2})
	link := issuedRedeemURL(t, ta, coupons[0].ID)
	wallet := link + "/wallet"
	receipt := ta.URL + "/receipts/" + orderID + "?launch=" + url.QueryEscape(ta.launch(shop.channel, "42", "Shopper 42"))

	b := startBrowser(t)
	for _, phone := range []bool{true, false} {
		b.atViewport(phone)
		screen := "1366"
		if phone {
			screen = "360"
		}
		b.do(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
		b.do(chromedp.Click(chromedp.CSS("details.typed summary")), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-code]")))
		b.screenshot("coupon-typed-code-" + screen)
		b.axe("coupon-" + screen)
		b.do(chromedp.Navigate(wallet), chromedp.WaitVisible(chromedp.CSS("[data-testid=wallet]")))
		b.screenshot("my-coupons-" + screen)
		b.axe("my-coupons-" + screen)
		b.do(chromedp.Navigate(receipt), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
		b.screenshot("receipt-" + screen)
		b.axe("receipt-" + screen)
	}
	// The phone in dark mode: the page follows it, the QR stays dark on white.
	b.atViewport(true)
	b.do(chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}))
	b.do(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	if _, step := b.couponQR(); step == 0 {
		t.Errorf("no QR in dark mode")
	}
	b.screenshot("coupon-dark-360")
	b.axe("coupon-dark-360")

	if r := ta.redeem(shop.key, "", payments.RedemptionQRContent(coupons[1], ta.clock.Now()), nil); r.Status != http.StatusOK {
		t.Fatalf("redeem: %d %s", r.Status, r.Body)
	}
	used := issuedRedeemURL(t, ta, coupons[1].ID)
	b.atViewport(true)
	b.do(chromedp.Navigate(used), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-status]")))
	b.axe("coupon-used-360")

	// Lighthouse takes a few seconds a page: the two pages a shopper
	// uses, on both screens; the used coupon's page is axe's only.
	lighthouseAccessibility(t, append(onBothScreens("coupon", link, nil), onBothScreens("my-coupons", wallet, nil)...)...)
}
