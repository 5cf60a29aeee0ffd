package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/pgcluster"
)

// The failover drill (make ha-drill; docs/operations.md): pg_auto_failover's
// monitor, a primary and a synchronous standby on loopback ports, three
// chatpay API nodes and two dispatchers on a multi-host URL with
// target_session_attrs=read-write, a flash sale, and kill -9 of the
// primary's postmaster (with its pg_autoctl keeper, so that nothing restarts
// it in place) in the middle of it. The monitor promotes the standby; the
// clients retry with their keys; nothing is restarted by hand.

// HA drill limits. The monitor's health checks are tightened from their
// defaults (5 s period, 20 s to call a node unhealthy, 30 s for a demotion)
// so that the drill measures chatpay rather than waiting; docs/operations.md
// gives production values.
const (
	haSetupIn     = 3 * time.Minute
	haStopIn      = 20 * time.Second
	haPromotionIn = 60 * time.Second
)

var haMonitorSettings = map[string]string{
	"pgautofailover.health_check_period":               "1000",
	"pgautofailover.health_check_timeout":              "1000",
	"pgautofailover.health_check_max_retries":          "1",
	"pgautofailover.health_check_retry_delay":          "500",
	"pgautofailover.node_considered_unhealthy_timeout": "3000",
	"pgautofailover.primary_demote_timeout":            "3000",
}

// haTopology is the monitor and two nodes, each a `pg_autoctl run` in a
// process group of its own.
type haTopology struct {
	t      *testing.T
	dir    string
	pgctl  string
	cred   *syscall.Credential
	env    []string
	ports  map[string]int // monitor, node1, node2
	keeper map[string]*crashServer
}

func startHATopology(t *testing.T) *haTopology {
	t.Helper()
	autoctl, err := exec.LookPath("pg_autoctl")
	if err != nil {
		t.Fatal("pg_autoctl is not installed; run make ha-drill, which installs Debian's postgresql-<major>-auto-failover")
	}
	binDir, err := pgcluster.FindBinaries("")
	if err != nil {
		t.Fatal(err)
	}
	h := &haTopology{t: t, dir: dataDir(t), pgctl: filepath.Join(binDir, "pg_ctl"), ports: map[string]int{}, keeper: map[string]*crashServer{}}
	if os.Geteuid() == 0 {
		h.cred = postgresCredential(t)
		if err := os.Chown(h.dir, int(h.cred.Uid), int(h.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	// pg_autoctl keeps its configuration and state under XDG folders: in
	// the drill's folder, so that nothing outlives it.
	h.env = append(os.Environ(), "HOME="+h.dir, "XDG_CONFIG_HOME="+filepath.Join(h.dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(h.dir, "share"), "XDG_RUNTIME_DIR="+filepath.Join(h.dir, "run"), "PGCONNECT_TIMEOUT=3")
	for _, name := range []string{"monitor", "node1", "node2"} {
		h.ports[name] = freePort(t)
	}
	t.Cleanup(h.stop)

	h.autoctl(autoctl, "create", "monitor", "--pgdata", h.pgdata("monitor"), "--pgport", strconv.Itoa(h.ports["monitor"]),
		"--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--pgctl", h.pgctl)
	// create monitor has no --listen: the monitor listens on loopback only too.
	h.autoctl(autoctl, "config", "set", "--pgdata", h.pgdata("monitor"), "postgresql.listen_addresses", "127.0.0.1")
	h.spawn("monitor", autoctl, "run", "--pgdata", h.pgdata("monitor"))
	h.waitSQL("monitor", "pg_auto_failover", func(db *sql.DB) error { return db.Ping() })
	h.waitSQL("monitor", "pg_auto_failover", func(db *sql.DB) error {
		for name, value := range haMonitorSettings {
			if _, err := db.Exec(fmt.Sprintf("ALTER SYSTEM SET %s = %s", name, value)); err != nil {
				return err
			}
		}
		_, err := db.Exec("SELECT pg_reload_conf()")
		return err
	})
	for _, node := range []string{"node1", "node2"} {
		h.spawn(node, autoctl, "create", "postgres", "--pgdata", h.pgdata(node), "--pgport", strconv.Itoa(h.ports[node]),
			"--hostname", "127.0.0.1", "--listen", "127.0.0.1", "--name", node, "--auth", "trust", "--no-ssl",
			"--pgctl", h.pgctl, "--dbname", "chatpay", "--monitor", h.monitorURL(), "--run")
		want := map[string]string{"node1": "single|wait_primary|primary"}
		if node == "node2" {
			want = map[string]string{"node1": "primary", "node2": "secondary"}
		}
		h.waitStates(want)
	}
	var names string
	h.waitSQL("node1", "chatpay", func(db *sql.DB) error {
		if err := db.QueryRow("SHOW synchronous_standby_names").Scan(&names); err != nil {
			return err
		}
		if names == "" {
			return errors.New("the primary has no synchronous standby yet")
		}
		return nil
	})
	t.Logf("pg_auto_failover: monitor :%d, primary node1 :%d, standby node2 :%d, synchronous_standby_names = %s",
		h.ports["monitor"], h.ports["node1"], h.ports["node2"], names)
	return h
}

func postgresCredential(t *testing.T) *syscall.Credential {
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the drill runs PostgreSQL as user postgres when run as root: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

func freePort(t *testing.T) int {
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return n
}

func (h *haTopology) pgdata(name string) string { return filepath.Join(h.dir, name) }

func (h *haTopology) monitorURL() string {
	return fmt.Sprintf("postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover?sslmode=disable", h.ports["monitor"])
}

// DSN is what chatpay is given: both nodes, and only a read-write one will do.
func (h *haTopology) DSN() string {
	return fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=chatpay sslmode=disable target_session_attrs=read-write connect_timeout=3",
		h.ports["node1"], h.ports["node2"])
}

func (h *haTopology) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = h.dir, h.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: h.cred, Setpgid: true}
	return cmd
}

// autoctl runs a pg_autoctl command to its end.
func (h *haTopology) autoctl(args ...string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := h.command(args[0], args[1:]...)
	done := make(chan error, 1)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			h.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		h.t.Fatalf("%s did not finish in a minute:\n%s", strings.Join(args, " "), out)
	}
}

// spawn starts a long-running pg_autoctl in its own process group.
func (h *haTopology) spawn(name string, args ...string) {
	h.t.Helper()
	cmd := h.command(args[0], args[1:]...)
	p := &crashServer{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	h.keeper[name] = p
}

// stop ends every pg_autoctl by its process group: SIGTERM (it stops its
// PostgreSQL), then SIGKILL for what lingers; the folder goes with dataDir.
func (h *haTopology) stop() {
	for _, name := range []string{"node2", "node1", "monitor"} {
		p := h.keeper[name]
		if p == nil {
			continue
		}
		select {
		case <-p.done:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // its children, if any outlived it
			continue
		default:
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(haStopIn):
			h.t.Errorf("pg_autoctl %s ignored SIGTERM for %s; killing its process group", name, haStopIn)
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		if h.t.Failed() {
			h.t.Logf("pg_autoctl %s log (end):\n%s", name, lastN(p.out.String(), 4000))
		}
	}
}

// kill SIGKILLs a node's postmaster and its keeper's whole process group,
// and returns the postmaster's pid.
func (h *haTopology) kill(name string) int {
	h.t.Helper()
	raw, err := os.ReadFile(filepath.Join(h.pgdata(name), "postmaster.pid"))
	if err != nil {
		h.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(raw), "\n", 2)[0])
	if err != nil {
		h.t.Fatal(err)
	}
	p := h.keeper[name]
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("pg_autoctl %s survived SIGKILL", name)
	}
	return pid
}

func (h *haTopology) open(name, database string) (*sql.DB, error) {
	return sql.Open("postgres", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable connect_timeout=3", h.ports[name], database))
}

// waitSQL runs fn on a node until it succeeds or the set-up bound passes;
// node2's base backup waits for a checkpoint, so one is asked for meanwhile.
func (h *haTopology) waitSQL(name, database string, fn func(*sql.DB) error) {
	h.t.Helper()
	db, err := h.open(name, database)
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(haSetupIn)
	for {
		if err = fn(db); err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: %v", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitStates waits until the monitor reports each node in one of the
// states given ("a|b"). pg_autoctl's base backup of a new standby waits for
// a spread checkpoint on the primary; the drill asks for one every 2 s.
func (h *haTopology) waitStates(want map[string]string) {
	h.t.Helper()
	lastCheckpoint := time.Time{}
	h.waitSQL("monitor", "pg_auto_failover", func(db *sql.DB) error {
		if _, ok := want["node2"]; ok && time.Since(lastCheckpoint) > 2*time.Second {
			if primary, err := h.open("node1", "chatpay"); err == nil {
				_, _ = primary.Exec("CHECKPOINT")
				_ = primary.Close()
			}
			lastCheckpoint = time.Now()
		}
		for node, states := range want {
			var reported, goal string
			err := db.QueryRow(`SELECT reportedstate::text, goalstate::text FROM pgautofailover.node WHERE nodename = $1`, node).Scan(&reported, &goal)
			if err != nil {
				return fmt.Errorf("state of %s: %w", node, err)
			}
			if reported != goal || !strings.Contains("|"+states+"|", "|"+reported+"|") {
				return fmt.Errorf("%s is %s (assigned %s), want %s", node, reported, goal, states)
			}
		}
		return nil
	})
}

// The drill. Figures go to the log: purchases answered paid, lost (0),
// phantom (0), and how long no purchase could be written.
func TestHADrill(t *testing.T) {
	if os.Getenv("CHATPAY_HA_DRILL") != "1" {
		t.Skip("the failover drill runs with make ha-drill (it installs pg_auto_failover)")
	}
	began := time.Now()
	h := startHATopology(t)
	t.Logf("topology up in %s", time.Since(began).Round(time.Millisecond))
	e := &crashEnv{t: t, dir: dataDir(t), dsn: h.DSN()}
	e.assertDurable()
	sink := startNodes(e)
	t.Logf("%d serve and %d dispatch processes on %s, seeded, %s after the start",
		nodesServes, nodesDispatchers, e.dsn, time.Since(began).Round(time.Millisecond))

	var promotedAt time.Time
	l := runCrashLoad(e, func(l *crashLoad) {
		l.crashAt = time.Now()
		pid := h.kill("node1")
		t.Logf("kill -9 of the primary's postmaster (pid %d) and keeper at +%s with %d purchases paid",
			pid, l.crashAt.Sub(l.start).Round(time.Millisecond), l.paid.Load())
		h.waitSQL("node2", "chatpay", func(db *sql.DB) error {
			var recovering, readOnly string
			if err := db.QueryRow("SELECT pg_is_in_recovery()::text, current_setting('default_transaction_read_only')").Scan(&recovering, &readOnly); err != nil {
				return err
			}
			if recovering != "false" || readOnly != "off" {
				return fmt.Errorf("node2: in recovery %s, read-only %s", recovering, readOnly)
			}
			return nil
		})
		promotedAt = time.Now()
		t.Logf("node2 promoted and writable %s after the kill", promotedAt.Sub(l.crashAt).Round(time.Millisecond))
	})
	if promotedAt.IsZero() {
		t.FailNow()
	}
	outage, firstWrite := l.writeOutage()
	for _, a := range l.fivexx(l.start) {
		if !strings.Contains(a, " 503 ") || !(strings.Contains(a, "database_unavailable") || strings.Contains(a, "database_read_only")) {
			t.Errorf("an answer during the failover is not 503 database_unavailable/database_read_only: %s", a)
		}
	}
	l.checkAcknowledged()
	l.checkOutcomes()
	l.checkReplays()
	e.assertWebhooksDelivered(sink)
	e.assertNodesRunning() // serve never needed a restart
	e.assertServeLogsClean()
	e.assertVerifyExitsZero()
	lost, phantom := l.lostAndPhantom()
	t.Logf("HA DRILL: %d purchases answered paid, %d lost, %d phantom; write outage %.1f s (kill → first purchase sent after it answered paid at +%s), %d 5xx answers (all 503) meanwhile; promotion took %.1f s; total %s",
		l.paid.Load(), lost, phantom, outage.Seconds(), firstWrite, len(l.fivexx(l.crashAt)), promotedAt.Sub(l.crashAt).Seconds(),
		time.Since(began).Round(time.Millisecond))
	if lost != 0 || phantom != 0 {
		t.Errorf("%d lost, %d phantom purchases", lost, phantom)
	}
}

// writeOutage is how long after the crash the first request sent after it
// got a 2xx: the time no purchase could be written.
func (l *crashLoad) writeOutage() (time.Duration, time.Duration) {
	var first time.Time
	for _, p := range l.purchases {
		for _, r := range []*crashRequest{p.Create, p.Confirm} {
			if r == nil {
				continue
			}
			for _, a := range r.Tries {
				if a.Err == "" && a.Status < 300 && !a.Sent.Before(l.crashAt) && (first.IsZero() || a.Got.Before(first)) {
					first = a.Got
				}
			}
		}
	}
	if first.IsZero() {
		l.e.t.Errorf("no request sent after the crash was answered 2xx")
		return 0, 0
	}
	return first.Sub(l.crashAt), first.Sub(l.start).Round(time.Millisecond)
}

// lostAndPhantom counts purchases answered paid that have no paid order on
// the new primary, and paid orders no client was told of.
func (l *crashLoad) lostAndPhantom() (lost, phantom int) {
	db := l.e.openDB()
	defer db.Close()
	var paidOrders []string
	if err := db.Select(&paidOrders, `SELECT id FROM orders WHERE merchant_id = $1 AND status = 'paid'`, l.e.merchantID); err != nil {
		l.e.t.Fatal(err)
	}
	inDB := map[string]bool{}
	for _, id := range paidOrders {
		inDB[id] = true
	}
	told := map[string]bool{}
	for _, p := range l.purchases {
		if p.OrderID != "" {
			told[p.OrderID] = true
			if !inDB[p.OrderID] {
				lost++
			}
		}
	}
	for _, id := range paidOrders {
		if !told[id] {
			phantom++
		}
	}
	return lost, phantom
}
