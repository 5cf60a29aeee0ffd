package main

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
	"github.com/chatpay/chatpay/web"
	"github.com/chatpay/chatpay/webhooks"
)

// mountRoutes is chatpay's route table: every package's handlers mount
// through the same Register(*echo.Group) on the root, /v1 or /v1/admin.
// Merchant routes take the merchant API key (sk_…), channel routes the
// channel key (ck_…); webhook endpoints belong to whichever of the two
// calls; the admin API takes the operator token and is off without one.
func (a *app) mountRoutes() {
	a.echo.Use(keyModeGuard(a.cfg.Sandbox))
	if a.cfg.Sandbox {
		a.echo.Use(testModeBand)
	}
	root := a.echo.Group("")
	v1 := root.Group("/v1")
	catalog.NewHTTP(a.catalog, a.idempotency).Register(root)
	// qr cannot import catalog, so the merchant-key check comes from here.
	qr.NewHTTP(a.qr, a.idempotency, merchantIDOf).Register(v1, catalog.RequireMerchantKey(a.catalog))
	webhooks.NewHTTP(a.webhooks, a.webhookOwner).Register(v1)
	payments.NewHTTP(a.payments, a.catalog, a.idempotency).Register(root)
	shopper := web.NewShopper(a.payments, a.catalog, a.idempotency, a.logger, a.cfg.Now)
	shopper.Register(root)
	web.NewWeChatPages(shopper, payments.NewWeChatOAuth(a.payments, a.cfg.WeChat, a.cfg.PublicBaseURL)).Register(root)
	if a.cfg.Sandbox {
		payments.NewTestClockHTTP(a.payments).Register(v1, catalog.RequireMerchantKey(a.catalog))
	}
	if a.cfg.OperatorToken != "" {
		admin := v1.Group("/admin", httpapi.RequireOperator(a.cfg.OperatorToken))
		catalog.NewAdminHTTP(a.catalog).Register(admin)
		payments.NewAdminHTTP(a.payments).Register(admin)
	}
	// Merchant dashboard (/dashboard): session sign-in, catalog, QR codes,
	// orders and the till, money and charts, keys and webhooks.
	web.NewDashboard(web.DashboardDeps{
		DB: a.db, Now: a.cfg.Now, Logger: a.logger, Catalog: a.catalog, Payments: a.payments, QR: a.qr,
		Ledger: a.ledger, Webhooks: a.webhooks, Idempotency: a.idempotency,
	}).Register(root)
}

// merchantIDOf is qr's merchant resolver: the merchant RequireMerchantKey
// authenticated.
func merchantIDOf(c echo.Context) (string, error) {
	m, ok := catalog.MerchantFromContext(c)
	if !ok {
		return "", problem.New(problem.KindUnauthorized, "missing_api_key", "a merchant API key is required")
	}
	return m.ID, nil
}

// mountDemo adds /demo/shop (serve --demo): it signs a fresh launch context
// for the demo shopper each time, as a messenger would when the shopper taps
// the QR link in the chat, and opens the tea card's checkout page.
func (a *app) mountDemo(state *demoState) {
	a.echo.GET("/demo/shop", func(c echo.Context) error {
		launch := payments.SignLaunch(state.LaunchSecret, map[string]string{
			"channel_id": state.ChannelID, "user_id": demoShopperUserID, "chat_id": "demo-chat",
			"name": "Demo Shopper", "auth_date": strconv.FormatInt(a.cfg.Now().Unix(), 10),
		})
		return c.Redirect(http.StatusSeeOther, "/q/"+state.QRToken+"?launch="+url.QueryEscape(launch))
	})
}
