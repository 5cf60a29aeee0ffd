package database

import (
	"context"
	"database/sql"
	"sync"

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
	db      *sqlx.DB
	mu      sync.RWMutex
	byQuery map[string]*sqlx.Stmt
}

// stmtsMax bounds the cache: the hot paths have a few dozen constant
// queries; a query built at run time must not be passed here.
const stmtsMax = 256

// NewStmts returns a statement cache for db.
func NewStmts(db *sqlx.DB) *Stmts {
	return &Stmts{db: db, byQuery: make(map[string]*sqlx.Stmt)}
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
	stmt := s.prepared(ctx, query)
	if stmt == nil {
		return nil
	}
	if isTx {
		// A transaction of another pool would fail here; this cache is
		// only ever handed transactions of its own pool.
		return tx.StmtxContext(ctx, stmt)
	}
	return stmt
}

func (s *Stmts) prepared(ctx context.Context, query string) *sqlx.Stmt {
	s.mu.RLock()
	stmt := s.byQuery[query]
	s.mu.RUnlock()
	if stmt != nil {
		return stmt
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if stmt := s.byQuery[query]; stmt != nil {
		return stmt
	}
	if len(s.byQuery) >= stmtsMax {
		return nil
	}
	stmt, err := s.db.PreparexContext(ctx, query)
	if err != nil {
		// Preparing is only faster; running the query unprepared reports
		// the error where it belongs.
		return nil
	}
	s.byQuery[query] = stmt
	return stmt
}
