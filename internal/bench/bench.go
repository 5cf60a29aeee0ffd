// Package bench is `chatpay bench`: it measures how many complete purchases
// (create checkout → confirm, or one call, through the real HTTP API)
// chatpay sustains on this machine, and compares that with the same rows
// written lean by plain SQL (the lean baselines, lean.go: the ceiling the
// schema allows), with what the same PostgreSQL does for a plain write
// transaction (pgbench's tpcb-like) and with the checkout's own SQL run
// without HTTP. The numbers only mean something next to each other, on one
// machine, in one run; docs/performance.md keeps the latest ones.
//
// The scenarios follow DESIGN.md's "Hot accounts": purchases spread over many
// merchants (two-step and one-call), every purchase at one hot merchant, a
// flash sale of one item with limited stock, and webhook delivery under load. After every scenario
// the ledger audit must come back clean.
//
// bench imports no domain package: cmd/chatpay hands it the wired service
// through App, so that the service measured is the one `serve` runs.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"
)

// Limits and defaults of a run. Every load loop is bounded in time and count.
const (
	ClientsDefault      = 32
	ClientsMax          = 512
	DurationDefault     = 20 * time.Second
	DurationMax         = 10 * time.Minute
	PurchasesMaxDefault = 1_000_000
	MerchantsDefault    = 1000
	MerchantsMax        = 10_000
	// drainTimeoutMax bounds the wait for webhooks still in flight after the load.
	drainTimeoutMax = 30 * time.Second
	// requestTimeout bounds one HTTP request of a bench client.
	requestTimeout = 30 * time.Second
	// flashStockMin and flashStockMax bound the flash sale's stock.
	flashStockMin = 200
	flashStockMax = 10_000
)

// Scenario names, in the order a run takes them.
const (
	ScenarioSpread   = "spread"
	ScenarioOneCall  = "onecall"
	ScenarioHot      = "hot"
	ScenarioFlash    = "flash"
	ScenarioWebhooks = "webhooks"
	ScenarioRedeem   = "redeem"
)

// Scenarios lists every scenario in run order.
var Scenarios = []string{ScenarioSpread, ScenarioOneCall, ScenarioHot, ScenarioFlash, ScenarioWebhooks, ScenarioRedeem}

// Currency is the one currency bench sells in.
const Currency = "CNY"

// Account is something created through the operator path with its API key.
type Account struct {
	ID  string
	Key string
}

// App is the wired chatpay service, as cmd/chatpay builds it for `serve`.
type App interface {
	// Handler is the service's HTTP handler (every route, every middleware).
	Handler() http.Handler
	// RunWorkers starts serve's background workers (the webhook dispatcher)
	// and returns the function that stops them and waits.
	RunWorkers(ctx context.Context) (stop func())
	// CreateMerchant creates a merchant and an API key (sk_…).
	CreateMerchant(ctx context.Context, name string) (Account, error)
	// CreateChannel registers a messenger backend with its key (ck_…).
	CreateChannel(ctx context.Context, name string) (Account, error)
	// Fund tops every shopper's wallet up by minor units of Currency, as the
	// payment provider's capture would.
	Fund(ctx context.Context, shopperIDs []string, minor int64) error
	// AllowTypedCodes lets the merchant's till accept printed coupon codes
	// (the redeem scenario types them, as a cashier would).
	AllowTypedCodes(ctx context.Context, merchantID string) error
	// PrepareMerchants creates the ledger accounts a voucher sale credits,
	// so that the first sale of each merchant does not pay for them.
	PrepareMerchants(ctx context.Context, merchantIDs []string) error
	// Purchase runs one complete purchase without HTTP: the same idempotency
	// claims, CreateCheckout and Confirm the two API calls run. It returns
	// the problem code of a refusal ("" on success).
	Purchase(ctx context.Context, channelID, shopperID, itemID, key string) (code string, err error)
	// ItemSales returns the units of the merchant's item that orders hold
	// and the units left in stock, as the domains that own them count.
	ItemSales(ctx context.Context, merchantID, itemID string) (sold, left int, err error)
}

// AppFactory wires the service on a migrated database; dsn is for LISTEN.
type AppFactory func(ctx context.Context, db *sqlx.DB, dsn string, logger *slog.Logger) (App, error)

// Audit runs `chatpay verify`'s checks; it returns the printed report and
// whether it is clean.
type Audit func(ctx context.Context, db *sqlx.DB) (report string, clean bool, err error)

// Options configure a run; cmd/chatpay fills them from flags.
type Options struct {
	Scenarios    []string
	Clients      int
	Duration     time.Duration
	PurchasesMax int
	Merchants    int
	// DatabaseURL reuses a server (use a throwaway database); empty starts
	// a private cluster in a temporary folder with production durability.
	DatabaseURL string
	// ProfileDir, when set, receives CPU and block profiles of every
	// scenario and the top statements of pg_stat_statements.
	ProfileDir string
	// Baseline runs pgbench (tpcb-like and the lean same-work scripts) and
	// the direct (no HTTP) checkout first.
	Baseline     bool
	PgbenchScale int
	JSON         bool
	Stdout       io.Writer
	// Progress receives the progress line; nil is quiet.
	Progress io.Writer
	Logger   *slog.Logger
	NewApp   AppFactory
	Audit    Audit
}

func (o *Options) normalize() error {
	if o.Clients <= 0 {
		o.Clients = ClientsDefault
	}
	if o.Clients > ClientsMax {
		return fmt.Errorf("at most %d clients", ClientsMax)
	}
	if o.Duration <= 0 {
		o.Duration = DurationDefault
	}
	if o.Duration > DurationMax {
		return fmt.Errorf("a scenario runs at most %s", DurationMax)
	}
	if o.PurchasesMax <= 0 {
		o.PurchasesMax = PurchasesMaxDefault
	}
	if o.Merchants <= 0 {
		o.Merchants = MerchantsDefault
	}
	if o.Merchants > MerchantsMax {
		return fmt.Errorf("at most %d merchants", MerchantsMax)
	}
	if o.PgbenchScale <= 0 {
		o.PgbenchScale = o.Clients
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = Scenarios
	}
	for _, s := range o.Scenarios {
		known := false
		for _, k := range Scenarios {
			known = known || s == k
		}
		if !known {
			return fmt.Errorf("unknown scenario %q (known: %v)", s, Scenarios)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.NewApp == nil || o.Audit == nil {
		return errors.New("bench: NewApp and Audit are required")
	}
	return nil
}

// Run measures, prints the report (a table, or JSON) and returns an error
// when the audit found a violation, a request failed with a 5xx, or the
// flash sale oversold. Missing a throughput target is reported, not an error.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	env, err := setUp(ctx, &opts)
	if err != nil {
		return nil, err
	}
	defer env.tearDown()
	report, runErr := env.run(ctx)
	if report != nil {
		var werr error
		if opts.JSON {
			werr = report.WriteJSON(opts.Stdout)
		} else {
			werr = report.WriteTable(opts.Stdout)
		}
		if werr != nil && runErr == nil {
			runErr = fmt.Errorf("write report: %w", werr)
		}
	}
	if runErr != nil {
		return report, runErr
	}
	return report, report.Failure()
}
