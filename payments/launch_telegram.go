package payments

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Telegram Mini Apps hand the page Telegram.WebApp.initData, a URL-encoded
// query string such as
//
//	query_id=…&user={"id":279058397,"first_name":"Vladislav",…,"language_code":"ru"}
//	&chat_instance=…&chat_type=private&auth_date=1733509682&signature=…&hash=…
//
// that Telegram signs two ways (https://core.telegram.org/bots/webapps,
// "Validating data received via the Mini App"):
//
//   - first party, with the bot token:
//     secret_key = HMAC-SHA256(key = "WebAppData", message = bot token)
//     hash       = hex(HMAC-SHA256(key = secret_key, message = data_check_string))
//     where data_check_string is every received field but hash (signature
//     included), as key=value sorted by key and joined by "\n";
//   - third party, with the bot id only: signature is base64url (no padding)
//     of an Ed25519 signature, by Telegram's published key for the
//     environment, of "<bot_id>:WebAppData\n" + data_check_string without
//     hash and signature.
//
// chatpay verifies the text exactly as Telegram sent it: unknown fields are
// kept and signed over, never dropped or refused.
const (
	// telegramInitDataBytesMax bounds initData before parsing. Real initData
	// is one to three KB (a user with photo_url, receiver and chat objects,
	// the signature and hash); 8 KiB leaves room without inviting abuse.
	telegramInitDataBytesMax = 8 << 10
	// telegramFieldBytesMax bounds one decoded field (a JSON object).
	telegramFieldBytesMax = 4 << 10
	// telegramFieldsMax bounds the number of fields (Telegram sends ≤ 12).
	telegramFieldsMax = 32
	// telegramNameBytesMax bounds the display name built from first and last name.
	telegramNameBytesMax = 256
)

// Telegram's Ed25519 public keys for third-party validation, as published in
// the Mini Apps documentation.
const (
	TelegramPublicKeyProductionHex = "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d"
	TelegramPublicKeyTestHex       = "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec"
)

// TelegramPublicKeys are the keys of Telegram's two environments.
type TelegramPublicKeys struct {
	Production ed25519.PublicKey
	Test       ed25519.PublicKey
}

// TelegramPublishedKeys are Telegram's own keys.
var TelegramPublishedKeys = TelegramPublicKeys{
	Production: mustHexKey(TelegramPublicKeyProductionHex),
	Test:       mustHexKey(TelegramPublicKeyTestHex),
}

func mustHexKey(s string) ed25519.PublicKey {
	key, err := hex.DecodeString(s)
	if err != nil || len(key) != ed25519.PublicKeySize {
		panic("payments: bad built-in Ed25519 key " + s)
	}
	return key
}

// TelegramKeys verify one bot's initData.
type TelegramKeys struct {
	// BotID is the number before the colon of the bot token; it is all the
	// third-party check needs.
	BotID int64
	// SecretKey is HMAC-SHA256(key "WebAppData", bot token), the only form
	// in which chatpay keeps a token; nil in third-party mode.
	SecretKey []byte
	// TestEnvironment selects Telegram's test-environment key.
	TestEnvironment bool
	// PublicKeys are Telegram's keys; zero means TelegramPublishedKeys.
	PublicKeys TelegramPublicKeys
}

// TelegramSecretKey derives the key that verifies initData from a bot token.
func TelegramSecretKey(botToken string) []byte {
	mac := hmac.New(sha256.New, []byte(launchKeyDerivation))
	mac.Write([]byte(botToken))
	return mac.Sum(nil)
}

// TelegramBotID reads the bot id from a bot token ("123456:ABC…").
func TelegramBotID(botToken string) (int64, bool) {
	idText, secret, found := strings.Cut(botToken, ":")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !found || err != nil || id <= 0 || len(secret) < 8 {
		return 0, false
	}
	return id, true
}

// telegramPerson is the part of Telegram's WebAppUser chatpay reads.
type telegramPerson struct {
	ID           json.Number `json:"id"`
	FirstName    string      `json:"first_name"`
	LastName     string      `json:"last_name"`
	Username     string      `json:"username"`
	LanguageCode string      `json:"language_code"`
}

// telegramChat is the part of Telegram's WebAppChat chatpay reads.
type telegramChat struct {
	ID   json.Number `json:"id"`
	Type string      `json:"type"`
}

// VerifyTelegramInitData checks initData against a bot's keys at now. It
// returns invalid_launch_context (401) with a plain reason: malformed or
// oversized text, NUL bytes, a bad hash, a signature that does not verify
// for this bot or this environment, a stale or future auth_date, or a
// missing user.
func VerifyTelegramInitData(raw string, keys TelegramKeys, now time.Time, maxAge time.Duration) (Launch, error) {
	fields, err := parseTelegramInitData(raw)
	if err != nil {
		return Launch{}, err
	}
	if err := keys.verify(fields); err != nil {
		return Launch{}, err
	}
	authDate, err := checkAuthDate(fields["auth_date"], now, maxAge)
	if err != nil {
		return Launch{}, err
	}
	return telegramLaunch(fields, authDate)
}

// parseTelegramInitData splits initData into its fields, refusing what no
// Telegram client sends: oversized text, NUL bytes, invalid UTF-8,
// repeated fields.
func parseTelegramInitData(raw string) (map[string]string, error) {
	if raw == "" {
		return nil, launchRefused("no Telegram initData: open this page from the Telegram Mini App")
	}
	if len(raw) > telegramInitDataBytesMax {
		return nil, launchRefused("the initData is %d bytes, longer than the %d a Telegram client sends", len(raw), telegramInitDataBytesMax)
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return nil, launchRefused("the initData is not a URL-encoded query string")
	}
	if len(values) > telegramFieldsMax {
		return nil, launchRefused("the initData has %d fields, more than %d", len(values), telegramFieldsMax)
	}
	fields := make(map[string]string, len(values))
	for key, vs := range values {
		if len(vs) != 1 {
			return nil, launchRefused("field %q appears %d times", key, len(vs))
		}
		value := vs[0]
		switch {
		case len(value) > telegramFieldBytesMax:
			return nil, launchRefused("field %q is longer than %d bytes", key, telegramFieldBytesMax)
		case strings.ContainsRune(key+value, 0):
			return nil, launchRefused("field %q contains a NUL byte", key)
		case !utf8.ValidString(key) || !utf8.ValidString(value):
			return nil, launchRefused("field %q is not UTF-8 text", key)
		}
		fields[key] = value
	}
	return fields, nil
}

// verify checks the hash with the bot's secret key when chatpay holds one,
// otherwise Telegram's Ed25519 signature for the bot id.
func (k TelegramKeys) verify(fields map[string]string) error {
	hash, signature := fields["hash"], fields["signature"]
	switch {
	case len(k.SecretKey) == sha256.Size && hash != "":
		got, err := hex.DecodeString(hash)
		if err != nil || !hmac.Equal(got, telegramHash(k.SecretKey, fields)) {
			return launchRefused("the initData hash does not match this channel's bot token: the data was changed, or it was made for another bot")
		}
		return nil
	case k.BotID > 0 && signature != "":
		return k.verifySignature(fields, signature)
	case len(k.SecretKey) == sha256.Size:
		return launchRefused("the initData has no hash to check with this channel's bot token")
	case k.BotID > 0:
		return launchRefused("the initData has no signature to check for bot %d", k.BotID)
	}
	return launchRefused("this channel has no Telegram bot token or bot id to verify initData with")
}

func (k TelegramKeys) verifySignature(fields map[string]string, signature string) error {
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(signature, "="))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return launchRefused("the initData signature is not a base64url Ed25519 signature")
	}
	keys := k.PublicKeys
	if keys.Production == nil {
		keys = TelegramPublishedKeys
	}
	own, other, ownName, otherName := keys.Production, keys.Test, "production", "test"
	if k.TestEnvironment {
		own, other, ownName, otherName = keys.Test, keys.Production, "test", "production"
	}
	message := []byte(telegramSignedMessage(k.BotID, fields))
	if ed25519.Verify(own, message, sig) {
		return nil
	}
	if ed25519.Verify(other, message, sig) {
		return launchRefused("the initData was signed in Telegram's %s environment, but this channel is registered for the %s environment", otherName, ownName)
	}
	return launchRefused("the initData signature does not verify for bot %d: the data was changed, or it was made for another bot", k.BotID)
}

// telegramHash is the first-party hash: every field but hash, signature included.
func telegramHash(secretKey []byte, fields map[string]string) []byte {
	mac := hmac.New(sha256.New, secretKey)
	mac.Write([]byte(telegramCheckString(fields, "hash")))
	return mac.Sum(nil)
}

// telegramSignedMessage is what Telegram's Ed25519 key signs.
func telegramSignedMessage(botID int64, fields map[string]string) string {
	return fmt.Sprintf("%d:%s\n%s", botID, launchKeyDerivation, telegramCheckString(fields, "hash", "signature"))
}

// telegramCheckString is data_check_string without the excluded fields.
func telegramCheckString(fields map[string]string, excluded ...string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if !contains(excluded, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(fields[k])
	}
	return b.String()
}

// checkAuthDate reads auth_date and checks it is neither older than maxAge
// nor in the future.
func checkAuthDate(text string, now time.Time, maxAge time.Duration) (time.Time, error) {
	if maxAge <= 0 {
		maxAge = LaunchMaxAgeDefault
	}
	unix, err := strconv.ParseInt(text, 10, 64)
	if err != nil || unix <= 0 {
		return time.Time{}, launchRefused("auth_date must be a Unix time in seconds")
	}
	authDate := time.Unix(unix, 0)
	if age := now.Sub(authDate); age > maxAge {
		return time.Time{}, launchRefused("the launch data is %s old (at most %s): reopen the page from the chat", age.Round(time.Second), maxAge)
	}
	if authDate.Sub(now) > launchFutureSkewMax {
		return time.Time{}, launchRefused("auth_date is in the future")
	}
	return authDate, nil
}

// telegramLaunch reads who opened the Mini App and where to answer.
func telegramLaunch(fields map[string]string, authDate time.Time) (Launch, error) {
	var user telegramPerson
	if err := decodeTelegramJSON(fields["user"], &user); err != nil || !isTelegramID(user.ID) {
		return Launch{}, launchRefused("the initData has no user with a numeric id")
	}
	launch := Launch{
		UserID: string(user.ID), ChatID: string(user.ID), AuthDate: authDate, Fields: fields,
		Messenger: "telegram", Username: user.Username, Language: user.LanguageCode,
		StartParam: fields["start_param"], QueryID: fields["query_id"],
		ChatType: fields["chat_type"], ChatInstance: fields["chat_instance"],
	}
	launch.Name = strings.TrimSpace(user.FirstName + " " + user.LastName)
	// JSON can escape a NUL byte that the query string did not show;
	// PostgreSQL's text refuses it, so it is refused here, plainly.
	if strings.ContainsRune(launch.Name+launch.Username+launch.Language, 0) {
		return Launch{}, launchRefused("the initData's user contains a NUL byte")
	}
	if len(launch.Name) > telegramNameBytesMax {
		launch.Name = strings.ToValidUTF8(launch.Name[:telegramNameBytesMax], "")
	}
	// A Mini App opened from a group's attachment menu names the chat; one
	// opened from the bot's own chat or a link answers in the user's private
	// chat with the bot, whose id is the user's id.
	if raw, ok := fields["chat"]; ok {
		var chat telegramChat
		if err := decodeTelegramJSON(raw, &chat); err != nil || !isTelegramID(chat.ID) {
			return Launch{}, launchRefused("the initData's chat has no numeric id")
		}
		launch.ChatID = string(chat.ID)
	}
	return launch, nil
}

func decodeTelegramJSON(raw string, into any) error {
	if raw == "" {
		return fmt.Errorf("empty")
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.UseNumber()
	return dec.Decode(into)
}

// isTelegramID accepts the integers Telegram uses for users and chats
// (negative for groups and channels, at most 52 significant bits).
func isTelegramID(n json.Number) bool {
	id, err := strconv.ParseInt(string(n), 10, 64)
	return err == nil && id != 0 && strconv.FormatInt(id, 10) == string(n)
}

// SignTelegramInitData makes first-party initData the way Telegram does,
// for tests, the demo and chat-sim: fields as given, hash over all of them
// (a signature field, if present, included).
func SignTelegramInitData(botToken string, fields map[string]string) string {
	values := url.Values{}
	for k, v := range fields {
		values.Set(k, v)
	}
	values.Set("hash", hex.EncodeToString(telegramHash(TelegramSecretKey(botToken), fields)))
	return values.Encode()
}

// SignTelegramInitDataEd25519 makes third-party initData with key standing in
// for Telegram's, for tests that configure the matching public key.
func SignTelegramInitDataEd25519(key ed25519.PrivateKey, botID int64, fields map[string]string) string {
	values := url.Values{}
	for k, v := range fields {
		values.Set(k, v)
	}
	sig := ed25519.Sign(key, []byte(telegramSignedMessage(botID, fields)))
	values.Set("signature", base64.RawURLEncoding.EncodeToString(sig))
	return values.Encode()
}
