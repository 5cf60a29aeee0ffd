package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/testdb"
)

func runMerchantCLI(t *testing.T, dsn string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(string) string { return "" }
	// The test cluster trades durability for speed, which openDatabase refuses
	// without the development flag.
	args = append(args, "--database-url", dsn, "--log-level", "warn", "--dev-allow-unsafe-durability")
	err = run(context.Background(), args, &out, &errOut, getenv)
	return out.String(), errOut.String(), err
}

func TestMerchantCreateAndKey(t *testing.T) {
	dsn := testdb.DSN(t)
	stdout, stderr, err := runMerchantCLI(t, dsn, "merchant", "create", "--name", "McDonald's",
		"--time-zone", "Asia/Shanghai", "--currency", "CNY", "--email", "Staff@Example.com", "--password", "correct horse battery")
	if err != nil {
		t.Fatalf("merchant create: %v\n%s", err, stderr)
	}
	merchantID := regexp.MustCompile(`(?m)^merchant: (mer_\S+)$`).FindStringSubmatch(stdout)
	secret := regexp.MustCompile(`(?m)^api key: key_\S+ (sk_\S+)$`).FindStringSubmatch(stdout)
	if merchantID == nil || secret == nil || !strings.Contains(stdout, "staff user: usr_") {
		t.Fatalf("unexpected output:\n%s", stdout)
	}

	db, err := database.Open(context.Background(), dsn, database.PoolOptions{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := catalog.NewService(db, time.Now)
	ctx := context.Background()
	m, key, err := svc.AuthenticateKey(ctx, secret[1])
	if err != nil || m.ID != merchantID[1] || m.Name != "McDonald's" || m.TimeZone != "Asia/Shanghai" || key.Name != "default" {
		t.Fatalf("the printed key does not authenticate the merchant: %+v %+v %v", m, key, err)
	}
	if staff, err := svc.Authenticate(ctx, "staff@example.com", "correct horse battery"); err != nil || staff.MerchantID != m.ID {
		t.Fatalf("staff sign-in: %+v %v", staff, err)
	}
	var hash string
	if err := db.Get(&hash, `SELECT password_hash FROM staff_users`); err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost < 12 {
		t.Fatalf("password hashed with bcrypt cost %d (%v), want at least 12", cost, err)
	}

	stdout, stderr, err = runMerchantCLI(t, dsn, "merchant", "key", "--merchant", m.ID, "--name", "pos")
	if err != nil {
		t.Fatalf("merchant key: %v\n%s", err, stderr)
	}
	posKey := regexp.MustCompile(`(?m)^api key: (key_\S+) (sk_\S+)$`).FindStringSubmatch(stdout)
	if posKey == nil {
		t.Fatalf("unexpected output:\n%s", stdout)
	}
	if _, key, err := svc.AuthenticateKey(ctx, posKey[2]); err != nil || key.Name != "pos" {
		t.Fatalf("pos key: %+v %v", key, err)
	}

	if _, stderr, err := runMerchantCLI(t, dsn, "merchant", "revoke-key", "--merchant", m.ID, "--key", posKey[1]); err != nil {
		t.Fatalf("revoke-key: %v\n%s", err, stderr)
	}
	if _, _, err := svc.AuthenticateKey(ctx, posKey[2]); !errors.Is(err, catalog.ErrUnauthorized) {
		t.Fatalf("revoked key still works: %v", err)
	}
}

func TestMerchantCreateInvalid(t *testing.T) {
	dsn := testdb.DSN(t)
	_, _, err := runMerchantCLI(t, dsn, "merchant", "create", "--name", "X", "--time-zone", "Mars/Olympus", "--currency", "CNY")
	if err == nil || !strings.Contains(err.Error(), "time_zone") {
		t.Fatalf("unknown zone: %v", err)
	}
	if _, _, err := runMerchantCLI(t, dsn, "merchant", "create", "--name", "X"); !errors.Is(err, errUsage) {
		t.Fatalf("missing flags: %v", err)
	}
	if _, _, err := runMerchantCLI(t, dsn, "merchant", "key", "--merchant", "mer_nosuch", "--name", "pos"); err == nil {
		t.Fatal("key for an unknown merchant")
	}
	if _, _, err := runMerchantCLI(t, dsn, "merchant", "frobnicate"); !errors.Is(err, errUsage) {
		t.Fatalf("unknown subcommand: %v", err)
	}
	var merchants int
	db, err := database.Open(context.Background(), dsn, database.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Get(&merchants, `SELECT count(*) FROM merchants`); err != nil || merchants != 0 {
		t.Fatalf("%d merchants stored (%v)", merchants, err)
	}
}
