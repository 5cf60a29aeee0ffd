// Package testdb gives tests a real PostgreSQL: one private cluster per test
// binary (started on first use, stopped when the tests end) and a fresh
// database per test, cloned from a migrated template so that each test starts
// from the full schema in milliseconds. No database is ever mocked.
//
// A package opts in with
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
package testdb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/pgcluster"
)

const templateName = "chatpay_template"

var (
	mainCalled bool
	startOnce  sync.Once
	cluster    *pgcluster.Cluster
	clusterDir string
	startErr   error
	counter    atomic.Int64
)

// Settings trade durability for speed: test data is thrown away, and the
// durability check itself is tested separately against a safe cluster.
var Settings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
	"max_connections":    "400",
}

// Main runs the package's tests and then stops the cluster if one was started.
func Main(m *testing.M) {
	mainCalled = true
	code := m.Run()
	if cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "testdb: stop cluster:", err)
		}
		cancel()
		_ = os.RemoveAll(clusterDir)
	}
	os.Exit(code)
}

// Cluster returns the test binary's private cluster, starting it if needed.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	if !mainCalled {
		t.Fatal("testdb: add `func TestMain(m *testing.M) { testdb.Main(m) }` to the package so the cluster is stopped after the tests")
	}
	startOnce.Do(func() { startErr = start() })
	if startErr != nil {
		t.Fatalf("testdb: %v", startErr)
	}
	return cluster
}

func start() error {
	dir, err := os.MkdirTemp("", "chatpay-test-pg-")
	if err != nil {
		return err
	}
	clusterDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Settings: Settings, Database: templateName})
	if err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	db, err := database.Open(ctx, cluster.DSN(templateName), database.PoolOptions{MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	migrator, err := database.NewMigrator(db.DB)
	if err != nil {
		return err
	}
	if err := migrator.Up(ctx, io.Discard); err != nil {
		return err
	}
	// No one may stay connected to a template while it is being cloned.
	return db.Close()
}

// DSN creates a fresh migrated database for t, dropped when t ends, and
// returns its connection string.
func DSN(t testing.TB) string {
	t.Helper()
	return create(t, templateName)
}

// EmptyDSN is DSN without the schema: a database no migration has touched.
func EmptyDSN(t testing.TB) string {
	t.Helper()
	return create(t, "template0")
}

func create(t testing.TB, template string) string {
	t.Helper()
	c := Cluster(t)
	name := fmt.Sprintf("t%d_%s", counter.Add(1), sanitize(t.Name()))
	admin, err := sqlx.Open("postgres", c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, name, template)); err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sqlx.Open("postgres", c.DSN("postgres"))
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)); err != nil {
			t.Errorf("testdb: drop database: %v", err)
		}
	})
	return c.DSN(name)
}

// New returns a pool on a fresh migrated database for t, closed when t ends.
func New(t testing.TB) *sqlx.DB {
	t.Helper()
	db, err := database.Open(context.Background(), DSN(t), database.PoolOptions{MaxOpenConns: 80, MaxIdleConns: 80})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Logger returns a logger that writes to the test log (shown on failure or
// -v). Lines logged after the test ended (a server draining) are dropped, as
// testing forbids logging then.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 { // identifiers are limited to 63 bytes
			break
		}
	}
	return b.String()
}
