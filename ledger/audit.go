package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/money"
)

// The audit re-checks, after the fact and from the stored rows alone, every
// invariant the ledger enforces while writing. It is the second of the two
// places each invariant is checked: a bug that slipped past Post (or a row
// changed behind the ledger's back) shows up here. Other packages add
// their own checks (payments: "every paid order has its transaction") by
// passing them to RunAudit next to the ledger's Checks.

// AuditViolationsPerCheckMax bounds the violations a report lists per
// check; the count beyond it is still reported.
const AuditViolationsPerCheckMax = 100

// ErrAuditFailed is wrapped by AuditReport.Err when any check found a violation.
var ErrAuditFailed = errors.New("ledger audit found violations")

// Violation is one broken invariant.
type Violation struct {
	Subject string // what is wrong: "transaction 42", "account shopper:s1:wallet CNY"
	Detail  string // how it is wrong, one sentence
}

// Check is one audit check. Run reads through q, which is a read-only
// REPEATABLE READ transaction shared by all checks of an audit, so that
// every check sees the same consistent snapshot even while money moves.
// It returns how many objects it checked and up to limit violations, plus
// the total number of violations.
type Check struct {
	Name        string // stable, snake_case
	Description string // what holds when the check passes
	Run         func(ctx context.Context, q sqlx.QueryerContext, limit int) (checked int64, violations []Violation, violationsTotal int64, err error)
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	Name            string
	Description     string
	Checked         int64
	Violations      []Violation // at most AuditViolationsPerCheckMax
	ViolationsTotal int64
	Duration        time.Duration
}

// AuditReport is the outcome of an audit.
type AuditReport struct {
	Results []CheckResult
}

// OK reports whether no check found a violation.
func (r AuditReport) OK() bool { return r.ViolationsTotal() == 0 }

// ViolationsTotal counts the violations of all checks.
func (r AuditReport) ViolationsTotal() int64 {
	var total int64
	for _, c := range r.Results {
		total += c.ViolationsTotal
	}
	return total
}

// Err returns nil for a clean report, else an error wrapping ErrAuditFailed.
func (r AuditReport) Err() error {
	if r.OK() {
		return nil
	}
	failed := 0
	for _, c := range r.Results {
		if c.ViolationsTotal > 0 {
			failed++
		}
	}
	return fmt.Errorf("%w: %d violations in %d of %d checks", ErrAuditFailed, r.ViolationsTotal(), failed, len(r.Results))
}

// Write prints the report, one line per check and one per listed violation.
func (r AuditReport) Write(w io.Writer) error {
	for _, c := range r.Results {
		status := "ok  "
		if c.ViolationsTotal > 0 {
			status = "FAIL"
		}
		if _, err := fmt.Fprintf(w, "%s %-34s checked %d, violations %d (%s)\n",
			status, c.Name, c.Checked, c.ViolationsTotal, c.Duration.Round(time.Millisecond)); err != nil {
			return err
		}
		for _, v := range c.Violations {
			if _, err := fmt.Fprintf(w, "     - %s: %s\n", v.Subject, v.Detail); err != nil {
				return err
			}
		}
		if hidden := c.ViolationsTotal - int64(len(c.Violations)); hidden > 0 {
			if _, err := fmt.Fprintf(w, "     … and %d more\n", hidden); err != nil {
				return err
			}
		}
	}
	verdict := "ledger audit: all checks passed"
	if !r.OK() {
		verdict = fmt.Sprintf("ledger audit: %d violations", r.ViolationsTotal())
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// Audit runs the ledger's own checks on one consistent snapshot of db.
//
// Errors: only database errors; violations are in the report (see Err).
func Audit(ctx context.Context, db *sqlx.DB) (AuditReport, error) {
	return RunAudit(ctx, db, Checks()...)
}

// RunAudit runs checks, in order, in one read-only REPEATABLE READ
// transaction so that they all see the same snapshot.
//
// Errors: only database errors; violations are in the report (see Err).
func RunAudit(ctx context.Context, db *sqlx.DB, checks ...Check) (AuditReport, error) {
	tx, err := db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return AuditReport{}, fmt.Errorf("begin audit: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	var report AuditReport
	for _, c := range checks {
		started := time.Now()
		checked, violations, total, err := c.Run(ctx, tx, AuditViolationsPerCheckMax)
		if err != nil {
			return AuditReport{}, fmt.Errorf("audit check %s: %w", c.Name, err)
		}
		report.Results = append(report.Results, CheckResult{
			Name: c.Name, Description: c.Description, Checked: checked,
			Violations: violations, ViolationsTotal: total, Duration: time.Since(started),
		})
	}
	if err := tx.Commit(); err != nil {
		return AuditReport{}, fmt.Errorf("end audit: %w", err)
	}
	return report, nil
}

// SQLCheck builds a check from two queries: countSQL returns how many
// objects were checked; violationsSQL returns (subject, detail) rows, one
// per violation, and counts them in a third column "total" (use
// count(*) OVER ()), with $1 as the LIMIT. Packages adding checks can use it.
func SQLCheck(name, description, countSQL, violationsSQL string) Check {
	return Check{
		Name: name, Description: description,
		Run: func(ctx context.Context, q sqlx.QueryerContext, limit int) (int64, []Violation, int64, error) {
			var checked int64
			if err := sqlx.GetContext(ctx, q, &checked, countSQL); err != nil {
				return 0, nil, 0, fmt.Errorf("count: %w", err)
			}
			var rows []struct {
				Subject string `db:"subject"`
				Detail  string `db:"detail"`
				Total   int64  `db:"total"`
			}
			if err := sqlx.SelectContext(ctx, q, &rows, violationsSQL, limit); err != nil {
				return 0, nil, 0, fmt.Errorf("violations: %w", err)
			}
			var total int64
			violations := make([]Violation, len(rows))
			for i, r := range rows {
				violations[i] = Violation{Subject: r.Subject, Detail: r.Detail}
				total = r.Total
			}
			return checked, violations, total, nil
		},
	}
}

const countTransactionsSQL = `SELECT count(*) FROM ledger_transactions`
const countAccountsSQL = `SELECT count(*) FROM ledger_accounts`
const countNoNegativeAccountsSQL = `SELECT count(*) FROM ledger_accounts WHERE no_negative`
const countReversalsSQL = `SELECT count(*) FROM ledger_transactions WHERE reverses_id IS NOT NULL`
const countPostingsSQL = `SELECT count(*) FROM ledger_postings`

const unbalancedTransactionsSQL = `
SELECT 'transaction ' || transaction_id AS subject,
       'postings in ' || currency || ' sum to ' || sum(amount) || ', not 0' AS detail,
       count(*) OVER () AS total
FROM ledger_postings
GROUP BY transaction_id, currency
HAVING sum(amount) <> 0
ORDER BY transaction_id, currency
LIMIT $1`

const thinTransactionsSQL = `
SELECT 'transaction ' || t.id AS subject,
       'has ' || count(p.id) || ' postings; at least 2 are required' AS detail,
       count(*) OVER () AS total
FROM ledger_transactions t LEFT JOIN ledger_postings p ON p.transaction_id = t.id
GROUP BY t.id
HAVING count(p.id) < 2
ORDER BY t.id
LIMIT $1`

// postingMismatchSQL's {minor_max} is money.MinorMax (see Checks): the
// audit's range is the one the ledger enforces when writing.
const postingMismatchSQL = `
SELECT 'posting ' || p.id AS subject,
       CASE WHEN a.id IS NULL THEN 'names account ' || p.account_id || ', which does not exist'
            WHEN p.amount = 0 THEN 'has amount 0'
            WHEN abs(p.amount) > {minor_max} THEN 'amount ' || p.amount || ' is out of range'
            ELSE 'is in ' || p.currency || ' but account ' || a.code || ' is in ' || a.currency END AS detail,
       count(*) OVER () AS total
FROM ledger_postings p LEFT JOIN ledger_accounts a ON a.id = p.account_id
WHERE a.id IS NULL OR a.currency <> p.currency OR p.amount = 0 OR abs(p.amount) > {minor_max}
ORDER BY p.id
LIMIT $1`

const balanceMismatchSQL = `
WITH b AS (SELECT account_id, sum(balance) AS total, count(*) AS rows FROM ledger_balances GROUP BY account_id),
     p AS (SELECT account_id, sum(amount) AS total FROM ledger_postings GROUP BY account_id)
SELECT 'account ' || a.code || ' ' || a.currency AS subject,
       'balance rows (' || coalesce(b.rows, 0) || ' of ' || a.buckets || ') sum to ' || coalesce(b.total, 0) ||
       ' but its postings sum to ' || coalesce(p.total, 0) AS detail,
       count(*) OVER () AS total
FROM ledger_accounts a
LEFT JOIN b ON b.account_id = a.id
LEFT JOIN p ON p.account_id = a.id
WHERE coalesce(b.total, 0) <> coalesce(p.total, 0) OR coalesce(b.rows, 0) <> a.buckets
ORDER BY a.id
LIMIT $1`

// negativeAccountsSQL looks at the balance rows and at the history: for a
// no_negative account, transactions take its one row lock in turn and
// number their postings while holding it, so the running sum of its
// transactions, ordered by posting id, is the balance it really had.
// (Within one transaction the account may dip and recover; only the net
// change of each transaction counts.)
const negativeAccountsSQL = `
WITH changes AS (
    SELECT account_id, min(id) AS first_id, sum(amount) AS change
    FROM ledger_postings
    WHERE account_id IN (SELECT id FROM ledger_accounts WHERE no_negative)
    GROUP BY account_id, transaction_id
), history AS (
    SELECT account_id, min(running) AS lowest
    FROM (SELECT account_id, sum(change) OVER (PARTITION BY account_id ORDER BY first_id) AS running FROM changes) r
    GROUP BY account_id
), current AS (
    SELECT account_id, sum(balance) AS balance FROM ledger_balances WHERE no_negative GROUP BY account_id
)
SELECT 'account ' || a.code || ' ' || a.currency AS subject,
       'no_negative account has balance ' || coalesce(current.balance, 0) ||
       ' and its lowest balance ever was ' || coalesce(history.lowest, 0) AS detail,
       count(*) OVER () AS total
FROM ledger_accounts a
LEFT JOIN history ON history.account_id = a.id
LEFT JOIN current ON current.account_id = a.id
WHERE a.no_negative AND (coalesce(current.balance, 0) < 0 OR coalesce(history.lowest, 0) < 0)
ORDER BY a.id
LIMIT $1`

// badReversalsSQL finds reversals of nothing and reversals whose postings
// do not exactly cancel the original's, account by account.
const badReversalsSQL = `
WITH r AS (
    SELECT id, reverses_id FROM ledger_transactions WHERE reverses_id IS NOT NULL
), legs AS (
    SELECT r.id AS reversal_id, p.account_id, p.currency, p.amount
    FROM r JOIN ledger_postings p ON p.transaction_id = r.id
    UNION ALL
    SELECT r.id, p.account_id, p.currency, p.amount
    FROM r JOIN ledger_postings p ON p.transaction_id = r.reverses_id
), uncancelled AS (
    SELECT DISTINCT reversal_id FROM legs
    GROUP BY reversal_id, account_id, currency HAVING sum(amount) <> 0
)
SELECT 'transaction ' || r.id AS subject,
       CASE WHEN o.id IS NULL THEN 'reverses transaction ' || r.reverses_id || ', which does not exist'
            ELSE 'does not exactly cancel transaction ' || r.reverses_id END AS detail,
       count(*) OVER () AS total
FROM r
LEFT JOIN ledger_transactions o ON o.id = r.reverses_id
WHERE o.id IS NULL OR r.id IN (SELECT reversal_id FROM uncancelled)
ORDER BY r.id
LIMIT $1`

// Checks returns the ledger's own audit checks.
func Checks() []Check {
	return []Check{
		SQLCheck("ledger_transactions_balanced",
			"every transaction's postings sum to zero in each currency",
			countTransactionsSQL, unbalancedTransactionsSQL),
		SQLCheck("ledger_transactions_two_postings",
			"every transaction has at least two postings",
			countTransactionsSQL, thinTransactionsSQL),
		SQLCheck("ledger_postings_valid",
			"every posting has a non-zero amount in range, in its account's currency",
			countPostingsSQL, strings.ReplaceAll(postingMismatchSQL, "{minor_max}", strconv.FormatInt(money.MinorMax, 10))),
		SQLCheck("ledger_balances_match_postings",
			"every account's balance rows sum to the sum of its postings",
			countAccountsSQL, balanceMismatchSQL),
		SQLCheck("ledger_no_negative_never_negative",
			"no no_negative account is or ever was below zero",
			countNoNegativeAccountsSQL, negativeAccountsSQL),
		SQLCheck("ledger_reversals_valid",
			"every reversal points at a real transaction and cancels it exactly",
			countReversalsSQL, badReversalsSQL),
	}
}
