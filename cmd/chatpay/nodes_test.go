package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/pgcluster"
)

// Several nodes on one database: API nodes are stateless and the jobs are
// safe on every node, so any number of `serve` and `dispatch` processes run
// side by side. The harness below starts them as real processes on a shared
// database (a private cluster here, the failover topology in the HA drill)
// and spreads the crash tests' flash-sale clients over the API nodes.

const (
	nodesServes      = 3
	nodesDispatchers = 2
	// webhooksDeliveredIn bounds the wait for every order.paid webhook: a
	// delivery whose result could not be recorded (its database went away)
	// is sent again once its claim's lease (3 × the 10 s HTTP timeout) ends.
	webhooksDeliveredIn = 90 * time.Second
)

// webhookSink is a messenger backend on loopback that counts order.paid
// webhooks by order id.
type webhookSink struct {
	url string

	mu     sync.Mutex
	orders map[string]int
}

func startWebhookSink(t *testing.T) *webhookSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &webhookSink{url: "http://" + l.Addr().String() + "/hook", orders: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Type string `json:"type"`
			Data struct {
				Order struct {
					ID string `json:"id"`
				} `json:"order"`
			} `json:"data"`
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if json.Unmarshal(body, &env) != nil || env.Type != "order.paid" || env.Data.Order.ID == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.orders[env.Data.Order.ID]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *webhookSink) received() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.orders))
	for k, v := range s.orders {
		out[k] = v
	}
	return out
}

// startNodes starts nodesServes API nodes and nodesDispatchers dispatchers
// on e.dsn, seeds the sale through them, and points the channel's webhooks
// at a sink.
func startNodes(e *crashEnv) *webhookSink {
	t := e.t
	e.serveArgs = []string{"--webhooks-allow-http", "--webhooks-allow-loopback"}
	e.client = newCrashClient(t)
	var bases []string
	for range nodesServes {
		e.addr = freeAddr(t)
		e.base = "http://" + e.addr
		e.serve = e.startServe()
		bases = append(bases, e.base)
	}
	e.bases = bases
	for range nodesDispatchers {
		e.startDispatch()
	}
	e.seed()
	sink := startWebhookSink(t)
	a := e.do("POST", "/v1/webhooks/endpoints", e.channelKey, "",
		mustJSON(map[string]any{"url": sink.url, "event_types": []string{"order.paid"}}))
	e.idOf("create webhook endpoint", a, http.StatusCreated)
	return sink
}

// newCrashClient is the clients' HTTP client, closed when the test ends.
func newCrashClient(t *testing.T) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = crashWorkers * 2
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: transport}
}

// startDispatch runs `chatpay dispatch` on e.dsn until the test ends; it
// joins e.serves so that the log and liveness checks cover it.
func (e *crashEnv) startDispatch() {
	cmd := exec.Command(os.Args[0], "dispatch", "--webhooks-allow-http", "--webhooks-allow-loopback", "--log-format", "json")
	cmd.Env = append(os.Environ(), "CHATPAY_TEST_AS_BINARY=1", "DATABASE_URL="+e.dsn, "CHATPAY_DEV_ALLOW_UNSAFE_DURABILITY=")
	p := &crashServer{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() { p.stop(e.t) })
	e.serves = append(e.serves, p)
}

// assertWebhooksDelivered waits until every paid order's order.paid webhook
// reached the sink at least once, with no delivery left pending or failed.
func (e *crashEnv) assertWebhooksDelivered(sink *webhookSink) {
	t := e.t
	t.Helper()
	db := e.openDB()
	defer db.Close()
	var orders []string
	if err := db.Select(&orders, `SELECT id FROM orders WHERE merchant_id = $1`, e.merchantID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var missing []string
	ok := waitFor(func() bool {
		got := sink.received()
		missing = missing[:0]
		for _, id := range orders {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		var open int
		if err := db.Get(&open, `SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'`); err != nil {
			return false
		}
		return len(missing) == 0 && open == 0
	}, webhooksDeliveredIn)
	if !ok {
		t.Errorf("%d of %d order.paid webhooks never arrived within %s: %v", len(missing), len(orders), webhooksDeliveredIn, missing[:min(len(missing), 10)])
		return
	}
	dupes := 0
	for _, n := range sink.received() {
		dupes += n - 1
	}
	t.Logf("webhooks: all %d order.paid delivered (%s after the checks began), %d duplicates (at least once)",
		len(orders), time.Since(start).Round(time.Millisecond), dupes)
	var stray int
	if err := db.Get(&stray, `SELECT count(*) FROM orders WHERE merchant_id = $1 AND NOT (id = ANY ($2))`, e.merchantID, pq.Array(keys(sink.received()))); err != nil {
		t.Fatal(err)
	}
	if stray != 0 {
		t.Errorf("%d orders have no webhook", stray)
	}
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// assertNodesRunning fails if any serve or dispatch process has exited.
func (e *crashEnv) assertNodesRunning() {
	e.t.Helper()
	for i, p := range e.serves {
		select {
		case <-p.done:
			e.t.Errorf("node %d (pid %d) exited during the test:\n%s", i+1, p.cmd.Process.Pid, lastN(p.out.String(), 3000))
		default:
		}
	}
}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Three API nodes and two dispatchers on one database under a flash sale
// whose clients spread their requests, retries included, over every API
// node: the sale comes out exactly as on one node (no purchase lost or
// doubled, stock and wallets add up, replays byte-identical), every paid
// order's webhook arrives, and `verify` is clean.
func TestManyNodesOneDatabase(t *testing.T) {
	began := time.Now()
	e := &crashEnv{t: t, dir: dataDir(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(e.dir, "pg"), Settings: map[string]string{"max_connections": "300"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	e.cluster, e.dsn = cluster, cluster.URL()
	sink := startNodes(e)
	t.Logf("cluster, %d serve and %d dispatch processes and seeding took %s", nodesServes, nodesDispatchers, time.Since(began).Round(time.Millisecond))

	l := runCrashLoad(e, func(l *crashLoad) { l.crashAt = time.Now() }) // no crash: the mark splits the replay check
	if bad := l.fivexx(l.start); len(bad) > 0 {
		t.Errorf("%d answers were 5xx:\n%s", len(bad), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
	l.checkOutcomes()
	l.checkReplays()
	e.assertWebhooksDelivered(sink)
	e.assertNodesRunning()
	e.assertServeLogsClean()
	e.assertVerifyExitsZero()
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
}
