package qr_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/qr"
)

// merchantHeader stands in for the merchant API key in these tests.
const merchantHeader = "X-Test-Merchant"

type apiClient struct {
	t   *testing.T
	url string
}

func newAPI(t *testing.T) (*apiClient, *qr.Service, *sqlx.DB) {
	t.Helper()
	svc, db, clk := newService(t)
	e := httpapi.New(httpapi.Options{Logger: testdb.Logger(t)})
	resolver := func(c echo.Context) (string, error) {
		if m := c.Request().Header.Get(merchantHeader); m != "" {
			return m, nil
		}
		return "", problem.New(problem.KindUnauthorized, "unauthorized", "no merchant credentials")
	}
	qr.NewHTTP(svc, idempotency.NewStore(db, clk.Now), resolver).Register(e.Group("/v1"))
	srv := httptest.NewServer(e) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return &apiClient{t: t, url: srv.URL}, svc, db
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (a *apiClient) do(method, path, merchant string, body string, header map[string]string) response {
	a.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if merchant != "" {
		req.Header.Set(merchantHeader, merchant)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

type codeJSON struct {
	ID         string           `json:"id"`
	Object     string           `json:"object"`
	Kind       string           `json:"kind"`
	Status     string           `json:"status"`
	TargetType string           `json:"target_type"`
	TargetID   string           `json:"target_id"`
	Placement  string           `json:"placement"`
	URL        string           `json:"url"`
	Amount     *json.RawMessage `json:"amount"`
	RevokedAt  *string          `json:"revoked_at"`
	ScanCount  int64            `json:"scan_count"`
	ImagePNG   string           `json:"image_png"`
	ImageSVG   string           `json:"image_svg"`
}

type problemJSON struct {
	Status int                  `json:"status"`
	Code   string               `json:"code"`
	Errors []problem.FieldError `json:"errors"`
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func wantProblem(t *testing.T, r response, status int, code, field string) {
	t.Helper()
	if r.status != status || r.header.Get("Content-Type") != problem.ContentType {
		t.Fatalf("status %d (%s), want %d problem: %s", r.status, r.header.Get("Content-Type"), status, r.body)
	}
	p := decode[problemJSON](t, r)
	if p.Code != code {
		t.Fatalf("code %q, want %q: %s", p.Code, code, r.body)
	}
	if field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != field) {
		t.Fatalf("problem does not name field %q: %s", field, r.body)
	}
}

func (a *apiClient) create(merchant, placement string) codeJSON {
	a.t.Helper()
	body, _ := json.Marshal(map[string]string{"item_id": itemTea, "placement": placement})
	r := a.do(http.MethodPost, "/v1/qr-codes", merchant, string(body), nil)
	if r.status != http.StatusCreated {
		a.t.Fatalf("create: %d %s", r.status, r.body)
	}
	return decode[codeJSON](a.t, r)
}

func TestHTTPCreate(t *testing.T) {
	t.Parallel()
	api, _, _ := newAPI(t)
	body := `{"item_id":"` + itemTea + `","placement":"window poster"}`
	key := map[string]string{idempotency.HeaderKey: "create-1"}

	first := api.do(http.MethodPost, "/v1/qr-codes", merchantA, body, key)
	if first.status != http.StatusCreated {
		t.Fatalf("create: %d %s", first.status, first.body)
	}
	c := decode[codeJSON](t, first)
	if !strings.HasPrefix(c.ID, "qr_") || c.Object != "qr_code" || c.Kind != "static" || c.Status != "active" ||
		c.TargetType != "item" || c.TargetID != itemTea || c.Placement != "window poster" || c.Amount != nil ||
		c.ImagePNG != "/v1/qr-codes/"+c.ID+"/image.png" || c.ImageSVG != "/v1/qr-codes/"+c.ID+"/image.svg" {
		t.Fatalf("created %s", first.body)
	}
	token := strings.TrimPrefix(c.URL, baseURL+"/q/")
	if _, err := qr.ParseToken(token); err != nil || c.URL != baseURL+"/q/"+token {
		t.Fatalf("url %q does not end in a token", c.URL)
	}

	t.Run("OKReplay", func(t *testing.T) {
		again := api.do(http.MethodPost, "/v1/qr-codes", merchantA, body, key)
		if again.status != http.StatusCreated || !bytes.Equal(again.body, first.body) || again.header.Get(idempotency.HeaderReplayed) != "true" {
			t.Fatalf("replay: %d %s", again.status, again.body)
		}
	})
	t.Run("ErrKeyReused", func(t *testing.T) {
		other := api.do(http.MethodPost, "/v1/qr-codes", merchantA, `{"item_id":"`+itemTea+`","placement":"counter"}`, key)
		wantProblem(t, other, http.StatusUnprocessableEntity, "idempotency_key_reused", "")
	})
	t.Run("OKKeyScopedToMerchant", func(t *testing.T) {
		r := api.do(http.MethodPost, "/v1/qr-codes", merchantB, body, key)
		if r.status != http.StatusCreated || decode[codeJSON](t, r).ID == c.ID {
			t.Fatalf("merchant B with A's key: %d %s", r.status, r.body)
		}
	})
	t.Run("ErrValidation", func(t *testing.T) {
		long := strings.Repeat("x", qr.PlacementLengthMax+1)
		wantProblem(t, api.do(http.MethodPost, "/v1/qr-codes", merchantA, `{"item_id":"`+itemTea+`","placement":"`+long+`"}`, nil),
			http.StatusUnprocessableEntity, "validation_failed", "placement")
		wantProblem(t, api.do(http.MethodPost, "/v1/qr-codes", merchantA, `{"placement":"counter"}`, nil),
			http.StatusUnprocessableEntity, "validation_failed", "item_id")
		wantProblem(t, api.do(http.MethodPost, "/v1/qr-codes", merchantA, `{"item_id":"`+itemTea+`","color":"red"}`, nil),
			http.StatusUnprocessableEntity, "validation_failed", "color")
	})
	t.Run("ErrUnauthorized", func(t *testing.T) {
		wantProblem(t, api.do(http.MethodPost, "/v1/qr-codes", "", body, nil), http.StatusUnauthorized, "unauthorized", "")
	})
}

func TestHTTPGetListRevoke(t *testing.T) {
	t.Parallel()
	api, svc, db := newAPI(t)
	var ids []string
	for _, placement := range []string{"counter", "window poster", "channel post"} {
		ids = append(ids, api.create(merchantA, placement).ID)
	}
	foreign := api.create(merchantB, "elsewhere")
	if err := svc.RecordScan(t.Context(), db, ids[0], qr.Scan{}); err != nil {
		t.Fatal(err)
	}

	t.Run("OKGet", func(t *testing.T) {
		r := api.do(http.MethodGet, "/v1/qr-codes/"+ids[0], merchantA, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if c := decode[codeJSON](t, r); c.ID != ids[0] || c.ScanCount != 1 || c.Placement != "counter" {
			t.Fatalf("got %s", r.body)
		}
	})
	t.Run("ErrOtherMerchant", func(t *testing.T) {
		wantProblem(t, api.do(http.MethodGet, "/v1/qr-codes/"+foreign.ID, merchantA, "", nil), http.StatusNotFound, qr.CodeNotFound, "")
		wantProblem(t, api.do(http.MethodPost, "/v1/qr-codes/"+foreign.ID+"/revoke", merchantA, "", nil), http.StatusNotFound, qr.CodeNotFound, "")
		wantProblem(t, api.do(http.MethodGet, "/v1/qr-codes/"+foreign.ID+"/image.png", merchantA, "", nil), http.StatusNotFound, qr.CodeNotFound, "")
		wantProblem(t, api.do(http.MethodGet, "/v1/qr-codes/"+foreign.ID+"/image.svg", merchantA, "", nil), http.StatusNotFound, qr.CodeNotFound, "")
	})
	t.Run("OKListPaged", func(t *testing.T) {
		var seen []codeJSON
		path := "/v1/qr-codes?limit=2"
		for range 3 {
			r := api.do(http.MethodGet, path, merchantA, "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body)
			}
			page := decode[struct {
				Object     string     `json:"object"`
				Data       []codeJSON `json:"data"`
				NextCursor *string    `json:"next_cursor"`
			}](t, r)
			seen = append(seen, page.Data...)
			if page.NextCursor == nil {
				break
			}
			path = "/v1/qr-codes?limit=2&cursor=" + url.QueryEscape(*page.NextCursor)
		}
		if len(seen) != 3 {
			t.Fatalf("listed %d codes, want 3: %+v", len(seen), seen)
		}
		for _, c := range seen {
			if c.ID == foreign.ID {
				t.Fatal("another merchant's code listed")
			}
			if c.ID == ids[0] && c.ScanCount != 1 {
				t.Fatalf("scan count %d", c.ScanCount)
			}
		}
	})
	t.Run("ErrListParams", func(t *testing.T) {
		wantProblem(t, api.do(http.MethodGet, "/v1/qr-codes?limit=1000", merchantA, "", nil), http.StatusUnprocessableEntity, "validation_failed", "limit")
		wantProblem(t, api.do(http.MethodGet, "/v1/qr-codes?limit=two", merchantA, "", nil), http.StatusUnprocessableEntity, "validation_failed", "limit")
		wantProblem(t, api.do(http.MethodGet, "/v1/qr-codes?cursor=zzz", merchantA, "", nil), http.StatusUnprocessableEntity, "validation_failed", "cursor")
	})
	t.Run("OKRevoke", func(t *testing.T) {
		r := api.do(http.MethodPost, "/v1/qr-codes/"+ids[1]+"/revoke", merchantA, "", nil)
		c := decode[codeJSON](t, r)
		if r.status != http.StatusOK || c.Status != "revoked" || c.RevokedAt == nil {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		token := strings.TrimPrefix(c.URL, baseURL+"/q/")
		_, err := svc.Resolve(t.Context(), db, token)
		wantCode(t, err, qr.CodeRevoked, http.StatusConflict)
	})
}

func TestHTTPImages(t *testing.T) {
	t.Parallel()
	api, _, _ := newAPI(t)
	c := api.create(merchantA, "counter")
	pngPath := "/v1/qr-codes/" + c.ID + "/image.png"
	svgPath := "/v1/qr-codes/" + c.ID + "/image.svg"

	t.Run("OKPNGDecodes", func(t *testing.T) {
		for _, size := range []string{"", "64", "300", "2048"} {
			r := api.do(http.MethodGet, pngPath+"?size="+size, merchantA, "", nil)
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/png" {
				t.Fatalf("size %q: %d %s", size, r.status, r.header.Get("Content-Type"))
			}
			if got := decodePNG(t, r.body); got != c.URL {
				t.Fatalf("size %q decoded %q, want %q", size, got, c.URL)
			}
		}
	})
	t.Run("OKConditional", func(t *testing.T) {
		for _, path := range []string{pngPath + "?size=512", svgPath} {
			r := api.do(http.MethodGet, path, merchantA, "", nil)
			etag := r.header.Get("ETag")
			if r.status != http.StatusOK || len(etag) < 34 || !strings.HasPrefix(etag, `"`) || r.header.Get("Cache-Control") == "" {
				t.Fatalf("%s: %d etag %q cache %q", path, r.status, etag, r.header.Get("Cache-Control"))
			}
			again := api.do(http.MethodGet, path, merchantA, "", nil)
			if again.header.Get("ETag") != etag || !bytes.Equal(again.body, r.body) {
				t.Fatalf("%s: the same image changed between requests", path)
			}
			for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
				nm := api.do(http.MethodGet, path, merchantA, "", map[string]string{"If-None-Match": inm})
				if nm.status != http.StatusNotModified || len(nm.body) != 0 || nm.header.Get("ETag") != etag {
					t.Fatalf("%s If-None-Match %s: %d, %d bytes", path, inm, nm.status, len(nm.body))
				}
			}
			stale := api.do(http.MethodGet, path, merchantA, "", map[string]string{"If-None-Match": `"stale"`})
			if stale.status != http.StatusOK {
				t.Fatalf("%s stale etag: %d", path, stale.status)
			}
		}
		small := api.do(http.MethodGet, pngPath+"?size=256", merchantA, "", nil)
		large := api.do(http.MethodGet, pngPath+"?size=512", merchantA, "", nil)
		if small.header.Get("ETag") == large.header.Get("ETag") {
			t.Fatal("different sizes share an ETag")
		}
	})
	t.Run("OKSVG", func(t *testing.T) {
		r := api.do(http.MethodGet, svgPath+"?size=1024", merchantA, "", nil)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/svg+xml" {
			t.Fatalf("%d %s", r.status, r.header.Get("Content-Type"))
		}
		var doc struct {
			ViewBox string `xml:"viewBox,attr"`
			Width   string `xml:"width,attr"`
		}
		if err := xml.Unmarshal(r.body, &doc); err != nil || doc.ViewBox == "" || doc.Width != "1024" {
			t.Fatalf("svg: %+v, %v", doc, err)
		}
		want, err := qr.SVG(c.URL, 1024)
		if err != nil || !bytes.Equal(want, r.body) {
			t.Fatal("the served SVG is not the rendering of the code's URL")
		}
	})
	t.Run("ErrSize", func(t *testing.T) {
		for _, size := range []string{"100000", "63", "2049", "abc", "-1", "512.0"} {
			wantProblem(t, api.do(http.MethodGet, pngPath+"?size="+url.QueryEscape(size), merchantA, "", nil),
				http.StatusUnprocessableEntity, "validation_failed", "size")
		}
		wantProblem(t, api.do(http.MethodGet, svgPath+"?size=100000", merchantA, "", nil),
			http.StatusUnprocessableEntity, "validation_failed", "size")
	})
	t.Run("ErrUnknown", func(t *testing.T) {
		wantProblem(t, api.do(http.MethodGet, "/v1/qr-codes/qr_aaaaaaaaaaaaaaaaaaaaaaaa/image.png", merchantA, "", nil),
			http.StatusNotFound, qr.CodeNotFound, "")
	})
}
