// Package providertest is the shared bench of the real-provider tests
// (payments/stripe, payments/wechatpay): a fresh database with a merchant, a
// channel and a shopper, the payments service wired to one provider, and the
// ledger audit `chatpay verify` runs over payments' provider checks.
package providertest

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
)

// Env is one test's wired payments service.
type Env struct {
	T        testing.TB
	DB       *sqlx.DB
	Clock    *fakeclock.Clock
	Ledger   *ledger.Ledger
	Payments *payments.Service
	Merchant catalog.Merchant
	Shopper  payments.Shopper
}

// Start is 2026-11-21 14:30 in Shanghai, tea time.
var Start = time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC)

// New wires a payments service whose merchant takes top-ups with the
// provider that newProvider returns; newProvider gets the test's clock.
func New(t testing.TB, newProvider func(merchantID string, clock *fakeclock.Clock) payments.HostedProvider) *Env {
	t.Helper()
	db := testdb.New(t)
	clock := fakeclock.New(Start)
	ctx := context.Background()
	cat := catalog.NewService(db, clock.Now)
	m, err := cat.CreateMerchant(ctx, catalog.MerchantDraft{Name: "McDonald's", TimeZone: "Asia/Shanghai", DefaultCurrency: "CNY"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := qr.NewService(db, clock.Now, "http://127.0.0.1", func(ctx context.Context, merchantID, itemID string) error {
		_, err := cat.Item(ctx, merchantID, itemID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(clock.Now)
	s := payments.NewService(db, clock.Now, l, cat, q, payments.Config{
		Providers: payments.StaticProviders{m.ID: newProvider(m.ID, clock)},
	})
	ch, err := s.CreateChannel(ctx, payments.NewChannel{Name: "Tea bot", Kind: "wechat"})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := s.EnsureShopper(ctx, db, ch.Channel.ID, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "Li Wei")
	if err != nil {
		t.Fatal(err)
	}
	return &Env{T: t, DB: db, Clock: clock, Ledger: l, Payments: s, Merchant: m, Shopper: sh}
}

// CNY is amount minor units of yuan.
func CNY(minor int64) money.Amount { return money.New(minor, money.MustCurrency("CNY")) }

// Wallet is the shopper's CNY balance.
func (e *Env) Wallet() int64 {
	e.T.Helper()
	b, err := e.Ledger.Balance(context.Background(), e.DB, ledger.ShopperWallet(e.Shopper.ID), money.MustCurrency("CNY"))
	if err != nil {
		e.T.Fatal(err)
	}
	return b
}

// Verify runs the ledger audit with payments' provider cross-checks and
// fails the test on any violation.
func (e *Env) Verify() {
	e.T.Helper()
	report, err := ledger.RunAudit(context.Background(), e.DB, append(ledger.Checks(), payments.ProviderChecks()...)...)
	if err != nil {
		e.T.Fatal(err)
	}
	if err := report.Err(); err != nil {
		e.T.Fatalf("verify: %v", err)
	}
}

// TopUp reads one of the shopper's top-ups.
func (e *Env) TopUp(id string) payments.HostedTopUp {
	e.T.Helper()
	t, err := e.Payments.HostedTopUpByID(context.Background(), e.Shopper.ID, id)
	if err != nil {
		e.T.Fatal(err)
	}
	return t
}

// Count runs a count query.
func (e *Env) Count(query string, args ...any) int {
	e.T.Helper()
	var n int
	if err := e.DB.GetContext(context.Background(), &n, query, args...); err != nil {
		e.T.Fatal(err)
	}
	return n
}
