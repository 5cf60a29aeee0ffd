package main

import (
	"context"
	"encoding/base64"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"
)

// Browser test limits: one step of the scenario may take this long at most
// (a cold Chromium start included), and the viewport is a small phone.
const (
	browserStepTimeout   = 60 * time.Second
	phoneViewportWidthPx = 360
	phoneViewportHeight  = 740
)

// chromiumPath finds Debian's Chromium; without one the browser tests skip
// on a developer machine and fail in CI, where they must run.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, candidate := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(candidate); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and CI is set: the browser tests must run in CI (make ensure-chromium installs it)")
	}
	t.Skip("chromium is not installed: skipping the browser test (install it with `apt-get install chromium`, or run `make test`)")
	return ""
}

// artifactsDir is where the screenshots go: $CHATPAY_ARTIFACTS, or
// testdata-artifacts/browser at the repository root (ignored by git).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CHATPAY_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "testdata-artifacts", "browser")
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium with a private profile; it is stopped
// when the test ends.
type browser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	shots     int

	mu            sync.Mutex
	cspViolations []string
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	// Start the browser now, so that a missing library fails here, clearly.
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		// Cancel closes the browser gracefully and waits for its processes.
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("stop chromium: %v", err)
		}
		cancelCtx()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx, artifacts: artifactsDir(t)}
	// Chromium reports what a page's Content-Security-Policy blocked in its
	// log; every page of the story must render without any such refusal.
	if err := chromedp.Listen(ctx, func(ev any) {
		if entry, ok := ev.(*cdplog.EventEntryAdded); ok && strings.Contains(entry.Entry.Text, "Content Security Policy") {
			b.mu.Lock()
			b.cspViolations = append(b.cspViolations, entry.Entry.URL+": "+entry.Entry.Text)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("listen to chromium's log: %v", err)
	}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, v := range b.cspViolations {
			t.Errorf("blocked by Content-Security-Policy: %s", v)
		}
	})
	return b
}

// do runs steps within browserStepTimeout.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// text returns the text of the first element matching css.
func (b *browser) text(css string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) eval(expression string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expression, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expression, err)
	}
	return s
}

func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// screenshot saves the whole page as NN-name.png in the artifacts folder.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.shots++
	path := filepath.Join(b.artifacts, twoDigits(b.shots)+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + string(rune('0'+n))
	}
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}

// fill sets form fields by element id.
func fill(fields map[string]string) []chromedp.Action[chromedp.Void] {
	var steps []chromedp.Action[chromedp.Void]
	for id, value := range fields {
		steps = append(steps, chromedp.SetValue(chromedp.CSS("#"+id), value))
	}
	return steps
}

// The tea card through a real browser: a merchant signs up and publishes
// the tea card, downloads its QR; a shopper on a 360 px phone buys it; the
// merchant sees the order and the chart; the till refuses the coupon out of
// hours and accepts it in hours.
func TestBrowserTeaCardStory(t *testing.T) {
	ta := startTestApp(t, storyStart) // 14:30 in Shanghai
	b := startBrowser(t)

	// 1. Sign up.
	b.do(chromedp.Navigate(ta.URL + "/dashboard/signup"))
	b.screenshot("signup")
	b.do(fill(map[string]string{"name": "McDonald's", "time_zone": "Asia/Shanghai", "currency": "CNY",
		"email": "owner@mcd.example", "password": "tea-time-1400"})...)
	b.do(chromedp.Click(chromedp.CSS("#signup")), chromedp.WaitVisible(chromedp.CSS("[data-testid=sales-chart]")))
	b.screenshot("overview-empty")

	// 2. Publish the tea card with its rules.
	b.do(chromedp.Navigate(ta.URL+"/dashboard/items/new"), chromedp.WaitVisible(chromedp.CSS("#title")))
	b.do(fill(map[string]string{"title": "Tea card", "sku": "TEA-CARD", "description": "A pot of tea with a snack",
		"category": "tea", "price": "3.00", "currency": "CNY", "stock": "500", "per_shopper_limit": "2",
		"windows": "14:00-17:00", "valid_for": "P3M", "exclude_categories": "coffee"})...)
	b.do(chromedp.Click(chromedp.CSS("#save-item")), chromedp.WaitVisible(chromedp.CSS("[data-testid=rules-text]")))
	rules := b.text("[data-testid=rules-text]")
	for _, want := range []string{"14:00–17:00 daily", "not for coffee", "3 months after purchase"} {
		if !strings.Contains(rules, want) {
			t.Errorf("rules read %q, lacking %q", rules, want)
		}
	}
	b.screenshot("tea-card-saved")
	itemID := strings.TrimPrefix(b.location(), ta.URL+"/dashboard/items/")
	itemID, _, _ = strings.Cut(itemID, "?")

	// 3. Make its QR code for the counter and download the PNG.
	b.do(chromedp.Navigate(ta.URL+"/dashboard/qr?item_id="+itemID), chromedp.WaitVisible(chromedp.CSS("#placement")))
	b.do(chromedp.SetValue(chromedp.CSS("#placement"), "counter"), chromedp.Click(chromedp.CSS("#create-qr")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=qr-preview] svg")))
	b.screenshot("qr-code")
	pngURL := b.eval(`document.querySelector('#download-png').getAttribute('href')`)
	encoded := b.eval(`fetch(` + jsString(pngURL) + `).then(r => r.arrayBuffer()).then(buf => {
		let s = ''; const bytes = new Uint8Array(buf);
		for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
		return btoa(s); })`)
	pngBytes, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		t.Fatal(err)
	}
	// A poster's code opens the messenger chooser by default; its "continue
	// in the browser" leads to the checkout page (messengers_test.go).
	chooserURL := decodeQR(t, pngBytes)
	if !strings.HasPrefix(chooserURL, ta.URL+"/o/") {
		t.Fatalf("the downloaded QR says %q", chooserURL)
	}
	checkoutURL := strings.Replace(chooserURL, "/o/", "/q/", 1)
	b.do(chromedp.Navigate(ta.URL + strings.TrimSuffix(pngURL, "/qr.png") + "/poster"))
	b.screenshot("qr-poster")

	// 4. A shopper scans it in the chat on a small phone and buys.
	channel := ta.channel()
	shopper, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, channel.Channel.ID, "42", "Li Wei")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(shopper.ID, 1000, "CNY")
	launch := ta.launch(channel, "42", "Li Wei")
	shopperTab := b // the same tab, shrunk to a phone while the shopper uses it
	shopperTab.do(chromedp.EmulateViewport(phoneViewportWidthPx, phoneViewportHeight),
		chromedp.Navigate(checkoutURL+"?launch="+url.QueryEscape(launch)), chromedp.WaitVisible(chromedp.CSS("#buy")))
	if width := shopperTab.eval(`String(document.documentElement.scrollWidth)`); width != "360" {
		t.Errorf("the checkout page is %s px wide on a 360 px phone: it scrolls sideways", width)
	}
	if price := shopperTab.text("[data-testid=price]"); price != "3.00 CNY" {
		t.Errorf("price %q", price)
	}
	shopperTab.screenshot("phone-checkout")
	shopperTab.do(chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	couponLink := shopperTab.eval(`document.querySelector('[data-testid=coupon-link]').href`)
	shopperTab.screenshot("phone-receipt")
	if n := ta.count(`SELECT count(*) FROM orders`); n != 1 {
		t.Fatalf("%d orders after Buy now", n)
	}

	// 5. The merchant sees the order and the sales chart, on a desktop again.
	b.do(chromedp.EmulateViewport(1280, 900))
	b.do(chromedp.Navigate(ta.URL+"/dashboard/orders"), chromedp.WaitVisible(chromedp.CSS("[data-testid=order-row]")))
	if row := b.text("[data-testid=order-row]"); !strings.Contains(row, "Tea card") || !strings.Contains(row, "3.00 CNY") {
		t.Errorf("order row %q", row)
	}
	b.screenshot("orders")
	b.do(chromedp.Navigate(ta.URL+"/dashboard"), chromedp.WaitVisible(chromedp.CSS("[data-testid=sales-chart] svg")))
	if total := b.text("[data-testid=orders-total]"); total != "1" {
		t.Errorf("the overview counts %s orders", total)
	}
	if bars := b.eval(`String(document.querySelectorAll('[data-testid=sales-chart] rect[height]:not([height="0.0"])').length)`); bars != "1" {
		t.Errorf("the sales chart has %s non-empty bars, want 1", bars)
	}
	if funnel := b.text("[data-testid=qr-funnel]"); !strings.Contains(funnel, "Paid") {
		t.Errorf("qr funnel %q", funnel)
	}
	b.screenshot("overview-after-sale")

	// 6. At 17:30 the till refuses the coupon the phone shows: outside its
	// hours. (The scanner types what it reads into the till's field.)
	ta.clock.Set(storyStart.Add(3 * time.Hour))
	scanned := b.showCoupon(couponLink)
	b.do(chromedp.Navigate(ta.URL+"/dashboard/till"), chromedp.WaitVisible(chromedp.CSS("#code")))
	b.do(chromedp.SetValue(chromedp.CSS("#code"), scanned), chromedp.Click(chromedp.CSS("#redeem")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=verdict]")))
	if reason := b.eval(`document.querySelector('[data-testid=verdict]').dataset.reason`); reason != "outside_time_window" {
		t.Fatalf("the till says %q at 17:30, want outside_time_window", reason)
	}
	b.screenshot("till-refused")

	// 7. The next day at 14:10 the session has ended; staff sign in again
	// and the till accepts it.
	ta.clock.Set(storyStart.Add(24*time.Hour - 20*time.Minute))
	b.do(chromedp.Navigate(ta.URL+"/dashboard/till"), chromedp.WaitVisible(chromedp.CSS("#login")))
	b.do(fill(map[string]string{"email": "owner@mcd.example", "password": "tea-time-1400"})...)
	b.do(chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("[data-testid=sales-chart]")))
	scanned = b.showCoupon(couponLink)
	b.do(chromedp.Navigate(ta.URL+"/dashboard/till"), chromedp.WaitVisible(chromedp.CSS("#code")))
	b.do(chromedp.SetValue(chromedp.CSS("#code"), scanned), chromedp.Click(chromedp.CSS("#redeem")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=verdict]")))
	if verdict := b.eval(`document.querySelector('[data-testid=verdict]').dataset.verdict`); verdict != "accepted" {
		t.Fatalf("the till says %q at 14:10: %s", verdict, b.text("[data-testid=verdict]"))
	}
	b.screenshot("till-accepted")
	b.do(chromedp.Navigate(ta.URL+"/dashboard/redemptions"), chromedp.WaitVisible(chromedp.CSS("[data-testid=redemption-row]")))
	b.screenshot("redemptions")
	assertVerifyClean(t, ta)
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
