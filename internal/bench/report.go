package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets of issue 19; docs/performance.md explains them. The anchor is
// the same rows written lean (the lean baselines), not tpcb-like, whose
// ratio is still reported.
const (
	targetOneCallOverLeanFunction = 0.6
	targetTwoStepOverLeanTwoTx    = 0.7
	targetOneCallCPUMs            = 3.5 // PostgreSQL + Go process, per purchase
	targetOneCallGoCPUMs          = 0.8
	targetHotOverSpread           = 0.9
	targetFlashOverSpread         = 0.8
	targetRSSMaxMB                = 100.0
)

func (r *Report) lean(name string) *PgbenchResult {
	for i := range r.Lean {
		if r.Lean[i].Name == name && r.Lean[i].Missing == "" {
			return &r.Lean[i]
		}
	}
	return nil
}

// Percentiles of a purchase's latency (create + confirm), in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// FlashResult is what the flash sale sold.
type FlashResult struct {
	Stock                  int     `json:"stock"`
	Buyers                 int     `json:"buyers"`
	Sold                   int     `json:"sold"`
	Left                   int     `json:"left"`
	Oversold               int     `json:"oversold"`
	SoldOut                bool    `json:"sold_out"`
	SoldOutSeconds         float64 `json:"sold_out_seconds"`
	ThroughputUntilSoldOut float64 `json:"throughput_until_sold_out"`
}

// WebhookResult is what the loopback receiver got.
type WebhookResult struct {
	Expected           int         `json:"expected"`
	Received           int         `json:"received"`
	ReceivedDuringLoad int         `json:"received_during_load"`
	Repeats            int         `json:"repeats"`
	EventsPerSecond    float64     `json:"events_per_second"`
	DrainSeconds       float64     `json:"drain_seconds"`
	LatencyMs          Percentiles `json:"commit_to_receipt_ms"`
}

// PgbenchResult is a pgbench run: the physical-limit baseline (tpcb-like)
// or a lean same-work baseline (Name says which; one transaction of a lean
// script is one purchase, whatever the number of database transactions).
type PgbenchResult struct {
	Name         string  `json:"name,omitempty"`
	Binary       string  `json:"binary,omitempty"`
	Missing      string  `json:"missing,omitempty"`
	Clients      int     `json:"clients"`
	Threads      int     `json:"threads"`
	Scale        int     `json:"scale"`
	Seconds      float64 `json:"seconds"`
	InitSeconds  float64 `json:"init_seconds"`
	TPS          float64 `json:"tps"`
	LatencyAvgMs float64 `json:"latency_avg_ms"`
	Failed       int     `json:"failed"`
	// Costs per transaction, to set beside the scenarios' per-purchase ones.
	PostgresCPUMsPerTxn float64 `json:"postgres_cpu_ms_per_transaction"`
	ClientCPUMsPerTxn   float64 `json:"pgbench_cpu_ms_per_transaction"`
	WALBytesPerTxn      float64 `json:"wal_bytes_per_transaction"`
}

// Result is one scenario's (or the direct baseline's) figures.
type Result struct {
	Name       string         `json:"name"`
	Skipped    string         `json:"skipped,omitempty"`
	Purchases  int            `json:"purchases"`
	Failed     int            `json:"refused_or_failed"`
	Seconds    float64        `json:"seconds"`
	Throughput float64        `json:"purchases_per_second"`
	LatencyMs  Percentiles    `json:"latency_ms"`
	Errors     map[string]int `json:"errors_by_code"`
	Status5xx  int            `json:"status_5xx"`
	Transport  int            `json:"transport_errors"`
	RSSMaxMB   float64        `json:"process_rss_max_mb"`
	HeapMaxMB  float64        `json:"go_heap_max_mb"`
	// Costs per paid purchase, steadier than throughput on a shared machine.
	ProcessCPUMsPerPurchase float64 `json:"process_cpu_ms_per_purchase"`
	// With --profile, the CPU profile's split of the process: the server's
	// stacks, the bench clients', and the rest (GC, scheduler, shared).
	ServerCPUMsPerPurchase   float64        `json:"server_cpu_ms_per_purchase,omitempty"`
	ClientCPUMsPerPurchase   float64        `json:"client_cpu_ms_per_purchase,omitempty"`
	OtherGoCPUMsPerPurchase  float64        `json:"other_go_cpu_ms_per_purchase,omitempty"`
	PostgresCPUMsPerPurchase float64        `json:"postgres_cpu_ms_per_purchase"`
	StatementsPerPurchase    float64        `json:"statements_per_purchase"`
	WALBytesPerPurchase      float64        `json:"wal_bytes_per_purchase"`
	FullPagesPerPurchase     float64        `json:"wal_full_page_images_per_purchase"`
	Flash                    *FlashResult   `json:"flash,omitempty"`
	Webhooks                 *WebhookResult `json:"webhooks,omitempty"`
	AuditClean               bool           `json:"audit_clean"`
	AuditSeconds             float64        `json:"audit_seconds"`
	AuditReport              string         `json:"audit_report,omitempty"`
	Statements               []Statement    `json:"top_statements,omitempty"`

	lastPaidSeconds float64
}

// Target is one goal of the issue and whether this run met it.
type Target struct {
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Got    float64 `json:"got"`
	Met    bool    `json:"met"`
	Absent bool    `json:"absent,omitempty"` // a figure it needs was not measured
}

// Report is a whole run.
type Report struct {
	StartedAt  time.Time          `json:"started_at"`
	Machine    Machine            `json:"machine"`
	Database   string             `json:"database"`
	Durability string             `json:"durability"`
	Clients    int                `json:"clients"`
	Duration   string             `json:"duration_per_scenario"`
	Pgbench    *PgbenchResult     `json:"pgbench,omitempty"`
	Lean       []PgbenchResult    `json:"lean,omitempty"`
	LeanHTTP   []Result           `json:"lean_http,omitempty"`
	Direct     *Result            `json:"direct,omitempty"`
	Scenarios  []Result           `json:"scenarios"`
	Ratios     map[string]float64 `json:"ratios"`
	Targets    []Target           `json:"targets"`
}

func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (r *Report) scenario(name string) *Result {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name && r.Scenarios[i].Skipped == "" {
			return &r.Scenarios[i]
		}
	}
	return nil
}

func (r *Report) spreadThroughput() float64 {
	if s := r.scenario(ScenarioSpread); s != nil {
		return s.Throughput
	}
	return 0
}

// evaluate computes the ratios and checks the targets.
func (r *Report) evaluate() {
	r.Ratios = map[string]float64{}
	ratio := func(name string, a, b float64) (float64, bool) {
		if a <= 0 || b <= 0 {
			return 0, false
		}
		v := round(a/b, 2)
		r.Ratios[name] = v
		return v, true
	}
	spread, hot, flash := r.scenario(ScenarioSpread), r.scenario(ScenarioHot), r.scenario(ScenarioFlash)
	pgTPS, pgLatency := 0.0, 0.0
	if r.Pgbench != nil {
		pgTPS, pgLatency = r.Pgbench.TPS, r.Pgbench.LatencyAvgMs
	}
	add := func(name, want string, got float64, ok, met bool) {
		r.Targets = append(r.Targets, Target{Name: name, Want: want, Got: got, Met: ok && met, Absent: !ok})
	}
	for _, s := range r.Scenarios {
		if s.Skipped == "" {
			ratio(s.Name+"/pgbench_tps", s.Throughput, pgTPS)
		}
		if s.Skipped == "" && r.Direct != nil {
			ratio(s.Name+"/direct", s.Throughput, r.Direct.Throughput)
		}
	}
	if r.Direct != nil {
		ratio("direct/pgbench_tps", r.Direct.Throughput, pgTPS)
	}
	leanTPS := func(name string) float64 {
		if l := r.lean(name); l != nil {
			return l.TPS
		}
		return 0
	}
	for _, l := range r.Lean {
		if l.Missing == "" {
			ratio(l.Name+"/pgbench_tps", l.TPS, pgTPS)
		}
	}
	oneCall := r.scenario(ScenarioOneCall)
	if h := r.leanHTTPResult(LeanHTTP); h != nil {
		ratio("lean-http/lean-fn", h.Throughput, leanTPS(LeanFunction))
		if oneCall != nil {
			ratio("onecall/lean-http", oneCall.Throughput, h.Throughput)
		}
	}
	if h := r.leanHTTPResult(LeanHTTPTwoTx); h != nil {
		ratio("lean-http-2tx/lean-2tx", h.Throughput, leanTPS(LeanTwoTransactions))
		if spread != nil {
			ratio("spread/lean-http-2tx", spread.Throughput, h.Throughput)
		}
	}
	if oneCall != nil {
		ratio("onecall/lean-1tx", oneCall.Throughput, leanTPS(LeanOneTransaction))
		v, ok := ratio("onecall/lean-fn", oneCall.Throughput, leanTPS(LeanFunction))
		add("one-call purchase (spread)", fmt.Sprintf("≥ %.1f × lean one-call function", targetOneCallOverLeanFunction), v, ok, v >= targetOneCallOverLeanFunction)
		cpu := oneCall.PostgresCPUMsPerPurchase + oneCall.ProcessCPUMsPerPurchase
		add("one-call CPU ms per purchase (PG + Go process, clients included)", fmt.Sprintf("≤ %.1f ms", targetOneCallCPUMs), round(cpu, 2),
			oneCall.PostgresCPUMsPerPurchase > 0, cpu <= targetOneCallCPUMs)
		if oneCall.ServerCPUMsPerPurchase > 0 {
			add("one-call Go server CPU ms per purchase (CPU profile; GC and scheduler not included)", fmt.Sprintf("≤ %.1f ms", targetOneCallGoCPUMs),
				oneCall.ServerCPUMsPerPurchase, true, oneCall.ServerCPUMsPerPurchase <= targetOneCallGoCPUMs)
		} else {
			add("one-call Go CPU ms per purchase (server + clients; --profile splits them)", fmt.Sprintf("≤ %.1f ms", targetOneCallGoCPUMs),
				oneCall.ProcessCPUMsPerPurchase, true, oneCall.ProcessCPUMsPerPurchase <= targetOneCallGoCPUMs)
		}
	}
	if spread != nil {
		v, ok := ratio("spread/lean-2tx", spread.Throughput, leanTPS(LeanTwoTransactions))
		add("two-step purchase (spread)", fmt.Sprintf("≥ %.1f × lean two transactions", targetTwoStepOverLeanTwoTx), v, ok, v >= targetTwoStepOverLeanTwoTx)
		ratio("spread_p99/pgbench_latency_avg", spread.LatencyMs.P99, pgLatency)
	}
	if hot != nil && spread != nil {
		v, ok := ratio("hot/spread", hot.Throughput, spread.Throughput)
		add("hot throughput", fmt.Sprintf("≥ %.1f × spread", targetHotOverSpread), v, ok, v >= targetHotOverSpread)
	}
	if flash != nil && flash.Flash != nil {
		add("flash oversold", "= 0", float64(flash.Flash.Oversold), true, flash.Flash.Oversold == 0)
		if spread != nil {
			v, ok := ratio("flash_until_sold_out/spread", flash.Flash.ThroughputUntilSoldOut, spread.Throughput)
			add("flash throughput until sold out", fmt.Sprintf("≥ %.1f × spread", targetFlashOverSpread), v, ok, v >= targetFlashOverSpread)
		}
	}
	rss, fiveXX, clean := 0.0, 0, true
	for _, s := range r.results() {
		rss = max(rss, s.RSSMaxMB)
		fiveXX += s.Status5xx
		clean = clean && (s.Skipped != "" || s.AuditClean)
	}
	add("process RSS (server + bench clients)", fmt.Sprintf("≤ %.0f MB", targetRSSMaxMB), rss, true, rss <= targetRSSMaxMB)
	add("5xx answers", "= 0", float64(fiveXX), true, fiveXX == 0)
	cleanValue := 0.0
	if clean {
		cleanValue = 1
	}
	add("verify clean after every scenario", "= 1 (clean)", cleanValue, true, clean)
}

func derefResult(r *Result) []Result {
	if r == nil {
		return nil
	}
	return []Result{*r}
}

// results are the scenarios' and the HTTP-served baselines' figures.
func (r *Report) results() []Result {
	return slices.Concat(r.Scenarios, derefResult(r.Direct), r.LeanHTTP)
}

// Failure is the run's hard failure: audit violations, 5xx answers, an
// oversold flash sale. Missed throughput targets are not failures.
func (r *Report) Failure() error {
	var errs []error
	for _, s := range r.results() {
		if s.Skipped != "" {
			continue
		}
		if !s.AuditClean {
			errs = append(errs, fmt.Errorf("%s: the ledger audit found violations:\n%s", s.Name, s.AuditReport))
		}
		if s.Status5xx > 0 {
			errs = append(errs, fmt.Errorf("%s: %d answers were 5xx", s.Name, s.Status5xx))
		}
		if s.Flash != nil && s.Flash.Oversold > 0 {
			errs = append(errs, fmt.Errorf("%s: OVERSOLD %d units", s.Name, s.Flash.Oversold))
		}
	}
	return errors.Join(errs...)
}

// WriteJSON writes the report for machines.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "\nchatpay bench — %d CPUs (%s), %d MB, PostgreSQL %s, %s; %s (%s)\n", m.CPUs, m.CPUModel, m.MemoryMB, m.PostgreSQL, m.Go, r.Database, r.Durability)
	fmt.Fprintf(w, "%d clients, %s per scenario, load average at start %s\n\n", r.Clients, r.Duration, m.LoadAvg)
	if p := r.Pgbench; p != nil {
		if p.Missing != "" {
			fmt.Fprintf(w, "pgbench tpcb-like: %s\n", p.Missing)
		} else {
			fmt.Fprintf(w, "pgbench tpcb-like (scale %d, -c %d -j %d -T %.0f): %.1f TPS, average latency %.2f ms, %d failed\n",
				p.Scale, p.Clients, p.Threads, p.Seconds, p.TPS, p.LatencyAvgMs, p.Failed)
			fmt.Fprintf(w, "  per transaction: PG CPU %.3f ms, pgbench CPU %.3f ms, WAL %.1f kB\n",
				p.PostgresCPUMsPerTxn, p.ClientCPUMsPerTxn, p.WALBytesPerTxn/1000)
		}
	}
	for _, l := range r.Lean {
		if l.Missing != "" {
			fmt.Fprintf(w, "%s: %s\n", l.Name, l.Missing)
			continue
		}
		fmt.Fprintf(w, "%-8s (same rows, plain SQL, pgbench -M prepared): %.1f purchases/s, average latency %.2f ms, %d failed; per purchase: PG CPU %.3f ms, pgbench CPU %.3f ms, WAL %.1f kB\n",
			l.Name, l.TPS, l.LatencyAvgMs, l.Failed, l.PostgresCPUMsPerTxn, l.ClientCPUMsPerTxn, l.WALBytesPerTxn/1000)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tpurchases\tper s\tp50 ms\tp95 ms\tp99 ms\tmax ms\t5xx\trefused\tRSS MB\theap MB\tGo CPU ms/p\tPG CPU ms/p\tstmts/p\tWAL kB/p\tFPI/p\tverify\t")
	rows := slices.Concat(r.LeanHTTP, derefResult(r.Direct), r.Scenarios)
	for _, s := range rows {
		if s.Skipped != "" {
			continue
		}
		verify := "clean"
		if !s.AuditClean {
			verify = "VIOLATIONS"
		}
		name := s.Name
		if name == "direct" {
			name = "direct (no HTTP)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%.1f\t%.1f\t%.2f\t%s\t\n", name, s.Purchases, s.Throughput,
			s.LatencyMs.P50, s.LatencyMs.P95, s.LatencyMs.P99, s.LatencyMs.Max, s.Status5xx, s.Failed-s.Status5xx, s.RSSMaxMB, s.HeapMaxMB,
			s.ProcessCPUMsPerPurchase, s.PostgresCPUMsPerPurchase, s.StatementsPerPurchase, s.WALBytesPerPurchase/1000, s.FullPagesPerPurchase, verify)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range rows {
		if s.Skipped != "" {
			fmt.Fprintf(w, "%s: %s\n", s.Name, s.Skipped)
			continue
		}
		if len(s.Errors) > 0 {
			codes := make([]string, 0, len(s.Errors))
			for code, n := range s.Errors {
				codes = append(codes, fmt.Sprintf("%s ×%d", code, n))
			}
			slices.Sort(codes)
			fmt.Fprintf(w, "%s answers other than paid: %s\n", s.Name, strings.Join(codes, ", "))
		}
		if f := s.Flash; f != nil {
			fmt.Fprintf(w, "flash: %d units, %d buyers: sold %d, left %d, OVERSOLD %d; sold out after %.2f s at %.1f purchases/s\n",
				f.Stock, f.Buyers, f.Sold, f.Left, f.Oversold, f.SoldOutSeconds, f.ThroughputUntilSoldOut)
		}
		if s.ServerCPUMsPerPurchase > 0 {
			fmt.Fprintf(w, "%s Go CPU per purchase from the CPU profile: server %.2f ms, bench clients %.2f ms, GC and scheduler %.2f ms\n",
				s.Name, s.ServerCPUMsPerPurchase, s.ClientCPUMsPerPurchase, s.OtherGoCPUMsPerPurchase)
		}
		if h := s.Webhooks; h != nil {
			fmt.Fprintf(w, "webhooks: %d of %d events received (%d during the load, %d repeats), %.1f events/s, drained %.2f s after the load; commit→receipt p50 %.1f / p95 %.1f / p99 %.1f / max %.1f ms\n",
				h.Received, h.Expected, h.ReceivedDuringLoad, h.Repeats, h.EventsPerSecond, h.DrainSeconds,
				h.LatencyMs.P50, h.LatencyMs.P95, h.LatencyMs.P99, h.LatencyMs.Max)
		}
	}
	r.writeVerdicts(w)
	return nil
}

// writeVerdicts writes the ratios and whether each target was met.
func (r *Report) writeVerdicts(w io.Writer) {
	fmt.Fprintln(w, "\nratios:")
	names := make([]string, 0, len(r.Ratios))
	for name := range r.Ratios {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-34s %.2f\n", name, r.Ratios[name])
	}
	fmt.Fprintln(w, "\ntargets:")
	for _, t := range r.Targets {
		mark := "MET"
		switch {
		case t.Absent:
			mark = "NOT MEASURED"
		case !t.Met:
			mark = "SHORT"
		}
		fmt.Fprintf(w, "  %-38s %-40s got %-8.2f %s\n", t.Name, t.Want, t.Got, mark)
	}
}
