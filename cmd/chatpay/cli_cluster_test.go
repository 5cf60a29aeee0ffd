package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/testdb"
)

// runCLI runs one chatpay command in-process with no DATABASE_URL in its
// environment, as an operator's shell would.
func runOperatorCLI(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut, func(string) string { return "" })
	return out.String(), errOut.String(), err
}

// TestCommandsUseTheRunningServesCluster: with serve running on a data
// folder, operator commands on the same folder use serve's PostgreSQL (no
// second postmaster failing on the lock file), and their writes are what
// serve sees; on a new data folder they bring the schema up themselves.
func TestCommandsUseTheRunningServesCluster(t *testing.T) {
	dir := dataDir(t)
	addr := freeAddr(t)
	cmd, out := startBinary(t, []string{"DATABASE_URL="}, "serve", "--data-dir", dir, "--listen", addr)
	waitStatus(t, "http://"+addr+"/readyz", http.StatusOK, 60*time.Second)
	servePostmaster := postmasterPID(t, dir)

	stdout, stderr, err := runOperatorCLI("merchant", "create", "--data-dir", dir, "--name", "McDonald's",
		"--time-zone", "Asia/Shanghai", "--currency", "CNY")
	if err != nil {
		t.Fatalf("merchant create beside serve: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "using the private PostgreSQL of the chatpay serve") {
		t.Fatalf("the command did not say it used serve's cluster:\n%s", stderr)
	}
	key := strings.Fields(stdout[strings.Index(stdout, "sk_"):])[0]
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/merchant", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("serve does not know the key the command made: %d", resp.StatusCode)
	}
	if _, stderr, err := runOperatorCLI("verify", "--data-dir", dir); err != nil {
		t.Fatalf("verify beside serve: %v\n%s", err, stderr)
	}
	if pid := postmasterPID(t, dir); pid != servePostmaster {
		t.Fatalf("the postmaster changed from %d to %d", servePostmaster, pid)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := waitExit(t, cmd, 15*time.Second); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, out)
	}

	t.Run("OKNewDataFolder", func(t *testing.T) {
		fresh := dataDir(t)
		stdout, stderr, err := runOperatorCLI("verify", "--data-dir", fresh)
		if err != nil {
			t.Fatalf("verify on a new data folder: %v\n%s", err, stderr)
		}
		if strings.Contains(stdout+stderr, "does not exist") {
			t.Fatalf("raw database error:\n%s%s", stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(fresh, "postgres")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrPendingMigrationsOnDatabaseURL", func(t *testing.T) {
		empty := testdb.EmptyDSN(t)
		_, _, err := runOperatorCLI("verify", "--database-url", empty, "--dev-allow-unsafe-durability")
		if err == nil || !strings.Contains(err.Error(), "chatpay migrate up") {
			t.Fatalf("want a pointer to `chatpay migrate up`, got %v", err)
		}
	})
}
