package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The bench command end to end, tiny: its own durable private cluster,
// pgbench at scale 1, the lean baselines (lean-http included), the direct
// baseline, spread, onecall and a flash sale for 2 s with 4 clients; it
// must sell exactly the flash stock and verify clean.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"bench", "--json", "--duration", "2s", "--clients", "4", "--merchants", "20",
		"--pgbench-scale", "1", "--scenarios", "spread,onecall,flash"}, &stdout, &stderr, func(string) string { return "" })
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	var report struct {
		Pgbench struct {
			TPS     float64 `json:"tps"`
			Missing string  `json:"missing"`
		} `json:"pgbench"`
		Lean []struct {
			Name    string  `json:"name"`
			TPS     float64 `json:"tps"`
			Missing string  `json:"missing"`
		} `json:"lean"`
		Direct struct {
			Purchases int `json:"purchases"`
		} `json:"direct"`
		LeanHTTP []struct {
			Name       string         `json:"name"`
			Purchases  int            `json:"purchases"`
			Status5xx  int            `json:"status_5xx"`
			AuditClean bool           `json:"audit_clean"`
			Errors     map[string]int `json:"errors_by_code"`
		} `json:"lean_http"`
		Ratios    map[string]float64 `json:"ratios"`
		Scenarios []struct {
			Name       string         `json:"name"`
			Purchases  int            `json:"purchases"`
			Status5xx  int            `json:"status_5xx"`
			AuditClean bool           `json:"audit_clean"`
			Errors     map[string]int `json:"errors_by_code"`
			Flash      *struct {
				Stock, Sold, Oversold int
			} `json:"flash"`
		} `json:"scenarios"`
		Targets []struct {
			Name string `json:"name"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	if report.Pgbench.TPS <= 0 && !strings.Contains(report.Pgbench.Missing, "not found") {
		t.Errorf("pgbench measured nothing: %q", report.Pgbench.Missing)
	}
	if report.Direct.Purchases == 0 {
		t.Error("the direct baseline bought nothing")
	}
	if len(report.Scenarios) != 3 {
		t.Fatalf("%d scenarios, want spread, onecall and flash:\n%s", len(report.Scenarios), stdout.String())
	}
	for _, l := range report.Lean {
		if l.TPS <= 0 && !strings.Contains(l.Missing, "not found") {
			t.Errorf("lean baseline %s measured nothing: %q", l.Name, l.Missing)
		}
	}
	if len(report.Lean) != 3 && (len(report.Lean) != 1 || !strings.Contains(report.Lean[0].Missing, "not found")) {
		t.Errorf("%d lean baselines, want 3", len(report.Lean))
	}
	if len(report.Lean) == 3 {
		if len(report.LeanHTTP) != 2 {
			t.Errorf("lean HTTP floors: %+v, want lean-http and lean-http-2tx", report.LeanHTTP)
		}
		for _, h := range report.LeanHTTP {
			if h.Purchases == 0 || h.Status5xx != 0 || !h.AuditClean {
				t.Errorf("%s: %+v", h.Name, h)
			}
		}
		for _, r := range []string{"onecall/lean-http", "lean-http/lean-fn", "spread/lean-http-2tx", "lean-http-2tx/lean-2tx"} {
			if report.Ratios[r] <= 0 {
				t.Errorf("ratio %s missing: %v", r, report.Ratios)
			}
		}
	}
	for _, s := range report.Scenarios {
		if s.Purchases == 0 || s.Status5xx != 0 || !s.AuditClean {
			t.Errorf("%s: %d purchases, %d 5xx, audit clean %v, errors %v", s.Name, s.Purchases, s.Status5xx, s.AuditClean, s.Errors)
		}
	}
	if f := report.Scenarios[2].Flash; f == nil || f.Oversold != 0 || f.Sold > f.Stock {
		t.Errorf("flash sale: %+v", f)
	}
	if len(report.Targets) == 0 {
		t.Error("no targets evaluated")
	}
	if !strings.Contains(stderr.String(), "spread") {
		t.Errorf("no progress line on stderr:\n%s", stderr.String())
	}
}
