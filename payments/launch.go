package payments

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatpay/chatpay/internal/problem"
)

// A launch context is how a messenger tells chatpay who opened a page: a
// URL-encoded query string such as
//
//	user_id=42&chat_id=42&name=Li+Wei&auth_date=1795000000&hash=…
//
// signed the way Telegram Mini Apps sign initData, so existing Telegram
// tooling can produce it:
//
//	data_check_string = every field except hash and signature, as key=value,
//	                    sorted by key, joined by "\n"
//	secret_key        = HMAC-SHA256(key = "WebAppData", message = channel secret)
//	hash              = hex(HMAC-SHA256(key = secret_key, message = data_check_string))
//
// A channel that registers an Ed25519 public key instead signs
//
//	message   = channel_id + ":WebAppData\n" + data_check_string
//	signature = base64url (no padding) of the Ed25519 signature of message
//
// and chatpay never holds its secret.
const (
	launchKeyDerivation = "WebAppData"
	// LaunchMaxAgeDefault is how old auth_date may be (configurable per call).
	LaunchMaxAgeDefault = 15 * time.Minute
	// launchFutureSkewMax tolerates clocks slightly ahead of ours.
	launchFutureSkewMax = 30 * time.Second
	// launchTextMax bounds the raw context before parsing it.
	launchTextMax = 4096
	// launchFieldMax bounds each value (names, ids).
	launchFieldMax = 256
)

// Launch is a verified launch context.
type Launch struct {
	UserID   string // the shopper's id in the messenger
	ChatID   string // where to answer; defaults to the user's private chat
	Name     string // display name, may be empty
	AuthDate time.Time
	Fields   map[string]string // every signed field, for pages that need more

	// Set by the messenger adapters (launch_telegram.go, launch_vk.go):
	// which messenger vouched for the shopper and what else it said.
	Messenger    string // "telegram", "vk", "wechat"; empty for the generic context
	Username     string
	Language     string // the messenger's language code, e.g. "zh-hans"; pages follow it
	StartParam   string // the start parameter of a deep link: the QR token scanned
	QueryID      string // Telegram's query_id, for answerWebAppQuery
	ChatType     string
	ChatInstance string
}

// LaunchKeys are what a channel registered to verify its contexts: a shared
// secret (HMAC) and/or an Ed25519 public key.
type LaunchKeys struct {
	ChannelID string
	Secret    string
	PublicKey ed25519.PublicKey
}

func launchRefused(format string, args ...any) *problem.Error {
	return problem.New(problem.KindUnauthorized, "invalid_launch_context", format, args...)
}

// VerifyLaunch checks a raw launch context against the channel's keys at now.
// It returns invalid_launch_context (401) naming what is wrong: malformed
// text, a duplicate or missing field, a bad hash or signature, or an
// auth_date that is too old or in the future.
func VerifyLaunch(raw string, keys LaunchKeys, now time.Time, maxAge time.Duration) (Launch, error) {
	if maxAge <= 0 {
		maxAge = LaunchMaxAgeDefault
	}
	if raw == "" {
		return Launch{}, launchRefused("no launch context: open this page from the chat")
	}
	if len(raw) > launchTextMax {
		return Launch{}, launchRefused("the launch context is longer than %d bytes", launchTextMax)
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return Launch{}, launchRefused("the launch context is not a valid query string")
	}
	fields := make(map[string]string, len(values))
	for key, vs := range values {
		if len(vs) != 1 {
			return Launch{}, launchRefused("field %q appears %d times", key, len(vs))
		}
		if len(vs[0]) > launchFieldMax {
			return Launch{}, launchRefused("field %q is longer than %d bytes", key, launchFieldMax)
		}
		// Signed or not, such text cannot be stored: refuse it here, not
		// as a database error deep inside the purchase.
		if !utf8.ValidString(key+vs[0]) || strings.ContainsRune(key+vs[0], 0) {
			return Launch{}, launchRefused("field %q is not valid text", key)
		}
		fields[key] = vs[0]
	}
	hash, signature := fields["hash"], fields["signature"]
	delete(fields, "hash")
	delete(fields, "signature")
	checkString := dataCheckString(fields)

	switch {
	case hash != "" && keys.Secret != "":
		got, err := hex.DecodeString(hash)
		if err != nil || !hmac.Equal(got, launchHMAC(keys.Secret, checkString)) {
			return Launch{}, launchRefused("the launch context's hash does not match")
		}
	case signature != "" && len(keys.PublicKey) == ed25519.PublicKeySize:
		sig, err := base64.RawURLEncoding.DecodeString(signature)
		if err != nil || !ed25519.Verify(keys.PublicKey, []byte(ed25519Message(keys.ChannelID, checkString)), sig) {
			return Launch{}, launchRefused("the launch context's signature does not verify")
		}
	default:
		return Launch{}, launchRefused("the launch context carries no hash or signature this channel can verify")
	}

	unix, err := strconv.ParseInt(fields["auth_date"], 10, 64)
	if err != nil || unix <= 0 {
		return Launch{}, launchRefused("auth_date must be a Unix time in seconds")
	}
	authDate := time.Unix(unix, 0)
	if age := now.Sub(authDate); age > maxAge {
		return Launch{}, launchRefused("the launch context is %s old (at most %s): reopen the page from the chat", age.Round(time.Second), maxAge)
	}
	if authDate.Sub(now) > launchFutureSkewMax {
		return Launch{}, launchRefused("auth_date is in the future")
	}
	launch := Launch{UserID: fields["user_id"], ChatID: fields["chat_id"], Name: fields["name"], AuthDate: authDate, Fields: fields}
	if launch.UserID == "" {
		return Launch{}, launchRefused("user_id is missing")
	}
	if launch.ChatID == "" {
		launch.ChatID = launch.UserID
	}
	return launch, nil
}

// SignLaunch produces a launch context signed with an HMAC secret, for
// messenger developers' tests, the demo and `chatpay sign-launch`.
func SignLaunch(secret string, fields map[string]string) string {
	values := url.Values{}
	for k, v := range fields {
		values.Set(k, v)
	}
	values.Set("hash", hex.EncodeToString(launchHMAC(secret, dataCheckString(fields))))
	return values.Encode()
}

// SignLaunchEd25519 produces a launch context signed with an Ed25519 key.
func SignLaunchEd25519(channelID string, key ed25519.PrivateKey, fields map[string]string) string {
	values := url.Values{}
	for k, v := range fields {
		values.Set(k, v)
	}
	sig := ed25519.Sign(key, []byte(ed25519Message(channelID, dataCheckString(fields))))
	values.Set("signature", base64.RawURLEncoding.EncodeToString(sig))
	return values.Encode()
}

func dataCheckString(fields map[string]string) string {
	return telegramCheckString(fields, "hash", "signature")
}

func launchHMAC(secret, checkString string) []byte {
	derive := hmac.New(sha256.New, []byte(launchKeyDerivation))
	derive.Write([]byte(secret))
	mac := hmac.New(sha256.New, derive.Sum(nil))
	mac.Write([]byte(checkString))
	return mac.Sum(nil)
}

func ed25519Message(channelID, checkString string) string {
	return fmt.Sprintf("%s:%s\n%s", channelID, launchKeyDerivation, checkString)
}
