package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

func TestSuggestedTopUps(t *testing.T) {
	for _, tc := range []struct {
		short money.Amount
		want  string
	}{
		{money.New(180, money.MustCurrency("CNY")), "1.80 CNY, 10.00 CNY, 20.00 CNY"},
		{money.New(1000, money.MustCurrency("CNY")), "10.00 CNY, 20.00 CNY, 50.00 CNY"},
		{money.New(15_000, money.MustCurrency("CNY")), "150.00 CNY, 200.00 CNY, 500.00 CNY"},
		{money.New(800, money.MustCurrency("JPY")), "800 JPY, 1000 JPY, 2000 JPY"},
	} {
		var got []string
		for _, a := range suggestedTopUps(tc.short) {
			got = append(got, a.String())
		}
		if strings.Join(got, ", ") != tc.want {
			t.Errorf("suggestedTopUps(%s) = %v, want %s", tc.short, got, tc.want)
		}
	}
}

// Every language has every string of the shopper pages, and none of them
// names the service's insides: a missing Russian string would show an empty
// line, an internal word would show developer talk to a shopper.
func TestShopperTextsAreCompleteAndPlain(t *testing.T) {
	internal := []string{"launch context", "hash", "channel", "idempotency", "_", "m0s"}
	for _, text := range shopperTextsInOrder {
		v := reflect.ValueOf(*text)
		for i := range v.NumField() {
			field := v.Type().Field(i)
			if field.Type.Kind() != reflect.String {
				continue
			}
			s := v.Field(i).String()
			if s == "" {
				t.Errorf("%s: %s is empty", text.Lang, field.Name)
			}
			for _, word := range internal {
				if strings.Contains(strings.ToLower(s), word) {
					t.Errorf("%s: %s says %q", text.Lang, field.Name, word)
				}
			}
		}
		if _, ok := providerText[text.Lang]; !ok {
			t.Errorf("%s: no provider page wording", text.Lang)
		}
		if _, ok := messengerTexts[text.Lang]; !ok {
			t.Errorf("%s: no messenger page wording", text.Lang)
		}
	}
}

// A refusal is never worded with the service's own detail, whatever its
// code; the launch refusals say which of three things happened.
func TestRefusalsAreWordedForShoppers(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 30, 0, 0, time.UTC)
	detail := "the launch context's hash does not match"
	for _, code := range []string{"sold_out", "purchase_limit_reached", "card_declined", "checkout_expired", "unheard_of_code",
		"idempotency_key_reused", "validation_failed", "invalid_launch_context", "not_found"} {
		p := problem.New(problem.KindConflict, code, "%s", detail)
		for _, text := range shopperTextsInOrder {
			page := problemPage(text, p, "user_id=1", now)
			if page.Message == "" || strings.Contains(page.Message, detail) || page.Title == "" {
				t.Errorf("%s %s: %+v", text.Lang, code, page)
			}
		}
	}
	launch := problem.New(problem.KindUnauthorized, "invalid_launch_context", "x")
	stale := "auth_date=" + strconv.FormatInt(now.Add(-15*time.Minute-11*time.Second).Unix(), 10) + "&user_id=1&hash=00"
	fresh := "auth_date=" + strconv.FormatInt(now.Unix(), 10) + "&user_id=1&hash=00"
	vkStale := url.Values{"channel_id": {"chn_x"}, "launch_data": {"vk_ts=" + strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)}}.Encode()
	for raw, want := range map[string]string{"": shopperEnglish.LaunchNone, stale: shopperEnglish.LaunchStale,
		fresh: shopperEnglish.LaunchBad, vkStale: shopperEnglish.LaunchStale, "%zz": shopperEnglish.LaunchBad} {
		if got := problemPage(&shopperEnglish, launch, raw, now).Message; got != want {
			t.Errorf("launch %q: %q, want %q", raw, got, want)
		}
	}
}

// The language a page speaks: ?lang= (remembered), the cookie, the
// messenger's language code, the browser's.
func TestPageLanguage(t *testing.T) {
	e := echo.New()
	cases := []struct {
		name, target, cookie, messenger, accept, want string
		remembers                                     bool
	}{
		{"browser", "/q/x", "", "", "zh-CN,zh;q=0.9", "zh", false},
		{"messenger over browser", "/q/x", "", "ru", "en-US", "ru", false},
		{"messenger in a language the pages lack", "/q/x", "", "de", "zh-CN", "zh", false},
		{"choice over messenger", "/q/x", "en", "ru", "zh-CN", "en", false},
		{"a tap on the switch", "/q/x?lang=ru", "en", "zh", "zh-CN", "ru", true},
		{"a switch to no language", "/q/x?lang=xx", "", "", "zh-CN", "zh", false},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(http.MethodGet, tc.target, nil)
		req.Header.Set("Accept-Language", tc.accept)
		if tc.cookie != "" {
			req.AddCookie(&http.Cookie{Name: langCookie, Value: tc.cookie})
		}
		rec := httptest.NewRecorder()
		text := pageText(e.NewContext(req, rec), tc.messenger)
		if text.Lang != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, text.Lang, tc.want)
		}
		if remembered := strings.Contains(rec.Header().Get("Set-Cookie"), langCookie+"="+tc.want); remembered != tc.remembers {
			t.Errorf("%s: Set-Cookie %q", tc.name, rec.Header().Get("Set-Cookie"))
		}
		if len(text.Switch) != len(shopperTextsInOrder) || !strings.Contains(text.Switch[2].Href, "lang=ru") {
			t.Errorf("%s: switch %+v", tc.name, text.Switch)
		}
	}
}
