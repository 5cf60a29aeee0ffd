package ledger

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// Ledger records transactions and answers balances. It holds no state but
// its clock and settings: every method runs on the database handle it is
// given, which is the caller's transaction when the caller changes business
// rows in the same breath.
type Ledger struct {
	now func() time.Time
	// stmts runs the post and the balance read prepared (nil: unprepared).
	stmts *database.Stmts
	// buckets is how many balance rows a new account without no_negative
	// gets. Only the benchmark changes it, to measure the one-row design.
	buckets int
}

// New returns a Ledger with an injected clock; every row a call writes
// carries one reading of it.
func New(now func() time.Time) *Ledger {
	return &Ledger{now: now, buckets: BucketsDefault}
}

// Prepared returns l running its hot statements (Post, Balance) prepared
// on db's connections: unprepared, lib/pq sends each as parse, bind and
// execute and PostgreSQL plans it every time. Calls on handles of another
// pool still run, unprepared.
func (l *Ledger) Prepared(db *sqlx.DB) *Ledger {
	prepared := *l
	prepared.stmts = database.NewStmts(db)
	return &prepared
}

// account is the stored form of an account.
type account struct {
	ID         int64     `db:"id"`
	Kind       string    `db:"kind"`
	Owner      string    `db:"owner"`
	Currency   string    `db:"currency"`
	NoNegative bool      `db:"no_negative"`
	CreatedAt  time.Time `db:"created_at"`
}

func (a account) public() Account {
	return Account{
		ID:         a.ID,
		Ref:        AccountRef{Kind: Kind(a.Kind), Owner: a.Owner},
		Currency:   money.MustCurrency(a.Currency),
		NoNegative: a.NoNegative,
		CreatedAt:  a.CreatedAt,
	}
}

const insertAccountSQL = `
INSERT INTO ledger_accounts (code, currency, kind, owner, no_negative, buckets, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (code, currency) DO NOTHING
RETURNING id`

// The balance rows are written with the account, so that posting never has
// to create one and every account always has exactly its buckets.
const insertBucketsSQL = `
INSERT INTO ledger_balances (account_id, bucket, no_negative, balance)
SELECT $1, bucket, $2, 0 FROM generate_series(0, $3 - 1) AS bucket`

const selectAccountSQL = `
SELECT id, kind, owner, currency, no_negative, created_at
FROM ledger_accounts WHERE code = $1 AND currency = $2`

// EnsureAccount returns the account ref in currency, creating it (with its
// balance rows) if it does not exist yet. Concurrent callers creating the
// same account all get the one row: the insert does nothing on conflict
// (waiting for a concurrent creator to commit) and the row is read after.
//
// Errors: CodeInvalidAccount for a malformed ref or a zero currency.
func (l *Ledger) EnsureAccount(ctx context.Context, q sqlx.ExtContext, ref AccountRef, currency money.Currency) (Account, error) {
	if err := ref.validate(); err != nil {
		return Account{}, err
	}
	if currency.IsZero() {
		return Account{}, problem.New(problem.KindInvalid, CodeInvalidAccount, "account %s needs a currency", ref.Code())
	}
	buckets := l.buckets
	if ref.NoNegative() {
		// The overdraft check must see the whole balance in one locked row.
		buckets = 1
	}
	var id int64
	err := sqlx.GetContext(ctx, q, &id, insertAccountSQL,
		ref.Code(), currency.Code(), string(ref.Kind), ref.Owner, ref.NoNegative(), buckets, l.now())
	switch {
	case err == nil:
		if _, err := q.ExecContext(ctx, insertBucketsSQL, id, ref.NoNegative(), buckets); err != nil {
			return Account{}, fmt.Errorf("create balance rows of %s: %w", ref.Code(), err)
		}
	case errors.Is(err, sql.ErrNoRows):
		// Someone else created it; read it below.
	default:
		return Account{}, fmt.Errorf("create account %s %s: %w", ref.Code(), currency.Code(), err)
	}
	var a account
	if err := sqlx.GetContext(ctx, q, &a, selectAccountSQL, ref.Code(), currency.Code()); err != nil {
		return Account{}, fmt.Errorf("read account %s %s: %w", ref.Code(), currency.Code(), err)
	}
	return a.public(), nil
}

// Account returns an existing account.
//
// Errors: CodeInvalidAccount for a malformed ref; problem "not_found" when
// the account has never been created.
func (l *Ledger) Account(ctx context.Context, q sqlx.QueryerContext, ref AccountRef, currency money.Currency) (Account, error) {
	if err := ref.validate(); err != nil {
		return Account{}, err
	}
	var a account
	err := sqlx.GetContext(ctx, q, &a, selectAccountSQL, ref.Code(), currency.Code())
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, problem.NotFound("ledger account " + ref.Code() + " " + currency.Code())
	}
	if err != nil {
		return Account{}, fmt.Errorf("read account %s %s: %w", ref.Code(), currency.Code(), err)
	}
	return a.public(), nil
}

// Post records t inside the caller's database transaction q (a *sqlx.Tx,
// or a *sqlx.DB for a post that stands alone).
//
// The same key with the same content returns the original transaction
// with Replayed set; accounts are created on first use.
//
// Errors (all *problem.Error): CodeInvalidTransaction, CodeInvalidAccount,
// CodeUnbalanced (KindInvalid); CodeInsufficientFunds
// (KindRefused, naming the account) when a no_negative account would drop
// below zero; CodeIdempotencyConflict (KindConflict) when the key was used
// for other content. These refusals are found before anything is written,
// so the caller's transaction stays usable. Any other error is a database
// error after which the caller must roll back; serialization failures and
// deadlocks are among them and database.WithTx retries them.
func (l *Ledger) Post(ctx context.Context, q sqlx.ExtContext, t Transaction) (Posted, error) {
	return l.post(ctx, q, t, 0)
}

// postSQL calls the function of migration 00011, which looks the key up,
// locks the balance rows in account id order, checks no_negative accounts
// and writes the transaction, its postings and the balances in one round
// trip (docs/ledger.md explains why it is a function).
const postSQL = `
SELECT o_outcome, o_transaction_id, o_account_code, o_account_currency, o_balance
FROM ledger_post($1, $2, $3, $4, $5, $6, $7, $8)`

// post records t, which reverses reversesID when that is not 0.
func (l *Ledger) post(ctx context.Context, q sqlx.ExtContext, t Transaction, reversesID int64) (Posted, error) {
	p, err := l.preparePost(t, reversesID)
	if err != nil {
		return Posted{}, err
	}
	// Accounts are created on first use: a second round runs only after
	// the first found some missing and they were created.
	for round := 1; round <= 2; round++ {
		var out PostOutcome
		if err := l.stmts.Get(ctx, q, &out, postSQL, p.args...); err != nil {
			return Posted{}, fmt.Errorf("post %s: %w", t.Key, err)
		}
		if out.Outcome == "missing_accounts" && round == 1 {
			if err := l.EnsureAccounts(ctx, q, t); err != nil {
				return Posted{}, err
			}
			continue
		}
		if out.Outcome == "replayed" {
			posted, err := l.Transaction(ctx, q, out.TransactionID.Int64)
			posted.Replayed = true
			return posted, err
		}
		return p.Result(out)
	}
	panic("unreachable")
}

// PreparedPost is a transaction ready for ledger_post, for a caller whose
// own database function posts it in the same round trip as its other
// writes (payments' purchase_pay): Args are the function's arguments and
// Result reads its answer.
type PreparedPost struct {
	t          Transaction
	reversesID int64
	now        time.Time
	args       []any
}

// PreparePost validates t and encodes it for ledger_post.
func (l *Ledger) PreparePost(t Transaction) (PreparedPost, error) {
	return l.preparePost(t, 0)
}

func (l *Ledger) preparePost(t Transaction, reversesID int64) (PreparedPost, error) {
	if err := t.validate(); err != nil {
		return PreparedPost{}, err
	}
	codes := make([]string, len(t.Postings))
	currencies := make([]string, len(t.Postings))
	amounts := make([]int64, len(t.Postings))
	for i, p := range t.Postings {
		codes[i], currencies[i], amounts[i] = p.Account.Code(), p.Currency.Code(), p.Amount
	}
	now := l.now()
	return PreparedPost{t: t, reversesID: reversesID, now: now, args: []any{
		t.Key, contentHash(t, reversesID), t.Description, sql.NullInt64{Int64: reversesID, Valid: reversesID != 0}, now,
		pq.Array(codes), pq.Array(currencies), pq.Array(amounts)}}, nil
}

// Args are ledger_post's eight arguments, in order.
func (p PreparedPost) Args() []any { return p.args }

// Transaction is the transaction to post.
func (p PreparedPost) Transaction() Transaction { return p.t }

// PostOutcome is the row ledger_post answers.
type PostOutcome struct {
	Outcome         string         `db:"o_outcome"`
	TransactionID   sql.NullInt64  `db:"o_transaction_id"`
	AccountCode     sql.NullString `db:"o_account_code"`
	AccountCurrency sql.NullString `db:"o_account_currency"`
	Balance         sql.NullInt64  `db:"o_balance"`
}

// Result is what Post returns for ledger_post's answer out: the transaction
// when it was posted, or the refusal (insufficient funds, a key used for
// other content). A replay or missing accounts are for the caller to handle
// before (Post reads the original, or creates the accounts and posts again);
// here they are errors.
func (p PreparedPost) Result(out PostOutcome) (Posted, error) {
	t := p.t
	switch out.Outcome {
	case "posted":
		posted := Posted{
			ID: out.TransactionID.Int64, Key: t.Key, Description: t.Description, ReversesID: p.reversesID,
			Postings: slices.Clone(t.Postings), CreatedAt: p.now,
		}
		for _, q := range t.Postings {
			if out.Balance.Valid && q.Account.Code() == out.AccountCode.String && q.Currency.Code() == out.AccountCurrency.String {
				posted.After = &BalanceAfter{Account: q.Account, Currency: q.Currency, Balance: out.Balance.Int64}
				break
			}
		}
		return posted, nil
	case "conflict":
		return Posted{}, idempotencyConflict(t.Key)
	case "insufficient_funds":
		for _, q := range t.Postings {
			if q.Account.Code() == out.AccountCode.String && q.Currency.Code() == out.AccountCurrency.String {
				var change int64
				for _, o := range t.Postings {
					if o.Account == q.Account && o.Currency == q.Currency {
						change += o.Amount
					}
				}
				return Posted{}, insufficientFunds(q.Account, q.Currency, out.Balance.Int64, change)
			}
		}
		return Posted{}, fmt.Errorf("post %s: insufficient funds in unknown account %s", t.Key, out.AccountCode.String)
	}
	return Posted{}, fmt.Errorf("post %s: unexpected outcome %q", t.Key, out.Outcome)
}

// EnsureAccounts creates the accounts t posts to that do not exist yet.
func (l *Ledger) EnsureAccounts(ctx context.Context, q sqlx.ExtContext, t Transaction) error {
	for _, p := range t.Postings {
		if _, err := l.EnsureAccount(ctx, q, p.Account, p.Currency); err != nil {
			return err
		}
	}
	return nil
}

// storedTransaction is a row of ledger_transactions.
type storedTransaction struct {
	ID          int64         `db:"id"`
	Key         string        `db:"idempotency_key"`
	Hash        []byte        `db:"request_hash"`
	Description string        `db:"description"`
	ReversesID  sql.NullInt64 `db:"reverses_id"`
	CreatedAt   time.Time     `db:"created_at"`
}

const selectPostingsSQL = `
SELECT a.kind, a.owner, p.currency, p.amount
FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
WHERE p.transaction_id = $1
ORDER BY p.id`

// load reads the postings of a stored transaction.
func (l *Ledger) load(ctx context.Context, q sqlx.QueryerContext, st storedTransaction) (Posted, error) {
	var rows []struct {
		Kind     string `db:"kind"`
		Owner    string `db:"owner"`
		Currency string `db:"currency"`
		Amount   int64  `db:"amount"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, selectPostingsSQL, st.ID); err != nil {
		return Posted{}, fmt.Errorf("read postings of transaction %d: %w", st.ID, err)
	}
	posted := Posted{
		ID: st.ID, Key: st.Key, Description: st.Description, ReversesID: st.ReversesID.Int64,
		CreatedAt: st.CreatedAt, Postings: make([]Posting, len(rows)),
	}
	for i, r := range rows {
		posted.Postings[i] = Posting{
			Account:  AccountRef{Kind: Kind(r.Kind), Owner: r.Owner},
			Currency: money.MustCurrency(r.Currency),
			Amount:   r.Amount,
		}
	}
	return posted, nil
}

const selectTransactionSQL = `
SELECT id, idempotency_key, request_hash, description, reverses_id, created_at
FROM ledger_transactions WHERE id = $1`

// Transaction returns a recorded transaction with its postings.
//
// Errors: problem "not_found" when there is no transaction id.
func (l *Ledger) Transaction(ctx context.Context, q sqlx.QueryerContext, id int64) (Posted, error) {
	var st storedTransaction
	err := sqlx.GetContext(ctx, q, &st, selectTransactionSQL, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Posted{}, problem.NotFound("ledger transaction")
	}
	if err != nil {
		return Posted{}, fmt.Errorf("read transaction %d: %w", id, err)
	}
	return l.load(ctx, q, st)
}

// contentHash identifies what a transaction does, independent of the order
// of its postings, so that a retry is recognised as the same request.
func contentHash(t Transaction, reversesID int64) []byte {
	postings := slices.Clone(t.Postings)
	slices.SortFunc(postings, func(a, b Posting) int {
		return cmp.Or(cmp.Compare(a.Account.Code(), b.Account.Code()),
			cmp.Compare(a.Currency.Code(), b.Currency.Code()), cmp.Compare(a.Amount, b.Amount))
	})
	h := sha256.New()
	field := func(b []byte) {
		// Length prefixes keep field boundaries unambiguous.
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
		h.Write(b)
	}
	field([]byte("ledger.v1"))
	field([]byte(t.Description))
	field(binary.BigEndian.AppendUint64(nil, uint64(reversesID)))
	for _, p := range postings {
		field([]byte(p.Account.Code()))
		field([]byte(p.Currency.Code()))
		field(binary.BigEndian.AppendUint64(nil, uint64(p.Amount)))
	}
	return h.Sum(nil)
}

const lockTransactionSQL = `
SELECT id, idempotency_key, request_hash, description, reverses_id, created_at
FROM ledger_transactions WHERE id = $1
FOR UPDATE`

const selectReversalSQL = `
SELECT id, idempotency_key, request_hash, description, reverses_id, created_at
FROM ledger_transactions WHERE reverses_id = $1`

// Reverse records a transaction that undoes transactionID: the same
// postings with opposite signs, linked to the original. A transaction is
// reversed at most once; a reversal may itself be reversed. Reversing with
// the key of the existing reversal replays it.
//
// Errors: problem "not_found" when there is no such transaction;
// CodeAlreadyReversed (KindConflict) when another key reversed it already;
// CodeInsufficientFunds when undoing it would overdraw a wallet (a spent
// top-up); CodeIdempotencyConflict when key was used for something else;
// CodeInvalidTransaction for a malformed key. Other errors as for Post.
func (l *Ledger) Reverse(ctx context.Context, q sqlx.ExtContext, transactionID int64, key string) (Posted, error) {
	if len(key) == 0 || len(key) > KeyLengthMax {
		return Posted{}, invalid("idempotency key must be 1 to %d bytes", KeyLengthMax)
	}
	// Locking the original makes concurrent reversals of it take turns, so
	// the second sees the first instead of failing on the unique constraint
	// (which would abort the caller's transaction).
	var original storedTransaction
	err := sqlx.GetContext(ctx, q, &original, lockTransactionSQL, transactionID)
	if errors.Is(err, sql.ErrNoRows) {
		return Posted{}, problem.NotFound("ledger transaction")
	}
	if err != nil {
		return Posted{}, fmt.Errorf("lock transaction %d: %w", transactionID, err)
	}
	var reversal storedTransaction
	err = sqlx.GetContext(ctx, q, &reversal, selectReversalSQL, transactionID)
	switch {
	case err == nil && reversal.Key == key:
		posted, err := l.load(ctx, q, reversal)
		posted.Replayed = true
		return posted, err
	case err == nil:
		return Posted{}, alreadyReversed(transactionID, reversal.ID)
	case !errors.Is(err, sql.ErrNoRows):
		return Posted{}, fmt.Errorf("look up reversal of %d: %w", transactionID, err)
	}
	posted, err := l.load(ctx, q, original)
	if err != nil {
		return Posted{}, err
	}
	undo := Transaction{
		Key:         key,
		Description: reversalDescription(transactionID),
		Postings:    make([]Posting, len(posted.Postings)),
	}
	for i, p := range posted.Postings {
		undo.Postings[i] = Posting{Account: p.Account, Currency: p.Currency, Amount: -p.Amount}
	}
	return l.post(ctx, q, undo, transactionID)
}

func reversalDescription(id int64) string { return fmt.Sprintf("reversal of transaction %d", id) }
