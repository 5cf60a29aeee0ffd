package ledger

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// The model-based test drives the real ledger and a deliberately simple
// in-memory model with the same random operations and demands that every
// outcome (result or error code) and every balance agree exactly.

const (
	modelOpsTotal    = 100_000
	modelWorkers     = 4 // each owns its accounts, so the models stay independent
	modelOpsPerBatch = 25
	modelWalletCount = 12
	modelTimeMax     = 10 * time.Minute // a bound, not a target: a loaded CI machine is slow
)

// modelSeed reproduces a failing run: LEDGER_MODEL_SEED=<n> go test -run Model.
func modelSeed(t *testing.T) uint64 {
	if s := os.Getenv("LEDGER_MODEL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 20260501
}

type accountKey struct{ code, currency string }

type modelAccount struct {
	ref      AccountRef
	currency money.Currency
	id       int64
}

func (a modelAccount) key() accountKey {
	return accountKey{code: a.ref.Code(), currency: a.currency.Code()}
}

type modelTxn struct {
	id         int64
	tr         Transaction
	reversesID int64
	reversedBy int64 // 0 while not reversed
}

type model struct {
	t        *testing.T
	rng      *rand.Rand
	prefix   string
	accounts []modelAccount // per currency group below
	byKey    map[accountKey]*modelAccount
	balances map[accountKey]int64
	txns     map[int64]*modelTxn
	keys     map[string]int64 // key → transaction id, only for committed posts
	txnIDs   []int64
	keyCount int
	counts   map[string]int
}

func newModel(t *testing.T, seed uint64, worker int) *model {
	return &model{
		t:        t,
		rng:      rand.New(rand.NewPCG(seed, uint64(worker))),
		prefix:   fmt.Sprintf("w%d", worker),
		byKey:    map[accountKey]*modelAccount{},
		balances: map[accountKey]int64{},
		txns:     map[int64]*modelTxn{},
		keys:     map[string]int64{},
		counts:   map[string]int{},
	}
}

// setup creates the worker's accounts so that the model knows their ids
// (insufficient_funds names the first overdrawn wallet in id order).
func (m *model) setup(ctx context.Context, l *Ledger, db *sqlx.DB) {
	var refs []AccountRef
	for i := range modelWalletCount {
		refs = append(refs, ShopperWallet(fmt.Sprintf("%s-s%d", m.prefix, i)))
	}
	for i := range 3 {
		refs = append(refs, MerchantDeferred(fmt.Sprintf("%s-m%d", m.prefix, i)),
			MerchantAvailable(fmt.Sprintf("%s-m%d", m.prefix, i)))
	}
	refs = append(refs, ProviderClearing(m.prefix+"-bank"))
	for _, c := range []money.Currency{cny, jpy} {
		for _, ref := range refs {
			a, err := l.EnsureAccount(ctx, db, ref, c)
			if err != nil {
				m.t.Fatal(err)
			}
			m.accounts = append(m.accounts, modelAccount{ref: ref, currency: c, id: a.ID})
		}
	}
	for i := range m.accounts {
		m.byKey[m.accounts[i].key()] = &m.accounts[i]
	}
}

func (m *model) pick(c money.Currency, wallet bool) modelAccount {
	for range 1000 {
		a := m.accounts[m.rng.IntN(len(m.accounts))]
		if a.currency == c && a.ref.NoNegative() == wallet {
			return a
		}
	}
	panic("no account")
}

func (m *model) newKey() string {
	m.keyCount++
	return fmt.Sprintf("%s-k%d", m.prefix, m.keyCount)
}

// randomTransaction moves money between 2 to 4 accounts of one currency
// (sometimes a second currency too), favouring wallets so that overdrafts happen.
func (m *model) randomTransaction() Transaction {
	tr := Transaction{Key: m.newKey(), Description: "model " + strconv.Itoa(m.rng.IntN(3))}
	groups := 1 + m.rng.IntN(8)/7 // one currency mostly, two sometimes
	for g := range groups {
		c := []money.Currency{cny, jpy}[(g+m.rng.IntN(2))%2]
		amount := 1 + m.rng.Int64N(500)
		from := m.pick(c, m.rng.IntN(2) == 0)
		if m.rng.IntN(10) == 0 {
			from = m.pick(c, false)
			amount += 1000 // top-ups bring money in from outside
		}
		tr.Postings = append(tr.Postings, Debit(from.ref, c, amount))
		if m.rng.IntN(3) == 0 {
			split := 1 + m.rng.Int64N(amount)
			if split < amount {
				tr.Postings = append(tr.Postings, Credit(m.pick(c, m.rng.IntN(2) == 0).ref, c, split))
				amount -= split
			}
		}
		tr.Postings = append(tr.Postings, Credit(m.pick(c, m.rng.IntN(2) == 0).ref, c, amount))
	}
	return tr
}

// expect computes what the ledger must answer for posting tr: "" for
// success or the error code, plus the wallet named by insufficient_funds.
func (m *model) expect(tr Transaction) (code string, account string) {
	type delta struct {
		a *modelAccount
		d int64
	}
	deltas := map[accountKey]*delta{}
	for _, p := range tr.Postings {
		k := accountKey{code: p.Account.Code(), currency: p.Currency.Code()}
		if deltas[k] == nil {
			deltas[k] = &delta{a: m.byKey[k]}
		}
		deltas[k].d += p.Amount
	}
	list := make([]*delta, 0, len(deltas))
	for _, d := range deltas {
		list = append(list, d)
	}
	slices.SortFunc(list, func(a, b *delta) int { return cmp.Compare(a.a.id, b.a.id) })
	for _, d := range list {
		if d.a.ref.NoNegative() && m.balances[d.a.key()]+d.d < 0 {
			return CodeInsufficientFunds, d.a.ref.Code()
		}
	}
	return "", ""
}

func (m *model) apply(tr Transaction) {
	for _, p := range tr.Postings {
		m.balances[accountKey{code: p.Account.Code(), currency: p.Currency.Code()}] += p.Amount
	}
}

func errCode(err error) string {
	if err == nil {
		return ""
	}
	if p, ok := problem.As(err); ok {
		return p.Code
	}
	return "unexpected: " + err.Error()
}

// step runs one random operation against l inside tx and the model.
func (m *model) step(ctx context.Context, l *Ledger, tx *sqlx.Tx, op int) {
	t := m.t
	t.Helper()
	roll := m.rng.IntN(100)
	switch {
	case roll < 12 && len(m.txnIDs) > 0: // replay a committed post, postings shuffled
		orig := m.txns[m.txnIDs[m.rng.IntN(len(m.txnIDs))]]
		if orig.reversesID != 0 {
			m.counts["replay-reversal"]++
			got, err := l.Reverse(ctx, tx, orig.reversesID, orig.tr.Key)
			if err != nil || !got.Replayed || got.ID != orig.id {
				t.Fatalf("op %d: reversal replay of %d = %+v, %v", op, orig.id, got, err)
			}
			return
		}
		m.counts["replay"]++
		tr := orig.tr
		tr.Postings = slices.Clone(tr.Postings)
		m.rng.Shuffle(len(tr.Postings), func(i, j int) { tr.Postings[i], tr.Postings[j] = tr.Postings[j], tr.Postings[i] })
		got, err := l.Post(ctx, tx, tr)
		if err != nil || !got.Replayed || got.ID != orig.id || !slices.Equal(got.Postings, orig.tr.Postings) {
			t.Fatalf("op %d: replay of %d = %+v, %v", op, orig.id, got, err)
		}
	case roll < 20 && len(m.txnIDs) > 0: // the same key with other content
		m.counts["conflict"]++
		orig := m.txns[m.txnIDs[m.rng.IntN(len(m.txnIDs))]]
		tr := m.randomTransaction()
		tr.Key = orig.tr.Key
		if _, err := l.Post(ctx, tx, tr); errCode(err) != CodeIdempotencyConflict {
			t.Fatalf("op %d: conflicting key %s: %v", op, tr.Key, err)
		}
	case roll < 32 && len(m.txnIDs) > 0: // reverse (maybe again, maybe a reversal)
		orig := m.txns[m.txnIDs[m.rng.IntN(len(m.txnIDs))]]
		key := m.newKey()
		if m.rng.IntN(20) == 0 {
			key = orig.tr.Key // a key already used for something else
		}
		undo := Transaction{Key: key, Description: reversalDescription(orig.id)}
		for _, p := range orig.tr.Postings {
			undo.Postings = append(undo.Postings, Posting{Account: p.Account, Currency: p.Currency, Amount: -p.Amount})
		}
		wantCode, wantAccount := m.expect(undo)
		switch {
		case orig.reversedBy != 0:
			wantCode = CodeAlreadyReversed
		case m.keys[key] != 0:
			wantCode = CodeIdempotencyConflict
		}
		m.counts["reverse "+wantCode]++
		got, err := l.Reverse(ctx, tx, orig.id, key)
		if errCode(err) != wantCode {
			t.Fatalf("op %d: reverse %d: error %v, want %q", op, orig.id, err, wantCode)
		}
		if wantCode == CodeInsufficientFunds {
			if p, _ := problem.As(err); p.Extensions["account"] != wantAccount {
				t.Fatalf("op %d: insufficient funds names %v, want %s", op, p.Extensions["account"], wantAccount)
			}
		}
		if wantCode != "" {
			return
		}
		if got.Replayed || got.ReversesID != orig.id || !slices.Equal(got.Postings, undo.Postings) {
			t.Fatalf("op %d: reversal = %+v", op, got)
		}
		m.apply(undo)
		orig.reversedBy = got.ID
		m.record(&modelTxn{id: got.ID, tr: undo, reversesID: orig.id})
	case roll < 40: // an overdraft attempt: more than a wallet holds
		w := m.pick(cny, true)
		amount := m.balances[w.key()] + 1 + m.rng.Int64N(100)
		tr := Transaction{Key: m.newKey(), Postings: []Posting{
			Debit(w.ref, cny, amount), Credit(m.pick(cny, false).ref, cny, amount)}}
		m.counts["overdraft"]++
		_, err := l.Post(ctx, tx, tr)
		if p, ok := problem.As(err); !ok || p.Code != CodeInsufficientFunds || p.Extensions["account"] != w.ref.Code() {
			t.Fatalf("op %d: overdraft of %s by %d: %v", op, w.ref.Code(), amount, err)
		}
	case roll < 42: // a malformed transaction
		tr := m.randomTransaction()
		tr.Postings[0].Amount--
		if tr.Postings[0].Amount == 0 {
			tr.Postings[0].Amount = -1
			tr.Postings = append(tr.Postings, Credit(PlatformFees(), jpy, 1))
		}
		m.counts["unbalanced"]++
		if _, err := l.Post(ctx, tx, tr); errCode(err) != CodeUnbalanced {
			t.Fatalf("op %d: unbalanced: %v", op, err)
		}
	default: // a fresh post
		tr := m.randomTransaction()
		wantCode, wantAccount := m.expect(tr)
		m.counts["post "+wantCode]++
		got, err := l.Post(ctx, tx, tr)
		if errCode(err) != wantCode {
			t.Fatalf("op %d: post %+v: error %v, want %q", op, tr, err, wantCode)
		}
		if wantCode != "" {
			if p, _ := problem.As(err); p.Extensions["account"] != wantAccount {
				t.Fatalf("op %d: insufficient funds names %v, want %s", op, p.Extensions["account"], wantAccount)
			}
			return
		}
		if got.Replayed || got.ID == 0 || !slices.Equal(got.Postings, tr.Postings) {
			t.Fatalf("op %d: posted = %+v", op, got)
		}
		m.apply(tr)
		m.record(&modelTxn{id: got.ID, tr: tr})
	}
}

func (m *model) record(txn *modelTxn) {
	m.txns[txn.id] = txn
	m.keys[txn.tr.Key] = txn.id
	m.txnIDs = append(m.txnIDs, txn.id)
}

// checkBalances compares every account of the worker with the model.
func (m *model) checkBalances(ctx context.Context, l *Ledger, q sqlx.QueryerContext, when string) {
	for _, a := range m.accounts {
		got, err := l.Balance(ctx, q, a.ref, a.currency)
		if err != nil {
			m.t.Fatal(err)
		}
		if want := m.balances[a.key()]; got != want {
			m.t.Fatalf("%s: balance of %s %s = %d, model says %d", when, a.ref.Code(), a.currency, got, want)
		}
	}
}

func TestModel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), modelTimeMax)
	defer cancel()
	l, db := newLedger(t)
	seed := modelSeed(t)
	t.Logf("seed %d (set LEDGER_MODEL_SEED to reproduce)", seed)
	started := time.Now()
	models := make([]*model, modelWorkers)
	var wg sync.WaitGroup
	for w := range modelWorkers {
		models[w] = newModel(t, seed, w)
		wg.Go(func() {
			m := models[w]
			m.setup(ctx, l, db)
			ops := modelOpsTotal / modelWorkers
			for done, batch := 0, 0; done < ops; batch++ {
				// A batch shares one database transaction, as a payment
				// flow does; refusals must leave it usable.
				tx, err := db.BeginTxx(ctx, nil)
				if err != nil {
					t.Error(err)
					return
				}
				for i := 0; i < modelOpsPerBatch && done < ops; i++ {
					m.step(ctx, l, tx, done)
					done++
				}
				if batch%40 == 0 {
					m.checkBalances(ctx, l, tx, fmt.Sprintf("worker %d op %d", w, done))
				}
				if err := tx.Commit(); err != nil {
					t.Errorf("commit: %v", err)
					return
				}
			}
			m.checkBalances(ctx, l, db, fmt.Sprintf("worker %d end", w))
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := map[string]int{}
	for _, m := range models {
		for k, v := range m.counts {
			total[k] += v
		}
	}
	t.Logf("%d operations in %s: %v", modelOpsTotal, time.Since(started).Round(time.Millisecond), total)
	// Platform fees are shared by the workers: their sum must match.
	var fees int64
	for _, m := range models {
		fees += m.balances[accountKey{code: PlatformFees().Code(), currency: jpy.Code()}]
	}
	if got, err := l.Balance(ctx, db, PlatformFees(), jpy); err != nil || got != fees {
		t.Fatalf("platform fees = %d, %v; models say %d", got, err, fees)
	}
	auditClean(t, db)
}
