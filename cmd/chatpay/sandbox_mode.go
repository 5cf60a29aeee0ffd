package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/instancemode"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/webhooks"
)

// Sandbox (test mode) wiring: `serve --sandbox` builds the same graph with
// test-mode constructors, records the mode in the database once, refuses
// keys of the other mode, mounts the test clocks and bands every page.
// docs/sandbox.md has the whole picture.

func newCatalog(db *sqlx.DB, now func() time.Time, sandbox bool) *catalog.Service {
	if sandbox {
		return catalog.NewSandboxService(db, now)
	}
	return catalog.NewService(db, now)
}

func newWebhooks(db *sqlx.DB, policy webhooks.URLPolicy, now func() time.Time, sandbox bool) *webhooks.Service {
	if sandbox {
		return webhooks.NewSandboxService(db, policy, now)
	}
	return webhooks.NewService(db, policy, now)
}

// claimMode records the instance's mode in the database, or refuses to
// start when a database of the other mode is given. A sandbox talks to the
// sandbox card provider only: the in-process one, or provider-sandbox on
// this machine's loopback.
func claimMode(ctx context.Context, db *sqlx.DB, sandbox bool, provider *providerConfig, logger *slog.Logger) error {
	if sandbox && provider.URL != "" && !loopbackURL(provider.URL) {
		return fmt.Errorf("--sandbox talks to the sandbox card provider only: --provider-url %q is not a loopback address (run `chatpay provider-sandbox` or leave it empty)", provider.URL)
	}
	if err := instancemode.Claim(ctx, db, instancemode.Of(sandbox), time.Now()); err != nil {
		return err
	}
	if sandbox {
		logger.Warn("SANDBOX: test mode instance; keys are sk_test_/ck_test_, events carry livemode=false, no real money moves")
	}
	return nil
}

func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())
}

// Key prefixes of the two modes.
const (
	testMerchantKeyPrefix = "sk_test_"
	testChannelKeyPrefix  = "ck_test_"
)

// keyModeGuard refuses, before any lookup, a live key on a sandbox and a test
// key on a live instance, with a code that says which mistake it was.
func keyModeGuard(sandbox bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			scheme, key, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
			key = strings.TrimSpace(key)
			if !ok || !strings.EqualFold(scheme, "Bearer") || !(strings.HasPrefix(key, "sk_") || strings.HasPrefix(key, "ck_")) {
				return next(c)
			}
			test := strings.HasPrefix(key, testMerchantKeyPrefix) || strings.HasPrefix(key, testChannelKeyPrefix)
			switch {
			case sandbox && !test:
				return problem.New(problem.KindUnauthorized, "live_key_in_test_mode",
					"this is a sandbox (test mode) instance: use a test key (sk_test_… or ck_test_…)")
			case !sandbox && test:
				return problem.New(problem.KindUnauthorized, "test_key_in_live_mode",
					"this is a live instance: test keys (sk_test_…, ck_test_…) work only on a sandbox")
			}
			return next(c)
		}
	}
}

// testModeBandHTML opens every page of a sandbox, so that nobody mistakes it
// for the real thing; pages allow inline styles (shopper and dashboard CSP).
// %s is the band's words in the page's language.
const testModeBandHTML = `<div class="test-mode-band" role="status" style="background:#ffd60a;color:#1b1f24;text-align:center;` +
	`font:600 15px/1.4 system-ui,sans-serif;padding:6px 8px;border-bottom:2px solid #1b1f24">%s</div>`

// testModeWords are the band's words by the primary subtag of the page's
// <html lang>: a Chinese or Russian shopper page gets a band it can read.
var testModeWords = map[string]string{
	"en": "Test mode — sandbox instance: no real money moves",
	"zh": "测试模式 — 沙盒环境：不会产生真实扣款",
	"ru": "Тестовый режим — песочница: настоящие деньги не списываются",
}

// testModeBandFor is the band for page, in the language its <html lang>
// names, English when it names none the band speaks.
func testModeBandFor(page []byte) string {
	words := testModeWords["en"]
	if i := bytes.Index(page, []byte(`<html lang="`)); i >= 0 {
		lang := page[i+len(`<html lang="`):]
		if end := bytes.IndexAny(lang, `"-_`); end >= 0 {
			if w, ok := testModeWords[strings.ToLower(string(lang[:end]))]; ok {
				words = w
			}
		}
	}
	return fmt.Sprintf(testModeBandHTML, words)
}

// testModeBand inserts the band after the <body> tag of every HTML page.
// It works on the rendered page so that the page templates stay as they are.
func testModeBand(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if strings.HasPrefix(c.Request().URL.Path, "/v1/") {
			return next(c)
		}
		res := c.Response()
		bw := &bandWriter{ResponseWriter: res.Writer}
		res.Writer = bw
		err := next(c)
		res.Writer = bw.ResponseWriter
		bw.finish()
		return err
	}
}

// bandWriter holds back an HTML answer until it is complete, then writes it
// with the band; anything else passes straight through.
type bandWriter struct {
	http.ResponseWriter
	status int
	html   bool
	held   bytes.Buffer
}

func (w *bandWriter) WriteHeader(status int) {
	w.status = status
	if strings.HasPrefix(w.Header().Get(echo.HeaderContentType), "text/html") {
		w.html = true
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *bandWriter) Write(p []byte) (int, error) {
	if w.html {
		return w.held.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *bandWriter) finish() {
	if !w.html {
		return
	}
	page := w.held.Bytes()
	if i := bytes.Index(page, []byte("<body")); i >= 0 {
		if end := bytes.IndexByte(page[i:], '>'); end >= 0 {
			at := i + end + 1
			page = append(append(append([]byte{}, page[:at]...), testModeBandFor(page)...), page[at:]...)
		}
	}
	w.Header().Del(echo.HeaderContentLength)
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(page)
}

// sandboxDatabase tells the run-once commands (merchant, expire, reconcile)
// whether the database is a sandbox's, so that they create test keys and
// livemode=false events there.
func sandboxDatabase(ctx context.Context, db sqlx.QueryerContext) (bool, error) {
	mode, err := instancemode.Read(ctx, db)
	return mode == instancemode.Sandbox, err
}
