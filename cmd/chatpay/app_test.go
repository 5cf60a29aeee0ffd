package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/sandbox"
)

// testApp is the whole wired service on a fresh database behind a real HTTP
// server on a loopback port, with the sandbox card provider on another.
type testApp struct {
	t           *testing.T
	URL         string
	dsn         string
	db          *sqlx.DB
	app         *app
	clock       *fakeclock.Clock
	sandbox     *sandbox.Server
	providerURL string
}

// Test limits of the provider: the client gives up long before the slow
// card answers, so the slow card is always an unknown outcome.
const (
	testProviderTimeout = 300 * time.Millisecond
	testSandboxSlow     = 3 * time.Second
)

// testOperatorToken is the admin API's token in tests.
const testOperatorToken = "op_test_0123456789abcdef0123456789abcdef"

func startTestApp(t *testing.T, start time.Time) *testApp {
	t.Helper()
	return startTestAppWith(t, start, nil)
}

// startTestAppWith is startTestApp with a last say over the configuration.
func startTestAppWith(t *testing.T, start time.Time, configure func(*appConfig)) *testApp {
	t.Helper()
	dsn := testdb.DSN(t)
	db, err := database.Open(context.Background(), dsn, database.PoolOptions{MaxOpenConns: 80, MaxIdleConns: 80})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	migrator, err := database.NewMigrator(db.DB)
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(start)
	sb := sandbox.New(clock.Now)
	sb.SlowDelay = testSandboxSlow
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	providerURL, stopProvider, err := sb.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopProvider)
	provider, err := payments.NewHTTPProvider("sandbox", providerURL, testProviderTimeout)
	if err != nil {
		t.Fatal(err)
	}
	// The server's address must be known before the app is built: QR codes carry it.
	server := httptest.NewUnstartedServer(nil)
	t.Cleanup(server.Close)
	baseURL := "http://" + server.Listener.Addr().String()
	cfg := appConfig{
		Now: clock.Now, PublicBaseURL: baseURL, PlatformFee: money.BasisPoints(200), LoopbackWebhooks: true,
		Provider: provider, OperatorToken: testOperatorToken,
	}
	if configure != nil {
		configure(&cfg)
	}
	a, err := newApp(db, migrator, testdb.Logger(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	server.Config.Handler = a.echo
	server.Start()
	return &testApp{t: t, URL: baseURL, dsn: dsn, db: db, app: a, clock: clock, sandbox: sb, providerURL: providerURL}
}

type apiResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r apiResponse) JSON(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("response %d is not a JSON object: %s", r.Status, r.Body)
	}
	return v
}

// call sends a JSON request with a bearer key and optional idempotency key,
// and checks the answer against openapi.yaml.
func (ta *testApp) call(method, path, bearer, idemKey string, body any) apiResponse {
	ta.t.Helper()
	req, resp, raw := sendJSON(ta.t, ta.URL, method, path, bearer, idemKey, body)
	ta.checkAgainstOpenAPI(req, resp, raw)
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// sendJSON sends body as JSON to base+path the way an integrator's client
// does: a bearer key and, when given, an Idempotency-Key.
func sendJSON(t *testing.T, base, method, path, bearer, idemKey string, body any) (*http.Request, *http.Response, []byte) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return req, resp, raw
}

var (
	openAPIOnce   sync.Once
	openAPIRouter routers.Router
	openAPIErr    error
)

// checkAgainstOpenAPI validates every documented response against
// openapi.yaml, so the document cannot drift from what the server says.
// Routes other packages document and test themselves are skipped here.
func (ta *testApp) checkAgainstOpenAPI(req *http.Request, resp *http.Response, body []byte) {
	ta.t.Helper()
	if !strings.HasPrefix(req.URL.Path, "/v1/channel") && !strings.HasPrefix(req.URL.Path, "/v1/orders") &&
		!strings.HasPrefix(req.URL.Path, "/v1/admin/") {
		return
	}
	openAPIOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
		if err != nil {
			openAPIErr = err
			return
		}
		if openAPIErr = doc.Validate(context.Background()); openAPIErr != nil {
			return
		}
		doc.Servers = nil // match any host: the test server's port changes
		openAPIRouter, openAPIErr = legacy.NewRouter(doc)
	})
	if openAPIErr != nil {
		ta.t.Fatalf("openapi.yaml: %v", openAPIErr)
	}
	route, params, err := openAPIRouter.FindRoute(req)
	if err != nil {
		ta.t.Errorf("%s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, err)
		return
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		ta.t.Errorf("%s %s → %d does not match openapi.yaml: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

// merchant creates a merchant through the operator path and returns its API key.
func (ta *testApp) merchant(name, zone string) (catalog.Merchant, string) {
	ta.t.Helper()
	ctx := context.Background()
	m, err := ta.app.catalog.CreateMerchant(ctx, catalog.MerchantDraft{Name: name, TimeZone: zone, DefaultCurrency: "CNY"})
	if err != nil {
		ta.t.Fatal(err)
	}
	_, key, err := ta.app.catalog.CreateKey(ctx, m.ID, "test")
	if err != nil {
		ta.t.Fatal(err)
	}
	return m, key
}

// channel registers a messenger backend.
func (ta *testApp) channel() payments.CreatedChannel {
	ta.t.Helper()
	created, err := ta.app.payments.CreateChannel(context.Background(), payments.NewChannel{Name: "Tea bot", Kind: "telegram"})
	if err != nil {
		ta.t.Fatal(err)
	}
	return created
}

// fund tops a shopper's wallet up straight through the ledger, as the
// payment provider's capture would.
func (ta *testApp) fund(shopperID string, minor int64, currency string) {
	ta.t.Helper()
	c := money.MustCurrency(currency)
	err := database.WithTx(context.Background(), ta.db, nil, func(tx *sqlx.Tx) error {
		_, err := ta.app.ledger.Post(context.Background(), tx, ledger.Transaction{
			Key:         "test-fund:" + shopperID + ":" + strconv.FormatInt(time.Now().UnixNano(), 10),
			Description: "test top-up",
			Postings: []ledger.Posting{
				ledger.Debit(ledger.ProviderClearing("sandbox"), c, minor),
				ledger.Credit(ledger.ShopperWallet(shopperID), c, minor),
			},
		})
		return err
	})
	if err != nil {
		ta.t.Fatal(err)
	}
}

// launch signs a launch context for a shopper of the channel at the app's now.
func (ta *testApp) launch(ch payments.CreatedChannel, userID, name string) string {
	return payments.SignLaunch(ch.LaunchSecret, map[string]string{
		"channel_id": ch.Channel.ID,
		"user_id":    userID,
		"chat_id":    "chat-" + userID,
		"name":       name,
		"auth_date":  strconv.FormatInt(ta.clock.Now().Unix(), 10),
	})
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (ta *testApp) postForm(path string, form url.Values) apiResponse {
	ta.t.Helper()
	resp, err := noRedirect.PostForm(ta.URL+path, form)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

func (ta *testApp) get(path string) apiResponse {
	ta.t.Helper()
	resp, err := noRedirect.Get(ta.URL + path)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

func (ta *testApp) count(query string, args ...any) int {
	ta.t.Helper()
	var n int
	if err := ta.db.Get(&n, query, args...); err != nil {
		ta.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// teaCard is the tea card of DESIGN.md as the merchant API takes it.
func teaCard(stock int) map[string]any {
	return map[string]any{
		"sku": "TEA-CARD", "title": "Tea card", "description": "A pot of tea with a snack",
		"category": "tea", "price": map[string]string{"amount": "3.00", "currency": "CNY"},
		"kind": "voucher", "stock": stock, "per_shopper_limit": 2,
		"rules": map[string]any{
			"kind":               "voucher",
			"valid_for":          "P3M",
			"windows":            []map[string]any{{"from": "14:00", "to": "17:00"}},
			"exclude_categories": []string{"coffee"},
		},
	}
}

// assertVerifyClean runs the same audit as `chatpay verify`.
func assertVerifyClean(t *testing.T, ta *testApp) {
	t.Helper()
	report, err := ledger.RunAudit(context.Background(), ta.db, append(ledger.Checks(), crossChecks()...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		var out bytes.Buffer
		_ = report.Write(&out)
		t.Fatalf("verify found violations:\n%s", out.String())
	}
}
