package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/pgcluster"
	"github.com/chatpay/chatpay/internal/testdb"
)

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// dataDir makes a data folder that the unprivileged postgres user can enter
// when the tests run as root (t.TempDir's folders are 0700).
func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "chatpay-serve-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// syncBuffer collects a process's output for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBinary runs the test binary as the chatpay binary (see TestMain).
func startBinary(t *testing.T, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CHATPAY_TEST_AS_BINARY=1")
	cmd.Env = append(cmd.Env, env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, out
}

func httpStatus(url string) int {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// waitStatus polls url until it answers want or the timeout passes.
func waitStatus(t *testing.T, url string, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if httpStatus(url) == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within %s (last: %d)", url, want, timeout, httpStatus(url))
	return 0
}

func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("process did not exit within %s", timeout)
		return -1, 0
	}
}

func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		t.Fatalf("read postmaster.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(raw), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// processAlive reports a process that runs: an orphan that init has not
// reaped yet (a zombie) has ended.
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := bytes.LastIndexByte(stat, ')'); err == nil && i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// The acceptance of `make run`: ready within 60 s on a fresh data folder,
// SIGTERM exits 0 within 10 s leaving no postgres behind, and a second start
// reuses the folder.
func TestServeEmbeddedDatabaseLifecycle(t *testing.T) {
	dir := dataDir(t)
	for round, wantLog := range []string{"creating private PostgreSQL cluster", "reusing private PostgreSQL cluster"} {
		addr := freeAddr(t)
		cmd, out := startBinary(t, []string{"DATABASE_URL="}, "serve", "--data-dir", dir, "--listen", addr)
		took := waitStatus(t, "http://"+addr+"/readyz", http.StatusOK, 60*time.Second)
		t.Logf("round %d: ready after %s", round+1, took.Round(time.Millisecond))
		if code := httpStatus("http://" + addr + "/healthz"); code != http.StatusOK {
			t.Fatalf("healthz = %d", code)
		}
		pid := postmasterPID(t, dir)
		if !processAlive(pid) {
			t.Fatalf("postmaster %d not running", pid)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		code, stopTook := waitExit(t, cmd, 10*time.Second)
		t.Logf("round %d: exited %d after %s", round+1, code, stopTook.Round(time.Millisecond))
		if code != 0 {
			t.Fatalf("exit code %d, output:\n%s", code, out)
		}
		if processAlive(pid) {
			t.Fatalf("postmaster %d still running after chatpay exited", pid)
		}
		if !strings.Contains(out.String(), wantLog) {
			t.Fatalf("round %d: expected %q in output:\n%s", round+1, wantLog, out)
		}
	}
}

func TestServeRefusesUnreachableDatabase(t *testing.T) {
	cmd, out := startBinary(t, []string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/nothing?sslmode=disable"},
		"serve", "--listen", freeAddr(t))
	code, _ := waitExit(t, cmd, 30*time.Second)
	if code == 0 {
		t.Fatal("serve with an unreachable database exited 0")
	}
	text := strings.TrimSpace(out.String())
	if strings.Count(text, "\n") != 0 || !strings.HasPrefix(text, "chatpay: cannot connect to database postgres://nobody@127.0.0.1:1/") {
		t.Fatalf("want one clear line, got:\n%s", text)
	}
	if strings.Contains(text, "goroutine") {
		t.Fatalf("stack trace in output:\n%s", text)
	}
}

// serveInProcess runs `chatpay serve` through run() until the test ends.
func serveInProcess(t *testing.T, args ...string) (baseURL string, stop func() error) {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	getenv := func(string) string { return "" }
	go func() {
		done <- run(ctx, append([]string{"serve", "--listen", addr, "--log-format", "json"}, args...), out, out, getenv)
	}()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("serve did not stop within 15s")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v\n%s", err, out)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("serve exited early: %v\n%s", err, out)
		default:
		}
		if httpStatus("http://"+addr+"/healthz") == http.StatusOK {
			return "http://" + addr, stop
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve not up:\n%s", out)
	return "", nil
}

func TestServeUsesDatabaseURL(t *testing.T) {
	dsn := testdb.DSN(t)
	dir := dataDir(t)
	base, stop := serveInProcess(t, "--database-url", dsn, "--data-dir", dir, "--dev-allow-unsafe-durability")
	waitStatus(t, base+"/readyz", http.StatusOK, 10*time.Second)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a private cluster was created in %s although DATABASE_URL was given", dir)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestServeRefusesUnsafeDurability(t *testing.T) {
	dsn := testdb.DSN(t) // the test cluster runs with fsync=off
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "--database-url", dsn, "--listen", freeAddr(t)}, &out, &out, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "fsync=off") || !strings.Contains(err.Error(), "--dev-allow-unsafe-durability") {
		t.Fatalf("want a refusal naming fsync=off and the development flag, got %v", err)
	}
}

// /readyz follows the database: 503 while it is down (while /healthz stays
// 200), 200 again once it is back, without restarting chatpay.
func TestReadyzFollowsDatabase(t *testing.T) {
	dir := dataDir(t)
	cluster, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: filepath.Join(dir, "pg"), Settings: testdb.Settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	base, _ := serveInProcess(t, "--database-url", cluster.URL(), "--dev-allow-unsafe-durability")
	waitStatus(t, base+"/readyz", http.StatusOK, 10*time.Second)

	if err := cluster.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, base+"/readyz", http.StatusServiceUnavailable, 10*time.Second)
	if code := httpStatus(base + "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz while database down = %d", code)
	}
	if err := cluster.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := waitStatus(t, base+"/readyz", http.StatusOK, 20*time.Second)
	t.Logf("ready again %s after the database came back", took.Round(time.Millisecond))
}

func TestMigrateStatusAndUp(t *testing.T) {
	dsn := testdb.DSN(t)
	var out bytes.Buffer
	getenv := func(name string) string {
		if name == "DATABASE_URL" {
			return dsn
		}
		return ""
	}
	args := []string{"migrate", "--dev-allow-unsafe-durability", "status"}
	if err := run(context.Background(), args, &out, &out, getenv); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "00001_idempotency.sql") || strings.Contains(out.String(), "pending") {
		t.Fatalf("status of a migrated database:\n%s", out.String())
	}
	out.Reset()
	args[len(args)-1] = "up"
	if err := run(context.Background(), args, &out, &out, getenv); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "migrations are current") {
		t.Fatalf("up output:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"migrate", "sideways"}, &out, &out, getenv); !errors.Is(err, errUsage) {
		t.Fatalf("unknown migrate verb: %v", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, &out, &out, func(string) string { return "" })
	if !errors.Is(err, errUsage) || !strings.Contains(out.String(), `unknown command "frobnicate"`) {
		t.Fatalf("err=%v out=%s", err, out.String())
	}
}

// A request still in flight when shutdown begins is finished, not cut off:
// the client is halfway through sending a form when SIGTERM's context is
// canceled, and still gets its whole answer.
func TestServeFinishesRequestsInFlight(t *testing.T) {
	base, stop := serveInProcess(t, "--database-url", testdb.DSN(t), "--dev-allow-unsafe-durability")
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reader := bufio.NewReader(conn)
	// One whole request first, so the server has accepted this connection
	// before shutdown closes the listener.
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: chatpay\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	first, err := http.ReadResponse(reader, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, first.Body)
	_ = first.Body.Close()
	body := "launch=&idempotency_key=k1"
	header := fmt.Sprintf("POST /q/aaaaaaaaaaaaaaaaaaaaaaaaaa/buy HTTP/1.1\r\nHost: chatpay\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", len(body))
	if _, err := conn.Write([]byte(header + body[:5])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the server reads the headers: the request is in flight
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(300 * time.Millisecond) // shutdown has begun and waits for this request
	select {
	case err := <-stopped:
		t.Fatalf("serve stopped with a request in flight: %v", err)
	default:
	}
	if _, err := conn.Write([]byte(body[5:])); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(reader, nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized { // the "open this from your chat" page, rendered in full
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
