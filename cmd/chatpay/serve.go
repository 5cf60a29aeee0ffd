package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/payments"
	"golang.org/x/net/netutil"
)

// HTTP server limits: slow clients cannot hold connections forever, and a
// shutdown waits this long at most for requests in flight.
const (
	readHeaderTimeout  = 5 * time.Second
	readTimeout        = 15 * time.Second
	writeTimeout       = 30 * time.Second
	idleTimeout        = 90 * time.Second
	shutdownTimeoutMax = 10 * time.Second

	// headerBytesMaxDefault bounds a request's headers: chatpay's largest
	// (a Telegram initData in Authorization) is a few KiB, and Go's own
	// default of 1 MiB let 100 idle clients cost 170 MiB.
	headerBytesMaxDefault = 64 << 10
	// connectionsMaxDefault caps open client connections, so a flood of
	// slow clients queues in the kernel instead of in serve's memory.
	connectionsMaxDefault = 1024
)

// listenLimits are the HTTP server's limits from flags.
type listenLimits struct {
	Address         string
	ShutdownTimeout time.Duration
	HeaderBytesMax  int
	ConnectionsMax  int
}

// serveFlags are serve's settings beyond the shared database ones.
type serveFlags struct {
	*config
	demo           bool
	sandbox        bool
	operatorToken  string
	headerBytesMax int
	connectionsMax int
	fee            money.Rate
	webhooks       *webhookConfig
	provider       *providerConfig
	supervise      *superviseConfig
	weChat         *payments.WeChatEndpoints
	hosted         *hostedFlags
}

func parseServeFlags(env *environment, args []string) (*serveFlags, error) {
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
	sf := &serveFlags{config: cfg}
	fs.BoolVar(&sf.demo, "demo", envBool(env, "CHATPAY_DEMO"),
		"seed the tea-card merchant, a demo channel and shopper, print the item QR, and show webhooks arriving in a local chat-sim (env CHATPAY_DEMO)")
	fs.BoolVar(&sf.sandbox, "sandbox", envBool(env, "CHATPAY_SANDBOX"),
		"run a sandbox (test mode) instance: sk_test_/ck_test_ keys, the sandbox card provider only, test clocks, livemode=false events; refuses a database a live instance used (env CHATPAY_SANDBOX)")
	fs.StringVar(&sf.operatorToken, "operator-token", env.getenv("CHATPAY_OPERATOR_TOKEN"),
		fmt.Sprintf("bearer token of the operator's admin API under /v1/admin, at least %d characters; without it the admin API is off (env CHATPAY_OPERATOR_TOKEN)",
			httpapi.OperatorTokenLengthMin))
	fs.IntVar(&sf.headerBytesMax, "max-header-bytes", envInt(env, "CHATPAY_MAX_HEADER_BYTES", headerBytesMaxDefault),
		"largest request header block in bytes; larger requests get 431 (env CHATPAY_MAX_HEADER_BYTES)")
	fs.IntVar(&sf.connectionsMax, "max-connections", envInt(env, "CHATPAY_MAX_CONNECTIONS", connectionsMaxDefault),
		"client connections open at once; more wait to be accepted (env CHATPAY_MAX_CONNECTIONS)")
	sf.webhooks, sf.provider, sf.weChat = webhookFlags(fs, env), providerFlags(fs, env), weChatFlags(fs, env)
	sf.supervise = superviseFlags(fs, env)
	sf.hosted = hostedProviderFlags(fs, env)
	if err := parseFlags(fs, env, args); err != nil {
		return nil, err
	}
	if sf.headerBytesMax < 4<<10 || sf.connectionsMax < 1 {
		return nil, errors.New("--max-header-bytes must be at least 4096 and --max-connections at least 1")
	}
	if sf.operatorToken != "" && len(sf.operatorToken) < httpapi.OperatorTokenLengthMin {
		return nil, fmt.Errorf("--operator-token: at least %d characters are required (for example: openssl rand -hex 32)", httpapi.OperatorTokenLengthMin)
	}
	var err error
	if sf.fee, err = money.ParseRate(cfg.PlatformFee); err != nil {
		return nil, fmt.Errorf("--platform-fee: %w", err)
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Listen
	}
	return sf, nil
}

func runServe(ctx context.Context, env *environment, args []string) error {
	sf, err := parseServeFlags(env, args)
	if err != nil {
		return err
	}
	logger, err := sf.logger(env)
	if err != nil {
		return err
	}
	db, closeDB, err := sf.openDatabase(ctx, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	ctx, live, dbCollectors := sf.supervise.start(ctx, sf.config, logger)
	migrator, err := database.NewMigrator(db.DB)
	if err != nil {
		return err
	}
	if !sf.NoMigrate {
		if err := migrator.Up(ctx, logWriter{logger}); err != nil {
			return err
		}
	}
	if err := claimMode(ctx, db, sf.sandbox, sf.provider, logger); err != nil {
		return err
	}
	provider, stopProvider, err := sf.provider.open(ctx, logger)
	if err != nil {
		return err
	}
	defer stopProvider()
	var simListener net.Listener
	if sf.demo {
		// The demo's chat-sim gets a fresh loopback port; the webhook guard
		// stays on and lets exactly that address through, over http.
		if simListener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return fmt.Errorf("chat-sim listen: %w", err)
		}
		defer simListener.Close()
		sf.webhooks.Allowed = append(sf.webhooks.Allowed, netip.MustParseAddrPort(simListener.Addr().String()))
	}
	sf.webhooks.warnDevelopment(logger)
	providerStore, err := sf.hosted.store(db, time.Now)
	if err != nil {
		return err
	}
	app, err := newApp(db, migrator, logger, appConfig{
		Now: time.Now, PublicBaseURL: sf.PublicURL, PlatformFee: sf.fee, ListenDSN: sf.dsn, Webhooks: *sf.webhooks,
		Provider: provider, OperatorToken: sf.operatorToken, WeChat: *sf.weChat, Sandbox: sf.sandbox,
		Live: live, Collectors: dbCollectors,
		Providers: providerDirectory(providerStore),
	})
	if err != nil {
		return err
	}
	if sf.demo {
		stopDemo, err := app.startDemo(ctx, sf.DataDir, simListener, env.stdout)
		if err != nil {
			return err
		}
		defer stopDemo()
	}
	if err := app.serve(ctx, listenLimits{Address: sf.Listen, ShutdownTimeout: sf.ShutdownTimeout,
		HeaderBytesMax: sf.headerBytesMax, ConnectionsMax: sf.connectionsMax}); err != nil {
		return err
	}
	return gaveUp(ctx)
}

// serve answers HTTP on listen and runs the background workers until ctx
// ends, then finishes requests in flight for at most shutdownTimeout.
func (a *app) serve(ctx context.Context, limits listenLimits) error {
	listen, shutdownTimeout := limits.Address, limits.ShutdownTimeout
	listener, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	listener = netutil.LimitListener(listener, limits.ConnectionsMax)
	server := &http.Server{
		Handler:           a.echo,
		MaxHeaderBytes:    limits.HeaderBytesMax,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	a.logger.Info("chatpay listening", "url", "http://"+listener.Addr().String())

	workerCtx, stopWorkers := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	a.startWorkers(workerCtx, &workers)

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()

	select {
	case err := <-serveErr:
		stopWorkers()
		workers.Wait()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	a.logger.Info("shutting down: finishing requests in flight", "timeout", shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	shutdownErr := server.Shutdown(shutdownCtx)
	stopWorkers()
	workers.Wait()
	if shutdownErr != nil && !errors.Is(shutdownErr, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	if shutdownErr != nil {
		a.logger.Warn("requests still running at the shutdown deadline were cut off")
	}
	a.logger.Info("stopped")
	return nil
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
