// Package database is the PostgreSQL plumbing every domain package shares:
// opening the pool, the durability check that guards money, migrations, the
// retrying transaction shape, and recognising driver errors by SQLSTATE.
// It knows no table but goose's.
package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// PoolOptions bound the connection pool.
type PoolOptions struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
}

// DefaultPool suits a 2-core machine: more connections than cores keeps the
// server busy while some wait on commits, without thrashing it.
var DefaultPool = PoolOptions{MaxOpenConns: 40, MaxIdleConns: 40, ConnMaxLifetime: 30 * time.Minute}

const connectTimeout = 10 * time.Second

// Open connects to dsn and checks the connection. Its error is one readable
// line naming where it tried to connect.
func Open(ctx context.Context, dsn string, pool PoolOptions) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL: %w", err)
	}
	db.SetMaxOpenConns(pool.MaxOpenConns)
	db.SetMaxIdleConns(pool.MaxIdleConns)
	db.SetConnMaxLifetime(pool.ConnMaxLifetime)
	pingCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("cannot connect to database %s: %s", Redact(dsn), describe(err))
	}
	return db, nil
}

// describe turns common connection failures into one short phrase.
func describe(err error) string {
	var opErr *net.OpError
	var pqErr *pq.Error
	switch {
	case errors.As(err, &pqErr):
		return pqErr.Message
	case errors.As(err, &opErr):
		return opErr.Err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", connectTimeout)
	}
	return err.Error()
}

// Redact hides the password in a URL or key=value DSN for log lines.
func Redact(dsn string) string {
	if strings.Contains(dsn, "://") {
		if i := strings.Index(dsn, "://"); i >= 0 {
			rest := dsn[i+3:]
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				cred := rest[:at]
				if colon := strings.Index(cred, ":"); colon >= 0 {
					return dsn[:i+3] + cred[:colon] + ":***" + rest[at:]
				}
			}
		}
		return dsn
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, "password=") {
			fields[i] = "password=***"
		}
	}
	return strings.Join(fields, " ")
}

// ErrUnsafeDurability means the server could lose committed money on a crash.
var ErrUnsafeDurability = errors.New("database durability settings are unsafe")

// CheckDurability refuses a server that acknowledges commits it may lose:
// fsync, synchronous_commit and full_page_writes must all be on.
func CheckDurability(ctx context.Context, db sqlx.QueryerContext) error {
	var bad []string
	for _, setting := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		var value string
		if err := sqlx.GetContext(ctx, db, &value, "SELECT current_setting($1)", setting); err != nil {
			return fmt.Errorf("read %s: %w", setting, err)
		}
		// synchronous_commit's other values (local, remote_write, remote_apply)
		// all flush the local WAL before acknowledging; only "off" does not.
		if value == "off" {
			bad = append(bad, setting+"="+value)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s (turn them on, or pass --dev-allow-unsafe-durability for throwaway development data)", ErrUnsafeDurability, strings.Join(bad, ", "))
	}
	return nil
}

// SQLSTATE codes chatpay reacts to.
const (
	CodeUniqueViolation      = "23505"
	CodeForeignKeyViolation  = "23503"
	CodeCheckViolation       = "23514"
	CodeSerializationFailure = "40001"
	CodeDeadlockDetected     = "40P01"
	CodeLockNotAvailable     = "55P03"
	CodeRaiseException       = "P0001"
)

// SQLState returns the SQLSTATE of a PostgreSQL error, or "".
func SQLState(err error) string {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return string(pqErr.Code)
	}
	return ""
}

// Constraint returns the constraint a PostgreSQL error names, or "".
func Constraint(err error) string {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Constraint
	}
	return ""
}

// IsUniqueViolation reports a unique violation of the named constraint (any
// constraint when name is empty).
func IsUniqueViolation(err error, name string) bool {
	return SQLState(err) == CodeUniqueViolation && (name == "" || Constraint(err) == name)
}

// IsUnavailable reports errors that say the database cannot be reached or
// is restarting, rather than that the request or the code is wrong: a lost
// or refused connection, a server shutting down or still recovering. Such a
// request may succeed a moment later, and its outcome may even have committed
// (a connection lost during COMMIT), so callers retry with the same
// Idempotency-Key.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	state := SQLState(err)
	switch {
	case strings.HasPrefix(state, "08"): // connection exception
		return true
	case state == "57P01", state == "57P02", state == "57P03": // admin or crash shutdown, cannot connect now
		return true
	case state == CodeTooManyConnections:
		return true
	}
	return false
}

// SQLSTATE codes of a server that is up but refuses work for want of a
// resource, or because it only reads (a standby, or a primary demoted by a
// failover).
const (
	CodeDiskFull            = "53100"
	CodeOutOfMemory         = "53200"
	CodeTooManyConnections  = "53300"
	CodeReadOnlyTransaction = "25006"
)

// Refusal reasons, stable words for problem codes, metrics and logs.
const (
	RefusalDiskFull           = "disk_full"
	RefusalOutOfMemory        = "out_of_memory"
	RefusalTooManyConnections = "too_many_connections"
	RefusalReadOnly           = "read_only"
)

// Refusal names why the server refused the work, for errors that say it is
// short of disk, memory or connections or accepts no writes; "" for any
// other error. None of these is the request's fault, and each may pass by
// itself (space freed, a failover over), so callers answer "try again".
func Refusal(err error) string {
	switch SQLState(err) {
	case CodeDiskFull:
		return RefusalDiskFull
	case CodeOutOfMemory:
		return RefusalOutOfMemory
	case CodeTooManyConnections:
		return RefusalTooManyConnections
	case CodeReadOnlyTransaction:
		return RefusalReadOnly
	}
	return ""
}

// IsRetryable reports errors that a fresh attempt of the whole transaction can cure.
func IsRetryable(err error) bool {
	switch SQLState(err) {
	case CodeSerializationFailure, CodeDeadlockDetected:
		return true
	}
	return false
}
