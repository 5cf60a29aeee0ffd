package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/providerconfig"
	"github.com/chatpay/chatpay/payments/stripe/stripemock"
	"github.com/chatpay/chatpay/payments/wechatpay"
	"github.com/chatpay/chatpay/payments/wechatpay/fake"
)

// lateDirectory lets the test app be built before the provider store,
// which needs the app's database.
type lateDirectory struct {
	mu    sync.Mutex
	store *providerconfig.Store
}

func (d *lateDirectory) HostedProvider(ctx context.Context, merchantID string) (payments.HostedProvider, error) {
	d.mu.Lock()
	store := d.store
	d.mu.Unlock()
	return store.HostedProvider(ctx, merchantID)
}

// providerStory is the tea-card story with the wallet funded through a real
// provider's page instead of the sandbox card form.
type providerStory struct {
	*testApp
	keys    string
	shop    teaShop
	path    string // the item's checkout page
	launch  string
	shopper payments.Shopper
}

func startProviderStory(t *testing.T, urls providerconfig.URLs) *providerStory {
	t.Helper()
	late := &lateDirectory{}
	ta := startTestAppWith(t, storyStart, func(c *appConfig) { c.Providers = late })
	raw := make([]byte, providerconfig.KeyLength)
	_, _ = rand.Read(raw)
	keys := "k1:" + base64.StdEncoding.EncodeToString(raw)
	parsed, err := providerconfig.ParseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	late.mu.Lock()
	late.store = providerconfig.New(ta.db, ta.clock.Now, parsed, urls)
	late.mu.Unlock()
	shop := ta.teaShop(500)
	qrResp := ta.call("POST", "/v1/qr-codes", shop.key, "qr", map[string]any{"item_id": shop.itemID, "placement": "counter"})
	if qrResp.Status != http.StatusCreated {
		t.Fatalf("qr: %d %s", qrResp.Status, qrResp.Body)
	}
	// The code's own URL (TestTeaCardStory decodes the printed image).
	path := strings.TrimPrefix(qrResp.JSON(t)["url"].(string), ta.URL)
	shopper, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, shop.channel.Channel.ID, "42", "Li Wei")
	if err != nil {
		t.Fatal(err)
	}
	return &providerStory{testApp: ta, keys: keys, shop: shop, path: path, launch: ta.launch(shop.channel, "42", "Li Wei"), shopper: shopper}
}

// chatpay runs the binary's command line against the test's database.
func (ps *providerStory) chatpay(args ...string) string {
	ps.t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(args, "--database-url", ps.dsn, "--provider-keys", ps.keys, "--dev-allow-unsafe-durability")
	if err := run(context.Background(), args, &stdout, &stderr, func(string) string { return "" }); err != nil {
		ps.t.Fatalf("chatpay %s: %v\n%s%s", args[0], err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func secretFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var topUpKeyField = regexp.MustCompile(`data-testid="provider-form"[\s\S]*?name="idempotency_key" value="([0-9a-f]+)"`)

// topUpFromPage opens the checkout page with an empty wallet (a provider
// button, no card field) and submits its top-up form with userAgent.
func (ps *providerStory) topUpFromPage(provider, userAgent string) apiResponse {
	ps.t.Helper()
	get, err := http.NewRequest(http.MethodGet, ps.URL+ps.path+"?launch="+url.QueryEscape(ps.launch), nil)
	if err != nil {
		ps.t.Fatal(err)
	}
	get.Header.Set("User-Agent", userAgent)
	page := ps.do(get)
	html := string(page.Body)
	if page.Status != http.StatusOK || !strings.Contains(html, `data-provider="`+provider+`"`) || strings.Contains(html, `name="card"`) {
		ps.t.Fatalf("checkout page with %s: %d\n%s", provider, page.Status, html)
	}
	key := topUpKeyField.FindStringSubmatch(html)
	method := regexp.MustCompile(`name="method" value="([a-z]+)"`).FindStringSubmatch(html)
	if key == nil || method == nil {
		ps.t.Fatalf("no top-up form:\n%s", html)
	}
	form := url.Values{"launch": {ps.launch}, "idempotency_key": {key[1]}, "amount": {"3.00"}, "currency": {"CNY"}, "method": {method[1]}}
	req, err := http.NewRequest(http.MethodPost, ps.URL+ps.path+"/topup", strings.NewReader(form.Encode()))
	if err != nil {
		ps.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", userAgent)
	return ps.do(req)
}

func (ps *providerStory) do(req *http.Request) apiResponse {
	ps.t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		ps.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: body.Bytes()}
}

// notify posts a provider notification to chatpay's endpoint.
func (ps *providerStory) notify(provider string, header http.Header, body []byte) int {
	ps.t.Helper()
	req, err := http.NewRequest(http.MethodPost, ps.URL+"/v1/providers/"+provider+"/notify/"+ps.shop.merchant.ID, bytes.NewReader(body))
	if err != nil {
		ps.t.Fatal(err)
	}
	req.Header = header.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ps.t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (ps *providerStory) wallet() int64 { return ps.balance(ledger.ShopperWallet(ps.shopper.ID)) }

func (ps *providerStory) latestTopUp() payments.HostedTopUp {
	ps.t.Helper()
	var id string
	if err := ps.db.Get(&id, `SELECT id FROM topups WHERE shopper_id = $1 AND status IN ('pending', 'unknown') ORDER BY created_at DESC, id LIMIT 1`, ps.shopper.ID); err != nil {
		ps.t.Fatal(err)
	}
	top, err := ps.app.payments.HostedTopUpByID(context.Background(), ps.shopper.ID, id)
	if err != nil {
		ps.t.Fatal(err)
	}
	return top
}

// buyAndRedeem finishes the story: Buy now from the page, then the coupon
// is accepted at the till at 14:30 Shanghai.
func (ps *providerStory) buyAndRedeem() {
	ps.t.Helper()
	html := string(ps.get(ps.path + "?launch=" + url.QueryEscape(ps.launch)).Body)
	key := regexp.MustCompile(`action="/q/[^"]+/buy">\s*<input type="hidden" name="launch" value="[^"]*">\s*<input type="hidden" name="idempotency_key" value="([0-9a-f]+)"`).FindStringSubmatch(html)
	if key == nil {
		ps.t.Fatalf("no Buy now after the top-up:\n%s", html)
	}
	buy := ps.postForm(ps.path+"/buy", url.Values{"launch": {ps.launch}, "idempotency_key": {key[1]}})
	if buy.Status != http.StatusSeeOther || !receiptPath.MatchString(buy.Header.Get("Location")) {
		ps.t.Fatalf("buy: %d %s", buy.Status, buy.Body)
	}
	orderID := receiptPath.FindStringSubmatch(buy.Header.Get("Location"))[1]
	var coupon payments.Coupon
	if err := ps.db.Get(&coupon, `SELECT code, secret FROM coupons WHERE order_id = $1`, orderID); err != nil {
		ps.t.Fatal(err)
	}
	// The till scans the QR the shopper's phone draws now.
	if r := ps.redeem(ps.shop.key, "redeem-"+orderID, payments.RedemptionQRContent(coupon, ps.clock.Now()), []map[string]any{line("TEA", "tea", "3.00")}); r.Status != http.StatusOK {
		ps.t.Fatalf("redeem at 14:30: %d %s", r.Status, r.Body)
	}
}

func TestTeaCardStoryWithStripe(t *testing.T) {
	mock := stripemock.Start(t)
	ps := startProviderStory(t, providerconfig.URLs{Stripe: mock.URL})
	const whsec = "whsec_story_0123456789"
	out := ps.chatpay("provider", "stripe", "--merchant", ps.shop.merchant.ID,
		"--secret-key-file", secretFile(t, "sk", "sk_test_51StoryKey0123456789"), "--webhook-secret-file", secretFile(t, "whsec", whsec))
	if !strings.Contains(out, "takes top-ups with stripe") || strings.Contains(out, "sk_test_51StoryKey0123456789") || strings.Contains(out, whsec) {
		t.Fatalf("provider stripe printed:\n%s", out)
	}

	// A card number posted to chatpay for this merchant is refused: cards
	// are typed on Stripe's page only.
	card := ps.postForm(ps.path+"/topup", url.Values{"launch": {ps.launch}, "idempotency_key": {"card-1"},
		"amount": {"3.00"}, "currency": {"CNY"}, "card": {"4242424242424242"}})
	if card.Status != http.StatusUnprocessableEntity || !strings.Contains(string(card.Body), "card_not_accepted") ||
		ps.count(`SELECT count(*) FROM topups`) != 0 {
		t.Fatalf("card top-up for a Stripe merchant: %d %s", card.Status, card.Body)
	}

	// The shopper's wallet is empty: the page offers Stripe, and the form
	// leads to Stripe's own page. Coming back credits nothing.
	resp := ps.topUpFromPage("stripe", "Mozilla/5.0 (iPhone) Telegram")
	if resp.Status != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "https://checkout.stripe.com/") {
		t.Fatalf("top-up: %d %s %s", resp.Status, resp.Header.Get("Location"), resp.Body)
	}
	top := ps.latestTopUp()
	if ps.get(ps.path+"?launch="+url.QueryEscape(ps.launch)).Status != http.StatusOK || ps.wallet() != 0 {
		t.Fatal("the return from Stripe credited the wallet")
	}
	mock.Pay(top.PaymentID.String)
	session, _ := mock.Session(top.PaymentID.String)
	event := stripemock.Event("evt_story", "checkout.session.completed", stripemock.SessionObject(session))
	sign := func(secret string) http.Header {
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: event, Secret: secret})
		return http.Header{"Stripe-Signature": {signed.Header}}
	}
	if got := ps.notify("stripe", sign("whsec_forged"), event); got != http.StatusBadRequest || ps.wallet() != 0 {
		t.Fatalf("forged webhook: %d, wallet %d", got, ps.wallet())
	}
	for range 3 {
		if got := ps.notify("stripe", sign(whsec), event); got != http.StatusNoContent {
			t.Fatalf("webhook: %d", got)
		}
	}
	if ps.wallet() != 300 {
		t.Fatalf("wallet %d, want 300 once", ps.wallet())
	}
	ps.buyAndRedeem()

	// A second top-up whose webhook is lost: `chatpay reconcile` settles it
	// from Stripe's record; then the shopper takes it back to the card.
	second := ps.call("POST", "/v1/channel/shoppers/"+ps.shopper.ID+"/topups", ps.shop.channel.APIKey, "second",
		map[string]any{"amount": map[string]string{"amount": "5.00", "currency": "CNY"}, "method": "checkout",
			"merchant_id": ps.shop.merchant.ID, "return_url": ps.URL + ps.path})
	if second.Status != http.StatusAccepted {
		t.Fatalf("API top-up: %d %s", second.Status, second.Body)
	}
	doc := second.JSON(t)
	secondID := doc["id"].(string)
	mock.Pay(doc["payment_page"].(map[string]any)["payment_id"].(string))
	out = ps.chatpay("reconcile", "--stripe-api-url", mock.URL, "--now", ps.clock.Now().Add(time.Minute).Format(time.RFC3339))
	if !strings.Contains(out, "1 succeeded") || ps.wallet() != 500 {
		t.Fatalf("reconcile: %s, wallet %d", out, ps.wallet())
	}
	refund := ps.call("POST", "/v1/channel/shoppers/"+ps.shopper.ID+"/topups/"+secondID+"/refunds", ps.shop.channel.APIKey, "back",
		map[string]any{"amount": map[string]string{"amount": "5.00", "currency": "CNY"}})
	if refund.Status != http.StatusCreated || len(mock.Refunds()) != 1 || ps.wallet() != 0 {
		t.Fatalf("refund: %d %s, %d refunds at Stripe, wallet %d", refund.Status, refund.Body, len(mock.Refunds()), ps.wallet())
	}
	assertVerifyClean(t, ps.testApp)
}

// useWeChatPay configures the fake's merchant account for the shop with
// the command line, as an operator would.
func (ps *providerStory) useWeChatPay(server *fake.Server) {
	ps.t.Helper()
	t := ps.t
	out := ps.chatpay("provider", "wechatpay", "--merchant", ps.shop.merchant.ID, "--mchid", fake.MchID, "--appid", fake.AppID,
		"--merchant-serial", fake.MerchantSerial, "--platform-serial", fake.PlatformSerial,
		"--merchant-key-file", secretFile(t, "apiclient_key.pem", string(server.MerchantKeyPEM())),
		"--apiv3-key-file", secretFile(t, "apiv3", fake.APIv3Key),
		"--platform-key-file", secretFile(t, "pub_key.pem", string(server.PlatformPublicKeyPEM())))
	if !strings.Contains(out, "takes top-ups with wechatpay") || strings.Contains(out, fake.APIv3Key) || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("provider wechatpay printed:\n%s", out)
	}
}

// startWeChatPayFake runs the fake WeChat Pay at the story's clock.
func startWeChatPayFake(t *testing.T) *fake.Server {
	t.Helper()
	server, err := fake.New(func() time.Time { return storyStart })
	if err != nil {
		t.Fatal(err)
	}
	stop, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return server
}

func TestTeaCardStoryWithWeChatPay(t *testing.T) {
	server := startWeChatPayFake(t)
	ps := startProviderStory(t, providerconfig.URLs{WeChatPay: server.URL})
	ps.useWeChatPay(server)

	// Inside WeChat the page opens WeChat Pay's own sheet with signed
	// parameters (JSAPI), under a CSP that runs only its own script.
	resp := ps.topUpFromPage("wechatpay", "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), "getBrandWCPayRequest") || !strings.Contains(csp, "script-src 'nonce-") {
		t.Fatalf("JSAPI page: %d %s\n%s", resp.Status, csp, resp.Body)
	}
	top := ps.latestTopUp()
	if top.Method != payments.MethodJSAPI || !strings.Contains(string(resp.Body), top.Page().JSAPI["paySign"][:16]) {
		t.Fatalf("top-up %s, page lacks its paySign", top.Method)
	}
	if err := server.Pay(top.ProviderKey); err != nil {
		t.Fatal(err)
	}
	header, body, err := server.Notification(top.ProviderKey, "EV-story-1", ps.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(body, []byte(`"ciphertext":"`), []byte(`"ciphertext":"AA`), 1)
	if got := ps.notify(wechatpay.Name, header, tampered); got != http.StatusBadRequest || ps.wallet() != 0 {
		t.Fatalf("forged notification: %d, wallet %d", got, ps.wallet())
	}
	for range 3 {
		if got := ps.notify(wechatpay.Name, header, body); got != http.StatusNoContent {
			t.Fatalf("notification: %d", got)
		}
	}
	if ps.wallet() != 300 {
		t.Fatalf("wallet %d, want 300 once", ps.wallet())
	}
	ps.buyAndRedeem()

	// In another browser the page shows WeChat Pay's QR (Native); its
	// notification is lost and reconciliation settles it.
	resp = ps.topUpFromPage("wechatpay", "Mozilla/5.0 (X11; Linux x86_64)")
	if resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `data-testid="wechatpay-qr"`) {
		t.Fatalf("Native page: %d\n%s", resp.Status, resp.Body)
	}
	second := ps.latestTopUp()
	if err := server.Pay(second.ProviderKey); err != nil {
		t.Fatal(err)
	}
	out := ps.chatpay("reconcile", "--wechatpay-api-url", server.URL, "--now", ps.clock.Now().Add(time.Minute).Format(time.RFC3339))
	if !strings.Contains(out, "1 succeeded") || ps.wallet() != 300 {
		t.Fatalf("reconcile: %s, wallet %d", out, ps.wallet())
	}
	refund := ps.call("POST", "/v1/channel/shoppers/"+ps.shopper.ID+"/topups/"+second.ID+"/refunds", ps.shop.channel.APIKey, "back",
		map[string]any{"amount": map[string]string{"amount": "3.00", "currency": "CNY"}})
	if refund.Status != http.StatusCreated || len(server.Refunds()) != 1 || ps.wallet() != 0 {
		t.Fatalf("refund: %d %s, wallet %d", refund.Status, refund.Body, ps.wallet())
	}
	assertVerifyClean(t, ps.testApp)
}
