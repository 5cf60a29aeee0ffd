package pgcluster

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// RestartPolicy bounds how the supervisor brings back a postmaster that
// exited without being asked to.
type RestartPolicy struct {
	// AttemptsMax is how many restarts in a row may fail (or crash again
	// before StableAfter) before the supervisor gives up.
	AttemptsMax int
	// BackoffMin is the pause before the first restart; each further one
	// doubles it, up to BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// StableAfter is how long a postmaster must stay up for its next exit to
	// count as a first failure again.
	StableAfter time.Duration
	// OnGiveUp is called once, from the supervisor, when it gives up.
	OnGiveUp func(error)
}

// Restart policy defaults, units last.
const (
	RestartAttemptsMaxDefault = 5
	restartBackoffMinDefault  = 500 * time.Millisecond
	restartBackoffMaxDefault  = 10 * time.Second
	restartStableAfterDefault = time.Minute
)

// Health is what the supervisor knows about the postmaster it watches.
type Health struct {
	Up bool
	// DownSince is when the postmaster last exited (zero while it is up).
	DownSince time.Time
	// Restarts counts successful restarts since Supervise.
	Restarts int
	// GaveUp is set once the supervisor stopped trying; Err says why.
	GaveUp bool
	Err    error
}

type supervisor struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	health Health
}

func (s *supervisor) stop() {
	s.cancel()
	<-s.done
}

func (s *supervisor) update(f func(h *Health)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.health)
}

// Supervise watches the postmaster and restarts it, with backoff, whenever it
// exits without Stop having asked it to; after AttemptsMax failures in a row
// it gives up, says so in the log and calls OnGiveUp. Stop ends supervision.
// Call it once, after Start.
func (c *Cluster) Supervise(policy RestartPolicy) {
	if policy.AttemptsMax <= 0 {
		policy.AttemptsMax = RestartAttemptsMaxDefault
	}
	if policy.BackoffMin <= 0 {
		policy.BackoffMin = restartBackoffMinDefault
	}
	if policy.BackoffMax < policy.BackoffMin {
		policy.BackoffMax = max(restartBackoffMaxDefault, policy.BackoffMin)
	}
	if policy.StableAfter <= 0 {
		policy.StableAfter = restartStableAfterDefault
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &supervisor{cancel: cancel, done: make(chan struct{}), health: Health{Up: true}}
	c.supervisor = s
	go func() {
		defer close(s.done)
		c.supervise(ctx, s, policy)
	}()
}

// Health reports the supervised postmaster's state; without Supervise it
// only says whether the postmaster runs.
func (c *Cluster) Health() Health {
	if c.supervisor == nil {
		_, exited := c.current()
		select {
		case <-exited:
			return Health{}
		default:
			return Health{Up: true}
		}
	}
	c.supervisor.mu.Lock()
	defer c.supervisor.mu.Unlock()
	return c.supervisor.health
}

func (c *Cluster) supervise(ctx context.Context, s *supervisor, p RestartPolicy) {
	failures := 0
	for {
		c.mu.Lock()
		exited, startedAt := c.exited, c.startedAt
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-exited:
		}
		c.mu.Lock()
		stopping, exitErr := c.stopping, c.err
		c.mu.Unlock()
		if stopping {
			return
		}
		downSince := time.Now()
		s.update(func(h *Health) { h.Up, h.DownSince = false, downSince })
		if downSince.Sub(startedAt) >= p.StableAfter {
			failures = 0
		}
		lastErr := fmt.Errorf("postgres exited: %v", exitErr)
		for {
			failures++
			if failures > p.AttemptsMax {
				err := fmt.Errorf("private PostgreSQL: gave up after %d restarts in a row that failed or did not last %s; last: %w",
					p.AttemptsMax, p.StableAfter, lastErr)
				c.logger.Error("private PostgreSQL is down and chatpay gave up restarting it", "attempts", p.AttemptsMax,
					"error", lastErr, "log", c.logPath())
				s.update(func(h *Health) { h.GaveUp, h.Err = true, err })
				if p.OnGiveUp != nil {
					p.OnGiveUp(err)
				}
				return
			}
			delay := min(p.BackoffMin<<(failures-1), p.BackoffMax)
			c.logger.Warn("restarting private PostgreSQL", "attempt", failures, "of", p.AttemptsMax, "in", delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			if lastErr = c.start(ctx); lastErr == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			c.logger.Error("restart of private PostgreSQL failed", "attempt", failures, "error", lastErr)
		}
		c.logger.Info("private PostgreSQL restarted", "down_for", time.Since(downSince).Round(time.Millisecond), "pid", c.PID())
		s.update(func(h *Health) { h.Up, h.DownSince = true, time.Time{}; h.Restarts++ })
	}
}
