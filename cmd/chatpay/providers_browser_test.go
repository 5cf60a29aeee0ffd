package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/chatpay/chatpay/payments/providerconfig"
	"github.com/chatpay/chatpay/payments/wechatpay"
)

// weChatBridgeStub stands in for WeChat's own WeixinJSBridge, which only
// WeChat's browser has: it records the request and answers "ok" at once.
// sessionStorage keeps the record across the page's return navigation.
const weChatBridgeStub = `window.WeixinJSBridge = { invoke: function (name, params, done) {
  sessionStorage.setItem("wx", JSON.stringify({ name: name, params: params }));
  done({ err_msg: "get_brand_wcpay_request:ok" });
} };`

// browserPollMax bounds how often the test looks for the sheet's record.
const browserPollMax = 100

// In WeChat's browser, on a phone: the checkout page has no card field, the
// top-up opens WeChat Pay's sheet with parameters signed by the merchant key
// (the page's one script runs under its nonce: no CSP refusal), and after
// WeChat Pay's notification the shopper buys the tea card.
func TestWeChatPaySheetInTheBrowser(t *testing.T) {
	server := startWeChatPayFake(t)
	ps := startProviderStory(t, providerconfig.URLs{WeChatPay: server.URL})
	ps.useWeChatPay(server)
	b := startBrowser(t)
	b.do(chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		if _, err := cdp.Call(ctx, target, emulation.SetUserAgentOverride,
			emulation.SetUserAgentOverrideParams{UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.50"}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: weChatBridgeStub})
		return err
	}))
	checkout := ps.URL + ps.path + "?launch=" + url.QueryEscape(ps.launch)
	b.do(chromedp.EmulateViewport(phoneViewportWidthPx, phoneViewportHeight),
		chromedp.Navigate(checkout), chromedp.WaitVisible(chromedp.CSS("[data-testid=provider-form]")))
	if cards := b.eval(`String(document.querySelectorAll('input[name=card]').length)`); cards != "0" {
		t.Fatalf("%s card fields on a WeChat Pay merchant's page", cards)
	}
	if button := b.text("#topup"); !strings.Contains(button, "WeChat Pay") || !strings.Contains(button, "3.00 CNY") {
		t.Fatalf("button %q", button)
	}
	b.screenshot("wechat-checkout")
	b.do(chromedp.Click(chromedp.CSS("#topup")))

	var record struct {
		Name   string            `json:"name"`
		Params map[string]string `json:"params"`
	}
	for i := 0; record.Name == "" && i < browserPollMax; i++ {
		// The page navigates twice (the sheet's page, then back): an
		// evaluation that lands in between is simply tried again.
		ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("wx") || ""`))
		cancel()
		if err == nil && raw != "" {
			if err := json.Unmarshal([]byte(raw), &record); err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	top := ps.latestTopUp()
	order, ok := server.Order(top.ProviderKey)
	if record.Name != "getBrandWCPayRequest" || !ok || record.Params["package"] != "prepay_id="+order.PrepayID {
		t.Fatalf("the sheet was asked %+v for order %+v", record, order)
	}
	p := record.Params
	message := p["appId"] + "\n" + p["timeStamp"] + "\n" + p["nonceStr"] + "\n" + p["package"] + "\n"
	if err := wechatpay.Verify(&server.MerchantKey.PublicKey, []byte(message), p["paySign"]); err != nil {
		t.Fatalf("paySign: %v", err)
	}
	if ps.wallet() != 0 {
		t.Fatal("the sheet's own answer credited the wallet")
	}

	if err := server.Pay(top.ProviderKey); err != nil {
		t.Fatal(err)
	}
	header, body, err := server.Notification(top.ProviderKey, "EV-browser", ps.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := ps.notify(wechatpay.Name, header, body); got != 204 {
		t.Fatalf("notification: %d", got)
	}
	b.do(chromedp.Navigate(checkout), chromedp.WaitVisible(chromedp.CSS("#buy")))
	b.do(chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	b.screenshot("wechat-receipt")
	assertVerifyClean(t, ps.testApp)
}
