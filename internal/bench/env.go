package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/pgcluster"
)

// clusterSettings are the private cluster's: production durability (fsync,
// synchronous_commit and full_page_writes keep their defaults, all on) plus
// pg_stat_statements, so a run can say which statements take the time.
var clusterSettings = map[string]string{
	"shared_preload_libraries": "pg_stat_statements",
	"pg_stat_statements.track": "all",
	"pg_stat_statements.max":   "2000",
	"max_connections":          "200",
	"track_io_timing":          "on",
	"pg_stat_statements.save":  "off",
	// BEGIN, SAVEPOINT and COMMIT are round trips too.
	"pg_stat_statements.track_utility":  "on",
	"pg_stat_statements.track_planning": "on",
	// The data is in shared buffers: a random page costs what a sequential
	// one does, near enough. At the default 4, connections planned the
	// foreign-key checks on ledger_transactions as sequential scans while it
	// held the seed's few hundred rows, and kept them as it grew.
	"random_page_cost": "1.1",
	// No checkpoint during a run: one falls wherever 1 GB of WAL ends (in
	// the full run, during onecall) and the pages each run then touches
	// first are logged whole (0.9 full-page images, 6 kB of WAL, per
	// purchase), which the runs around it do not pay. A run is a few GB of
	// WAL at most.
	"max_wal_size":       "32GB",
	"checkpoint_timeout": "1h",
}

// env is one run's world: the database, the server on a loopback port and
// the HTTP client that drives it.
type env struct {
	opts     *Options
	cluster  *pgcluster.Cluster
	tempDir  string
	dsn      string
	db       *sqlx.DB
	app      App
	server   *http.Server
	baseURL  string
	client   *http.Client
	stopWork func()
	runID    string
	statsOn  bool // pg_stat_statements is available
	machine  Machine
}

func setUp(ctx context.Context, opts *Options) (_ *env, err error) {
	e := &env{opts: opts, runID: strings.TrimPrefix(ids.New("run"), "run_")}
	defer func() {
		if err != nil {
			e.tearDown()
		}
	}()
	e.dsn = opts.DatabaseURL
	if e.dsn == "" {
		if e.tempDir, err = os.MkdirTemp("", "chatpay-bench-"); err != nil {
			return nil, fmt.Errorf("temporary folder: %w", err)
		}
		progress(opts, "starting a private PostgreSQL (fsync on) in %s", e.tempDir)
		e.cluster, err = pgcluster.Start(ctx, pgcluster.Options{Dir: e.tempDir, Settings: clusterSettings, Logger: opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("private PostgreSQL: %w", err)
		}
		e.dsn = e.cluster.URL()
	}
	pool := database.DefaultPool
	if e.db, err = database.Open(ctx, e.dsn, pool); err != nil {
		return nil, err
	}
	if err := database.CheckDurability(ctx, e.db); err != nil {
		return nil, fmt.Errorf("bench measures production durability only: %w", err)
	}
	migrator, err := database.NewMigrator(e.db.DB)
	if err != nil {
		return nil, err
	}
	if err := migrator.Up(ctx, io.Discard); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if _, err := e.db.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err == nil {
		var one int
		e.statsOn = e.db.GetContext(ctx, &one, `SELECT 1 FROM pg_stat_statements LIMIT 1`) == nil ||
			e.db.GetContext(ctx, &one, `SELECT count(*) FROM pg_stat_statements`) == nil
	}
	e.machine = describeMachine(ctx, e.db)

	if e.app, err = opts.NewApp(ctx, e.db, e.dsn, opts.Logger); err != nil {
		return nil, err
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	e.baseURL = "http://" + listener.Addr().String()
	e.server = &http.Server{Handler: withLeanHTTP(e.db, e.app.Handler()), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.server.Serve(listener) }()
	e.stopWork = e.app.RunWorkers(context.Background())
	e.client = &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			MaxIdleConns:        opts.Clients * 2,
			MaxIdleConnsPerHost: opts.Clients * 2,
			DisableCompression:  true,
			// Loopback only: no proxy, whatever the environment says.
			Proxy:       nil,
			DialContext: loopbackOnly,
		},
	}
	return e, nil
}

// loopbackOnly refuses to dial anything but 127.0.0.1, so a mistake in a
// URL cannot send load anywhere else.
func loopbackOnly(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("bench dials 127.0.0.1 only, not %q", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (e *env) tearDown() {
	if e.server != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = e.server.Shutdown(shutdownCtx)
		cancel()
	}
	if e.stopWork != nil {
		e.stopWork()
	}
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
	if e.db != nil {
		_ = e.db.Close()
	}
	if e.cluster != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := e.cluster.Stop(stopCtx); err != nil {
			e.opts.Logger.Error("stop private PostgreSQL", "error", err)
		}
		cancel()
	}
	if e.tempDir != "" {
		if err := os.RemoveAll(e.tempDir); err != nil {
			e.opts.Logger.Warn("remove temporary folder", "dir", e.tempDir, "error", err)
		}
	}
}

// run seeds, measures the baselines and every scenario, and audits after each.
func (e *env) run(ctx context.Context) (*Report, error) {
	r := &Report{Machine: e.machine, Clients: e.opts.Clients, Duration: e.opts.Duration.String(),
		StartedAt: time.Now().UTC(), Durability: "fsync=on synchronous_commit=on full_page_writes=on"}
	if e.opts.DatabaseURL != "" {
		r.Database = "reused --database-url"
	} else {
		r.Database = "private cluster in a temporary folder"
	}
	seedStart := time.Now()
	w, err := e.seedWorld(ctx)
	if err != nil {
		return r, err
	}
	// Seeding loads tables faster than autovacuum analyses them; plans built
	// on empty-table statistics (and kept by prepared statements) would
	// scan what they should look up.
	if _, err := e.db.ExecContext(ctx, `ANALYZE`); err != nil {
		return r, fmt.Errorf("analyze after seeding: %w", err)
	}
	progress(e.opts, "seeded and analysed in %.1f s", time.Since(seedStart).Seconds())
	if e.opts.Baseline {
		r.Pgbench = e.runPgbench(ctx)
		if r.Lean, r.LeanHTTP, err = e.runLean(ctx, w); err != nil {
			return r, err
		}
		// The lean scripts' rows are complete purchases: the audit holds them too.
		lean := &Result{Name: "lean"}
		if err := e.audit(ctx, lean); err != nil {
			return r, err
		}
		if !lean.AuditClean {
			return r, fmt.Errorf("the lean baselines left records the audit refuses:\n%s", lean.AuditReport)
		}
		direct, err := e.runDirect(ctx, w)
		if err != nil {
			return r, err
		}
		r.Direct = direct
	}
	for _, name := range e.opts.Scenarios {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		res, err := e.runScenario(ctx, name, w, r)
		if res != nil {
			r.Scenarios = append(r.Scenarios, *res)
		}
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
	}
	r.evaluate()
	return r, nil
}

// runScenario runs one scenario with its profiles, then the audit.
func (e *env) runScenario(ctx context.Context, name string, w *world, r *Report) (*Result, error) {
	e.resetStatements(ctx)
	prof, err := startProfiles(e.opts.ProfileDir, name)
	if err != nil {
		return nil, err
	}
	var res *Result
	switch name {
	case ScenarioSpread:
		res, err = e.scenarioSpread(ctx, w)
	case ScenarioOneCall:
		res, err = e.scenarioOneCall(ctx, w)
	case ScenarioHot:
		res, err = e.scenarioHot(ctx, w)
	case ScenarioFlash:
		res, err = e.scenarioFlash(ctx, w, r.spreadThroughput())
	case ScenarioWebhooks:
		res, err = e.scenarioWebhooks(ctx, w)
	case ScenarioRedeem:
		res, err = e.scenarioRedeem(ctx, w)
	}
	if perr := prof.stop(); perr != nil && err == nil {
		err = perr
	}
	if res != nil && prof.split.ok && res.Purchases > 0 {
		paid := float64(res.Purchases)
		res.ServerCPUMsPerPurchase = round(float64(prof.split.server.Microseconds())/1000/paid, 2)
		res.ClientCPUMsPerPurchase = round(float64(prof.split.clients.Microseconds())/1000/paid, 2)
		res.OtherGoCPUMsPerPurchase = round(float64(prof.split.rest.Microseconds())/1000/paid, 2)
	}
	if err != nil {
		return res, err
	}
	res.Statements = e.topStatements(ctx, name)
	if res.Skipped != "" {
		return res, nil
	}
	return res, e.audit(ctx, res)
}

// audit runs `chatpay verify`'s checks and records the outcome in res.
func (e *env) audit(ctx context.Context, res *Result) error {
	start := time.Now()
	// A bench loads tables faster than autovacuum analyses them; without
	// fresh statistics the cross checks' anti-joins loop over every event
	// for every order (minutes after a few thousand orders).
	if _, err := e.db.ExecContext(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	report, clean, err := e.opts.Audit(ctx, e.db)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	res.AuditSeconds = round(time.Since(start).Seconds(), 2)
	progress(e.opts, "%s: verify %s in %.1f s", res.Name, map[bool]string{true: "clean", false: "FOUND VIOLATIONS"}[clean], res.AuditSeconds)
	res.AuditClean = clean
	if !clean {
		res.AuditReport = report
	}
	if e.opts.ProfileDir != "" {
		_ = os.WriteFile(filepath.Join(e.opts.ProfileDir, "verify-"+res.Name+".txt"), []byte(report), 0o644)
	}
	return nil
}

func progress(opts *Options, format string, args ...any) {
	if opts.Progress != nil {
		fmt.Fprintf(opts.Progress, format+"\n", args...)
	}
}
