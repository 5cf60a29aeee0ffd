package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/webhooks"
)

// Telegram's published samples (the tma.js documentation, packages
// init-data-node "validate" and "validate3rd"): real initData that Telegram
// signed for bot 7342037359, whose token the documentation publishes.
const (
	tgSampleToken = "7342037359:AAHI25ES9xCOMPokpYoz-p8XVrZUdygo2J4"
	tgSampleBotID = 7342037359
	tgSampleUser  = "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%7D"
	// tgSampleFirstParty verifies with the bot token (its signature is inside the hash).
	tgSampleFirstParty     = tgSampleUser + "&chat_instance=8134722200314281151&chat_type=private&auth_date=1733509682&signature=TYJxVcisqbWjtodPepiJ6ghziUL94-KNpG8Pau-X7oNNLNBM72APCpi_RKiUlBvcqo5L-LAxIc3dnTzcZX_PDg&hash=a433d8f9847bd6addcc563bff7cc82c89e97ea0d90c11fe5729cae6796a36d73"
	tgSampleFirstPartyDate = 1733509682
	// tgSampleThirdParty verifies with Telegram's production key and the bot id.
	tgSampleThirdParty     = tgSampleUser + "&chat_instance=8134722200314281151&chat_type=private&auth_date=1733584787&signature=zL-ucjNyREiHDE8aihFwpfR9aggP2xiAo3NSpfe-p7IbCisNlDKlo7Kb6G4D0Ao2mBrSgEk4maLSdv6MLIlADQ&hash=2174df5b000556d044f3f020384e879c8efcab55ddea2ced4eb752e93e7080d6"
	tgSampleThirdPartyDate = 1733584787
	tgSampleUserID         = "279058397"
)

// registerChannel registers a channel through the admin API and returns its
// id and the whole answer.
func (ta *testApp) registerChannel(body map[string]any) (string, map[string]any) {
	ta.t.Helper()
	resp := ta.call("POST", "/v1/admin/channels", testOperatorToken, "", body)
	if resp.Status != http.StatusCreated {
		ta.t.Fatalf("register channel: %d %s", resp.Status, resp.Body)
	}
	doc := resp.JSON(ta.t)
	return doc["channel"].(map[string]any)["id"].(string), doc
}

// itemQR makes a static QR code for the item and returns its token.
func (ta *testApp) itemQR(key, itemID string, extra map[string]any) map[string]any {
	ta.t.Helper()
	body := map[string]any{"item_id": itemID, "placement": "counter"}
	for k, v := range extra {
		body[k] = v
	}
	resp := ta.call("POST", "/v1/qr-codes", key, "", body)
	if resp.Status != http.StatusCreated {
		ta.t.Fatalf("create qr: %d %s", resp.Status, resp.Body)
	}
	return resp.JSON(ta.t)
}

var (
	launchField = regexp.MustCompile(`name="launch" value="([^"]+)"`)
	keyField    = regexp.MustCompile(`name="idempotency_key" value="([0-9a-f]+)"`)
	htmlLang    = regexp.MustCompile(`<html lang="([a-z]+)">`)
)

// buyOnPage opens a checkout page (following chatpay's own redirects), taps
// Buy now and returns the order id and the checkout page's HTML.
func (ta *testApp) buyOnPage(path string) (string, string) {
	ta.t.Helper()
	resp, html := ta.tapBuyNow(path)
	if resp.Status != http.StatusSeeOther {
		ta.t.Fatalf("buy: %d %s", resp.Status, resp.Body)
	}
	receipt := ta.get(resp.Header.Get("Location"))
	if receipt.Status != http.StatusOK {
		ta.t.Fatalf("receipt: %d %s", receipt.Status, receipt.Body)
	}
	match := receiptPath.FindStringSubmatch(resp.Header.Get("Location"))
	if match == nil {
		ta.t.Fatalf("receipt location %q", resp.Header.Get("Location"))
	}
	return match[1], html
}

// tapBuyNow opens a checkout page and taps Buy now once, returning the
// answer to the tap and the page's HTML.
func (ta *testApp) tapBuyNow(path string) (apiResponse, string) {
	ta.t.Helper()
	path, html := ta.openCheckout(path)
	launch, key := launchField.FindStringSubmatch(html), keyField.FindStringSubmatch(html)
	if launch == nil || key == nil {
		ta.t.Fatalf("no launch or key in the form:\n%s", html)
	}
	buyPath := strings.SplitN(path, "?", 2)[0] + "/buy"
	return ta.postForm(buyPath, url.Values{"launch": {unescapeHTML(launch[1])}, "idempotency_key": {key[1]}}), html
}

// openCheckout follows a messenger's hops to the checkout page and returns
// its path and HTML.
func (ta *testApp) openCheckout(path string) (string, string) {
	ta.t.Helper()
	page := ta.get(path)
	for hops := 0; page.Status == http.StatusSeeOther && hops < 3; hops++ {
		path = page.Header.Get("Location")
		page = ta.get(path)
	}
	if page.Status != http.StatusOK {
		ta.t.Fatalf("checkout page %s: %d %s", path, page.Status, page.Body)
	}
	return path, string(page.Body)
}

// qrToken is the token at the end of a code's shopper URL.
func qrToken(code map[string]any) string {
	u := code["url"].(string)
	return u[strings.LastIndex(u, "/")+1:]
}

func unescapeHTML(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// orderChat is the chat an order's order.paid event names.
func (ta *testApp) orderChat(orderID string) (channel, chat string) {
	ta.t.Helper()
	var body string
	err := ta.db.Get(&body, `SELECT convert_from(body, 'UTF8') FROM webhook_events
		WHERE type = 'order.paid' AND convert_from(body, 'UTF8')::jsonb->'data'->'order'->>'id' = $1`, orderID)
	if err != nil {
		ta.t.Fatalf("order.paid of %s: %v", orderID, err)
	}
	var doc struct {
		Data struct {
			Chat struct {
				ChannelID string `json:"channel_id"`
				ChatID    string `json:"chat_id"`
			} `json:"chat"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		ta.t.Fatal(err)
	}
	return doc.Data.Chat.ChannelID, doc.Data.Chat.ChatID
}

// A Telegram Mini App buys the tea card with Telegram's own initData, in
// both validation modes, and a freshly signed launch from a group chat in
// Chinese: the order answers in the Telegram chat, the page speaks the
// shopper's language_code, and the bot token is nowhere in the database.
func TestTelegramMiniAppBuysTeaCard(t *testing.T) {
	ta := startTestApp(t, time.Unix(tgSampleFirstPartyDate+30, 0))
	shop := ta.teaShop(500)
	token := qrToken(ta.itemQR(shop.key, shop.itemID, nil))

	// First party: the channel registers the bot token.
	firstID, doc := ta.registerChannel(map[string]any{"name": "Tea bot", "kind": "telegram",
		"telegram_bot_token": tgSampleToken, "telegram_bot_username": "teashop_bot", "telegram_app_short_name": "buy"})
	if strings.Contains(mustMarshal(t, doc), "AAHI25ES9xCOMPokpYoz") {
		t.Fatal("the admin API showed the bot token back")
	}
	if n := ta.count(`SELECT count(*) FROM channels WHERE row_to_json(channels)::text LIKE '%AAHI25ES9xCOMPokpYoz%'`); n != 0 {
		t.Fatal("the bot token is stored")
	}
	if n := ta.count(`SELECT count(*) FROM channels WHERE id = $1 AND telegram_secret_key = $2 AND telegram_bot_id = $3`,
		firstID, payments.TelegramSecretKey(tgSampleToken), tgSampleBotID); n != 1 {
		t.Fatal("the derived key and bot id are not stored")
	}
	ta.fundTelegramShopper(firstID)

	// The page without initData is the bootstrap that reads the fragment.
	boot := ta.get("/q/" + token + "?channel=" + firstID)
	if boot.Status != http.StatusOK || !strings.Contains(string(boot.Body), "tgWebAppData") ||
		!strings.Contains(boot.Header.Get("Content-Security-Policy"), "script-src 'sha256-") {
		t.Fatalf("bootstrap: %d %s %s", boot.Status, boot.Header.Get("Content-Security-Policy"), boot.Body)
	}
	orderID, html := ta.buyOnPage("/q/" + token + "?channel=" + firstID + "&tgWebAppData=" + url.QueryEscape(tgSampleFirstParty))
	if lang := htmlLang.FindStringSubmatch(html); lang == nil || lang[1] != "ru" {
		t.Errorf("the page should follow Telegram's language_code ru, got %v", lang)
	}
	if channel, chat := ta.orderChat(orderID); channel != firstID || chat != tgSampleUserID {
		t.Errorf("order.paid names chat %s/%s, want the private chat %s/%s", channel, chat, firstID, tgSampleUserID)
	}

	// Third party: only the bot id, Telegram's production key; the Mini App
	// URL /tg/<channel> reads the start parameter Telegram puts in the URL.
	ta.clock.Set(time.Unix(tgSampleThirdPartyDate+30, 0))
	thirdID, _ := ta.registerChannel(map[string]any{"name": "Tea bot (third party)", "kind": "telegram", "telegram_bot_id": tgSampleBotID})
	ta.fundTelegramShopper(thirdID)
	orderID, _ = ta.buyOnPage("/tg/" + thirdID + "?tgWebAppStartParam=" + token + "&tgWebAppData=" + url.QueryEscape(tgSampleThirdParty))
	if channel, chat := ta.orderChat(orderID); channel != thirdID || chat != tgSampleUserID {
		t.Errorf("order.paid names chat %s/%s", channel, chat)
	}

	// Freshly signed, opened from a group by t.me/teashop_bot/buy?startapp=<token>,
	// by a shopper whose Telegram speaks Chinese while the browser says English.
	fresh := payments.SignTelegramInitData(tgSampleToken, map[string]string{
		"user":          `{"id":424242,"first_name":"李","last_name":"伟","username":"liwei","language_code":"zh-hans"}`,
		"chat":          `{"id":-1001234567890,"type":"supergroup","title":"Tea lovers"}`,
		"chat_type":     "supergroup",
		"chat_instance": "-42",
		"start_param":   token,
		"query_id":      "AAHdF6IQAAAAAN0XohDhrOrc",
		"auth_date":     strconv.FormatInt(ta.clock.Now().Unix(), 10),
	})
	sh, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, firstID, "424242", "李 伟")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(sh.ID, 1000, "CNY")
	orderID, html = ta.buyOnPage("/tg/" + firstID + "?tgWebAppData=" + url.QueryEscape(fresh))
	if lang := htmlLang.FindStringSubmatch(html); lang == nil || lang[1] != "zh" || !strings.Contains(html, "立即购买") {
		t.Errorf("language_code zh-hans: the page should be in Chinese, got %v", lang)
	}
	if _, chat := ta.orderChat(orderID); chat != "-1001234567890" {
		t.Errorf("order.paid names chat %s, want the group -1001234567890", chat)
	}

	// A page may also post the initData to the Mini App URL.
	posted := ta.postForm("/tg/"+firstID, url.Values{"tgWebAppData": {fresh}})
	if posted.Status != http.StatusSeeOther || !strings.HasPrefix(posted.Header.Get("Location"), "/q/"+token+"?launch=") {
		t.Errorf("posted initData: %d %s", posted.Status, posted.Header.Get("Location"))
	}

	// The Mini App's own code asks the channel API whom chatpay sees.
	who := ta.tma("/v1/channels/"+firstID+"/launch", fresh)
	if who.Status != http.StatusOK {
		t.Fatalf("launch API: %d %s", who.Status, who.Body)
	}
	if w := who.JSON(t); w["chat_id"] != "-1001234567890" || w["language"] != "zh-hans" || w["start_param"] != token ||
		w["query_id"] != "AAHdF6IQAAAAAN0XohDhrOrc" || w["messenger"] != "telegram" {
		t.Errorf("launch API says %v", w)
	}
	if n := ta.count(`SELECT count(*) FROM qr_scans WHERE messenger = 'telegram'`); n != 3 {
		t.Errorf("%d scans counted for telegram, want 3", n)
	}
	assertVerifyClean(t, ta)
}

// fundTelegramShopper gives the sample's user a wallet in the channel.
func (ta *testApp) fundTelegramShopper(channelID string) {
	ta.t.Helper()
	sh, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, channelID, tgSampleUserID, "Vladislav")
	if err != nil {
		ta.t.Fatal(err)
	}
	ta.fund(sh.ID, 1000, "CNY")
}

// tma calls the launch API with Telegram's Authorization scheme.
func (ta *testApp) tma(path, initData string) apiResponse {
	ta.t.Helper()
	return ta.launchAPI(path, "tma "+initData)
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// Bad launch data of every kind is a 401 with a plain reason, on the page,
// on the Mini App entry, on "Buy now" and on the launch API, and nothing is
// written: no shopper, scan, checkout, order or event.
func TestBadLaunchDataRefused(t *testing.T) {
	now := time.Unix(tgSampleThirdPartyDate+30, 0)
	ta := startTestApp(t, now)
	shop := ta.teaShop(500)
	token := qrToken(ta.itemQR(shop.key, shop.itemID, nil))
	firstID, _ := ta.registerChannel(map[string]any{"name": "Tea bot", "kind": "telegram", "telegram_bot_token": tgSampleToken})
	testEnvID, _ := ta.registerChannel(map[string]any{"name": "Tea bot (test DC)", "kind": "telegram",
		"telegram_bot_id": tgSampleBotID, "telegram_test_environment": true})
	otherBotID, _ := ta.registerChannel(map[string]any{"name": "Another bot", "kind": "telegram", "telegram_bot_id": 5768337691})
	vkID, _ := ta.registerChannel(map[string]any{"name": "VK app", "kind": "vk", "vk_app_id": 6736218, "vk_app_secret": "wvl68m4dR1UpLrVRli"})
	generic := shop.channel

	fresh := func(fields map[string]string) string {
		base := map[string]string{"user": `{"id":424242,"first_name":"Li"}`, "start_param": token,
			"auth_date": strconv.FormatInt(now.Unix(), 10)}
		for k, v := range fields {
			base[k] = v
		}
		return payments.SignTelegramInitData(tgSampleToken, base)
	}
	vk := func(fields map[string]string) string {
		base := map[string]string{"vk_user_id": "494075", "vk_app_id": "6736218", "vk_ts": strconv.FormatInt(now.Unix(), 10)}
		for k, v := range fields {
			base[k] = v
		}
		return payments.SignVKLaunch("wvl68m4dR1UpLrVRli", base)
	}
	cases := []struct {
		name, channel, data, reason string
	}{
		{"TamperedTelegram", firstID, strings.Replace(fresh(nil), "424242", "424243", 1), "hash does not match"},
		{"TamperedThirdParty", testEnvID, strings.Replace(tgSampleThirdParty, "279058397", "279058398", 1), "does not verify"},
		{"StaleTelegram", firstID, tgSampleFirstParty, "old (at most 15m0s)"},
		{"OversizedTelegram", firstID, fresh(map[string]string{"padding": strings.Repeat("x", 9000)}), "longer than"},
		{"NULTelegram", firstID, fresh(map[string]string{"chat_type": "private\x00"}), "NUL byte"},
		{"WrongEnvironment", testEnvID, tgSampleThirdParty, "signed in Telegram's production environment"},
		{"WrongBot", otherBotID, tgSampleThirdParty, "does not verify for bot 5768337691"},
		{"TamperedVK", vkID, strings.Replace(vk(nil), "494075", "494076", 1), "does not match"},
		{"StaleVK", vkID, vk(map[string]string{"vk_ts": strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)}), "old"},
		{"NULVK", vkID, vk(nil) + "&vk_x=%00", "NUL byte"},
		{"OversizedVK", vkID, vk(map[string]string{"vk_pad": strings.Repeat("x", 5000)}), "longer than"},
		{"TelegramWithoutBotKeys", generic.Channel.ID, fresh(nil), "registered no bot token or bot id"},
	}
	tables := []string{"shoppers", "qr_scans", "checkouts", "orders", "webhook_events"}
	before := map[string]int{}
	for _, table := range tables {
		before[table] = ta.count(`SELECT count(*) FROM ` + table)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			envelope := payments.LaunchEnvelope(c.channel, c.data)
			pages := map[string]apiResponse{
				"page":  ta.get("/q/" + token + "?channel=" + c.channel + "&launch=" + url.QueryEscape(c.data)),
				"entry": ta.get("/tg/" + c.channel + "?tgWebAppData=" + url.QueryEscape(c.data)),
				"buy":   ta.postForm("/q/"+token+"/buy", url.Values{"launch": {envelope}, "idempotency_key": {"k-" + c.name}}),
			}
			if strings.HasPrefix(c.name, "TamperedVK") || strings.HasSuffix(c.name, "VK") {
				delete(pages, "entry") // /tg/ is Telegram's entry; VK comes through ?launch=
			}
			for where, resp := range pages {
				if resp.Status != http.StatusUnauthorized || !strings.Contains(string(resp.Body), `data-code="invalid_launch_context"`) {
					t.Errorf("%s: %d, want 401 invalid_launch_context:\n%.400s", where, resp.Status, resp.Body)
				}
				if !strings.Contains(unescapeHTML(string(resp.Body)), c.reason) {
					t.Errorf("%s does not say %q:\n%.600s", where, c.reason, resp.Body)
				}
			}
			scheme := "tma"
			if c.channel == vkID {
				scheme = "vk"
			}
			api := ta.launchAPI("/v1/channels/"+c.channel+"/launch", scheme+" "+c.data)
			if api.Status != http.StatusUnauthorized || api.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("launch API: %d %s %s", api.Status, api.Header.Get("Content-Type"), api.Body)
			}
			if doc := api.JSON(t); doc["code"] != "invalid_launch_context" || !strings.Contains(doc["detail"].(string), c.reason) {
				t.Errorf("launch API says %v", doc)
			}
		})
	}
	for _, table := range tables {
		if n := ta.count(`SELECT count(*) FROM ` + table); n != before[table] {
			t.Errorf("%s: %d rows after the refusals, %d before", table, n, before[table])
		}
	}
}

// launchAPI calls the launch API with an Authorization header as given.
func (ta *testApp) launchAPI(path, authorization string) apiResponse {
	ta.t.Helper()
	req, err := http.NewRequest(http.MethodGet, ta.URL+path, nil)
	if err != nil {
		ta.t.Fatal(err)
	}
	req.Header.Set("Authorization", authorization)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	ta.checkAgainstOpenAPI(req, resp, raw)
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Every kind of code decodes, with a real QR decoder, to the address that
// opens its messenger; the chooser offers each messenger and remembers the
// shopper's last choice.
func TestQRCodesOpenMessengers(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	tgID, _ := ta.registerChannel(map[string]any{"name": "Tea bot", "kind": "telegram", "telegram_bot_token": tgSampleToken,
		"telegram_bot_username": "@teashop_bot", "telegram_app_short_name": "buy"})
	tgMainID, _ := ta.registerChannel(map[string]any{"name": "Main app bot", "kind": "telegram", "telegram_bot_id": 42424242,
		"telegram_bot_username": "teamain_bot"})
	tgBareID, _ := ta.registerChannel(map[string]any{"name": "No username", "kind": "telegram", "telegram_bot_id": 42424243})
	waID, _ := ta.registerChannel(map[string]any{"name": "WhatsApp line", "kind": "whatsapp", "whatsapp_number": "+8613800138000"})
	wxID, _ := ta.registerChannel(map[string]any{"name": "Tea OA", "kind": "wechat", "wechat_app_id": "wx0123456789abcdef", "wechat_app_secret": "wechat-app-secret-0123"})

	decoded := func(code map[string]any) string {
		img := ta.call("GET", "/v1/qr-codes/"+code["id"].(string)+"/image.png?size=400", shop.key, "", nil)
		if img.Status != http.StatusOK {
			t.Fatalf("image: %d %s", img.Status, img.Body)
		}
		return decodeQR(t, img.Body)
	}
	cases := []struct {
		opens, channel, want string
	}{
		{"web", "", ta.URL + "/q/%s"},
		{"chooser", "", ta.URL + "/o/%s"},
		{"telegram", tgID, "https://t.me/teashop_bot/buy?startapp=%s"},
		{"telegram", tgMainID, "https://t.me/teamain_bot?startapp=%s"},
		{"whatsapp", waID, "https://wa.me/8613800138000?text=Buy+%s"},
		{"wechat", wxID, ta.URL + "/q/%s?channel=" + wxID},
	}
	for _, c := range cases {
		code := ta.itemQR(shop.key, shop.itemID, map[string]any{"opens": c.opens, "channel_id": c.channel})
		token := code["url"].(string)
		if c.opens == "telegram" || c.opens == "whatsapp" {
			token = token[len(token)-26:]
		} else {
			token = qrToken(map[string]any{"url": strings.Split(token, "?")[0]})
		}
		want := strings.Replace(c.want, "%s", token, 1)
		if got := decoded(code); got != want {
			t.Errorf("opens %s: the QR says %q, want %q", c.opens, got, want)
		}
		if code["opens"] != c.opens || code["url"] != want {
			t.Errorf("opens %s: the API says %v %v", c.opens, code["opens"], code["url"])
		}
	}
	for name, body := range map[string]map[string]any{
		"unknown messenger":        {"opens": "icq"},
		"telegram without channel": {"opens": "telegram"},
		"channel of another kind":  {"opens": "telegram", "channel_id": waID},
		"bot without username":     {"opens": "telegram", "channel_id": tgBareID},
		"web with a channel":       {"opens": "web", "channel_id": tgID},
		"unknown channel":          {"opens": "whatsapp", "channel_id": "chn_nosuchchannelxxxxxxxxxxxxx"},
	} {
		body["item_id"] = shop.itemID
		if resp := ta.call("POST", "/v1/qr-codes", shop.key, "", body); resp.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s, want 422", name, resp.Status, resp.Body)
		}
	}

	// The chooser: every messenger, then the browser.
	chooser := ta.itemQR(shop.key, shop.itemID, map[string]any{"opens": "chooser"})
	token := qrToken(chooser)
	page := ta.get("/o/" + token)
	html := string(page.Body)
	if page.Status != http.StatusOK {
		t.Fatalf("chooser: %d %s", page.Status, html)
	}
	order := regexp.MustCompile(`data-messenger="([a-z]+)"`).FindAllStringSubmatch(html, -1)
	if len(order) != 4 || order[0][1] != "telegram" || order[1][1] != "wechat" || order[2][1] != "whatsapp" || order[3][1] != "web" {
		t.Fatalf("chooser offers %v", order)
	}
	for _, want := range []string{"Tea card", "3.00 CNY", "Open in Telegram", "Open in WhatsApp", "Continue in the browser"} {
		if !strings.Contains(html, want) {
			t.Errorf("the chooser lacks %q", want)
		}
	}
	choose := ta.get("/o/" + token + "/go?m=whatsapp")
	if choose.Status != http.StatusSeeOther || choose.Header.Get("Location") != "https://wa.me/8613800138000?text=Buy+"+token {
		t.Fatalf("choosing WhatsApp: %d %s", choose.Status, choose.Header.Get("Location"))
	}
	cookie := choose.Header.Get("Set-Cookie")
	if !strings.HasPrefix(cookie, "chatpay_messenger=whatsapp") || !strings.Contains(cookie, "HttpOnly") {
		t.Fatalf("the choice is not remembered: %q", cookie)
	}
	req, _ := http.NewRequest(http.MethodGet, ta.URL+"/o/"+token, nil)
	req.Header.Set("Cookie", "chatpay_messenger=whatsapp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	order = regexp.MustCompile(`data-messenger="([a-z]+)"`).FindAllStringSubmatch(string(again), -1)
	if len(order) == 0 || order[0][1] != "whatsapp" || !strings.Contains(string(again), "Last time you chose WhatsApp.") {
		t.Errorf("the remembered choice is not first: %v", order)
	}
	if loc := ta.get("/o/" + token + "/go?m=wechat").Header.Get("Location"); loc != "/q/"+token+"?channel="+wxID {
		t.Errorf("choosing WeChat leads to %q", loc)
	}
	if loc := ta.get("/o/" + token + "/go?m=web").Header.Get("Location"); loc != "/q/"+token {
		t.Errorf("continuing in the browser leads to %q", loc)
	}
}

// A VK Mini App opens the checkout with its signed vk_* parameters on the
// page URL and buys the tea card; the page follows vk_language.
func TestVKMiniAppBuysTeaCard(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	token := qrToken(ta.itemQR(shop.key, shop.itemID, nil))
	vkID, doc := ta.registerChannel(map[string]any{"name": "VK app", "kind": "vk", "vk_app_id": 6736218, "vk_app_secret": "wvl68m4dR1UpLrVRli"})
	if strings.Contains(mustMarshal(t, doc), "wvl68m4dR1UpLrVRli") {
		t.Fatal("the admin API showed the VK app secret back")
	}
	sh, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, vkID, "494075", "")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(sh.ID, 1000, "CNY")
	params := payments.SignVKLaunch("wvl68m4dR1UpLrVRli", map[string]string{
		"vk_user_id": "494075", "vk_app_id": "6736218", "vk_language": "en", "vk_platform": "mobile_iphone",
		"vk_ts": strconv.FormatInt(ta.clock.Now().Unix(), 10), "vk_access_token_settings": "",
	})
	orderID, _ := ta.buyOnPage("/q/" + token + "?channel=" + vkID + "&" + params)
	if channel, chat := ta.orderChat(orderID); channel != vkID || chat != "494075" {
		t.Errorf("order.paid names %s/%s", channel, chat)
	}
	who := ta.launchAPI("/v1/channels/"+vkID+"/launch", "vk "+params)
	if who.Status != http.StatusOK || who.JSON(t)["messenger"] != "vk" {
		t.Errorf("launch API: %d %s", who.Status, who.Body)
	}
	if n := ta.count(`SELECT count(*) FROM qr_scans WHERE messenger = 'vk'`); n != 1 {
		t.Errorf("%d VK scans, want 1", n)
	}
}

// A wa.me code pre-fills "Buy <token>"; chat-sim, playing the merchant's
// WhatsApp bot, answers the message with the checkout link, and the shopper
// buys the tea card as their WhatsApp number.
func TestWhatsAppQRThroughChatSim(t *testing.T) {
	ta := startTestApp(t, time.Now()) // chat-sim signs with the real clock
	shop := ta.teaShop(500)
	created, _, err := ta.app.payments.CreateMessengerChannel(context.Background(),
		payments.NewChannel{Name: "WhatsApp line", Kind: "whatsapp"}, payments.MessengerInput{WhatsAppNumber: "8613800138000"})
	if err != nil {
		t.Fatal(err)
	}
	waID := created.Channel.ID
	code := ta.itemQR(shop.key, shop.itemID, map[string]any{"opens": "whatsapp", "channel_id": waID})
	img := ta.call("GET", "/v1/qr-codes/"+code["id"].(string)+"/image.png?size=400", shop.key, "", nil)
	scanned, err := url.Parse(decodeQR(t, img.Body))
	if err != nil || scanned.Host != "wa.me" || scanned.Path != "/8613800138000" {
		t.Fatalf("the QR opens %v", scanned)
	}
	prefilled := scanned.Query().Get("text")

	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"chat-sim", "--listen", addr, "--secret", webhooks.NewSecret(), "--whatsapp-channel", waID,
			"--launch-secret", created.LaunchSecret, "--public-url", ta.URL}, &stdout, &stderr, func(string) string { return "" })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("chat-sim: %v", err)
		}
	})
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stdout.String(), "listening") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	// WhatsApp's Cloud API posts the message the shopper sent.
	hook := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
		"messaging_product":"whatsapp","contacts":[{"profile":{"name":"Li Wei"},"wa_id":"8613900139000"}],
		"messages":[{"from":"8613900139000","id":"wamid.1","timestamp":"1","type":"text","text":{"body":` + strconv.Quote(prefilled) + `}}]}}]}]}`
	resp, err := http.Post("http://"+addr+"/whatsapp", "application/json", strings.NewReader(hook))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Replies []struct{ To, Text string } `json:"replies"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(answer.Replies) != 1 || answer.Replies[0].To != "8613900139000" || !strings.HasPrefix(answer.Replies[0].Text, "Tap to pay: "+ta.URL+"/q/") {
		t.Fatalf("the bot answered %+v", answer)
	}
	if !strings.Contains(stdout.String(), "[whatsapp 8613900139000] Tap to pay:") {
		t.Errorf("chat-sim printed %q", stdout.String())
	}
	sh, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, waID, "8613900139000", "Li Wei")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(sh.ID, 1000, "CNY")
	orderID, _ := ta.buyOnPage(strings.TrimPrefix(strings.TrimPrefix(answer.Replies[0].Text, "Tap to pay: "), ta.URL))
	if channel, chat := ta.orderChat(orderID); channel != waID || chat != "8613900139000" {
		t.Errorf("order.paid names %s/%s", channel, chat)
	}
	if n := ta.count(`SELECT count(*) FROM qr_scans WHERE messenger = 'whatsapp'`); n != 1 {
		t.Errorf("%d WhatsApp scans, want 1", n)
	}
}

// `chatpay channel create` registers a Telegram bot from the token in the
// environment, prints where to point the Mini App and never the token.
func TestChannelCreateTelegramCLI(t *testing.T) {
	ta := startTestApp(t, storyStart)
	var stdout, stderr lockedBuffer
	env := map[string]string{"CHATPAY_TELEGRAM_BOT_TOKEN": tgSampleToken, "CHATPAY_DEV_ALLOW_UNSAFE_DURABILITY": "true"}
	err := run(context.Background(), []string{"channel", "create", "--name", "Tea bot", "--kind", "telegram",
		"--telegram-bot-username", "teashop_bot", "--telegram-app", "buy", "--database-url", ta.dsn, "--log-level", "warn"},
		&stdout, &stderr, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stdout.String()
	id := regexp.MustCompile(`channel:\s+(chn_\S+)`).FindStringSubmatch(out)
	if id == nil || !strings.Contains(out, "Mini App URL:  <public-url>/tg/"+id[1]) || !strings.Contains(out, "bot token (first party)") {
		t.Fatalf("channel create printed:\n%s", out)
	}
	if strings.Contains(out+stderr.String(), "AAHI25ES9xCOMPokpYoz") {
		t.Fatal("the CLI printed the bot token")
	}
	if n := ta.count(`SELECT count(*) FROM channels WHERE id = $1 AND telegram_bot_id = $2 AND telegram_app_short_name = 'buy'`, id[1], tgSampleBotID); n != 1 {
		t.Fatal("the channel's Telegram settings were not stored")
	}
	// Bad settings write nothing.
	before := ta.count(`SELECT count(*) FROM channels`)
	err = run(context.Background(), []string{"channel", "create", "--name", "Bad", "--kind", "telegram", "--telegram-bot-token", "not-a-token",
		"--database-url", ta.dsn, "--log-level", "warn"}, &stdout, &stderr, func(k string) string { return env[k] })
	if err == nil || ta.count(`SELECT count(*) FROM channels`) != before {
		t.Fatalf("a bad token: %v, %d channels", err, ta.count(`SELECT count(*) FROM channels`))
	}
}

// The dashboard makes codes for a messenger (the chooser by default), says
// on the list, the QR page and the poster which messenger each opens, and
// counts scans per messenger on the overview.
func TestDashboardQRMessengers(t *testing.T) {
	ta := startTestApp(t, storyStart)
	tgID, _ := ta.registerChannel(map[string]any{"name": "Tea bot", "kind": "telegram", "telegram_bot_token": tgSampleToken,
		"telegram_bot_username": "teashop_bot", "telegram_app_short_name": "buy"})
	owner := newDashboardClient(t, ta)
	owner.signup("Tea House", "owner@tea.example")
	status, body, _ := owner.post("/dashboard/items", "/dashboard/items/new", url.Values{"title": {"Tea card"}, "sku": {"TEA"},
		"kind": {"product"}, "price": {"3.00"}, "currency": {"CNY"}, "active": {"on"}}, true)
	if status != http.StatusSeeOther {
		t.Fatalf("create item: %d %s", status, body)
	}
	var itemID string
	if err := ta.db.Get(&itemID, `SELECT id FROM items`); err != nil {
		t.Fatal(err)
	}
	_, list := owner.get("/dashboard/qr")
	if !strings.Contains(list, `<option value="chooser" selected>`) && !strings.Contains(list, `<option value="chooser" >`) {
		t.Errorf("the chooser is not the first choice:\n%s", list)
	}
	if !strings.Contains(list, `value="telegram:`+tgID+`"`) || !strings.Contains(list, "Telegram @teashop_bot") {
		t.Errorf("the Telegram bot is not offered")
	}
	create := func(opens string) string {
		status, body, header := owner.post("/dashboard/qr", "/dashboard/qr", url.Values{"item_id": {itemID}, "placement": {opens}, "opens": {opens}}, true)
		if status != http.StatusSeeOther {
			t.Fatalf("create %s code: %d %s", opens, status, body)
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(header.Get("Location"), "/dashboard/qr/"), "?")
		return id
	}
	chooserID, telegramID := create(""), create("telegram:"+tgID)
	for id, want := range map[string]string{chooserID: "every messenger (chooser page)", telegramID: "Telegram"} {
		_, page := owner.get("/dashboard/qr/" + id)
		if !strings.Contains(page, `<strong data-testid="qr-opens">`+want+`</strong>`) {
			t.Errorf("QR page of %s does not say it opens %s", id, want)
		}
		_, poster := owner.get("/dashboard/qr/" + id + "/poster")
		if !strings.Contains(poster, "Opens in "+want) {
			t.Errorf("poster of %s does not say it opens %s", id, want)
		}
	}
	_, page := owner.get("/dashboard/qr/" + telegramID)
	if !strings.Contains(page, "https://t.me/teashop_bot/buy?startapp=") {
		t.Errorf("the Telegram code's page does not show its t.me link")
	}
	status, page = owner.get("/dashboard/qr/" + telegramID + "/qr.png")
	if status != http.StatusOK || !strings.HasPrefix(decodeQR(t, []byte(page)), "https://t.me/teashop_bot/buy?startapp=") {
		t.Errorf("the downloaded Telegram code: %d", status)
	}
	// Two Telegram scans of the Telegram code, then the overview counts them.
	var token string
	if err := ta.db.Get(&token, `SELECT token FROM qr_codes WHERE id = $1`, telegramID); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		initData := payments.SignTelegramInitData(tgSampleToken, map[string]string{"user": `{"id":7}`,
			"start_param": token, "auth_date": strconv.FormatInt(ta.clock.Now().Unix(), 10)})
		if resp := ta.get("/tg/" + tgID + "?tgWebAppData=" + url.QueryEscape(initData)); resp.Status != http.StatusSeeOther {
			t.Fatalf("entry: %d", resp.Status)
		} else if page := ta.get(resp.Header.Get("Location")); page.Status != http.StatusOK {
			t.Fatalf("checkout: %d %s", page.Status, page.Body)
		}
	}
	if _, home := owner.get("/dashboard"); !strings.Contains(home, "Scans by messenger: Telegram 2") {
		t.Errorf("the overview does not count Telegram scans")
	}
	if _, list = owner.get("/dashboard/qr"); strings.Count(list, `data-testid="qr-row-opens"`) != 2 || !strings.Contains(list, ">Telegram</td>") {
		t.Errorf("the QR list does not say what each code opens")
	}
}

// Messenger settings that cannot work are refused with a 422 naming the
// field, and no channel is written.
func TestAdminRefusesBadMessengerSettings(t *testing.T) {
	ta := startTestApp(t, storyStart)
	for name, c := range map[string]struct {
		body  map[string]any
		field string
	}{
		"ErrBotToken":         {map[string]any{"kind": "telegram", "telegram_bot_token": "not-a-token"}, "telegram_bot_token"},
		"ErrTokenOtherBot":    {map[string]any{"kind": "telegram", "telegram_bot_token": tgSampleToken, "telegram_bot_id": 5768337691}, "telegram_bot_id"},
		"ErrZeroBotID":        {map[string]any{"kind": "telegram", "telegram_bot_id": 0}, "telegram_bot_id"},
		"ErrBotUsername":      {map[string]any{"kind": "telegram", "telegram_bot_id": 1, "telegram_bot_username": "x y"}, "telegram_bot_username"},
		"ErrAppWithoutBot":    {map[string]any{"kind": "telegram", "telegram_bot_id": 1, "telegram_app_short_name": "buy"}, "telegram_bot_username"},
		"ErrTelegramOnWeChat": {map[string]any{"kind": "wechat", "telegram_bot_id": 1}, "kind"},
		"ErrVKWithoutSecret":  {map[string]any{"kind": "vk", "vk_app_id": 6736218}, "vk_app_id"},
		"ErrWeChatHalf":       {map[string]any{"kind": "wechat", "wechat_app_id": testWeChatAppID}, "wechat_app_secret"},
		"ErrWhatsAppNumber":   {map[string]any{"kind": "whatsapp", "whatsapp_number": "12"}, "whatsapp_number"},
		"ErrNumberOnTelegram": {map[string]any{"kind": "telegram", "whatsapp_number": "8613800138000"}, "kind"},
	} {
		t.Run(name, func(t *testing.T) {
			c.body["name"] = "Bad channel"
			resp := ta.call("POST", "/v1/admin/channels", testOperatorToken, "", c.body)
			doc := wantProblem(t, resp, http.StatusUnprocessableEntity, "validation_failed")
			if !strings.Contains(mustMarshal(t, doc), `"field":"`+c.field+`"`) {
				t.Errorf("the refusal does not name %s: %s", c.field, resp.Body)
			}
		})
	}
	if n := ta.count(`SELECT count(*) FROM channels`); n != 0 {
		t.Errorf("%d channels written by refused registrations", n)
	}
}
