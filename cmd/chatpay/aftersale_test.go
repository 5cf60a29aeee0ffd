package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/sandbox"
)

// shanghai returns the instant of a wall-clock time in Asia/Shanghai.
func shanghai(t *testing.T, year int, month time.Month, day, hour, minute, second int) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return time.Date(year, month, day, hour, minute, second, 0, loc)
}

// teaShop is a merchant selling the tea card, with a channel for its shoppers.
type teaShop struct {
	merchant catalog.Merchant
	key      string
	itemID   string
	channel  payments.CreatedChannel
}

// teaShop opens a tea-card shop with stock units of the card.
func (ta *testApp) teaShop(stock int) teaShop {
	ta.t.Helper()
	m, key := ta.merchant("McDonald's", "Asia/Shanghai")
	created := ta.call("POST", "/v1/items", key, "", teaCard(stock))
	if created.Status != http.StatusCreated {
		ta.t.Fatalf("create tea card: %d %s", created.Status, created.Body)
	}
	return teaShop{merchant: m, key: key, itemID: created.JSON(ta.t)["id"].(string), channel: ta.channel()}
}

// buy makes a shopper of the channel buy quantity units of each item through
// the channel API (funded first) and returns the order id and its coupons.
func (ta *testApp) buy(shop teaShop, userID string, items map[string]int) (string, []payments.Coupon) {
	ta.t.Helper()
	shopper := ta.call("POST", "/v1/channel/shoppers", shop.channel.APIKey, "", map[string]any{"user_id": userID, "name": "Shopper " + userID})
	if shopper.Status != http.StatusOK {
		ta.t.Fatalf("shopper: %d %s", shopper.Status, shopper.Body)
	}
	shopperID := shopper.JSON(ta.t)["id"].(string)
	ta.fund(shopperID, 10_000, "CNY")
	var lines []map[string]any
	for itemID, quantity := range items {
		lines = append(lines, map[string]any{"item_id": itemID, "quantity": quantity})
	}
	checkout := ta.call("POST", "/v1/channel/checkouts", shop.channel.APIKey, "", map[string]any{
		"shopper_id": shopperID, "chat_id": "chat-" + userID, "lines": lines,
	})
	if checkout.Status != http.StatusCreated {
		ta.t.Fatalf("checkout: %d %s", checkout.Status, checkout.Body)
	}
	confirm := ta.call("POST", "/v1/channel/checkouts/"+checkout.JSON(ta.t)["id"].(string)+"/confirm", shop.channel.APIKey, "", nil)
	if confirm.Status != http.StatusOK {
		ta.t.Fatalf("confirm: %d %s", confirm.Status, confirm.Body)
	}
	orderID := confirm.JSON(ta.t)["order"].(map[string]any)["id"].(string)
	coupons, err := ta.app.payments.OrderCoupons(context.Background(), orderID)
	if err != nil {
		ta.t.Fatal(err)
	}
	return orderID, coupons
}

// redeem scans a coupon at the till with a basket (nil: the voucher alone).
func (ta *testApp) redeem(key, idemKey, code string, lines []map[string]any) apiResponse {
	ta.t.Helper()
	body := map[string]any{"code": code}
	if lines != nil {
		body["lines"] = lines
	}
	return ta.call("POST", "/v1/redemptions", key, idemKey, body)
}

func (ta *testApp) balance(ref ledger.AccountRef) int64 {
	ta.t.Helper()
	b, err := ta.app.ledger.Balance(context.Background(), ta.db, ref, mustCNY())
	if err != nil {
		ta.t.Fatal(err)
	}
	return b
}

func line(sku, category, amount string) map[string]any {
	return map[string]any{"sku": sku, "category": category, "amount": map[string]string{"amount": amount, "currency": "CNY"}}
}

func wantProblem(t *testing.T, r apiResponse, status int, code string) map[string]any {
	t.Helper()
	doc := r.JSON(t)
	if r.Status != status || doc["code"] != code {
		t.Fatalf("want %d %s, got %d %s", status, code, r.Status, r.Body)
	}
	return doc
}

// Story step 6 of DESIGN.md through the till API, with the ledger checked.
func TestRedeemTeaCardTable(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	_, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 1})
	coupon := coupons[0]
	merchantID := shop.merchant.ID
	if got := ta.balance(ledger.MerchantDeferred(merchantID)); got != 300 {
		t.Fatalf("deferred after the sale %d, want 300", got)
	}
	feesBefore := ta.balance(ledger.PlatformFees())

	t.Run("ErrOutsideTimeWindowAt1359", func(t *testing.T) {
		ta.clock.Set(shanghai(t, 2026, 11, 21, 13, 59, 0))
		r := ta.redeem(shop.key, "scan-1359", payments.RedemptionQRContent(coupon, ta.clock.Now()), nil)
		doc := wantProblem(t, r, http.StatusUnprocessableEntity, "outside_time_window")
		if want := shanghai(t, 2026, 11, 21, 14, 0, 0).UTC().Format(time.RFC3339); doc["next_valid_at"] != want {
			t.Fatalf("next_valid_at %v, want %s", doc["next_valid_at"], want)
		}
	})
	t.Run("ErrCategoryExcludedWithCoffee", func(t *testing.T) {
		ta.clock.Set(shanghai(t, 2026, 11, 21, 14, 30, 0))
		r := ta.redeem(shop.key, "scan-coffee", payments.RedemptionQRContent(coupon, ta.clock.Now()),
			[]map[string]any{line("TEA-CARD", "tea", "3.00"), line("LATTE", "coffee", "12.00")})
		wantProblem(t, r, http.StatusUnprocessableEntity, "category_excluded")
	})
	if got := ta.balance(ledger.MerchantDeferred(merchantID)); got != 300 {
		t.Fatalf("refusals moved money: deferred %d", got)
	}
	t.Run("OKTeaAt1430", func(t *testing.T) {
		r := ta.redeem(shop.key, "scan-tea", payments.RedemptionQRContent(coupon, ta.clock.Now()),
			[]map[string]any{line("TEA-CARD", "tea", "3.00")})
		if r.Status != http.StatusOK {
			t.Fatalf("redeem: %d %s", r.Status, r.Body)
		}
		doc := r.JSON(t)
		if doc["coupon_status"] != payments.CouponRedeemed || doc["fee"].(map[string]any)["amount"] != "0.06" ||
			doc["net"].(map[string]any)["amount"] != "2.94" {
			t.Fatalf("redemption %s", r.Body)
		}
		// The redemption's own ledger transaction: D deferred 300, C available 294, C fees 6.
		var postings []struct {
			Code   string `db:"code"`
			Amount int64  `db:"amount"`
		}
		err := ta.db.Select(&postings, `SELECT a.code, p.amount FROM ledger_postings p
			JOIN ledger_transactions t ON t.id = p.transaction_id JOIN ledger_accounts a ON a.id = p.account_id
			WHERE t.idempotency_key = $1 ORDER BY p.amount`, "coupon:"+coupon.ID+":redeem:1")
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("[{merchant:%[1]s:deferred -300} {platform:fees 6} {merchant:%[1]s:available 294}]", merchantID)
		if got := fmt.Sprint(postings); got != want {
			t.Fatalf("postings %s\nwant %s", got, want)
		}
		if d, a, f := ta.balance(ledger.MerchantDeferred(merchantID)), ta.balance(ledger.MerchantAvailable(merchantID)),
			ta.balance(ledger.PlatformFees())-feesBefore; d != 0 || a != 294 || f != 6 {
			t.Fatalf("balances deferred %d available %d fees +%d", d, a, f)
		}
		if n := ta.count(`SELECT count(*) FROM webhook_events WHERE type = 'coupon.redeemed'`); n != 1 {
			t.Fatalf("%d coupon.redeemed events", n)
		}
		replay := ta.redeem(shop.key, "scan-tea", payments.RedemptionQRContent(coupon, ta.clock.Now()),
			[]map[string]any{line("TEA-CARD", "tea", "3.00")})
		if replay.Status != http.StatusOK || !bytes.Equal(replay.Body, r.Body) {
			t.Fatalf("replay: %d %s", replay.Status, replay.Body)
		}
	})
	t.Run("ErrAlreadyRedeemedOnSecondScan", func(t *testing.T) {
		r := ta.redeem(shop.key, "scan-again", payments.RedemptionQRContent(coupon, ta.clock.Now()), nil)
		wantProblem(t, r, http.StatusUnprocessableEntity, "already_redeemed")
	})
	t.Run("OKBalancesAndStatement", func(t *testing.T) {
		b := ta.call("GET", "/v1/balances", shop.key, "", nil)
		doc := b.JSON(t)
		amountOf := func(name string) any { return doc[name].(map[string]any)["amount"] }
		if b.Status != http.StatusOK || amountOf("available") != "2.94" || amountOf("deferred") != "0.00" ||
			amountOf("breakage") != "0.00" || amountOf("fees_paid") != "0.06" {
			t.Fatalf("balances: %d %s", b.Status, b.Body)
		}
		first := ta.call("GET", "/v1/ledger/accounts/deferred/statement?currency=CNY&limit=1", shop.key, "", nil)
		page := first.JSON(t)
		lines := page["data"].([]any)
		if first.Status != http.StatusOK || len(lines) != 1 || lines[0].(map[string]any)["amount"] != "-3.00" || page["next_cursor"] == nil {
			t.Fatalf("statement page 1: %d %s", first.Status, first.Body)
		}
		second := ta.call("GET", "/v1/ledger/accounts/deferred/statement?currency=CNY&limit=1&cursor="+page["next_cursor"].(string), shop.key, "", nil)
		page = second.JSON(t)
		lines = page["data"].([]any)
		if len(lines) != 1 || lines[0].(map[string]any)["amount"] != "3.00" || page["next_cursor"] != nil {
			t.Fatalf("statement page 2: %s", second.Body)
		}
	})
	assertVerifyClean(t, ta)
}

// Twenty tills scan one single-use coupon at once: the row lock lets one win.
func TestRedeemConcurrentSingleUse(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	_, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 1})
	content := payments.RedemptionQRContent(coupons[0], ta.clock.Now())
	const scans = 20
	results := make([]apiResponse, scans)
	var wg sync.WaitGroup
	for i := range scans {
		wg.Go(func() { results[i] = ta.redeem(shop.key, fmt.Sprintf("till-%d", i), content, nil) })
	}
	wg.Wait()
	ok := 0
	for _, r := range results {
		switch {
		case r.Status == http.StatusOK:
			ok++
		case r.Status == http.StatusUnprocessableEntity && r.JSON(t)["code"] == "already_redeemed":
		default:
			t.Fatalf("unexpected %d %s", r.Status, r.Body)
		}
	}
	if ok != 1 {
		t.Fatalf("%d successes, want exactly 1", ok)
	}
	if n := ta.count(`SELECT count(*) FROM redemptions`); n != 1 {
		t.Fatalf("%d redemptions", n)
	}
	if got := ta.balance(ledger.MerchantAvailable(shop.merchant.ID)); got != 294 {
		t.Fatalf("available %d, want 294", got)
	}
	assertVerifyClean(t, ta)
}

// The receipt's QR changes every 30 s; a screenshot two steps old is refused,
// and the printed code alone works only where the merchant allows typing it.
func TestRedeemTOTPToken(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	_, first := ta.buy(shop, "42", map[string]int{shop.itemID: 2})
	_, second := ta.buy(shop, "43", map[string]int{shop.itemID: 2})
	now := ta.clock.Now()
	step := payments.RedemptionTokenStep

	t.Run("ErrTwoStepsOld", func(t *testing.T) {
		r := ta.redeem(shop.key, "old", payments.RedemptionQRContent(first[0], now.Add(-2*step)), nil)
		wantProblem(t, r, http.StatusUnprocessableEntity, payments.CodeTokenInvalid)
	})
	t.Run("ErrForged", func(t *testing.T) {
		r := ta.redeem(shop.key, "forged", payments.RedemptionQRPrefix+first[0].Code+":12345678", nil)
		wantProblem(t, r, http.StatusUnprocessableEntity, payments.CodeTokenInvalid)
	})
	for i, tc := range []struct {
		name   string
		coupon payments.Coupon
		at     time.Time
	}{
		{"OKNow", first[0], now},
		{"OKOneStepOld", first[1], now.Add(-step)},
		{"OKOneStepAhead", second[0], now.Add(step)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ta.redeem(shop.key, fmt.Sprintf("token-%d", i), payments.RedemptionQRContent(tc.coupon, tc.at), nil)
			if r.Status != http.StatusOK {
				t.Fatalf("redeem: %d %s", r.Status, r.Body)
			}
		})
	}
	disallow, allow := false, true
	ctx := context.Background()
	t.Run("ErrTypedCodeDisallowed", func(t *testing.T) {
		if _, err := ta.app.catalog.UpdateMerchant(ctx, shop.merchant.ID, catalog.MerchantPatch{AllowTypedCodes: &disallow}); err != nil {
			t.Fatal(err)
		}
		r := ta.redeem(shop.key, "typed-1", second[1].Code, nil)
		wantProblem(t, r, http.StatusUnprocessableEntity, payments.CodeTypedCodesNotAllowed)
	})
	t.Run("OKTypedCodeAllowed", func(t *testing.T) {
		if _, err := ta.app.catalog.UpdateMerchant(ctx, shop.merchant.ID, catalog.MerchantPatch{AllowTypedCodes: &allow}); err != nil {
			t.Fatal(err)
		}
		// Cashiers type in lower case with spaces; the code is normalised.
		typed := fmt.Sprintf("%s %s", second[1].Code[:4], second[1].Code[5:])
		r := ta.redeem(shop.key, "typed-2", typed, nil)
		if r.Status != http.StatusOK || r.JSON(t)["typed"] != true {
			t.Fatalf("typed: %d %s", r.Status, r.Body)
		}
	})
	if n := ta.count(`SELECT count(*) FROM redemptions`); n != 4 {
		t.Fatalf("%d redemptions, want 4", n)
	}
	assertVerifyClean(t, ta)
}

// Every provider outcome, faults included, ends with the top-up credited
// exactly once or not at all, and the sandbox's records agree with the
// ledger's, after the request and after reconciliation.
func TestTopUpProviderFaults(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	shopper, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, shop.channel.Channel.ID, "42", "Li Wei")
	if err != nil {
		t.Fatal(err)
	}
	topUp := func(key, card string) apiResponse {
		return ta.call("POST", "/v1/channel/shoppers/"+shopper.ID+"/topups", shop.channel.APIKey, key,
			map[string]any{"amount": map[string]string{"amount": "50.00", "currency": "CNY"}, "card": card})
	}
	cases := []struct {
		name, card string
		status     int
		want       string // top-up status, or the problem code
	}{
		{"OKCaptured", "4242 4242 4242 4242", http.StatusCreated, payments.TopUpSucceeded},
		{"ErrDeclined", sandbox.CardDeclined, http.StatusUnprocessableEntity, payments.CodeCardDeclined},
		{"ErrInsufficientFunds", sandbox.CardInsufficient, http.StatusUnprocessableEntity, payments.CodeCardDeclined},
		// Past the client's timeout: the lookup finds the capture at once.
		{"OKSlowSettledByLookup", sandbox.CardSlow, http.StatusCreated, payments.TopUpSucceeded},
		// A 500 after the capture: the lookup finds it too.
		{"OKServerErrorSettledByLookup", sandbox.CardServerError, http.StatusCreated, payments.TopUpSucceeded},
		// A reset before anything was recorded: unknown until reconciliation.
		{"UnknownAfterReset", sandbox.CardReset, http.StatusAccepted, payments.TopUpUnknown},
	}
	bodies := map[string][]byte{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := topUp("key-"+tc.name, tc.card)
			doc := r.JSON(t)
			got, _ := doc["status"].(string)
			if code, ok := doc["code"].(string); ok {
				got = code
			}
			if r.Status != tc.status || got != tc.want {
				t.Fatalf("want %d %s, got %d %s", tc.status, tc.want, r.Status, r.Body)
			}
			bodies[tc.name] = r.Body
		})
	}
	t.Run("OKReplayChargesOnce", func(t *testing.T) {
		r := topUp("key-OKCaptured", "4242 4242 4242 4242")
		if r.Status != http.StatusCreated || !bytes.Equal(r.Body, bodies["OKCaptured"]) {
			t.Fatalf("replay: %d %s\nfirst: %s", r.Status, r.Body, bodies["OKCaptured"])
		}
		if doc := r.JSON(t); doc["balance"].(map[string]any)["amount"] != "50.00" {
			t.Fatalf("balance after the first top-up: %s", r.Body)
		}
	})
	t.Run("ErrKeyReusedForOtherCard", func(t *testing.T) {
		wantProblem(t, topUp("key-OKCaptured", sandbox.CardDeclined), http.StatusUnprocessableEntity, "idempotency_key_reused")
	})
	t.Run("ErrNoKey", func(t *testing.T) {
		wantProblem(t, topUp("", sandbox.CardSuccess), http.StatusBadRequest, "idempotency_key_required")
	})
	// The provider cannot answer lookups either: the request ends unknown.
	ta.sandbox.SetLookupsDown(true)
	t.Run("UnknownServerErrorWhileLookupsDown", func(t *testing.T) {
		r := topUp("key-lookups-down", sandbox.CardServerError)
		if r.Status != http.StatusAccepted || r.JSON(t)["status"] != payments.TopUpUnknown {
			t.Fatalf("want 202 unknown, got %d %s", r.Status, r.Body)
		}
	})
	ta.sandbox.SetLookupsDown(false)
	if n := ta.count(`SELECT count(*) FROM topups WHERE status = 'unknown'`); n != 2 {
		t.Fatalf("%d unknown top-ups before reconciliation, want 2", n)
	}

	// Reconciliation, run once as `chatpay reconcile` past the abandon time.
	later := storyStart.Add(payments.TopUpAbandonAfter + time.Minute)
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"reconcile", "--database-url", ta.dsn, "--dev-allow-unsafe-durability",
		"--provider-url", ta.providerURL, "--now", later.Format(time.RFC3339)}, &out, &errOut, func(string) string { return "" })
	if err != nil {
		t.Fatalf("reconcile: %v\n%s", err, errOut.String())
	}
	if want := "checked 2 top-ups: 1 succeeded, 1 failed, 0 still unknown\n"; out.String() != want {
		t.Fatalf("reconcile said %q, want %q", out.String(), want)
	}
	if n := ta.count(`SELECT count(*) FROM topups WHERE status IN ('pending', 'unknown')`); n != 0 {
		t.Fatalf("%d top-ups still unsettled", n)
	}

	// Both sides agree: a top-up is credited once exactly when the provider
	// captured its charge, and the clearing account mirrors the captures.
	captured := map[string]int64{}
	for _, c := range ta.sandbox.Charges() {
		if c.Status == sandbox.StatusCaptured {
			captured[c.Key] += c.AmountMinor
		}
	}
	var topups []struct {
		ID          string `db:"id"`
		ProviderKey string `db:"provider_key"`
		Status      string `db:"status"`
		Amount      int64  `db:"amount_minor"`
	}
	if err := ta.db.Select(&topups, `SELECT id, provider_key, status, amount_minor FROM topups`); err != nil {
		t.Fatal(err)
	}
	var credited, capturedTotal int64
	for _, tp := range topups {
		posts := ta.count(`SELECT count(*) FROM ledger_transactions WHERE idempotency_key = $1`, "topup:"+tp.ID)
		wantPosts := 0
		if tp.Status == payments.TopUpSucceeded {
			wantPosts = 1
			credited += tp.Amount
		}
		if posts != wantPosts || (captured[tp.ProviderKey] == tp.Amount) != (tp.Status == payments.TopUpSucceeded) {
			t.Errorf("top-up %s %s: %d ledger posts, provider captured %d", tp.ID, tp.Status, posts, captured[tp.ProviderKey])
		}
	}
	for _, amount := range captured {
		capturedTotal += amount
	}
	if want := int64(4 * 5000); credited != want || capturedTotal != want {
		t.Fatalf("credited %d, provider captured %d, want %d each", credited, capturedTotal, want)
	}
	if wallet, clearing := ta.balance(ledger.ShopperWallet(shopper.ID)), ta.balance(ledger.ProviderClearing("sandbox")); wallet != credited || clearing != -capturedTotal {
		t.Fatalf("wallet %d, clearing %d", wallet, clearing)
	}
	if n := ta.count(`SELECT count(*) FROM webhook_events WHERE type = 'wallet.topped_up'`); n != 4 {
		t.Fatalf("%d wallet.topped_up events, want 4", n)
	}
	assertVerifyClean(t, ta)
}

// Refunds: a redeemed voucher is not refundable; products are refunded in
// parts with the fee returned in proportion, never beyond what was paid;
// an unredeemed voucher goes back to the wallet whole; replays answer alike.
func TestRefund(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	milkTea := ta.call("POST", "/v1/items", shop.key, "", map[string]any{
		"sku": "MILK-TEA", "title": "Milk tea", "category": "tea", "kind": "product",
		"price": map[string]string{"amount": "10.00", "currency": "CNY"},
	})
	if milkTea.Status != http.StatusCreated {
		t.Fatalf("create milk tea: %d %s", milkTea.Status, milkTea.Body)
	}
	orderID, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 1, milkTea.JSON(t)["id"].(string): 1})
	merchantID := shop.merchant.ID
	refund := func(key string, body any) apiResponse {
		return ta.call("POST", "/v1/orders/"+orderID+"/refunds", shop.key, key, body)
	}
	if r := ta.redeem(shop.key, "scan", payments.RedemptionQRContent(coupons[0], ta.clock.Now()), nil); r.Status != http.StatusOK {
		t.Fatalf("redeem: %d %s", r.Status, r.Body)
	}
	availableBefore, feesBefore := ta.balance(ledger.MerchantAvailable(merchantID)), ta.balance(ledger.PlatformFees())

	t.Run("ErrRedeemedVoucher", func(t *testing.T) {
		wantProblem(t, refund("rf-voucher", map[string]any{"coupon_id": coupons[0].ID}), http.StatusUnprocessableEntity, payments.CodeCouponAlreadyRedeemed)
	})
	var partial apiResponse
	t.Run("OKPartial", func(t *testing.T) {
		partial = refund("rf-1", map[string]any{"amount": map[string]string{"amount": "4.00", "currency": "CNY"}})
		doc := partial.JSON(t)
		// 4.00 of products sold for 10.00 with a 0.20 fee: 0.08 of fee back.
		if partial.Status != http.StatusCreated || doc["fee_returned"].(map[string]any)["amount"] != "0.08" ||
			doc["order"].(map[string]any)["status"] != payments.OrderPartiallyRefunded {
			t.Fatalf("partial: %d %s", partial.Status, partial.Body)
		}
	})
	t.Run("OKReplaySameAnswer", func(t *testing.T) {
		again := refund("rf-1", map[string]any{"amount": map[string]string{"amount": "4.00", "currency": "CNY"}})
		if again.Status != http.StatusCreated || !bytes.Equal(again.Body, partial.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %s", again.Status, again.Body)
		}
	})
	t.Run("ErrExceedsTotal", func(t *testing.T) {
		wantProblem(t, refund("rf-2", map[string]any{"amount": map[string]string{"amount": "10.00", "currency": "CNY"}}),
			http.StatusUnprocessableEntity, payments.CodeRefundExceedsPaid)
	})
	t.Run("ErrExceedsProducts", func(t *testing.T) {
		wantProblem(t, refund("rf-3", map[string]any{"amount": map[string]string{"amount": "7.00", "currency": "CNY"}}),
			http.StatusUnprocessableEntity, payments.CodeRefundExceedsRefundable)
	})
	t.Run("OKRestReturnsTheWholeFee", func(t *testing.T) {
		r := refund("rf-4", nil)
		if r.Status != http.StatusCreated || r.JSON(t)["amount"].(map[string]any)["amount"] != "6.00" {
			t.Fatalf("rest: %d %s", r.Status, r.Body)
		}
		if got := feesBefore - ta.balance(ledger.PlatformFees()); got != 20 {
			t.Fatalf("fees returned %d, want the 20 taken", got)
		}
		if got := availableBefore - ta.balance(ledger.MerchantAvailable(merchantID)); got != 980 {
			t.Fatalf("available returned %d, want 980", got)
		}
		wantProblem(t, refund("rf-5", nil), http.StatusUnprocessableEntity, payments.CodeCouponAlreadyRedeemed)
	})
	t.Run("OKUnredeemedVoucherToWallet", func(t *testing.T) {
		voucherOrder, vouchers := ta.buy(shop, "43", map[string]int{shop.itemID: 1})
		deferred := ta.balance(ledger.MerchantDeferred(merchantID))
		r := ta.call("POST", "/v1/orders/"+voucherOrder+"/refunds", shop.key, "rf-v", map[string]any{"coupon_id": vouchers[0].ID})
		if r.Status != http.StatusCreated || r.JSON(t)["order"].(map[string]any)["status"] != payments.OrderRefunded {
			t.Fatalf("voucher refund: %d %s", r.Status, r.Body)
		}
		if got := deferred - ta.balance(ledger.MerchantDeferred(merchantID)); got != 300 {
			t.Fatalf("deferred returned %d, want 300", got)
		}
		scan := ta.redeem(shop.key, "scan-refunded", payments.RedemptionQRContent(vouchers[0], ta.clock.Now()), nil)
		wantProblem(t, scan, http.StatusUnprocessableEntity, payments.CodeCouponRefunded)
	})
	var refunded int64
	if err := ta.db.Get(&refunded, `SELECT refunded_minor FROM orders WHERE id = $1`, orderID); err != nil || refunded != 1000 {
		t.Fatalf("refunded_minor %d (%v), want 1000", refunded, err)
	}
	if n := ta.count(`SELECT count(*) FROM webhook_events WHERE type = 'order.refunded'`); n != 3 {
		t.Fatalf("%d order.refunded events, want 3", n)
	}
	assertVerifyClean(t, ta)
}

// Coupons bought at t0 with P3M are valid through the last day and expire at
// its end: `chatpay expire` a second before changes nothing, at the instant
// it books their whole price as breakage and queues coupon.expired.
func TestExpireCoupons(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	ta.buy(shop, "42", map[string]int{shop.itemID: 2})
	ta.buy(shop, "43", map[string]int{shop.itemID: 1})
	// t0 + P3M is 21 Feb 2027 14:30 in Shanghai; the coupon is valid all
	// that day, so it expires at the day's end.
	expiry := shanghai(t, 2027, 2, 22, 0, 0, 0)
	if n := ta.count(`SELECT count(*) FROM coupons WHERE valid_until = $1`, expiry); n != 3 {
		t.Fatalf("%d coupons expire at %s, want 3", n, expiry)
	}
	expire := func(at time.Time) string {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"expire", "--database-url", ta.dsn, "--dev-allow-unsafe-durability",
			"--now", at.Format(time.RFC3339)}, &out, &errOut, func(string) string { return "" })
		if err != nil {
			t.Fatalf("expire: %v\n%s", err, errOut.String())
		}
		return out.String()
	}
	if out := expire(expiry.Add(-time.Second)); out != "expired 0 coupons\n" {
		t.Fatalf("a second early: %q", out)
	}
	if n := ta.count(`SELECT count(*) FROM coupons WHERE status = 'active'`); n != 3 {
		t.Fatalf("%d active coupons a second before expiry, want 3", n)
	}
	if out := expire(expiry); out != "expired 3 coupons\n" {
		t.Fatalf("at expiry: %q", out)
	}
	if out := expire(expiry.Add(time.Hour)); out != "expired 0 coupons\n" {
		t.Fatalf("again: %q", out)
	}
	if b, d := ta.balance(ledger.MerchantBreakage(shop.merchant.ID)), ta.balance(ledger.MerchantDeferred(shop.merchant.ID)); b != 900 || d != 0 {
		t.Fatalf("breakage %d deferred %d, want 900 and 0", b, d)
	}
	if n := ta.count(`SELECT count(*) FROM webhook_events WHERE type = 'coupon.expired'`); n != 3 {
		t.Fatalf("%d coupon.expired events, want 3", n)
	}
	assertVerifyClean(t, ta)
}

// A shopper short of money tops up on the checkout page itself: a declined
// card says so and credits nothing; a good card credits exactly the missing
// amount once, even when the form is posted twice; then "Buy now" works.
func TestTopUpOnTheCheckoutPage(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	token := ta.call("POST", "/v1/qr-codes", shop.key, "", map[string]any{"item_id": shop.itemID, "placement": "counter"}).JSON(t)["url"].(string)
	path := token[strings.Index(token, "/q/"):]
	shopper, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, shop.channel.Channel.ID, "42", "")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(shopper.ID, 120, "CNY")
	launch := ta.launch(shop.channel, "42", "")

	page := string(ta.get(path + "?launch=" + url.QueryEscape(launch)).Body)
	for _, want := range []string{`data-code="insufficient_funds"`, `action="` + path + `/topup"`, `name="amount" value="1.80"`, `<label for="card">`} {
		if !strings.Contains(page, want) {
			t.Fatalf("short shopper's page lacks %q:\n%s", want, page)
		}
	}
	topUpKey := regexp.MustCompile(`action="[^"]*/topup"[\s\S]*?name="idempotency_key" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	form := func(card string) url.Values {
		return url.Values{"launch": {launch}, "idempotency_key": {topUpKey}, "amount": {"1.80"}, "currency": {"CNY"}, "card": {card}}
	}

	declined := ta.postForm(path+"/topup", url.Values{"launch": {launch}, "idempotency_key": {"declined-1"}, "amount": {"1.80"}, "currency": {"CNY"}, "card": {sandbox.CardDeclined}})
	if declined.Status != http.StatusUnprocessableEntity || !strings.Contains(string(declined.Body), "declined") {
		t.Fatalf("declined card: %d\n%s", declined.Status, declined.Body)
	}
	for range 2 { // the second post is a resubmission of the same form
		done := ta.postForm(path+"/topup", form(sandbox.CardSuccess))
		if done.Status != http.StatusOK || !strings.Contains(string(done.Body), "Topped up 1.80 CNY") || !strings.Contains(string(done.Body), `id="buy"`) {
			t.Fatalf("top-up: %d\n%s", done.Status, done.Body)
		}
	}
	if wallet := ta.balance(ledger.ShopperWallet(shopper.ID)); wallet != 300 {
		t.Fatalf("wallet %d after topping up 1.80 on 1.20, want 300", wallet)
	}
	buyKey := regexp.MustCompile(`name="idempotency_key" value="([0-9a-f]+)"`).FindStringSubmatch(string(ta.get(path + "?launch=" + url.QueryEscape(launch)).Body))[1]
	if buy := ta.postForm(path+"/buy", url.Values{"launch": {launch}, "idempotency_key": {buyKey}}); buy.Status != http.StatusSeeOther {
		t.Fatalf("buy after top-up: %d %s", buy.Status, buy.Body)
	}
	assertVerifyClean(t, ta)
}
