package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/jmoiron/sqlx"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/testdb"
)

// apiEnv is a real server on 127.0.0.1 over a fresh database. Every response
// it sees is validated against the OpenAPI document.
type apiEnv struct {
	t      *testing.T
	db     *sqlx.DB
	svc    *Service
	clock  *fakeclock.Clock
	server *httptest.Server
	router routers.Router
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	db := testdb.New(t)
	clock := fakeclock.New(time.Now().UTC().Truncate(time.Second))
	svc := NewService(db, clock.Now)
	svc.passwordCost = bcrypt.MinCost // the production cost takes seconds under the race detector
	e := httpapi.New(httpapi.Options{Logger: testdb.Logger(t)})
	NewHTTP(svc, idempotency.NewStore(db, clock.Now)).Register(e.Group(""))
	server := httptest.NewServer(e)
	t.Cleanup(server.Close)

	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is invalid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: server.URL}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &apiEnv{t: t, db: db, svc: svc, clock: clock, server: server, router: router}
}

// merchant creates a merchant with one API key and returns both.
func (env *apiEnv) merchant(name string) (Merchant, string) {
	env.t.Helper()
	ctx := context.Background()
	m, err := env.svc.CreateMerchant(ctx, MerchantDraft{Name: name, TimeZone: "Asia/Shanghai", DefaultCurrency: "CNY"})
	if err != nil {
		env.t.Fatal(err)
	}
	_, secret, err := env.svc.CreateKey(ctx, m.ID, "test")
	if err != nil {
		env.t.Fatal(err)
	}
	return m, secret
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problem returns the code and the fields named by a problem response.
func (r response) problem(t *testing.T) (code string, fields []string) {
	t.Helper()
	var doc struct {
		Code   string `json:"code"`
		Errors []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
	r.decode(t, &doc)
	for _, e := range doc.Errors {
		fields = append(fields, e.Field)
	}
	return doc.Code, fields
}

// do sends a request with key as bearer token (none when empty); body is
// JSON-encoded unless it is a string. headers are name, value pairs.
func (env *apiEnv) do(method, path, key string, body any, headers ...string) response {
	env.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			env.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, env.server.URL+path, bytes.NewReader(raw))
	if err != nil {
		env.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := env.server.Client().Do(req)
	if err != nil {
		env.t.Fatal(err)
	}
	defer res.Body.Close()
	resBody, err := io.ReadAll(res.Body)
	if err != nil {
		env.t.Fatal(err)
	}
	env.validate(req, raw, res, resBody)
	return response{Status: res.StatusCode, Header: res.Header, Body: resBody}
}

// validate checks a real response against the OpenAPI document.
func (env *apiEnv) validate(req *http.Request, reqBody []byte, res *http.Response, resBody []byte) {
	env.t.Helper()
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := env.router.FindRoute(req)
	if err != nil {
		env.t.Errorf("%s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, err)
		return
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Body:                   io.NopCloser(bytes.NewReader(resBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		env.t.Errorf("%s %s → %d does not match openapi.yaml: %v\n%s", req.Method, req.URL.Path, res.StatusCode, err, resBody)
	}
}

func (env *apiEnv) countItems() int {
	env.t.Helper()
	var n int
	if err := env.db.Get(&n, `SELECT count(*) FROM items`); err != nil {
		env.t.Fatal(err)
	}
	return n
}

func teaCardBody(sku string) map[string]any {
	return map[string]any{
		"sku": sku, "title": "Tea card 茶点卡", "category": "voucher", "kind": "voucher",
		"price": map[string]any{"amount": "3.00", "currency": "CNY"},
		"stock": 500, "per_shopper_limit": 2, "gtin": "4006381333931",
		"rules": map[string]any{
			"kind":               "voucher",
			"valid_for":          "P3M",
			"windows":            []any{map[string]any{"from": "14:00", "to": "17:00"}},
			"exclude_categories": []string{"coffee"},
		},
	}
}

type itemBody struct {
	ID               string     `json:"id"`
	SKU              string     `json:"sku"`
	Title            string     `json:"title"`
	GTIN             *string    `json:"gtin"`
	Stock            *int64     `json:"stock"`
	PerShopperLimit  *int       `json:"per_shopper_limit"`
	Active           bool       `json:"active"`
	CouponTemplateID *string    `json:"coupon_template_id"`
	Rules            *RulesJSON `json:"rules"`
	RulesText        *string    `json:"rules_text"`
	Price            struct {
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
	} `json:"price"`
}

func TestItemsAPI(t *testing.T) {
	env := newAPIEnv(t)
	_, key := env.merchant("McDonald's")

	var created itemBody
	first := env.do("POST", "/v1/items", key, teaCardBody("tea-card"), "Idempotency-Key", "k-1")
	if first.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", first.Status, first.Body)
	}
	first.decode(t, &created)
	if created.Price.Amount != "3.00" || created.Price.Currency != "CNY" || *created.Stock != 500 || !created.Active ||
		created.CouponTemplateID == nil || created.Rules == nil || created.Rules.ValidFor != "P3M" {
		t.Fatalf("created item: %s", first.Body)
	}
	if want := "Valid 14:00–17:00 daily (Asia/Shanghai), not for coffee, for 3 months after purchase"; *created.RulesText != want {
		t.Errorf("rules_text = %q, want %q", *created.RulesText, want)
	}

	t.Run("ReplayIdentical", func(t *testing.T) {
		replay := env.do("POST", "/v1/items", key, teaCardBody("tea-card"), "Idempotency-Key", "k-1")
		if replay.Status != http.StatusCreated || !bytes.Equal(replay.Body, first.Body) || replay.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %q %s", replay.Status, replay.Header.Get("Idempotent-Replayed"), replay.Body)
		}
	})
	t.Run("ErrIdempotencyKeyReused", func(t *testing.T) {
		res := env.do("POST", "/v1/items", key, teaCardBody("other-sku"), "Idempotency-Key", "k-1")
		if code, _ := res.problem(t); res.Status != http.StatusUnprocessableEntity || code != "idempotency_key_reused" {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
	})
	t.Run("ErrSKUTaken", func(t *testing.T) {
		body := teaCardBody("tea-card")
		delete(body, "gtin")
		res := env.do("POST", "/v1/items", key, body)
		if code, _ := res.problem(t); res.Status != http.StatusConflict || code != "sku_taken" {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
	})
	t.Run("ErrGTINTaken", func(t *testing.T) {
		res := env.do("POST", "/v1/items", key, teaCardBody("tea-card-2"))
		if code, _ := res.problem(t); res.Status != http.StatusConflict || code != "gtin_taken" {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
	})
	t.Run("Get", func(t *testing.T) {
		res := env.do("GET", "/v1/items/"+created.ID, key, nil)
		if res.Status != http.StatusOK || !bytes.Equal(bytes.TrimSpace(res.Body), bytes.TrimSpace(first.Body)) {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
	})
	t.Run("LookupByGTIN", func(t *testing.T) {
		var page struct {
			Data       []itemBody `json:"data"`
			NextCursor *string    `json:"next_cursor"`
		}
		res := env.do("GET", "/v1/items?gtin=4006381333931", key, nil)
		res.decode(t, &page)
		if res.Status != http.StatusOK || len(page.Data) != 1 || page.Data[0].ID != created.ID || page.NextCursor != nil {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
		res = env.do("GET", "/v1/items?gtin=4006381333932", key, nil)
		if _, fields := res.problem(t); res.Status != http.StatusUnprocessableEntity || fields[0] != "gtin" {
			t.Fatalf("bad check digit: %d %s", res.Status, res.Body)
		}
	})
	t.Run("Patch", func(t *testing.T) {
		res := env.do("PATCH", "/v1/items/"+created.ID, key, map[string]any{
			"title": "Tea card", "stock": nil, "gtin": nil, "per_shopper_limit": 3,
			"price": map[string]any{"amount": "3.50"},
		})
		var it itemBody
		res.decode(t, &it)
		if res.Status != http.StatusOK || it.Title != "Tea card" || it.Stock != nil || it.GTIN != nil ||
			*it.PerShopperLimit != 3 || it.Price.Amount != "3.50" || it.SKU != "tea-card" {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
		var rows int
		if err := env.db.Get(&rows, `SELECT count(*) FROM item_stock WHERE item_id = $1`, created.ID); err != nil || rows != 0 {
			t.Fatalf("unlimited stock left %d bucket rows (%v)", rows, err)
		}
		res = env.do("PATCH", "/v1/items/"+created.ID, key, map[string]any{"stock": 7})
		res.decode(t, &it)
		if res.Status != http.StatusOK || it.Stock == nil || *it.Stock != 7 {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
	})
	t.Run("PatchInvalid", func(t *testing.T) {
		for name, tc := range map[string]struct {
			body  string
			field string
		}{
			"NullTitle":     {`{"title":null}`, "title"},
			"BadWindow":     {`{"rules":{"kind":"voucher","windows":[{"from":"14:00","to":"14:00"}]}}`, "rules.windows[0].to"},
			"ProductRules":  {`{"kind":"product"}`, "rules"},
			"NegativeStock": {`{"stock":-1}`, "stock"},
			"UnknownField":  {`{"colour":"red"}`, "colour"},
		} {
			t.Run(name, func(t *testing.T) {
				res := env.do("PATCH", "/v1/items/"+created.ID, key, tc.body)
				if _, fields := res.problem(t); res.Status != http.StatusUnprocessableEntity || len(fields) == 0 || fields[0] != tc.field {
					t.Fatalf("%d %s, want field %s", res.Status, res.Body, tc.field)
				}
			})
		}
	})
	t.Run("DeleteDeactivates", func(t *testing.T) {
		res := env.do("DELETE", "/v1/items/"+created.ID, key, nil)
		var it itemBody
		res.decode(t, &it)
		if res.Status != http.StatusOK || it.Active {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
		res = env.do("GET", "/v1/items/"+created.ID, key, nil)
		res.decode(t, &it)
		if res.Status != http.StatusOK || it.Active {
			t.Fatalf("after delete: %d %s", res.Status, res.Body)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		res := env.do("GET", "/v1/items/item_nosuchitem", key, nil)
		if code, _ := res.problem(t); res.Status != http.StatusNotFound || code != "not_found" {
			t.Fatalf("%d %s", res.Status, res.Body)
		}
	})
}

func TestItemsPagination(t *testing.T) {
	env := newAPIEnv(t)
	_, key := env.merchant("Shop")
	const itemCount = 7
	want := map[string]bool{}
	for i := range itemCount {
		res := env.do("POST", "/v1/items", key, map[string]any{
			"sku": fmt.Sprintf("sku-%d", i), "title": "Bun", "kind": "product", "price": map[string]any{"amount": "1"},
		})
		var it itemBody
		res.decode(t, &it)
		want[it.ID] = true
		if i%3 == 0 {
			env.clock.Add(time.Second) // some items share a creation time, some do not
		}
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > itemCount {
			t.Fatal("pagination does not end")
		}
		path := "/v1/items?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		res := env.do("GET", path, key, nil)
		var page struct {
			Data       []itemBody `json:"data"`
			NextCursor *string    `json:"next_cursor"`
		}
		res.decode(t, &page)
		for _, it := range page.Data {
			if seen[it.ID] {
				t.Fatalf("item %s on two pages", it.ID)
			}
			seen[it.ID] = true
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(seen) != itemCount {
		t.Fatalf("saw %d items, want %d", len(seen), itemCount)
	}
	for _, tc := range []struct{ query, field string }{
		{"limit=101", "limit"}, {"limit=0", "limit"}, {"limit=x", "limit"}, {"cursor=garbage!", "cursor"}, {"sort=sku", "sort"},
	} {
		res := env.do("GET", "/v1/items?"+tc.query, key, nil)
		if _, fields := res.problem(t); res.Status != http.StatusUnprocessableEntity || len(fields) == 0 || fields[0] != tc.field {
			t.Errorf("%s: %d %s", tc.query, res.Status, res.Body)
		}
	}
}

func TestCreateItemInvalid(t *testing.T) {
	env := newAPIEnv(t)
	_, key := env.merchant("Shop")
	with := func(change func(map[string]any)) map[string]any {
		body := teaCardBody("tea-card")
		change(body)
		return body
	}
	rules := func(b map[string]any) map[string]any { return b["rules"].(map[string]any) }
	cases := map[string]struct {
		body  any
		field string
		code  string
	}{
		"UnknownCurrency": {with(func(b map[string]any) { b["price"] = map[string]any{"amount": "3.00", "currency": "ABC"} }), "price.currency", "unknown_currency"},
		"TooManyDecimals": {with(func(b map[string]any) { b["price"] = map[string]any{"amount": "3.001", "currency": "CNY"} }), "price.amount", "too_many_decimals"},
		"NegativePrice":   {with(func(b map[string]any) { b["price"] = map[string]any{"amount": "-3.00", "currency": "CNY"} }), "price.amount", "negative_amount"},
		"YenDecimals":     {with(func(b map[string]any) { b["price"] = map[string]any{"amount": "3.5", "currency": "JPY"} }), "price.amount", "too_many_decimals"},
		"WindowHour25":    {with(func(b map[string]any) { rules(b)["windows"] = []any{map[string]any{"from": "25:00", "to": "17:00"}} }), "rules.windows[0].from", "invalid_time_of_day"},
		"WindowEmpty":     {with(func(b map[string]any) { rules(b)["windows"] = []any{map[string]any{"from": "14:00", "to": "14:00"}} }), "rules.windows[0].to", "empty_window"},
		"WindowBadDay": {with(func(b map[string]any) {
			rules(b)["windows"] = []any{map[string]any{"days": []string{"Mon"}, "from": "14:00", "to": "17:00"}}
		}), "rules.windows[0].days[0]", "invalid_day"},
		"BadDuration":   {with(func(b map[string]any) { rules(b)["valid_for"] = "3 months" }), "rules.valid_for", "invalid_duration"},
		"BadValidUntil": {with(func(b map[string]any) { rules(b)["valid_until"] = "2027-02-21" }), "rules.valid_until", "invalid_time"},
		"RulesKind":     {with(func(b map[string]any) { rules(b)["kind"] = "free_lunch" }), "rules.kind", "invalid_kind"},
		"MinSpendCurrency": {with(func(b map[string]any) {
			rules(b)["min_spend"] = map[string]any{"amount": "20.00", "currency": "USD"}
		}), "rules.min_spend.currency", "currency_mismatch"},
		"UnknownField":        {with(func(b map[string]any) { b["colour"] = "green" }), "colour", "unknown_field"},
		"UnknownRulesField":   {with(func(b map[string]any) { rules(b)["valid_forever"] = true }), "rules.valid_forever", "unknown_field"},
		"VoucherWithoutRules": {with(func(b map[string]any) { delete(b, "rules") }), "rules", "required"},
		"ProductWithRules":    {with(func(b map[string]any) { b["kind"] = "product" }), "rules", "not_allowed"},
		"BadGTIN":             {with(func(b map[string]any) { b["gtin"] = "4006381333932" }), "gtin", "invalid_gtin"},
		"HTTPImage":           {with(func(b map[string]any) { b["image_url"] = "http://example.com/tea.png" }), "image_url", "invalid_url"},
		"NegativeStock":       {with(func(b map[string]any) { b["stock"] = -1 }), "stock", "out_of_range"},
		"ZeroLimit":           {with(func(b map[string]any) { b["per_shopper_limit"] = 0 }), "per_shopper_limit", "out_of_range"},
		"StockNotInteger":     {with(func(b map[string]any) { b["stock"] = 1.5 }), "stock", "invalid_type"},
		"MissingSKU":          {with(func(b map[string]any) { delete(b, "sku") }), "sku", "invalid_sku"},
		"MissingPrice":        {with(func(b map[string]any) { delete(b, "price") }), "price", "required"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res := env.do("POST", "/v1/items", key, tc.body, "Idempotency-Key", "key-"+name)
			code, fields := res.problem(t)
			if res.Status != http.StatusUnprocessableEntity || len(fields) == 0 || fields[0] != tc.field {
				t.Fatalf("%d %s; want 422 naming %s", res.Status, res.Body, tc.field)
			}
			var doc struct {
				Errors []problemField `json:"errors"`
			}
			res.decode(t, &doc)
			if doc.Errors[0].Code != tc.code {
				t.Errorf("code %q (%s), want %q", doc.Errors[0].Code, code, tc.code)
			}
		})
	}
	if n := env.countItems(); n != 0 {
		t.Fatalf("%d items stored by invalid requests", n)
	}
	var templates int
	if err := env.db.Get(&templates, `SELECT count(*) FROM coupon_templates`); err != nil || templates != 0 {
		t.Fatalf("%d templates stored (%v)", templates, err)
	}
}

type problemField struct {
	Field string `json:"field"`
	Code  string `json:"code"`
}

func TestConcurrentIdempotentCreate(t *testing.T) {
	env := newAPIEnv(t)
	_, key := env.merchant("Shop")
	const requests = 10
	responses := make([]response, requests)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			responses[i] = env.do("POST", "/v1/items", key, teaCardBody("tea-card"), "Idempotency-Key", "same-key")
		}()
	}
	close(start)
	wg.Wait()
	var created []byte
	for _, res := range responses {
		switch res.Status {
		case http.StatusCreated:
			if created != nil && !bytes.Equal(created, res.Body) {
				t.Errorf("two different 201 bodies:\n%s\n%s", created, res.Body)
			}
			created = res.Body
		case http.StatusConflict:
			if code, _ := res.problem(t); code != "idempotency_key_in_use" {
				t.Errorf("409 %s", res.Body)
			}
		default:
			t.Errorf("unexpected %d %s", res.Status, res.Body)
		}
	}
	if created == nil {
		t.Fatal("no request created the item")
	}
	if n := env.countItems(); n != 1 {
		t.Fatalf("%d items, want exactly 1", n)
	}
}

func TestMerchantAPI(t *testing.T) {
	env := newAPIEnv(t)
	m, key := env.merchant("McDonald's")
	var got merchantJSON
	res := env.do("GET", "/v1/merchant", key, nil)
	res.decode(t, &got)
	if res.Status != http.StatusOK || got.ID != m.ID || got.TimeZone != "Asia/Shanghai" || got.DefaultCurrency != "CNY" || got.AllowTypedCodes {
		// Typed codes start off: a printed code would defeat the rotating QR.
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	res = env.do("PATCH", "/v1/merchant", key, map[string]any{"allow_typed_codes": true, "time_zone": "Europe/Berlin", "name": "McD"})
	res.decode(t, &got)
	if res.Status != http.StatusOK || !got.AllowTypedCodes || got.TimeZone != "Europe/Berlin" || got.Name != "McD" {
		t.Fatalf("%d %s", res.Status, res.Body)
	}
	for body, field := range map[string]string{
		`{"time_zone":"Mars/Olympus"}`: "time_zone",
		`{"time_zone":"Local"}`:        "time_zone",
		`{"default_currency":"cny"}`:   "default_currency",
		`{"name":""}`:                  "name",
		`{"status":"active"}`:          "status",
		`{"allow_typed_codes":null}`:   "allow_typed_codes",
		`{"allow_typed_codes":"yes"}`:  "allow_typed_codes",
	} {
		res := env.do("PATCH", "/v1/merchant", key, body)
		if _, fields := res.problem(t); res.Status != http.StatusUnprocessableEntity || len(fields) == 0 || fields[0] != field {
			t.Errorf("%s: %d %s, want 422 naming %s", body, res.Status, res.Body, field)
		}
	}
	after, err := env.svc.Merchant(context.Background(), m.ID)
	if err != nil || after.TimeZone != "Europe/Berlin" || after.DefaultCurrency.Code() != "CNY" {
		t.Fatalf("invalid patches changed the merchant: %+v %v", after, err)
	}
}

// TestAuthorizationMatrix: for every endpoint, merchant A's key cannot see or
// touch merchant B's objects (404, never 403), and requests without a valid
// key get 401.
func TestAuthorizationMatrix(t *testing.T) {
	env := newAPIEnv(t)
	_, keyA := env.merchant("A")
	merchantB, keyB := env.merchant("B")
	var itemB itemBody
	env.do("POST", "/v1/items", keyB, teaCardBody("tea-card"), "Idempotency-Key", "shared-key").decode(t, &itemB)

	t.Run("OtherMerchantsObjectsAre404", func(t *testing.T) {
		for _, req := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/items/" + itemB.ID, nil},
			{"PATCH", "/v1/items/" + itemB.ID, map[string]any{"title": "mine now"}},
			{"DELETE", "/v1/items/" + itemB.ID, nil},
		} {
			res := env.do(req.method, req.path, keyA, req.body)
			if code, _ := res.problem(t); res.Status != http.StatusNotFound || code != "not_found" {
				t.Errorf("%s %s with A's key: %d %s", req.method, req.path, res.Status, res.Body)
			}
		}
		var page struct {
			Data []itemBody `json:"data"`
		}
		env.do("GET", "/v1/items", keyA, nil).decode(t, &page)
		if len(page.Data) != 0 {
			t.Errorf("A's list shows %d items of B", len(page.Data))
		}
		env.do("GET", "/v1/items?gtin=4006381333931", keyA, nil).decode(t, &page)
		if len(page.Data) != 0 {
			t.Errorf("A's GTIN lookup finds B's item")
		}
		var m merchantJSON
		env.do("GET", "/v1/merchant", keyA, nil).decode(t, &m)
		if m.ID == merchantB.ID {
			t.Error("A's key reads B's merchant")
		}
		env.do("PATCH", "/v1/merchant", keyA, map[string]any{"name": "A2"})
		if b, _ := env.svc.Merchant(context.Background(), merchantB.ID); b.Name != "B" {
			t.Error("A's key renamed B")
		}
		// Idempotency keys are scoped per merchant: A's request with B's
		// key value creates A's own item rather than replaying B's answer.
		res := env.do("POST", "/v1/items", keyA, teaCardBody("tea-card"), "Idempotency-Key", "shared-key")
		var itemA itemBody
		res.decode(t, &itemA)
		if res.Status != http.StatusCreated || res.Header.Get("Idempotent-Replayed") != "" || itemA.ID == itemB.ID {
			t.Errorf("A's create with B's idempotency key: %d %s", res.Status, res.Body)
		}
		var title string
		if err := env.db.Get(&title, `SELECT title FROM items WHERE id = $1`, itemB.ID); err != nil || title != "Tea card 茶点卡" {
			t.Errorf("B's item changed to %q (%v)", title, err)
		}
	})

	endpoints := []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/merchant", nil},
		{"PATCH", "/v1/merchant", map[string]any{"name": "x"}},
		{"GET", "/v1/items", nil},
		{"POST", "/v1/items", teaCardBody("new")},
		{"GET", "/v1/items/" + itemB.ID, nil},
		{"PATCH", "/v1/items/" + itemB.ID, map[string]any{"title": "x"}},
		{"DELETE", "/v1/items/" + itemB.ID, nil},
	}
	expect401 := func(t *testing.T, key string, header ...string) {
		t.Helper()
		for _, ep := range endpoints {
			res := env.do(ep.method, ep.path, key, ep.body, header...)
			if res.Status != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: %d %s", ep.method, ep.path, res.Status, res.Body)
			}
		}
	}
	t.Run("NoKeyIs401", func(t *testing.T) { expect401(t, "") })
	t.Run("UnknownKeyIs401", func(t *testing.T) { expect401(t, "sk_"+strings.Repeat("a", 39)) })
	t.Run("NotBearerIs401", func(t *testing.T) { expect401(t, "", "Authorization", "Basic "+keyB) })
	t.Run("RevokedKeyIs401", func(t *testing.T) {
		ctx := context.Background()
		key, secret, err := env.svc.CreateKey(ctx, merchantB.ID, "pos")
		if err != nil {
			t.Fatal(err)
		}
		if res := env.do("GET", "/v1/merchant", secret, nil); res.Status != http.StatusOK {
			t.Fatalf("before revoking: %d", res.Status)
		}
		if err := env.svc.RevokeKey(ctx, merchantB.ID, key.ID); err != nil {
			t.Fatal(err)
		}
		expect401(t, secret)
		if err := env.svc.RevokeKey(ctx, "mer_other", key.ID); err == nil {
			t.Error("another merchant revoked B's key")
		}
	})
	t.Run("SuspendedMerchantIs403", func(t *testing.T) {
		if _, err := env.svc.SetMerchantStatus(context.Background(), merchantB.ID, MerchantSuspended); err != nil {
			t.Fatal(err)
		}
		for _, ep := range endpoints {
			res := env.do(ep.method, ep.path, keyB, ep.body)
			if code, _ := res.problem(t); res.Status != http.StatusForbidden || code != "merchant_suspended" {
				t.Errorf("%s %s: %d %s", ep.method, ep.path, res.Status, res.Body)
			}
		}
	})
	if n := env.countItems(); n != 2 {
		t.Errorf("%d items; unauthorised requests must not create any", n)
	}
}

// TestRulesSnapshot: rules copied into an issued coupon (as payments does)
// keep working as issued after the template is edited.
func TestRulesSnapshot(t *testing.T) {
	env := newAPIEnv(t)
	m, key := env.merchant("McDonald's")
	var created itemBody
	env.do("POST", "/v1/items", key, teaCardBody("tea-card")).decode(t, &created)

	it, err := env.svc.Item(context.Background(), m.ID, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	snapshot, err := json.Marshal(it.Rules)
	if err != nil {
		t.Fatal(err)
	}

	res := env.do("PATCH", "/v1/items/"+created.ID, key, map[string]any{"rules": map[string]any{
		"kind": "voucher", "valid_for": "P1M", "windows": []any{map[string]any{"from": "08:00", "to": "10:00"}},
	}})
	if res.Status != http.StatusOK {
		t.Fatalf("edit template: %d %s", res.Status, res.Body)
	}
	var edited itemBody
	res.decode(t, &edited)
	if *edited.CouponTemplateID != *created.CouponTemplateID || edited.Rules.Windows[0].From != "08:00" {
		t.Fatalf("edit did not change the template: %s", res.Body)
	}

	var issued Rules
	if err := json.Unmarshal(snapshot, &issued); err != nil {
		t.Fatal(err)
	}
	state := CouponState{IssuedAt: local(shanghai, 2026, 11, 21, 10, 0, 0), UsesLeft: issued.Uses()}
	at := local(shanghai, 2027, 2, 1, 14, 30, 0) // inside the old window, outside the new; past the new expiry
	if r := Check(issued, state, tea, at, m.Location()); !r.OK {
		t.Fatalf("snapshot refused: %s", r.Reason)
	}
	current, _ := env.svc.Item(context.Background(), m.ID, created.ID)
	if r := Check(*current.Rules, state, tea, at, m.Location()); r.OK {
		t.Fatal("the edited template should refuse; the test proves nothing otherwise")
	}
}

func TestStaffAndKeys(t *testing.T) {
	env := newAPIEnv(t)
	ctx := context.Background()
	m, _ := env.merchant("McDonald's")

	staff, err := env.svc.CreateStaff(ctx, m.ID, " Manager@Example.com ", "correct horse battery")
	if err != nil || staff.Email != "manager@example.com" {
		t.Fatalf("CreateStaff: %+v %v", staff, err)
	}
	t.Run("ErrEmailTaken", func(t *testing.T) {
		if _, err := env.svc.CreateStaff(ctx, m.ID, "manager@example.com", "another password"); err != ErrEmailTaken {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		for _, tc := range [][2]string{{"not-an-email", "long enough pw"}, {"a@b.co", "short"}, {"Name <a@b.co>", "long enough pw"}} {
			if _, err := env.svc.CreateStaff(ctx, m.ID, tc[0], tc[1]); err == nil {
				t.Errorf("CreateStaff(%q, %q) accepted", tc[0], tc[1])
			}
		}
	})
	t.Run("Authenticate", func(t *testing.T) {
		got, err := env.svc.Authenticate(ctx, "MANAGER@example.com", "correct horse battery")
		if err != nil || got.ID != staff.ID || got.MerchantID != m.ID {
			t.Fatalf("%+v %v", got, err)
		}
		if _, err := env.svc.Authenticate(ctx, "manager@example.com", "wrong password!"); err != ErrBadCredentials {
			t.Errorf("wrong password: %v", err)
		}
		if _, err := env.svc.Authenticate(ctx, "nobody@example.com", "correct horse battery"); err != ErrBadCredentials {
			t.Errorf("unknown address: %v", err)
		}
	})
	t.Run("KeyStoredAsHashAndTouchedOncePerMinute", func(t *testing.T) {
		key, secret, err := env.svc.CreateKey(ctx, m.ID, "pos")
		if err != nil || !strings.HasPrefix(secret, "sk_") || !strings.HasPrefix(secret, key.Hint) {
			t.Fatalf("%+v %q %v", key, secret, err)
		}
		var stored int
		if err := env.db.Get(&stored, `SELECT count(*) FROM api_keys WHERE hint = $1 OR encode(secret_hash, 'escape') LIKE '%' || $2 || '%'`, secret, secret); err != nil || stored != 0 {
			t.Fatalf("the secret is stored in clear (%d, %v)", stored, err)
		}
		lastUsed := func() *time.Time {
			var at *time.Time
			if err := env.db.Get(&at, `SELECT last_used_at FROM api_keys WHERE id = $1`, key.ID); err != nil {
				t.Fatal(err)
			}
			return at
		}
		if lastUsed() != nil {
			t.Fatal("a new key has a last use")
		}
		env.do("GET", "/v1/merchant", secret, nil)
		first := lastUsed()
		if first == nil || !first.Equal(env.clock.Now()) {
			t.Fatalf("last_used_at = %v, want %v", first, env.clock.Now())
		}
		env.clock.Add(30 * time.Second)
		env.do("GET", "/v1/merchant", secret, nil)
		if !lastUsed().Equal(*first) {
			t.Fatal("last_used_at written twice within a minute")
		}
		env.clock.Add(31 * time.Second)
		env.do("GET", "/v1/merchant", secret, nil)
		if !lastUsed().Equal(env.clock.Now()) {
			t.Fatal("last_used_at not updated after a minute")
		}
	})
	t.Run("CreateMerchantInvalid", func(t *testing.T) {
		_, err := env.svc.CreateMerchant(ctx, MerchantDraft{Name: "X", TimeZone: "Nowhere/City", DefaultCurrency: "XYZ"})
		p, ok := err.(interface{ Error() string })
		if !ok || !strings.Contains(p.Error(), "time_zone") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestItemByIDForChannels(t *testing.T) {
	env := newAPIEnv(t)
	ctx := context.Background()
	m, _ := env.merchant("McDonald's")
	it, err := env.svc.CreateItem(ctx, m.ID, ItemDraft{SKU: "bun", Title: "Bun", Kind: KindProduct,
		Price: money.New(100, cny), Stock: ptr(int64(5)), Active: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.svc.ItemByID(ctx, nil, it.ID)
	if err != nil || got.MerchantID != m.ID || *got.Stock != 5 || got.Rules != nil {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := env.svc.ItemByGTIN(ctx, m.ID, "96385074"); err == nil {
		t.Fatal("found an item for a GTIN no item has")
	}
	if _, err := env.svc.Item(ctx, "mer_other", it.ID); err == nil {
		t.Fatal("another merchant reads the item")
	}
}

func TestOpenAPIServed(t *testing.T) {
	env := newAPIEnv(t)
	res, err := env.server.Client().Get(env.server.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, httpapi.OpenAPI) {
		t.Fatalf("%d, %d bytes", res.StatusCode, len(body))
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/merchant", "/v1/items", "/v1/items/{id}"} {
		if doc.Paths.Find(path) == nil {
			t.Errorf("openapi.yaml lacks %s", path)
		}
	}
}
