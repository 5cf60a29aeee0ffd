package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/bench"
	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments"
)

// runBench measures checkout throughput against the machine's own limit
// (internal/bench does the work; this wires the real service into it).
func runBench(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	opts := bench.Options{}
	var scenarios, logLevel string
	var noBaseline bool
	fs.StringVar(&scenarios, "scenarios", strings.Join(bench.Scenarios, ","), "comma-separated scenarios to run, in this order: "+strings.Join(bench.Scenarios, ", "))
	fs.IntVar(&opts.Clients, "clients", bench.ClientsDefault, "concurrent clients, each a closed loop of purchases")
	fs.DurationVar(&opts.Duration, "duration", bench.DurationDefault, "how long each scenario (and each pgbench run, and the direct baseline) runs")
	fs.IntVar(&opts.PurchasesMax, "purchases-max", bench.PurchasesMaxDefault, "at most this many purchases per scenario")
	fs.IntVar(&opts.Merchants, "merchants", bench.MerchantsDefault, "merchants (one item each) the spread scenario buys from")
	fs.StringVar(&opts.DatabaseURL, "database-url", "",
		"reuse this PostgreSQL (a throwaway database: bench writes into it) instead of a private cluster in a temporary folder")
	fs.StringVar(&opts.ProfileDir, "profile", "", "write CPU, block and mutex profiles and pg_stat_statements of every scenario into this folder")
	fs.IntVar(&opts.PgbenchScale, "pgbench-scale", 0, "pgbench scale factor (default: the number of clients)")
	fs.BoolVar(&noBaseline, "no-baseline", false, "skip pgbench (tpcb-like and the lean same-work baselines) and the direct (no HTTP) baseline")
	fs.BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	fs.StringVar(&logLevel, "log-level", "error", "the server's log level (its access log is off below warn)")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay bench [flags]\n\nStarts chatpay on a loopback port over a private PostgreSQL with production durability,\n"+
			"drives complete purchases through the HTTP API and compares them with the same rows written\n"+
			"lean by plain SQL (pgbench scripts: two transactions, one, one function call) and with\n"+
			"pgbench's tpcb-like on the same cluster. Exits non-zero if the ledger audit fails, a request answers 5xx or a\n"+
			"flash sale oversells.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			opts.Scenarios = append(opts.Scenarios, s)
		}
	}
	opts.Baseline = !noBaseline
	opts.Stdout, opts.Progress = env.stdout, env.stderr
	opts.Logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	opts.NewApp = newBenchApp
	opts.Audit = func(ctx context.Context, db *sqlx.DB) (string, bool, error) {
		report, err := ledger.RunAudit(ctx, db, append(ledger.Checks(), crossChecks()...)...)
		if err != nil {
			return "", false, err
		}
		var out bytes.Buffer
		if err := report.Write(&out); err != nil {
			return "", false, err
		}
		return out.String(), report.OK(), nil
	}
	_, err := bench.Run(ctx, opts)
	return err
}

// benchApp is the service exactly as serve wires it, plus the operator
// paths bench seeds through.
type benchApp struct {
	*app
	cny money.Currency
}

func newBenchApp(ctx context.Context, db *sqlx.DB, dsn string, logger *slog.Logger) (bench.App, error) {
	migrator, err := database.NewMigrator(db.DB)
	if err != nil {
		return nil, err
	}
	a, err := newApp(db, migrator, logger, appConfig{
		Now: time.Now, PublicBaseURL: "http://127.0.0.1", PlatformFee: money.BasisPoints(200), ListenDSN: dsn,
		// The webhooks scenario's receiver listens on loopback.
		LoopbackWebhooks: true,
	})
	if err != nil {
		return nil, err
	}
	return &benchApp{app: a, cny: money.MustCurrency(bench.Currency)}, nil
}

func (b *benchApp) Handler() http.Handler { return b.echo }

func (b *benchApp) RunWorkers(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	b.startWorkers(ctx, &wg)
	return func() { cancel(); wg.Wait() }
}

func (b *benchApp) CreateMerchant(ctx context.Context, name string) (bench.Account, error) {
	m, err := b.catalog.CreateMerchant(ctx, catalog.MerchantDraft{Name: name, TimeZone: "Asia/Shanghai", DefaultCurrency: bench.Currency})
	if err != nil {
		return bench.Account{}, fmt.Errorf("create merchant: %w", err)
	}
	_, key, err := b.catalog.CreateKey(ctx, m.ID, "bench")
	if err != nil {
		return bench.Account{}, fmt.Errorf("create merchant key: %w", err)
	}
	return bench.Account{ID: m.ID, Key: key}, nil
}

func (b *benchApp) CreateChannel(ctx context.Context, name string) (bench.Account, error) {
	created, err := b.payments.CreateChannel(ctx, payments.NewChannel{Name: name, Kind: "other"})
	if err != nil {
		return bench.Account{}, fmt.Errorf("create channel: %w", err)
	}
	return bench.Account{ID: created.Channel.ID, Key: created.APIKey}, nil
}

func (b *benchApp) Fund(ctx context.Context, shopperIDs []string, minor int64) error {
	fundings := make([]payments.Funding, len(shopperIDs))
	for i, id := range shopperIDs {
		fundings[i] = payments.Funding{ShopperID: id, Amount: money.New(minor, b.cny), Source: "sandbox",
			Key: "bench:" + id, Description: "bench top-up"}
	}
	return database.WithTx(ctx, b.db, nil, func(tx *sqlx.Tx) error {
		return b.payments.FundWallets(ctx, tx, fundings...)
	})
}

func (b *benchApp) AllowTypedCodes(ctx context.Context, merchantID string) error {
	allow := true
	_, err := b.catalog.UpdateMerchant(ctx, merchantID, catalog.MerchantPatch{AllowTypedCodes: &allow})
	return err
}

func (b *benchApp) PrepareMerchants(ctx context.Context, merchantIDs []string) error {
	return database.WithTx(ctx, b.db, nil, func(tx *sqlx.Tx) error {
		return b.payments.PrepareMerchantAccounts(ctx, tx, b.cny, merchantIDs...)
	})
}

func (b *benchApp) ItemSales(ctx context.Context, merchantID, itemID string) (sold, left int, err error) {
	units, err := b.payments.UnitsSold(ctx, itemID)
	if err != nil {
		return 0, 0, err
	}
	item, err := b.catalog.Item(ctx, merchantID, itemID)
	if err != nil {
		return 0, 0, fmt.Errorf("read stock: %w", err)
	}
	if item.Stock != nil {
		left = int(*item.Stock)
	}
	return int(units), left, nil
}

// Purchase is the two API calls' transactions without HTTP: the same
// idempotency claims around the same payments calls (CreateCheckout, then
// Buy), so the direct baseline measures what the channel API runs.
func (b *benchApp) Purchase(ctx context.Context, channelID, shopperID, itemID, key string) (string, error) {
	shopper, err := b.payments.ShopperOfChannel(ctx, channelID, shopperID)
	if err != nil {
		return "", err
	}
	scope := idempotency.ChannelScope(channelID)
	body := []byte(`{"shopper_id":"` + shopperID + `","lines":[{"item_id":"` + itemID + `","quantity":1}]}`)
	var checkoutID string
	resp, err := b.idempotency.Run(ctx, idempotency.Request{Scope: scope, Key: key + "-create", Method: http.MethodPost,
		Path: "/v1/channel/checkouts", Body: body}, func(tx *sqlx.Tx) (int, any, error) {
		co, err := b.payments.CreateCheckout(ctx, tx, payments.CheckoutRequest{Shopper: shopper, Reserve: true,
			Lines: []payments.LineRequest{{ItemID: itemID, Quantity: 1}}})
		if err != nil {
			return 0, nil, err
		}
		checkoutID = co.ID
		return http.StatusCreated, map[string]string{"id": co.ID}, nil
	})
	if code, err := refusal(resp, err); code != "" || err != nil {
		return code, err
	}
	resp, err = b.idempotency.Run(ctx, idempotency.Request{Scope: scope, Key: key + "-confirm", Method: http.MethodPost,
		Path: "/v1/channel/checkouts/" + checkoutID + "/confirm"}, func(tx *sqlx.Tx) (int, any, error) {
		receipt, err := b.payments.Buy(ctx, tx, payments.Purchase{Shopper: shopper, CheckoutID: checkoutID})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]any{"order_id": receipt.Order.ID, "coupons": len(receipt.Coupons),
			"wallet": strconv.FormatInt(receipt.Wallet.Minor, 10)}, nil
	})
	return refusal(resp, err)
}

// refusal turns a business refusal, fresh or stored, into its code.
func refusal(resp idempotency.Response, err error) (string, error) {
	if p, ok := problem.As(err); ok && p.Status() < 500 {
		return p.Code, nil
	}
	if err != nil {
		return "", err
	}
	if resp.Refusal != nil {
		return resp.Refusal.Code, nil
	}
	return "", nil
}
