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
}

func (e *env) startCPU(ctx context.Context) *cpuMeter {
	m := &cpuMeter{e: e, selfStart: selfCPU()}
	if e.cluster != nil {
		m.pgStart = childrenCPU(e.cluster.PID())
	}
	m.statements = e.statementCalls(ctx)
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
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childrenCPU reads the user and system time of every process whose parent
// is pid.
func childrenCPU(pid int) map[int]time.Duration {
	out := map[int]time.Duration{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// The command name may hold spaces; the fields after its ")" are fixed.
		text := string(raw)
		end := strings.LastIndexByte(text, ')')
		if end < 0 {
			continue
		}
		fields := strings.Fields(text[end+1:])
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
