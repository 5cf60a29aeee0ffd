package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/sandbox"
)

// The two screens the shopper pages are checked on: WeChat's in-app browser
// on a small phone, and a desktop browser.
var shopperScreens = []struct {
	name          string
	width, height int64
	userAgent     string
}{
	{"phone", phoneViewportWidthPx, phoneViewportHeight,
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN"},
	{"desktop", 1366, 800, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"},
}

// shopperInternalWords must never reach a shopper's screen: they name the
// service's insides, not anything a shopper knows.
var shopperInternalWords = []string{"launch context", "launch_context", "hash", "channel", "signature", "auth_date",
	"idempotency", "m0s", "_", "invalid", "payments.", "problem"}

// What each refusal must say, by language: a phrase of the title or the
// message, so that a wrong mapping fails, not only an English leak.
type shopperErrorCase struct {
	name string
	open func() // navigates to the page, and acts on it where the refusal needs a tap
	want map[string]string
}

// Every shopper error path, in Chinese and English, on a phone in WeChat and
// on a desktop: said in the page's language, with what to do next, and no
// internal word; the top-up form is above the fold; Buy and Top up show
// their pending state; "Top up and pay" pays in one tap; the language
// switch works and is remembered.
func TestBrowserShopperPagesExplainThemselves(t *testing.T) {
	ta := startTestApp(t, storyStart) // 14:30 in Shanghai
	shop := ta.teaShop(500)
	qrPath := func(itemID string) string {
		code := ta.call("POST", "/v1/qr-codes", shop.key, "", map[string]any{"item_id": itemID, "placement": "counter"}).JSON(t)
		u := code["url"].(string)
		return u[strings.Index(u, "/q/"):]
	}
	teaPath := qrPath(shop.itemID)
	soldOutItem := ta.call("POST", "/v1/items", shop.key, "", itemWith(teaCard(0), map[string]any{"sku": "TEA-GONE", "title": "Old tea card"})).JSON(t)["id"].(string)
	soldOutPath := qrPath(soldOutItem)
	revokedCode := ta.call("POST", "/v1/qr-codes", shop.key, "", map[string]any{"item_id": shop.itemID, "placement": "old poster"}).JSON(t)
	if r := ta.call("POST", "/v1/qr-codes/"+revokedCode["id"].(string)+"/revoke", shop.key, "", nil); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	revokedURL := revokedCode["url"].(string)
	revokedPath := revokedURL[strings.Index(revokedURL, "/q/"):]
	ta.buy(shop, "7", map[string]int{shop.itemID: 2}) // shopper 7 has bought as many as one may
	launchFor := func(userID string, extra map[string]string) string {
		fields := map[string]string{"channel_id": shop.channel.Channel.ID, "user_id": userID, "chat_id": "chat-" + userID,
			"name": "Li Wei", "auth_date": strconv.FormatInt(ta.clock.Now().Unix(), 10)}
		for k, v := range extra {
			fields[k] = v
		}
		return payments.SignLaunch(shop.channel.LaunchSecret, fields)
	}
	withLaunch := func(path, launch string) string { return path + "?launch=" + url.QueryEscape(launch) }

	b := startBrowser(t)
	visibleText := func() string { return b.eval(`document.body.innerText`) }
	assertPlain := func(where, lang, want string) {
		t.Helper()
		text := visibleText()
		if !strings.Contains(text, want) {
			t.Errorf("%s (%s) does not say %q:\n%s", where, lang, want, text)
		}
		lower := strings.ToLower(text)
		for _, word := range shopperInternalWords {
			if strings.Contains(lower, word) {
				t.Errorf("%s (%s) shows the internal word %q:\n%s", where, lang, word, text)
			}
		}
		if got := b.eval(`document.documentElement.lang`); !strings.HasPrefix(lang, got) {
			t.Errorf("%s: page language %q, want %s", where, got, lang)
		}
	}
	goTo := func(path string) {
		t.Helper()
		b.do(chromedp.Navigate(ta.URL+path), chromedp.WaitReady(chromedp.CSS("main")))
	}

	// Each case opens its page from a fresh shopper (a user id per case and
	// run), so that no case leans on another's purchases.
	run := 0
	fresh := func(prefix string) string { run++; return prefix + strconv.Itoa(run) }
	cases := []shopperErrorCase{
		{"no-launch", func() { goTo(teaPath) },
			map[string]string{"en": "only works when your messenger opens it", "zh": "只能由聊天应用打开"}},
		{"stale-launch", func() {
			stale := launchFor(fresh("s"), map[string]string{"auth_date": strconv.FormatInt(ta.clock.Now().Add(-15*time.Minute-11*time.Second).Unix(), 10)})
			goTo(withLaunch(teaPath, stale))
		}, map[string]string{"en": "that time is up", "zh": "现已超时"}},
		{"tampered-launch", func() {
			tampered := strings.Replace(launchFor("42", nil), "user_id=42", "user_id=43", 1)
			goTo(withLaunch(teaPath, tampered))
		}, map[string]string{"en": "could not confirm that your messenger opened this page", "zh": "无法确认此页面是由您的聊天应用打开的"}},
		{"unknown-messenger", func() {
			unknown := payments.SignLaunch("ls_some_other_secret", map[string]string{"channel_id": "chn_nosuchchannelxxxxxxxxxxxx",
				"user_id": "42", "auth_date": strconv.FormatInt(ta.clock.Now().Unix(), 10)})
			goTo(withLaunch(teaPath, unknown))
		}, map[string]string{"en": "could not confirm", "zh": "无法确认"}},
		{"revoked-code", func() { goTo(withLaunch(revokedPath, launchFor("42", nil))) },
			map[string]string{"en": "This code is no longer valid", "zh": "此二维码已失效"}},
		{"unknown-code", func() {
			goTo(withLaunch("/q/aaaaaaaaaaaaaaaaaaaaaaaaaa", launchFor("42", nil)))
		}, map[string]string{"en": "could not find what this link points to", "zh": "找不到此链接指向的内容"}},
		{"sold-out", func() { goTo(withLaunch(soldOutPath, launchFor("42", nil))) },
			map[string]string{"en": "Sold out.", "zh": "已售罄"}},
		{"limit-reached", func() {
			goTo(withLaunch(teaPath, launchFor("7", nil)))
			if n := b.eval(`String(document.querySelectorAll('#buy').length)`); n != "0" {
				t.Errorf("Buy now is still offered past the limit")
			}
		}, map[string]string{"en": "Limit reached", "zh": "已达限购数量"}},
		{"card-declined", func() {
			goTo(withLaunch(teaPath, launchFor(fresh("d"), nil))) // a new shopper: an empty wallet
			b.do(chromedp.WaitVisible(chromedp.CSS("#card")), chromedp.SetValue(chromedp.CSS("#card"), sandbox.CardDeclined),
				chromedp.Click(chromedp.CSS("#topup")), chromedp.WaitVisible(chromedp.CSS("[data-testid=error]")))
			if kept := b.eval(`document.querySelector('#card').value`); kept != sandbox.CardDeclined {
				t.Errorf("the card field reads %q after a decline, want the number typed", kept)
			}
		}, map[string]string{"en": "Your card was declined", "zh": "银行卡被拒"}},
		{"page-out-of-date", func() {
			sh := fresh("k")
			ta.fundChannelUser(shop, sh)
			goTo(withLaunch(teaPath, launchFor(sh, nil)))
			// A form that lost its key (a page kept open from an old version).
			b.do(chromedp.WaitVisible(chromedp.CSS("#buy")))
			b.eval(`document.querySelector('input[name=idempotency_key]').value = ''; 'ok'`)
			b.do(chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS("[data-testid=message]")))
		}, map[string]string{"en": "The page was out of date", "zh": "页面已过期"}},
	}
	for _, screen := range shopperScreens {
		for _, lang := range []string{"zh-CN", "en"} {
			b.do(emulateShopper(screen.userAgent, lang, screen.width, screen.height))
			for _, c := range cases {
				c.open()
				assertPlain(screen.name+" "+c.name, lang, c.want[lang[:2]])
				b.screenshot(screen.name + "-" + lang + "-" + c.name)
			}
		}
	}

	// The top-up on a phone in WeChat: above the fold, suggested amounts,
	// the test cards' hint absent on a live instance, and "Top up and pay"
	// pays in one tap with its pending state showing.
	for _, screen := range shopperScreens {
		b.do(emulateShopper(screen.userAgent, "en", screen.width, screen.height))
		shopperID := fresh("t")
		goTo(withLaunch(teaPath, launchFor(shopperID, nil)))
		b.do(chromedp.WaitVisible(chromedp.CSS("#topup")))
		if bottom, _ := strconv.ParseFloat(b.eval(`String(document.querySelector('#topup').getBoundingClientRect().bottom)`), 64); bottom > float64(screen.height) || bottom == 0 {
			t.Errorf("%s: the Top up button ends at %.0f px on a %d px screen", screen.name, bottom, screen.height)
		}
		if width := b.eval(`String(document.documentElement.scrollWidth)`); width != strconv.FormatInt(screen.width, 10) {
			t.Errorf("%s: the checkout is %s px wide: it scrolls sideways", screen.name, width)
		}
		amounts := b.eval(`Array.from(document.querySelectorAll('input[name=amount]')).map(i => i.value).join(' ')`)
		if amounts != "3.00 10.00 20.00" {
			t.Errorf("suggested amounts %q, want the shortfall and two round amounts", amounts)
		}
		if n := b.eval(`String(document.querySelectorAll('[data-testid=card-hint]').length)`); n != "0" {
			t.Errorf("%s: a live instance shows the sandbox's test cards", screen.name)
		}
		b.screenshot(screen.name + "-topup")
		b.do(chromedp.Click(chromedp.CSS(`input[name=amount][value="10.00"]`)), chromedp.SetValue(chromedp.CSS("#card"), sandbox.CardSuccess))
		pending := b.eval(`(() => { const b = document.querySelector('#topup'); b.click(); return b.textContent + '|' + b.getAttribute('aria-disabled'); })()`)
		if pending != "Paying…|true" {
			t.Errorf("%s: the tapped Top up reads %q, want the pending state", screen.name, pending)
		}
		b.do(chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
		b.screenshot(screen.name + "-paid-in-one-tap")
		if n := ta.count(`SELECT count(*) FROM orders o JOIN shoppers s ON s.id = o.shopper_id WHERE s.external_user_id = $1`, shopperID); n != 1 {
			t.Errorf("%s: %d orders after Top up and pay, want 1", screen.name, n)
		}
		if n := ta.count(`SELECT count(*) FROM topups t JOIN shoppers s ON s.id = t.shopper_id WHERE s.external_user_id = $1 AND t.status = 'succeeded' AND t.amount_minor = 1000`, shopperID); n != 1 {
			t.Errorf("%s: %d top-ups of 10.00, want 1", screen.name, n)
		}
	}

	// Buy now's pending state, then the language: the messenger's language
	// code (ru) wins over the browser's English; the switch changes it and
	// is remembered on the next visit.
	b.do(emulateShopper(shopperScreens[0].userAgent, "en", shopperScreens[0].width, shopperScreens[0].height))
	russian := fresh("r")
	ta.fundChannelUser(shop, russian)
	russianLaunch := launchFor(russian, map[string]string{"language_code": "ru"})
	goTo(withLaunch(teaPath, russianLaunch))
	assertPlain("russian checkout", "ru", "Купить")
	if rules := b.text("[data-testid=rules]"); !strings.Contains(rules, "ежедневно 14:00–17:00") {
		t.Errorf("the rules are not in Russian: %q", rules)
	}
	b.screenshot("phone-ru-checkout")
	b.do(chromedp.Click(chromedp.CSS(`[data-testid=language-switch] a[data-lang=zh]`)), chromedp.WaitVisible(chromedp.CSS("#buy")))
	assertPlain("switched to Chinese", "zh", "立即购买")
	goTo(withLaunch(teaPath, russianLaunch))
	assertPlain("reopened after switching", "zh", "立即购买")
	b.screenshot("phone-zh-remembered")
	pending := b.eval(`(() => { const b = document.querySelector('#buy'); b.click(); return b.textContent + '|' + b.getAttribute('aria-disabled'); })()`)
	if pending != "正在付款…|true" {
		t.Errorf("the tapped Buy now reads %q, want the pending state", pending)
	}
	b.do(chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))

	// Dark mode: the page follows the phone's setting.
	b.do(chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}))
	goTo(withLaunch(teaPath, launchFor(fresh("n"), nil)))
	if bg := b.eval(`getComputedStyle(document.body).backgroundColor`); bg != "rgb(18, 20, 23)" {
		t.Errorf("dark mode background %s", bg)
	}
	b.screenshot("phone-dark-topup")
	assertVerifyClean(t, ta)
}

// A sandbox instance names its test cards on the top-up form (a live one
// never does: the browser test above), and with its "Test mode" band and
// the hint the Top up button still shows without scrolling in WeChat on a
// small phone.
func TestCardHintOnlyInSandbox(t *testing.T) {
	ta := startTestAppWith(t, storyStart, func(cfg *appConfig) { cfg.Sandbox = true })
	shop := ta.teaShop(5)
	code := ta.call("POST", "/v1/qr-codes", shop.key, "", map[string]any{"item_id": shop.itemID, "placement": "counter"}).JSON(t)["url"].(string)
	checkout := code[strings.Index(code, "/q/"):] + "?launch=" + url.QueryEscape(ta.launch(shop.channel, "42", "Li Wei"))
	page := ta.get(checkout)
	if page.Status != http.StatusOK || !strings.Contains(string(page.Body), `data-testid="card-hint"`) || !strings.Contains(string(page.Body), "4242 4242 4242 4242") {
		t.Fatalf("sandbox top-up form without the test cards: %d\n%s", page.Status, page.Body)
	}
	b := startBrowser(t)
	phone := shopperScreens[0]
	b.do(emulateShopper(phone.userAgent, "zh-CN", phone.width, phone.height), chromedp.Navigate(ta.URL+checkout),
		chromedp.WaitVisible(chromedp.CSS("#topup")))
	if bottom, _ := strconv.ParseFloat(b.eval(`String(document.querySelector('#topup').getBoundingClientRect().bottom)`), 64); bottom > float64(phone.height) || bottom == 0 {
		t.Errorf("in a sandbox the Top up button ends at %.0f px on a %d px screen", bottom, phone.height)
	}
	b.screenshot("phone-sandbox-topup")
}

// A shopper who leaves while the top-up is being charged is not a server
// error: the access log says 499, and the top-up still finishes.
func TestCanceledTopUpIsNotAServerError(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(5)
	code := ta.call("POST", "/v1/qr-codes", shop.key, "", map[string]any{"item_id": shop.itemID, "placement": "counter"}).JSON(t)["url"].(string)
	path := code[strings.Index(code, "/q/"):]
	launch := ta.launch(shop.channel, "42", "Li Wei")
	page := string(ta.get(path + "?launch=" + url.QueryEscape(launch)).Body)
	key := regexp.MustCompile(`action="[^"]*/topup"[\s\S]*?name="idempotency_key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	form := url.Values{"launch": {launch}, "idempotency_key": {key}, "amount": {"3.00"}, "currency": {"CNY"}, "card": {sandbox.CardSlow}, "then": {"buy"}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ta.URL+path+"/topup", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the slow top-up answered %d within 100 ms", resp.StatusCode)
	}
	// The access log and the metrics record the status the handler ended
	// with, once it ends (the charge finishes after the shopper left).
	topUpLine := regexp.MustCompile(`chatpay_http_requests_total\{method="POST",route="/q/:token/topup",status="(\d+)"\}`)
	var statuses [][]string
	for deadline := time.Now().Add(10 * time.Second); len(statuses) == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		statuses = topUpLine.FindAllStringSubmatch(string(ta.get("/metrics").Body), -1)
	}
	if len(statuses) != 1 || statuses[0][1] != "499" {
		t.Fatalf("the left top-up is recorded as %v, want 499 only", statuses)
	}
	if n := ta.count(`SELECT count(*) FROM topups`); n != 1 {
		t.Fatalf("%d top-ups, want 1", n)
	}
}

// emulateShopper sets the browser's user agent, language and viewport.
func emulateShopper(userAgent, lang string, width, height int64) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		if _, err := cdp.Call(ctx, target, emulation.SetUserAgentOverride,
			emulation.SetUserAgentOverrideParams{UserAgent: userAgent, AcceptLanguage: lang}); err != nil {
			return err
		}
		_, err := chromedp.EmulateViewport(width, height)(ctx, target)
		return err
	})
}

// fundChannelUser funds the wallet of the channel's shopper userID.
func (ta *testApp) fundChannelUser(shop teaShop, userID string) {
	ta.t.Helper()
	shopper, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, shop.channel.Channel.ID, userID, "Li Wei")
	if err != nil {
		ta.t.Fatal(err)
	}
	ta.fund(shopper.ID, 10_000, "CNY")
}

func itemWith(base, extra map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// The checkout page passes axe (0 violations) in each of its states, light
// and dark, on a phone and a laptop, and scores at least
// minLighthouseAccessibility in Lighthouse at both sizes.
func TestShopperCheckoutAccessibility(t *testing.T) {
	a11yTools(t)
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	code := ta.call("POST", "/v1/qr-codes", shop.key, "", map[string]any{"item_id": shop.itemID, "placement": "counter"}).JSON(t)["url"].(string)
	path := code[strings.Index(code, "/q/"):]
	ta.fundChannelUser(shop, "funded")
	ta.buy(shop, "limited", map[string]int{shop.itemID: 2})
	page := func(userID string) string {
		return ta.URL + path + "?launch=" + url.QueryEscape(ta.launch(shop.channel, userID, "Li Wei"))
	}
	stale := payments.SignLaunch(shop.channel.LaunchSecret, map[string]string{"channel_id": shop.channel.Channel.ID, "user_id": "42",
		"auth_date": strconv.FormatInt(ta.clock.Now().Add(-time.Hour).Unix(), 10)})
	refusal := ta.URL + path + "?launch=" + url.QueryEscape(stale)

	b := startBrowser(t)
	for _, phone := range []bool{true, false} {
		for _, scheme := range []string{"light", "dark"} {
			if !phone && scheme == "dark" {
				continue // the same colours as on the phone
			}
			b.atViewport(phone)
			b.do(chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
				_, err := cdp.Call(ctx, target, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
				return err
			}))
			size := "1366"
			if phone {
				size = "360"
			}
			for name, steps := range map[string][]chromedp.Action[chromedp.Void]{
				"buy":     {chromedp.Navigate(page("funded")), chromedp.WaitVisible(chromedp.CSS("#buy"))},
				"limit":   {chromedp.Navigate(page("limited")), chromedp.WaitVisible(chromedp.CSS("[data-testid=limit-reached]"))},
				"refusal": {chromedp.Navigate(refusal), chromedp.WaitVisible(chromedp.CSS("[data-testid=message]"))},
				"declined": {chromedp.Navigate(page("short-" + size + scheme)), chromedp.WaitVisible(chromedp.CSS("#card")),
					chromedp.SetValue(chromedp.CSS("#card"), sandbox.CardDeclined), chromedp.Click(chromedp.CSS("#topup")),
					chromedp.WaitVisible(chromedp.CSS("[data-testid=error]"))},
			} {
				b.do(steps...)
				b.axe(name + "-" + size + "-" + scheme)
			}
		}
	}
	// Lighthouse takes seconds per page on a shared 2-core machine: it scores
	// the top-up state, the page's fullest (amounts, card field, the pending
	// script), and axe above covers every state. Lighthouse refuses to score
	// a page answered with a 401, such as the refusal.
	lighthouseAccessibility(t, onBothScreens("checkout-topup", page("short-lighthouse"), nil)...)
}

// "Top up and pay" posted twice (a double tap, a retry after a lost
// answer) charges once and buys once: each step has its own key, derived
// from the form's one key, and both answers lead to the same receipt.
func TestTopUpAndPayIsIdempotent(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(5)
	code := ta.call("POST", "/v1/qr-codes", shop.key, "", map[string]any{"item_id": shop.itemID, "placement": "counter"}).JSON(t)["url"].(string)
	path := code[strings.Index(code, "/q/"):]
	launch := ta.launch(shop.channel, "42", "Li Wei")
	page := string(ta.get(path + "?launch=" + url.QueryEscape(launch)).Body)
	key := regexp.MustCompile(`action="[^"]*/topup"[\s\S]*?name="idempotency_key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	form := url.Values{"launch": {launch}, "idempotency_key": {key}, "amount": {"10.00"}, "currency": {"CNY"}, "card": {sandbox.CardSuccess}, "then": {"buy"}}
	first, second := ta.postForm(path+"/topup", form), ta.postForm(path+"/topup", form)
	if first.Status != http.StatusSeeOther || second.Status != http.StatusSeeOther || first.Header.Get("Location") != second.Header.Get("Location") {
		t.Fatalf("Top up and pay twice: %d %s, %d %s", first.Status, first.Header.Get("Location"), second.Status, second.Header.Get("Location"))
	}
	if n := ta.count(`SELECT count(*) FROM topups`); n != 1 {
		t.Errorf("%d top-ups, want 1", n)
	}
	if n := ta.count(`SELECT count(*) FROM orders`); n != 1 {
		t.Errorf("%d orders, want 1", n)
	}
	assertVerifyClean(t, ta)
}
