package database_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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
