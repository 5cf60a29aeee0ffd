package payments

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/problem"
)

// Telegram's published samples, from the tma.js documentation
// (docs.telegram-mini-apps.com, packages/tma-js-init-data-node "Validating"
// and "validate3rd"). They are real initData signed by Telegram for the bots
// whose tokens the documentation gives.
const (
	// sampleClassic predates the signature field: hash only.
	sampleClassicToken    = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8"
	sampleClassicInitData = "query_id=AAHdF6IQAAAAAN0XohDhrOrc" +
		"&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%7D" +
		"&auth_date=1662771648" +
		"&hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2"
	// sampleClassicSecretHex is the documentation's "hashed token" for it.
	sampleClassicSecretHex = "a5c609aa52f63cb5e6d8ceb6e4138726ea82bbc36bb786d64482d445ea38ee5f"

	sampleBotID = 7342037359
	sampleUser  = "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%7D"
	// SampleFirstParty carries a signature that takes part in the hash.
	SampleFirstPartyToken    = "7342037359:AAHI25ES9xCOMPokpYoz-p8XVrZUdygo2J4"
	SampleFirstPartyInitData = sampleUser + "&chat_instance=8134722200314281151&chat_type=private&auth_date=1733509682" +
		"&signature=TYJxVcisqbWjtodPepiJ6ghziUL94-KNpG8Pau-X7oNNLNBM72APCpi_RKiUlBvcqo5L-LAxIc3dnTzcZX_PDg" +
		"&hash=a433d8f9847bd6addcc563bff7cc82c89e97ea0d90c11fe5729cae6796a36d73"
	// SampleThirdParty verifies with Telegram's production key for bot 7342037359.
	SampleThirdPartyInitData = sampleUser + "&chat_instance=8134722200314281151&chat_type=private&auth_date=1733584787" +
		"&signature=zL-ucjNyREiHDE8aihFwpfR9aggP2xiAo3NSpfe-p7IbCisNlDKlo7Kb6G4D0Ao2mBrSgEk4maLSdv6MLIlADQ" +
		"&hash=2174df5b000556d044f3f020384e879c8efcab55ddea2ced4eb752e93e7080d6"
)

func unixTime(s int64) time.Time { return time.Unix(s, 0) }

func wantLaunchRefused(t *testing.T, err error, reason string) {
	t.Helper()
	p, ok := problem.As(err)
	if !ok || p.Code != "invalid_launch_context" || p.Status() != 401 {
		t.Fatalf("want a 401 invalid_launch_context, got %v", err)
	}
	if !strings.Contains(p.Detail, reason) {
		t.Fatalf("detail %q does not say %q", p.Detail, reason)
	}
}

func TestTelegramPublishedSamples(t *testing.T) {
	t.Run("OKClassicWithToken", func(t *testing.T) {
		keys := TelegramKeys{SecretKey: TelegramSecretKey(sampleClassicToken)}
		if hex.EncodeToString(keys.SecretKey) != sampleClassicSecretHex {
			t.Fatalf("derived key %x differs from the documentation's", keys.SecretKey)
		}
		l, err := VerifyTelegramInitData(sampleClassicInitData, keys, unixTime(1662771648+60), 0)
		if err != nil {
			t.Fatal(err)
		}
		if l.UserID != "279058397" || l.ChatID != "279058397" || l.Name != "Vladislav Kibenko" || l.Username != "vdkfrost" ||
			l.Language != "ru" || l.QueryID != "AAHdF6IQAAAAAN0XohDhrOrc" || l.Messenger != "telegram" {
			t.Fatalf("%+v", l)
		}
	})
	t.Run("OKFirstPartySignatureInsideHash", func(t *testing.T) {
		keys := TelegramKeys{SecretKey: TelegramSecretKey(SampleFirstPartyToken)}
		l, err := VerifyTelegramInitData(SampleFirstPartyInitData, keys, unixTime(1733509682+60), 0)
		if err != nil {
			t.Fatal(err)
		}
		if l.Name != "Vladislav + - ? / Kibenko" || l.ChatType != "private" || l.ChatInstance != "8134722200314281151" {
			t.Fatalf("%+v", l)
		}
	})
	t.Run("OKThirdPartyProductionKey", func(t *testing.T) {
		l, err := VerifyTelegramInitData(SampleThirdPartyInitData, TelegramKeys{BotID: sampleBotID}, unixTime(1733584787+60), 0)
		if err != nil {
			t.Fatal(err)
		}
		if l.UserID != "279058397" {
			t.Fatalf("%+v", l)
		}
	})
	t.Run("ErrThirdPartyWrongEnvironment", func(t *testing.T) {
		_, err := VerifyTelegramInitData(SampleThirdPartyInitData, TelegramKeys{BotID: sampleBotID, TestEnvironment: true}, unixTime(1733584787+60), 0)
		wantLaunchRefused(t, err, "signed in Telegram's production environment, but this channel is registered for the test environment")
	})
	t.Run("ErrThirdPartyWrongBot", func(t *testing.T) {
		_, err := VerifyTelegramInitData(SampleThirdPartyInitData, TelegramKeys{BotID: 5768337691}, unixTime(1733584787+60), 0)
		wantLaunchRefused(t, err, "does not verify for bot 5768337691")
	})
	t.Run("ErrFirstPartyWrongBot", func(t *testing.T) {
		keys := TelegramKeys{SecretKey: TelegramSecretKey(sampleClassicToken)}
		_, err := VerifyTelegramInitData(SampleFirstPartyInitData, keys, unixTime(1733509682+60), 0)
		wantLaunchRefused(t, err, "made for another bot")
	})
	t.Run("ErrStale", func(t *testing.T) {
		keys := TelegramKeys{SecretKey: TelegramSecretKey(SampleFirstPartyToken)}
		_, err := VerifyTelegramInitData(SampleFirstPartyInitData, keys, unixTime(1733509682).Add(16*time.Minute), 0)
		wantLaunchRefused(t, err, "old (at most 15m0s)")
	})
	t.Run("ErrTamperedUser", func(t *testing.T) {
		tampered := strings.Replace(SampleThirdPartyInitData, "279058397", "279058398", 1)
		_, err := VerifyTelegramInitData(tampered, TelegramKeys{BotID: sampleBotID}, unixTime(1733584787+60), 0)
		wantLaunchRefused(t, err, "does not verify")
		_, err = VerifyTelegramInitData(strings.Replace(SampleFirstPartyInitData, "279058397", "279058398", 1),
			TelegramKeys{SecretKey: TelegramSecretKey(SampleFirstPartyToken)}, unixTime(1733509682+60), 0)
		wantLaunchRefused(t, err, "hash does not match")
	})
	t.Run("ErrSignatureDroppedFromFirstParty", func(t *testing.T) {
		// The signature takes part in the hash: removing it is tampering.
		dropped := strings.Replace(SampleFirstPartyInitData, "&signature=TYJxVcisqbWjtodPepiJ6ghziUL94-KNpG8Pau-X7oNNLNBM72APCpi_RKiUlBvcqo5L-LAxIc3dnTzcZX_PDg", "", 1)
		_, err := VerifyTelegramInitData(dropped, TelegramKeys{SecretKey: TelegramSecretKey(SampleFirstPartyToken)}, unixTime(1733509682+60), 0)
		wantLaunchRefused(t, err, "hash does not match")
	})
}

func freshTelegramFields(now time.Time) map[string]string {
	return map[string]string{
		"query_id":       "AAHdF6IQAAAAAN0XohDhrOrc",
		"user":           `{"id":424242,"first_name":"Li","last_name":"Wei","username":"liwei","language_code":"zh-hans","is_premium":false,"allows_write_to_pm":true,"photo_url":"https:\/\/t.me\/i\/userpic\/320\/` + strings.Repeat("A", 300) + `.svg"}`,
		"chat":           `{"id":-1001234567890,"type":"supergroup","title":"Tea lovers 茶","photo_url":"https:\/\/t.me\/i\/userpic\/320\/x.svg"}`,
		"chat_type":      "supergroup",
		"chat_instance":  "-8134722200314281151",
		"start_param":    "abcdefghijklmnopqrstuvwxyz",
		"auth_date":      strconv.FormatInt(now.Add(-time.Minute).Unix(), 10),
		"can_send_after": "10",
		// A field Telegram may add tomorrow: kept and signed over.
		"future_field": "kept",
	}
}

func TestVerifyTelegramFreshlySigned(t *testing.T) {
	const token = "123456789:AAFreshlyMadeTokenForTests_0123456789"
	now := time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC)
	first := TelegramKeys{SecretKey: TelegramSecretKey(token)}

	t.Run("OKFirstParty", func(t *testing.T) {
		raw := SignTelegramInitData(token, freshTelegramFields(now))
		if len(raw) < 1024 {
			t.Fatalf("a realistic initData is over 1 KB, this one is %d bytes", len(raw))
		}
		l, err := VerifyTelegramInitData(raw, first, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		if l.UserID != "424242" || l.ChatID != "-1001234567890" || l.Language != "zh-hans" ||
			l.StartParam != "abcdefghijklmnopqrstuvwxyz" || l.Fields["future_field"] != "kept" || l.ChatType != "supergroup" {
			t.Fatalf("%+v", l)
		}
	})
	t.Run("OKThirdPartyOwnKeys", func(t *testing.T) {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		testPub, testPriv, _ := ed25519.GenerateKey(rand.Reader)
		keys := TelegramKeys{BotID: 123456789, PublicKeys: TelegramPublicKeys{Production: pub, Test: testPub}}
		raw := SignTelegramInitDataEd25519(priv, 123456789, freshTelegramFields(now))
		if _, err := VerifyTelegramInitData(raw, keys, now, 0); err != nil {
			t.Fatal(err)
		}
		testRaw := SignTelegramInitDataEd25519(testPriv, 123456789, freshTelegramFields(now))
		_, err := VerifyTelegramInitData(testRaw, keys, now, 0)
		wantLaunchRefused(t, err, "signed in Telegram's test environment")
		keys.TestEnvironment = true
		if _, err := VerifyTelegramInitData(testRaw, keys, now, 0); err != nil {
			t.Fatal(err)
		}
	})

	refused := map[string]struct {
		raw, reason string
	}{
		"ErrEmpty":       {"", "no Telegram initData"},
		"ErrOversized":   {SignTelegramInitData(token, map[string]string{"user": `{"id":1}`, "auth_date": "1", "x": strings.Repeat("y", telegramInitDataBytesMax)}), "longer than"},
		"ErrFieldTooBig": {SignTelegramInitData(token, map[string]string{"user": `{"id":1,"p":"` + strings.Repeat("y", telegramFieldBytesMax) + `"}`, "auth_date": "1"}), "longer than 4096 bytes"},
		"ErrNUL":         {SignTelegramInitData(token, withField(freshTelegramFields(now), "chat_type", "private\x00")), "NUL byte"},
		"ErrNULInJSON":   {SignTelegramInitData(token, withField(freshTelegramFields(now), "user", `{"id":424242,"first_name":"a\u0000"}`)), "NUL byte"},
		"ErrNULRaw":      {SignTelegramInitData(token, freshTelegramFields(now)) + "&x=%00", "NUL byte"},
		"ErrDuplicate":   {SignTelegramInitData(token, freshTelegramFields(now)) + "&auth_date=1", "appears 2 times"},
		"ErrNotQuery":    {"user=%zz", "not a URL-encoded"},
		"ErrNoUser":      {SignTelegramInitData(token, withField(freshTelegramFields(now), "user", `{"first_name":"x"}`)), "no user with a numeric id"},
		"ErrFuture":      {SignTelegramInitData(token, withField(freshTelegramFields(now), "auth_date", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))), "in the future"},
		"ErrNoHash":      {strings.Split(SignTelegramInitData(token, freshTelegramFields(now)), "&hash=")[0], "no hash"},
		"ErrBadUTF8":     {SignTelegramInitData(token, withField(freshTelegramFields(now), "chat_type", "\xff")), "not UTF-8"},
		"ErrWrongToken":  {SignTelegramInitData("123456789:AAAnotherTokenOfTheSameBot_________", freshTelegramFields(now)), "hash does not match"},
	}
	for name, c := range refused {
		t.Run(name, func(t *testing.T) {
			_, err := VerifyTelegramInitData(c.raw, first, now, 0)
			wantLaunchRefused(t, err, c.reason)
		})
	}
}

func withField(fields map[string]string, key, value string) map[string]string {
	fields[key] = value
	return fields
}

func TestTelegramBotID(t *testing.T) {
	for token, want := range map[string]int64{SampleFirstPartyToken: 7342037359, "12:short": 0, "x:AAAAAAAAAAA": 0, "": 0, "-5:AAAAAAAAAAAA": 0} {
		got, ok := TelegramBotID(token)
		if got != want || ok != (want > 0) {
			t.Errorf("TelegramBotID(%q) = %d %v, want %d", token, got, ok, want)
		}
	}
}

// FuzzVerifyTelegramInitData: whatever the text, the verifier answers a
// verified launch or a 401 problem, never panics, and never accepts text
// that was not signed.
func FuzzVerifyTelegramInitData(f *testing.F) {
	const token = "123456789:AAFreshlyMadeTokenForTests_0123456789"
	now := time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC)
	f.Add(SampleFirstPartyInitData)
	f.Add(SampleThirdPartyInitData)
	f.Add(sampleClassicInitData)
	f.Add(SignTelegramInitData(token, freshTelegramFields(now)))
	f.Add("user=%7B%22id%22%3A1e3%7D&auth_date=1&hash=00")
	f.Add("user=%7B%22id%22%3A-0%7D&chat=%7B%7D&hash=;")
	f.Add("a=%00&hash=%FF")
	keys := TelegramKeys{SecretKey: TelegramSecretKey(token), BotID: 123456789}
	f.Fuzz(func(t *testing.T, raw string) {
		l, err := VerifyTelegramInitData(raw, keys, now, 0)
		if err != nil {
			if p, ok := problem.As(err); !ok || p.Code != "invalid_launch_context" {
				t.Fatalf("not a launch refusal: %v", err)
			}
			return
		}
		if l.UserID == "" || l.ChatID == "" || strings.ContainsRune(l.UserID, 0) {
			t.Fatalf("accepted without a user: %+v", l)
		}
	})
}

// Verification cost per request, for docs/messengers.md.
func BenchmarkVerifyTelegramInitData(b *testing.B) {
	b.Run("FirstPartyHMAC", func(b *testing.B) {
		keys := TelegramKeys{SecretKey: TelegramSecretKey(SampleFirstPartyToken)}
		now := unixTime(1733509682 + 60)
		for b.Loop() {
			if _, err := VerifyTelegramInitData(SampleFirstPartyInitData, keys, now, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ThirdPartyEd25519", func(b *testing.B) {
		keys := TelegramKeys{BotID: sampleBotID}
		now := unixTime(1733584787 + 60)
		for b.Loop() {
			if _, err := VerifyTelegramInitData(SampleThirdPartyInitData, keys, now, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
