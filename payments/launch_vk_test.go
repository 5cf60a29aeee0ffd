package payments

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/problem"
)

// VK's published example (dev.vk.com, "Подпись параметров запуска"; the
// vk-apps-launch-params sample repository): launch parameters of app 6736218
// signed with its protected key.
const (
	sampleVKSecret = "wvl68m4dR1UpLrVRli"
	sampleVKLaunch = "vk_user_id=494075&vk_app_id=6736218&vk_is_app_user=1&vk_are_notifications_enabled=1" +
		"&vk_language=ru&vk_access_token_settings=&vk_platform=android&sign=htQFduJpLxz7ribXRZpDFUH-XEUhC9rBPTJkjUFEkRA"
)

func TestVKPublishedSample(t *testing.T) {
	fields, err := parseVKLaunch(sampleVKLaunch)
	if err != nil {
		t.Fatal(err)
	}
	if got := SignVKLaunch(sampleVKSecret, withoutSign(fields)); !strings.Contains(got, "sign=htQFduJpLxz7ribXRZpDFUH-XEUhC9rBPTJkjUFEkRA&") {
		t.Fatalf("our sign differs from VK's: %s", got)
	}
	// The sample has no vk_ts, so the full check refuses it as undated.
	_, err = VerifyVKLaunch(sampleVKLaunch, VKKeys{AppID: 6736218, Secret: sampleVKSecret}, time.Now(), 0)
	wantLaunchRefused(t, err, "auth_date must be a Unix time")
}

func withoutSign(fields map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range fields {
		if k != "sign" {
			out[k] = v
		}
	}
	return out
}

func vkFields(now time.Time) map[string]string {
	return map[string]string{
		"vk_user_id": "494075", "vk_app_id": "6736218", "vk_language": "ru", "vk_platform": "mobile_android",
		"vk_access_token_settings": "friends,photos", "vk_ts": strconv.FormatInt(now.Add(-time.Minute).Unix(), 10),
		"vk_ref": "other", "vk_is_app_user": "1",
	}
}

func TestVerifyVKLaunch(t *testing.T) {
	now := time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC)
	keys := VKKeys{AppID: 6736218, Secret: sampleVKSecret}
	valid := SignVKLaunch(sampleVKSecret, vkFields(now))
	t.Run("OK", func(t *testing.T) {
		l, err := VerifyVKLaunch(valid+"&chatpay_extra=ignored", keys, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		if l.UserID != "494075" || l.Language != "ru" || l.Messenger != "vk" {
			t.Fatalf("%+v", l)
		}
	})
	refused := map[string]struct{ raw, reason string }{
		"ErrTampered":  {strings.Replace(valid, "vk_user_id=494075", "vk_user_id=494076", 1), "does not match"},
		"ErrWrongApp":  {SignVKLaunch(sampleVKSecret, withField(vkFields(now), "vk_app_id", "1")), "not this channel's app"},
		"ErrWrongKey":  {SignVKLaunch("another-secret-key", vkFields(now)), "does not match"},
		"ErrStale":     {SignVKLaunch(sampleVKSecret, withField(vkFields(now), "vk_ts", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10))), "old"},
		"ErrNoSign":    {"vk_user_id=1", "no sign"},
		"ErrNUL":       {valid + "&vk_x=%00", "NUL byte"},
		"ErrOversized": {valid + "&x=" + strings.Repeat("a", vkLaunchBytesMax), "longer than"},
		"ErrDuplicate": {valid + "&vk_user_id=1", "appears 2 times"},
		"ErrEmpty":     {"", "no VK launch parameters"},
		"ErrBadUserID": {SignVKLaunch(sampleVKSecret, withField(vkFields(now), "vk_user_id", "x")), "vk_user_id"},
	}
	for name, c := range refused {
		t.Run(name, func(t *testing.T) {
			_, err := VerifyVKLaunch(c.raw, keys, now, 0)
			wantLaunchRefused(t, err, c.reason)
		})
	}
}

func FuzzVerifyVKLaunch(f *testing.F) {
	now := time.Date(2026, 11, 21, 6, 30, 0, 0, time.UTC)
	f.Add(sampleVKLaunch)
	f.Add(SignVKLaunch(sampleVKSecret, vkFields(now)))
	f.Add("?vk_user_id=1&sign=====")
	f.Add("vk_ts=%00&sign=a")
	keys := VKKeys{AppID: 6736218, Secret: sampleVKSecret}
	f.Fuzz(func(t *testing.T, raw string) {
		l, err := VerifyVKLaunch(raw, keys, now, 0)
		if err != nil {
			if p, ok := problem.As(err); !ok || p.Code != "invalid_launch_context" {
				t.Fatalf("not a launch refusal: %v", err)
			}
			return
		}
		if l.UserID == "" {
			t.Fatalf("accepted without a user: %+v", l)
		}
	})
}
