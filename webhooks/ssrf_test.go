package webhooks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/chatpay/chatpay/internal/problem"
)

func TestCheckURL(t *testing.T) {
	strict := URLPolicy{}
	refused := []struct{ url, code string }{
		{"http://93.184.216.34/hook", "url_scheme"},
		{"ftp://example.com/hook", "url_scheme"},
		{"https://user:pw@example.com/hook", "url_userinfo"},
		{"https://127.0.0.1/hook", "url_private_address"},
		{"https://127.1.2.3:8443/hook", "url_private_address"},
		{"https://10.0.0.1/", "url_private_address"},
		{"https://172.16.5.4/", "url_private_address"},
		{"https://192.168.1.1/", "url_private_address"},
		{"https://169.254.169.254/latest/meta-data", "url_private_address"},
		{"https://100.64.0.1/", "url_private_address"},
		{"https://0.0.0.0/", "url_private_address"},
		{"https://255.255.255.255/", "url_private_address"},
		{"https://[::1]/", "url_private_address"},
		{"https://[::]/", "url_private_address"},
		{"https://[fe80::1%25eth0]/", "url_private_address"},
		{"https://[fe80::1]/", "url_private_address"},
		{"https://[fc00::1]/", "url_private_address"},
		{"https://[fd12:3456::1]/", "url_private_address"},
		{"https://[::ffff:127.0.0.1]/", "url_private_address"},
		{"https://[::ffff:7f00:1]/", "url_private_address"},
		{"https://[::ffff:10.1.2.3]/", "url_private_address"},
		{"https://[::127.0.0.1]/", "url_private_address"},
		{"https://[64:ff9b::a00:1]/", "url_private_address"},
		{"https://[2002:7f00:1::1]/", "url_private_address"},
		{"https://2130706433/", "url_private_address"},
		{"https://0x7f.1/", "url_private_address"},
		{"https://0x7f000001/", "url_private_address"},
		{"https://0177.0.0.1/", "url_private_address"},
		{"https://127.1/", "url_private_address"},
		{"https://017700000001/", "url_private_address"},
		{"https://3232235777/", "url_private_address"}, // 192.168.1.1
		{"https://134744072/", "url_numeric_host"},     // 8.8.8.8 written oddly
		{"https://localhost/", "url_private_address"},
		{"https://LOCALHOST./", "url_private_address"},
		{"https://api.localhost/", "url_private_address"},
		{"https://intranet/", "url_private_address"},
		{"not a url", "invalid_url"},
	}
	for _, tc := range refused {
		t.Run("Err_"+tc.url, func(t *testing.T) {
			err := strict.CheckURL(context.Background(), tc.url)
			p, ok := problem.As(err)
			if !ok || p.Status() != 422 || len(p.Fields) == 0 || p.Fields[0].Code != tc.code {
				t.Fatalf("CheckURL(%q) = %v, want 422 with field code %s", tc.url, err, tc.code)
			}
		})
	}
	for _, ok := range []string{"https://93.184.216.34/hook", "https://[2606:4700::1111]/x", "https://bot.example.invalid/hook"} {
		t.Run("OK_"+ok, func(t *testing.T) {
			if err := strict.CheckURL(context.Background(), ok); err != nil {
				t.Fatalf("CheckURL(%q) = %v", ok, err)
			}
		})
	}
	t.Run("OKDevelopment", func(t *testing.T) {
		dev := URLPolicy{AllowHTTP: true, AllowLoopback: true}
		if err := dev.CheckURL(context.Background(), "http://127.0.0.1:8090/"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDialGuard shows that the guard holds at connect time, after DNS: a
// name resolving to loopback and a redirect to loopback are refused. No
// packet leaves the machine: the only server is on 127.0.0.1.
func TestDialGuard(t *testing.T) {
	hits := 0
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()
	port := receiver.URL[strings.LastIndex(receiver.URL, ":")+1:]

	guarded := URLPolicy{AllowHTTP: true}.newHTTPClient(HTTPTimeoutDefault, 1)
	for _, u := range []string{"http://localhost:" + port + "/", "http://127.0.0.1:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/"} {
		t.Run("ErrRefused_"+u, func(t *testing.T) {
			resp, err := guarded.Post(u, "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("POST %s succeeded, want refusal", u)
			}
			if !errors.Is(err, ErrRefusedAddress) {
				t.Fatalf("POST %s: %v, want ErrRefusedAddress", u, err)
			}
		})
	}
	if hits != 0 {
		t.Fatalf("receiver was reached %d times", hits)
	}

	t.Run("OKRedirectNotFollowed", func(t *testing.T) {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, receiver.URL+"/internal", http.StatusTemporaryRedirect)
		}))
		defer redirector.Close()
		dev := URLPolicy{AllowHTTP: true, AllowLoopback: true}.newHTTPClient(HTTPTimeoutDefault, 1)
		resp, err := dev.Post(redirector.URL, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || hits != 0 {
			t.Fatalf("status %d, receiver hits %d: the redirect was followed", resp.StatusCode, hits)
		}
	})
}

func TestKeepExcerpt(t *testing.T) {
	public, private := mustAddr("93.184.216.34"), mustAddr("127.0.0.1")
	cases := []struct {
		status int
		remote string
		keep   bool
	}{{200, "public", true}, {404, "public", true}, {500, "public", false}, {302, "public", false}, {200, "private", false}}
	for _, c := range cases {
		addr := public
		if c.remote == "private" {
			addr = private
		}
		if got := keepExcerpt(c.status, addr); got != c.keep {
			t.Errorf("keepExcerpt(%d, %s) = %v, want %v", c.status, c.remote, got, c.keep)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestLoopbackPolicyStaysLoopback: the development setting opens loopback
// and nothing else, and the demo's exception opens one address and port.
func TestLoopbackPolicyStaysLoopback(t *testing.T) {
	dev := URLPolicy{AllowHTTP: true, AllowLoopback: true}
	for _, u := range []string{"https://169.254.169.254/latest/meta-data", "http://10.0.0.7/hook", "http://192.168.1.1/",
		"http://[fe80::1]/", "http://100.64.0.1/", "http://[fd00::1]/"} {
		t.Run("ErrDev_"+u, func(t *testing.T) {
			if err := dev.CheckURL(context.Background(), u); err == nil {
				t.Fatalf("the development policy accepted %s", u)
			}
			host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://"), "/")
			host = strings.SplitN(host, "/", 2)[0]
			if err := dev.dialControl("tcp4", strings.Trim(host, "[]")+":80", nil); err == nil && !strings.Contains(host, ":") {
				t.Fatalf("the development dialer would connect to %s", host)
			}
		})
	}
	if err := dev.CheckURL(context.Background(), "http://127.0.0.1:8090/hook"); err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	sim := netip.MustParseAddrPort("127.0.0.1:41234")
	demo := URLPolicy{Allowed: []netip.AddrPort{sim}}
	t.Run("OKDemoChatSim", func(t *testing.T) {
		if err := demo.CheckURL(context.Background(), "http://127.0.0.1:41234/webhooks"); err != nil {
			t.Fatal(err)
		}
		if err := demo.dialControl("tcp4", "127.0.0.1:41234", nil); err != nil {
			t.Fatal(err)
		}
	})
	for _, u := range []string{"http://127.0.0.1:41235/", "https://127.0.0.1:22/", "http://bot.example.com/hook", "https://169.254.169.254/latest/meta-data"} {
		t.Run("ErrDemo_"+u, func(t *testing.T) {
			if err := demo.CheckURL(context.Background(), u); err == nil {
				t.Fatalf("the demo policy accepted %s", u)
			}
		})
	}
	if err := demo.dialControl("tcp4", "127.0.0.1:22", nil); err == nil {
		t.Fatal("the demo dialer would connect to another loopback port")
	}
}
