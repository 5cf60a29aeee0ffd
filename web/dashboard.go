package web

import (
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
	"github.com/chatpay/chatpay/webhooks"
)

// Dashboard is the merchant's web interface under /dashboard: sign-up and
// sign-in, catalog, QR codes, orders and the till, money and charts, API
// keys and webhooks, the shop's settings. Pages are rendered on the server
// from embedded templates; charts are inline SVG; nothing is loaded from
// elsewhere.
type Dashboard struct {
	deps      DashboardDeps
	sessions  *Sessions
	templates *template.Template
}

// DashboardDeps are the services the dashboard drives.
type DashboardDeps struct {
	DB          *sqlx.DB
	Now         func() time.Time
	Logger      *slog.Logger
	Catalog     *catalog.Service
	Payments    *payments.Service
	QR          *qr.Service
	Ledger      *ledger.Ledger
	Webhooks    *webhooks.Service
	Idempotency *idempotency.Store
}

// NewDashboard returns the dashboard.
func NewDashboard(deps DashboardDeps) *Dashboard {
	return &Dashboard{
		deps:      deps,
		sessions:  NewSessions(deps.DB, deps.Now),
		templates: template.Must(template.New("").Funcs(dashFuncs).ParseFS(templateFS, "templates/dash_*.html")),
	}
}

// Register mounts the dashboard's routes.
func (d *Dashboard) Register(root *echo.Group) {
	d.registerFavicon(root)
	open := root.Group("/dashboard", d.anonymous)
	open.GET("/signup", d.signupPage)
	open.POST("/signup", d.signup)
	open.GET("/login", d.loginPage)
	open.POST("/login", d.login)

	g := root.Group("/dashboard", d.requireSession)
	g.GET("", d.home)
	g.POST("/logout", d.logout)
	d.registerCatalog(g)
	d.registerQR(g)
	d.registerOrders(g)
	d.registerMoney(g)
	d.registerIntegrations(g)
	d.registerSettings(g)
}

// page is what every signed-in page template receives.
type page struct {
	Title    string
	Nav      string // the active section
	CSRF     string
	Merchant catalog.Merchant
	Staff    catalog.Staff
	Flash    string
	Error    string
	Fields   []problem.FieldError
	Data     any
}

// contextKey names what the session middleware puts in the echo context.
const (
	sessionContextKey  = "web.session"
	merchantContextKey = "web.merchant"
	csrfContextKey     = "web.csrf"
)

// anonymous serves the sign-in and sign-up pages: it checks the double-submit
// token of their forms.
func (d *Dashboard) anonymous(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := anonymousCSRF(c)
		c.Set(csrfContextKey, token)
		if c.Request().Method == http.MethodPost {
			if err := checkCSRF(c, cookieValue(c, csrfCookieName)); err != nil {
				return d.renderError(c, err)
			}
		}
		return next(c)
	}
}

// requireSession lets signed-in staff of active merchants through and sends
// everyone else to the sign-in page; every POST must carry the session's
// CSRF token.
func (d *Dashboard) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		sess, found, err := d.sessions.Lookup(ctx, cookieValue(c, sessionCookieName))
		if err != nil {
			return d.renderError(c, err)
		}
		if !found {
			if c.Request().Method == http.MethodPost {
				return d.renderError(c, errCSRF)
			}
			return c.Redirect(http.StatusSeeOther, "/dashboard/login")
		}
		merchant, err := d.deps.Catalog.Merchant(ctx, sess.MerchantID)
		if err != nil {
			return d.renderError(c, err)
		}
		if merchant.Status != catalog.MerchantActive {
			return d.renderError(c, catalog.ErrSuspended)
		}
		if c.Request().Method == http.MethodPost {
			if err := checkCSRF(c, sess.CSRFToken); err != nil {
				return d.renderError(c, err)
			}
		}
		c.Set(sessionContextKey, sess)
		c.Set(merchantContextKey, merchant)
		c.Set(csrfContextKey, sess.CSRFToken)
		return next(c)
	}
}

func merchantOf(c echo.Context) catalog.Merchant {
	m, _ := c.Get(merchantContextKey).(catalog.Merchant)
	return m
}

func csrfOf(c echo.Context) string {
	s, _ := c.Get(csrfContextKey).(string)
	return s
}

// newPage starts the view of a signed-in page.
func newPage(c echo.Context, title, nav string, data any) page {
	return page{Title: title, Nav: nav, CSRF: csrfOf(c), Merchant: merchantOf(c), Flash: c.QueryParam("flash"), Data: data}
}

// renderPage writes a dashboard template with the security headers every
// page gets: no framing (clickjacking), no caching of merchant data.
func (d *Dashboard) renderPage(c echo.Context, status int, name string, data any) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'")
	h.Set("Referrer-Policy", "same-origin")
	c.Response().WriteHeader(status)
	if err := d.templates.ExecuteTemplate(c.Response(), name, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return nil
}

// renderError shows an error as a page with the problem's status; unknown
// errors are logged and shown as a generic 500.
func (d *Dashboard) renderError(c echo.Context, err error) error {
	p, ok := problem.As(err)
	if !ok {
		d.deps.Logger.ErrorContext(c.Request().Context(), "dashboard page failed", "error", err, "path", c.Request().URL.Path)
		p = problem.New(problem.KindInternal, "internal_error", "something went wrong on our side; it has been logged")
	}
	if retry, ok := p.Extensions["retry_after_seconds"].(int); ok {
		c.Response().Header().Set("Retry-After", fmt.Sprint(retry))
	}
	view := newPage(c, errorTitle(p), "", p)
	return d.renderPage(c, p.Status(), "dash_error.html", view)
}

func errorTitle(p *problem.Error) string {
	switch p.Kind {
	case problem.KindNotFound:
		return "Not found"
	case problem.KindForbidden:
		return "Not allowed"
	case problem.KindTooManyRequests:
		return "Slow down"
	case problem.KindInternal:
		return "Something went wrong"
	}
	return "Could not do that"
}

// formProblem splits a service error into what a form shows: field errors
// next to the form, or the error page for everything else.
func formProblem(err error) (*problem.Error, bool) {
	p, ok := problem.As(err)
	if !ok || p.Status() >= 500 || p.Kind == problem.KindNotFound || p.Kind == problem.KindForbidden {
		return nil, false
	}
	return p, true
}

// redirectFlash sends the browser on after a successful post (post/redirect/get).
func redirectFlash(c echo.Context, path, flash string) error {
	if flash != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "flash=" + url.QueryEscape(flash)
	}
	return c.Redirect(http.StatusSeeOther, path)
}

var dashFuncs = template.FuncMap{
	"money": func(a money.Amount) string { return a.String() },
	"minor": func(minor int64, currency string) string {
		c, err := money.ParseCurrency(currency)
		if err != nil {
			return fmt.Sprint(minor)
		}
		return money.New(minor, c).String()
	},
	"localtime": func(t time.Time, m catalog.Merchant) string {
		return t.In(m.Location()).Format("2 Jan 2006 15:04")
	},
	"localtimep": func(t *time.Time, m catalog.Merchant) string {
		if t == nil {
			return ""
		}
		return t.In(m.Location()).Format("2 Jan 2006 15:04")
	},
	"active": func(nav, want string) string {
		if nav == want {
			return "page"
		}
		return "false"
	},
	"fieldError": fieldErrorText,
	"join":       strings.Join,
	"plural":     plural,
	// words shows a stored state ("partially_refunded") as words.
	"words": func(state any) string { return strings.ReplaceAll(fmt.Sprint(state), "_", " ") },
	"count": countOf,
	// validUntil shows a coupon's exclusive end as the rule text does: an end
	// at midnight is the day before ("until 16 Dec", not "17 Dec 00:00").
	"validUntil": func(t time.Time, m catalog.Merchant) string { return catalog.RenderEnd(t, "en", m.Location()) },
	"derefInt": func(p *int) string {
		if p == nil {
			return ""
		}
		return fmt.Sprint(*p)
	},
	"derefInt64": func(p *int64) string {
		if p == nil {
			return ""
		}
		return fmt.Sprint(*p)
	},
}

func itoa(n int) string { return fmt.Sprint(n) }

// plural picks the word for a count (any integer type, as templates hold
// both): "1 attempt", "2 attempts", "0 attempts".
func plural(n any, one, many string) string {
	if fmt.Sprint(n) == "1" {
		return one
	}
	return many
}

// countOf writes a count with its noun: countOf(1, "attempt", "attempts") is
// "1 attempt".
func countOf(n any, one, many string) string {
	return fmt.Sprint(n) + " " + plural(n, one, many)
}
