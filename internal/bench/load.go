package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// outcome is how one purchase ended: code is "" for a paid order, else the
// problem code (or "transport" when no HTTP answer came back).
type outcome struct {
	status int
	code   string
}

// buyFunc makes purchase number n of client; it must respect ctx.
type buyFunc func(ctx context.Context, client, n int) outcome

// load is what one closed-loop run measured.
type load struct {
	start, end time.Time
	latencies  [][]time.Duration // per client, paid purchases only
	lastPaid   []time.Time       // per client
	paid       atomic.Int64
	failed     atomic.Int64
	mu         sync.Mutex
	errors     map[string]int // "409 sold_out" → count
	rssMaxB    int64
	heapMaxB   int64
	// What the load cost: CPU of this process and of the private cluster,
	// and the statements PostgreSQL ran (-1: unknown).
	processCPU, postgresCPU time.Duration
	statements              int64
	wal                     walStats
}

// drive runs clients closed loops of fn for at most duration and at most
// countMax purchases in all. A client stops early when stop says so.
func (e *env) drive(ctx context.Context, name string, countMax int, fn buyFunc, stop func(outcome) bool) *load {
	clients, duration := e.opts.Clients, e.opts.Duration
	l := &load{latencies: make([][]time.Duration, clients), lastPaid: make([]time.Time, clients), errors: map[string]int{}}
	runCtx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var issued atomic.Int64
	samplerDone := make(chan struct{})
	samplerCtx, stopSampler := context.WithCancel(ctx)
	go func() {
		defer close(samplerDone)
		e.sample(samplerCtx, name, l)
	}()
	meter := e.startCPU(ctx)
	l.start = time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for runCtx.Err() == nil {
				n := int(issued.Add(1)) - 1
				if n >= countMax {
					return
				}
				// A purchase under way when the time is up finishes: cutting
				// it off would show up as a canceled request on the server.
				began := time.Now()
				out := fn(ctx, c, n)
				if ctx.Err() != nil && out.code == "transport" {
					return // the run was interrupted, not a failure
				}
				if out.code == "" {
					l.paid.Add(1)
					l.lastPaid[c] = time.Now()
					l.latencies[c] = append(l.latencies[c], time.Since(began))
				} else {
					l.failed.Add(1)
					l.mu.Lock()
					l.errors[strconv.Itoa(out.status)+" "+out.code]++
					l.mu.Unlock()
				}
				if stop != nil && stop(out) {
					return
				}
			}
		})
	}
	wg.Wait()
	l.end = time.Now()
	meter.stop(ctx, l)
	stopSampler()
	<-samplerDone
	return l
}

// sample writes the progress line and keeps the process's peak RSS and
// Go heap while the load runs.
func (e *env) sample(ctx context.Context, name string, l *load) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	terminal := isTerminal(e.opts.Progress)
	lastLine := time.Now()
	for i := 0; ; i++ {
		if rss := readRSS(); rss > l.rssMaxB {
			l.rssMaxB = rss
		}
		if heap := readHeap(); heap > l.heapMaxB {
			l.heapMaxB = heap
		}
		if e.opts.Progress != nil && (terminal && i%4 == 0 || !terminal && time.Since(lastLine) >= 5*time.Second) {
			elapsed := time.Since(l.start)
			line := fmt.Sprintf("%-9s %5.1fs/%s  %7d paid  %7.0f/s  %5d refused/failed  rss %4.0f MB",
				name, elapsed.Seconds(), e.opts.Duration, l.paid.Load(), float64(l.paid.Load())/max(elapsed.Seconds(), 0.001),
				l.failed.Load(), float64(l.rssMaxB)/1e6)
			if terminal {
				fmt.Fprintf(e.opts.Progress, "\r%s   ", line)
			} else {
				fmt.Fprintln(e.opts.Progress, line)
			}
			lastLine = time.Now()
		}
		select {
		case <-ctx.Done():
			if terminal && e.opts.Progress != nil {
				fmt.Fprintln(e.opts.Progress)
			}
			return
		case <-tick.C:
		}
	}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// readRSS is this process's resident set (VmRSS), in bytes, or 0.
func readRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// readHeap is the Go heap's live and not yet swept objects, in bytes.
func readHeap() int64 {
	metrics.Read(heapSample)
	if heapSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(heapSample[0].Value.Uint64())
}

// result turns a load into a scenario result.
func (l *load) result(name string) *Result {
	var all []time.Duration
	var last time.Time
	for c, lat := range l.latencies {
		all = append(all, lat...)
		if l.lastPaid[c].After(last) {
			last = l.lastPaid[c]
		}
	}
	slices.Sort(all)
	seconds := l.end.Sub(l.start).Seconds()
	r := &Result{
		Name: name, Purchases: int(l.paid.Load()), Failed: int(l.failed.Load()), Seconds: round(seconds, 2),
		Throughput: round(float64(l.paid.Load())/seconds, 1), Errors: l.errors,
		LatencyMs: latencies(all), RSSMaxMB: round(float64(l.rssMaxB)/1e6, 1), HeapMaxMB: round(float64(l.heapMaxB)/1e6, 1),
	}
	if paid := float64(l.paid.Load()); paid > 0 {
		r.ProcessCPUMsPerPurchase = round(float64(l.processCPU.Microseconds())/1000/paid, 2)
		if l.postgresCPU > 0 {
			r.PostgresCPUMsPerPurchase = round(float64(l.postgresCPU.Microseconds())/1000/paid, 2)
		}
		if l.statements >= 0 {
			r.StatementsPerPurchase = round(float64(l.statements)/paid, 1)
		}
		if l.wal.ok {
			r.WALBytesPerPurchase = round(float64(l.wal.bytes)/paid, 0)
			r.FullPagesPerPurchase = round(float64(l.wal.fullPages)/paid, 2)
		}
	}
	for k, n := range l.errors {
		if status, _ := strconv.Atoi(strings.Fields(k)[0]); status >= 500 {
			r.Status5xx += n
		}
		if strings.HasSuffix(k, " transport") {
			r.Transport += n
		}
	}
	if !last.IsZero() {
		r.lastPaidSeconds = last.Sub(l.start).Seconds()
	}
	return r
}

func latencies(sorted []time.Duration) Percentiles {
	if len(sorted) == 0 {
		return Percentiles{}
	}
	at := func(q float64) float64 {
		i := int(q * float64(len(sorted)-1))
		return round(float64(sorted[i].Microseconds())/1000, 1)
	}
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return Percentiles{
		P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: at(1),
		Mean: round(float64(sum.Microseconds())/1000/float64(len(sorted)), 1),
	}
}

// purchase buys one unit of item for shopper through the channel API:
// create the checkout (reserving stock), then confirm it, each with its own
// Idempotency-Key, as a messenger backend would.
func (e *env) purchase(ctx context.Context, channel Account, shopperID, itemID, key string) outcome {
	body := map[string]any{"shopper_id": shopperID, "lines": []map[string]any{{"item_id": itemID, "quantity": 1}}}
	r, err := e.call(ctx, http.MethodPost, "/v1/channel/checkouts", channel.Key, key+"-create", body)
	if err != nil {
		return outcome{code: "transport"}
	}
	if r.Status != http.StatusCreated {
		return outcome{status: r.Status, code: orUnknown(r.code())}
	}
	var co struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.Body, &co); err != nil || co.ID == "" {
		return outcome{status: r.Status, code: "bad_checkout_answer"}
	}
	r, err = e.call(ctx, http.MethodPost, "/v1/channel/checkouts/"+co.ID+"/confirm", channel.Key, key+"-confirm", nil)
	if err != nil {
		return outcome{code: "transport"}
	}
	if r.Status != http.StatusOK {
		return outcome{status: r.Status, code: orUnknown(r.code())}
	}
	return outcome{status: r.Status}
}

// oneCallBody is the one-call purchase's request, written without
// encoding/json so that the clients' CPU stays small beside the server's.
func oneCallBody(shopperID, itemID string) []byte {
	return []byte(`{"shopper_id":"` + shopperID + `","item_id":"` + itemID + `","quantity":1}`)
}

// purchaseOneCall buys one unit of item for shopper in one call.
func (e *env) purchaseOneCall(ctx context.Context, channel Account, shopperID, itemID, key string) outcome {
	r, err := e.call(ctx, http.MethodPost, "/v1/channel/purchases", channel.Key, key, json.RawMessage(oneCallBody(shopperID, itemID)))
	if err != nil {
		return outcome{code: "transport"}
	}
	if r.Status != http.StatusOK {
		return outcome{status: r.Status, code: orUnknown(r.code())}
	}
	return outcome{status: r.Status}
}

func orUnknown(code string) string {
	if code == "" {
		return "unknown"
	}
	return code
}
