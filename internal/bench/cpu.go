package bench

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicksPerSecond is Linux's USER_HZ, the unit of /proc/<pid>/stat times.
const clockTicksPerSecond = 100

// cpuMeter counts the CPU time a scenario costs, which a shared machine
// disturbs far less than throughput: this process (server and clients) and
// the private cluster's processes (its backends are the postmaster's
// children), plus the statements PostgreSQL ran.
type cpuMeter struct {
	e          *env
	selfStart  time.Duration
	pgStart    map[int]time.Duration
	statements int64
	wal        walStats
}

func (e *env) startCPU(ctx context.Context) *cpuMeter {
	m := &cpuMeter{e: e, selfStart: selfCPU()}
	if e.cluster != nil {
		m.pgStart = childrenCPU(e.cluster.PID())
	}
	m.statements = e.statementCalls(ctx)
	m.wal = e.walStats(ctx)
	return m
}

// stop records what the load cost in l.
func (m *cpuMeter) stop(ctx context.Context, l *load) {
	l.processCPU = selfCPU() - m.selfStart
	if m.pgStart != nil {
		for pid, now := range childrenCPU(m.e.cluster.PID()) {
			l.postgresCPU += now - m.pgStart[pid]
		}
	}
	l.statements = -1
	if calls := m.e.statementCalls(ctx); calls >= 0 && m.statements >= 0 {
		l.statements = calls - m.statements
	}
	if now := m.e.walStats(ctx); now.ok && m.wal.ok {
		l.wal = walStats{ok: true, bytes: now.bytes - m.wal.bytes, fullPages: now.fullPages - m.wal.fullPages}
	}
}

// walStats is the cluster's write-ahead log volume: how much a purchase
// makes PostgreSQL write (and checksum, and flush) at commit.
type walStats struct {
	ok        bool
	bytes     int64
	fullPages int64
}

// walStats reads pg_stat_wal; the cluster is the bench's own, so all of it
// is the load's (with --database-url it includes whatever else runs there).
func (e *env) walStats(ctx context.Context) walStats {
	var w walStats
	const q = `SELECT wal_bytes::bigint, wal_fpi FROM pg_stat_wal`
	if err := e.db.QueryRowxContext(ctx, q).Scan(&w.bytes, &w.fullPages); err != nil {
		return walStats{}
	}
	w.ok = true
	return w
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childrenCPU reads the user and system time of every process whose parent
// is pid and, under the key -pid, that of its children which have exited
// (pgbench's backends end with their connections, before the run is read).
func childrenCPU(pid int) map[int]time.Duration {
	out := map[int]time.Duration{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	if fields := statFields(filepath.Join("/proc", strconv.Itoa(pid), "stat")); len(fields) >= 15 {
		cutime, _ := strconv.ParseInt(fields[13], 10, 64)
		cstime, _ := strconv.ParseInt(fields[14], 10, 64)
		out[-pid] = time.Duration(cutime+cstime) * time.Second / clockTicksPerSecond
	}
	for _, path := range stats {
		fields := statFields(path)
		if len(fields) < 13 {
			continue
		}
		if parent, _ := strconv.Atoi(fields[1]); parent != pid {
			continue
		}
		child, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		out[child] = time.Duration(utime+stime) * time.Second / clockTicksPerSecond
	}
	return out
}

// statementCalls is how many top-level statements the database has run
// since pg_stat_statements was reset, or -1.
func (e *env) statementCalls(ctx context.Context) int64 {
	if !e.statsOn {
		return -1
	}
	var calls int64
	const q = `SELECT COALESCE(sum(calls), 0)::bigint FROM pg_stat_statements
		WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`
	if err := e.db.GetContext(ctx, &calls, q); err != nil {
		return -1
	}
	return calls
}

// statFields returns the fields of a /proc/<pid>/stat after the command
// name (which may hold spaces), so fields[1] is the parent's pid.
func statFields(path string) []string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	text := string(raw)
	end := strings.LastIndexByte(text, ')')
	if end < 0 {
		return nil
	}
	return strings.Fields(text[end+1:])
}
