package idempotency

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

type fixture struct {
	db    *sqlx.DB
	store *Store
	calls atomic.Int64
	now   time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := testdb.New(t)
	if _, err := db.Exec(`CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	f.store = NewStore(db, func() time.Time { return f.now })
	return f
}

// createWidget is a change that writes a row and answers with it.
func (f *fixture) createWidget(name string, pause time.Duration) Change {
	return func(tx *sqlx.Tx) (int, any, error) {
		f.calls.Add(1)
		var id int
		if err := tx.Get(&id, `INSERT INTO widgets (name) VALUES ($1) RETURNING id`, name); err != nil {
			return 0, nil, err
		}
		time.Sleep(pause)
		return http.StatusCreated, map[string]any{"id": id, "name": name}, nil
	}
}

func (f *fixture) widgets(t *testing.T) int {
	var n int
	if err := f.db.Get(&n, `SELECT count(*) FROM widgets`); err != nil {
		t.Fatal(err)
	}
	return n
}

func req(key, body string) Request {
	return Request{Scope: "merchant:m1", Key: key, Method: "POST", Path: "/v1/widgets", Body: []byte(body)}
}

func code(err error) string {
	if p, ok := problem.As(err); ok {
		return p.Code
	}
	return ""
}

func TestReplayReturnsTheOriginalResponse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, err := f.store.Run(ctx, req("k1", `{"name":"a"}`), f.createWidget("a", 0))
	if err != nil || first.Status != 201 || first.Replayed {
		t.Fatalf("first: %+v %v", first, err)
	}
	again, err := f.store.Run(ctx, req("k1", `{"name":"a"}`), f.createWidget("a", 0))
	if err != nil || !again.Replayed || again.Status != 201 || string(again.Body) != string(first.Body) {
		t.Fatalf("replay: %+v %v", again, err)
	}
	if f.calls.Load() != 1 || f.widgets(t) != 1 {
		t.Fatalf("change ran %d times, %d widgets", f.calls.Load(), f.widgets(t))
	}

	t.Run("ErrReusedWithOtherBody", func(t *testing.T) {
		_, err := f.store.Run(ctx, req("k1", `{"name":"b"}`), f.createWidget("b", 0))
		if code(err) != "idempotency_key_reused" {
			t.Fatalf("err %v", err)
		}
		if p, _ := problem.As(err); p.Status() != 422 {
			t.Fatalf("status %d", p.Status())
		}
	})
	t.Run("OtherScopeIsIndependent", func(t *testing.T) {
		other := req("k1", `{"name":"a"}`)
		other.Scope = "merchant:m2"
		resp, err := f.store.Run(ctx, other, f.createWidget("a", 0))
		if err != nil || resp.Replayed {
			t.Fatalf("%+v %v", resp, err)
		}
	})
	t.Run("NoKeyRunsEveryTime", func(t *testing.T) {
		before := f.widgets(t)
		for range 2 {
			if _, err := f.store.Run(ctx, req("", `{}`), f.createWidget("x", 0)); err != nil {
				t.Fatal(err)
			}
		}
		if f.widgets(t) != before+2 {
			t.Fatal("keyless requests were not each executed")
		}
	})
	t.Run("ErrInvalidKey", func(t *testing.T) {
		for _, key := range []string{"has space", string(make([]byte, KeyLengthMax+1)), "ключ"} {
			if _, err := f.store.Run(ctx, req(key, `{}`), f.createWidget("x", 0)); code(err) != "idempotency_key_invalid" {
				t.Fatalf("key %q: %v", key, err)
			}
		}
	})
}

func TestBusinessRefusalIsStoredAndNothingWritten(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	refuse := func(tx *sqlx.Tx) (int, any, error) {
		f.calls.Add(1)
		if _, err := tx.Exec(`INSERT INTO widgets (name) VALUES ('half-written')`); err != nil {
			return 0, nil, err
		}
		return 0, nil, problem.New(problem.KindConflict, "sold_out", "the tea card is sold out")
	}
	first, err := f.store.Run(ctx, req("k", `{}`), refuse)
	if err != nil || first.Status != 409 || first.ContentType != problem.ContentType {
		t.Fatalf("%+v %v", first, err)
	}
	again, err := f.store.Run(ctx, req("k", `{}`), f.createWidget("now in stock", 0))
	if err != nil || !again.Replayed || string(again.Body) != string(first.Body) {
		t.Fatalf("refusal not replayed as it was: %+v %v", again, err)
	}
	if f.widgets(t) != 0 || f.calls.Load() != 1 {
		t.Fatalf("widgets %d calls %d", f.widgets(t), f.calls.Load())
	}
}

func TestFailureIsNotStored(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	fail := func(tx *sqlx.Tx) (int, any, error) {
		_, _ = tx.Exec(`INSERT INTO widgets (name) VALUES ('lost')`)
		return 0, nil, errors.New("provider timed out")
	}
	if _, err := f.store.Run(ctx, req("k", `{}`), fail); err == nil {
		t.Fatal("failure swallowed")
	}
	resp, err := f.store.Run(ctx, req("k", `{}`), f.createWidget("retried", 0))
	if err != nil || resp.Replayed || resp.Status != 201 || f.widgets(t) != 1 {
		t.Fatalf("retry after failure: %+v %v widgets=%d", resp, err, f.widgets(t))
	}
}

// A double tap: many concurrent requests with one key run the change once;
// each gets the success or 409 in-progress, and later retries the success.
func TestConcurrentRequestsWithOneKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const clients = 50
	var wg sync.WaitGroup
	results := make([]Response, clients)
	errs := make([]error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.store.Run(ctx, req("tap", `{"name":"tea"}`), f.createWidget("tea", 100*time.Millisecond))
		}()
	}
	wg.Wait()
	var body string
	inUse := 0
	for i := range clients {
		switch {
		case errs[i] == nil:
			if body == "" {
				body = string(results[i].Body)
			}
			if string(results[i].Body) != body {
				t.Fatalf("different bodies: %s vs %s", results[i].Body, body)
			}
		case code(errs[i]) == "idempotency_key_in_use":
			inUse++
			if p, _ := problem.As(errs[i]); p.Extensions["retry_after_seconds"] != retryAfterSeconds || p.Status() != 409 {
				t.Fatalf("in-use problem %+v", p)
			}
		default:
			t.Fatalf("unexpected error %v", errs[i])
		}
	}
	if f.widgets(t) != 1 || f.calls.Load() != 1 {
		t.Fatalf("widgets %d, change ran %d times", f.widgets(t), f.calls.Load())
	}
	resp, err := f.store.Run(ctx, req("tap", `{"name":"tea"}`), f.createWidget("tea", 0))
	if err != nil || string(resp.Body) != body || !resp.Replayed {
		t.Fatalf("retry after the race: %+v %v", resp, err)
	}
	t.Logf("%d of %d concurrent requests were told to retry (409)", inUse, clients)
}

func TestPurgeKeepsKeysForTheRetention(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.store.Run(ctx, req("old", `{}`), f.createWidget("a", 0)); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(RetentionMin - time.Minute)
	if n, err := f.store.Purge(ctx, time.Minute); err != nil || n != 0 {
		t.Fatalf("purged %d before the retention, %v", n, err)
	}
	f.now = f.now.Add(2 * time.Minute)
	if n, err := f.store.Purge(ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("purged %d after the retention, %v", n, err)
	}
}

// A refusal replayed to a caller that is not an HTTP handler (the shopper
// page, the bench) is the very error the change returned: kind, code,
// detail and extensions, with no guessing from the status (422 is both
// "invalid" and "refused").
func TestRefusalReplayIsTyped(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	refuse := func(tx *sqlx.Tx) (int, any, error) {
		return 0, nil, problem.New(problem.KindRefused, "insufficient_funds", "the wallet is short").With("order_id", "ord_1")
	}
	for _, name := range []string{"OKFresh", "OKReplayed"} {
		resp, err := f.store.Run(ctx, req("typed", `{}`), refuse)
		if err != nil || resp.Refusal == nil {
			t.Fatalf("%s: %+v %v", name, resp, err)
		}
		p := resp.Refusal
		if resp.Replayed != (name == "OKReplayed") || p.Kind != problem.KindRefused || p.Code != "insufficient_funds" ||
			p.Detail != "the wallet is short" || p.Extensions["order_id"] != "ord_1" {
			t.Fatalf("%s: refusal %+v replayed=%v", name, p, resp.Replayed)
		}
	}
	ok, err := f.store.Run(ctx, req("fine", `{}`), f.createWidget("fine", 0))
	if err != nil || ok.Refusal != nil {
		t.Fatalf("success carries a refusal: %+v %v", ok, err)
	}
	if f.calls.Load() != 1 {
		t.Fatalf("calls %d", f.calls.Load())
	}
}

func TestScopeConstructors(t *testing.T) {
	for scope, want := range map[Scope]string{
		MerchantScope("m1"): "merchant:m1", ChannelScope("c1"): "channel:c1", ShopperScope("s1"): "shopper:s1",
	} {
		if string(scope) != want {
			t.Fatalf("scope %q, want %q", scope, want)
		}
	}
}

// A refusal is stored after its transaction rolled back, without the key's
// lock; a request with the same key that stored a success in between keeps
// the key, and the refused request answers that success instead of its own
// refusal (one key, one answer).
func TestRefusalStoredAfterAnotherAnswerReplaysIt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	winner := NewStore(f.db, func() time.Time { return f.now })
	refuseWhileAnotherWins := func(tx *sqlx.Tx) (int, any, error) {
		// The other request runs on its own connection; it cannot take the
		// lock this transaction holds, so it stores its row directly, as it
		// would once this transaction had rolled back.
		r := req("k", `{}`)
		_, err := winner.insert(ctx, f.db, r, r.hash(), Response{Status: 201, ContentType: "application/json", Body: []byte(`{"id":7}`)})
		if err != nil {
			return 0, nil, err
		}
		return 0, nil, problem.New(problem.KindConflict, "sold_out", "the tea card is sold out")
	}
	won, err := f.store.Run(ctx, req("k", `{}`), refuseWhileAnotherWins)
	if err != nil || !won.Replayed || won.Status != 201 || string(won.Body) != `{"id":7}` || won.Refusal != nil {
		t.Fatalf("refused request did not answer the stored success: %+v %v", won, err)
	}
	if _, err := f.store.Run(ctx, req("k", `{"other":1}`), refuseWhileAnotherWins); code(err) != "idempotency_key_reused" {
		t.Fatalf("another body after the race: %v", err)
	}
}
