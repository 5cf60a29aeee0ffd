package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/pgcluster"
)

// serve watches over its private PostgreSQL: a postmaster killed with
// SIGKILL is restarted and serve is ready again without anyone acting;
// /healthz stays 200 meanwhile. When PostgreSQL cannot start again, serve
// retries a bounded number of times, /healthz turns 503 once the grace
// period is over, and serve gives up loudly with a non-zero exit.
func TestServeRestartsItsPostgres(t *testing.T) {
	dir := dataDir(t)
	addr := freeAddr(t)
	base := "http://" + addr
	cmd, out := startBinary(t, []string{"DATABASE_URL="}, "serve", "--data-dir", dir, "--listen", addr,
		"--pg-down-grace", "2s", "--pg-restarts-max", "4")
	waitStatus(t, base+"/readyz", http.StatusOK, 60*time.Second)

	first := postmasterPID(t, dir)
	killedAt := time.Now()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var second int
	if !waitFor(func() bool {
		second = postmasterPIDOrZero(dir)
		metrics := scrape(base + "/metrics")
		return second != 0 && second != first && httpStatus(base+"/readyz") == http.StatusOK &&
			strings.Contains(metrics, "chatpay_postgres_restarts_total 1") && strings.Contains(metrics, "chatpay_postgres_up 1")
	}, 30*time.Second) {
		t.Fatalf("serve did not restart PostgreSQL and become ready within 30 s:\n%s", out)
	}
	t.Logf("postmaster %d killed; postmaster %d ready %s later", first, second, time.Since(killedAt).Round(time.Millisecond))
	if code := httpStatus(base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d after a restart inside the grace period", code)
	}
	log := out.String()
	for _, want := range []string{`"private PostgreSQL exited"`, `status="signal: killed"`, `"restarting private PostgreSQL"`, `"private PostgreSQL restarted"`} {
		if !strings.Contains(log, strings.Trim(want, `"`)) {
			t.Errorf("the log does not say %s:\n%s", want, log)
		}
	}

	// A configuration PostgreSQL refuses makes every restart fail.
	conf := filepath.Join(dir, "postgres", "data", "postgresql.auto.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\nthis_setting_does_not_exist = 1\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(second, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	if !waitFor(func() bool { return httpStatus(base+"/healthz") == http.StatusServiceUnavailable }, 20*time.Second) {
		t.Fatalf("/healthz never answered 503 while PostgreSQL could not start:\n%s", out)
	}
	t.Logf("/healthz 503 %s after the database went down for good", time.Since(down).Round(time.Millisecond))
	code, _ := waitExit(t, cmd, 60*time.Second)
	if code == 0 {
		t.Fatalf("serve exited 0 after giving up on PostgreSQL:\n%s", out)
	}
	log = out.String()
	if !strings.Contains(log, "gave up restarting it") || !strings.Contains(log, "gave up after 4 restarts in a row") {
		t.Errorf("serve did not say loudly that it gave up:\n%s", log)
	}
	// The first crash's restart counts: it did not last a minute.
	if n := strings.Count(log, "restart of private PostgreSQL failed"); n != 3 {
		t.Errorf("want 3 failed restarts in the log, got %d:\n%s", n, log)
	}
}

// After serve is killed with SIGKILL its postmaster shuts itself down (the
// parent-death signal); a serve started at once waits for it instead of
// failing on the lock file or taking its socket for its own.
func TestServeWaitsForTheOrphanAfterKill9(t *testing.T) {
	dir := dataDir(t)
	addr := freeAddr(t)
	cmd, first := startBinary(t, []string{"DATABASE_URL="}, "serve", "--data-dir", dir, "--listen", addr)
	waitStatus(t, "http://"+addr+"/readyz", http.StatusOK, 60*time.Second)
	orphan := postmasterPID(t, dir)
	t.Logf("first serve (pid %d) ready on postmaster %d; killing it:\n%s", cmd.Process.Pid, orphan, lastN(first.String(), 500))
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = waitExit(t, cmd, 10*time.Second)

	addr = freeAddr(t)
	cmd, out := startBinary(t, []string{"DATABASE_URL="}, "serve", "--data-dir", dir, "--listen", addr)
	waitStatus(t, "http://"+addr+"/readyz", http.StatusOK, 60*time.Second)
	own := postmasterPID(t, dir)
	if own == orphan || processAlive(orphan) {
		t.Fatalf("the new serve runs on postmaster %d; the orphan %d alive: %v\n%s", own, orphan, processAlive(orphan), out)
	}
	if !strings.Contains(out.String(), "private PostgreSQL is up") || strings.Contains(out.String(), "postgres exited during start") {
		t.Errorf("the second serve's start:\n%s", out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := waitExit(t, cmd, 20*time.Second); code != 0 || processAlive(own) {
		t.Fatalf("exit %d, postmaster %d alive %v:\n%s", code, own, processAlive(own), out)
	}
}

// A postmaster chatpay did not start (here: one whose ownership record is
// gone, as for a cluster started by hand) is never taken over.
func TestServeRefusesAPostmasterItDidNotStart(t *testing.T) {
	dir := dataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "postgres")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	if err := os.Remove(filepath.Join(cluster.Dir(), "chatpay-owner.json")); err != nil {
		t.Fatal(err)
	}
	cmd, out := startBinary(t, []string{"DATABASE_URL="}, "serve", "--data-dir", dir, "--listen", freeAddr(t))
	code, _ := waitExit(t, cmd, 30*time.Second)
	log := out.String()
	if code == 0 || !strings.Contains(log, "PostgreSQL that chatpay did not start") || !strings.Contains(log, "--database-url") {
		t.Fatalf("serve exited %d:\n%s", code, log)
	}
	if strings.Contains(log, "private PostgreSQL is up") || strings.Contains(log, "private PostgreSQL stopped") {
		t.Fatalf("serve claimed the foreign postmaster as its own:\n%s", log)
	}
	if !processAlive(cluster.PID()) {
		t.Fatal("serve stopped a postmaster it did not start")
	}
}

func postmasterPIDOrZero(dir string) int {
	raw, err := os.ReadFile(filepath.Join(dir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	var pid int
	_, _ = fmt.Sscan(strings.SplitN(string(raw), "\n", 2)[0], &pid)
	return pid
}

// scrape returns the body of url, or "" when it cannot be read.
func scrape(url string) string {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		return ""
	}
	return b.String()
}
