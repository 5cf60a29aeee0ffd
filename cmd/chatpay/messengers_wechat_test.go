package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatpay/chatpay/payments"
)

// fakeWeChat plays WeChat's web authorization on loopback: /authorize
// "signs in" the WeChat user the test chose and sends the browser back with
// a one-time code; /access_token turns the code into that user's openid.
type fakeWeChat struct {
	t      *testing.T
	URL    string
	appID  string
	secret string

	mu       sync.Mutex
	nextUser string            // the openid of whoever opens /authorize next
	codes    map[string]string // code → openid, each used once
	seq      int
	down     bool // the token endpoint answers 500
}

func startFakeWeChat(t *testing.T, appID, secret string) *fakeWeChat {
	t.Helper()
	f := &fakeWeChat{t: t, appID: appID, secret: secret, codes: map[string]string{}}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/connect/oauth2/authorize", f.authorize)
	mux.HandleFunc("/sns/oauth2/access_token", f.token)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(func() { _ = server.Close() })
	f.URL = "http://" + listener.Addr().String()
	return f
}

func (f *fakeWeChat) signInAs(openID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextUser = openID
}

func (f *fakeWeChat) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("appid") != f.appID || q.Get("response_type") != "code" || q.Get("scope") != "snsapi_base" || q.Get("state") == "" {
		http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Hostname() != "127.0.0.1" {
		http.Error(w, "redirect_uri must be chatpay's", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.seq++
	code := "code" + strconv.Itoa(f.seq) + "0123456789abcdef"
	f.codes[code] = f.nextUser
	f.mu.Unlock()
	v := redirect.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	redirect.RawQuery = v.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (f *fakeWeChat) token(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	openID, ok := f.codes[q.Get("code")]
	delete(f.codes, q.Get("code"))
	down := f.down
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case down:
		w.WriteHeader(http.StatusInternalServerError)
		return
	case q.Get("appid") != f.appID || q.Get("secret") != f.secret:
		_, _ = io.WriteString(w, `{"errcode":40125,"errmsg":"invalid appsecret"}`)
	case !ok || q.Get("grant_type") != "authorization_code":
		_, _ = io.WriteString(w, `{"errcode":40029,"errmsg":"invalid code"}`)
	default:
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "expires_in": 7200, "refresh_token": "rt",
			"openid": openID, "scope": "snsapi_base"})
	}
}

// weChatBrowser is a phone's WeChat browser: it keeps cookies and follows
// redirects one hop at a time, so every hop can be checked.
type weChatBrowser struct {
	t      *testing.T
	client *http.Client
}

func newWeChatBrowser(t *testing.T) *weChatBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &weChatBrowser{t: t, client: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *weChatBrowser) get(target string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50")
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// signIn opens a wechat code's page in the browser and follows the sign-in
// to the checkout, returning the checkout's path (with chatpay's launch).
func (b *weChatBrowser) signIn(base, start string) string {
	b.t.Helper()
	next := base + start
	for hops := 0; hops < 5; hops++ {
		resp, body := b.get(next)
		switch resp.StatusCode {
		case http.StatusFound, http.StatusSeeOther:
			loc, err := resp.Location()
			if err != nil {
				b.t.Fatal(err)
			}
			next = loc.String()
			if strings.HasPrefix(next, base+"/q/") && strings.Contains(next, "launch=") {
				return strings.TrimPrefix(next, base)
			}
		default:
			b.t.Fatalf("sign-in stopped at %s: %d %s", next, resp.StatusCode, body)
		}
	}
	b.t.Fatalf("sign-in did not reach the checkout")
	return ""
}

const (
	testWeChatAppID  = "wx0123456789abcdef"
	testWeChatSecret = "wechat-app-secret-0123"
)

// One catalog, every messenger: the same tea card, with one stock, sells
// through a Telegram Mini App, a WeChat Official Account (against a fake
// authorization server) and a generic channel. Each messenger identity has
// its own per-shopper limit of 2; each order answers in its own chat; the
// funnel counts scans per messenger.
func TestOneCatalogEveryMessenger(t *testing.T) {
	wx := startFakeWeChat(t, testWeChatAppID, testWeChatSecret)
	ta := startTestAppWith(t, storyStart, func(cfg *appConfig) {
		cfg.WeChat = payments.WeChatEndpoints{AuthorizeURL: wx.URL + "/connect/oauth2/authorize", TokenURL: wx.URL + "/sns/oauth2/access_token"}
	})
	shop := ta.teaShop(500)
	tgID, _ := ta.registerChannel(map[string]any{"name": "Tea bot", "kind": "telegram", "telegram_bot_token": tgSampleToken,
		"telegram_bot_username": "teashop_bot", "telegram_app_short_name": "buy"})
	wxID, _ := ta.registerChannel(map[string]any{"name": "Tea OA", "kind": "wechat",
		"wechat_app_id": testWeChatAppID, "wechat_app_secret": testWeChatSecret})
	generic, err := ta.app.payments.CreateChannel(context.Background(), payments.NewChannel{Name: "TamTam bridge", Kind: "other"})
	if err != nil {
		t.Fatal(err)
	}
	tgCode := ta.itemQR(shop.key, shop.itemID, map[string]any{"opens": "telegram", "channel_id": tgID, "placement": "window"})
	wxCode := ta.itemQR(shop.key, shop.itemID, map[string]any{"opens": "wechat", "channel_id": wxID, "placement": "table"})
	webCode := ta.itemQR(shop.key, shop.itemID, map[string]any{"opens": "web", "placement": "counter"})
	tgToken := tgCode["url"].(string)[len(tgCode["url"].(string))-26:]
	wxPath := strings.TrimPrefix(wxCode["url"].(string), ta.URL)
	webToken := qrToken(webCode)

	fund := func(channelID, userID string) {
		sh, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, channelID, userID, "")
		if err != nil {
			t.Fatal(err)
		}
		ta.fund(sh.ID, 1000, "CNY")
	}
	fund(tgID, "424242")
	fund(wxID, "oWeChatOpenIDLiWei0123456789")
	fund(generic.Channel.ID, "tamtam-7")

	// Telegram: the t.me link's start parameter reaches /tg/<channel>.
	tgLaunch := func() string {
		return payments.SignTelegramInitData(tgSampleToken, map[string]string{
			"user": `{"id":424242,"first_name":"Li","language_code":"en"}`, "chat_type": "sender", "chat_instance": "77",
			"start_param": tgToken, "auth_date": strconv.FormatInt(ta.clock.Now().Unix(), 10)})
	}
	tgPath := func() string { return "/tg/" + tgID + "?tgWebAppData=" + url.QueryEscape(tgLaunch()) }
	// WeChat: the scan opens chatpay's page, which signs in through WeChat.
	phone := newWeChatBrowser(t)
	wxCheckout := func() string {
		wx.signInAs("oWeChatOpenIDLiWei0123456789")
		return phone.signIn(ta.URL, wxPath)
	}
	// Generic: the channel's backend signs chatpay's context itself.
	webPath := func() string {
		return "/q/" + webToken + "?launch=" + url.QueryEscape(payments.SignLaunch(generic.LaunchSecret, map[string]string{
			"channel_id": generic.Channel.ID, "user_id": "tamtam-7", "chat_id": "tamtam-chat-9",
			"auth_date": strconv.FormatInt(ta.clock.Now().Unix(), 10)}))
	}

	wantChats := map[string][2]string{}
	for i := range 2 {
		orderID, _ := ta.buyOnPage(tgPath())
		wantChats[orderID] = [2]string{tgID, "424242"}
		orderID, _ = ta.buyOnPage(wxCheckout())
		wantChats[orderID] = [2]string{wxID, "oWeChatOpenIDLiWei0123456789"}
		if i == 0 {
			orderID, _ = ta.buyOnPage(webPath())
			wantChats[orderID] = [2]string{generic.Channel.ID, "tamtam-chat-9"}
		}
	}
	// A third card is one too many for each messenger identity: the page
	// says so where "Buy now" was.
	for name, path := range map[string]string{"telegram": tgPath(), "wechat": wxCheckout()} {
		_, html := ta.openCheckout(path)
		if !strings.Contains(html, `data-code="`+payments.CodeLimitReached+`"`) || strings.Contains(html, `id="buy"`) {
			t.Errorf("%s: a third card is still offered:\n%.600s", name, html)
		}
	}
	for orderID, want := range wantChats {
		if channel, chat := ta.orderChat(orderID); channel != want[0] || chat != want[1] {
			t.Errorf("order %s answers in %s/%s, want %s/%s", orderID, channel, chat, want[0], want[1])
		}
	}
	if n := ta.count(`SELECT count(*) FROM orders`); n != 5 {
		t.Errorf("%d orders, want 5", n)
	}
	item := ta.call("GET", "/v1/items/"+shop.itemID, shop.key, "", nil).JSON(t)
	if stock := item["stock"]; stock != float64(495) {
		t.Errorf("one stock for every messenger: %v left, want 495", stock)
	}
	scans, err := ta.app.qr.ScansByMessenger(context.Background(), shop.merchant.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int64{
		tgCode["id"].(string):  {"telegram": 3},
		wxCode["id"].(string):  {"wechat": 3},
		webCode["id"].(string): {"other": 1},
	}
	if fmt.Sprint(scans) != fmt.Sprint(want) {
		t.Errorf("scans per messenger %v, want %v", scans, want)
	}
	assertVerifyClean(t, ta)
}

// WeChat sign-ins that must fail do, with a 401 (or 503 when WeChat is
// down) and no shopper written: another browser's state, a replayed
// callback, a code WeChat refuses, an expired state, a non-WeChat channel.
func TestWeChatSignInRefusals(t *testing.T) {
	wx := startFakeWeChat(t, testWeChatAppID, testWeChatSecret)
	ta := startTestAppWith(t, storyStart, func(cfg *appConfig) {
		cfg.WeChat = payments.WeChatEndpoints{AuthorizeURL: wx.URL + "/connect/oauth2/authorize", TokenURL: wx.URL + "/sns/oauth2/access_token"}
	})
	shop := ta.teaShop(5)
	wxID, _ := ta.registerChannel(map[string]any{"name": "Tea OA", "kind": "wechat",
		"wechat_app_id": testWeChatAppID, "wechat_app_secret": testWeChatSecret})
	token := qrToken(ta.itemQR(shop.key, shop.itemID, nil))
	wx.signInAs("oVictim")

	// The attacker starts a sign-in and lures the victim to its callback.
	attacker := newWeChatBrowser(t)
	resp, _ := attacker.get(ta.URL + "/wx/" + wxID + "/authorize?return=/q/" + token)
	toWeChat, _ := resp.Location()
	resp, _ = attacker.get(toWeChat.String())
	callback, _ := resp.Location()
	victim := newWeChatBrowser(t)
	resp, body := victim.get(callback.String())
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "started in another browser") {
		t.Errorf("another browser's callback: %d %.300s", resp.StatusCode, body)
	}
	// The state is used up: the attacker cannot finish it either.
	resp, body = attacker.get(callback.String())
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "unknown, used or expired") {
		t.Errorf("a replayed callback: %d %.300s", resp.StatusCode, body)
	}

	// A code WeChat does not know.
	phone := newWeChatBrowser(t)
	resp, _ = phone.get(ta.URL + "/wx/" + wxID + "/authorize?return=/q/" + token)
	toWeChat, _ = resp.Location()
	state := toWeChat.Query().Get("state")
	resp, body = phone.get(ta.URL + "/wx/" + wxID + "/callback?code=forged0123456789&state=" + state)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "WeChat refused the sign-in (40029 invalid code)") {
		t.Errorf("a forged code: %d %.300s", resp.StatusCode, body)
	}

	// An expired state.
	resp, _ = phone.get(ta.URL + "/wx/" + wxID + "/authorize?return=/q/" + token)
	toWeChat, _ = resp.Location()
	resp, _ = phone.get(toWeChat.String())
	callback, _ = resp.Location()
	ta.clock.Set(ta.clock.Now().Add(11 * time.Minute))
	resp, body = phone.get(callback.String())
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "unknown, used or expired") {
		t.Errorf("an expired state: %d %.300s", resp.StatusCode, body)
	}

	// WeChat down: 503, the shopper may try again.
	wx.mu.Lock()
	wx.down = true
	wx.mu.Unlock()
	resp, _ = phone.get(ta.URL + "/wx/" + wxID + "/authorize?return=/q/" + token)
	toWeChat, _ = resp.Location()
	resp, _ = phone.get(toWeChat.String())
	callback, _ = resp.Location()
	resp, body = phone.get(callback.String())
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("WeChat down: %d %.300s", resp.StatusCode, body)
	}

	// Not a WeChat channel, and a return path that is not a checkout.
	resp, body = phone.get(ta.URL + "/wx/" + shop.channel.Channel.ID + "/authorize?return=/q/" + token)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "does not sign shoppers in with WeChat") {
		t.Errorf("a Telegram channel: %d %.300s", resp.StatusCode, body)
	}
	resp, _ = phone.get(ta.URL + "/wx/" + wxID + "/authorize?return=https://evil.example/")
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("an open redirect: %d", resp.StatusCode)
	}
	if n := ta.count(`SELECT count(*) FROM shoppers WHERE channel_id = $1`, wxID); n != 0 {
		t.Errorf("%d WeChat shoppers written by refused sign-ins", n)
	}
}
