// Package ledger is chatpay's book of record: a double-entry ledger in which
// every movement of money is a transaction of postings that sum to zero per
// currency. It owns the ledger_* tables and knows nothing about items, orders
// or chats; payments describes its flows (top-up, sale, redemption, refund,
// expiry) as transactions and posts them inside its own database
// transaction, so that a business change and its postings commit together.
//
// Postings are append-only: the database refuses to update or delete them,
// and a correction is a new reversal transaction that points at the one it
// undoes. Each transaction carries an idempotency key, so a retried post
// returns the first result instead of moving money twice.
//
// Balances are kept in balance rows updated with every posting. An account
// that is credited by every sale (a popular merchant) would serialise all
// sales behind one row lock, so such accounts spread their balance over
// several bucket rows; see docs/ledger.md for the design and its measurement.
package ledger

import (
	"regexp"
	"time"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// Limits of the ledger. Each bounds an input that could otherwise grow.
const (
	// PostingsMax bounds the postings of one transaction; chatpay's largest
	// flow (a sale with fee and net) needs three.
	PostingsMax = 64
	// KeyLengthMax bounds idempotency keys; callers prefix them with their
	// object ("order:ord_…:paid"), which fits easily.
	KeyLengthMax = 255
	// DescriptionLengthMax bounds the free-text description, in bytes.
	DescriptionLengthMax = 500
	// OwnerLengthMax bounds the owner part of an account code, in bytes.
	OwnerLengthMax = 64
	// StatementPageSizeMax bounds one page of an account statement.
	StatementPageSizeMax = 500
	// StatementPageSizeDefault is the page size when the caller asks for none.
	StatementPageSizeDefault = 50
	// BucketsDefault is how many balance rows an account without no_negative
	// spreads its balance over; docs/ledger.md explains the number.
	BucketsDefault = 32
)

// Stable error codes. Every error the package returns on purpose is a
// *problem.Error with one of these codes (or problem's "not_found").
const (
	// CodeInvalidTransaction: the transaction is malformed (too few or too
	// many postings, zero or out-of-range amount, bad key or description).
	CodeInvalidTransaction = "ledger_invalid_transaction"
	// CodeInvalidAccount: an account code or currency is malformed.
	CodeInvalidAccount = "ledger_invalid_account"
	// CodeUnbalanced: the postings do not sum to zero in some currency.
	CodeUnbalanced = "ledger_unbalanced"
	// CodeCurrencyMismatch: a posting's currency is not its account's. Post
	// cannot produce it today, because an account is keyed by code and
	// currency, so a posting always names the account in its own currency
	// (and a composite foreign key holds that in the schema). It is kept for
	// callers that compare an Account with an amount they were given.
	CodeCurrencyMismatch = "currency_mismatch"
	// CodeInsufficientFunds: a no_negative account would drop below zero.
	CodeInsufficientFunds = "insufficient_funds"
	// CodeIdempotencyConflict: the key was used before with other content.
	CodeIdempotencyConflict = "ledger_idempotency_conflict"
	// CodeAlreadyReversed: the transaction has been reversed already.
	CodeAlreadyReversed = "ledger_already_reversed"
	// CodeInvalidCursor: a statement cursor was not made by this package.
	CodeInvalidCursor = "ledger_invalid_cursor"
)

// Kind is an account's role in the chart of accounts.
type Kind string

// The chart of accounts (DESIGN.md). Only shopper wallets are no_negative:
// a shopper cannot spend money they do not have, while the other accounts
// are the platform's and merchants' own books.
const (
	KindShopperWallet     Kind = "shopper_wallet"
	KindMerchantDeferred  Kind = "merchant_deferred"
	KindMerchantAvailable Kind = "merchant_available"
	KindMerchantBreakage  Kind = "merchant_breakage"
	KindPlatformFees      Kind = "platform_fees"
	KindProviderClearing  Kind = "provider_clearing"
)

// AccountRef names an account in the chart of accounts independent of its
// currency: "shopper:<id>:wallet", "platform:fees"… Build one with the
// constructors below; the zero value is invalid.
type AccountRef struct {
	Kind  Kind
	Owner string // shopper id, merchant id or provider name; empty for platform:fees
}

// ShopperWallet is the shopper's prepaid wallet, which never goes negative.
func ShopperWallet(shopperID string) AccountRef {
	return AccountRef{Kind: KindShopperWallet, Owner: shopperID}
}

// MerchantDeferred holds sold, unredeemed vouchers (a liability).
func MerchantDeferred(merchantID string) AccountRef {
	return AccountRef{Kind: KindMerchantDeferred, Owner: merchantID}
}

// MerchantAvailable holds the merchant's recognised revenue.
func MerchantAvailable(merchantID string) AccountRef {
	return AccountRef{Kind: KindMerchantAvailable, Owner: merchantID}
}

// MerchantBreakage holds the value of vouchers that expired unredeemed.
func MerchantBreakage(merchantID string) AccountRef {
	return AccountRef{Kind: KindMerchantBreakage, Owner: merchantID}
}

// PlatformFees holds chatpay's fees.
func PlatformFees() AccountRef { return AccountRef{Kind: KindPlatformFees} }

// ProviderClearing mirrors money held by a payment provider (top-ups).
func ProviderClearing(provider string) AccountRef {
	return AccountRef{Kind: KindProviderClearing, Owner: provider}
}

// ownerPattern keeps owners to id-like text so that codes parse back unambiguously.
var ownerPattern = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)

// Code is the account's stored code, e.g. "merchant:m_1:deferred".
func (r AccountRef) Code() string {
	switch r.Kind {
	case KindShopperWallet:
		return "shopper:" + r.Owner + ":wallet"
	case KindMerchantDeferred:
		return "merchant:" + r.Owner + ":deferred"
	case KindMerchantAvailable:
		return "merchant:" + r.Owner + ":available"
	case KindMerchantBreakage:
		return "merchant:" + r.Owner + ":breakage"
	case KindPlatformFees:
		return "platform:fees"
	case KindProviderClearing:
		return "provider:" + r.Owner + ":clearing"
	}
	return ""
}

func (r AccountRef) String() string { return r.Code() }

// NoNegative reports whether the account may never drop below zero.
func (r AccountRef) NoNegative() bool { return r.Kind == KindShopperWallet }

// validate reports a malformed reference as CodeInvalidAccount.
func (r AccountRef) validate() error {
	if r.Code() == "" {
		return problem.New(problem.KindInvalid, CodeInvalidAccount, "unknown account kind %q", r.Kind)
	}
	if r.Kind == KindPlatformFees {
		if r.Owner != "" {
			return problem.New(problem.KindInvalid, CodeInvalidAccount, "platform:fees has no owner")
		}
		return nil
	}
	if len(r.Owner) == 0 || len(r.Owner) > OwnerLengthMax || !ownerPattern.MatchString(r.Owner) {
		return problem.New(problem.KindInvalid, CodeInvalidAccount,
			"account owner must be 1 to %d letters, digits, '_', '-' or '.', not %q", OwnerLengthMax, r.Owner)
	}
	return nil
}

// Account is one account of the chart in one currency.
type Account struct {
	ID         int64
	Ref        AccountRef
	Currency   money.Currency
	NoNegative bool
	CreatedAt  time.Time
}

// Posting moves Amount minor units of Currency into (Amount > 0, a credit)
// or out of (Amount < 0, a debit) an account. An account's balance is the
// sum of its postings, so a wallet topped up by 300 has balance 300.
type Posting struct {
	Account  AccountRef
	Currency money.Currency
	Amount   int64
}

// Debit takes minor units (> 0) out of account.
func Debit(account AccountRef, currency money.Currency, minor int64) Posting {
	return Posting{Account: account, Currency: currency, Amount: -minor}
}

// Credit puts minor units (> 0) into account.
func Credit(account AccountRef, currency money.Currency, minor int64) Posting {
	return Posting{Account: account, Currency: currency, Amount: minor}
}

// Transaction is what a caller asks the ledger to record.
type Transaction struct {
	// Key makes the post idempotent. Keys are global to the ledger, so
	// callers prefix them with the object that causes the movement.
	Key         string
	Description string
	Postings    []Posting
}

// Posted is a recorded transaction.
type Posted struct {
	ID          int64
	Key         string
	Description string
	// ReversesID is the transaction this one reverses, or 0.
	ReversesID int64
	// Postings are in the order they were posted.
	Postings  []Posting
	CreatedAt time.Time
	// Replayed is true when the key had been posted before with the same
	// content and this is the original transaction, not a new one.
	Replayed bool
	// After is the balance, right after this post, of the first no_negative
	// account it changed (a wallet), read under the post's lock; nil for a
	// replay or when it changed none.
	After *BalanceAfter
}

// BalanceAfter is an account's whole balance right after a post.
type BalanceAfter struct {
	Account  AccountRef
	Currency money.Currency
	Balance  int64
}

// validate checks a transaction's shape and double-entry rule before any
// database work; the schema checks the same again.
func (t Transaction) validate() error {
	if len(t.Key) == 0 || len(t.Key) > KeyLengthMax {
		return invalid("idempotency key must be 1 to %d bytes", KeyLengthMax)
	}
	if len(t.Description) > DescriptionLengthMax {
		return invalid("description is longer than %d bytes", DescriptionLengthMax)
	}
	if len(t.Postings) < 2 || len(t.Postings) > PostingsMax {
		return invalid("a transaction has 2 to %d postings, not %d", PostingsMax, len(t.Postings))
	}
	sums := make(map[string]int64, 1)
	for i, p := range t.Postings {
		if err := p.Account.validate(); err != nil {
			return err
		}
		if p.Currency.IsZero() {
			return problem.New(problem.KindInvalid, CodeInvalidAccount, "posting %d has no currency", i)
		}
		if p.Amount == 0 || p.Amount > money.MinorMax || p.Amount < -money.MinorMax {
			return invalid("posting %d: amount must be non-zero and at most %d minor units, not %d", i, money.MinorMax, p.Amount)
		}
		// Cannot overflow: at most PostingsMax amounts of at most MinorMax each.
		sums[p.Currency.Code()] += p.Amount
	}
	for currency, sum := range sums {
		if sum != 0 {
			return problem.New(problem.KindInvalid, CodeUnbalanced,
				"postings in %s sum to %d minor units, not zero", currency, sum)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return problem.New(problem.KindInvalid, CodeInvalidTransaction, format, args...)
}

// insufficientFunds names the account, its balance and the shortfall so the
// caller can tell the shopper what is missing.
func insufficientFunds(account AccountRef, currency money.Currency, balance, change int64) error {
	return problem.New(problem.KindRefused, CodeInsufficientFunds,
		"%s has %s %s, which cannot cover %s", account.Code(), currency.Format(balance), currency.Code(), currency.Format(-change)).
		With("account", account.Code()).
		With("balance", currency.Format(balance)).
		With("currency", currency.Code())
}

func idempotencyConflict(key string) error {
	return problem.New(problem.KindConflict, CodeIdempotencyConflict,
		"idempotency key %q was used before for a different transaction", key)
}

func alreadyReversed(id, reversalID int64) error {
	return problem.New(problem.KindConflict, CodeAlreadyReversed,
		"transaction %d was already reversed by transaction %d", id, reversalID).With("reversal_id", reversalID)
}
