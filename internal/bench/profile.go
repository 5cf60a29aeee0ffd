package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/pprof/profile"
	"github.com/jmoiron/sqlx"
)

// blockProfileRateNs samples blocking events of 10 µs and more.
const (
	blockProfileRateNs   = 10_000
	mutexProfileFraction = 10
	statementsTop        = 15
)

// profiles are one scenario's CPU and block profiles of the process (the
// server runs in it; the bench clients show up as net/http client stacks).
type profiles struct {
	dir, name string
	cpu       *os.File
	// split is the CPU profile's time by whose stacks it was in, once stopped.
	split cpuSplit
}

// cpuSplit divides a CPU profile between the server (stacks under
// net/http's server connection), the bench clients (the load loop and the
// HTTP client's connection loops) and the rest (GC, scheduler), so that
// the server's CPU per purchase is reported apart from the clients'.
type cpuSplit struct {
	ok                    bool
	server, clients, rest time.Duration
}

var (
	serverFrames = []string{"net/http.(*conn).serve"}
	clientFrames = []string{"github.com/chatpay/chatpay/internal/bench.", "net/http.(*persistConn)."}
)

func splitCPU(path string) (cpuSplit, error) {
	f, err := os.Open(path)
	if err != nil {
		return cpuSplit{}, err
	}
	defer f.Close()
	prof, err := profile.Parse(f)
	if err != nil {
		return cpuSplit{}, fmt.Errorf("read CPU profile: %w", err)
	}
	value := -1
	for i, st := range prof.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			value = i
		}
	}
	if value < 0 {
		return cpuSplit{}, fmt.Errorf("CPU profile %s has no cpu/nanoseconds samples", path)
	}
	split := cpuSplit{ok: true}
	for _, sample := range prof.Sample {
		d := time.Duration(sample.Value[value])
		switch {
		case stackHas(sample, serverFrames):
			split.server += d
		case stackHas(sample, clientFrames):
			split.clients += d
		default:
			split.rest += d
		}
	}
	return split, nil
}

func stackHas(sample *profile.Sample, prefixes []string) bool {
	for _, loc := range sample.Location {
		for _, line := range loc.Line {
			if line.Function == nil {
				continue
			}
			for _, prefix := range prefixes {
				if strings.HasPrefix(line.Function.Name, prefix) {
					return true
				}
			}
		}
	}
	return false
}

func startProfiles(dir, name string) (*profiles, error) {
	p := &profiles{dir: dir, name: name}
	if dir == "" {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile folder: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "cpu-"+name+".pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	p.cpu = f
	runtime.SetBlockProfileRate(blockProfileRateNs)
	runtime.SetMutexProfileFraction(mutexProfileFraction)
	return p, nil
}

// stop writes the profiles. Block and mutex profiles are cumulative since
// the first scenario; compare them with pprof -diff_base.
func (p *profiles) stop() error {
	if p.cpu == nil {
		return nil
	}
	pprof.StopCPUProfile()
	if err := p.cpu.Close(); err != nil {
		return err
	}
	split, err := splitCPU(p.cpu.Name())
	if err != nil {
		return err
	}
	p.split = split
	for _, kind := range []string{"block", "mutex", "heap"} {
		f, err := os.Create(filepath.Join(p.dir, kind+"-"+p.name+".pprof"))
		if err != nil {
			return err
		}
		if err := pprof.Lookup(kind).WriteTo(f, 0); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Statement is one line of pg_stat_statements.
type Statement struct {
	Query       string  `db:"query" json:"query"`
	Calls       int64   `db:"calls" json:"calls"`
	TotalMs     float64 `db:"total_ms" json:"total_ms"`
	MeanMs      float64 `db:"mean_ms" json:"mean_ms"`
	SharePct    float64 `db:"share_pct" json:"share_pct"`
	PlanMs      float64 `db:"plan_ms" json:"plan_ms"`
	RowsPerCall float64 `db:"rows_per_call" json:"rows_per_call"`
}

func (e *env) resetStatements(ctx context.Context) {
	if e.statsOn {
		_, _ = e.db.ExecContext(ctx, `SELECT pg_stat_statements_reset()`)
	}
}

// topStatements reads what the scenario's statements cost inside
// PostgreSQL and, with --profile, writes them next to the profiles.
func (e *env) topStatements(ctx context.Context, name string) []Statement {
	if !e.statsOn {
		return nil
	}
	const q = `
		SELECT regexp_replace(query, '\s+', ' ', 'g') AS query, calls,
		       round(total_exec_time::numeric, 1)::float8 AS total_ms,
		       round(mean_exec_time::numeric, 3)::float8 AS mean_ms,
		       round((100 * total_exec_time / NULLIF(sum(total_exec_time) OVER (), 0))::numeric, 1)::float8 AS share_pct,
		       round(total_plan_time::numeric, 1)::float8 AS plan_ms,
		       round((rows::numeric / NULLIF(calls, 0)), 2)::float8 AS rows_per_call
		FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT $1`
	var rows []Statement
	if err := sqlx.SelectContext(ctx, e.db, &rows, q, statementsTop); err != nil {
		e.opts.Logger.Warn("read pg_stat_statements", "error", err)
		return nil
	}
	if e.opts.ProfileDir != "" {
		f, err := os.Create(filepath.Join(e.opts.ProfileDir, "pg_stat_statements-"+name+".txt"))
		if err == nil {
			tw := tabwriter.NewWriter(f, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "share%\ttotal ms\tcalls\tmean ms\tplan ms\trows/call\tquery")
			for _, s := range rows {
				fmt.Fprintf(tw, "%.1f\t%.0f\t%d\t%.3f\t%.1f\t%.2f\t%s\n", s.SharePct, s.TotalMs, s.Calls, s.MeanMs, s.PlanMs, s.RowsPerCall, s.Query)
			}
			_ = tw.Flush()
			_ = f.Close()
		}
	}
	for i := range rows {
		if len(rows[i].Query) > 200 {
			rows[i].Query = rows[i].Query[:200] + "…"
		}
	}
	return rows
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model,omitempty"`
	MemoryMB   int64  `json:"memory_mb"`
	PostgreSQL string `json:"postgresql"`
	Go         string `json:"go"`
	LoadAvg    string `json:"load_average_at_start,omitempty"`
}

func describeMachine(ctx context.Context, db *sqlx.DB) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	_ = db.GetContext(ctx, &m.PostgreSQL, `SELECT current_setting('server_version')`)
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
				m.MemoryMB = kb / 1024
			}
		}
	}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		fields := strings.Fields(string(raw))
		if len(fields) >= 3 {
			m.LoadAvg = strings.Join(fields[:3], " ")
		}
	}
	return m
}

func isExecutableFile(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}
