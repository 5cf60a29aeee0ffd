package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/pgcluster"
)

// Crash tests: a flash sale of the tea card through the channel API of a
// real `chatpay serve` process on a PostgreSQL cluster with production
// durability, interrupted once by SIGKILL of the server
// (TestServerCrashDuringFlashSale) or by an immediate shutdown of PostgreSQL
// (TestDatabaseCrashKeepsAcknowledgedPurchases). Clients behave as a
// careful bot must: an answer they did not get is asked for again with the
// same Idempotency-Key and body until one comes. Afterwards the database,
// the API and `chatpay verify` must agree with what clients were told.

const (
	crashStock    = 300
	crashShoppers = 64
	crashWorkers  = 32
	// A worker alternates between its two shoppers; 32 × 30 attempts is
	// far more than the stock, so the sale runs to sold out.
	crashWorkerBuysMax = 30
	crashPriceMinor    = 300
	// 60.00 CNY buys 20 cards, more than the 15 a worker's shopper can
	// attempt: a refusal for insufficient funds is never a right answer here.
	crashFundMinor  = 6000
	crashFundAmount = "60.00"
	// The crash comes after a random number of paid purchases in this range.
	crashAfterPaidMin = 80
	crashAfterPaidMax = 150
	// No purchase starts after crashBuyFor and no retry after crashRetryFor
	// (both from the start of the load), which bounds the test's wall time.
	crashBuyFor     = 30 * time.Second
	crashRetryFor   = 40 * time.Second
	crashRetryPause = 50 * time.Millisecond
	crashReadyIn    = 30 * time.Second
)

// crashServer is one `chatpay serve` child process. startBinary cannot tell a
// server that died at start from one still starting, and a crash test must
// know when the process it killed is gone, so this waits on it itself.
type crashServer struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// crashEnv is a private cluster, the server on it, and the seeded sale.
type crashEnv struct {
	t       *testing.T
	dir     string
	cluster *pgcluster.Cluster
	dsn     string
	addr    string
	base    string
	client  *http.Client
	serve   *crashServer   // the current server
	serves  []*crashServer // every server started, for the log checks
	// serveArgs are added to every serve's command line; bases, when set,
	// spread the clients' requests over several servers in turn.
	serveArgs []string
	bases     []string
	next      atomic.Int64

	merchantID, merchantKey string
	channelKey              string
	itemID                  string
	shoppers                []string
}

func startCrashEnv(t *testing.T) *crashEnv {
	t.Helper()
	e := &crashEnv{t: t, dir: dataDir(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// No Settings: PostgreSQL's defaults are fsync, synchronous_commit and
	// full_page_writes on, which is what makes an acknowledged commit
	// survive a crash and what serve insists on without its development flag.
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(e.dir, "pg")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cluster.Stop(stopCtx); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	e.cluster, e.dsn = cluster, cluster.URL()
	e.assertDurable()

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = crashWorkers * 2
	e.client = &http.Client{Timeout: 10 * time.Second, Transport: transport}
	t.Cleanup(transport.CloseIdleConnections)

	e.addr = freeAddr(t)
	e.base = "http://" + e.addr
	e.serve = e.startServe()
	e.seed()
	return e
}

// assertDurable shows that the server under test gets no help from unsafe
// settings, unlike the shared test cluster.
func (e *crashEnv) assertDurable() {
	db := e.openDB()
	defer db.Close()
	for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		var value string
		if err := db.Get(&value, "SELECT current_setting($1)", name); err != nil {
			e.t.Fatal(err)
		}
		if value != "on" {
			e.t.Fatalf("%s = %s on the crash test's cluster; want on", name, value)
		}
	}
}

func (e *crashEnv) openDB() *sqlx.DB {
	e.t.Helper()
	db, err := database.Open(context.Background(), e.dsn, database.PoolOptions{MaxOpenConns: 4, MaxIdleConns: 4})
	if err != nil {
		e.t.Fatal(err)
	}
	return db
}

// startServe runs `chatpay serve` on e.addr and waits for /readyz. It is
// deliberately started without --dev-allow-unsafe-durability: serve refuses
// a database that could lose acknowledged commits, and this one cannot.
func (e *crashEnv) startServe() *crashServer {
	e.t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--listen", e.addr, "--data-dir", e.dir, "--log-format", "json"}, e.serveArgs...)...)
	cmd.Env = append(os.Environ(), "CHATPAY_TEST_AS_BINARY=1", "DATABASE_URL="+e.dsn,
		// Settings of the surrounding shell must not leak in: the sandbox
		// provider runs in-process, and durability is checked.
		"CHATPAY_PROVIDER_URL=", "CHATPAY_DEV_ALLOW_UNSAFE_DURABILITY=", "CHATPAY_NO_MIGRATE=")
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
	start := time.Now()
	for httpStatus(e.base+"/readyz") != http.StatusOK {
		select {
		case <-p.done:
			e.t.Fatalf("serve exited during start (%v):\n%s", cmd.ProcessState, p.out)
		default:
		}
		if time.Since(start) > crashReadyIn {
			e.t.Fatalf("serve not ready after %s:\n%s", crashReadyIn, p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// stop ends the process by its PID: SIGTERM, and SIGKILL if it lingers.
func (p *crashServer) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(15 * time.Second):
	}
	t.Errorf("serve (pid %d) ignored SIGTERM for 15 s; killing it", p.cmd.Process.Pid)
	p.kill(t)
}

func (p *crashServer) kill(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("serve (pid %d) still running 10 s after SIGKILL", p.cmd.Process.Pid)
	}
}

// cli runs a chatpay command as the binary and returns its output.
func (e *crashEnv) cli(args ...string) string {
	e.t.Helper()
	args = append(args, "--database-url", e.dsn, "--log-level", "warn")
	cmd, out := startBinary(e.t, []string{"CHATPAY_DEV_ALLOW_UNSAFE_DURABILITY="}, args...)
	if code, _ := waitExit(e.t, cmd, time.Minute); code != 0 {
		e.t.Fatalf("chatpay %s exited %d:\n%s", strings.Join(args, " "), code, out)
	}
	return out.String()
}

// crashBody is a body that the journal shows as text rather than base64.
type crashBody []byte

func (b crashBody) MarshalJSON() ([]byte, error) { return json.Marshal(string(b)) }

// crashAnswer is what one HTTP attempt got: a status and body, or a transport error.
type crashAnswer struct {
	Status    int
	Body      crashBody
	Replayed  bool
	Err       string
	Sent, Got time.Time
}

func (a crashAnswer) code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(a.Body, &p)
	return p.Code
}

// definitive says whether a client may take the answer as the request's
// outcome. A transport error or a 5xx may hide a committed change, and
// idempotency_key_in_use means a first attempt is still running: all three
// are asked again.
func (a crashAnswer) definitive() bool {
	return a.Err == "" && a.Status < 500 && !(a.Status == http.StatusConflict && a.code() == "idempotency_key_in_use")
}

func (a crashAnswer) String() string {
	if a.Err != "" {
		return "transport error: " + a.Err
	}
	return fmt.Sprintf("%d %s", a.Status, a.Body)
}

// do sends one request. With a body the Idempotency-Key header also lets
// net/http resend it by itself on a kept-alive connection that turns out
// dead; that resend carries the same key and body, as every retry here does.
func (e *crashEnv) do(method, path, bearer, key string, body []byte) crashAnswer {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	base := e.base
	if len(e.bases) > 0 {
		base = e.bases[int(e.next.Add(1))%len(e.bases)]
	}
	req, err := http.NewRequest(method, base+path, reader)
	if err != nil {
		panic(err) // only a malformed URL, a bug of this file
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	a := crashAnswer{Sent: time.Now()}
	resp, err := e.client.Do(req)
	if err != nil {
		a.Err, a.Got = err.Error(), time.Now()
		return a
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	a.Got = time.Now()
	if err != nil {
		a.Err = "reading the body: " + err.Error()
		return a
	}
	a.Status, a.Body, a.Replayed = resp.StatusCode, raw, resp.Header.Get("Idempotent-Replayed") == "true"
	return a
}

// mustJSON encodes maps of strings and numbers, which cannot fail; it is
// called from client goroutines, where t.Fatal may not be.
func mustJSON(v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return raw
}

// idOf decodes the "id" of an answer that must have the wanted status.
func (e *crashEnv) idOf(what string, a crashAnswer, want int) string {
	e.t.Helper()
	var v struct {
		ID string `json:"id"`
	}
	if a.Status != want || json.Unmarshal(a.Body, &v) != nil || v.ID == "" {
		e.t.Fatalf("%s: want %d with an id, got %s", what, want, a)
	}
	return v.ID
}

// seed creates the sale the way an operator, a merchant and a bot would:
// merchant and channel through the CLI, the item through the merchant API,
// shoppers and their top-ups (the in-process sandbox provider's test card)
// through the channel API.
func (e *crashEnv) seed() {
	t := e.t
	out := e.cli("merchant", "create", "--name", "Tea House", "--time-zone", "Asia/Shanghai", "--currency", "CNY")
	m := regexp.MustCompile(`(?m)^merchant: (mer_\S+)$`).FindStringSubmatch(out)
	k := regexp.MustCompile(`(?m)^api key: key_\S+ (sk_\S+)$`).FindStringSubmatch(out)
	if m == nil || k == nil {
		t.Fatalf("merchant create printed:\n%s", out)
	}
	e.merchantID, e.merchantKey = m[1], k[1]
	out = e.cli("channel", "create", "--name", "Tea bot", "--kind", "telegram")
	ck := regexp.MustCompile(`(?m)^api key:\s+(ck_\S+)$`).FindStringSubmatch(out)
	if ck == nil {
		t.Fatalf("channel create printed:\n%s", out)
	}
	e.channelKey = ck[1]

	item := teaCard(crashStock)
	delete(item, "per_shopper_limit")
	e.itemID = e.idOf("create item", e.do("POST", "/v1/items", e.merchantKey, "seed-item", mustJSON(item)), http.StatusCreated)

	e.shoppers = make([]string, crashShoppers)
	errs := make([]string, crashShoppers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range crashShoppers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			a := e.do("POST", "/v1/channel/shoppers", e.channelKey, "",
				mustJSON(map[string]string{"user_id": fmt.Sprintf("crash-%02d", i), "name": fmt.Sprintf("Shopper %d", i)}))
			var sh struct {
				ID string `json:"id"`
			}
			if a.Status != http.StatusOK || json.Unmarshal(a.Body, &sh) != nil || sh.ID == "" {
				errs[i] = "create shopper: " + a.String()
				return
			}
			e.shoppers[i] = sh.ID
			a = e.do("POST", "/v1/channel/shoppers/"+sh.ID+"/topups", e.channelKey, fmt.Sprintf("seed-topup-%02d", i),
				mustJSON(map[string]any{"amount": map[string]string{"amount": crashFundAmount, "currency": "CNY"}, "card": "4242424242424242"}))
			var tu struct {
				Status string `json:"status"`
			}
			if a.Status != http.StatusCreated || json.Unmarshal(a.Body, &tu) != nil || tu.Status != "succeeded" {
				errs[i] = "top up: " + a.String()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != "" {
			t.Fatal(err)
		}
	}
}

// crashRequest is one keyed POST and every attempt it took to get its outcome.
type crashRequest struct {
	Key, Path string
	Body      crashBody
	Tries     []crashAnswer
}

// outcome is the definitive answer, or nil if none came within the bound.
func (r *crashRequest) outcome() *crashAnswer {
	if n := len(r.Tries); n > 0 && r.Tries[n-1].definitive() {
		return &r.Tries[n-1]
	}
	return nil
}

// crashPurchase is one shopper's attempt to buy a card: a checkout, then its
// confirmation if the checkout was created; or a one-call purchase (then
// Create is nil and Confirm is the purchase).
type crashPurchase struct {
	Shopper    string
	Create     *crashRequest
	Confirm    *crashRequest
	CheckoutID string
	OrderID    string // set when the confirmation answered 200
}

// crashLoad is a closed-loop flash sale with a crash in the middle.
type crashLoad struct {
	e     *crashEnv
	start time.Time

	paid    atomic.Int64
	soldOut atomic.Int64 // workers told sold_out
	aborted atomic.Bool
	target  int64
	reached chan struct{}
	once    sync.Once

	mu        sync.Mutex
	purchases []*crashPurchase
	problems  []string // definitive answers no client should get

	// Set by the crash, before the load is over and read after it.
	crashAt, readyAt time.Time
}

func (l *crashLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// settle sends r until its answer is definitive or the retry bound passes.
func (l *crashLoad) settle(r *crashRequest) bool {
	for {
		a := l.e.do("POST", r.Path, l.e.channelKey, r.Key, r.Body)
		r.Tries = append(r.Tries, a)
		if a.definitive() {
			return true
		}
		if time.Since(l.start) > crashRetryFor || l.aborted.Load() {
			return false
		}
		time.Sleep(crashRetryPause)
	}
}

// worker buys for shoppers 2w and 2w+1 until sold out or a bound: even
// workers through the two-step checkout, odd ones in one call.
func (l *crashLoad) worker(w int) {
	for n := 0; n < crashWorkerBuysMax && time.Since(l.start) < crashBuyFor && !l.aborted.Load(); n++ {
		p := &crashPurchase{Shopper: l.e.shoppers[2*w+n%2]}
		l.mu.Lock()
		l.purchases = append(l.purchases, p)
		l.mu.Unlock()
		if w%2 == 1 {
			// Odd workers buy in one call, with no checkout.
			p.Confirm = &crashRequest{
				Key:  fmt.Sprintf("w%02d-n%02d-buy", w, n),
				Path: "/v1/channel/purchases",
				Body: mustJSON(map[string]any{"shopper_id": p.Shopper, "item_id": l.e.itemID, "quantity": 1}),
			}
			if !l.settle(p.Confirm) {
				return
			}
			if a := p.Confirm.outcome(); a.Status == http.StatusConflict && a.code() == "sold_out" {
				l.soldOut.Add(1)
				return
			}
			if !l.paidReceipt(p, "") {
				return
			}
			continue
		}
		p.Create = &crashRequest{
			Key:  fmt.Sprintf("w%02d-n%02d-create", w, n),
			Path: "/v1/channel/checkouts",
			Body: mustJSON(map[string]any{"shopper_id": p.Shopper, "lines": []map[string]any{{"item_id": l.e.itemID, "quantity": 1}}}),
		}
		if !l.settle(p.Create) {
			return
		}
		a := p.Create.outcome()
		if a.Status == http.StatusConflict && a.code() == "sold_out" {
			l.soldOut.Add(1)
			return
		}
		var co struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if a.Status != http.StatusCreated || json.Unmarshal(a.Body, &co) != nil || co.ID == "" || co.Status != "open" {
			l.problem("checkout %s answered %s", p.Create.Key, a)
			return
		}
		p.CheckoutID = co.ID
		p.Confirm = &crashRequest{Key: fmt.Sprintf("w%02d-n%02d-confirm", w, n), Path: "/v1/channel/checkouts/" + co.ID + "/confirm"}
		if !l.settle(p.Confirm) {
			return
		}
		if !l.paidReceipt(p, co.ID) {
			return
		}
	}
}

// paidReceipt checks that p's paying request (a confirmation of checkoutID,
// or a one-call purchase when checkoutID is "") answered a receipt of its
// own purchase, and counts it paid.
func (l *crashLoad) paidReceipt(p *crashPurchase, checkoutID string) bool {
	a := p.Confirm.outcome()
	var receipt struct {
		Order struct {
			ID         string  `json:"id"`
			CheckoutID *string `json:"checkout_id"`
			ShopperID  string  `json:"shopper_id"`
			Status     string  `json:"status"`
		} `json:"order"`
		Coupons []json.RawMessage `json:"coupons"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &receipt) != nil || receipt.Order.ID == "" {
		l.problem("%s answered %s", p.Confirm.Key, a)
		return false
	}
	gotCheckout := ""
	if receipt.Order.CheckoutID != nil {
		gotCheckout = *receipt.Order.CheckoutID
	}
	if gotCheckout != checkoutID || receipt.Order.ShopperID != p.Shopper || receipt.Order.Status != "paid" || len(receipt.Coupons) != 1 {
		l.problem("%s answered a receipt for another purchase: %s", p.Confirm.Key, a.Body)
		return false
	}
	p.OrderID = receipt.Order.ID
	if l.paid.Add(1) == l.target {
		l.once.Do(func() { close(l.reached) })
	}
	return true
}

// runCrashLoad runs the sale; crash is called once, on the test's
// goroutine, as soon as target purchases are paid, while the workers keep
// buying and retrying.
func runCrashLoad(e *crashEnv, crash func(l *crashLoad)) *crashLoad {
	l := &crashLoad{e: e, reached: make(chan struct{}),
		target: int64(crashAfterPaidMin + rand.IntN(crashAfterPaidMax-crashAfterPaidMin+1))}
	l.start = time.Now()
	var workers sync.WaitGroup
	for w := range crashWorkers {
		workers.Go(func() { l.worker(w) })
	}
	allDone := make(chan struct{})
	go func() { workers.Wait(); close(allDone) }()
	// A failed test must not leave clients running into the next test;
	// this runs before the servers and the cluster are stopped, and before
	// the journal of what the clients saw is kept.
	e.t.Cleanup(l.saveJournal)
	e.t.Cleanup(func() {
		l.aborted.Store(true)
		<-allDone
	})
	select {
	case <-l.reached:
		crash(l)
	case <-allDone:
		e.t.Fatalf("the load ended with %d paid purchases, before the crash at %d", l.paid.Load(), l.target)
	}
	<-allDone
	e.t.Logf("load: %d purchases paid in %s, crash after %d, %d of %d clients ended on sold_out",
		l.paid.Load(), time.Since(l.start).Round(time.Millisecond), l.target, l.soldOut.Load(), crashWorkers)
	return l
}

// checkOutcomes asserts what clients, the database, the API and the audit
// must agree on after the crash and every retry.
func (l *crashLoad) checkOutcomes() {
	e, t := l.e, l.e.t
	t.Helper()
	for _, p := range l.problems {
		t.Error(p)
	}

	// Every request has an outcome; the unknown ones are summarised for the report.
	var clientPaid int
	paidBy := map[string]int{}
	clientCheckouts := map[string]*crashPurchase{}
	var unknown, resolvedByReplay, resolvedFresh int
	retried := map[string]int{} // why an attempt was not an answer
	for _, p := range l.purchases {
		for _, r := range []*crashRequest{p.Create, p.Confirm} {
			if r == nil {
				continue
			}
			for _, a := range r.Tries {
				switch {
				case a.Err != "":
					retried["transport error"]++
				case !a.definitive():
					retried[fmt.Sprintf("%d %s", a.Status, a.code())]++
				}
			}
			if r.outcome() == nil {
				t.Errorf("%s never got a definitive answer in %d tries; last: %s", r.Key, len(r.Tries), r.Tries[len(r.Tries)-1])
				continue
			}
			if len(r.Tries) > 1 {
				unknown++
				if r.outcome().Replayed {
					resolvedByReplay++
				} else {
					resolvedFresh++
				}
			}
		}
		if p.CheckoutID != "" {
			clientCheckouts[p.CheckoutID] = p
		}
		if p.OrderID != "" {
			clientPaid++
			paidBy[p.Shopper]++
		}
	}
	t.Logf("requests whose outcome was unknown at first: %d (%d had committed and were replayed, %d ran on the retry); attempts retried: %v",
		unknown, resolvedByReplay, resolvedFresh, retried)

	db := e.openDB()
	defer db.Close()

	// The database has exactly the checkouts clients were given, and an
	// order exactly for those a confirmation answered paid, with its id.
	var checkouts []struct {
		ID      string  `db:"id"`
		Status  string  `db:"status"`
		OrderID *string `db:"order_id"`
	}
	if err := db.Select(&checkouts, `SELECT id, status, order_id FROM checkouts WHERE merchant_id = $1`, e.merchantID); err != nil {
		t.Fatal(err)
	}
	for _, co := range checkouts {
		p := clientCheckouts[co.ID]
		switch {
		case p == nil:
			t.Errorf("checkout %s (%s) is in the database, but no client was given it", co.ID, co.Status)
		case p.OrderID != "" && (co.Status != "paid" || co.OrderID == nil || *co.OrderID != p.OrderID):
			t.Errorf("checkout %s was answered paid with order %s, but is %s with order %v", co.ID, p.OrderID, co.Status, co.OrderID)
		case p.OrderID == "" && co.Status == "paid":
			said := "no confirmation was sent"
			if p.Confirm != nil {
				said = "the confirmation answered " + p.Confirm.Tries[len(p.Confirm.Tries)-1].String()
			}
			t.Errorf("checkout %s is paid (order %s), but %s", co.ID, *co.OrderID, said)
		}
		delete(clientCheckouts, co.ID)
	}
	for id := range clientCheckouts {
		t.Errorf("checkout %s was created for a client (201) but is not in the database", id)
	}
	var orders []struct {
		ID         string `db:"id"`
		CheckoutID string `db:"checkout_id"`
		ShopperID  string `db:"shopper_id"`
		Status     string `db:"status"`
		TotalMinor int64  `db:"total_minor"`
	}
	if err := db.Select(&orders, `SELECT id, COALESCE(checkout_id, '') AS checkout_id, shopper_id, status, total_minor FROM orders WHERE merchant_id = $1`, e.merchantID); err != nil {
		t.Fatal(err)
	}
	perCheckout := map[string]int{}
	oneCallOrders := map[string]bool{}
	for _, o := range orders {
		if o.CheckoutID == "" {
			oneCallOrders[o.ID] = true
		} else {
			perCheckout[o.CheckoutID]++
		}
		if o.Status != "paid" || o.TotalMinor != crashPriceMinor {
			t.Errorf("order %s is %s for %d minor units; want paid for %d", o.ID, o.Status, o.TotalMinor, crashPriceMinor)
		}
	}
	for _, p := range l.purchases {
		switch {
		case p.OrderID == "":
		case p.CheckoutID == "" && !oneCallOrders[p.OrderID]:
			t.Errorf("one-call purchase %s was answered paid with order %s, which is not in the database", p.Confirm.Key, p.OrderID)
		case p.CheckoutID != "" && perCheckout[p.CheckoutID] != 1:
			t.Errorf("checkout %s was answered paid; it has %d orders", p.CheckoutID, perCheckout[p.CheckoutID])
		}
	}
	if len(orders) != clientPaid {
		t.Errorf("%d orders in the database, %d purchases answered paid", len(orders), clientPaid)
	}
	var coupons int
	if err := db.Get(&coupons, `SELECT count(*) FROM coupons WHERE merchant_id = $1`, e.merchantID); err != nil {
		t.Fatal(err)
	}
	if coupons != clientPaid {
		t.Errorf("%d coupons issued for %d paid cards", coupons, clientPaid)
	}

	// Stock is conserved: sold + on the shelf + held by open checkouts.
	var stock struct {
		Sold     int64 `db:"sold"`
		Left     int64 `db:"left"`
		Lowest   int64 `db:"lowest"`
		Reserved int64 `db:"reserved"`
	}
	err := db.Get(&stock, `SELECT
		(SELECT COALESCE(sum(quantity), 0) FROM order_lines WHERE item_id = $1) AS sold,
		(SELECT COALESCE(sum(quantity), 0) FROM item_stock WHERE item_id = $1) AS left,
		(SELECT COALESCE(min(quantity), 0) FROM item_stock WHERE item_id = $1) AS lowest,
		(SELECT COALESCE(sum(l.quantity), 0) FROM checkout_lines l JOIN checkouts c ON c.id = l.checkout_id
			WHERE l.item_id = $1 AND c.status = 'open' AND c.reserved) AS reserved`, e.itemID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stock: %d sold, %d left, %d held by open checkouts", stock.Sold, stock.Left, stock.Reserved)
	if stock.Sold+stock.Left+stock.Reserved != crashStock || stock.Lowest < 0 {
		t.Errorf("stock not conserved: %d sold + %d left + %d reserved != %d (lowest bucket %d)",
			stock.Sold, stock.Left, stock.Reserved, crashStock, stock.Lowest)
	}
	if stock.Sold != int64(clientPaid) || stock.Reserved != 0 {
		t.Errorf("%d cards sold and %d still reserved; clients were told of %d paid and every checkout was confirmed",
			stock.Sold, stock.Reserved, clientPaid)
	}
	// Nothing fails after the crash is over, so no reservation can come
	// back to the shelf once a shopper has been told sold out.
	if l.soldOut.Load() > 0 && stock.Left != 0 {
		t.Errorf("%d shoppers were told sold out, yet %d cards are left", l.soldOut.Load(), stock.Left)
	}

	// Each wallet paid 3.00 per card its shopper was told was paid, and
	// nothing for anything else.
	for _, sh := range e.shoppers {
		a := e.do("GET", "/v1/channel/shoppers/"+sh+"/wallet?currency=CNY", e.channelKey, "", nil)
		var w struct {
			Balance struct {
				Amount string `json:"amount"`
			} `json:"balance"`
		}
		want := crashFundMinor - crashPriceMinor*int64(paidBy[sh])
		if a.Status != http.StatusOK || json.Unmarshal(a.Body, &w) != nil || w.Balance.Amount != fmt.Sprintf("%d.%02d", want/100, want%100) {
			t.Errorf("wallet of %s after %d paid cards: want %d.%02d CNY, got %s", sh, paidBy[sh], want/100, want%100, a)
		}
	}
}

// checkReplays sends every settled request again with its key and body and
// wants the stored answer byte for byte, however many crashes it outlived.
func (l *crashLoad) checkReplays() {
	e, t := l.e, l.e.t
	t.Helper()
	var all []*crashRequest
	for _, p := range l.purchases {
		for _, r := range []*crashRequest{p.Create, p.Confirm} {
			if r != nil && r.outcome() != nil {
				all = append(all, r)
			}
		}
	}
	var beforeCrash, confirmsBeforeCrash atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(all) {
					return
				}
				r := all[i]
				first := r.outcome()
				again := e.do("POST", r.Path, e.channelKey, r.Key, r.Body)
				if again.Status != first.Status || !bytes.Equal(again.Body, first.Body) || !again.Replayed {
					t.Errorf("%s replayed after the crash as %s (replayed header %v); first answer: %s", r.Key, again, again.Replayed, first)
				}
				if first.Got.Before(l.crashAt) {
					beforeCrash.Add(1)
					if strings.HasSuffix(r.Path, "/confirm") || r.Path == "/v1/channel/purchases" {
						confirmsBeforeCrash.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	t.Logf("replayed %d keys byte for byte, %d answered before the crash (%d confirmations or one-call purchases)",
		len(all), beforeCrash.Load(), confirmsBeforeCrash.Load())
	if beforeCrash.Load() < 20 || confirmsBeforeCrash.Load() < 10 {
		t.Errorf("only %d keys (%d confirmations) were answered before the crash; the replay check needs at least 20 (10)",
			beforeCrash.Load(), confirmsBeforeCrash.Load())
	}
}

// fivexx lists 5xx answers to attempts sent at or after since.
func (l *crashLoad) fivexx(since time.Time) []string {
	var out []string
	for _, p := range l.purchases {
		for _, r := range []*crashRequest{p.Create, p.Confirm} {
			if r == nil {
				continue
			}
			for _, a := range r.Tries {
				if a.Err == "" && a.Status >= 500 && !a.Sent.Before(since) {
					out = append(out, fmt.Sprintf("%s at +%s: %s", r.Key, a.Sent.Sub(l.start).Round(time.Millisecond), a))
				}
			}
		}
	}
	return out
}

// checkAcknowledged asserts that every purchase answered paid before the
// crash is a paid order now: what a shopper was shown survived recovery.
func (l *crashLoad) checkAcknowledged() {
	t := l.e.t
	t.Helper()
	var ids []string
	for _, p := range l.purchases {
		if p.OrderID != "" && p.Confirm.outcome().Got.Before(l.crashAt) {
			ids = append(ids, p.OrderID)
		}
	}
	db := l.e.openDB()
	defer db.Close()
	var found int
	if err := db.Get(&found, `SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'paid'`, pq.Array(ids)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d purchases were answered paid before the crash; %d of their orders are paid in the database", len(ids), found)
	if found != len(ids) || len(ids) < crashAfterPaidMin {
		t.Errorf("%d of %d purchases acknowledged before the crash survived it", found, len(ids))
	}
}

// assertServeLogsClean fails on a panic in any server's output: the
// recover middleware would have turned it into a 500 that a retry hides.
func (e *crashEnv) assertServeLogsClean() {
	e.t.Helper()
	for i, p := range e.serves {
		out := p.out.String()
		for _, mark := range []string{"PANIC RECOVER", "panic:"} {
			if at := strings.Index(out, mark); at >= 0 {
				e.t.Errorf("serve #%d (pid %d) panicked:\n%s", i+1, p.cmd.Process.Pid, out[at:min(len(out), at+4000)])
				break
			}
		}
	}
}

// saveJournal keeps, when the test failed, every request with all its
// attempts and every server's log under t.ArtifactDir (go test -artifacts).
func (l *crashLoad) saveJournal() {
	t := l.e.t
	if !t.Failed() {
		return
	}
	dir := t.ArtifactDir()
	var journal bytes.Buffer
	enc := json.NewEncoder(&journal)
	for _, p := range l.purchases {
		_ = enc.Encode(p)
	}
	files := map[string][]byte{"journal.jsonl": journal.Bytes()}
	for i, p := range l.e.serves {
		files[fmt.Sprintf("serve-%d.log", i+1)] = []byte(p.out.String())
	}
	if l.e.cluster != nil {
		if log, err := os.ReadFile(filepath.Join(l.e.cluster.Dir(), "postgres.log")); err == nil {
			files["postgres.log"] = log
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Log(err)
		}
	}
	t.Logf("requests, server and PostgreSQL logs are in %s (kept with go test -artifacts)", dir)
}

// assertVerifyExitsZero runs `chatpay verify` as the binary.
func (e *crashEnv) assertVerifyExitsZero() {
	e.t.Helper()
	cmd, out := startBinary(e.t, nil, "verify", "--database-url", e.dsn)
	if code, _ := waitExit(e.t, cmd, time.Minute); code != 0 || !strings.Contains(out.String(), "all checks passed") {
		e.t.Errorf("chatpay verify exited %d:\n%s", code, out)
	}
}

// A flash sale in which the API server is killed with SIGKILL mid-load and
// a new one started on the same database: no acknowledged answer changes,
// no unknown answer turns into two purchases or none, stock and wallets add up.
func TestServerCrashDuringFlashSale(t *testing.T) {
	began := time.Now()
	e := startCrashEnv(t)
	t.Logf("cluster, serve and seeding took %s", time.Since(began).Round(time.Millisecond))

	l := runCrashLoad(e, func(l *crashLoad) {
		pid := e.serve.cmd.Process.Pid
		l.crashAt = time.Now()
		e.serve.kill(t)
		t.Logf("SIGKILLed serve (pid %d) at +%s with %d purchases paid", pid, l.crashAt.Sub(l.start).Round(time.Millisecond), l.paid.Load())
		e.serve = e.startServe()
		l.readyAt = time.Now()
		t.Logf("a new serve (pid %d) was ready %s after the kill", e.serve.cmd.Process.Pid, l.readyAt.Sub(l.crashAt).Round(time.Millisecond))
	})

	// SIGKILL cannot make a server answer 5xx, and the new server must
	// not either: anything else means a request failed for a reason a
	// retry would not cure by itself.
	if bad := l.fivexx(l.start); len(bad) > 0 {
		t.Errorf("%d answers were 5xx:\n%s", len(bad), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
	l.checkOutcomes()
	l.checkReplays()
	e.assertServeLogsClean()
	e.assertVerifyExitsZero()
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
}

// A flash sale in which PostgreSQL stops at once (SIGQUIT: no checkpoint,
// so the next start replays the WAL) while serve keeps running: serve must
// come back by itself once the database does, and every purchase it
// acknowledged must have survived the crash.
func TestDatabaseCrashKeepsAcknowledgedPurchases(t *testing.T) {
	began := time.Now()
	e := startCrashEnv(t)
	t.Logf("cluster, serve and seeding took %s", time.Since(began).Round(time.Millisecond))
	serve := e.serve

	l := runCrashLoad(e, func(l *crashLoad) {
		pid := e.cluster.PID()
		l.crashAt = time.Now()
		if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
			t.Errorf("SIGQUIT postmaster %d: %v", pid, err)
			return
		}
		for deadline := time.Now().Add(20 * time.Second); processAlive(pid); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("postmaster %d still running 20 s after SIGQUIT", pid)
				return
			}
		}
		t.Logf("postmaster (pid %d) stopped immediately at +%s with %d purchases paid", pid, l.crashAt.Sub(l.start).Round(time.Millisecond), l.paid.Load())
		// Clients must meet the outage, not just a blip: serve has noticed.
		if !waitFor(func() bool { return httpStatus(e.base+"/readyz") == http.StatusServiceUnavailable }, 10*time.Second) {
			t.Errorf("/readyz did not turn 503 while the database was down")
		}
		if err := restartCluster(e.cluster); err != nil {
			t.Errorf("restart PostgreSQL: %v", err)
			return
		}
		restarted := time.Now()
		if !waitFor(func() bool { return httpStatus(e.base+"/readyz") == http.StatusOK }, crashReadyIn) {
			t.Errorf("serve did not become ready within %s of the database's return:\n%s", crashReadyIn, serve.out)
			return
		}
		l.readyAt = time.Now()
		t.Logf("database back after %s; serve ready %s later", restarted.Sub(l.crashAt).Round(time.Millisecond), l.readyAt.Sub(restarted).Round(time.Millisecond))
	})
	select {
	case <-serve.done:
		t.Fatalf("serve exited during the database crash:\n%s", serve.out)
	default:
	}
	if l.readyAt.IsZero() {
		t.FailNow() // the crash callback said why
	}
	log, err := os.ReadFile(filepath.Join(e.cluster.Dir(), "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "automatic recovery in progress") {
		t.Errorf("the restart did not run crash recovery; postgres.log:\n%s", log)
	}
	// Once serve says it is ready again, its pool must have let go of the
	// connections the crash broke, not fail purchases on them.
	if bad := l.fivexx(l.readyAt); len(bad) > 0 {
		t.Errorf("%d answers were 5xx after /readyz was 200 again:\n%s", len(bad), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
	t.Logf("5xx answers while the database was down or recovering: %d", len(l.fivexx(l.crashAt))-len(l.fivexx(l.readyAt)))
	// An outage is told apart from a bug: 503 database_unavailable with
	// Retry-After, never 500 internal_error.
	for _, a := range l.fivexx(l.start) {
		if !strings.Contains(a, "503") || !strings.Contains(a, "database_unavailable") {
			t.Errorf("an answer during the outage is not 503 database_unavailable: %s", a)
		}
	}

	l.checkAcknowledged()
	l.checkOutcomes()
	l.checkReplays()
	e.assertServeLogsClean()
	e.assertVerifyExitsZero()
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(cond func() bool, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// restartCluster starts the cluster again once pgcluster has seen its
// postmaster exit (it reaps the process just before it records the exit).
func restartCluster(c *pgcluster.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := c.Restart(ctx)
		if err == nil || !strings.Contains(err.Error(), "still running") || time.Now().After(deadline) {
			return err
		}
	}
}
