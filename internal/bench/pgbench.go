package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatpay/chatpay/internal/pgcluster"
)

// pgbenchDatabase is the scratch database pgbench fills and bench drops.
const pgbenchDatabase = "chatpay_bench_pgbench"

// pgbenchInitTimeout bounds `pgbench -i`.
const pgbenchInitTimeout = 10 * time.Minute

var (
	tpsPattern     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	latencyPattern = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	failedPattern  = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

// findPgbench returns the pgbench of the PostgreSQL install, or "".
func findPgbench() string {
	if dir, err := pgcluster.FindBinaries(""); err == nil {
		if path := filepath.Join(dir, "pgbench"); isExecutableFile(path) {
			return path
		}
	}
	if path, err := exec.LookPath("pgbench"); err == nil {
		return path
	}
	candidates, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(candidates) > 0 {
		return candidates[len(candidates)-1]
	}
	return ""
}

// scratchConninfo is the libpq connection string of the scratch database on
// the server bench uses: for the private cluster its Unix socket as the
// cluster's superuser, for --database-url that URL with another database.
func (e *env) scratchConninfo() (string, error) {
	if e.cluster != nil {
		return e.cluster.DSN(pgbenchDatabase), nil
	}
	if strings.Contains(e.dsn, "://") {
		u, err := url.Parse(e.dsn)
		if err != nil {
			return "", err
		}
		u.Path = "/" + pgbenchDatabase
		return u.String(), nil
	}
	fields := strings.Fields(e.dsn)
	out := []string{"dbname=" + pgbenchDatabase}
	for _, f := range fields {
		if !strings.HasPrefix(f, "dbname=") {
			out = append(out, f)
		}
	}
	return strings.Join(out, " "), nil
}

// runPgbench measures the physical limit: pgbench's tpcb-like transaction
// (three updates, a select and an insert, committed durably) with the same
// clients and duration, on a scratch database of the same cluster.
func (e *env) runPgbench(ctx context.Context) *PgbenchResult {
	res := &PgbenchResult{Clients: e.opts.Clients, Threads: 2, Scale: e.opts.PgbenchScale, Seconds: e.opts.Duration.Seconds()}
	bin := findPgbench()
	if bin == "" {
		res.Missing = "pgbench not found (it ships with PostgreSQL under /usr/lib/postgresql/*/bin); no physical-limit baseline"
		return res
	}
	res.Binary = bin
	conninfo, err := e.scratchConninfo()
	if err != nil {
		res.Missing = "cannot build the scratch database's connection string: " + err.Error()
		return res
	}
	dropScratch, err := e.createScratch(ctx)
	if err != nil {
		res.Missing = err.Error()
		return res
	}
	defer dropScratch()
	progress(e.opts, "pgbench: initialising scale %d (server-side generation)", e.opts.PgbenchScale)
	initCtx, cancel := context.WithTimeout(ctx, pgbenchInitTimeout)
	defer cancel()
	start := time.Now()
	if out, err := exec.CommandContext(initCtx, bin, "-i", "-q", "-I", "dtGvp", "-s", strconv.Itoa(e.opts.PgbenchScale), conninfo).CombinedOutput(); err != nil {
		res.Missing = fmt.Sprintf("pgbench -i failed: %v: %s", err, lastLine(out))
		return res
	}
	res.InitSeconds = round(time.Since(start).Seconds(), 1)
	progress(e.opts, "pgbench: tpcb-like, -c %d -j 2", e.opts.Clients)
	e.pgbenchLoad(ctx, bin, []string{"-b", "tpcb-like"}, conninfo, res)
	return res
}

// pgbenchLoad runs pgbench with args (the workload) for the run's clients
// and duration and records its throughput and costs per transaction in res
// (res.Missing says why when it could not).
func (e *env) pgbenchLoad(ctx context.Context, bin string, args []string, conninfo string, res *PgbenchResult) {
	seconds := max(1, int(e.opts.Duration.Round(time.Second).Seconds()))
	runCtx, cancelRun := context.WithTimeout(ctx, e.opts.Duration+time.Minute)
	defer cancelRun()
	args = append(slices.Clone(args), "-c", strconv.Itoa(e.opts.Clients), "-j", "2", "-T", strconv.Itoa(seconds), "-n", conninfo)
	cmd := exec.CommandContext(runCtx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var pgStart map[int]time.Duration
	if e.cluster != nil {
		pgStart = childrenCPU(e.cluster.PID())
	}
	walStart := e.walStats(ctx)
	if err := cmd.Run(); err != nil {
		res.Missing = fmt.Sprintf("pgbench failed: %v: %s", err, lastLine(out.Bytes()))
		return
	}
	var pgCPU time.Duration
	if pgStart != nil {
		for pid, now := range childrenCPU(e.cluster.PID()) {
			pgCPU += now - pgStart[pid]
		}
	}
	walEnd := e.walStats(ctx)
	clientCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	parsePgbench(out.String(), res)
	if res.TPS == 0 {
		res.Missing = "could not read pgbench's output: " + lastLine(out.Bytes())
		return
	}
	// The same costs per transaction as the scenarios report per purchase,
	// so the two can be compared where throughput alone would only say "less".
	if txns := res.TPS * float64(seconds); txns > 0 {
		if pgCPU > 0 {
			res.PostgresCPUMsPerTxn = round(float64(pgCPU.Microseconds())/1000/txns, 3)
		}
		res.ClientCPUMsPerTxn = round(float64(clientCPU.Microseconds())/1000/txns, 3)
		if walStart.ok && walEnd.ok {
			res.WALBytesPerTxn = round(float64(walEnd.bytes-walStart.bytes)/txns, 0)
		}
	}
}

// createScratch creates pgbench's scratch database afresh; the returned
// function drops it.
func (e *env) createScratch(ctx context.Context) (drop func(), err error) {
	if _, err := e.db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+pgbenchDatabase); err != nil {
		return nil, fmt.Errorf("drop scratch database: %w", err)
	}
	if _, err := e.db.ExecContext(ctx, `CREATE DATABASE `+pgbenchDatabase); err != nil {
		return nil, fmt.Errorf("create scratch database: %w", err)
	}
	return func() {
		dropCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := e.db.ExecContext(dropCtx, `DROP DATABASE IF EXISTS `+pgbenchDatabase); err != nil {
			e.opts.Logger.Warn("drop pgbench scratch database", "error", err)
		}
	}, nil
}

// parsePgbench reads throughput, mean latency and failed transactions
// from pgbench's report into res; a report it cannot read leaves TPS 0.
func parsePgbench(text string, res *PgbenchResult) {
	if m := tpsPattern.FindStringSubmatch(text); m != nil {
		res.TPS, _ = strconv.ParseFloat(m[1], 64)
		res.TPS = round(res.TPS, 1)
	}
	if m := latencyPattern.FindStringSubmatch(text); m != nil {
		res.LatencyAvgMs, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := failedPattern.FindStringSubmatch(text); m != nil {
		res.Failed, _ = strconv.Atoi(m[1])
	}
}

// lastLine is the last line of pgbench's output, or its first error (the
// last line of an aborted run only says that it aborted).
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		if strings.Contains(l, "error: client") || strings.Contains(l, "ERROR:") {
			return l
		}
	}
	return lines[len(lines)-1]
}
