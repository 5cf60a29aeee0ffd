package main

import (
	"os"
	"testing"

	"github.com/chatpay/chatpay/internal/testdb"
)

// TestMain lets the test binary stand in for the chatpay binary (tests that
// need a real process, to send it SIGTERM, re-execute it with
// CHATPAY_TEST_AS_BINARY=1) and gives the other tests a private cluster.
func TestMain(m *testing.M) {
	if os.Getenv("CHATPAY_TEST_AS_BINARY") == "1" {
		main()
		os.Exit(0)
	}
	testdb.Main(m)
}
