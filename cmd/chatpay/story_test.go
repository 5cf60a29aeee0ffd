package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments"
)

// storyStart is 14:30 in Shanghai on 21 Nov 2026, inside the tea card's window.
var storyStart = time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC)

func decodeQR(t *testing.T, pngBytes []byte) string {
	t.Helper()
	return decodeQRWith(t, pngBytes, nil)
}

func decodeQRWith(t *testing.T, pngBytes []byte, hints map[gozxing.DecodeHintType]any) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	result, err := gozxingqr.NewQRCodeReader().Decode(bmp, hints)
	if err != nil {
		t.Fatalf("decode QR: %v", err)
	}
	return result.GetText()
}

var receiptPath = regexp.MustCompile(`^/receipts/(ord_[a-z2-7]+)\?launch=`)

// The tea card, story steps 1–5 of DESIGN.md, through the real HTTP API and
// pages: publish, print the QR, scan it in the chat, buy it with a double tap,
// and find one paid order, one coupon, one debit and the events queued.
func TestTeaCardStory(t *testing.T) {
	ta := startTestApp(t, storyStart)
	merchant, key := ta.merchant("McDonald's", "Asia/Shanghai")

	// 1. The merchant publishes the tea card.
	created := ta.call("POST", "/v1/items", key, "publish-tea", teaCard(500))
	if created.Status != http.StatusCreated {
		t.Fatalf("create item: %d %s", created.Status, created.Body)
	}
	item := created.JSON(t)
	itemID := item["id"].(string)

	// 2. It prints the item's QR code and the PNG decodes to the checkout URL.
	qrResp := ta.call("POST", "/v1/qr-codes", key, "qr-counter", map[string]any{"item_id": itemID, "placement": "counter"})
	if qrResp.Status != http.StatusCreated {
		t.Fatalf("create qr: %d %s", qrResp.Status, qrResp.Body)
	}
	code := qrResp.JSON(t)
	img := ta.call("GET", "/v1/qr-codes/"+code["id"].(string)+"/image.png?size=400", key, "", nil)
	if img.Status != http.StatusOK || img.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("qr image: %d %s", img.Status, img.Header.Get("Content-Type"))
	}
	checkoutURL := decodeQR(t, img.Body)
	if !strings.HasPrefix(checkoutURL, ta.URL+"/q/") {
		t.Fatalf("the QR says %q", checkoutURL)
	}
	path := strings.TrimPrefix(checkoutURL, ta.URL)

	// 3. A shopper scans it in the chat; the page shows item, price, rules, Buy now.
	channel := ta.channel()
	launch := ta.launch(channel, "42", "Li Wei")
	shopper, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, channel.Channel.ID, "42", "Li Wei")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(shopper.ID, 1000, "CNY")
	page := ta.get(path + "?launch=" + url.QueryEscape(launch))
	if page.Status != http.StatusOK {
		t.Fatalf("checkout page: %d %s", page.Status, page.Body)
	}
	html := string(page.Body)
	for _, want := range []string{"Tea card", "McDonald&#39;s", "3.00 CNY", "14:00–17:00", "coffee", "10.00 CNY", "Buy now"} {
		if !strings.Contains(html, want) {
			t.Errorf("checkout page lacks %q", want)
		}
	}
	keyField := regexp.MustCompile(`name="idempotency_key" value="([0-9a-f]+)"`).FindStringSubmatch(html)
	if keyField == nil {
		t.Fatalf("no idempotency key in the form:\n%s", html)
	}

	// 4. "Buy now", tapped twice at once and retried once more: one order.
	form := url.Values{"launch": {launch}, "idempotency_key": {keyField[1]}}
	var wg sync.WaitGroup
	locations := make([]string, 3)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := ta.postForm(path+"/buy", form)
			if resp.Status != http.StatusSeeOther {
				t.Errorf("buy: %d %s", resp.Status, resp.Body)
			}
			locations[i] = resp.Header.Get("Location")
		}()
	}
	wg.Wait()
	locations[2] = ta.postForm(path+"/buy", form).Header.Get("Location")
	if locations[0] == "" || locations[0] != locations[1] || locations[1] != locations[2] {
		t.Fatalf("taps led to different receipts: %q", locations)
	}
	orderID := receiptPath.FindStringSubmatch(locations[0])[1]
	if n := ta.count(`SELECT count(*) FROM orders`); n != 1 {
		t.Fatalf("%d orders", n)
	}
	if n := ta.count(`SELECT count(*) FROM coupons WHERE order_id = $1`, orderID); n != 1 {
		t.Fatalf("%d coupons", n)
	}
	if n := ta.count(`SELECT COALESCE(sum(quantity),0) FROM item_stock WHERE item_id = $1`, itemID); n != 499 {
		t.Fatalf("stock %d, want 499", n)
	}
	wallet, err := ta.app.ledger.Balance(context.Background(), ta.db, ledger.ShopperWallet(shopper.ID), mustCNY())
	if err != nil || wallet != 700 {
		t.Fatalf("wallet %d (%v), want 700: debited once", wallet, err)
	}
	deferred, _ := ta.app.ledger.Balance(context.Background(), ta.db, ledger.MerchantDeferred(merchant.ID), mustCNY())
	if deferred != 300 {
		t.Fatalf("merchant deferred %d, want 300", deferred)
	}

	// The receipt shows the order and the coupon with its own QR and code.
	receipt := ta.get(locations[0])
	if receipt.Status != http.StatusOK {
		t.Fatalf("receipt: %d %s", receipt.Status, receipt.Body)
	}
	var couponCode string
	if err := ta.db.Get(&couponCode, `SELECT code FROM coupons WHERE order_id = $1`, orderID); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Paid 3.00 CNY", couponCode, "<svg", "until 21 Feb 2027"} {
		if !strings.Contains(string(receipt.Body), want) {
			t.Errorf("receipt lacks %q", want)
		}
	}

	// 5. order.paid and coupon.issued wait in the outbox for the channel, with
	// the chat context and a message the bot can post as is.
	var message string
	if err := ta.db.Get(&message, `SELECT convert_from(body, 'UTF8')::jsonb->'data'->>'message' FROM webhook_events WHERE type = 'order.paid'`); err != nil {
		t.Fatalf("order.paid not queued: %v", err)
	}
	if want := "Paid 3.00 CNY — Tea card. Valid 14:00–17:00 daily (Asia/Shanghai), not for coffee, until 21 Feb 2027"; message != want {
		t.Errorf("order.paid message\n got %q\nwant %q", message, want)
	}
	if n := ta.count(`SELECT count(*) FROM webhook_events WHERE type = 'coupon.issued'`); n != 1 {
		t.Errorf("%d coupon.issued events", n)
	}

	// The merchant sees the order through the API.
	orders := ta.call("GET", "/v1/orders", key, "", nil)
	if orders.Status != http.StatusOK || !strings.Contains(string(orders.Body), orderID) {
		t.Fatalf("orders: %d %s", orders.Status, orders.Body)
	}
	assertVerifyClean(t, ta)
}

func mustCNY() money.Currency { return money.MustCurrency("CNY") }

// Bots confirm through the channel API. 50 concurrent confirms with one key:
// one order, one ledger transaction, one coupon; every answer is the original
// success or 409 with Retry-After; later retries get the identical success.
func TestDoubleTapThroughChannelAPI(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	itemID, channel := shop.itemID, shop.channel
	shopper := ta.call("POST", "/v1/channel/shoppers", channel.APIKey, "", map[string]any{"user_id": "42", "name": "Li Wei"}).JSON(t)
	shopperID := shopper["id"].(string)
	ta.fund(shopperID, 1000, "CNY")

	checkout := ta.call("POST", "/v1/channel/checkouts", channel.APIKey, "co-1", map[string]any{
		"shopper_id": shopperID, "chat_id": "chat-42", "lines": []map[string]any{{"item_id": itemID, "quantity": 1}},
	})
	if checkout.Status != http.StatusCreated {
		t.Fatalf("create checkout: %d %s", checkout.Status, checkout.Body)
	}
	checkoutID := checkout.JSON(t)["id"].(string)
	confirmPath := "/v1/channel/checkouts/" + checkoutID + "/confirm"

	const taps = 50
	responses := make([]apiResponse, taps)
	var wg sync.WaitGroup
	for i := range taps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			responses[i] = ta.call("POST", confirmPath, channel.APIKey, "tap-1", nil)
		}()
	}
	wg.Wait()
	var success []byte
	inFlight := 0
	for _, r := range responses {
		switch r.Status {
		case http.StatusOK:
			if success == nil {
				success = r.Body
			}
			if !bytes.Equal(r.Body, success) {
				t.Fatalf("two different successes:\n%s\n%s", r.Body, success)
			}
		case http.StatusConflict:
			if r.JSON(t)["code"] != "idempotency_key_in_use" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("409 without in-progress code or Retry-After: %s", r.Body)
			}
			inFlight++
		default:
			t.Fatalf("unexpected %d %s", r.Status, r.Body)
		}
	}
	retry := ta.call("POST", confirmPath, channel.APIKey, "tap-1", nil)
	if retry.Status != http.StatusOK || !bytes.Equal(retry.Body, success) || retry.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after the taps: %d %s", retry.Status, retry.Body)
	}
	body := retry.JSON(t)
	if body["wallet_balance"].(map[string]any)["amount"] != "7.00" {
		t.Errorf("receipt wallet %v", body["wallet_balance"])
	}
	if limits := body["purchase_limits"].([]any); len(limits) != 1 || limits[0].(map[string]any)["remaining"] != float64(1) {
		t.Errorf("receipt limits %v", body["purchase_limits"])
	}
	t.Logf("%d of %d concurrent confirms were told to retry", inFlight, taps)

	t.Run("ErrAlreadyPaidWithOtherKey", func(t *testing.T) {
		other := ta.call("POST", confirmPath, channel.APIKey, "tap-2", nil)
		doc := other.JSON(t)
		if other.Status != http.StatusConflict || doc["code"] != payments.CodeAlreadyPaid || doc["order_id"] != body["order"].(map[string]any)["id"] {
			t.Fatalf("second key: %d %s", other.Status, other.Body)
		}
	})
	t.Run("ErrSameKeyOtherBody", func(t *testing.T) {
		other := ta.call("POST", confirmPath, channel.APIKey, "tap-1", map[string]any{"note": "different"})
		if other.Status != http.StatusUnprocessableEntity || other.JSON(t)["code"] != "idempotency_key_reused" {
			t.Fatalf("same key, other body: %d %s", other.Status, other.Body)
		}
	})
	if n := ta.count(`SELECT count(*) FROM orders`); n != 1 {
		t.Fatalf("%d orders", n)
	}
	if n := ta.count(`SELECT count(*) FROM ledger_transactions`); n != 2 { // the funding and the sale
		t.Fatalf("%d ledger transactions", n)
	}
	if n := ta.count(`SELECT count(*) FROM coupons`); n != 1 {
		t.Fatalf("%d coupons", n)
	}
	assertVerifyClean(t, ta)
}

// TestDoubleTapOneCallPurchase: 50 concurrent one-call purchases with one
// Idempotency-Key pay once, answer one receipt, and write no checkout.
func TestDoubleTapOneCallPurchase(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	itemID, channel := shop.itemID, shop.channel
	shopperID := ta.call("POST", "/v1/channel/shoppers", channel.APIKey, "", map[string]any{"user_id": "42", "name": "Li Wei"}).JSON(t)["id"].(string)
	ta.fund(shopperID, 1000, "CNY")
	request := map[string]any{"shopper_id": shopperID, "chat_id": "chat-42", "item_id": itemID, "quantity": 2}

	const taps = 50
	responses := make([]apiResponse, taps)
	var wg sync.WaitGroup
	for i := range taps {
		wg.Go(func() { responses[i] = ta.call("POST", "/v1/channel/purchases", channel.APIKey, "buy-1", request) })
	}
	wg.Wait()
	var success []byte
	for _, r := range responses {
		switch {
		case r.Status == http.StatusOK && (success == nil || bytes.Equal(r.Body, success)):
			success = r.Body
		case r.Status == http.StatusConflict && r.JSON(t)["code"] == "idempotency_key_in_use":
		default:
			t.Fatalf("unexpected %d %s (first success %s)", r.Status, r.Body, success)
		}
	}
	retry := ta.call("POST", "/v1/channel/purchases", channel.APIKey, "buy-1", request)
	if retry.Status != http.StatusOK || !bytes.Equal(retry.Body, success) || retry.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after the taps: %d %s", retry.Status, retry.Body)
	}
	body := retry.JSON(t)
	order := body["order"].(map[string]any)
	if order["checkout_id"] != nil || body["wallet_balance"].(map[string]any)["amount"] != "4.00" || len(body["coupons"].([]any)) != 2 {
		t.Errorf("receipt: %s", retry.Body)
	}
	if limits := body["purchase_limits"].([]any); len(limits) != 1 || limits[0].(map[string]any)["remaining"] != float64(0) {
		t.Errorf("receipt limits %v", body["purchase_limits"])
	}
	t.Run("ErrLimitWithOtherKey", func(t *testing.T) {
		other := ta.call("POST", "/v1/channel/purchases", channel.APIKey, "buy-2", map[string]any{"shopper_id": shopperID, "item_id": itemID})
		if other.Status != http.StatusConflict || other.JSON(t)["code"] != payments.CodeLimitReached {
			t.Fatalf("a third card: %d %s", other.Status, other.Body)
		}
	})
	t.Run("ErrBadTargets", func(t *testing.T) {
		for name, req := range map[string]map[string]any{
			"none":          {"shopper_id": shopperID},
			"both":          {"shopper_id": shopperID, "item_id": itemID, "code": "x"},
			"quantity 0":    {"shopper_id": shopperID, "item_id": itemID, "quantity": 0},
			"unknown item":  {"shopper_id": shopperID, "item_id": "itm_nope"},
			"other shopper": {"shopper_id": "shp_nope", "item_id": itemID},
		} {
			r := ta.call("POST", "/v1/channel/purchases", channel.APIKey, "bad-"+name, req)
			if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusBadRequest {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
	})
	if n := ta.count(`SELECT count(*) FROM orders`); n != 1 {
		t.Fatalf("%d orders", n)
	}
	if n := ta.count(`SELECT count(*) FROM checkouts`); n != 0 {
		t.Fatalf("%d checkouts; a one-call purchase writes none", n)
	}
	if n := ta.count(`SELECT sum(quantity) FROM item_stock WHERE item_id = $1`, itemID); n != 498 {
		t.Fatalf("stock %d, want 498", n)
	}
	assertVerifyClean(t, ta)
}

// A flash sale: 2,000 distinct buyers at once for 100 tea cards, half of
// them through the two-step checkout and half in one call.
func TestFlashSaleNeverOversells(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(100)
	itemID, channel := shop.itemID, shop.channel

	const buyers = 2000
	shopperIDs := make([]string, buyers)
	for i := range buyers {
		sh, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, channel.Channel.ID, fmt.Sprint("u", i), "")
		if err != nil {
			t.Fatal(err)
		}
		shopperIDs[i] = sh.ID
		ta.fund(sh.ID, 300, "CNY")
	}
	results := make(chan apiResponse, buyers)
	sem := make(chan struct{}, 64) // 64 buyers in flight at a time, like a busy front end
	var wg sync.WaitGroup
	start := time.Now()
	for i := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if i%2 == 1 {
				results <- ta.call("POST", "/v1/channel/purchases", channel.APIKey, fmt.Sprint("buy-", i), map[string]any{
					"shopper_id": shopperIDs[i], "item_id": itemID,
				})
				return
			}
			co := ta.call("POST", "/v1/channel/checkouts", channel.APIKey, fmt.Sprint("co-", i), map[string]any{
				"shopper_id": shopperIDs[i], "lines": []map[string]any{{"item_id": itemID, "quantity": 1}},
			})
			if co.Status != http.StatusCreated {
				results <- co
				return
			}
			results <- ta.call("POST", "/v1/channel/checkouts/"+co.JSON(t)["id"].(string)+"/confirm", channel.APIKey, fmt.Sprint("pay-", i), nil)
		}()
	}
	wg.Wait()
	close(results)
	paid, soldOut := 0, 0
	for r := range results {
		switch {
		case r.Status == http.StatusOK:
			paid++
		case r.Status == http.StatusConflict && r.JSON(t)["code"] == payments.CodeSoldOut:
			soldOut++
		default:
			t.Errorf("unexpected %d %s", r.Status, r.Body)
		}
	}
	t.Logf("%d buyers in %s: %d paid, %d sold out", buyers, time.Since(start).Round(time.Millisecond), paid, soldOut)
	if paid != 100 || soldOut != buyers-100 {
		t.Fatalf("paid %d, sold out %d", paid, soldOut)
	}
	if n := ta.count(`SELECT count(*) FROM orders`); n != 100 {
		t.Fatalf("%d orders", n)
	}
	if n := ta.count(`SELECT COALESCE(sum(quantity), -1) FROM item_stock WHERE item_id = $1`, itemID); n != 0 {
		t.Fatalf("stock %d, want 0", n)
	}
	assertVerifyClean(t, ta)
}

// The per-shopper limit of 2 holds under 20 concurrent purchases of one
// shopper with distinct keys at once: 10 "Buy now" taps on the page and 10
// one-call purchases through the channel API (both pay in one transaction,
// so nothing is reserved first).
func TestPerShopperLimitUnderConcurrency(t *testing.T) {
	ta := startTestApp(t, storyStart)
	_, key := ta.merchant("McDonald's", "Asia/Shanghai")
	itemID := ta.call("POST", "/v1/items", key, "", teaCard(500)).JSON(t)["id"].(string)
	codeURL := ta.call("POST", "/v1/qr-codes", key, "", map[string]any{"item_id": itemID, "placement": "counter"}).JSON(t)["url"].(string)
	path := strings.TrimPrefix(codeURL, ta.URL)
	channel := ta.channel()
	sh, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, channel.Channel.ID, "greedy", "")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(sh.ID, 100_00, "CNY")
	launch := ta.launch(channel, "greedy", "")
	const taps = 20
	var wg sync.WaitGroup
	answers := make([]apiResponse, taps)
	for i := range taps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 1 {
				answers[i] = ta.call("POST", "/v1/channel/purchases", channel.APIKey, fmt.Sprint("api-", i),
					map[string]any{"shopper_id": sh.ID, "item_id": itemID})
				return
			}
			answers[i] = ta.postForm(path+"/buy", url.Values{"launch": {launch}, "idempotency_key": {fmt.Sprint("tap-", i)}})
		}()
	}
	wg.Wait()
	paid := 0
	for _, r := range answers {
		switch {
		case r.Status == http.StatusSeeOther || r.Status == http.StatusOK:
			paid++
		case r.Status == http.StatusConflict && strings.Contains(string(r.Body), `data-code="purchase_limit_reached"`):
		case r.Status == http.StatusConflict && strings.Contains(string(r.Body), `"code":"purchase_limit_reached"`):
		default:
			t.Errorf("unexpected %d %s", r.Status, r.Body)
		}
	}
	if paid != 2 || ta.count(`SELECT count(*) FROM orders`) != 2 {
		t.Fatalf("%d paid, %d orders; want 2", paid, ta.count(`SELECT count(*) FROM orders`))
	}
	assertVerifyClean(t, ta)
}

// Launch contexts that are tampered, signed with another secret, stale, or
// without a hash get a clear 401 page, and nothing is created.
func TestCheckoutPageRefusesBadLaunchContexts(t *testing.T) {
	ta := startTestApp(t, storyStart)
	_, key := ta.merchant("McDonald's", "Asia/Shanghai")
	itemID := ta.call("POST", "/v1/items", key, "", teaCard(5)).JSON(t)["id"].(string)
	qrURL := ta.call("POST", "/v1/qr-codes", key, "", map[string]any{"item_id": itemID, "placement": "window poster"}).JSON(t)["url"].(string)
	token := qrURL[strings.LastIndex(qrURL, "/")+1:]
	channel := ta.channel()
	valid := ta.launch(channel, "42", "Li Wei")
	stale := payments.SignLaunch(channel.LaunchSecret, map[string]string{
		"channel_id": channel.Channel.ID, "user_id": "42", "auth_date": fmt.Sprint(storyStart.Add(-time.Hour).Unix())})
	cases := map[string]string{
		"Tampered":    strings.Replace(valid, "user_id=42", "user_id=43", 1),
		"WrongSecret": payments.SignLaunch("ls_wrong_secret_value", map[string]string{"channel_id": channel.Channel.ID, "user_id": "42", "auth_date": fmt.Sprint(storyStart.Unix())}),
		"Stale":       stale,
		"MissingHash": regexp.MustCompile(`&?hash=[0-9a-f]+`).ReplaceAllString(valid, ""),
		"None":        "",
	}
	for name, launch := range cases {
		t.Run(name, func(t *testing.T) {
			page := ta.get("/q/" + token + "?launch=" + url.QueryEscape(launch))
			if page.Status != http.StatusUnauthorized || !strings.Contains(string(page.Body), "Open this page from your chat") {
				t.Fatalf("%d %s", page.Status, page.Body)
			}
			buy := ta.postForm("/q/"+token+"/buy", url.Values{"launch": {launch}, "idempotency_key": {"k-" + name}})
			if buy.Status != http.StatusUnauthorized {
				t.Fatalf("buy: %d", buy.Status)
			}
		})
	}
	if n := ta.count(`SELECT count(*) FROM shoppers`); n != 0 {
		t.Fatalf("%d shoppers created from bad contexts", n)
	}
	if n := ta.count(`SELECT count(*) FROM orders`); n != 0 {
		t.Fatalf("%d orders", n)
	}
	t.Run("RevokedCodeShowsAClearPage", func(t *testing.T) {
		var qrID string
		if err := ta.db.Get(&qrID, `SELECT id FROM qr_codes WHERE token = $1`, token); err != nil {
			t.Fatal(err)
		}
		ta.call("POST", "/v1/qr-codes/"+qrID+"/revoke", key, "", nil)
		page := ta.get("/q/" + token + "?launch=" + url.QueryEscape(valid))
		if page.Status != http.StatusConflict || !strings.Contains(string(page.Body), "no longer valid") {
			t.Fatalf("%d %s", page.Status, page.Body)
		}
	})
}

// A bot's checkout reserves stock; once it expires the expiry job returns the
// stock, and confirming it afterwards is refused. Canceling returns it too.
func TestReservedStockReturnsOnExpiryAndCancel(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(10)
	itemID, channel := shop.itemID, shop.channel
	shopperID := ta.call("POST", "/v1/channel/shoppers", channel.APIKey, "", map[string]any{"user_id": "42"}).JSON(t)["id"].(string)
	ta.fund(shopperID, 1000, "CNY")
	stock := func() int {
		return ta.count(`SELECT COALESCE(sum(quantity), 0) FROM item_stock WHERE item_id = $1`, itemID)
	}
	open := func(quantity int) string {
		co := ta.call("POST", "/v1/channel/checkouts", channel.APIKey, "", map[string]any{
			"shopper_id": shopperID, "lines": []map[string]any{{"item_id": itemID, "quantity": quantity}}})
		if co.Status != http.StatusCreated {
			t.Fatalf("checkout: %d %s", co.Status, co.Body)
		}
		return co.JSON(t)["id"].(string)
	}

	expiring := open(2)
	if stock() != 8 {
		t.Fatalf("stock %d after reserving 2", stock())
	}
	ta.clock.Set(storyStart.Add(payments.CheckoutTTLDefault))
	if n, err := ta.app.payments.ExpireCheckouts(context.Background(), 100); err != nil || n != 1 {
		t.Fatalf("expired %d: %v", n, err)
	}
	if stock() != 10 {
		t.Fatalf("stock %d after expiry, want 10", stock())
	}
	late := ta.call("POST", "/v1/channel/checkouts/"+expiring+"/confirm", channel.APIKey, "late", nil)
	if late.Status != http.StatusConflict || late.JSON(t)["code"] != payments.CodeCheckoutExpired {
		t.Fatalf("confirm after expiry: %d %s", late.Status, late.Body)
	}

	canceled := open(1)
	if stock() != 9 {
		t.Fatalf("stock %d after reserving 1", stock())
	}
	if resp := ta.call("POST", "/v1/channel/checkouts/"+canceled+"/cancel", channel.APIKey, "cancel-1", nil); resp.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", resp.Status, resp.Body)
	}
	if stock() != 10 {
		t.Fatalf("stock %d after cancel, want 10", stock())
	}
	if n := ta.count(`SELECT count(*) FROM orders`); n != 0 {
		t.Fatalf("%d orders", n)
	}
	assertVerifyClean(t, ta)
}

// A till shows a one-time code bound to an amount: the first shopper who pays
// it gets the order; a shopper short of money leaves it usable; a second
// payment is refused as used; an expired code is refused as expired.
func TestTillCheckoutCodeIsOneTime(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(10)
	key, itemID, channel := shop.key, shop.itemID, shop.channel
	till := ta.call("POST", "/v1/checkouts", key, "till-1", map[string]any{
		"lines": []map[string]any{{"item_id": itemID, "quantity": 2}}, "ttl_seconds": 120})
	if till.Status != http.StatusCreated {
		t.Fatalf("till checkout: %d %s", till.Status, till.Body)
	}
	doc := till.JSON(t)
	if total := doc["checkout"].(map[string]any)["total"].(map[string]any)["amount"]; total != "6.00" {
		t.Fatalf("total %v", total)
	}
	codeURL := doc["url"].(string)
	token := codeURL[strings.LastIndex(codeURL, "/")+1:]

	pay := func(userID string, funds int64) (payments.Receipt, error) {
		sh, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, channel.Channel.ID, userID, "")
		if err != nil {
			t.Fatal(err)
		}
		if funds > 0 {
			ta.fund(sh.ID, funds, "CNY")
		}
		var receipt payments.Receipt
		err = database.WithTx(context.Background(), ta.db, nil, func(tx *sqlx.Tx) error {
			var err error
			receipt, err = ta.app.payments.Buy(context.Background(), tx, payments.Purchase{Shopper: sh, ChatID: "chat-" + userID, Code: token})
			return err
		})
		return receipt, err
	}
	if _, err := pay("poor", 100); problemCode(err) != "insufficient_funds" {
		t.Fatalf("short shopper: %v", err)
	}
	receipt, err := pay("rich", 1000)
	if err != nil {
		t.Fatalf("pay: %v", err)
	}
	if receipt.Order.TotalMinor != 600 || len(receipt.Coupons) != 2 {
		t.Fatalf("receipt %+v", receipt.Order)
	}
	if _, err := pay("late", 1000); problemCode(err) != "qr_used" {
		t.Fatalf("second payer: %v", err)
	}

	expiring := ta.call("POST", "/v1/checkouts", key, "till-2", map[string]any{
		"lines": []map[string]any{{"item_id": itemID, "quantity": 1}}, "ttl_seconds": 60}).JSON(t)["url"].(string)
	token = expiring[strings.LastIndex(expiring, "/")+1:]
	ta.clock.Set(storyStart.Add(61 * time.Second))
	if _, err := pay("rich", 0); problemCode(err) != "qr_expired" {
		t.Fatalf("expired code: %v", err)
	}
	assertVerifyClean(t, ta)
}

func problemCode(err error) string {
	if p, ok := problem.As(err); ok {
		return p.Code
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// The shopper's page for a till code shows the rung-up lines and the amount,
// and "Buy now" pays that checkout.
func TestTillCheckoutThroughThePage(t *testing.T) {
	ta := startTestApp(t, storyStart)
	_, key := ta.merchant("McDonald's", "Asia/Shanghai")
	itemID := ta.call("POST", "/v1/items", key, "", teaCard(10)).JSON(t)["id"].(string)
	codeURL := ta.call("POST", "/v1/checkouts", key, "", map[string]any{
		"lines": []map[string]any{{"item_id": itemID, "quantity": 2}}}).JSON(t)["url"].(string)
	path := strings.TrimPrefix(codeURL, ta.URL)
	channel := ta.channel()
	shopper, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, channel.Channel.ID, "42", "")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(shopper.ID, 1000, "CNY")
	launch := ta.launch(channel, "42", "")
	page := ta.get(path + "?launch=" + url.QueryEscape(launch))
	html := string(page.Body)
	if page.Status != http.StatusOK || !strings.Contains(html, "2 × Tea card") || !strings.Contains(html, "6.00 CNY") {
		t.Fatalf("till page: %d\n%s", page.Status, html)
	}
	key2 := regexp.MustCompile(`name="idempotency_key" value="([0-9a-f]+)"`).FindStringSubmatch(html)[1]
	buy := ta.postForm(path+"/buy", url.Values{"launch": {launch}, "idempotency_key": {key2}})
	if buy.Status != http.StatusSeeOther || !receiptPath.MatchString(buy.Header.Get("Location")) {
		t.Fatalf("buy: %d %s", buy.Status, buy.Body)
	}
	// A resubmission after a lost answer gets the receipt, although the code is used up now.
	resubmitted := ta.postForm(path+"/buy", url.Values{"launch": {launch}, "idempotency_key": {key2}})
	if resubmitted.Status != http.StatusSeeOther || resubmitted.Header.Get("Location") != buy.Header.Get("Location") {
		t.Fatalf("resubmitted buy: %d %s", resubmitted.Status, resubmitted.Body)
	}
	again := ta.get(path + "?launch=" + url.QueryEscape(launch))
	if again.Status != http.StatusConflict {
		t.Fatalf("a used till code must say so: %d", again.Status)
	}
	assertVerifyClean(t, ta)
}

// A shopper cannot hoard stock through reservations: open checkouts count
// toward the per-shopper limit of 2 like purchases do.
func TestReservationsCountTowardTheLimit(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	itemID, channel := shop.itemID, shop.channel
	shopperID := ta.call("POST", "/v1/channel/shoppers", channel.APIKey, "", map[string]any{"user_id": "hoarder"}).JSON(t)["id"].(string)
	open := func() apiResponse {
		return ta.call("POST", "/v1/channel/checkouts", channel.APIKey, "", map[string]any{
			"shopper_id": shopperID, "lines": []map[string]any{{"item_id": itemID, "quantity": 1}}})
	}
	for i := range 2 {
		if r := open(); r.Status != http.StatusCreated {
			t.Fatalf("checkout %d: %d %s", i, r.Status, r.Body)
		}
	}
	third := open()
	if third.Status != http.StatusConflict || third.JSON(t)["code"] != payments.CodeLimitReached {
		t.Fatalf("a third reservation: %d %s", third.Status, third.Body)
	}
	if stock := ta.count(`SELECT sum(quantity) FROM item_stock WHERE item_id = $1`, itemID); stock != 498 {
		t.Fatalf("stock %d, want 498", stock)
	}
}

// verify's cross-checks see what the ledger alone cannot: an order pointing at
// another transaction, and a coupon whose event never reached the outbox.
func TestVerifyCrossChecksCatchBrokenRecords(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(10)
	orderID, _ := ta.buy(shop, "42", map[string]int{shop.itemID: 1})
	assertVerifyClean(t, ta)

	var fundingTx int64
	if err := ta.db.Get(&fundingTx, `SELECT min(id) FROM ledger_transactions`); err != nil {
		t.Fatal(err)
	}
	for _, corrupt := range []string{
		`UPDATE orders SET ledger_transaction_id = ` + fmt.Sprint(fundingTx) + ` WHERE id = '` + orderID + `'`,
		`DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM webhook_events WHERE type = 'coupon.issued')`,
		`DELETE FROM webhook_events WHERE type = 'coupon.issued'`,
	} {
		if _, err := ta.db.Exec(corrupt); err != nil {
			t.Fatalf("%s: %v", corrupt, err)
		}
	}
	report, err := ledger.RunAudit(context.Background(), ta.db, append(ledger.Checks(), crossChecks()...)...)
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]int64{}
	for _, r := range report.Results {
		failed[r.Name] = r.ViolationsTotal
	}
	if failed["paid_orders_in_ledger"] != 1 || failed["coupons_have_events"] != 1 || report.OK() {
		t.Fatalf("violations found: %v", failed)
	}
}
