package ledger

import (
	"context"
	"database/sql"
	"testing"

	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/database"
)

// TestPostingsSealedInPlainSQL writes around the ledger package, through
// database/sql alone, as a bug elsewhere or a hand-typed fix would: the
// database must refuse every posting that is not written with its
// transaction, and every change or removal of one.
func TestPostingsSealedInPlainSQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, dbx := newLedger(t)
	posted := mustPost(t, l, dbx, topUp("t1", "s1", 500))
	db := dbx.DB // plain database/sql from here on
	var clearing, wallet int64
	if err := db.QueryRowContext(ctx, `SELECT
		(SELECT id FROM ledger_accounts WHERE code = 'provider:alipay:clearing'),
		(SELECT id FROM ledger_accounts WHERE code = 'shopper:s1:wallet')`).Scan(&clearing, &wallet); err != nil {
		t.Fatal(err)
	}
	const insertPostings = `INSERT INTO ledger_postings (transaction_id, account_id, currency, amount, created_at)
		SELECT $1, a, 'CNY', m, now() FROM unnest($2::bigint[], $3::bigint[]) AS x (a, m)`
	// inTx runs statements in one database transaction and commits it.
	inTx := func(more func(tx *sql.Tx) error) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		if err := more(tx); err != nil {
			return err
		}
		return tx.Commit()
	}
	// newTransaction inserts a transaction row recording n postings.
	newTransaction := func(tx *sql.Tx, key string, n int) (int64, error) {
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO ledger_transactions (idempotency_key, request_hash, description, created_at, postings_count)
			VALUES ($1, decode(repeat('00', 32), 'hex'), '', now(), $2) RETURNING id`, key, n).Scan(&id)
		return id, err
	}
	wantRefused := func(name string, err error, code string) {
		t.Helper()
		if got := database.SQLState(err); got != code {
			t.Errorf("%s: error = %v (SQLSTATE %q), want %s", name, err, got, code)
		}
	}

	// Appending to a committed transaction, unbalancing it or not.
	_, err := db.ExecContext(ctx, insertPostings, posted.ID, pq.Array([]int64{wallet}), pq.Array([]int64{7}))
	wantRefused("one posting appended", err, database.CodeCheckViolation)
	_, err = db.ExecContext(ctx, insertPostings, posted.ID, pq.Array([]int64{clearing, wallet}), pq.Array([]int64{-7, 7}))
	wantRefused("a balanced pair appended", err, database.CodeCheckViolation)

	// Appending in the same database transaction, by a later statement.
	err = inTx(func(tx *sql.Tx) error {
		id, err := newTransaction(tx, "raw-append", 2)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insertPostings, id, pq.Array([]int64{clearing, wallet}), pq.Array([]int64{-3, 3})); err != nil {
			t.Fatalf("the transaction's own postings: %v", err)
		}
		_, err = tx.ExecContext(ctx, insertPostings, id, pq.Array([]int64{clearing, wallet}), pq.Array([]int64{-1, 1}))
		return err
	})
	wantRefused("a pair appended in the same database transaction", err, database.CodeCheckViolation)

	// Postings written one statement at a time, or unbalanced, or fewer than recorded.
	err = inTx(func(tx *sql.Tx) error {
		id, err := newTransaction(tx, "raw-split", 2)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, insertPostings, id, pq.Array([]int64{clearing}), pq.Array([]int64{-3}))
		return err
	})
	wantRefused("postings split over statements", err, database.CodeCheckViolation)
	err = inTx(func(tx *sql.Tx) error {
		id, err := newTransaction(tx, "raw-unbalanced", 2)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, insertPostings, id, pq.Array([]int64{clearing, wallet}), pq.Array([]int64{-3, 4}))
		return err
	})
	wantRefused("unbalanced postings", err, database.CodeCheckViolation)
	err = inTx(func(tx *sql.Tx) error {
		_, err := newTransaction(tx, "raw-one", 1)
		return err
	})
	wantRefused("a transaction recording one posting", err, database.CodeCheckViolation)

	// Changing or removing a posting.
	for _, stmt := range []string{
		`UPDATE ledger_postings SET amount = amount + 1`,
		`UPDATE ledger_postings SET transaction_id = transaction_id`,
		`DELETE FROM ledger_postings`,
		`UPDATE ledger_transactions SET postings_count = postings_count + 1`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		wantRefused(stmt, err, database.CodeRaiseException)
	}

	// What the ledger itself does still commits: the transaction and all its
	// postings, balanced, in one statement each.
	err = inTx(func(tx *sql.Tx) error {
		id, err := newTransaction(tx, "raw-good", 2)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, insertPostings, id, pq.Array([]int64{clearing, wallet}), pq.Array([]int64{-3, 3}))
		return err
	})
	if err != nil {
		t.Fatalf("a whole balanced transaction: %v", err)
	}
	var stored int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_postings WHERE transaction_id = $1`, posted.ID).Scan(&stored); err != nil || stored != 2 {
		t.Errorf("the first transaction has %d postings (%v), want its 2", stored, err)
	}
}

// TestPostReportsBalanceAfter: a post answers the changed wallet's whole
// balance after it (the receipt's figure), the same as reading it.
func TestPostReportsBalanceAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	top := mustPost(t, l, db, topUp("t1", "s1", 500))
	bought := mustPost(t, l, db, sale("sale1", "s1", "m1", 120))
	for _, p := range []Posted{top, bought} {
		if p.After == nil || p.After.Account != ShopperWallet("s1") || p.After.Currency != cny {
			t.Fatalf("post %s: After = %+v", p.Key, p.After)
		}
	}
	read, err := l.Balance(ctx, db, ShopperWallet("s1"), cny)
	if err != nil {
		t.Fatal(err)
	}
	if top.After.Balance != 500 || bought.After.Balance != 380 || read != 380 {
		t.Errorf("after top-up %d, after sale %d, read %d; want 500, 380, 380", top.After.Balance, bought.After.Balance, read)
	}
	replay := mustPost(t, l, db, sale("sale1", "s1", "m1", 120))
	if !replay.Replayed || replay.After != nil {
		t.Errorf("replay: Replayed %v, After %+v", replay.Replayed, replay.After)
	}
}
