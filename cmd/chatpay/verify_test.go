package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/ledger"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testdb.DSN(t)
	db, err := database.Open(ctx, dsn, database.PoolOptions{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cny := money.MustCurrency("CNY")
	l := ledger.New(time.Now)
	if _, err := l.Post(ctx, db, ledger.Transaction{Key: "top-up", Postings: []ledger.Posting{
		ledger.Debit(ledger.ProviderClearing("alipay"), cny, 500), ledger.Credit(ledger.ShopperWallet("s1"), cny, 500),
	}}); err != nil {
		t.Fatal(err)
	}
	verify := func() (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, []string{"verify", "--database-url", dsn}, &stdout, &stderr, func(string) string { return "" })
		return stdout.String(), err
	}

	t.Run("OK", func(t *testing.T) {
		out, err := verify()
		if err != nil || !strings.Contains(out, "all checks passed") {
			t.Fatalf("verify = %v\n%s", err, out)
		}
	})
	t.Run("ErrViolations", func(t *testing.T) {
		conn, err := db.Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, stmt := range []string{
			`SET session_replication_role = replica`, // switches the immutability triggers off
			`UPDATE ledger_postings SET amount = amount - 1 WHERE amount > 0`,
			`RESET session_replication_role`,
		} {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		out, err := verify()
		if !errors.Is(err, ledger.ErrAuditFailed) {
			t.Fatalf("verify = %v, want ErrAuditFailed\n%s", err, out)
		}
		for _, want := range []string{"FAIL ledger_transactions_balanced", "FAIL ledger_balances_match_postings", "shopper:s1:wallet"} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q:\n%s", want, out)
			}
		}
	})
}
