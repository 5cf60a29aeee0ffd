package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	"github.com/chatpay/chatpay/web"
	"github.com/chatpay/chatpay/webhooks"
)

// HTTP server limits: slow clients cannot hold connections forever, and a
// shutdown waits this long at most for requests in flight.
const (
	readHeaderTimeout  = 5 * time.Second
	readTimeout        = 15 * time.Second
	writeTimeout       = 30 * time.Second
	idleTimeout        = 90 * time.Second
	shutdownTimeoutMax = 10 * time.Second
)

func runServe(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	fs.StringVar(&cfg.Listen, "listen", envOr(env, "CHATPAY_LISTEN", "127.0.0.1:8080"), "address to listen on (env CHATPAY_LISTEN)")
	fs.BoolVar(&cfg.NoMigrate, "no-migrate", envBool(env, "CHATPAY_NO_MIGRATE"), "do not apply pending migrations at start (env CHATPAY_NO_MIGRATE)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", envDuration(env, "CHATPAY_SHUTDOWN_TIMEOUT", shutdownTimeoutMax),
		"how long to let in-flight requests finish on SIGTERM (env CHATPAY_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&cfg.PublicURL, "public-url", env.getenv("CHATPAY_PUBLIC_URL"),
		"base URL shoppers reach the pages at, printed in QR codes (env CHATPAY_PUBLIC_URL; default http://<listen>)")
	fs.StringVar(&cfg.PlatformFee, "platform-fee", envOr(env, "CHATPAY_PLATFORM_FEE", "0.02"),
		"platform fee as a fraction of recognised revenue (env CHATPAY_PLATFORM_FEE)")
	demo := fs.Bool("demo", envBool(env, "CHATPAY_DEMO"),
		"seed the tea-card merchant, a demo channel and shopper, print the item QR, and show webhooks arriving in a local chat-sim (env CHATPAY_DEMO)")
	operatorToken := fs.String("operator-token", env.getenv("CHATPAY_OPERATOR_TOKEN"),
		fmt.Sprintf("bearer token of the operator's admin API under /v1/admin, at least %d characters; without it the admin API is off (env CHATPAY_OPERATOR_TOKEN)",
			httpapi.OperatorTokenLengthMin))
	webhookCfg := webhookFlags(fs, env)
	providerCfg := providerFlags(fs, env)
	hostedCfg := hostedProviderFlags(fs, env)
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *operatorToken != "" && len(*operatorToken) < httpapi.OperatorTokenLengthMin {
		return fmt.Errorf("--operator-token: at least %d characters are required (for example: openssl rand -hex 32)", httpapi.OperatorTokenLengthMin)
	}
	logger, err := cfg.logger(env)
	if err != nil {
		return err
	}
	fee, err := money.ParseRate(cfg.PlatformFee)
	if err != nil {
		return fmt.Errorf("--platform-fee: %w", err)
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Listen
	}

	db, closeDB, err := cfg.openDatabase(ctx, logger)
	if err != nil {
		return err
	}
	defer closeDB()

	migrator, err := database.NewMigrator(db.DB)
	if err != nil {
		return err
	}
	if !cfg.NoMigrate {
		if err := migrator.Up(ctx, logWriter{logger}); err != nil {
			return err
		}
	}

	provider, stopProvider, err := providerCfg.open(ctx, logger)
	if err != nil {
		return err
	}
	defer stopProvider()
	providerStore, err := hostedCfg.store(db, time.Now)
	if err != nil {
		return err
	}

	app, err := newApp(db, migrator, logger, appConfig{
		Now: time.Now, PublicBaseURL: cfg.PublicURL, PlatformFee: fee, ListenDSN: cfg.dsn, Webhooks: *webhookCfg,
		Provider: provider, OperatorToken: *operatorToken, Providers: providerDirectory(providerStore),
		// The demo's chat-sim listens on loopback; a real deployment never allows that.
		AllowPrivateWebhooks: *demo,
	})
	if err != nil {
		return err
	}

	if *demo {
		stopDemo, err := app.startDemo(ctx, cfg.DataDir, env.stdout)
		if err != nil {
			return err
		}
		defer stopDemo()
	}

	listener, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	server := &http.Server{
		Handler:           app.echo,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("chatpay listening", "url", "http://"+listener.Addr().String())

	workerCtx, stopWorkers := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	app.startWorkers(workerCtx, &workers)

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()

	select {
	case err := <-serveErr:
		stopWorkers()
		workers.Wait()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing requests in flight", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	shutdownErr := server.Shutdown(shutdownCtx)
	stopWorkers()
	workers.Wait()
	if shutdownErr != nil && !errors.Is(shutdownErr, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	if shutdownErr != nil {
		logger.Warn("requests still running at the shutdown deadline were cut off")
	}
	logger.Info("stopped")
	return nil
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
	// AllowPrivateWebhooks lets webhooks reach loopback (tests, local demo).
	AllowPrivateWebhooks bool
	// Provider funds wallets; nil answers top-ups with provider_unavailable.
	Provider payments.Provider
	// Providers finds each merchant's real provider (Stripe, WeChat Pay);
	// nil leaves every merchant on Provider.
	Providers payments.ProviderDirectory
	// OperatorToken turns on the admin API (/v1/admin); empty leaves it off.
	OperatorToken string
}

// app is the wired service: every domain's routes on one echo instance, and
// the background workers that belong to serve.
type app struct {
	echo        *echo.Echo
	db          *sqlx.DB
	logger      *slog.Logger
	cfg         appConfig
	idempotency *idempotency.Store
	ledger      *ledger.Ledger
	catalog     *catalog.Service
	qr          *qr.Service
	webhooks    *webhooks.Service
	payments    *payments.Service
}

func newApp(db *sqlx.DB, migrator *database.Migrator, logger *slog.Logger, cfg appConfig) (*app, error) {
	if cfg.AllowPrivateWebhooks {
		cfg.Webhooks.AllowPrivate, cfg.Webhooks.AllowHTTP = true, true
	}
	if cfg.Webhooks.Workers == 0 {
		cfg.Webhooks.Workers = webhooks.WorkersDefault
	}
	if cfg.Webhooks.DisableAfter == 0 {
		cfg.Webhooks.DisableAfter = webhooks.DisableAfterDefault
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(db.DB, "chatpay"),
	)
	ready := func(ctx context.Context) error {
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
	now := cfg.Now
	a := &app{
		echo:        httpapi.New(httpapi.Options{Logger: logger, Registry: registry, Ready: ready}),
		db:          db,
		logger:      logger,
		cfg:         cfg,
		idempotency: idempotency.NewStore(db, now),
		ledger:      ledger.New(now),
		catalog:     catalog.NewService(db, now),
		webhooks:    webhooks.NewService(db, cfg.Webhooks.policy(), now),
	}
	var err error
	if a.qr, err = qr.NewService(db, now, cfg.PublicBaseURL); err != nil {
		return nil, fmt.Errorf("public base URL: %w", err)
	}
	a.payments = payments.NewService(db, now, a.ledger, a.catalog, a.qr, payments.Config{PlatformFee: cfg.PlatformFee, Provider: cfg.Provider, Outbox: a.webhooks,
		Providers: cfg.Providers, PublicBaseURL: cfg.PublicBaseURL})
	a.qr.SetItemChecker(func(ctx context.Context, merchantID, itemID string) error {
		_, err := a.catalog.Item(ctx, merchantID, itemID)
		return err
	})

	// Domain wiring, in dependency order. Merchant routes take the merchant
	// API key (sk_…), channel routes the channel key (ck_…); webhook
	// endpoints belong to whichever of the two calls.
	merchantKey := catalog.RequireMerchantKey(a.catalog)
	v1 := a.echo.Group("/v1")
	catalog.NewHTTP(a.catalog, a.idempotency).Register(a.echo)
	qr.NewHTTP(a.qr, a.idempotency, func(c echo.Context) (string, error) {
		m, ok := catalog.MerchantFromContext(c)
		if !ok {
			return "", problem.New(problem.KindUnauthorized, "missing_api_key", "a merchant API key is required")
		}
		return m.ID, nil
	}).Register(v1, merchantKey)
	webhooks.NewHTTP(a.webhooks, a.webhookOwner).Register(v1)
	payments.NewHTTP(a.payments, a.catalog, a.idempotency).Register(a.echo)
	web.NewShopper(a.payments, a.catalog, a.qr, a.idempotency, db, logger).WithClock(now).Register(a.echo)
	if cfg.OperatorToken != "" {
		admin := v1.Group("/admin", httpapi.RequireOperator(cfg.OperatorToken))
		catalog.NewAdminHTTP(a.catalog).Register(admin)
		payments.NewAdminHTTP(a.payments).Register(admin)
	}

	// Merchant dashboard (/dashboard): session sign-in, catalog, QR codes,
	// orders and the till, money and charts, keys and webhooks. The QR
	// funnel's checkout numbers come from payments through qr's hook.
	a.qr.SetCheckoutCounter(a.payments.CheckoutCountsByQR)
	web.NewDashboard(web.DashboardDeps{
		DB: db, Now: now, Logger: logger, Catalog: a.catalog, Payments: a.payments, QR: a.qr,
		Ledger: a.ledger, Webhooks: a.webhooks, Idempotency: a.idempotency,
	}).Register(a.echo)
	return a, nil
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

func (a *app) startWorkers(ctx context.Context, wg *sync.WaitGroup) {
	// The webhook dispatcher; it polls only if LISTEN has no connection string.
	if dispatcher, err := a.cfg.Webhooks.dispatcher(a.db, a.cfg.ListenDSN, a.logger); err != nil {
		a.logger.Error("webhook dispatcher not started", "error", err)
	} else {
		wg.Go(func() {
			if err := dispatcher.Run(ctx); err != nil {
				a.logger.Error("webhook dispatcher", "error", err)
			}
		})
	}
	a.every(ctx, wg, "purge idempotency keys", idempotencyPurgeEvery, func(ctx context.Context) (int64, error) {
		return a.idempotency.Purge(ctx, 2*idempotency.RetentionMin)
	})
	a.every(ctx, wg, "expire checkouts", checkoutExpiryEvery, func(ctx context.Context) (int64, error) {
		n, err := a.payments.ExpireCheckouts(ctx, checkoutExpiryBatchMax)
		return int64(n), err
	})
	a.startAfterSaleWorkers(ctx, wg)
}

// checkoutExpiryEvery is how often open checkouts past their expiry are
// closed and their reserved stock returned; checkoutExpiryBatchMax bounds
// one round's transaction.
const (
	checkoutExpiryEvery    = 15 * time.Second
	checkoutExpiryBatchMax = 500
)

// every runs job at each interval until ctx ends, logging what it did. Jobs
// are safe in several processes at once (they claim rows with SKIP LOCKED
// or delete idempotently), so every node runs them.
func (a *app) every(ctx context.Context, wg *sync.WaitGroup, name string, interval time.Duration, job func(context.Context) (int64, error)) {
	wg.Go(func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				n, err := job(ctx)
				switch {
				case err != nil && ctx.Err() == nil:
					a.logger.Error(name, "error", err)
				case n > 0:
					a.logger.Info(name, "count", n)
				}
			}
		}
	})
}

// logWriter turns line-oriented progress output into info log lines.
type logWriter struct{ logger *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.logger.Info(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
