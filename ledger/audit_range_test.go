package ledger

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/chatpay/chatpay/internal/money"
)

// The audit's range for a posting is money.MinorMax, the one the ledger
// and the schema enforce when writing: one minor unit past it is reported.
func TestAuditPostingRangeIsMinorMax(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	top := mustPost(t, l, db, topUp("t1", "s1", 500))
	corrupt(t, db,
		`ALTER TABLE ledger_postings DROP CONSTRAINT ledger_postings_amount_check`,
		`UPDATE ledger_postings SET amount = `+strconv.FormatInt(money.MinorMax+1, 10)+
			` WHERE id = (SELECT max(id) FROM ledger_postings WHERE transaction_id = `+itoa(top.ID)+`)`,
	)
	report, err := Audit(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range report.Results {
		if c.Name != "ledger_postings_valid" {
			continue
		}
		if c.ViolationsTotal != 1 || len(c.Violations) != 1 || !strings.Contains(c.Violations[0].Detail, "out of range") {
			t.Fatalf("ledger_postings_valid: %+v", c)
		}
		return
	}
	t.Fatal("no ledger_postings_valid check in the report")
}
