package payments

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/problem"
)

// Channel is a messenger backend (a Telegram bot, a WeChat official account…)
// that opens chatpay pages for its users and calls the channel API for them.
type Channel struct {
	ID              string    `db:"id" json:"id"`
	Name            string    `db:"name" json:"name"`
	Kind            string    `db:"kind" json:"kind"`
	LaunchSecret    *string   `db:"launch_secret" json:"-"`
	LaunchPublicKey []byte    `db:"launch_public_key" json:"-"`
	CreatedAt       time.Time `db:"created_at" json:"created_at"`
}

// LaunchKeys returns what verifies this channel's launch contexts.
func (c Channel) LaunchKeys() LaunchKeys {
	keys := LaunchKeys{ChannelID: c.ID}
	if c.LaunchSecret != nil {
		keys.Secret = *c.LaunchSecret
	}
	if len(c.LaunchPublicKey) == ed25519.PublicKeySize {
		keys.PublicKey = ed25519.PublicKey(c.LaunchPublicKey)
	}
	return keys
}

// ChannelKinds are the messengers chatpay knows by name; "other" is any other.
var ChannelKinds = []string{"telegram", "tamtam", "wechat", "whatsapp", "vk", "other"}

// NewChannel is what the operator registers.
type NewChannel struct {
	Name string
	Kind string
	// LaunchPublicKey, when set, is an Ed25519 key; a launch secret is made
	// anyway so the channel may also sign with HMAC.
	LaunchPublicKey ed25519.PublicKey
}

// CreatedChannel carries the secrets shown once at creation.
type CreatedChannel struct {
	Channel      Channel
	APIKey       string // ck_…, only its hash is stored
	LaunchSecret string
}

const channelNameMax = 100

// CreateChannel registers a messenger backend (operator only). It returns
// validation_failed for a bad name or kind.
func (s *Service) CreateChannel(ctx context.Context, in NewChannel) (CreatedChannel, error) {
	created, _, err := s.CreateMessengerChannel(ctx, in, MessengerInput{})
	return created, err
}

// RotateChannelKey gives a channel a new API key; the old one stops working
// at once (a leaked key is the reason to rotate). It returns not_found for
// an unknown channel.
func (s *Service) RotateChannelKey(ctx context.Context, id string) (Channel, string, error) {
	apiKey := ids.Secret(s.channelKeyPrefix(), 24)
	var ch Channel
	const q = `UPDATE channels SET api_key_hash = $2, api_key_hint = $3 WHERE id = $1 RETURNING ` + channelColumns
	err := s.db.GetContext(ctx, &ch, q, id, hashSecret(apiKey), apiKey[:7])
	if errors.Is(err, sql.ErrNoRows) {
		return Channel{}, "", problem.NotFound("channel")
	}
	if err != nil {
		return Channel{}, "", fmt.Errorf("rotate channel key: %w", err)
	}
	return ch, apiKey, nil
}

const channelColumns = `id, name, kind, launch_secret, launch_public_key, created_at`

// Channel returns a channel by id, or not_found.
func (s *Service) Channel(ctx context.Context, id string) (Channel, error) {
	var ch Channel
	err := s.db.GetContext(ctx, &ch, `SELECT `+channelColumns+` FROM channels WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Channel{}, problem.NotFound("channel")
	}
	if err != nil {
		return Channel{}, fmt.Errorf("get channel: %w", err)
	}
	return ch, nil
}

// ChannelByAPIKey authenticates a channel API key, or returns unauthorized.
func (s *Service) ChannelByAPIKey(ctx context.Context, key string) (Channel, error) {
	var ch Channel
	err := s.stmts.Get(ctx, s.db, &ch, `SELECT `+channelColumns+` FROM channels WHERE api_key_hash = $1`, hashSecret(key))
	if errors.Is(err, sql.ErrNoRows) {
		return Channel{}, problem.New(problem.KindUnauthorized, "invalid_api_key", "the channel API key is not valid")
	}
	if err != nil {
		return Channel{}, fmt.Errorf("authenticate channel: %w", err)
	}
	return ch, nil
}

// Shopper is a messenger user, known by (channel, external user id).
type Shopper struct {
	ID             string    `db:"id" json:"id"`
	ChannelID      string    `db:"channel_id" json:"channel_id"`
	ExternalUserID string    `db:"external_user_id" json:"external_user_id"`
	DisplayName    string    `db:"display_name" json:"display_name"`
	CreatedAt      time.Time `db:"created_at" json:"created_at"`
}

// ShopperTextMax bounds a shopper's user id and name, in characters.
const ShopperTextMax = 256

// truncateRunes shortens a name a messenger sent (it is informational: a long
// one must not stop a purchase) without cutting a character in half.
func truncateRunes(s string, max int) string {
	for i := range s {
		if max == 0 {
			return s[:i]
		}
		max--
	}
	return s
}

const shopperColumns = `id, channel_id, external_user_id, display_name, created_at`

// EnsureShopper returns the shopper for (channel, external user id), creating
// it on first sight. Concurrent first sights agree on one row.
func (s *Service) EnsureShopper(ctx context.Context, q sqlx.ExtContext, channelID, externalUserID, displayName string) (Shopper, error) {
	if externalUserID == "" || utf8.RuneCountInString(externalUserID) > ShopperTextMax {
		return Shopper{}, problem.Field("user_id", "invalid_user_id", "a user id of 1 to %d characters is required", ShopperTextMax)
	}
	if utf8.RuneCountInString(displayName) > ShopperTextMax {
		return Shopper{}, problem.Field("name", "too_long", "a name has at most %d characters", ShopperTextMax)
	}
	const insert = `
		INSERT INTO shoppers (id, channel_id, external_user_id, display_name, created_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (channel_id, external_user_id) DO NOTHING`
	if _, err := q.ExecContext(ctx, insert, ids.New("shp"), channelID, externalUserID, displayName, s.now().UTC()); err != nil {
		return Shopper{}, fmt.Errorf("insert shopper: %w", err)
	}
	var sh Shopper
	const sel = `SELECT ` + shopperColumns + ` FROM shoppers WHERE channel_id = $1 AND external_user_id = $2`
	if err := sqlx.GetContext(ctx, q, &sh, sel, channelID, externalUserID); err != nil {
		return Shopper{}, fmt.Errorf("get shopper: %w", err)
	}
	if displayName != "" && sh.DisplayName != displayName {
		// Names change in messengers; keep the latest one for receipts.
		if _, err := q.ExecContext(ctx, `UPDATE shoppers SET display_name = $2 WHERE id = $1`, sh.ID, displayName); err != nil {
			return Shopper{}, fmt.Errorf("update shopper name: %w", err)
		}
		sh.DisplayName = displayName
	}
	return sh, nil
}

const shopperOfChannelSQL = `SELECT ` + shopperColumns + ` FROM shoppers WHERE id = $1 AND channel_id = $2`

// ShopperOfChannel returns a shopper by id if it belongs to the channel.
func (s *Service) ShopperOfChannel(ctx context.Context, channelID, shopperID string) (Shopper, error) {
	var sh Shopper
	err := s.stmts.Get(ctx, s.db, &sh, shopperOfChannelSQL, shopperID, channelID)
	if errors.Is(err, sql.ErrNoRows) {
		return Shopper{}, problem.NotFound("shopper")
	}
	if err != nil {
		return Shopper{}, fmt.Errorf("get shopper: %w", err)
	}
	return sh, nil
}

// A channel's requests name their shopper by id, and a one-call purchase
// read the shopper for it on every call (one statement of eight, issue 19).
// What a purchase or a checkout uses of a shopper never changes once the
// row exists: its id, its channel (which decides whether the channel may
// name it) and its messenger user id (the default chat); shoppers are never
// deleted. Only the display name changes, and nothing that reads this
// cache uses it: namedShopper's callers take the shopper for a purchase or
// a checkout, whose receipts and events do not carry the name.

// channelShoppersMax bounds the cache (internal/memo).
const channelShoppersMax = 100_000

type channelShopper struct{ channelID, shopperID string }

// cachedShopperOfChannel is ShopperOfChannel remembered: found shoppers are
// kept (an unknown one is read again next time). Its DisplayName may be
// older than the row's.
func (s *Service) cachedShopperOfChannel(ctx context.Context, channelID, shopperID string) (Shopper, error) {
	key := channelShopper{channelID: channelID, shopperID: shopperID}
	if sh, ok := s.channelShoppers.Get(key); ok {
		return sh, nil
	}
	sh, err := s.ShopperOfChannel(ctx, channelID, shopperID)
	if err != nil {
		return Shopper{}, err
	}
	s.channelShoppers.Put(key, sh)
	return sh, nil
}

// ShopperFromLaunch verifies a launch context for channelID and returns its
// shopper (created on first sight) and the verified context.
func (s *Service) ShopperFromLaunch(ctx context.Context, channelID, raw string) (Shopper, Launch, error) {
	ch, err := s.Channel(ctx, channelID)
	if err != nil {
		if p, ok := problem.As(err); ok && p.Kind == problem.KindNotFound {
			return Shopper{}, Launch{}, launchRefused("unknown channel")
		}
		return Shopper{}, Launch{}, err
	}
	launch, err := s.verifyChannelLaunch(ctx, ch, raw)
	if err != nil {
		return Shopper{}, Launch{}, err
	}
	var sh Shopper
	err = database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		sh, err = s.EnsureShopper(ctx, tx, ch.ID, launch.UserID, truncateRunes(launch.Name, ShopperTextMax))
		return err
	})
	return sh, launch, err
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
