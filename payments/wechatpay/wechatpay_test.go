package wechatpay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/providertest"
	"github.com/chatpay/chatpay/payments/wechatpay"
	"github.com/chatpay/chatpay/payments/wechatpay/fake"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// The signing string of the APIv3 documentation's own example ("Signature
// Generation": GET /v3/certificates at 1554208460 with nonce
// 593BEC0C930BF1AFEB40B4A08C8FB242): five lines, the empty body included.
func TestRequestMessageSpecExample(t *testing.T) {
	got := string(wechatpay.RequestMessage("GET", "/v3/certificates", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", nil))
	want := "GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
	if got != want {
		t.Fatalf("signing string %q, want %q", got, want)
	}
	answer := string(wechatpay.AnswerMessage("1554209980", "c5ac7061fccab6bf3e254dcf98995b8c", []byte(`{"data":[]}`)))
	if answer != "1554209980\nc5ac7061fccab6bf3e254dcf98995b8c\n{\"data\":[]}\n" {
		t.Fatalf("answer signing string %q", answer)
	}
	auth := wechatpay.Authorization("1900009191", "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", "593BEC0C930BF1AFEB40B4A08C8FB242", "1554208460", "c2ln")
	fields, err := wechatpay.ParseAuthorization(auth)
	if err != nil || fields["mchid"] != "1900009191" || fields["serial_no"] != "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C" || fields["signature"] != "c2ln" {
		t.Fatalf("authorization %q parsed as %v %v", auth, fields, err)
	}
}

func TestSignVerifyDecrypt(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	message := wechatpay.AnswerMessage("1700000000", "nonce", []byte(`{"a":1}`))
	sig, err := wechatpay.Sign(key, message)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OK", func(t *testing.T) {
		if err := wechatpay.Verify(&key.PublicKey, message, sig); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrTampered", func(t *testing.T) {
		if wechatpay.Verify(&key.PublicKey, wechatpay.AnswerMessage("1700000000", "nonce", []byte(`{"a":2}`)), sig) == nil {
			t.Fatal("a tampered body verified")
		}
	})
	const apiKey = "0123456789abcdefghijklmnopqrstuv"
	sealed, err := wechatpay.Encrypt(apiKey, "0123456789ab", "transaction", []byte(`{"out_trade_no":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OKDecrypt", func(t *testing.T) {
		plain, err := wechatpay.Decrypt(apiKey, "0123456789ab", "transaction", sealed)
		if err != nil || string(plain) != `{"out_trade_no":"x"}` {
			t.Fatalf("%s %v", plain, err)
		}
	})
	for name, tc := range map[string][4]string{
		"ErrWrongKey":   {"vutsrqponmlkjihgfedcba9876543210", "0123456789ab", "transaction", sealed},
		"ErrWrongAAD":   {apiKey, "0123456789ab", "refund", sealed},
		"ErrWrongNonce": {apiKey, "ba9876543210", "transaction", sealed},
		"ErrShortKey":   {"short", "0123456789ab", "transaction", sealed},
		"ErrFlipped":    {apiKey, "0123456789ab", "transaction", flip(sealed)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := wechatpay.Decrypt(tc[0], tc[1], tc[2], tc[3]); err == nil {
				t.Fatal("decrypted")
			}
		})
	}
}

func flip(b64 string) string {
	raw, _ := base64.StdEncoding.DecodeString(b64)
	raw[0] ^= 1
	return base64.StdEncoding.EncodeToString(raw)
}

// ParseAuthorization never panics and accepts only the five quoted fields.
func FuzzParseAuthorization(f *testing.F) {
	f.Add(wechatpay.Authorization("1900009191", "SERIAL", "NONCE", "1554208460", "c2ln"))
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="2"`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid=1`)
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		fields, err := wechatpay.ParseAuthorization(header)
		if err == nil && (fields["mchid"] == "" || fields["signature"] == "" || !strings.HasPrefix(header, wechatpay.AuthScheme)) {
			t.Fatalf("accepted %q as %v", header, fields)
		}
	})
}

type bench struct {
	*providertest.Env
	fake *fake.Server
}

func newBench(t *testing.T) *bench {
	t.Helper()
	var server *fake.Server
	env := providertest.New(t, func(_ string, clock *fakeclock.Clock) payments.HostedProvider {
		var err error
		if server, err = fake.New(clock.Now); err != nil {
			t.Fatal(err)
		}
		stop, err := server.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return provider(t, server, clock.Now)
	})
	return &bench{Env: env, fake: server}
}

func provider(t *testing.T, server *fake.Server, now func() time.Time) *wechatpay.Provider {
	t.Helper()
	merchantKey, err := wechatpay.ParsePrivateKey(server.MerchantKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	platformKey, err := wechatpay.ParsePublicKey(server.PlatformPublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	p, err := wechatpay.New(wechatpay.Config{
		MchID: fake.MchID, AppID: fake.AppID, MerchantSerial: fake.MerchantSerial, MerchantKey: merchantKey,
		APIv3Key: fake.APIv3Key, PlatformSerial: fake.PlatformSerial, PlatformKey: platformKey,
		BaseURL: server.URL, Timeout: 5 * time.Second, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (b *bench) start(key, method string, minor int64) payments.HostedTopUp {
	b.T.Helper()
	top, err := b.Payments.StartHostedTopUp(context.Background(), b.Shopper, payments.HostedStart{
		MerchantID: b.Merchant.ID, Amount: providertest.CNY(minor), Method: method,
		Key: key,
	})
	if err != nil {
		b.T.Fatalf("start top-up: %v", err)
	}
	return top
}

func (b *bench) deliver(header http.Header, body []byte) string {
	b.T.Helper()
	outcome, err := b.Payments.HandleNotification(context.Background(), wechatpay.Name, b.Merchant.ID, header, body)
	if p, ok := problem.As(err); ok {
		return p.Code
	}
	if err != nil {
		b.T.Fatalf("notification: %v", err)
	}
	return outcome
}

// JSAPI inside WeChat: one order per key, signed sheet parameters, and the
// wallet credited exactly once from the notification, whatever its
// duplicates or forgeries.
func TestJSAPICreditsOnceFromNotifications(t *testing.T) {
	b := newBench(t)
	top := b.start("tap", payments.MethodJSAPI, 300)
	again := b.start("tap", payments.MethodJSAPI, 300)
	order, ok := b.fake.Order(top.ProviderKey)
	if !ok || again.ID != top.ID || order.Creates != 1 || order.OpenID != b.Shopper.ExternalUserID {
		t.Fatalf("order %+v, top-ups %s %s", order, top.ID, again.ID)
	}
	params := top.Page().JSAPI
	if params["package"] != "prepay_id="+order.PrepayID || params["signType"] != "RSA" || params["appId"] != fake.AppID {
		t.Fatalf("JSAPI parameters %v", params)
	}
	message := params["appId"] + "\n" + params["timeStamp"] + "\n" + params["nonceStr"] + "\n" + params["package"] + "\n"
	if err := wechatpay.Verify(&b.fake.MerchantKey.PublicKey, []byte(message), params["paySign"]); err != nil {
		t.Fatalf("paySign: %v", err)
	}
	if err := b.fake.Pay(top.ProviderKey); err != nil {
		t.Fatal(err)
	}
	header, body, err := b.fake.Notification(top.ProviderKey, "EV-2018022511223320873", b.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ErrForged", func(t *testing.T) {
		forger, err := fake.New(b.Clock.Now) // same ids, other platform key
		if err != nil {
			t.Fatal(err)
		}
		stop, err := forger.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		forged := forgedNotification(t, forger, top, b.Clock.Now)
		stale, staleBody, err := b.fake.Notification(top.ProviderKey, "EV-stale", b.Clock.Now().Add(-wechatpay.TimestampSkewMax-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		tampered := []byte(strings.Replace(string(body), `"ciphertext":"`, `"ciphertext":"A`, 1))
		for name, n := range map[string]struct {
			header http.Header
			body   []byte
		}{"OtherKey": forged, "Stale": {stale, staleBody}, "Tampered": {header, tampered}, "Unsigned": {http.Header{}, body}} {
			if got := b.deliver(n.header, n.body); got != payments.CodeInvalidNotification {
				t.Fatalf("%s: %s", name, got)
			}
		}
		if b.Wallet() != 0 || b.Count(`SELECT count(*) FROM provider_events`) != 0 {
			t.Fatal("a forged notification wrote something")
		}
	})
	t.Run("OKDuplicates", func(t *testing.T) {
		var wg sync.WaitGroup
		outcomes := make([]string, 12)
		for i := range outcomes {
			wg.Go(func() { outcomes[i] = b.deliver(header, body) })
		}
		wg.Wait()
		credited := 0
		for _, got := range outcomes {
			if got == payments.NotificationCredited {
				credited++
			} else if got != payments.NotificationIgnored {
				t.Fatalf("delivery: %s", got)
			}
		}
		// A second notification of the same payment under another id.
		other, otherBody, err := b.fake.Notification(top.ProviderKey, "EV-again", b.Clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if credited != 1 || b.deliver(other, otherBody) != payments.NotificationIgnored {
			t.Fatalf("%d deliveries credited", credited)
		}
	})
	got := b.TopUp(top.ID)
	if order, _ = b.fake.Order(top.ProviderKey); got.Status != payments.TopUpSucceeded || got.ProviderChargeID.String != order.TransactionID {
		t.Fatalf("top-up %s with %s, transaction %s", got.Status, got.ProviderChargeID.String, order.TransactionID)
	}
	if w := b.Wallet(); w != 300 {
		t.Fatalf("wallet %d, want 300", w)
	}
	b.Verify()
}

// forgedNotification is a well-formed notification signed by a key that is
// not WeChat Pay's.
func forgedNotification(t *testing.T, forger *fake.Server, top payments.HostedTopUp, now func() time.Time) struct {
	header http.Header
	body   []byte
} {
	t.Helper()
	p := provider(t, forger, now)
	forgerTop := payments.HostedPayment{TopUpID: top.ID, Key: top.ProviderKey, Method: payments.MethodNative,
		Amount: providertest.CNY(300), Description: "x", NotifyURL: "https://x", ExpiresAt: now().Add(time.Hour)}
	if _, err := p.Start(context.Background(), forgerTop); err != nil {
		t.Fatal(err)
	}
	if err := forger.Pay(top.ProviderKey); err != nil {
		t.Fatal(err)
	}
	header, body, err := forger.Notification(top.ProviderKey, "EV-forged", now())
	if err != nil {
		t.Fatal(err)
	}
	return struct {
		header http.Header
		body   []byte
	}{header, body}
}

// Native QR for other browsers: the notification is lost, reconciliation
// queries the order and credits it; an abandoned one is closed before it
// fails; a late notification changes nothing.
func TestNativeReconcile(t *testing.T) {
	b := newBench(t)
	ctx := context.Background()
	paid := b.start("paid", payments.MethodNative, 300)
	open := b.start("open", payments.MethodNative, 600)
	if !strings.HasPrefix(paid.Page().QRContent, "weixin://wxpay/bizpayurl") {
		t.Fatalf("QR content %q", paid.Page().QRContent)
	}
	if err := b.fake.Pay(paid.ProviderKey); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after time.Duration
		want  payments.ReconcileReport
	}{
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
	if order, _ := b.fake.Order(open.ProviderKey); order.TradeState != "CLOSED" {
		t.Fatalf("abandoned order is %s, want CLOSED before failing", order.TradeState)
	}
	header, body, err := b.fake.Notification(paid.ProviderKey, "EV-late", b.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := b.deliver(header, body); got != payments.NotificationIgnored {
		t.Fatalf("late notification: %s", got)
	}
	if w := b.Wallet(); w != 300 {
		t.Fatalf("wallet %d, want 300", w)
	}
	b.Verify()
}

// A refund goes back to the WeChat Pay balance or card of the payment.
func TestRefundTopUpToWeChatPay(t *testing.T) {
	b := newBench(t)
	ctx := context.Background()
	top := b.start("tap", payments.MethodJSAPI, 1000)
	if err := b.fake.Pay(top.ProviderKey); err != nil {
		t.Fatal(err)
	}
	header, body, err := b.fake.Notification(top.ProviderKey, "EV-1", b.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := b.deliver(header, body); got != payments.NotificationCredited {
		t.Fatalf("notification: %s", got)
	}
	b.fake.SetDown(true)
	r, err := b.Payments.RefundTopUp(ctx, b.Shopper.ID, top.ID, providertest.CNY(400), "r1")
	if err != nil || r.Status != payments.TopUpRefundPending || b.Wallet() != 600 {
		t.Fatalf("refund while down: %+v %v, wallet %d", r, err, b.Wallet())
	}
	b.fake.SetDown(false)
	b.Clock.Add(payments.ReconcileMinAge)
	if n, err := b.Payments.ReconcileTopUpRefunds(ctx, 10); err != nil || n != 1 {
		t.Fatalf("reconcile refunds: %d %v", n, err)
	}
	order, _ := b.fake.Order(top.ProviderKey)
	refunds := b.fake.Refunds()
	if got := refunds[r.ID]; len(refunds) != 1 || got.Amount != 400 || got.TransactionID != order.TransactionID {
		t.Fatalf("refunds at WeChat Pay %+v", refunds)
	}
	_, err = b.Payments.RefundTopUp(ctx, b.Shopper.ID, top.ID, providertest.CNY(700), "r2")
	if p, ok := problem.As(err); !ok || p.Code != payments.CodeRefundExceedsTopUp {
		t.Fatalf("over-refund: %v", err)
	}
	if w := b.Wallet(); w != 600 {
		t.Fatalf("wallet %d, want 600", w)
	}
	b.Verify()
}
