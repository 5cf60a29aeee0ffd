package stripe_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/providertest"
	"github.com/chatpay/chatpay/payments/stripe"
	"github.com/chatpay/chatpay/payments/stripe/stripemock"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const webhookSecret = "whsec_test_0123456789abcdef"

type bench struct {
	*providertest.Env
	mock *stripemock.Server
}

func newBench(t *testing.T) *bench {
	t.Helper()
	mock := stripemock.Start(t)
	env := providertest.New(t, func(string, *fakeclock.Clock) payments.HostedProvider {
		p, err := stripe.New(stripe.Config{SecretKey: "sk_test_chatpay", WebhookSecret: webhookSecret, BaseURL: mock.URL, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
	return &bench{Env: env, mock: mock}
}

func (b *bench) start(key string, minor int64) payments.HostedTopUp {
	b.T.Helper()
	top, err := b.Payments.StartHostedTopUp(context.Background(), b.Shopper, payments.HostedStart{
		MerchantID: b.Merchant.ID, Amount: providertest.CNY(minor), Method: payments.MethodCheckout,
		ReturnURL: "http://127.0.0.1/q/tok?topup=done", Key: key,
	})
	if err != nil {
		b.T.Fatalf("start top-up: %v", err)
	}
	return top
}

// deliver signs body as Stripe does (with the SDK's test helper) at signedAt
// and hands it to chatpay; it returns the outcome or the problem's code.
func (b *bench) deliver(body []byte, secret string, signedAt time.Time) string {
	b.T.Helper()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: signedAt})
	header := http.Header{"Stripe-Signature": {signed.Header}}
	outcome, err := b.Payments.HandleNotification(context.Background(), stripe.Name, b.Merchant.ID, header, body)
	if p, ok := problem.As(err); ok {
		return p.Code
	}
	if err != nil {
		b.T.Fatalf("notification: %v", err)
	}
	return outcome
}

func (b *bench) session(top payments.HostedTopUp) stripemock.Session {
	b.T.Helper()
	s, ok := b.mock.Session(top.PaymentID.String)
	if !ok {
		b.T.Fatalf("stripe-mock has no session %s", top.PaymentID.String)
	}
	return s
}

// A top-up is a Checkout Session; the shopper's return credits nothing; the
// signed webhooks credit the wallet exactly once whatever their number,
// order, lateness or forgery.
func TestCheckoutCreditsOnceFromWebhooks(t *testing.T) {
	b := newBench(t)
	top := b.start("tap-1", 5000)
	again := b.start("tap-1", 5000)
	if top.ID != again.ID || !top.PaymentID.Valid || top.PaymentID != again.PaymentID || b.mock.Creates() != 1 {
		t.Fatalf("same key: %s %s / %s %s, %d sessions", top.ID, top.PaymentID.String, again.ID, again.PaymentID.String, b.mock.Creates())
	}
	if page := top.Page(); page.RedirectURL == "" || top.Status != payments.TopUpPending {
		t.Fatalf("page %+v status %s", page, top.Status)
	}
	if b.Wallet() != 0 {
		t.Fatal("credited before any payment")
	}
	b.mock.Pay(top.PaymentID.String)
	session := b.session(top)
	completed := stripemock.Event("evt_completed", "checkout.session.completed", stripemock.SessionObject(session))
	succeeded := stripemock.Event("evt_pi_succeeded", "payment_intent.succeeded", stripemock.PaymentIntentObject(session))
	now := time.Now()

	t.Run("ErrForged", func(t *testing.T) {
		if got := b.deliver(completed, "whsec_not_the_merchants", now); got != payments.CodeInvalidNotification {
			t.Fatalf("forged: %s", got)
		}
		tampered := stripemock.Event("evt_completed", "checkout.session.completed", stripemock.SessionObject(session))
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: tampered, Secret: webhookSecret})
		tampered = append(tampered[:len(tampered)-1], []byte(`,"x":1}`)...)
		_, err := b.Payments.HandleNotification(context.Background(), stripe.Name, b.Merchant.ID,
			http.Header{"Stripe-Signature": {signed.Header}}, tampered)
		if p, ok := problem.As(err); !ok || p.Code != payments.CodeInvalidNotification || p.Status() != http.StatusBadRequest {
			t.Fatalf("tampered body: %v", err)
		}
		if got := b.deliver(completed, webhookSecret, now.Add(-stripe.SignatureToleranceDefault-time.Minute)); got != payments.CodeInvalidNotification {
			t.Fatalf("replayed outside the window: %s", got)
		}
		if b.Wallet() != 0 || b.Count(`SELECT count(*) FROM provider_events`) != 0 {
			t.Fatal("a forged notification wrote something")
		}
	})
	t.Run("OKOutOfOrderAndDuplicates", func(t *testing.T) {
		// payment_intent.succeeded may arrive before the session's event.
		if got := b.deliver(succeeded, webhookSecret, now); got != payments.NotificationCredited {
			t.Fatalf("first event: %s", got)
		}
		var wg sync.WaitGroup
		outcomes := make([]string, 20)
		for i := range outcomes {
			body := completed
			if i%2 == 1 {
				body = succeeded
			}
			wg.Go(func() { outcomes[i] = b.deliver(body, webhookSecret, now) })
		}
		wg.Wait()
		for i, got := range outcomes {
			if got != payments.NotificationIgnored {
				t.Fatalf("delivery %d: %s, want ignored", i, got)
			}
		}
	})
	t.Run("OKLateExpiryChangesNothing", func(t *testing.T) {
		late := session
		late.Status, late.PaymentStatus = "expired", "unpaid"
		if got := b.deliver(stripemock.Event("evt_expired", "checkout.session.expired", stripemock.SessionObject(late)), webhookSecret, now); got != payments.NotificationIgnored {
			t.Fatalf("late expiry: %s", got)
		}
	})
	if got := b.TopUp(top.ID); got.Status != payments.TopUpSucceeded || got.ProviderChargeID.String != session.PaymentIntent {
		t.Fatalf("top-up %s, capture %s", got.Status, got.ProviderChargeID.String)
	}
	if w := b.Wallet(); w != 5000 {
		t.Fatalf("wallet %d, want 5000 exactly once", w)
	}
	b.Verify()
}

// A webhook for a top-up of another merchant's account, or about a session
// chatpay never made, credits nothing.
func TestWebhookAboutOthersCreditsNothing(t *testing.T) {
	b := newBench(t)
	top := b.start("tap", 5000)
	b.mock.Pay(top.PaymentID.String)
	session := b.session(top)
	session.TopUpID = "top_notours"
	if got := b.deliver(stripemock.Event("evt_x", "checkout.session.completed", stripemock.SessionObject(session)), webhookSecret, time.Now()); got != payments.NotificationIgnored {
		t.Fatalf("unknown top-up: %s", got)
	}
	_, err := b.Payments.HandleNotification(context.Background(), "wechatpay", b.Merchant.ID, http.Header{}, []byte("{}"))
	if p, ok := problem.As(err); !ok || p.Code != "not_found" {
		t.Fatalf("wrong provider in the URL: %v", err)
	}
	if b.Wallet() != 0 {
		t.Fatal("credited")
	}
	b.Verify()
}

// The webhook never comes: reconciliation retrieves the session and credits
// it; the webhook arriving after that changes nothing.
func TestReconcileSettlesLostWebhook(t *testing.T) {
	b := newBench(t)
	ctx := context.Background()
	paid := b.start("paid", 5000)
	open := b.start("open", 3000)
	b.mock.Pay(paid.PaymentID.String)
	for _, tc := range []struct {
		after time.Duration
		want  payments.ReconcileReport
	}{
		{0, payments.ReconcileReport{}},
		{payments.ReconcileMinAge, payments.ReconcileReport{Checked: 2, Succeeded: 1, Unknown: 1}},
		{payments.HostedAbandonAfter, payments.ReconcileReport{Checked: 1, Failed: 1}},
		{payments.HostedAbandonAfter, payments.ReconcileReport{}},
	} {
		b.Clock.Add(tc.after)
		report, err := b.Payments.ReconcileHostedTopUps(ctx, 10)
		if err != nil || report != tc.want {
			t.Fatalf("after %s: %+v %v, want %+v", tc.after, report, err, tc.want)
		}
	}
	if s := b.session(open); s.Status != "expired" {
		t.Fatalf("abandoned session is %s, want expired before the top-up failed", s.Status)
	}
	if got := b.TopUp(open.ID); got.Status != payments.TopUpFailed || got.FailureCode.String != payments.FailurePaymentClosed {
		t.Fatalf("abandoned top-up: %s %s", got.Status, got.FailureCode.String)
	}
	late := stripemock.Event("evt_late", "checkout.session.completed", stripemock.SessionObject(b.session(paid)))
	if got := b.deliver(late, webhookSecret, time.Now()); got != payments.NotificationIgnored {
		t.Fatalf("late webhook: %s", got)
	}
	if w := b.Wallet(); w != 5000 {
		t.Fatalf("wallet %d, want 5000", w)
	}
	b.Verify()
}

// Stripe down while the top-up starts: the shopper is told to retry, and the
// retry with the same key makes one session.
func TestStartWhileStripeDown(t *testing.T) {
	b := newBench(t)
	b.mock.SetDown(true)
	_, err := b.Payments.StartHostedTopUp(context.Background(), b.Shopper, payments.HostedStart{
		MerchantID: b.Merchant.ID, Amount: providertest.CNY(5000), Method: payments.MethodCheckout,
		ReturnURL: "http://127.0.0.1/back", Key: "k",
	})
	if p, ok := problem.As(err); !ok || p.Code != payments.CodeProviderUnavailable {
		t.Fatalf("down: %v", err)
	}
	b.mock.SetDown(false)
	top := b.start("k", 5000)
	if !top.PaymentID.Valid || b.mock.Creates() != 1 {
		t.Fatalf("retry: %+v, %d sessions", top, b.mock.Creates())
	}
	_, err = b.Payments.StartHostedTopUp(context.Background(), b.Shopper, payments.HostedStart{
		MerchantID: b.Merchant.ID, Amount: providertest.CNY(5000), Method: payments.MethodNative, Key: "native",
	})
	if p, ok := problem.As(err); !ok || p.Code != payments.CodeMethodUnsupported {
		t.Fatalf("QR payment through Stripe: %v", err)
	}
	// A top-up whose start never got an answer and was never retried: when
	// it is abandoned, reconciliation finds its session through the
	// creation's idempotency key and expires it before failing it.
	b.mock.SetDown(true)
	_, err = b.Payments.StartHostedTopUp(context.Background(), b.Shopper, payments.HostedStart{
		MerchantID: b.Merchant.ID, Amount: providertest.CNY(700), Method: payments.MethodCheckout,
		ReturnURL: "http://127.0.0.1/back", Key: "lost",
	})
	if p, ok := problem.As(err); !ok || p.Code != payments.CodeProviderUnavailable {
		t.Fatalf("down: %v", err)
	}
	b.mock.SetDown(false)
	b.Clock.Add(payments.HostedAbandonAfter)
	report, err := b.Payments.ReconcileHostedTopUps(context.Background(), 10)
	if err != nil || report != (payments.ReconcileReport{Checked: 2, Failed: 2}) {
		t.Fatalf("reconcile: %+v %v", report, err)
	}
	if b.mock.Creates() != 2 || b.Count(`SELECT count(*) FROM topups WHERE status = 'failed' AND failure_code = 'payment_closed'`) != 2 {
		t.Fatalf("%d sessions; top-ups not closed", b.mock.Creates())
	}
	b.Verify()
}

// A top-up refund goes back to the card through Stripe's refund API, once
// per key, never more than the top-up.
func TestRefundTopUpToCard(t *testing.T) {
	b := newBench(t)
	ctx := context.Background()
	top := b.start("tap", 5000)
	pi := b.mock.Pay(top.PaymentID.String)
	if got := b.deliver(stripemock.Event("evt_1", "checkout.session.completed", stripemock.SessionObject(b.session(top))), webhookSecret, time.Now()); got != payments.NotificationCredited {
		t.Fatalf("webhook: %s", got)
	}
	r, err := b.Payments.RefundTopUp(ctx, b.Shopper.ID, top.ID, providertest.CNY(2000), "refund-1")
	if err != nil || r.Status != payments.TopUpRefundSucceeded {
		t.Fatalf("refund: %+v %v", r, err)
	}
	again, err := b.Payments.RefundTopUp(ctx, b.Shopper.ID, top.ID, providertest.CNY(2000), "refund-1")
	if err != nil || again.ID != r.ID {
		t.Fatalf("replay: %+v %v", again, err)
	}
	refunds := b.mock.Refunds()
	if len(refunds) != 1 {
		t.Fatalf("%d refunds at Stripe, want 1", len(refunds))
	}
	for _, got := range refunds {
		if got.PaymentIntent != pi || got.AmountMinor != 2000 || got.ID != r.ProviderRefundID.String {
			t.Fatalf("refund at Stripe %+v, chatpay's %+v", got, r)
		}
	}
	_, err = b.Payments.RefundTopUp(ctx, b.Shopper.ID, top.ID, providertest.CNY(3001), "refund-2")
	if p, ok := problem.As(err); !ok || p.Code != payments.CodeRefundExceedsTopUp {
		t.Fatalf("over-refund: %v", err)
	}
	if w := b.Wallet(); w != 3000 {
		t.Fatalf("wallet %d, want 3000", w)
	}
	b.Verify()
}
