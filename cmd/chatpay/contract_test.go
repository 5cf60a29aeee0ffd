package main

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/chatpay/chatpay/internal/httpapi"
)

// TestRoutesMatchOpenAPI: every /v1 route the server answers is in
// openapi.yaml with its method, and every operation the document promises has
// a route, so integrators never have to guess.
func TestRoutesMatchOpenAPI(t *testing.T) {
	// A sandbox serves every live route and the test clocks besides.
	ta := startTestAppWith(t, time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC), func(cfg *appConfig) { cfg.Sandbox = true })
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, r := range ta.app.echo.Routes() {
		if !strings.HasPrefix(r.Path, "/v1/") || r.Method == "echo_route_any" || strings.HasPrefix(r.Method, "echo_route") || strings.HasSuffix(r.Name, "glob..func1") {
			continue
		}
		if r.Method == http.MethodHead || r.Method == http.MethodOptions {
			continue
		}
		served[r.Method+" "+specPath(r.Path)] = true
	}
	var missing, phantom []string
	for op := range served {
		if !documented[op] {
			missing = append(missing, op)
		}
	}
	for op := range documented {
		if !served[op] {
			phantom = append(phantom, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(phantom)
	if len(missing) > 0 {
		t.Errorf("routes missing from openapi.yaml:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(phantom) > 0 {
		t.Errorf("openapi.yaml operations with no route:\n  %s", strings.Join(phantom, "\n  "))
	}
}

// specPath turns echo's /v1/items/:id into OpenAPI's /v1/items/{id}.
func specPath(route string) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}
