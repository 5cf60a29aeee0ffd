package database_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestCheckDurabilityRefusesUnsafeServer(t *testing.T) {
	db := testdb.New(t) // the test cluster runs with fsync, synchronous_commit and full_page_writes off
	err := database.CheckDurability(context.Background(), db)
	if !errors.Is(err, database.ErrUnsafeDurability) {
		t.Fatalf("want database.ErrUnsafeDurability, got %v", err)
	}
	for _, setting := range []string{"fsync=off", "synchronous_commit=off", "full_page_writes=off"} {
		if !strings.Contains(err.Error(), setting) {
			t.Errorf("error does not name %s: %v", setting, err)
		}
	}
}

func TestWithTxRetriesSerializationFailures(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE counter (n int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	err := database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
		attempts++
		if _, err := tx.Exec(`INSERT INTO counter VALUES ($1)`, attempts); err != nil {
			return err
		}
		if attempts < 3 {
			return &pq.Error{Code: database.CodeSerializationFailure, Message: "could not serialize access"}
		}
		return nil
	})
	if err != nil || attempts != 3 {
		t.Fatalf("err=%v attempts=%d", err, attempts)
	}
	var rows []int
	if err := db.Select(&rows, `SELECT n FROM counter`); err != nil || len(rows) != 1 || rows[0] != 3 {
		t.Fatalf("only the last attempt may commit: %v %v", rows, err)
	}

	t.Run("ErrGivesUpAfterTheLimit", func(t *testing.T) {
		attempts := 0
		err := database.WithTx(ctx, db, nil, func(*sqlx.Tx) error {
			attempts++
			return &pq.Error{Code: database.CodeDeadlockDetected}
		})
		if attempts != database.TxAttemptsMax || !database.IsRetryable(err) {
			t.Fatalf("attempts=%d err=%v", attempts, err)
		}
	})
	t.Run("OtherErrorsAreNotRetried", func(t *testing.T) {
		attempts := 0
		_ = database.WithTx(ctx, db, nil, func(*sqlx.Tx) error { attempts++; return errors.New("no") })
		if attempts != 1 {
			t.Fatalf("attempts=%d", attempts)
		}
	})
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"postgres://app:s3cret@db:5432/x":             "postgres://app:***@db:5432/x",
		"postgres://app@db/x":                         "postgres://app@db/x",
		"host=/run user=app password=s3cret dbname=x": "host=/run user=app password=*** dbname=x",
	}
	for in, want := range cases {
		if got := database.Redact(in); got != want {
			t.Errorf("database.Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// Stmts never waits for a second connection while a transaction holds one:
// with every connection of the pool inside a transaction, new queries still
// run (unprepared at first), and later ones run prepared.
func TestStmtsWithTheWholePoolInTransactions(t *testing.T) {
	dsn := testdb.DSN(t)
	db, err := database.Open(context.Background(), dsn, database.PoolOptions{MaxOpenConns: 2, MaxIdleConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := database.NewStmts(db)
	ctx := context.Background()
	const query = `SELECT $1::int + 1`
	done := make(chan error, 2)
	for range 2 {
		go func() {
			done <- database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
				for i := range 50 {
					var n int
					if err := stmts.Get(ctx, tx, &n, query, i); err != nil {
						return err
					}
					if n != i+1 {
						return errors.New("wrong answer")
					}
				}
				return nil
			})
		}()
	}
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("transactions stalled waiting for a connection to prepare on")
		}
	}
	// Once the background preparation is done, a transaction runs the query
	// as a prepared statement of its own session.
	var prepared bool
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !prepared; time.Sleep(20 * time.Millisecond) {
		err := database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
			var n int
			if err := stmts.Get(ctx, tx, &n, query, 1); err != nil {
				return err
			}
			return tx.Get(&prepared, `SELECT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE statement = $1)`, query)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !prepared {
		t.Fatal("the query was never run prepared")
	}
}
