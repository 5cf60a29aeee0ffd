package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatpay/chatpay/internal/problem"
)

func newTestServer(t *testing.T, ready ReadinessCheck) *httptest.Server {
	t.Helper()
	e := New(Options{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Ready: ready})
	e.POST("/echo", func(c echo.Context) error {
		var in struct {
			Name  string `json:"name"`
			Count int    `json:"count"`
		}
		if _, err := BindJSON(c, &in); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, in)
	})
	e.GET("/panic", func(echo.Context) error { panic("boom") })
	e.GET("/fail", func(echo.Context) error { return errors.New("secret database detail") })
	e.GET("/refuse", func(echo.Context) error {
		return problem.New(problem.KindRefused, "insufficient_funds", "wallet balance is 1.00 CNY")
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func doRequest(t *testing.T, method, url, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	return resp, doc
}

func TestErrorsAreProblemDocuments(t *testing.T) {
	srv := newTestServer(t, nil)
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"NotFound", "GET", "/nope", "", 404, "route_not_found"},
		{"MethodNotAllowed", "DELETE", "/healthz", "", 405, "method_not_allowed"},
		{"TooLarge", "POST", "/echo", `{"name":"` + strings.Repeat("x", BodyLimitBytes) + `"}`, 413, "request_too_large"},
		{"Panic", "GET", "/panic", "", 500, "internal_error"},
		{"UnknownError", "GET", "/fail", "", 500, "internal_error"},
		{"Refusal", "GET", "/refuse", "", 422, "insufficient_funds"},
		{"MalformedJSON", "POST", "/echo", `{"name":`, 400, "malformed_json"},
		{"UnknownField", "POST", "/echo", `{"name":"a","colour":"red"}`, 422, "validation_failed"},
		{"WrongType", "POST", "/echo", `{"count":"three"}`, 422, "validation_failed"},
		{"TwoValues", "POST", "/echo", `{} {}`, 400, "malformed_json"},
		{"Empty", "POST", "/echo", ``, 400, "malformed_json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, doc := doRequest(t, tc.method, srv.URL+tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, doc)
			}
			if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
				t.Fatalf("content type %q", ct)
			}
			if doc["code"] != tc.code || doc["status"] != float64(tc.status) || doc["type"] != problem.TypeBase+tc.code || doc["title"] == "" {
				t.Fatalf("problem document %v", doc)
			}
			if strings.Contains(doc["detail"].(string), "secret database detail") {
				t.Fatal("internal error details leaked to the client")
			}
			if resp.Header.Get(echo.HeaderXRequestID) == "" {
				t.Fatal("no request id")
			}
		})
	}
	t.Run("UnknownFieldNamed", func(t *testing.T) {
		_, doc := doRequest(t, "POST", srv.URL+"/echo", `{"name":"a","colour":"red"}`)
		fields := doc["errors"].([]any)
		if f := fields[0].(map[string]any); f["field"] != "colour" || f["code"] != "unknown_field" {
			t.Fatalf("errors %v", fields)
		}
	})
}

func TestReadinessAndMetrics(t *testing.T) {
	var down bool
	srv := newTestServer(t, func(context.Context) error {
		if down {
			return errors.New("database unreachable")
		}
		return nil
	})
	if resp, _ := doRequest(t, "GET", srv.URL+"/readyz", ""); resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	down = true
	resp, doc := doRequest(t, "GET", srv.URL+"/readyz", "")
	if resp.StatusCode != 503 || doc["code"] != "not_ready" {
		t.Fatalf("readyz while down: %d %v", resp.StatusCode, doc)
	}
	if resp, _ := doRequest(t, "GET", srv.URL+"/healthz", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	doRequest(t, "GET", srv.URL+"/nope/123", "")
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	text := string(raw)
	for _, want := range []string{
		`chatpay_http_requests_total{method="GET",route="/readyz",status="503"} 1`,
		`chatpay_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`chatpay_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200",le="0.001"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
