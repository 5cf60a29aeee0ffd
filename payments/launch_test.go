package payments

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/problem"
)

var launchNow = time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC)

func launchFields(authDate time.Time) map[string]string {
	return map[string]string{
		"user_id":   "42",
		"chat_id":   "chat-7",
		"name":      "Li Wei 李伟",
		"auth_date": strconv.FormatInt(authDate.Unix(), 10),
	}
}

// telegramStyleHash is written from Telegram's documentation independently of
// launch.go, so a mistake in one shows up against the other.
func telegramStyleHash(botToken string, values url.Values) string {
	var lines []string
	for k := range values {
		if k != "hash" {
			lines = append(lines, k+"="+values.Get(k))
		}
	}
	for i := 1; i < len(lines); i++ { // insertion sort keeps this independent of sort.Strings
		for j := i; j > 0 && lines[j] < lines[j-1]; j-- {
			lines[j], lines[j-1] = lines[j-1], lines[j]
		}
	}
	secret := hmac.New(sha256.New, []byte("WebAppData"))
	secret.Write([]byte(botToken))
	mac := hmac.New(sha256.New, secret.Sum(nil))
	mac.Write([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestVerifyLaunch(t *testing.T) {
	keys := LaunchKeys{ChannelID: "chn_1", Secret: "launch-secret"}
	valid := SignLaunch(keys.Secret, launchFields(launchNow.Add(-time.Minute)))

	t.Run("OK", func(t *testing.T) {
		l, err := VerifyLaunch(valid, keys, launchNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		if l.UserID != "42" || l.ChatID != "chat-7" || l.Name != "Li Wei 李伟" {
			t.Fatalf("%+v", l)
		}
	})
	t.Run("OKMatchesTelegramAlgorithm", func(t *testing.T) {
		values, _ := url.ParseQuery(valid)
		if values.Get("hash") != telegramStyleHash(keys.Secret, values) {
			t.Fatal("hash differs from Telegram's initData algorithm")
		}
	})
	t.Run("OKChatDefaultsToUser", func(t *testing.T) {
		f := launchFields(launchNow)
		delete(f, "chat_id")
		l, err := VerifyLaunch(SignLaunch(keys.Secret, f), keys, launchNow, 0)
		if err != nil || l.ChatID != "42" {
			t.Fatalf("%+v %v", l, err)
		}
	})

	refused := map[string]string{
		"TamperedField": strings.Replace(valid, "user_id=42", "user_id=43", 1),
		"WrongSecret":   SignLaunch("other-secret", launchFields(launchNow)),
		"Stale":         SignLaunch(keys.Secret, launchFields(launchNow.Add(-16*time.Minute))),
		"Future":        SignLaunch(keys.Secret, launchFields(launchNow.Add(5*time.Minute))),
		"MissingHash":   strings.Split(valid, "&hash=")[0],
		"Empty":         "",
		"DuplicateKey":  valid + "&user_id=42",
		"BadHashHex":    strings.Split(valid, "&hash=")[0] + "&hash=zz",
		"NoUser": func() string {
			f := launchFields(launchNow)
			delete(f, "user_id")
			return SignLaunch(keys.Secret, f)
		}(),
		"BadAuthDate": func() string {
			f := launchFields(launchNow)
			f["auth_date"] = "yesterday"
			return SignLaunch(keys.Secret, f)
		}(),
		"TooLong": SignLaunch(keys.Secret, map[string]string{"user_id": strings.Repeat("x", 5000)}),
	}
	for name, raw := range refused {
		t.Run("Err"+name, func(t *testing.T) {
			_, err := VerifyLaunch(raw, keys, launchNow, 0)
			p, ok := problem.As(err)
			if !ok || p.Code != "invalid_launch_context" || p.Status() != 401 {
				t.Fatalf("want 401 invalid_launch_context, got %v", err)
			}
		})
	}
}

func TestVerifyLaunchEd25519(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := LaunchKeys{ChannelID: "chn_ed", PublicKey: pub}
	raw := SignLaunchEd25519("chn_ed", priv, launchFields(launchNow))
	if _, err := VerifyLaunch(raw, keys, launchNow, 0); err != nil {
		t.Fatalf("valid: %v", err)
	}
	for name, bad := range map[string]string{
		"Tampered":     strings.Replace(raw, "chat_id=chat-7", "chat_id=chat-8", 1),
		"OtherChannel": SignLaunchEd25519("chn_other", priv, launchFields(launchNow)),
	} {
		if _, err := VerifyLaunch(bad, keys, launchNow, 0); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func FuzzVerifyLaunch(f *testing.F) {
	keys := LaunchKeys{ChannelID: "chn_1", Secret: "launch-secret"}
	f.Add(SignLaunch(keys.Secret, launchFields(launchNow)))
	f.Add("user_id=1&auth_date=1&hash=00")
	f.Add("%zz&&==")
	f.Add("hash=&signature=&user_id=")
	f.Fuzz(func(t *testing.T, raw string) {
		l, err := VerifyLaunch(raw, keys, launchNow, 0)
		if err == nil && l.UserID == "" {
			t.Fatal("accepted a context without user_id")
		}
	})
}
