package webhooks

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/problem"
)

// headerOwner is the test resolver: "X-Owner: merchant:mch_tea".
func headerOwner(c echo.Context) (Owner, error) {
	kind, id, ok := strings.Cut(c.Request().Header.Get("X-Owner"), ":")
	o := Owner{Kind: kind, ID: id}
	if !ok || !o.valid() {
		return Owner{}, problem.New(problem.KindUnauthorized, "unauthorized", "X-Owner missing")
	}
	return o, nil
}

type apiClient struct {
	t    *testing.T
	base string
}

func (c apiClient) do(owner Owner, method, path, body string, out any) int {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if owner.ID != "" {
		req.Header.Set("X-Owner", owner.String())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

func newAPI(t *testing.T, f *fixture, policy URLPolicy) apiClient {
	e := httpapi.New(httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	NewHTTP(NewService(f.db, policy, time.Now), headerOwner).Register(e.Group("/v1"))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return apiClient{t: t, base: srv.URL + "/v1"}
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	api := newAPI(t, f, devPolicy)
	r := newReceiver(t, nil)
	stranger := Owner{Kind: OwnerMerchant, ID: "mch_other"}

	var created struct {
		Endpoint
		Secret string `json:"secret"`
	}
	if s := api.do(merchant, "POST", "/webhooks/endpoints", `{"url":"`+r.server.URL+`/hook","description":"bot","event_types":["order.paid"]}`, &created); s != 201 || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create: %d %+v", s, created)
	}
	r.secret = created.Secret
	var prob problem.Document
	if s := api.do(merchant, "POST", "/webhooks/endpoints", `{"url":"`+r.server.URL+`","event_types":["order.eaten"]}`, &prob); s != 422 || prob.Errors[0].Code != "unknown_event_type" {
		t.Fatalf("bad filter: %d %+v", s, prob)
	}
	if s := api.do(Owner{}, "GET", "/webhooks/endpoints", "", nil); s != 401 {
		t.Fatalf("no owner: %d", s)
	}
	t.Run("ErrPrivateURLInProduction", func(t *testing.T) {
		strict := newAPI(t, f, URLPolicy{})
		var p problem.Document
		if s := strict.do(merchant, "POST", "/webhooks/endpoints", `{"url":"https://0x7f.1/hook"}`, &p); s != 422 || p.Errors[0].Code != "url_private_address" {
			t.Fatalf("private URL: %d %+v", s, p)
		}
	})
	t.Run("ErrOtherOwnerSeesNothing", func(t *testing.T) {
		for _, path := range []string{"/webhooks/endpoints/" + created.ID, "/webhooks/endpoints/" + created.ID + "/deliveries", "/webhooks/endpoints/" + created.ID + "/secret"} {
			if s := api.do(stranger, "GET", path, "", nil); s != 404 {
				t.Fatalf("GET %s by a stranger: %d", path, s)
			}
		}
		if s := api.do(stranger, "DELETE", "/webhooks/endpoints/"+created.ID, "", nil); s != 404 {
			t.Fatalf("DELETE by a stranger: %d", s)
		}
	})
	t.Run("OKListPaginated", func(t *testing.T) {
		lister := Owner{Kind: OwnerChannel, ID: "chn_list"}
		for range 5 {
			api.do(lister, "POST", "/webhooks/endpoints", `{"url":"`+r.server.URL+`/other"}`, nil)
		}
		seen := map[string]bool{}
		cursor := ""
		for range 10 {
			var pg struct {
				Data       []Endpoint `json:"data"`
				NextCursor string     `json:"next_cursor"`
			}
			if s := api.do(lister, "GET", "/webhooks/endpoints?limit=2&cursor="+cursor, "", &pg); s != 200 {
				t.Fatalf("list: %d", s)
			}
			for _, ep := range pg.Data {
				seen[ep.ID] = true
			}
			if cursor = pg.NextCursor; cursor == "" {
				break
			}
		}
		if len(seen) != 5 {
			t.Fatalf("listed %d endpoints, want 5", len(seen))
		}
	})
	t.Run("OKUpdate", func(t *testing.T) {
		var ep Endpoint
		if s := api.do(merchant, "PATCH", "/webhooks/endpoints/"+created.ID, `{"description":"tea bot","event_types":null}`, &ep); s != 200 || ep.Description != "tea bot" || ep.EventTypes != nil {
			t.Fatalf("update: %d %+v", s, ep)
		}
	})
	start(t, newDispatcher(t, f.fastConfig(t)))
	t.Run("OKRotateAndTest", func(t *testing.T) {
		old := created.Secret
		var sec Secret
		if s := api.do(merchant, "POST", "/webhooks/endpoints/"+created.ID+"/rotate-secret", "", &sec); s != 200 || sec.Secret == old || sec.PreviousSecretExpiresAt == nil {
			t.Fatalf("rotate: %d %+v", s, sec)
		}
		// The receiver still holds the old secret: the grace period covers it.
		var sent map[string]string
		if s := api.do(merchant, "POST", "/webhooks/endpoints/"+created.ID+"/test", "", &sent); s != 202 {
			t.Fatalf("test: %d", s)
		}
		waitFor(t, 10*time.Second, "test.ping", func() bool { a, _ := r.snapshot(); return len(a) == 1 })
		if a, _ := r.snapshot(); a[0].Envelope.Type != TypeTestPing || a[0].Envelope.ID != sent["event_id"] {
			t.Fatalf("received %+v", a[0].Envelope)
		}
		r.mu.Lock()
		r.secret = sec.Secret
		r.mu.Unlock()
	})
	t.Run("OKDeliveriesAndReplay", func(t *testing.T) {
		f.enqueueCommitted(t, paid(channel.ID, merchant.ID, "42", 1))
		waitFor(t, 10*time.Second, "order.paid", func() bool {
			return f.count(t, `SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'`) == 2
		})
		var pg struct {
			Data []Delivery `json:"data"`
		}
		if s := api.do(merchant, "GET", "/webhooks/endpoints/"+created.ID+"/deliveries", "", &pg); s != 200 || len(pg.Data) != 2 || len(pg.Data[0].Attempts) != 1 {
			t.Fatalf("deliveries: %d %+v", s, pg)
		}
		eventID := pg.Data[0].EventID
		if s := api.do(stranger, "POST", "/webhooks/events/"+eventID+"/replay", "", nil); s != 404 {
			t.Fatalf("replay by a stranger: %d", s)
		}
		var n map[string]int
		if s := api.do(merchant, "POST", "/webhooks/events/"+eventID+"/replay", "", &n); s != 202 || n["replayed"] != 1 {
			t.Fatalf("replay: %d %v", s, n)
		}
		waitFor(t, 10*time.Second, "replayed event", func() bool {
			_, c := r.snapshot()
			return c[eventID] == 2 && f.count(t, `SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'`) == 2
		})
		since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		if s := api.do(merchant, "POST", "/webhooks/endpoints/"+created.ID+"/replay", `{"since":"`+since+`"}`, &n); s != 202 || n["replayed"] != 0 {
			t.Fatalf("replay failed since: %d %v", s, n)
		}
	})
	t.Run("OKDelete", func(t *testing.T) {
		if s := api.do(merchant, "DELETE", "/webhooks/endpoints/"+created.ID, "", nil); s != 204 {
			t.Fatalf("delete: %d", s)
		}
		if s := api.do(merchant, "GET", "/webhooks/endpoints/"+created.ID, "", nil); s != 404 {
			t.Fatalf("get after delete: %d", s)
		}
	})
}
