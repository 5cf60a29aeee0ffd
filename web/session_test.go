package web

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
)

// TestLoginLockouts: guessing one account's password from many addresses,
// and trying many accounts from one address, are both stopped, not only
// the same pair again; the window's end lets everyone in again.
func TestLoginLockouts(t *testing.T) {
	ctx := context.Background()
	clock := fakeclock.New(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	sessions := NewSessions(testdb.New(t), clock.Now)
	locked := func(email, address string) bool {
		t.Helper()
		err := sessions.LoginAllowed(ctx, email, address)
		if p, ok := problem.As(err); ok && p.Code == "too_many_login_attempts" {
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	fail := func(email, address string) {
		t.Helper()
		if err := sessions.LoginFailed(ctx, email, address); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("ErrOneAccountFromManyAddresses", func(t *testing.T) {
		for i := range loginFailuresPerAccountMax {
			address := fmt.Sprintf("198.51.100.%d", i)
			if locked("alice@example.com", address) {
				t.Fatalf("locked after %d failures from different addresses", i)
			}
			fail("alice@example.com", address)
		}
		if !locked("alice@example.com", "203.0.113.99") {
			t.Fatal("a fresh address may still guess alice's password")
		}
		if locked("bob@example.com", "203.0.113.99") {
			t.Fatal("bob is locked out by guesses at alice")
		}
	})
	t.Run("ErrManyAccountsFromOneAddress", func(t *testing.T) {
		for i := range loginFailuresPerAddressMax {
			email := fmt.Sprintf("user%d@example.com", i)
			if locked(email, "192.0.2.7") {
				t.Fatalf("locked after %d failures on different accounts", i)
			}
			fail(email, "192.0.2.7")
		}
		if !locked("someone-new@example.com", "192.0.2.7") {
			t.Fatal("the address may still try a 31st account")
		}
		if locked("someone-new@example.com", "192.0.2.8") {
			t.Fatal("another address is locked out by this one")
		}
	})
	t.Run("ErrSamePairAfterFive", func(t *testing.T) {
		for range loginFailuresMax {
			fail("carol@example.com", "192.0.2.50")
		}
		if !locked("carol@example.com", "192.0.2.50") {
			t.Fatal("the pair is not locked")
		}
		if locked("carol@example.com", "192.0.2.51") {
			t.Fatal("carol cannot sign in from her other device after five failures elsewhere")
		}
	})
	t.Run("OKWindowEnds", func(t *testing.T) {
		clock.Add(loginFailureWindow + time.Second)
		for _, pair := range [][2]string{{"alice@example.com", "203.0.113.99"}, {"someone-new@example.com", "192.0.2.7"}, {"carol@example.com", "192.0.2.50"}} {
			if locked(pair[0], pair[1]) {
				t.Fatalf("%v still locked after the window", pair)
			}
		}
	})
}
