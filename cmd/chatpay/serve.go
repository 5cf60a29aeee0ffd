package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
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
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	logger, err := cfg.logger(env)
	if err != nil {
		return err
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

	app, err := newApp(db, migrator, logger, time.Now)
	if err != nil {
		return err
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

// app is the wired service: every domain's routes on one echo instance, and
// the background workers that belong to serve.
type app struct {
	echo        *echo.Echo
	db          *sqlx.DB
	logger      *slog.Logger
	idempotency *idempotency.Store
}

func newApp(db *sqlx.DB, migrator *database.Migrator, logger *slog.Logger, now func() time.Time) (*app, error) {
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
	a := &app{
		echo:        httpapi.New(httpapi.Options{Logger: logger, Registry: registry, Ready: ready}),
		db:          db,
		logger:      logger,
		idempotency: idempotency.NewStore(db, now),
	}
	// Domain wiring: one block per domain package, in dependency order.
	return a, nil
}

// idempotencyPurgeEvery is how often expired idempotency keys are deleted.
const idempotencyPurgeEvery = time.Hour

func (a *app) startWorkers(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(idempotencyPurgeEvery)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				n, err := a.idempotency.Purge(ctx, 2*idempotency.RetentionMin)
				if err != nil {
					a.logger.Error("purge idempotency keys", "error", err)
				} else if n > 0 {
					a.logger.Info("purged idempotency keys", "count", n)
				}
			}
		}
	}()
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
