package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/webhooks"
)

// webhookConfig is the webhook settings of the binary.
type webhookConfig struct {
	AllowHTTP     bool
	AllowLoopback bool
	// Allowed are exact receiver addresses let through the guard (the
	// demo's chat-sim); never set from a flag.
	Allowed      []netip.AddrPort
	Workers      int
	DisableAfter time.Duration
	// Test marks the dispatcher's own events livemode=false (a sandbox).
	Test bool
}

// webhookFlags registers the webhook settings; serve can share them.
func webhookFlags(fs *flag.FlagSet, env *environment) *webhookConfig {
	wc := &webhookConfig{}
	fs.BoolVar(&wc.AllowHTTP, "webhooks-allow-http", envBool(env, "CHATPAY_WEBHOOKS_ALLOW_HTTP"),
		"DEVELOPMENT ONLY: accept http:// webhook URLs (env CHATPAY_WEBHOOKS_ALLOW_HTTP)")
	fs.BoolVar(&wc.AllowLoopback, "webhooks-allow-loopback", envBool(env, "CHATPAY_WEBHOOKS_ALLOW_LOOPBACK"),
		"DEVELOPMENT ONLY: let webhooks reach receivers on this machine's loopback addresses; private, link-local and metadata addresses stay refused (env CHATPAY_WEBHOOKS_ALLOW_LOOPBACK)")
	fs.IntVar(&wc.Workers, "webhooks-workers", webhooks.WorkersDefault, "deliveries in flight at once")
	fs.DurationVar(&wc.DisableAfter, "webhooks-disable-after", envDuration(env, "CHATPAY_WEBHOOKS_DISABLE_AFTER", webhooks.DisableAfterDefault),
		"disable an endpoint that has failed without a success for this long (env CHATPAY_WEBHOOKS_DISABLE_AFTER)")
	return wc
}

func (wc *webhookConfig) policy() webhooks.URLPolicy {
	return webhooks.URLPolicy{AllowHTTP: wc.AllowHTTP, AllowLoopback: wc.AllowLoopback, Allowed: wc.Allowed}
}

// warnDevelopment says loudly at start that a development setting weakens
// the webhook guard, so it is not left on in production unnoticed.
func (wc *webhookConfig) warnDevelopment(logger *slog.Logger) {
	if wc.AllowHTTP {
		logger.Warn("DEVELOPMENT SETTING: webhook URLs may use plain http (--webhooks-allow-http); never in production")
	}
	if wc.AllowLoopback {
		logger.Warn("DEVELOPMENT SETTING: webhooks may reach this machine's loopback addresses (--webhooks-allow-loopback); never in production")
	}
}

func (wc *webhookConfig) dispatcher(db *sqlx.DB, listenDSN string, logger *slog.Logger) (*webhooks.Dispatcher, error) {
	return webhooks.NewDispatcher(webhooks.DispatcherConfig{
		DB: db, ListenDSN: listenDSN, Logger: logger.With("component", "webhooks"), Now: time.Now,
		Policy: wc.policy(), Workers: wc.Workers, DisableAfter: wc.DisableAfter, Test: wc.Test,
	})
}

// runDispatch runs the webhook dispatcher alone, next to API nodes that
// enqueue events; any number of them can share one database.
func runDispatch(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("dispatch", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	wc := webhookFlags(fs, env)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay dispatch [flags]\n\nDelivers webhooks until SIGINT or SIGTERM.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		// The private cluster belongs to the serve process, which already
		// runs a dispatcher of its own.
		return errors.New("dispatch needs --database-url (or DATABASE_URL); `chatpay serve` already dispatches on its private database")
	}
	logger, db, closeDB, err := cfg.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeDB()
	wc.warnDevelopment(logger)
	if wc.Test, err = sandboxDatabase(ctx, db); err != nil {
		return err
	}
	d, err := wc.dispatcher(db, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	logger.Info("webhook dispatcher running", "workers", wc.Workers)
	if err := d.Run(ctx); err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	logger.Info("webhook dispatcher stopped")
	return nil
}
