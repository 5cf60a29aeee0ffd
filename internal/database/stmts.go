package database

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// Stmts runs the statements of a hot path prepared. lib/pq sends a
// statement with parameters that is not prepared as parse, then bind and
// execute, and PostgreSQL plans it every time; for the short statements of
// a purchase the planning cost more than the execution (docs/performance.md).
// A query is prepared once per pool; database/sql then keeps it prepared on
// each connection it runs on, inside transactions too.
//
// A nil *Stmts, or a handle that is neither the pool nor one of its
// transactions, runs the query unprepared, so callers need no second path.
type Stmts struct {
	db        *sqlx.DB
	mu        sync.RWMutex
	byQuery   map[string]*sqlx.Stmt
	preparing map[string]bool
}

// stmtsMax bounds the cache: the hot paths have a few dozen constant
// queries; a query built at run time must not be passed here.
const stmtsMax = 256

// prepareTimeout bounds preparing one statement in the background.
const prepareTimeout = 30 * time.Second

// NewStmts returns a statement cache for db.
func NewStmts(db *sqlx.DB) *Stmts {
	return &Stmts{db: db, byQuery: make(map[string]*sqlx.Stmt), preparing: make(map[string]bool)}
}

// Get runs a query that returns one row into dest.
func (s *Stmts) Get(ctx context.Context, q sqlx.ExtContext, dest any, query string, args ...any) error {
	if stmt := s.in(ctx, q, query); stmt != nil {
		return stmt.GetContext(ctx, dest, args...)
	}
	return sqlx.GetContext(ctx, q, dest, query, args...)
}

// Select runs a query that returns rows into the slice dest.
func (s *Stmts) Select(ctx context.Context, q sqlx.ExtContext, dest any, query string, args ...any) error {
	if stmt := s.in(ctx, q, query); stmt != nil {
		return stmt.SelectContext(ctx, dest, args...)
	}
	return sqlx.SelectContext(ctx, q, dest, query, args...)
}

// Exec runs a statement that returns no rows.
func (s *Stmts) Exec(ctx context.Context, q sqlx.ExtContext, query string, args ...any) (sql.Result, error) {
	if stmt := s.in(ctx, q, query); stmt != nil {
		return stmt.ExecContext(ctx, args...)
	}
	return q.ExecContext(ctx, query, args...)
}

// in returns query prepared and bound to q, or nil to run it unprepared.
func (s *Stmts) in(ctx context.Context, q sqlx.ExtContext, query string) *sqlx.Stmt {
	if s == nil {
		return nil
	}
	tx, isTx := q.(*sqlx.Tx)
	if pool, isPool := q.(*sqlx.DB); !isTx && (!isPool || pool != s.db) {
		return nil
	}
	s.mu.RLock()
	stmt, preparing := s.byQuery[query], s.preparing[query]
	s.mu.RUnlock()
	if stmt == nil {
		if !preparing {
			s.prepareInBackground(query)
		}
		return nil
	}
	if isTx {
		// database/sql prepares it on the transaction's own connection the
		// first time that connection runs it. A transaction of another pool
		// would fail here; this cache is only handed its own pool's.
		return tx.StmtxContext(ctx, stmt)
	}
	return stmt
}

// prepareInBackground prepares query on a connection of its own. The caller
// usually holds a transaction's connection, and waiting here for a second
// one could stall every transaction when the pool is full; so the query runs
// unprepared until the statement is ready.
func (s *Stmts) prepareInBackground(query string) {
	s.mu.Lock()
	if s.byQuery[query] != nil || s.preparing[query] || len(s.byQuery)+len(s.preparing) >= stmtsMax {
		s.mu.Unlock()
		return
	}
	s.preparing[query] = true
	s.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
		defer cancel()
		stmt, err := s.db.PreparexContext(ctx, query)
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.preparing, query)
		if err == nil {
			// Preparing is only faster; a failure leaves the query unprepared
			// and running it reports the error where it belongs.
			s.byQuery[query] = stmt
		}
	}()
}
