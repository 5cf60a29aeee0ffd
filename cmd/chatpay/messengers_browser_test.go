package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A real browser opens the Mini App the way Telegram does: the Mini App URL
// with Telegram's initData in the fragment (#tgWebAppData=…), which only the
// page's bootstrap script can read. With Telegram's own published initData,
// in both validation modes, the shopper sees the tea card and buys it.
func TestBrowserTelegramMiniApp(t *testing.T) {
	ta := startTestApp(t, time.Unix(tgSampleFirstPartyDate+30, 0))
	b := startBrowser(t)
	shop := ta.teaShop(500)
	token := qrToken(ta.itemQR(shop.key, shop.itemID, nil))
	firstID, _ := ta.registerChannel(map[string]any{"name": "Tea bot", "kind": "telegram", "telegram_bot_token": tgSampleToken})
	thirdID, _ := ta.registerChannel(map[string]any{"name": "Tea bot (third party)", "kind": "telegram", "telegram_bot_id": tgSampleBotID})
	ta.fundTelegramShopper(firstID)
	ta.fundTelegramShopper(thirdID)
	// Telegram appends its launch parameters to the Mini App URL's fragment.
	fragment := func(initData string) string {
		return "#tgWebAppData=" + url.QueryEscape(initData) + "&tgWebAppVersion=8.0&tgWebAppPlatform=ios"
	}

	// First party: a bot's web_app button opens the item's own page.
	b.do(chromedp.EmulateViewport(phoneViewportWidthPx, phoneViewportHeight),
		chromedp.Navigate(ta.URL+"/q/"+token+"?channel="+firstID+fragment(tgSampleFirstParty)),
		chromedp.WaitVisible(chromedp.CSS("#buy")))
	if loc := b.location(); strings.Contains(loc, "#") || !strings.Contains(loc, "tgWebAppData=") {
		t.Errorf("the bootstrap left the page at %s", loc)
	}
	b.screenshot("telegram-first-party-checkout")
	b.do(chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	b.screenshot("telegram-first-party-receipt")

	// Third party: the t.me/<bot>/<app>?startapp=<token> link opens /tg/<channel>.
	ta.clock.Set(time.Unix(tgSampleThirdPartyDate+30, 0))
	b.do(chromedp.Navigate(ta.URL+"/tg/"+thirdID+"?tgWebAppStartParam="+token+fragment(tgSampleThirdParty)),
		chromedp.WaitVisible(chromedp.CSS("#buy")))
	b.do(chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS("[data-testid=coupon-qr] canvas")))
	b.screenshot("telegram-third-party-receipt")

	// Opened outside Telegram (no fragment), the page says so plainly.
	b.do(chromedp.Navigate(ta.URL+"/tg/"+thirdID), chromedp.WaitVisible(chromedp.CSS("#nolaunch")))
	if text := b.text("#nolaunch"); !strings.Contains(text, "Open this page from your chat") {
		t.Errorf("without initData the page says %q", text)
	}
	if n := ta.count(`SELECT count(*) FROM orders o JOIN shoppers s ON s.id = o.shopper_id WHERE s.external_user_id = $1 AND o.chat_id = $1`, tgSampleUserID); n != 2 {
		t.Fatalf("%d Telegram orders answering in the user's chat, want 2", n)
	}
	assertVerifyClean(t, ta)
}
