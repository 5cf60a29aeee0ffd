package payments

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/qr"
)

// A channel's kind decides how chatpay learns who opened a page
// (docs/messengers.md):
//
//   - telegram with a bot token or bot id: Telegram's initData, verified by
//     VerifyTelegramInitData;
//   - vk: VK launch parameters, verified by VerifyVKLaunch;
//   - wechat with an app id: the Official Account's web authorization
//     (wechat_oauth.go), after which chatpay signs a generic context itself;
//   - every other channel: chatpay's generic signed context (launch.go).
//
// Pages carry a messenger's proof in a launch envelope,
//
//	channel_id=<channel>&launch_data=<the messenger's text, URL-escaped>
//
// because Telegram's and VK's texts do not name chatpay's channel and must
// reach the verifier byte for byte. A generic context names its channel
// itself and travels as it is.
const (
	launchEnvelopeChannel = "channel_id"
	launchEnvelopeData    = "launch_data"
	// launchEnvelopeBytesMax bounds an envelope: the escaped form of the
	// largest initData accepted, three bytes per byte at worst.
	launchEnvelopeBytesMax = 3*telegramInitDataBytesMax + 256
)

// LaunchEnvelope wraps a messenger's launch text for the channel, or
// returns raw unchanged when it is a generic context (it names a channel).
func LaunchEnvelope(channelID, raw string) string {
	if channelID == "" || raw == "" {
		return raw
	}
	if fields, err := url.ParseQuery(raw); err == nil && fields.Get(launchEnvelopeChannel) != "" {
		return raw
	}
	return url.Values{launchEnvelopeChannel: {channelID}, launchEnvelopeData: {raw}}.Encode()
}

// ErrUnknownChannel is the refusal of a launch for a channel chatpay does not know.
func ErrUnknownChannel() error { return launchRefused("unknown channel") }

// MessengerSettings are what a channel registered for its messenger. The
// secrets stay in the database: json never shows them.
type MessengerSettings struct {
	TelegramBotID        *int64  `db:"telegram_bot_id" json:"telegram_bot_id,omitempty"`
	TelegramSecretKey    []byte  `db:"telegram_secret_key" json:"-"`
	TelegramTestEnv      bool    `db:"telegram_test_env" json:"telegram_test_environment"`
	TelegramBotUsername  *string `db:"telegram_bot_username" json:"telegram_bot_username,omitempty"`
	TelegramAppShortName *string `db:"telegram_app_short_name" json:"telegram_app_short_name,omitempty"`
	WhatsAppNumber       *string `db:"whatsapp_number" json:"whatsapp_number,omitempty"`
	VKAppID              *int64  `db:"vk_app_id" json:"vk_app_id,omitempty"`
	VKAppSecret          *string `db:"vk_app_secret" json:"-"`
	WeChatAppID          *string `db:"wechat_app_id" json:"wechat_app_id,omitempty"`
	WeChatAppSecret      *string `db:"wechat_app_secret" json:"-"`
}

// TelegramKeys returns what verifies the channel's initData; ok is false
// when it registered neither a bot token nor a bot id.
func (m MessengerSettings) TelegramKeys() (TelegramKeys, bool) {
	keys := TelegramKeys{SecretKey: m.TelegramSecretKey, TestEnvironment: m.TelegramTestEnv}
	if m.TelegramBotID != nil {
		keys.BotID = *m.TelegramBotID
	}
	return keys, keys.BotID > 0 || len(keys.SecretKey) > 0
}

// WeChat reports whether the channel signs shoppers in with WeChat.
func (m MessengerSettings) WeChat() bool { return m.WeChatAppID != nil && m.WeChatAppSecret != nil }

const messengerColumns = `telegram_bot_id, telegram_secret_key, telegram_test_env, telegram_bot_username,
	telegram_app_short_name, whatsapp_number, vk_app_id, vk_app_secret, wechat_app_id, wechat_app_secret`

// ChannelMessenger returns a channel's messenger settings, or not_found.
func (s *Service) ChannelMessenger(ctx context.Context, channelID string) (MessengerSettings, error) {
	var m MessengerSettings
	err := s.db.GetContext(ctx, &m, `SELECT `+messengerColumns+` FROM channels WHERE id = $1`, channelID)
	if errors.Is(err, sql.ErrNoRows) {
		return MessengerSettings{}, problem.NotFound("channel")
	}
	if err != nil {
		return MessengerSettings{}, fmt.Errorf("get channel messenger: %w", err)
	}
	return m, nil
}

// MessengerInput is what the operator registers for a channel's messenger.
// A Telegram bot token is reduced to the key that verifies initData at once
// and never stored or shown again.
type MessengerInput struct {
	TelegramBotToken        string
	TelegramBotID           int64 // third-party mode: no token held
	TelegramTestEnvironment bool
	TelegramBotUsername     string
	TelegramAppShortName    string
	WhatsAppNumber          string
	VKAppID                 int64
	VKAppSecret             string
	WeChatAppID             string
	WeChatAppSecret         string
}

// The forms of messenger settings, as the schema checks them too.
var (
	telegramUsernamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{3,31}$`)
	telegramAppNamePattern  = regexp.MustCompile(`^[A-Za-z0-9_]{3,30}$`)
	whatsAppNumberPattern   = regexp.MustCompile(`^[1-9][0-9]{6,14}$`)
	weChatAppIDPattern      = regexp.MustCompile(`^[A-Za-z0-9_]{4,64}$`)
)

const (
	messengerSecretBytesMin  = 8
	messengerSecretBytesMax  = 128
	messengerSettingsInvalid = "invalid_messenger_settings"
)

// settings validates in for a channel of kind and turns it into what is
// stored. It returns validation_failed naming the field.
func (in MessengerInput) settings(kind string) (MessengerSettings, error) {
	var m MessengerSettings
	if in.TelegramBotToken != "" {
		id, ok := TelegramBotID(in.TelegramBotToken)
		if !ok {
			return m, problem.Field("telegram_bot_token", messengerSettingsInvalid, "a bot token looks like 123456789:AA… as @BotFather gives it")
		}
		if in.TelegramBotID != 0 && in.TelegramBotID != id {
			return m, problem.Field("telegram_bot_id", messengerSettingsInvalid, "the bot id is %d in the token, not %d", id, in.TelegramBotID)
		}
		m.TelegramSecretKey, in.TelegramBotID = TelegramSecretKey(in.TelegramBotToken), id
	}
	if in.TelegramBotID < 0 {
		return m, problem.Field("telegram_bot_id", messengerSettingsInvalid, "a bot id is a positive number")
	}
	m.TelegramTestEnv = in.TelegramTestEnvironment
	checks := []struct {
		field, value string
		ok           bool
		into         **string
	}{
		{"telegram_bot_username", strings.TrimPrefix(in.TelegramBotUsername, "@"), telegramUsernamePattern.MatchString(strings.TrimPrefix(in.TelegramBotUsername, "@")), &m.TelegramBotUsername},
		{"telegram_app_short_name", in.TelegramAppShortName, telegramAppNamePattern.MatchString(in.TelegramAppShortName), &m.TelegramAppShortName},
		{"whatsapp_number", strings.TrimPrefix(in.WhatsAppNumber, "+"), whatsAppNumberPattern.MatchString(strings.TrimPrefix(in.WhatsAppNumber, "+")), &m.WhatsAppNumber},
		{"vk_app_secret", in.VKAppSecret, len(in.VKAppSecret) >= messengerSecretBytesMin && len(in.VKAppSecret) <= messengerSecretBytesMax, &m.VKAppSecret},
		{"wechat_app_id", in.WeChatAppID, weChatAppIDPattern.MatchString(in.WeChatAppID), &m.WeChatAppID},
		{"wechat_app_secret", in.WeChatAppSecret, len(in.WeChatAppSecret) >= messengerSecretBytesMin && len(in.WeChatAppSecret) <= messengerSecretBytesMax, &m.WeChatAppSecret},
	}
	for _, c := range checks {
		if c.value == "" {
			continue
		}
		if !c.ok {
			return m, problem.Field(c.field, messengerSettingsInvalid, "%s is not valid", c.field)
		}
		v := c.value
		*c.into = &v
	}
	if in.TelegramBotID > 0 {
		m.TelegramBotID = &in.TelegramBotID
	}
	if in.VKAppID > 0 {
		m.VKAppID = &in.VKAppID
	}
	return m, m.checkKind(kind)
}

// checkKind refuses settings a channel of kind cannot use, so nothing is
// stored that would never be read.
func (m MessengerSettings) checkKind(kind string) error {
	switch {
	case kind == "vk" && (m.VKAppID == nil || m.VKAppSecret == nil):
		return problem.Field("vk_app_id", messengerSettingsInvalid, "a vk channel needs vk_app_id and vk_app_secret")
	case (m.WeChatAppID == nil) != (m.WeChatAppSecret == nil):
		return problem.Field("wechat_app_secret", messengerSettingsInvalid, "wechat_app_id and wechat_app_secret go together")
	case kind != "telegram" && (m.TelegramBotID != nil || m.TelegramBotUsername != nil):
		return problem.Field("kind", messengerSettingsInvalid, "Telegram settings need a channel of kind telegram")
	case kind != "vk" && m.VKAppID != nil:
		return problem.Field("kind", messengerSettingsInvalid, "VK settings need a channel of kind vk")
	case kind != "wechat" && m.WeChatAppID != nil:
		return problem.Field("kind", messengerSettingsInvalid, "WeChat settings need a channel of kind wechat")
	case kind != "whatsapp" && m.WhatsAppNumber != nil:
		return problem.Field("kind", messengerSettingsInvalid, "a WhatsApp number needs a channel of kind whatsapp")
	case m.TelegramAppShortName != nil && m.TelegramBotUsername == nil:
		return problem.Field("telegram_bot_username", messengerSettingsInvalid, "a Mini App short name needs the bot's username")
	}
	return nil
}

// CreateMessengerChannel registers a channel with its messenger settings
// (operator only). Bad input writes nothing: it returns validation_failed
// naming the field.
func (s *Service) CreateMessengerChannel(ctx context.Context, in NewChannel, messenger MessengerInput) (CreatedChannel, MessengerSettings, error) {
	m, err := messenger.settings(in.Kind)
	if err != nil {
		return CreatedChannel{}, MessengerSettings{}, err
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > channelNameMax {
		return CreatedChannel{}, MessengerSettings{}, problem.Field("name", "invalid_name", "a channel name of 1 to %d characters is required", channelNameMax)
	}
	if !contains(ChannelKinds, in.Kind) {
		return CreatedChannel{}, MessengerSettings{}, problem.Field("kind", "invalid_kind", "kind must be one of %s", strings.Join(ChannelKinds, ", "))
	}
	if len(in.LaunchPublicKey) > 0 && len(in.LaunchPublicKey) != ed25519.PublicKeySize {
		return CreatedChannel{}, MessengerSettings{}, problem.Field("launch_public_key", "invalid_key", "an Ed25519 public key is %d bytes", ed25519.PublicKeySize)
	}
	secret := ids.Secret("ls", 24)
	apiKey := ids.Secret(s.channelKeyPrefix(), 24)
	ch := Channel{ID: ids.New("chn"), Name: in.Name, Kind: in.Kind, LaunchSecret: &secret, CreatedAt: s.now().UTC()}
	if len(in.LaunchPublicKey) > 0 {
		ch.LaunchPublicKey = in.LaunchPublicKey
	}
	const q = `
		INSERT INTO channels (id, name, kind, launch_secret, launch_public_key, api_key_hash, api_key_hint, created_at,
		                      ` + messengerColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`
	if _, err := s.db.ExecContext(ctx, q, ch.ID, ch.Name, ch.Kind, ch.LaunchSecret, ch.LaunchPublicKey,
		hashSecret(apiKey), apiKey[:7], ch.CreatedAt,
		m.TelegramBotID, m.TelegramSecretKey, m.TelegramTestEnv, m.TelegramBotUsername, m.TelegramAppShortName,
		m.WhatsAppNumber, m.VKAppID, m.VKAppSecret, m.WeChatAppID, m.WeChatAppSecret); err != nil {
		return CreatedChannel{}, MessengerSettings{}, fmt.Errorf("insert channel: %w", err)
	}
	return CreatedChannel{Channel: ch, APIKey: apiKey, LaunchSecret: secret}, m, nil
}

// verifyChannelLaunch verifies raw the way the channel's messenger signs it.
func (s *Service) verifyChannelLaunch(ctx context.Context, ch Channel, raw string) (Launch, error) {
	if len(raw) > launchEnvelopeBytesMax {
		return Launch{}, launchRefused("the launch data is longer than %d bytes", launchEnvelopeBytesMax)
	}
	if strings.Contains(raw, "\x00") {
		return Launch{}, launchRefused("the launch data contains a NUL byte")
	}
	launch, err := s.verifyMessengerLaunch(ctx, ch, raw)
	if err != nil {
		return Launch{}, err
	}
	if launch.Messenger == "" {
		// A generic context came through the channel's own messenger.
		launch.Messenger = ch.Kind
	}
	return launch, nil
}

func (s *Service) verifyMessengerLaunch(ctx context.Context, ch Channel, raw string) (Launch, error) {
	envelope, err := url.ParseQuery(raw)
	data := envelope.Get(launchEnvelopeData)
	if err != nil || data == "" {
		// A generic context, signed by the channel's backend.
		return VerifyLaunch(raw, ch.LaunchKeys(), s.now(), s.launchMaxAge)
	}
	if len(envelope) != 2 || len(envelope[launchEnvelopeData]) != 1 || len(envelope[launchEnvelopeChannel]) != 1 {
		return Launch{}, launchRefused("the launch envelope must hold exactly channel_id and launch_data")
	}
	m, err := s.ChannelMessenger(ctx, ch.ID)
	if err != nil {
		return Launch{}, err
	}
	switch ch.Kind {
	case "telegram":
		keys, ok := m.TelegramKeys()
		if !ok {
			return Launch{}, launchRefused("this Telegram channel registered no bot token or bot id, so it cannot verify initData")
		}
		return VerifyTelegramInitData(data, keys, s.now(), s.launchMaxAge)
	case "vk":
		if m.VKAppID == nil || m.VKAppSecret == nil {
			return Launch{}, launchRefused("this VK channel registered no app secret")
		}
		return VerifyVKLaunch(data, VKKeys{AppID: *m.VKAppID, Secret: *m.VKAppSecret}, s.now(), s.launchMaxAge)
	}
	return VerifyLaunch(data, ch.LaunchKeys(), s.now(), s.launchMaxAge)
}

// messengerJSON is the admin API's form of MessengerInput. The ids are
// pointers so that a zero or negative id that was sent is refused, not taken
// for an absent one.
type messengerJSON struct {
	TelegramBotToken        string `json:"telegram_bot_token"`
	TelegramBotID           *int64 `json:"telegram_bot_id"`
	TelegramTestEnvironment bool   `json:"telegram_test_environment"`
	TelegramBotUsername     string `json:"telegram_bot_username"`
	TelegramAppShortName    string `json:"telegram_app_short_name"`
	WhatsAppNumber          string `json:"whatsapp_number"`
	VKAppID                 *int64 `json:"vk_app_id"`
	VKAppSecret             string `json:"vk_app_secret"`
	WeChatAppID             string `json:"wechat_app_id"`
	WeChatAppSecret         string `json:"wechat_app_secret"`
}

func (m messengerJSON) input() (MessengerInput, error) {
	in := MessengerInput{
		TelegramBotToken: m.TelegramBotToken, TelegramTestEnvironment: m.TelegramTestEnvironment,
		TelegramBotUsername: m.TelegramBotUsername, TelegramAppShortName: m.TelegramAppShortName,
		WhatsAppNumber: m.WhatsAppNumber, VKAppSecret: m.VKAppSecret, WeChatAppID: m.WeChatAppID, WeChatAppSecret: m.WeChatAppSecret,
	}
	if m.TelegramBotID != nil {
		if *m.TelegramBotID <= 0 {
			return in, problem.Field("telegram_bot_id", messengerSettingsInvalid, "a bot id is a positive number")
		}
		in.TelegramBotID = *m.TelegramBotID
	}
	if m.VKAppID != nil {
		if *m.VKAppID <= 0 {
			return in, problem.Field("vk_app_id", messengerSettingsInvalid, "a VK app id is a positive number")
		}
		in.VKAppID = *m.VKAppID
	}
	return in, nil
}

// ChannelLinker tells package qr how a code opens a channel's messenger
// (qr.WithChannelLinker). It needs only the pool, so the wiring hands it to
// qr before the payments service exists. The lookup returns not_found for an
// unknown channel.
func ChannelLinker(db *sqlx.DB) qr.ChannelLinker {
	return func(ctx context.Context, channelID string) (qr.ChannelLink, error) {
		var row struct {
			ID   string `db:"id"`
			Kind string `db:"kind"`
			MessengerSettings
		}
		err := db.GetContext(ctx, &row, `SELECT id, kind, `+messengerColumns+` FROM channels WHERE id = $1`, channelID)
		if errors.Is(err, sql.ErrNoRows) {
			return qr.ChannelLink{}, problem.NotFound("channel")
		}
		if err != nil {
			return qr.ChannelLink{}, fmt.Errorf("get channel link: %w", err)
		}
		return channelLink(row.ID, row.Kind, row.MessengerSettings), nil
	}
}

func channelLink(id, kind string, m MessengerSettings) qr.ChannelLink {
	link := qr.ChannelLink{ChannelID: id, Kind: kind}
	if m.TelegramBotUsername != nil {
		link.TelegramBot = *m.TelegramBotUsername
	}
	if m.TelegramAppShortName != nil {
		link.TelegramApp = *m.TelegramAppShortName
	}
	if m.WhatsAppNumber != nil {
		link.WhatsApp = *m.WhatsAppNumber
	}
	return link
}

// ChooserChannels are the channels a multi-messenger code offers: for each
// messenger, the oldest channel a code can open (a Telegram bot with a
// username, a WhatsApp number, a WeChat Official Account).
func (s *Service) ChooserChannels(ctx context.Context) ([]qr.ChannelLink, error) {
	const q = `
		SELECT DISTINCT ON (kind) id, kind, ` + messengerColumns + `
		FROM channels
		WHERE (kind = 'telegram' AND telegram_bot_username IS NOT NULL)
		   OR (kind = 'whatsapp' AND whatsapp_number IS NOT NULL)
		   OR (kind = 'wechat' AND wechat_app_id IS NOT NULL)
		ORDER BY kind, created_at, id`
	var rows []struct {
		ID   string `db:"id"`
		Kind string `db:"kind"`
		MessengerSettings
	}
	if err := s.db.SelectContext(ctx, &rows, q); err != nil {
		return nil, fmt.Errorf("select chooser channels: %w", err)
	}
	links := make([]qr.ChannelLink, 0, len(rows))
	for _, r := range rows {
		links = append(links, channelLink(r.ID, r.Kind, r.MessengerSettings))
	}
	return links, nil
}
