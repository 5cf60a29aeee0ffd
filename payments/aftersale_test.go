package payments

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/payments/sandbox"
	"github.com/chatpay/chatpay/qr"
)

// RFC 4226 appendix D's secret and HOTP values, truncated to 8 digits.
func TestRedemptionToken(t *testing.T) {
	secret := []byte("12345678901234567890")
	for counter, want := range []string{"84755224", "94287082", "37359152"} {
		if got := hotp(secret, uint64(counter)); got != want {
			t.Errorf("HOTP(%d) = %s, want %s", counter, got, want)
		}
	}
	now := time.Date(2026, 11, 21, 6, 30, 10, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		steps int
		ok    bool
	}{{"OKNow", 0, true}, {"OKOneStepOld", -1, true}, {"OKOneStepAhead", 1, true}, {"ErrTwoStepsOld", -2, false}, {"ErrTwoStepsAhead", 2, false}} {
		t.Run(tc.name, func(t *testing.T) {
			token := RedemptionToken(secret, now.Add(time.Duration(tc.steps)*RedemptionTokenStep))
			if got := validRedemptionToken(secret, token, now); got != tc.ok {
				t.Fatalf("token %d steps away: valid %v, want %v", tc.steps, got, tc.ok)
			}
		})
	}
	c := Coupon{Code: "ABCD-EFGH-JKMN", Secret: secret}
	content := RedemptionQRContent(c, now)
	code, token, scanned := parseRedemptionCode(content)
	if !scanned || code != c.Code || token != RedemptionToken(secret, now) {
		t.Fatalf("QR content %q parsed as %q %q %v", content, code, token, scanned)
	}
}

// Refunds in parts return exactly the fee taken, each part a share no
// larger than itself.
func TestFeeShareCumulative(t *testing.T) {
	for _, products := range []int64{1, 99, 999, 1000, 123457} {
		fee, net := money.BasisPoints(200).Split(products)
		sale := saleSplit{products: products, fee: fee, net: net}
		var returned int64
		for step := int64(1); sale.refunded < products; step = step*3 + 1 {
			part := min(step, products-sale.refunded)
			back := feeShare(sale, sale.refunded+part) - feeShare(sale, sale.refunded)
			if back < 0 || back > part {
				t.Fatalf("products %d: part %d returned fee %d", products, part, back)
			}
			returned += back
			sale.refunded += part
		}
		if returned != fee {
			t.Fatalf("products %d: returned %d of the %d fee", products, returned, fee)
		}
	}
}

func startSandbox(t *testing.T) (*sandbox.Server, *HTTPProvider) {
	t.Helper()
	sb := sandbox.New(time.Now)
	sb.SlowDelay = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, stop, err := sb.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	p, err := NewHTTPProvider("sandbox", url, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return sb, p
}

// The client against the sandbox over real HTTP: every fault is an unknown
// outcome, and a lookup tells what really happened.
func TestHTTPProvider(t *testing.T) {
	_, p := startSandbox(t)
	ctx := context.Background()
	cny := money.New(5000, money.MustCurrency("CNY"))
	for _, tc := range []struct {
		name, card string
		charge     string // status of the charge, "" for an unknown outcome
		lookup     string // status a lookup finds, "" for none
	}{
		{"OKCaptured", sandbox.CardSuccess, ChargeCaptured, ChargeCaptured},
		{"OKDeclined", sandbox.CardDeclined, ChargeDeclined, ChargeDeclined},
		{"OKInsufficient", sandbox.CardInsufficient, ChargeDeclined, ChargeDeclined},
		{"UnknownSlow", sandbox.CardSlow, "", ChargeCaptured},
		{"UnknownServerError", sandbox.CardServerError, "", ChargeCaptured},
		{"UnknownReset", sandbox.CardReset, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "test:" + tc.name
			charge, err := p.Charge(ctx, key, cny, tc.card)
			switch {
			case tc.charge == "" && !errors.Is(err, ErrOutcomeUnknown):
				t.Fatalf("charge: want an unknown outcome, got %+v %v", charge, err)
			case tc.charge != "" && (err != nil || charge.Status != tc.charge):
				t.Fatalf("charge: want %s, got %+v %v", tc.charge, charge, err)
			}
			found, err := p.Lookup(ctx, key)
			switch {
			case tc.lookup == "" && !errors.Is(err, ErrChargeNotFound):
				t.Fatalf("lookup: want not found, got %+v %v", found, err)
			case tc.lookup != "" && (err != nil || found.Status != tc.lookup || found.AmountMinor != 5000):
				t.Fatalf("lookup: want %s, got %+v %v", tc.lookup, found, err)
			}
		})
	}
	t.Run("OKSameKeyChargesOnce", func(t *testing.T) {
		first, err1 := p.Charge(ctx, "test:once", cny, sandbox.CardSuccess)
		second, err2 := p.Charge(ctx, "test:once", cny, sandbox.CardSuccess)
		if err1 != nil || err2 != nil || first.ID != second.ID {
			t.Fatalf("two charges: %+v %v / %+v %v", first, err1, second, err2)
		}
		refund, err := p.Refund(ctx, "test:once:refund", first.ID, money.New(2000, cny.Currency))
		again, err2 := p.Refund(ctx, "test:once:refund", first.ID, money.New(2000, cny.Currency))
		if err != nil || err2 != nil || refund.ID != again.ID || refund.AmountMinor != 2000 {
			t.Fatalf("refunds: %+v %v / %+v %v", refund, err, again, err2)
		}
	})
	t.Run("OKVoidAnswersTheChargeMadeBefore", func(t *testing.T) {
		made, err := p.Charge(ctx, "test:void-made", cny, sandbox.CardSuccess)
		voided, err2 := p.Void(ctx, "test:void-made")
		if err != nil || err2 != nil || voided.ID != made.ID || voided.Status != ChargeCaptured {
			t.Fatalf("void after a capture: %+v %v / %+v %v", made, err, voided, err2)
		}
	})
	t.Run("ErrVoidedKeyCannotCharge", func(t *testing.T) {
		if _, err := p.Void(ctx, "test:void-none"); !errors.Is(err, ErrChargeNotFound) {
			t.Fatalf("void of a key never charged: %v", err)
		}
		charge, err := p.Charge(ctx, "test:void-none", cny, sandbox.CardSuccess)
		if err == nil || errors.Is(err, ErrOutcomeUnknown) || !strings.Contains(err.Error(), "key_voided") {
			t.Fatalf("charge with a voided key: %+v %v", charge, err)
		}
		if _, err := p.Lookup(ctx, "test:void-none"); !errors.Is(err, ErrChargeNotFound) {
			t.Fatalf("lookup after the refused charge: %v", err)
		}
	})
}

// A charge request held in the network past the abandon time: without the
// void, it would capture after the top-up was called failed and the shopper
// would pay for nothing. Reconciliation voids the key first, so the late
// request is refused and the provider's records agree with the ledger.
func TestReconcileVoidsBeforeFailing(t *testing.T) {
	sb, p := startSandbox(t)
	clock := fakeclock.New(time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC))
	s, sh := topUpService(t, p, clock)
	ctx := context.Background()
	amount := money.New(5000, money.MustCurrency("CNY"))

	held, err := s.TopUp(ctx, sh, amount, sandbox.CardLate, "held")
	if err != nil || held.Status != TopUpUnknown {
		t.Fatalf("top-up: %+v %v", held, err)
	}
	clock.Add(ReconcileMinAge)
	if report, err := s.ReconcileTopUps(ctx, 10); err != nil || report != (ReconcileReport{Checked: 1, Unknown: 1}) {
		t.Fatalf("before the abandon time: %+v %v", report, err)
	}
	clock.Add(TopUpAbandonAfter)
	if report, err := s.ReconcileTopUps(ctx, 10); err != nil || report != (ReconcileReport{Checked: 1, Failed: 1}) {
		t.Fatalf("after the abandon time: %+v %v", report, err)
	}

	// The held request reaches the provider now, after the top-up failed.
	sb.ReleaseLate()
	if keys := sb.LateProcessed(5 * time.Second); len(keys) != 1 || keys[0] != held.ProviderKey {
		t.Fatalf("late requests processed: %v, want [%s]", keys, held.ProviderKey)
	}
	for _, c := range sb.Charges() {
		t.Errorf("the provider recorded a charge after the void: %+v", c)
	}
	got, err := s.ShopperTopUp(ctx, sh.ID, held.ID)
	if err != nil || got.Status != TopUpFailed || got.FailureCode.String != FailureNotReceived {
		t.Fatalf("top-up after the late request: %+v %v", got, err)
	}
	balance, err := s.WalletBalance(ctx, sh.ID, amount.Currency)
	if err != nil || balance.Minor != 0 {
		t.Fatalf("wallet: %+v %v, want 0", balance, err)
	}
	if report, err := s.ReconcileTopUps(ctx, 10); err != nil || report != (ReconcileReport{}) {
		t.Fatalf("nothing left to reconcile: %+v %v", report, err)
	}
}

func topUpService(t *testing.T, p Provider, clock *fakeclock.Clock) (*Service, Shopper) {
	t.Helper()
	db := testdb.New(t)
	q, err := qr.NewService(db, clock.Now, "http://127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewService(db, clock.Now, ledger.New(clock.Now), catalog.NewService(db, clock.Now), q, Config{Provider: p})
	ctx := context.Background()
	ch, err := s.CreateChannel(ctx, NewChannel{Name: "Tea bot", Kind: "telegram"})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := s.EnsureShopper(ctx, db, ch.Channel.ID, "42", "Li Wei")
	if err != nil {
		t.Fatal(err)
	}
	return s, sh
}

// Ten taps with one key while the provider is slow: one charge, one credit.
func TestTopUpConcurrentSameKey(t *testing.T) {
	sb, p := startSandbox(t)
	clock := fakeclock.New(time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC))
	s, sh := topUpService(t, p, clock)
	amount := money.New(5000, money.MustCurrency("CNY"))
	var wg sync.WaitGroup
	results := make([]TopUp, 10)
	errs := make([]error, 10)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = s.TopUp(context.Background(), sh, amount, sandbox.CardSlow, "tap") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || results[i].ID != results[0].ID {
			t.Fatalf("tap %d: %+v %v", i, results[i], err)
		}
	}
	if n := len(sb.Charges()); n != 1 {
		t.Fatalf("%d charges at the provider, want 1", n)
	}
	balance, err := s.ledger.Balance(context.Background(), s.db, ledger.ShopperWallet(sh.ID), amount.Currency)
	if err != nil || balance != 5000 {
		t.Fatalf("wallet %d (%v), want 5000", balance, err)
	}
}

// An outcome nobody can tell stays unknown until reconciliation, which
// leaves young top-ups alone and settles old ones by lookup.
func TestReconcileTopUps(t *testing.T) {
	sb, p := startSandbox(t)
	clock := fakeclock.New(time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC))
	s, sh := topUpService(t, p, clock)
	ctx := context.Background()
	amount := money.New(5000, money.MustCurrency("CNY"))
	sb.SetLookupsDown(true)
	captured, err := s.TopUp(ctx, sh, amount, sandbox.CardServerError, "captured")
	if err != nil || captured.Status != TopUpUnknown {
		t.Fatalf("top-up: %+v %v", captured, err)
	}
	lost, err := s.TopUp(ctx, sh, amount, sandbox.CardReset, "lost")
	if err != nil || lost.Status != TopUpUnknown {
		t.Fatalf("top-up: %+v %v", lost, err)
	}
	sb.SetLookupsDown(false)
	for _, tc := range []struct {
		after time.Duration
		want  ReconcileReport
	}{
		{0, ReconcileReport{}},
		{ReconcileMinAge, ReconcileReport{Checked: 2, Succeeded: 1, Unknown: 1}},
		{TopUpAbandonAfter, ReconcileReport{Checked: 1, Failed: 1}},
		{TopUpAbandonAfter, ReconcileReport{}},
	} {
		clock.Add(tc.after)
		report, err := s.ReconcileTopUps(ctx, 10)
		if err != nil || report != tc.want {
			t.Fatalf("after %s: %+v %v, want %+v", tc.after, report, err, tc.want)
		}
	}
	for id, want := range map[string]string{captured.ID: TopUpSucceeded, lost.ID: TopUpFailed} {
		got, err := s.ShopperTopUp(ctx, sh.ID, id)
		if err != nil || got.Status != want {
			t.Fatalf("%s: %s %v, want %s", id, got.Status, err, want)
		}
	}
	if err := fmt.Sprint(lost.Err()); err != "<nil>" {
		t.Fatalf("an unknown top-up is no refusal: %s", err)
	}
}
