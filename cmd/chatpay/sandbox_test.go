package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/chatpay/chatpay/internal/apifuzz"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments/sandbox"
)

// httpClient talks to one serve instance over HTTP, as an integrator would.
type httpClient struct {
	t    *testing.T
	base string
}

func (hc httpClient) do(method, path, bearer, idemKey string, body any) apiResponse {
	hc.t.Helper()
	_, resp, raw := sendJSON(hc.t, hc.base, method, path, bearer, idemKey, body)
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// must sends a request and fails the test unless the answer has status want.
func (hc httpClient) must(want int, method, path, bearer, idemKey string, body any) map[string]any {
	hc.t.Helper()
	r := hc.do(method, path, bearer, idemKey, body)
	if r.Status != want {
		hc.t.Fatalf("%s %s: %d %s, want %d", method, path, r.Status, r.Body, want)
	}
	return r.JSON(hc.t)
}

// runCLI runs a chatpay command in-process and returns its output.
func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, &out, &errOut, func(string) string { return "" }); err != nil {
		t.Fatalf("chatpay %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

var apiKeyLine = regexp.MustCompile(`api key: \S+ (\S+)`)

// sandboxShop sets up a merchant (the CLI, as onboarding does), a channel
// (the admin API) and the tea card on a running instance.
func sandboxShop(t *testing.T, hc httpClient, dsn string) (merchantKey, channelKey string) {
	t.Helper()
	out := runCLI(t, "merchant", "create", "--database-url", dsn, "--dev-allow-unsafe-durability",
		"--name", "McDonald's", "--time-zone", "Asia/Shanghai", "--currency", "CNY")
	m := apiKeyLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no api key in:\n%s", out)
	}
	merchantKey = m[1]
	// New merchants refuse typed codes; these tills type the printed code.
	hc.must(http.StatusOK, "PATCH", "/v1/merchant", merchantKey, "", map[string]any{"allow_typed_codes": true})
	ch := hc.must(http.StatusCreated, "POST", "/v1/admin/channels", testOperatorToken, "", map[string]any{"name": "Tea bot", "kind": "telegram"})
	return merchantKey, ch["api_key"].(string)
}

// The Done-when story of issue 15, through HTTP only against serve --sandbox.
func TestSandboxTeaCardStoryWithTestClock(t *testing.T) {
	began := time.Now()
	dsn := testdb.DSN(t)
	base, _ := serveInProcess(t, "--sandbox", "--database-url", dsn, "--dev-allow-unsafe-durability",
		"--webhooks-allow-loopback", "--webhooks-allow-http", "--operator-token", testOperatorToken)
	hc := httpClient{t: t, base: base}
	merchantKey, channelKey := sandboxShop(t, hc, dsn)
	if !strings.HasPrefix(merchantKey, "sk_test_") || !strings.HasPrefix(channelKey, "ck_test_") {
		t.Fatalf("sandbox keys %.12s… and %.12s…, want sk_test_ and ck_test_", merchantKey, channelKey)
	}
	card := teaCard(100)
	card["per_shopper_limit"] = 10
	itemID := hc.must(http.StatusCreated, "POST", "/v1/items", merchantKey, "", card)["id"].(string)
	hooks, receiverURL := startHookReceiver(t)
	hc.must(http.StatusCreated, "POST", "/v1/webhooks/endpoints", channelKey, "", map[string]any{"url": receiverURL})

	ten := shanghai(t, 2026, 11, 21, 10, 0, 0)
	clock := hc.must(http.StatusCreated, "POST", "/v1/test-clocks", merchantKey, "", map[string]any{"frozen_time": ten})
	clockID := clock["id"].(string)
	advance := func(to time.Time) map[string]any {
		t.Helper()
		return hc.must(http.StatusOK, "POST", "/v1/test-clocks/"+clockID+"/advance", merchantKey, "", map[string]any{"to": to})
	}

	shopperID := hc.must(http.StatusOK, "POST", "/v1/channel/shoppers", channelKey, "", map[string]any{"user_id": "42", "name": "Li"})["id"].(string)
	hc.must(http.StatusCreated, "POST", "/v1/channel/shoppers/"+shopperID+"/topups", channelKey, "topup-1",
		map[string]any{"amount": map[string]string{"amount": "30.00", "currency": "CNY"}, "card": sandbox.CardSuccess})
	buy := func() (orderID, code string) {
		t.Helper()
		co := hc.must(http.StatusCreated, "POST", "/v1/channel/checkouts", channelKey, "", map[string]any{
			"shopper_id": shopperID, "chat_id": "chat-42", "lines": []map[string]any{{"item_id": itemID, "quantity": 1}}})
		receipt := hc.must(http.StatusOK, "POST", "/v1/channel/checkouts/"+co["id"].(string)+"/confirm", channelKey, "", nil)
		return receipt["order"].(map[string]any)["id"].(string), receipt["coupons"].([]any)[0].(map[string]any)["code"].(string)
	}
	firstOrder, code := buy()
	paid := hooks.waitFor(t, "order.paid", orderPaidOf(firstOrder), 5*time.Second)
	if paid.Livemode || !paid.Timestamp.Equal(ten) {
		t.Fatalf("order.paid livemode=%v timestamp %s, want false and the clock's %s", paid.Livemode, paid.Timestamp, ten)
	}

	redeem := func(idemKey string, lines []map[string]any) apiResponse {
		body := map[string]any{"code": code}
		if lines != nil {
			body["lines"] = lines
		}
		return hc.do("POST", "/v1/redemptions", merchantKey, idemKey, body)
	}
	advance(shanghai(t, 2026, 11, 21, 13, 59, 0))
	doc := wantProblem(t, redeem("r-1359", nil), http.StatusUnprocessableEntity, "outside_time_window")
	if want := shanghai(t, 2026, 11, 21, 14, 0, 0).UTC().Format(time.RFC3339); doc["next_valid_at"] != want {
		t.Fatalf("next_valid_at %v, want %s", doc["next_valid_at"], want)
	}
	advance(shanghai(t, 2026, 11, 21, 14, 30, 0))
	wantProblem(t, redeem("r-coffee", []map[string]any{line("TEA-CARD", "tea", "3.00"), line("LATTE", "coffee", "12.00")}),
		http.StatusUnprocessableEntity, "category_excluded")
	if r := redeem("r-tea", []map[string]any{line("TEA-CARD", "tea", "3.00")}); r.Status != http.StatusOK {
		t.Fatalf("tea at 14:30: %d %s", r.Status, r.Body)
	}
	wantProblem(t, redeem("r-again", nil), http.StatusUnprocessableEntity, "already_redeemed")

	_, _ = buy() // another coupon, left to expire
	// A checkout the bot opened (stock reserved) and the shopper never paid.
	hc.must(http.StatusCreated, "POST", "/v1/channel/checkouts", channelKey, "", map[string]any{
		"shopper_id": shopperID, "chat_id": "chat-42", "lines": []map[string]any{{"item_id": itemID, "quantity": 1}}})
	stock := func() float64 {
		return hc.must(http.StatusOK, "GET", "/v1/items/"+itemID, merchantKey, "", nil)["stock"].(float64)
	}
	reserved := stock()
	later := shanghai(t, 2027, 2, 22, 14, 30, 0) // 3 months and 1 day after 14:30 on 21 Nov
	report := advance(later)
	if report["coupons_expired"] != float64(1) || report["checkouts_expired"] != float64(1) {
		t.Fatalf("advance report %v, want one coupon and one checkout expired", report)
	}
	if back := stock(); back != reserved+1 {
		t.Fatalf("stock %v after the checkout expired, want %v", back, reserved+1)
	}
	t.Logf("advance report: %v", report)
	if again := advance(later); again["coupons_expired"] != float64(1) || again["from"] != report["from"] {
		t.Fatalf("the same advance again: %v, want the first report %v", again, report)
	}
	if r := hc.do("POST", "/v1/test-clocks/"+clockID+"/advance", merchantKey, "", map[string]any{"to": ten}); r.Status != http.StatusConflict {
		t.Fatalf("advance back: %d %s", r.Status, r.Body)
	}
	expired := hooks.waitFor(t, "coupon.expired", nil, 5*time.Second)
	if expired.Livemode {
		t.Fatal("coupon.expired livemode=true on a sandbox")
	}
	balances := hc.must(http.StatusOK, "GET", "/v1/balances", merchantKey, "", nil)
	if got := balances["breakage"].(map[string]any)["amount"]; got != "3.00" {
		t.Fatalf("breakage %v, want 3.00: %v", got, balances)
	}
	// verify exits non-zero (runCLI fails the test) on any ledger violation.
	runCLI(t, "verify", "--database-url", dsn, "--dev-allow-unsafe-durability")

	bought := time.Now()
	next, _ := buy()
	arrived := hooks.waitFor(t, "order.paid", orderPaidOf(next), 5*time.Second)
	if took := arrived.At.Sub(bought); took > time.Second {
		t.Fatalf("the next order.paid of the chat took %s after the advance, want under a second", took)
	}
	t.Logf("story done in %s; order.paid after a 3-month advance delivered in %s",
		time.Since(began).Round(time.Millisecond), arrived.At.Sub(bought).Round(time.Millisecond))
}

// A live instance and a sandbox each refuse the other's keys, only the
// sandbox has test clocks, only the sandbox bands its pages, and neither
// starts on the other's database.
func TestSandboxAndLiveRefuseEachOther(t *testing.T) {
	liveDSN, sandboxDSN := testdb.DSN(t), testdb.DSN(t)
	liveBase, _ := serveInProcess(t, "--database-url", liveDSN, "--dev-allow-unsafe-durability", "--operator-token", testOperatorToken)
	sandboxBase, _ := serveInProcess(t, "--sandbox", "--database-url", sandboxDSN, "--dev-allow-unsafe-durability", "--operator-token", testOperatorToken)
	live, test := httpClient{t: t, base: liveBase}, httpClient{t: t, base: sandboxBase}
	liveKey, liveChannelKey := sandboxShop(t, live, liveDSN)
	testKey, testChannelKey := sandboxShop(t, test, sandboxDSN)
	if strings.HasPrefix(liveKey, "sk_test_") || !strings.HasPrefix(liveKey, "sk_") || strings.HasPrefix(liveChannelKey, "ck_test_") {
		t.Fatalf("live keys %.12s… %.12s…", liveKey, liveChannelKey)
	}
	clockBody := map[string]any{"frozen_time": time.Now().UTC()}

	t.Run("LiveRefusesTestKeys", func(t *testing.T) {
		wantProblem(t, live.do("GET", "/v1/items", testKey, "", nil), http.StatusUnauthorized, "test_key_in_live_mode")
		wantProblem(t, live.do("POST", "/v1/channel/shoppers", testChannelKey, "", map[string]any{"user_id": "1", "name": "A"}),
			http.StatusUnauthorized, "test_key_in_live_mode")
	})
	t.Run("LiveHasNoTestClocks", func(t *testing.T) {
		if r := live.do("POST", "/v1/test-clocks", liveKey, "", clockBody); r.Status != http.StatusNotFound {
			t.Fatalf("POST /v1/test-clocks on a live instance: %d %s", r.Status, r.Body)
		}
		if r := live.do("POST", "/v1/test-clocks/clk_x/advance", liveKey, "", map[string]any{"to": time.Now()}); r.Status != http.StatusNotFound {
			t.Fatalf("advance on a live instance: %d %s", r.Status, r.Body)
		}
	})
	t.Run("SandboxRefusesLiveKeys", func(t *testing.T) {
		wantProblem(t, test.do("GET", "/v1/items", liveKey, "", nil), http.StatusUnauthorized, "live_key_in_test_mode")
		wantProblem(t, test.do("POST", "/v1/test-clocks", liveKey, "", clockBody), http.StatusUnauthorized, "live_key_in_test_mode")
		wantProblem(t, test.do("POST", "/v1/channel/shoppers", liveChannelKey, "", map[string]any{"user_id": "1", "name": "A"}),
			http.StatusUnauthorized, "live_key_in_test_mode")
	})
	t.Run("SandboxHasTestClocks", func(t *testing.T) {
		test.must(http.StatusCreated, "POST", "/v1/test-clocks", testKey, "", clockBody)
		wantProblem(t, test.do("POST", "/v1/test-clocks", testKey, "", clockBody), http.StatusConflict, "test_clock_exists")
	})
	t.Run("OnlyTheSandboxShowsTheBand", func(t *testing.T) {
		for _, path := range []string{"/dashboard/login", "/q/aaaaaaaaaaaaaaaaaaaaaaaaaa"} {
			sandboxPage, livePage := test.do("GET", path, "", "", nil), live.do("GET", path, "", "", nil)
			if !bytes.Contains(sandboxPage.Body, []byte("Test mode")) || !strings.HasPrefix(sandboxPage.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("sandbox %s (%d) has no Test mode band:\n%.400s", path, sandboxPage.Status, sandboxPage.Body)
			}
			if bytes.Contains(livePage.Body, []byte("Test mode")) || livePage.Status != sandboxPage.Status {
				t.Fatalf("live %s: %d (sandbox %d), band present %v", path, livePage.Status, sandboxPage.Status, bytes.Contains(livePage.Body, []byte("Test mode")))
			}
		}
	})
	t.Run("NeitherStartsOnTheOthersDatabase", func(t *testing.T) {
		for _, c := range []struct{ args []string }{
			{[]string{"serve", "--sandbox", "--database-url", liveDSN}},
			{[]string{"serve", "--database-url", sandboxDSN}},
		} {
			var out bytes.Buffer
			args := append(c.args, "--dev-allow-unsafe-durability", "--listen", freeAddr(t))
			err := run(context.Background(), args, &out, &out, func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), "instance mode mismatch") {
				t.Fatalf("%v: want a mode mismatch, got %v\n%s", c.args, err, out.String())
			}
		}
	})
}

// Tills and CI jobs retry: concurrent advances of one clock to the same
// instant run the expiry once and all answer the same report.
func TestConcurrentAdvancesRunOnce(t *testing.T) {
	ta := startTestAppWith(t, storyStart, func(cfg *appConfig) { cfg.Sandbox = true })
	shop := ta.teaShop(100)
	clock := ta.call("POST", "/v1/test-clocks", shop.key, "", map[string]any{"frozen_time": storyStart})
	if clock.Status != http.StatusCreated {
		t.Fatalf("clock: %d %s", clock.Status, clock.Body)
	}
	ta.buy(shop, "42", map[string]int{shop.itemID: 1})
	to := storyStart.AddDate(0, 3, 1)
	const advancers = 8
	reports := make([]apiResponse, advancers)
	var wg sync.WaitGroup
	for i := range advancers {
		wg.Go(func() {
			reports[i] = ta.call("POST", "/v1/test-clocks/"+clock.JSON(t)["id"].(string)+"/advance", shop.key, "", map[string]any{"to": to})
		})
	}
	wg.Wait()
	for i, r := range reports {
		if r.Status != http.StatusOK || !bytes.Equal(r.Body, reports[0].Body) {
			t.Fatalf("advance %d: %d %s, want the same report as %s", i, r.Status, r.Body, reports[0].Body)
		}
	}
	if n := ta.count(`SELECT count(*) FROM webhook_events WHERE type = 'coupon.expired'`); n != 1 {
		t.Fatalf("%d coupon.expired events, want 1", n)
	}
	if b := ta.balance(ledger.MerchantBreakage(shop.merchant.ID)); b != 300 {
		t.Fatalf("breakage %d, want 300", b)
	}
	assertVerifyClean(t, ta)
}

// A top-up whose outcome is unknown (the connection was reset) settles when
// a test clock moves past the abandon time, as the reconciliation job would
// settle it in real time.
func TestAdvanceSettlesUnknownTopUps(t *testing.T) {
	ta := startTestAppWith(t, storyStart, func(cfg *appConfig) { cfg.Sandbox = true })
	shop := ta.teaShop(10)
	clock := ta.call("POST", "/v1/test-clocks", shop.key, "", map[string]any{"frozen_time": storyStart})
	if clock.Status != http.StatusCreated {
		t.Fatalf("clock: %d %s", clock.Status, clock.Body)
	}
	shopper := ta.call("POST", "/v1/channel/shoppers", shop.channel.APIKey, "", map[string]any{"user_id": "7", "name": "Wang"})
	shopperID := shopper.JSON(t)["id"].(string)
	topUp := ta.call("POST", "/v1/channel/shoppers/"+shopperID+"/topups", shop.channel.APIKey, "reset-1",
		map[string]any{"amount": map[string]string{"amount": "50.00", "currency": "CNY"}, "card": sandbox.CardReset})
	if topUp.Status != http.StatusAccepted || topUp.JSON(t)["status"] != "unknown" {
		t.Fatalf("top-up with the reset card: %d %s", topUp.Status, topUp.Body)
	}
	report := ta.call("POST", "/v1/test-clocks/"+clock.JSON(t)["id"].(string)+"/advance", shop.key, "",
		map[string]any{"to": storyStart.Add(time.Hour)})
	if report.Status != http.StatusOK || report.JSON(t)["top_ups_settled"] != float64(1) {
		t.Fatalf("advance: %d %s, want one top-up settled", report.Status, report.Body)
	}
	got := ta.call("GET", "/v1/channel/shoppers/"+shopperID+"/topups/"+topUp.JSON(t)["id"].(string), shop.channel.APIKey, "", nil)
	if got.JSON(t)["status"] != "failed" {
		t.Fatalf("the reset top-up after the advance: %s, want failed", got.Body)
	}
	assertVerifyClean(t, ta)
}

// chat-sim, the reference messenger backend, works against a sandbox as it
// is: it verifies the signature (made at the real time) and prints the
// message of an event stamped at the test clock's time.
func TestChatSimAgainstSandbox(t *testing.T) {
	dsn := testdb.DSN(t)
	base, _ := serveInProcess(t, "--sandbox", "--database-url", dsn, "--dev-allow-unsafe-durability",
		"--webhooks-allow-loopback", "--webhooks-allow-http", "--operator-token", testOperatorToken)
	hc := httpClient{t: t, base: base}
	merchantKey, channelKey := sandboxShop(t, hc, dsn)
	itemID := hc.must(http.StatusCreated, "POST", "/v1/items", merchantKey, "", teaCard(10))["id"].(string)
	hc.must(http.StatusCreated, "POST", "/v1/test-clocks", merchantKey, "", map[string]any{"frozen_time": shanghai(t, 2026, 11, 21, 10, 0, 0)})

	simAddr := freeAddr(t)
	endpoint := hc.must(http.StatusCreated, "POST", "/v1/webhooks/endpoints", channelKey, "", map[string]any{"url": "http://" + simAddr + "/"})
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"chat-sim", "--listen", simAddr, "--secret", endpoint["secret"].(string)}, &stdout, &stderr, func(string) string { return "" })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("chat-sim: %v", err)
		}
	})
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10s; chat-sim said:\n%s\n%s", what, stdout.String(), stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUntil("chat-sim", func() bool { return strings.Contains(stdout.String(), "listening") })

	shopperID := hc.must(http.StatusOK, "POST", "/v1/channel/shoppers", channelKey, "", map[string]any{"user_id": "42", "name": "Li"})["id"].(string)
	hc.must(http.StatusCreated, "POST", "/v1/channel/shoppers/"+shopperID+"/topups", channelKey, "topup-1",
		map[string]any{"amount": map[string]string{"amount": "10.00", "currency": "CNY"}, "card": sandbox.CardSuccess})
	co := hc.must(http.StatusCreated, "POST", "/v1/channel/checkouts", channelKey, "", map[string]any{
		"shopper_id": shopperID, "chat_id": "chat-42", "lines": []map[string]any{{"item_id": itemID, "quantity": 1}}})
	hc.must(http.StatusOK, "POST", "/v1/channel/checkouts/"+co["id"].(string)+"/confirm", channelKey, "", nil)
	waitUntil("order message in the chat", func() bool { return strings.Contains(stdout.String(), "[chat chat-42] Paid 3.00 CNY") })
	if strings.Contains(stderr.String(), "rejected") {
		t.Fatalf("chat-sim rejected a sandbox webhook:\n%s", stderr.String())
	}
}

// A sandbox talks to the sandbox card provider only: a provider URL off this
// machine refuses to start (nothing is contacted; the check is on the URL).
func TestSandboxRefusesARemoteProvider(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "--sandbox", "--database-url", testdb.DSN(t), "--dev-allow-unsafe-durability",
		"--listen", freeAddr(t), "--provider-url", "https://provider.invalid/"}, &out, &out, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "sandbox card provider only") {
		t.Fatalf("want a refusal of the remote provider, got %v\n%s", err, out.String())
	}
	if !loopbackURL("http://127.0.0.1:8070") || !loopbackURL("http://[::1]:8070") || loopbackURL("https://10.0.0.1/") {
		t.Fatal("loopbackURL misjudges an address")
	}
}

// TestAPIFuzzTestClocks is TestAPIFuzz for the sandbox-only operations: the
// test clocks, on a sandbox with the same fixtures. (TestAPIFuzz runs on a
// live instance, where they answer 404.)
func TestAPIFuzzTestClocks(t *testing.T) {
	start := time.Date(2026, 12, 1, 6, 30, 0, 0, time.UTC)
	ta := startTestAppWith(t, start, func(cfg *appConfig) { cfg.Sandbox = true })
	fx := newFuzzFixtures(t, ta)
	key := strings.TrimPrefix(fx.authorization["merchantKey"], "Bearer ")
	clock := ta.call("POST", "/v1/test-clocks", key, "", map[string]any{"frozen_time": start})
	if clock.Status != http.StatusCreated {
		t.Fatalf("clock: %d %s", clock.Status, clock.Body)
	}
	fx.ids["/v1/test-clocks/{id}"] = []string{clock.JSON(t)["id"].(string)}
	hints := fx.hints()
	// The clock moves forward by minutes, so the run stays near its start.
	clockAt := start
	hints["frozen_time"] = func(*rand.Rand) any { return start.Format(time.RFC3339) }
	hints["to"] = func(r *rand.Rand) any {
		clockAt = clockAt.Add(time.Duration(r.IntN(10)) * time.Minute)
		return clockAt.Format(time.RFC3339)
	}
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var total apifuzz.Report
	for seed := 1; seed <= *fuzzAPISeeds; seed++ {
		report, err := apifuzz.Run(context.Background(), apifuzz.Config{
			BaseURL: ta.URL, Doc: doc, Client: &http.Client{Timeout: 10 * time.Second}, Seed: uint64(seed),
			ExamplesPerOperation: *fuzzAPIExamples, Authorization: fx.authorization, PathValue: fx.pathValue,
			Hints: hints, Deadline: time.Now().Add(2 * time.Minute), Now: start,
			Skip: func(method, path string) bool { return !strings.HasPrefix(path, "/v1/test-clocks") },
		})
		if err != nil {
			t.Fatal(err)
		}
		total.Requests += report.Requests
		total.Operations = report.Operations
		total.Failures = append(total.Failures, report.Failures...)
	}
	t.Logf("apifuzz (test clocks): %d requests, %d operations, %d failures", total.Requests, total.Operations, len(total.Failures))
	if total.Operations != 3 {
		t.Fatalf("fuzzed %d operations, want the 3 test-clock ones", total.Operations)
	}
	reportFuzzFailures(t, total.Failures)
	assertVerifyClean(t, ta)
}

// The sandbox band speaks the page's language: a shopper on a Chinese or
// Russian page is told it is a test in words it reads.
func TestTestModeBandSpeaksThePageLanguage(t *testing.T) {
	for page, want := range map[string]string{
		`<!doctype html><html lang="zh-CN"><body>`: "测试模式",
		`<!doctype html><html lang="ru"><body>`:    "Тестовый режим",
		`<!doctype html><html lang="en"><body>`:    "Test mode",
		`<!doctype html><html lang="fr"><body>`:    "Test mode",
		`<!doctype html><html><body>`:              "Test mode",
	} {
		if band := testModeBandFor([]byte(page)); !strings.Contains(band, want) {
			t.Errorf("band for %s = %s, want %q", page, band, want)
		}
	}
}
