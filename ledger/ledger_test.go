package ledger

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

var cny = money.MustCurrency("CNY")
var jpy = money.MustCurrency("JPY")

// fixedClock returns a clock that advances one second per reading, so that
// postings have distinct, predictable times.
func fixedClock() func() time.Time {
	t := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func newLedger(t *testing.T) (*Ledger, *sqlx.DB) {
	t.Helper()
	return New(fixedClock()), testdb.New(t)
}

func topUp(key, shopper string, minor int64) Transaction {
	return Transaction{Key: key, Description: "top-up", Postings: []Posting{
		Debit(ProviderClearing("alipay"), cny, minor),
		Credit(ShopperWallet(shopper), cny, minor),
	}}
}

func sale(key, shopper, merchant string, minor int64) Transaction {
	return Transaction{Key: key, Description: "voucher sale", Postings: []Posting{
		Debit(ShopperWallet(shopper), cny, minor),
		Credit(MerchantDeferred(merchant), cny, minor),
	}}
}

func mustPost(t *testing.T, l *Ledger, q sqlx.ExtContext, tr Transaction) Posted {
	t.Helper()
	p, err := l.Post(context.Background(), q, tr)
	if err != nil {
		t.Fatalf("post %s: %v", tr.Key, err)
	}
	return p
}

func balance(t *testing.T, l *Ledger, q sqlx.QueryerContext, ref AccountRef) int64 {
	t.Helper()
	b, err := l.Balance(context.Background(), q, ref, cny)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantCode(t *testing.T, err error, code string) *problem.Error {
	t.Helper()
	p, ok := problem.As(err)
	if !ok || p.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	return p
}

func auditClean(t *testing.T, db *sqlx.DB) {
	t.Helper()
	report, err := Audit(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		var b strings.Builder
		_ = report.Write(&b)
		t.Fatalf("audit:\n%s", b.String())
	}
}

func TestPost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)

	t.Run("OK", func(t *testing.T) {
		p := mustPost(t, l, db, topUp("t1", "s1", 500))
		if p.ID == 0 || p.Replayed || len(p.Postings) != 2 {
			t.Fatalf("posted = %+v", p)
		}
		mustPost(t, l, db, sale("sale1", "s1", "m1", 300))
		if got := balance(t, l, db, ShopperWallet("s1")); got != 200 {
			t.Errorf("wallet = %d, want 200", got)
		}
		if got := balance(t, l, db, MerchantDeferred("m1")); got != 300 {
			t.Errorf("deferred = %d, want 300", got)
		}
		if got := balance(t, l, db, ProviderClearing("alipay")); got != -500 {
			t.Errorf("clearing = %d, want -500", got)
		}
	})
	t.Run("OKReplay", func(t *testing.T) {
		first := mustPost(t, l, db, topUp("t2", "s2", 100))
		tr := topUp("t2", "s2", 100)
		tr.Postings[0], tr.Postings[1] = tr.Postings[1], tr.Postings[0] // order does not matter
		again := mustPost(t, l, db, tr)
		if !again.Replayed || again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
			t.Fatalf("replay = %+v, first = %+v", again, first)
		}
		if got := balance(t, l, db, ShopperWallet("s2")); got != 100 {
			t.Errorf("wallet = %d, want 100 (posted once)", got)
		}
	})
	t.Run("ErrIdempotencyConflict", func(t *testing.T) {
		mustPost(t, l, db, topUp("t3", "s3", 100))
		_, err := l.Post(ctx, db, topUp("t3", "s3", 101))
		if p := wantCode(t, err, CodeIdempotencyConflict); p.Kind != problem.KindConflict {
			t.Errorf("kind = %v", p.Kind)
		}
	})
	t.Run("ErrInsufficientFunds", func(t *testing.T) {
		mustPost(t, l, db, topUp("t4", "s4", 100))
		_, err := l.Post(ctx, db, sale("sale4", "s4", "m1", 101))
		p := wantCode(t, err, CodeInsufficientFunds)
		if p.Kind != problem.KindRefused || p.Extensions["account"] != "shopper:s4:wallet" {
			t.Errorf("problem = %+v", p)
		}
		if got := balance(t, l, db, ShopperWallet("s4")); got != 100 {
			t.Errorf("wallet = %d, want 100", got)
		}
	})
	t.Run("ErrUnbalanced", func(t *testing.T) {
		tr := sale("u1", "s1", "m1", 1)
		tr.Postings[1].Amount = 2
		_, err := l.Post(ctx, db, tr)
		wantCode(t, err, CodeUnbalanced)
		// Balanced in total but not per currency.
		tr = Transaction{Key: "u2", Postings: []Posting{Debit(PlatformFees(), cny, 5), Credit(PlatformFees(), jpy, 5)}}
		_, err = l.Post(ctx, db, tr)
		wantCode(t, err, CodeUnbalanced)
	})
	t.Run("ErrInvalidTransaction", func(t *testing.T) {
		cases := map[string]Transaction{
			"one posting": {Key: "i1", Postings: []Posting{Credit(PlatformFees(), cny, 0)}},
			"zero amount": {Key: "i2", Postings: []Posting{Credit(PlatformFees(), cny, 0), Debit(MerchantAvailable("m"), cny, 0)}},
			"too large":   {Key: "i3", Postings: []Posting{Credit(PlatformFees(), cny, money.MinorMax+1), Debit(MerchantAvailable("m"), cny, money.MinorMax+1)}},
			"no key":      {Postings: []Posting{Credit(PlatformFees(), cny, 1), Debit(MerchantAvailable("m"), cny, 1)}},
			"long key":    {Key: strings.Repeat("k", KeyLengthMax+1), Postings: []Posting{Credit(PlatformFees(), cny, 1), Debit(MerchantAvailable("m"), cny, 1)}},
			"long text":   {Key: "i4", Description: strings.Repeat("d", DescriptionLengthMax+1), Postings: []Posting{Credit(PlatformFees(), cny, 1), Debit(MerchantAvailable("m"), cny, 1)}},
			"too many":    {Key: "i5", Postings: make([]Posting, PostingsMax+1)},
		}
		for name, tr := range cases {
			t.Run(name, func(t *testing.T) {
				_, err := l.Post(ctx, db, tr)
				wantCode(t, err, CodeInvalidTransaction)
			})
		}
	})
	t.Run("ErrInvalidAccount", func(t *testing.T) {
		for _, ref := range []AccountRef{ShopperWallet(""), ShopperWallet("a:b"), {Kind: "bank"}, {Kind: KindPlatformFees, Owner: "x"}} {
			tr := Transaction{Key: "a1", Postings: []Posting{Credit(PlatformFees(), cny, 1), Debit(ref, cny, 1)}}
			_, err := l.Post(ctx, db, tr)
			wantCode(t, err, CodeInvalidAccount)
		}
		_, err := l.Post(ctx, db, Transaction{Key: "a2", Postings: []Posting{Credit(PlatformFees(), cny, 1), Debit(PlatformFees(), money.Currency{}, 1)}})
		wantCode(t, err, CodeInvalidAccount)
	})
	t.Run("OKRefusalKeepsTransactionUsable", func(t *testing.T) {
		err := database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
			mustPost(t, l, tx, topUp("keep1", "s5", 10))
			if _, err := l.Post(ctx, tx, sale("keep2", "s5", "m1", 11)); err == nil {
				t.Fatal("overdraft accepted")
			}
			mustPost(t, l, tx, sale("keep3", "s5", "m1", 10))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := balance(t, l, db, ShopperWallet("s5")); got != 0 {
			t.Errorf("wallet = %d, want 0", got)
		}
	})
	auditClean(t, db)
}

func TestReverse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	original := mustPost(t, l, db, topUp("t1", "s1", 500))

	t.Run("OK", func(t *testing.T) {
		r, err := l.Reverse(ctx, db, original.ID, "rev1")
		if err != nil {
			t.Fatal(err)
		}
		if r.ReversesID != original.ID || r.Postings[0].Amount != 500 || r.Postings[1].Amount != -500 {
			t.Fatalf("reversal = %+v", r)
		}
		if got := balance(t, l, db, ShopperWallet("s1")); got != 0 {
			t.Errorf("wallet = %d, want 0", got)
		}
		again, err := l.Reverse(ctx, db, original.ID, "rev1")
		if err != nil || !again.Replayed || again.ID != r.ID {
			t.Fatalf("replay = %+v, %v", again, err)
		}
	})
	t.Run("ErrAlreadyReversed", func(t *testing.T) {
		_, err := l.Reverse(ctx, db, original.ID, "rev2")
		wantCode(t, err, CodeAlreadyReversed)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := l.Reverse(ctx, db, 1<<40, "rev3")
		wantCode(t, err, "not_found")
	})
	t.Run("ErrInsufficientFunds", func(t *testing.T) {
		top := mustPost(t, l, db, topUp("t2", "s2", 100))
		mustPost(t, l, db, sale("sale2", "s2", "m1", 60))
		_, err := l.Reverse(ctx, db, top.ID, "rev4")
		wantCode(t, err, CodeInsufficientFunds)
	})
	t.Run("ErrIdempotencyConflict", func(t *testing.T) {
		top := mustPost(t, l, db, topUp("t3", "s3", 100))
		_, err := l.Reverse(ctx, db, top.ID, "t2")
		wantCode(t, err, CodeIdempotencyConflict)
	})
	auditClean(t, db)
}

func TestImmutable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	mustPost(t, l, db, topUp("t1", "s1", 500))
	for _, stmt := range []string{
		`UPDATE ledger_postings SET amount = amount + 1`,
		`DELETE FROM ledger_postings`,
		`UPDATE ledger_transactions SET description = 'x'`,
		`DELETE FROM ledger_transactions`,
		`TRUNCATE ledger_postings CASCADE`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		if database.SQLState(err) != database.CodeRaiseException {
			t.Errorf("%s: error = %v, want the immutability trigger", stmt, err)
		}
	}
}

func TestSchemaRefusesBadRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	mustPost(t, l, db, topUp("t1", "s1", 500))
	wallet, err := l.Account(ctx, db, ShopperWallet("s1"), cny)
	if err != nil {
		t.Fatal(err)
	}
	// A wallet balance row below zero violates the CHECK even if Go forgot.
	_, err = db.ExecContext(ctx, `UPDATE ledger_balances SET balance = -1 WHERE account_id = $1`, wallet.ID)
	if database.SQLState(err) != database.CodeCheckViolation {
		t.Errorf("negative wallet: %v", err)
	}
	// An unbalanced transaction is refused (migration 00102's statement trigger).
	err = database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
		var id int64
		if err := tx.GetContext(ctx, &id, `INSERT INTO ledger_transactions (idempotency_key, request_hash, description, created_at, postings_count)
			VALUES ('raw', decode(repeat('00', 32), 'hex'), '', now(), 2) RETURNING id`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO ledger_postings (transaction_id, account_id, currency, amount, created_at)
			VALUES ($1, $2, 'CNY', 5, now()), ($1, $2, 'CNY', -4, now())`, id, wallet.ID)
		return err
	})
	if database.SQLState(err) != database.CodeCheckViolation {
		t.Errorf("unbalanced commit: %v", err)
	}
}

func TestEnsureAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	a, err := l.EnsureAccount(ctx, db, MerchantAvailable("m1"), cny)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.EnsureAccount(ctx, db, MerchantAvailable("m1"), cny)
	if err != nil || a.ID != b.ID || a.NoNegative {
		t.Fatalf("a = %+v, b = %+v, %v", a, b, err)
	}
	c, err := l.EnsureAccount(ctx, db, MerchantAvailable("m1"), jpy)
	if err != nil || c.ID == a.ID || c.Currency != jpy {
		t.Fatalf("c = %+v, %v", c, err)
	}
	w, err := l.EnsureAccount(ctx, db, ShopperWallet("s1"), cny)
	if err != nil || !w.NoNegative || w.Ref.Code() != "shopper:s1:wallet" {
		t.Fatalf("w = %+v, %v", w, err)
	}
	_, err = l.Account(ctx, db, MerchantBreakage("m1"), cny)
	wantCode(t, err, "not_found")
}

func TestBalanceAtAndStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	var times []time.Time
	var want []int64
	var running int64
	for i := 1; i <= 23; i++ {
		p := mustPost(t, l, db, topUp("t"+string(rune('a'+i)), "s1", int64(i)))
		running += int64(i)
		times = append(times, p.CreatedAt)
		want = append(want, running)
	}
	for i, at := range times {
		got, err := l.BalanceAt(ctx, db, ShopperWallet("s1"), cny, at)
		if err != nil || got != want[i] {
			t.Fatalf("BalanceAt(%d) = %d, %v; want %d", i, got, err, want[i])
		}
	}
	got, err := l.BalanceAt(ctx, db, ShopperWallet("s1"), cny, times[0].Add(-time.Hour))
	if err != nil || got != 0 {
		t.Fatalf("BalanceAt(before) = %d, %v", got, err)
	}

	var lines []StatementLine
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("statement does not end")
		}
		page, err := l.Statement(ctx, db, ShopperWallet("s1"), cny, cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, page.Lines...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(lines) != 23 {
		t.Fatalf("%d lines, want 23", len(lines))
	}
	for i, line := range lines {
		n := 23 - i // newest first
		if line.Amount != int64(n) || line.BalanceAfter != want[n-1] {
			t.Errorf("line %d = %+v, want amount %d balance %d", i, line, n, want[n-1])
		}
	}

	t.Run("ErrInvalidCursor", func(t *testing.T) {
		page, err := l.Statement(ctx, db, ShopperWallet("s1"), cny, "", 5)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.Statement(ctx, db, ProviderClearing("alipay"), cny, page.NextCursor, 5)
		wantCode(t, err, CodeInvalidCursor)
		_, err = l.Statement(ctx, db, ShopperWallet("s1"), cny, "garbage!", 5)
		wantCode(t, err, CodeInvalidCursor)
	})
	t.Run("ErrPageSize", func(t *testing.T) {
		_, err := l.Statement(ctx, db, ShopperWallet("s1"), cny, "", StatementPageSizeMax+1)
		wantCode(t, err, "validation_failed")
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := l.Statement(ctx, db, ShopperWallet("nobody"), cny, "", 5)
		wantCode(t, err, "not_found")
		if b, err := l.Balance(ctx, db, ShopperWallet("nobody"), cny); b != 0 || err != nil {
			t.Fatalf("balance of a new account = %d, %v", b, err)
		}
	})
}
