package ledger

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// balanceSQL sums the account's bucket rows; LEFT JOIN keeps a missing
// account distinguishable from a zero balance without a second query.
const balanceSQL = `
SELECT a.id, coalesce(sum(b.balance), 0) AS balance
FROM ledger_accounts a LEFT JOIN ledger_balances b ON b.account_id = a.id
WHERE a.code = $1 AND a.currency = $2
GROUP BY a.id`

// Balance returns the current balance of ref in currency, in minor units.
// An account that was never posted to has balance 0.
//
// Errors: CodeInvalidAccount for a malformed ref.
func (l *Ledger) Balance(ctx context.Context, q sqlx.QueryerContext, ref AccountRef, currency money.Currency) (int64, error) {
	if err := ref.validate(); err != nil {
		return 0, err
	}
	var row struct {
		ID      int64 `db:"id"`
		Balance int64 `db:"balance"`
	}
	var err error
	if ext, ok := q.(sqlx.ExtContext); ok {
		err = l.stmts.Get(ctx, ext, &row, balanceSQL, ref.Code(), currency.Code())
	} else {
		err = sqlx.GetContext(ctx, q, &row, balanceSQL, ref.Code(), currency.Code())
	}
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("balance of %s %s: %w", ref.Code(), currency.Code(), err)
	}
	return row.Balance, nil
}

const balanceAtSQL = `
SELECT coalesce(sum(p.amount), 0)
FROM ledger_accounts a JOIN ledger_postings p ON p.account_id = a.id
WHERE a.code = $1 AND a.currency = $2 AND p.created_at <= $3`

// BalanceAt returns the balance of ref in currency as of at: the sum of the
// postings the ledger recorded at or before at (by the ledger's clock).
//
// Errors: CodeInvalidAccount for a malformed ref.
func (l *Ledger) BalanceAt(ctx context.Context, q sqlx.QueryerContext, ref AccountRef, currency money.Currency, at time.Time) (int64, error) {
	if err := ref.validate(); err != nil {
		return 0, err
	}
	var balance int64
	if err := sqlx.GetContext(ctx, q, &balance, balanceAtSQL, ref.Code(), currency.Code(), at); err != nil {
		return 0, fmt.Errorf("balance of %s %s at %s: %w", ref.Code(), currency.Code(), at, err)
	}
	return balance, nil
}

// StatementLine is one posting of an account with the balance after it.
type StatementLine struct {
	PostingID     int64
	TransactionID int64
	Description   string
	Amount        int64
	// BalanceAfter is the account's balance including this posting and
	// every earlier one (by posting id).
	BalanceAfter int64
	CreatedAt    time.Time
}

// StatementPage is one page of a statement, newest posting first.
type StatementPage struct {
	Lines []StatementLine
	// NextCursor fetches the next (older) page; empty on the last page.
	NextCursor string
}

const statementSQL = `
SELECT p.id, p.transaction_id, t.description, p.amount, p.created_at
FROM ledger_postings p JOIN ledger_transactions t ON t.id = p.transaction_id
WHERE p.account_id = $1 AND p.id < $2
ORDER BY p.id DESC
LIMIT $3`

// runningBalanceSQL is an index-only scan of ledger_postings_account.
const runningBalanceSQL = `
SELECT coalesce(sum(amount), 0) FROM ledger_postings WHERE account_id = $1 AND id <= $2`

// Statement returns a page of ref's postings in currency, newest first,
// with the running balance. cursor is "" for the first page or a
// NextCursor from an earlier page of the same account; pageSize 0 means
// StatementPageSizeDefault.
//
// Errors: CodeInvalidAccount for a malformed ref; problem "not_found" for
// an account that does not exist; CodeInvalidCursor for a cursor this
// account did not hand out; problem "validation_failed" for a page size
// outside 0..StatementPageSizeMax.
func (l *Ledger) Statement(ctx context.Context, q sqlx.QueryerContext, ref AccountRef, currency money.Currency, cursor string, pageSize int) (StatementPage, error) {
	if pageSize == 0 {
		pageSize = StatementPageSizeDefault
	}
	if pageSize < 0 || pageSize > StatementPageSizeMax {
		return StatementPage{}, problem.Field("page_size", "out_of_range", "page size must be 1 to %d", StatementPageSizeMax)
	}
	a, err := l.Account(ctx, q, ref, currency)
	if err != nil {
		return StatementPage{}, err
	}
	before := int64(1<<63 - 1)
	if cursor != "" {
		if before, err = decodeCursor(cursor, a.ID); err != nil {
			return StatementPage{}, err
		}
	}
	var rows []struct {
		ID            int64     `db:"id"`
		TransactionID int64     `db:"transaction_id"`
		Description   string    `db:"description"`
		Amount        int64     `db:"amount"`
		CreatedAt     time.Time `db:"created_at"`
	}
	// One row more than the page tells whether another page follows.
	if err := sqlx.SelectContext(ctx, q, &rows, statementSQL, a.ID, before, pageSize+1); err != nil {
		return StatementPage{}, fmt.Errorf("statement of %s: %w", ref.Code(), err)
	}
	var page StatementPage
	if len(rows) > pageSize {
		rows = rows[:pageSize]
		page.NextCursor = encodeCursor(a.ID, rows[len(rows)-1].ID)
	}
	if len(rows) == 0 {
		return page, nil
	}
	var balance int64
	if err := sqlx.GetContext(ctx, q, &balance, runningBalanceSQL, a.ID, rows[0].ID); err != nil {
		return StatementPage{}, fmt.Errorf("running balance of %s: %w", ref.Code(), err)
	}
	page.Lines = make([]StatementLine, len(rows))
	for i, r := range rows {
		page.Lines[i] = StatementLine{
			PostingID: r.ID, TransactionID: r.TransactionID, Description: r.Description,
			Amount: r.Amount, BalanceAfter: balance, CreatedAt: r.CreatedAt,
		}
		balance -= r.Amount
	}
	return page, nil
}

// cursorVersion lets the cursor format change without misreading old ones.
const cursorVersion = "s1"

// encodeCursor binds the position to the account so that a cursor of one
// account cannot page through another.
func encodeCursor(accountID, postingID int64) string {
	text := cursorVersion + ":" + strconv.FormatInt(accountID, 10) + ":" + strconv.FormatInt(postingID, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(text))
}

func decodeCursor(cursor string, accountID int64) (int64, error) {
	bad := problem.New(problem.KindInvalid, CodeInvalidCursor, "the cursor is not one this statement handed out")
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(cursor) > 64 {
		return 0, bad
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != cursorVersion || parts[1] != strconv.FormatInt(accountID, 10) {
		return 0, bad
	}
	postingID, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || postingID <= 0 {
		return 0, bad
	}
	return postingID, nil
}
