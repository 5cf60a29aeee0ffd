// Package providerconfig keeps which real payment provider each merchant
// takes top-ups with, and its credentials, sealed at rest with AES-256-GCM
// under a key from chatpay's environment. Secrets go in once and are never
// shown again (only the non-secret settings are read back); keys are named,
// so a new key can seal while old ones still open, and Rotate re-seals every
// row under the current key. It is the payments.ProviderDirectory that cmd
// wires in, and it owns the merchant_providers table.
package providerconfig

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/stripe"
	"github.com/chatpay/chatpay/payments/wechatpay"
)

// KeyLength is the length of a sealing key: AES-256.
const KeyLength = 32

// Keys are the sealing keys by id; Current seals, every one opens.
type Keys struct {
	Current string
	ByID    map[string][]byte
}

// ParseKeys reads "id:base64key[,id:base64key…]", the first being the
// current one (the environment variable cmd documents).
func ParseKeys(spec string) (Keys, error) {
	keys := Keys{ByID: map[string][]byte{}}
	for i, part := range strings.Split(spec, ",") {
		id, encoded, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || id == "" || len(id) > 64 {
			return Keys{}, fmt.Errorf("provider key %d: want id:base64key", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(key) != KeyLength {
			return Keys{}, fmt.Errorf("provider key %s: want %d bytes in base64 (openssl rand -base64 32)", id, KeyLength)
		}
		if _, dup := keys.ByID[id]; dup {
			return Keys{}, fmt.Errorf("provider key %s given twice", id)
		}
		if i == 0 {
			keys.Current = id
		}
		keys.ByID[id] = key
	}
	return keys, nil
}

// URLs are the providers' API base URLs ("" is the real service); tests and
// demos point them at stripe-mock and the fake WeChat Pay on loopback.
type URLs struct {
	Stripe    string
	WeChatPay string
}

// Store is the merchants' provider settings.
type Store struct {
	db   *sqlx.DB
	now  func() time.Time
	keys Keys
	urls URLs
}

// New returns the store; keys may be empty, then only reading merchants
// without a provider works.
func New(db *sqlx.DB, now func() time.Time, keys Keys, urls URLs) *Store {
	return &Store{db: db, now: now, keys: keys, urls: urls}
}

// StripeSecrets are a merchant's Stripe credentials.
type StripeSecrets struct {
	SecretKey     string `json:"secret_key"`
	WebhookSecret string `json:"webhook_secret"`
}

// WeChatPaySettings are a merchant's non-secret WeChat Pay settings.
type WeChatPaySettings struct {
	MchID          string `json:"mchid"`
	AppID          string `json:"appid"`
	MerchantSerial string `json:"merchant_serial"`
	PlatformSerial string `json:"platform_serial"`
	// PlatformKeyPEM is WeChat Pay's public key (or platform certificate):
	// public, kept in the clear.
	PlatformKeyPEM string `json:"platform_key_pem"`
}

// WeChatPaySecrets are a merchant's WeChat Pay secrets.
type WeChatPaySecrets struct {
	MerchantKeyPEM string `json:"merchant_key_pem"`
	APIv3Key       string `json:"apiv3_key"`
}

// Setting is what can be read back of a merchant's configuration.
type Setting struct {
	MerchantID string          `db:"merchant_id"`
	Provider   string          `db:"provider"`
	Settings   json.RawMessage `db:"settings"`
	KeyID      string          `db:"key_id"`
	UpdatedAt  time.Time       `db:"updated_at"`
}

// SetStripe makes merchantID take top-ups with its Stripe account. The
// credentials are checked (a provider is built from them) before they are
// sealed.
func (s *Store) SetStripe(ctx context.Context, merchantID string, secrets StripeSecrets) error {
	if !strings.HasPrefix(secrets.SecretKey, "sk_") && !strings.HasPrefix(secrets.SecretKey, "rk_") {
		return problem.Field("secret_key", "invalid_secret_key", "a Stripe secret key starts with sk_ or rk_")
	}
	if !strings.HasPrefix(secrets.WebhookSecret, "whsec_") {
		return problem.Field("webhook_secret", "invalid_webhook_secret", "a Stripe webhook signing secret starts with whsec_")
	}
	return s.set(ctx, merchantID, stripe.Name, struct{}{}, secrets)
}

// SetWeChatPay makes merchantID take top-ups with its WeChat Pay account.
func (s *Store) SetWeChatPay(ctx context.Context, merchantID string, settings WeChatPaySettings, secrets WeChatPaySecrets) error {
	if _, err := s.wechatPay(settings, secrets); err != nil {
		return problem.New(problem.KindInvalid, "invalid_provider_settings", "%s", err.Error())
	}
	return s.set(ctx, merchantID, wechatpay.Name, settings, secrets)
}

func (s *Store) set(ctx context.Context, merchantID, provider string, settings, secrets any) error {
	public, err := json.Marshal(settings)
	if err != nil {
		return fmt.Errorf("provider settings: %w", err)
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return fmt.Errorf("provider secrets: %w", err)
	}
	sealed, err := s.seal(merchantID, plain)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	const upsert = `
		INSERT INTO merchant_providers (merchant_id, provider, settings, key_id, sealed, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6)
		ON CONFLICT (merchant_id) DO UPDATE SET provider = $2, settings = $3, key_id = $4, sealed = $5, updated_at = $6`
	if _, err := s.db.ExecContext(ctx, upsert, merchantID, provider, public, s.keys.Current, sealed, now); err != nil {
		return fmt.Errorf("store provider of %s: %w", merchantID, err)
	}
	return nil
}

// Remove puts merchantID back on the sandbox.
func (s *Store) Remove(ctx context.Context, merchantID string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM merchant_providers WHERE merchant_id = $1`, merchantID); err != nil {
		return fmt.Errorf("remove provider of %s: %w", merchantID, err)
	}
	return nil
}

// Get returns what may be shown of merchantID's configuration (never a
// secret); not_found when it has none.
func (s *Store) Get(ctx context.Context, merchantID string) (Setting, error) {
	var out Setting
	const sel = `SELECT merchant_id, provider, settings, key_id, updated_at FROM merchant_providers WHERE merchant_id = $1`
	err := s.db.GetContext(ctx, &out, sel, merchantID)
	if errors.Is(err, sql.ErrNoRows) {
		return Setting{}, problem.NotFound("payment provider")
	}
	if err != nil {
		return Setting{}, fmt.Errorf("read provider of %s: %w", merchantID, err)
	}
	return out, nil
}

// HostedProvider implements payments.ProviderDirectory.
func (s *Store) HostedProvider(ctx context.Context, merchantID string) (payments.HostedProvider, error) {
	var row struct {
		Provider string `db:"provider"`
		Settings []byte `db:"settings"`
		KeyID    string `db:"key_id"`
		Sealed   []byte `db:"sealed"`
	}
	const sel = `SELECT provider, settings, key_id, sealed FROM merchant_providers WHERE merchant_id = $1`
	err := s.db.GetContext(ctx, &row, sel, merchantID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, payments.ErrNoHostedProvider
	}
	if err != nil {
		return nil, fmt.Errorf("read provider of %s: %w", merchantID, err)
	}
	plain, err := s.open(merchantID, row.KeyID, row.Sealed)
	if err != nil {
		return nil, err
	}
	switch row.Provider {
	case stripe.Name:
		var secrets StripeSecrets
		if err := json.Unmarshal(plain, &secrets); err != nil {
			return nil, fmt.Errorf("stripe secrets of %s: %w", merchantID, err)
		}
		return stripe.New(stripe.Config{SecretKey: secrets.SecretKey, WebhookSecret: secrets.WebhookSecret, BaseURL: s.urls.Stripe})
	case wechatpay.Name:
		var settings WeChatPaySettings
		var secrets WeChatPaySecrets
		if err := json.Unmarshal(row.Settings, &settings); err != nil {
			return nil, fmt.Errorf("wechatpay settings of %s: %w", merchantID, err)
		}
		if err := json.Unmarshal(plain, &secrets); err != nil {
			return nil, fmt.Errorf("wechatpay secrets of %s: %w", merchantID, err)
		}
		return s.wechatPay(settings, secrets)
	}
	return nil, fmt.Errorf("merchant %s: unknown provider %q", merchantID, row.Provider)
}

func (s *Store) wechatPay(settings WeChatPaySettings, secrets WeChatPaySecrets) (*wechatpay.Provider, error) {
	merchantKey, err := wechatpay.ParsePrivateKey([]byte(secrets.MerchantKeyPEM))
	if err != nil {
		return nil, err
	}
	platformKey, err := wechatpay.ParsePublicKey([]byte(settings.PlatformKeyPEM))
	if err != nil {
		return nil, err
	}
	return wechatpay.New(wechatpay.Config{
		MchID: settings.MchID, AppID: settings.AppID, MerchantSerial: settings.MerchantSerial, MerchantKey: merchantKey,
		APIv3Key: secrets.APIv3Key, PlatformSerial: settings.PlatformSerial, PlatformKey: platformKey,
		BaseURL: s.urls.WeChatPay, Now: s.now,
	})
}

// Rotate re-seals every row not sealed with the current key, at most
// batchMax of them; it returns how many it re-sealed. Each row is re-read
// under lock, so a concurrent Set is never overwritten with old secrets.
func (s *Store) Rotate(ctx context.Context, batchMax int) (int, error) {
	var ids []string
	const sel = `SELECT merchant_id FROM merchant_providers WHERE key_id <> $1 ORDER BY merchant_id LIMIT $2`
	if err := s.db.SelectContext(ctx, &ids, sel, s.keys.Current, batchMax); err != nil {
		return 0, fmt.Errorf("rows to rotate: %w", err)
	}
	for _, id := range ids {
		err := rotateOne(ctx, s, id)
		if err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

func rotateOne(ctx context.Context, s *Store, merchantID string) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", merchantID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a committed tx makes this a no-op
	var row struct {
		KeyID  string `db:"key_id"`
		Sealed []byte `db:"sealed"`
	}
	const lock = `SELECT key_id, sealed FROM merchant_providers WHERE merchant_id = $1 FOR UPDATE`
	if err := tx.GetContext(ctx, &row, lock, merchantID); err != nil {
		return fmt.Errorf("rotate %s: %w", merchantID, err)
	}
	plain, err := s.open(merchantID, row.KeyID, row.Sealed)
	if err != nil {
		return err
	}
	sealed, err := s.seal(merchantID, plain)
	if err != nil {
		return err
	}
	const update = `UPDATE merchant_providers SET key_id = $2, sealed = $3, updated_at = $4 WHERE merchant_id = $1`
	if _, err := tx.ExecContext(ctx, update, merchantID, s.keys.Current, sealed, s.now().UTC()); err != nil {
		return fmt.Errorf("rotate %s: %w", merchantID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rotate %s: commit: %w", merchantID, err)
	}
	return nil
}

// seal is nonce ‖ AES-256-GCM(plain) under the current key, with the
// merchant id as associated data: a sealed row copied to another merchant
// does not open.
func (s *Store) seal(merchantID string, plain []byte) ([]byte, error) {
	aead, err := s.aead(s.keys.Current)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, []byte(merchantID)), nil
}

func (s *Store) open(merchantID, keyID string, sealed []byte) ([]byte, error) {
	aead, err := s.aead(keyID)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("provider secrets of %s: too short", merchantID)
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(merchantID))
	if err != nil {
		return nil, fmt.Errorf("provider secrets of %s do not open with key %s: %w", merchantID, keyID, err)
	}
	return plain, nil
}

func (s *Store) aead(keyID string) (cipher.AEAD, error) {
	key, ok := s.keys.ByID[keyID]
	if !ok {
		return nil, fmt.Errorf("provider sealing key %q is not configured (CHATPAY_PROVIDER_KEYS)", keyID)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}
