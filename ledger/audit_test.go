package ledger

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
)

// corrupt changes ledger rows behind the ledger's back, as a bug or a
// hand-edit would, with the immutability triggers switched off for the
// one session.
func corrupt(t *testing.T, db *sqlx.DB, statements ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	for _, s := range statements {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `RESET session_replication_role`); err != nil {
		t.Fatal(err)
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	top := mustPost(t, l, db, topUp("t1", "s1", 500))
	mustPost(t, l, db, sale("sale1", "s1", "m1", 200))
	small := mustPost(t, l, db, topUp("t2", "s2", 70))
	rev, err := l.Reverse(ctx, db, small.ID, "rev")
	if err != nil {
		t.Fatal(err)
	}
	auditClean(t, db)

	corrupt(t, db,
		// A posting whose amount changed: its transaction no longer balances
		// and its account's balance no longer matches its postings.
		`UPDATE ledger_postings SET amount = amount + 1 WHERE id = (SELECT min(id) FROM ledger_postings WHERE transaction_id = `+itoa(top.ID)+`)`,
		// A balance row changed by hand.
		`UPDATE ledger_balances SET balance = balance + 7 WHERE account_id = (SELECT id FROM ledger_accounts WHERE code = 'merchant:m1:deferred') AND bucket = 3`,
		// A wallet driven below zero, as if its CHECK had never existed.
		`ALTER TABLE ledger_balances DROP CONSTRAINT ledger_balances_no_negative`,
		`UPDATE ledger_balances SET balance = -5 WHERE account_id = (SELECT id FROM ledger_accounts WHERE code = 'shopper:s2:wallet')`,
		// A reversal that no longer cancels its original.
		`DELETE FROM ledger_postings WHERE id = (SELECT max(id) FROM ledger_postings WHERE transaction_id = `+itoa(rev.ID)+`)`,
	)
	report, err := Audit(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := report.Write(&text); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + text.String())
	if !errors.Is(report.Err(), ErrAuditFailed) {
		t.Fatalf("Err() = %v", report.Err())
	}
	failed := map[string]bool{}
	for _, c := range report.Results {
		if c.ViolationsTotal > 0 {
			failed[c.Name] = true
		}
	}
	for _, name := range []string{
		"ledger_transactions_balanced", "ledger_transactions_two_postings", "ledger_balances_match_postings",
		"ledger_no_negative_never_negative", "ledger_reversals_valid",
	} {
		if !failed[name] {
			t.Errorf("check %s found nothing", name)
		}
	}
	for _, want := range []string{"transaction " + itoa(top.ID), "account merchant:m1:deferred CNY", "account shopper:s2:wallet CNY"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report does not mention %q", want)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
