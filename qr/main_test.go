package qr_test

import (
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// newClock is the shared fake clock at a fixed start.
func newClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 11, 21, 14, 30, 0, 0, time.UTC))
}
