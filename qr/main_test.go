package qr_test

import (
	"sync"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// clock is the hand-written fake for the one real seam tests move: time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 11, 21, 14, 30, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
