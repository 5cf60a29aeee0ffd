package providerconfig_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/providerconfig"
	"github.com/chatpay/chatpay/payments/wechatpay/fake"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func newKey(id string) string {
	b := make([]byte, providerconfig.KeyLength)
	_, _ = rand.Read(b)
	return id + ":" + base64.StdEncoding.EncodeToString(b)
}

func mustKeys(t *testing.T, spec string) providerconfig.Keys {
	t.Helper()
	keys, err := providerconfig.ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestParseKeys(t *testing.T) {
	for name, spec := range map[string]string{
		"ErrEmpty": "", "ErrNoID": ":" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"ErrShort": "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 16)), "ErrNotBase64": "k1:***",
		"ErrDuplicate": "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ",k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := providerconfig.ParseKeys(spec); err == nil {
				t.Fatalf("%q accepted", spec)
			}
		})
	}
	keys := mustKeys(t, newKey("k2")+","+newKey("k1"))
	if keys.Current != "k2" || len(keys.ByID) != 2 {
		t.Fatalf("keys %v", keys.Current)
	}
}

// Secrets are sealed (never in the clear, never read back), open only for
// their merchant, and survive a key rotation.
func TestSealedAndRotated(t *testing.T) {
	db := testdb.New(t)
	clock := fakeclock.New(time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC))
	ctx := context.Background()
	cat := catalog.NewService(db, clock.Now)
	m, err := cat.CreateMerchant(ctx, catalog.MerchantDraft{Name: "McDonald's", TimeZone: "Asia/Shanghai", DefaultCurrency: "CNY"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := cat.CreateMerchant(ctx, catalog.MerchantDraft{Name: "KFC", TimeZone: "Asia/Shanghai", DefaultCurrency: "CNY"})
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := newKey("k1"), newKey("k2")
	old := providerconfig.New(db, clock.Now, mustKeys(t, k1), providerconfig.URLs{})
	if _, err := old.HostedProvider(ctx, m.ID); !errors.Is(err, payments.ErrNoHostedProvider) {
		t.Fatalf("no provider yet: %v", err)
	}
	err = old.SetStripe(ctx, m.ID, providerconfig.StripeSecrets{SecretKey: "pk_live_wrong", WebhookSecret: "whsec_x"})
	if p, ok := problem.As(err); !ok || p.Code != "validation_failed" {
		t.Fatalf("publishable key accepted: %v", err)
	}
	const secret = "sk_test_51NotARealKey0123456789"
	if err := old.SetStripe(ctx, m.ID, providerconfig.StripeSecrets{SecretKey: secret, WebhookSecret: "whsec_abc"}); err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	if err := db.GetContext(ctx, &sealed, `SELECT sealed FROM merchant_providers WHERE merchant_id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(secret)) || bytes.Contains(sealed, []byte("whsec_abc")) {
		t.Fatal("a secret is stored in the clear")
	}
	if s, err := old.Get(ctx, m.ID); err != nil || bytes.Contains(s.Settings, []byte("sk_")) || s.Provider != "stripe" {
		t.Fatalf("read back %+v %v", s, err)
	}
	if p, err := old.HostedProvider(ctx, m.ID); err != nil || p.Name() != "stripe" {
		t.Fatalf("provider %v %v", p, err)
	}
	// Copied onto another merchant's row, the sealed secrets do not open.
	if _, err := db.ExecContext(ctx, `INSERT INTO merchant_providers SELECT $1, provider, settings, key_id, sealed, created_at, updated_at FROM merchant_providers WHERE merchant_id = $2`, other.ID, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := old.HostedProvider(ctx, other.ID); err == nil {
		t.Fatal("secrets opened for another merchant")
	}
	if err := old.Remove(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	rotating := providerconfig.New(db, clock.Now, mustKeys(t, k2+","+k1), providerconfig.URLs{})
	if n, err := rotating.Rotate(ctx, 10); err != nil || n != 1 {
		t.Fatalf("rotate: %d %v", n, err)
	}
	if n, err := rotating.Rotate(ctx, 10); err != nil || n != 0 {
		t.Fatalf("second rotation: %d %v", n, err)
	}
	onlyNew := providerconfig.New(db, clock.Now, mustKeys(t, k2), providerconfig.URLs{})
	if _, err := onlyNew.HostedProvider(ctx, m.ID); err != nil {
		t.Fatalf("after rotation, the new key alone opens: %v", err)
	}
	if _, err := old.HostedProvider(ctx, m.ID); err == nil {
		t.Fatal("the retired key still opens")
	}
}

// A WeChat Pay configuration builds a working client of the merchant's
// account (here the fake's).
func TestWeChatPaySettings(t *testing.T) {
	db := testdb.New(t)
	clock := fakeclock.New(time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC))
	ctx := context.Background()
	m, err := catalog.NewService(db, clock.Now).CreateMerchant(ctx, catalog.MerchantDraft{Name: "McDonald's", TimeZone: "Asia/Shanghai", DefaultCurrency: "CNY"})
	if err != nil {
		t.Fatal(err)
	}
	server, err := fake.New(clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	store := providerconfig.New(db, clock.Now, mustKeys(t, newKey("k1")), providerconfig.URLs{WeChatPay: server.URL})
	settings := providerconfig.WeChatPaySettings{MchID: fake.MchID, AppID: fake.AppID, MerchantSerial: fake.MerchantSerial,
		PlatformSerial: fake.PlatformSerial, PlatformKeyPEM: string(server.PlatformPublicKeyPEM())}
	err = store.SetWeChatPay(ctx, m.ID, settings, providerconfig.WeChatPaySecrets{MerchantKeyPEM: "not a key", APIv3Key: fake.APIv3Key})
	if p, ok := problem.As(err); !ok || p.Code != "invalid_provider_settings" {
		t.Fatalf("bad key accepted: %v", err)
	}
	if err := store.SetWeChatPay(ctx, m.ID, settings, providerconfig.WeChatPaySecrets{MerchantKeyPEM: string(server.MerchantKeyPEM()), APIv3Key: fake.APIv3Key}); err != nil {
		t.Fatal(err)
	}
	p, err := store.HostedProvider(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	page, err := p.Start(ctx, payments.HostedPayment{TopUpID: "top_x", Key: "top_x0123456789", Method: payments.MethodNative,
		Amount: money300(), Description: "Wallet top-up", NotifyURL: "https://chatpay.example/n", ExpiresAt: clock.Now().Add(time.Hour)})
	if err != nil || page.QRContent == "" {
		t.Fatalf("order through the stored settings: %+v %v", page, err)
	}
}

func money300() money.Amount { return money.New(300, money.MustCurrency("CNY")) }
