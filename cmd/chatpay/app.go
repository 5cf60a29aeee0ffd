package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
	"github.com/chatpay/chatpay/webhooks"
)

// The wiring. newServices builds the one domain graph (serve, bench and the
// run-once commands all use it, so a collaborator is never left out of one
// of them), newApp puts the HTTP routes (routes.go) and the background
// workers around it. Dependencies are passed at construction only.

// servicesConfig is what the domain graph needs from flags.
type servicesConfig struct {
	Now func() time.Time
	// PublicBaseURL is where shoppers reach the pages (QR codes point there).
	PublicBaseURL string
	// PlatformFee is the platform's share of recognised revenue.
	PlatformFee money.Rate
	// Provider funds wallets; nil answers top-ups with provider_unavailable.
	Provider payments.Provider
	// Providers finds each merchant's real provider (Stripe, WeChat Pay);
	// nil leaves every merchant on Provider.
	Providers payments.ProviderDirectory
	// WebhookPolicy says which endpoint URLs are accepted.
	WebhookPolicy webhooks.URLPolicy
	// Sandbox builds a test-mode graph (sandbox_mode.go).
	Sandbox bool
}

// services is chatpay's domain graph, in dependency order.
type services struct {
	idempotency *idempotency.Store
	ledger      *ledger.Ledger
	catalog     *catalog.Service
	qr          *qr.Service
	webhooks    *webhooks.Service
	payments    *payments.Service
}

func newServices(db *sqlx.DB, cfg servicesConfig) (*services, error) {
	now := cfg.Now
	s := &services{
		idempotency: idempotency.NewStore(db, now),
		ledger:      ledger.New(now).Prepared(db),
		catalog:     newCatalog(db, now, cfg.Sandbox),
		webhooks:    newWebhooks(db, cfg.WebhookPolicy, now, cfg.Sandbox),
	}
	checkItem := func(ctx context.Context, merchantID, itemID string) error {
		_, err := s.catalog.Item(ctx, merchantID, itemID)
		return err
	}
	var err error
	if s.qr, err = qr.NewService(db, now, cfg.PublicBaseURL, checkItem, qr.WithChannelLinker(payments.ChannelLinker(db))); err != nil {
		return nil, fmt.Errorf("public base URL: %w", err)
	}
	s.payments = payments.NewService(db, now, s.ledger, s.catalog, s.qr, payments.Config{
		PlatformFee: cfg.PlatformFee, Provider: cfg.Provider, Outbox: s.webhooks, Sandbox: cfg.Sandbox,
		Providers: realProviders(cfg), PublicBaseURL: cfg.PublicBaseURL,
	})
	return s, nil
}

// appConfig is what the wiring needs from flags.
type appConfig struct {
	Now func() time.Time
	// PublicBaseURL is where shoppers reach the pages (QR codes point there).
	PublicBaseURL string
	// PlatformFee is the platform's share of recognised revenue.
	PlatformFee money.Rate
	// ListenDSN lets the webhook dispatcher LISTEN for new events; empty polls.
	ListenDSN string
	Webhooks  webhookConfig
	// LoopbackWebhooks lets webhooks reach loopback receivers over http
	// (tests and the bench, whose receivers take any free port).
	LoopbackWebhooks bool
	// Provider funds wallets; nil answers top-ups with provider_unavailable.
	Provider payments.Provider
	// Providers finds each merchant's real provider (Stripe, WeChat Pay).
	Providers payments.ProviderDirectory
	// OperatorToken turns on the admin API (/v1/admin); empty leaves it off.
	OperatorToken string
	// Live answers /healthz (nil: always live); Collectors join /metrics.
	Live       httpapi.ReadinessCheck
	Collectors []prometheus.Collector
	// WeChat are the Official Account web authorization's URLs (messengers.go).
	WeChat payments.WeChatEndpoints
	// Sandbox is a test-mode instance (serve --sandbox; sandbox_mode.go).
	Sandbox bool
}

// app is the wired service: every domain's routes on one echo instance, and
// the background workers that belong to serve.
type app struct {
	*services
	echo       *echo.Echo
	db         *sqlx.DB
	logger     *slog.Logger
	cfg        appConfig
	dispatcher *webhooks.Dispatcher
}

// newApp is the one place that wires chatpay. A dispatcher that cannot be
// built fails start-up: a service that takes money but never tells the
// messengers is worse than one that does not start.
func newApp(db *sqlx.DB, migrator *database.Migrator, logger *slog.Logger, cfg appConfig) (*app, error) {
	if cfg.LoopbackWebhooks {
		cfg.Webhooks.AllowLoopback, cfg.Webhooks.AllowHTTP = true, true
	}
	if cfg.Webhooks.Workers == 0 {
		cfg.Webhooks.Workers = webhooks.WorkersDefault
	}
	if cfg.Webhooks.DisableAfter == 0 {
		cfg.Webhooks.DisableAfter = webhooks.DisableAfterDefault
	}
	svc, err := newServices(db, servicesConfig{
		Now: cfg.Now, PublicBaseURL: cfg.PublicBaseURL, PlatformFee: cfg.PlatformFee,
		Provider: cfg.Provider, Providers: cfg.Providers, WebhookPolicy: cfg.Webhooks.policy(), Sandbox: cfg.Sandbox,
	})
	if err != nil {
		return nil, err
	}
	cfg.Webhooks.Test = cfg.Sandbox
	dispatcher, err := cfg.Webhooks.dispatcher(db, cfg.ListenDSN, logger)
	if err != nil {
		return nil, fmt.Errorf("webhook dispatcher: %w", err)
	}
	a := &app{
		services: svc, db: db, logger: logger, cfg: cfg, dispatcher: dispatcher,
		echo: httpapi.New(httpapi.Options{Logger: logger, Registry: metricsRegistry(db, newWebhookBacklog(svc.webhooks, logger), cfg.Collectors),
			Ready: readiness(db, migrator), Live: cfg.Live, Locations: createdLocations}),
	}
	a.mountRoutes()
	return a, nil
}

// metricsRegistry is /metrics: Go, process and connection-pool collectors
// (httpapi adds the request metrics).
func metricsRegistry(db *sqlx.DB, backlog prometheus.Collector, more []prometheus.Collector) *prometheus.Registry {
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(db.DB, "chatpay"),
		backlog,
	)
	registry.MustRegister(more...)
	return registry
}

// readiness is /readyz: the database answers and no migration is pending.
func readiness(db *sqlx.DB, migrator *database.Migrator) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
		pending, err := migrator.Pending(ctx)
		if err != nil {
			return fmt.Errorf("migration state unknown: %w", err)
		}
		if pending {
			return errors.New("migrations pending")
		}
		return nil
	}
}

// webhookOwner authenticates a webhook-endpoint call by either kind of key.
func (a *app) webhookOwner(c echo.Context) (webhooks.Owner, error) {
	key, _ := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	ctx := c.Request().Context()
	switch {
	case strings.HasPrefix(key, "ck_"):
		ch, err := a.payments.ChannelByAPIKey(ctx, key)
		if err != nil {
			return webhooks.Owner{}, err
		}
		return webhooks.Owner{Kind: webhooks.OwnerChannel, ID: ch.ID}, nil
	case strings.HasPrefix(key, "sk_"):
		m, _, err := a.catalog.AuthenticateKey(ctx, key)
		if err != nil {
			return webhooks.Owner{}, err
		}
		return webhooks.Owner{Kind: webhooks.OwnerMerchant, ID: m.ID}, nil
	}
	return webhooks.Owner{}, problem.New(problem.KindUnauthorized, "missing_api_key",
		"send a merchant (sk_…) or channel (ck_…) API key as Authorization: Bearer")
}

// idempotencyPurgeEvery is how often expired idempotency keys are deleted.
const idempotencyPurgeEvery = time.Hour

// startWorkers runs serve's background work until ctx ends: the webhook
// dispatcher (it polls only if LISTEN has no connection string) and the
// periodic jobs.
func (a *app) startWorkers(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(func() {
		if err := a.dispatcher.Run(ctx); err != nil {
			a.logger.Error("webhook dispatcher", "error", err)
		}
	})
	a.every(ctx, wg, "purge idempotency keys", idempotencyPurgeEvery, func(ctx context.Context) (int64, error) {
		return a.idempotency.Purge(ctx, 2*idempotency.RetentionMin)
	})
	a.every(ctx, wg, "expire checkouts", checkoutExpiryEvery, func(ctx context.Context) (int64, error) {
		n, err := a.payments.ExpireCheckouts(ctx, checkoutExpiryBatchMax)
		return int64(n), err
	})
	a.startAfterSaleWorkers(ctx, wg)
}
