// Package fakeclock is the one hand-written fake the tests share: a clock
// they can set and move, injected wherever production code takes
// `now func() time.Time`.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is safe for use by the servers under test and the test at once.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock that reads at until it is moved.
func New(at time.Time) *Clock { return &Clock{now: at} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to at.
func (c *Clock) Set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = at
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
