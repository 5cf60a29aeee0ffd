package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/sandbox"
)

// Background work after the sale. Both jobs claim rows with SKIP LOCKED, so
// every serve process runs them.
const (
	// couponExpiryEvery is how often coupons past their validity are expired.
	couponExpiryEvery = time.Minute
	// topUpReconcileEvery is how often unsettled top-ups are looked up.
	topUpReconcileEvery = 30 * time.Second
	// topUpReconcileBatchMax bounds the top-ups one run looks up.
	topUpReconcileBatchMax = 100
	// providerName is the provider's name in the chart of accounts.
	providerName = "sandbox"
)

// providerConfig is the payment provider settings of the binary.
type providerConfig struct {
	URL     string
	Timeout time.Duration
}

// providerFlags registers the provider settings (serve, reconcile).
func providerFlags(fs *flag.FlagSet, env *environment) *providerConfig {
	pc := &providerConfig{}
	fs.StringVar(&pc.URL, "provider-url", env.getenv("CHATPAY_PROVIDER_URL"),
		"base URL of the card payment provider (env CHATPAY_PROVIDER_URL); serve starts the sandbox provider in-process on a free loopback port when empty")
	fs.DurationVar(&pc.Timeout, "provider-timeout", envDuration(env, "CHATPAY_PROVIDER_TIMEOUT", payments.ProviderTimeoutDefault),
		"give up on one provider call after this long; the outcome is then settled by a lookup (env CHATPAY_PROVIDER_TIMEOUT)")
	return pc
}

// open returns the provider client. Without a URL it starts the sandbox
// provider in this process, still reached over loopback HTTP, so that
// `make run` works alone; stop shuts it down.
func (pc *providerConfig) open(ctx context.Context, logger *slog.Logger) (payments.Provider, func(), error) {
	url, stop := pc.URL, func() {}
	if url == "" {
		var err error
		url, stop, err = sandbox.New(time.Now).Listen(ctx, "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		logger.Info("sandbox payment provider started in-process", "url", url)
	}
	provider, err := payments.NewHTTPProvider(providerName, url, pc.Timeout)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return provider, stop, nil
}

// startAfterSaleWorkers runs coupon expiry and top-up reconciliation.
func (a *app) startAfterSaleWorkers(ctx context.Context, wg *sync.WaitGroup) {
	a.every(ctx, wg, "expire coupons", couponExpiryEvery, func(ctx context.Context) (int64, error) {
		n, err := a.payments.ExpireCoupons(ctx, payments.ExpiryBatchMax)
		return int64(n), err
	})
	a.every(ctx, wg, "reconcile top-ups", topUpReconcileEvery, func(ctx context.Context) (int64, error) {
		report, err := a.payments.ReconcileTopUps(ctx, topUpReconcileBatchMax)
		return int64(report.Succeeded + report.Failed), err
	})
	a.startProviderWorkers(ctx, wg)
}

// paymentsAt returns the payments service of the one domain graph
// (newServices, with its webhooks outbox) on a fixed or real clock, for the
// run-once commands. Neither expiry nor reconciliation takes a platform fee
// or prints a URL, so neither is configured.
func paymentsAt(db *sqlx.DB, now func() time.Time, provider payments.Provider) (*payments.Service, error) {
	sandbox, err := sandboxDatabase(context.Background(), db)
	if err != nil {
		return nil, err
	}
	svc, err := newServices(db, servicesConfig{Now: now, PublicBaseURL: "http://127.0.0.1", PlatformFee: money.BasisPoints(0), Provider: provider, Sandbox: sandbox})
	if err != nil {
		return nil, err
	}
	return svc.payments, nil
}

// nowFlag is --now: an RFC 3339 instant, or empty for the real clock.
func nowFlag(fs *flag.FlagSet) *string {
	return fs.String("now", "", "act as if it were this RFC 3339 instant (default: the real clock)")
}

func clockOf(text string) (func() time.Time, error) {
	if text == "" {
		return time.Now, nil
	}
	at, err := time.Parse(time.RFC3339, text)
	if err != nil {
		return nil, fmt.Errorf("--now: %w", err)
	}
	return func() time.Time { return at }, nil
}

// runExpire expires coupons past their validity once, as serve's job does.
func runExpire(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("expire", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	nowText := nowFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay expire [flags]\n\nExpires coupons past their validity once: breakage in the ledger, coupon.expired queued.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	now, err := clockOf(*nowText)
	if err != nil {
		return err
	}
	_, db, closeDB, err := cfg.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeDB()
	svc, err := paymentsAt(db, now, nil)
	if err != nil {
		return err
	}
	n, err := svc.ExpireCoupons(ctx, payments.ExpiryBatchMax)
	if err != nil {
		return fmt.Errorf("expire: %w", err)
	}
	fmt.Fprintf(env.stdout, "expired %d coupons\n", n)
	return nil
}

// runReconcile settles pending and unknown top-ups once by asking the provider.
func runReconcile(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	pc := providerFlags(fs, env)
	hf := hostedProviderFlags(fs, env)
	nowText := nowFlag(fs)
	batch := fs.Int("batch", topUpReconcileBatchMax, "look up at most this many top-ups")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay reconcile --provider-url URL [flags]\n\nSettles pending and unknown top-ups once by looking them up at the provider.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if pc.URL == "" && hf.Keys != "" {
		return reconcileProviders(ctx, env, cfg, hf, *nowText, *batch)
	}
	if pc.URL == "" {
		// An in-process sandbox started here would know no charges.
		return errors.New("reconcile needs --provider-url (or CHATPAY_PROVIDER_URL) for the sandbox, or --provider-keys for merchants' Stripe and WeChat Pay accounts; serve reconciles its in-process sandbox itself")
	}
	now, err := clockOf(*nowText)
	if err != nil {
		return err
	}
	logger, err := cfg.logger(env)
	if err != nil {
		return err
	}
	provider, stop, err := pc.open(ctx, logger)
	if err != nil {
		return err
	}
	defer stop()
	cfg.runOnce = true
	db, closeDB, err := cfg.openDatabase(ctx, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	if err := cfg.requireSchema(ctx, db, logger); err != nil {
		return err
	}
	svc, err := paymentsAt(db, now, provider)
	if err != nil {
		return err
	}
	report, err := svc.ReconcileTopUps(ctx, *batch)
	fmt.Fprintf(env.stdout, "checked %d top-ups: %d succeeded, %d failed, %d still unknown\n",
		report.Checked, report.Succeeded, report.Failed, report.Unknown)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if hf.Keys != "" {
		return reconcileProviders(ctx, env, cfg, hf, *nowText, *batch)
	}
	return nil
}
