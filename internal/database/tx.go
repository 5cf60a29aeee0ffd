package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jmoiron/sqlx"
)

// TxAttemptsMax bounds how often a transaction is retried after a
// serialization failure or deadlock before the error reaches the caller.
const TxAttemptsMax = 8

// WithTx runs fn in a transaction and commits it. The transaction shape every
// package uses: begin, roll back on any error, commit last and check it.
// Serialization failures and deadlocks roll back and run fn again (at most
// TxAttemptsMax times, with a short jittered pause), so fn must not have
// effects outside the transaction.
func WithTx(ctx context.Context, db *sqlx.DB, opts *sql.TxOptions, fn func(tx *sqlx.Tx) error) error {
	var err error
	for attempt := 1; attempt <= TxAttemptsMax; attempt++ {
		err = runTx(ctx, db, opts, fn)
		if err == nil || !IsRetryable(err) {
			return err
		}
		pause := time.Duration(attempt*attempt) * time.Millisecond * time.Duration(1+rand.IntN(4))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(pause):
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", TxAttemptsMax, err)
}

func runTx(ctx context.Context, db *sqlx.DB, opts *sql.TxOptions, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.BeginTxx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
