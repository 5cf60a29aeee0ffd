package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/payments"
)

var (
	settingsNameValue = regexp.MustCompile(`id="name" name="name"[^>]*value="([^"]*)"`)
	settingsZoneValue = regexp.MustCompile(`id="time_zone" name="time_zone"[^>]*value="([^"]*)"`)
	settingsTypedSet  = regexp.MustCompile(`name="allow_typed_codes" value="(\w+)" required checked`)
)

// settingsFormValues reads the settings page's name, zone and typed-codes answer.
func settingsFormValues(t *testing.T, body string) (name, zone, typed string) {
	t.Helper()
	for _, field := range []struct {
		re  *regexp.Regexp
		out *string
	}{{settingsNameValue, &name}, {settingsZoneValue, &zone}, {settingsTypedSet, &typed}} {
		m := field.re.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("settings page lacks %s:\n%s", field.re, body)
		}
		*field.out = m[1]
	}
	return name, zone, typed
}

// merchantOfStaff is the merchant a dashboard user signed up.
func (ta *testApp) merchantOfStaff(email string) catalog.Merchant {
	ta.t.Helper()
	var id string
	if err := ta.db.Get(&id, `SELECT merchant_id FROM staff_users WHERE email = $1`, email); err != nil {
		ta.t.Fatal(err)
	}
	m, err := ta.app.catalog.Merchant(context.Background(), id)
	if err != nil {
		ta.t.Fatal(err)
	}
	return m
}

func assertMerchantUnchanged(t *testing.T, ta *testApp, before catalog.Merchant) {
	t.Helper()
	after, err := ta.app.catalog.Merchant(context.Background(), before.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Name != before.Name || after.TimeZone != before.TimeZone || after.AllowTypedCodes != before.AllowTypedCodes ||
		after.DefaultCurrency != before.DefaultCurrency || after.Status != before.Status || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("merchant changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

// settingsChange is a complete, valid settings form different from what
// sign-up sets, so that any write it makes shows.
func settingsChange(name string) url.Values {
	return url.Values{"name": {name}, "time_zone": {"Europe/Berlin"}, "allow_typed_codes": {"refuse"}}
}

func TestSettingsPage(t *testing.T) {
	ta := startTestApp(t, storyStart)
	alice := newDashboardClient(t, ta)
	alice.signup("Alice Tea", "alice@example.com")
	aliceMerchant := ta.merchantOfStaff("alice@example.com")

	t.Run("OKShowsCurrentValues", func(t *testing.T) {
		status, body := alice.get("/dashboard/settings")
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
		name, zone, typed := settingsFormValues(t, body)
		if name != "Alice Tea" || zone != "Asia/Shanghai" || typed != "refuse" { // typed codes start off
			t.Fatalf("form shows %q %q %q", name, zone, typed)
		}
		for _, want := range []string{
			`data-testid="merchant-id">` + aliceMerchant.ID + `<`,
			`data-testid="default-currency">CNY<`,
			`href="/dashboard/settings" aria-current="page">Settings</a>`,
			`<label for="name">`, `<label for="time_zone">`, `<option value="Europe/Berlin">`,
			"Coupons already issued keep the zone they were issued with",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("settings page lacks %q", want)
			}
		}
		// Read-only means not a form field: nothing posted could change them.
		if strings.Contains(body, `name="default_currency"`) || strings.Contains(body, `name="merchant_id"`) {
			t.Error("the currency or merchant id is an input")
		}
		external := regexp.MustCompile(`(?i)(src|href|action)\s*=\s*"(https?:)?//`)
		if m := external.FindString(body); m != "" {
			t.Errorf("settings page loads something from elsewhere: %s", m)
		}
	})
	t.Run("OKEveryPageLinksToSettings", func(t *testing.T) {
		_, body := alice.get("/dashboard/items")
		if !strings.Contains(body, `href="/dashboard/settings" aria-current="false">Settings</a>`) {
			t.Fatal("the catalog page's nav lacks Settings")
		}
	})
	t.Run("ErrUnknownTimeZone", func(t *testing.T) {
		form := url.Values{"name": {"Alice Tea & Cake"}, "time_zone": {"Mars/Olympus"}, "allow_typed_codes": {"refuse"}}
		status, body, _ := alice.post("/dashboard/settings", "/dashboard/settings", form, true)
		if status != http.StatusUnprocessableEntity {
			t.Fatalf("%d %s", status, body)
		}
		if !regexp.MustCompile(`class="field-error" id="time_zone-err">[^<]*IANA zone[^<]*Mars/Olympus`).MatchString(body) {
			t.Fatalf("no error next to the time zone:\n%s", body)
		}
		// What was typed comes back, the mistake included.
		name, zone, typed := settingsFormValues(t, body)
		if name != "Alice Tea &amp; Cake" || zone != "Mars/Olympus" || typed != "refuse" {
			t.Fatalf("form shows %q %q %q", name, zone, typed)
		}
		assertMerchantUnchanged(t, ta, aliceMerchant)
	})
	t.Run("ErrEmptyName", func(t *testing.T) {
		form := url.Values{"name": {"   "}, "time_zone": {"Europe/Berlin"}, "allow_typed_codes": {"refuse"}}
		status, body, _ := alice.post("/dashboard/settings", "/dashboard/settings", form, true)
		if status != http.StatusUnprocessableEntity || !strings.Contains(body, `class="field-error" id="name-err"`) {
			t.Fatalf("%d %s", status, body)
		}
		assertMerchantUnchanged(t, ta, aliceMerchant)
	})
	t.Run("ErrTypedCodesNotAnswered", func(t *testing.T) {
		// A form that lost the radio buttons must not switch typed codes off.
		form := url.Values{"name": {"Alice Tea"}, "time_zone": {"Asia/Shanghai"}}
		status, body, _ := alice.post("/dashboard/settings", "/dashboard/settings", form, true)
		if status != http.StatusUnprocessableEntity || !strings.Contains(body, `class="field-error" id="allow_typed_codes-err"`) {
			t.Fatalf("%d %s", status, body)
		}
		assertMerchantUnchanged(t, ta, aliceMerchant)
	})
	t.Run("ErrPostWithoutCSRFToken", func(t *testing.T) {
		status, body, _ := alice.post("/dashboard/settings", "", settingsChange("No token"), false)
		if status != http.StatusForbidden || !strings.Contains(body, "csrf_token_invalid") {
			t.Fatalf("no token: %d %s", status, body)
		}
		form := settingsChange("Forged token")
		form.Set("csrf_token", "forged")
		if status, body, _ := alice.post("/dashboard/settings", "", form, false); status != http.StatusForbidden {
			t.Fatalf("forged token: %d %s", status, body)
		}
		signedOut := newDashboardClient(t, ta)
		if status, body, _ := signedOut.post("/dashboard/settings", "", settingsChange("Signed out"), false); status != http.StatusForbidden {
			t.Fatalf("signed out: %d %s", status, body)
		}
		assertMerchantUnchanged(t, ta, aliceMerchant)
	})
	t.Run("ErrOtherMerchantsSessionChangesOnlyItsOwn", func(t *testing.T) {
		bob := newDashboardClient(t, ta)
		bob.signup("Bob Coffee", "bob@example.com")
		bobBefore := ta.merchantOfStaff("bob@example.com")
		_, bobPage := bob.get("/dashboard/settings")
		if strings.Contains(bobPage, aliceMerchant.ID) || strings.Contains(bobPage, "Alice Tea") {
			t.Fatal("bob's settings page shows alice's merchant")
		}

		// Bob names alice's merchant every way a form or URL could.
		form := settingsChange("Bob Renamed")
		form.Set("merchant_id", aliceMerchant.ID)
		form.Set("id", aliceMerchant.ID)
		status, body, header := bob.post("/dashboard/settings?merchant_id="+url.QueryEscape(aliceMerchant.ID), "/dashboard/settings", form, true)
		if status != http.StatusSeeOther {
			t.Fatalf("%d %s", status, body)
		}
		if loc := header.Get("Location"); !strings.HasPrefix(loc, "/dashboard/settings?flash=") {
			t.Fatalf("redirected to %q", loc)
		}
		assertMerchantUnchanged(t, ta, aliceMerchant)
		bobAfter := ta.merchantOfStaff("bob@example.com")
		if bobAfter.ID != bobBefore.ID || bobAfter.Name != "Bob Renamed" || bobAfter.TimeZone != "Europe/Berlin" || bobAfter.AllowTypedCodes {
			t.Fatalf("bob's own merchant after the post: %+v", bobAfter)
		}

		// Bob's form token does not work with alice's session either.
		bobToken := csrfField.FindStringSubmatch(bobPage)[1]
		form = settingsChange("Cross-session")
		form.Set("csrf_token", bobToken)
		if status, body, _ := alice.post("/dashboard/settings", "", form, false); status != http.StatusForbidden {
			t.Fatalf("alice's session with bob's token: %d %s", status, body)
		}
		assertMerchantUnchanged(t, ta, aliceMerchant)
	})
}

// Turning typed codes off from the settings page stops the till taking a
// printed code, while the receipt's QR keeps working; coupons issued before
// the zone changed keep reading their hours in the old zone.
func TestSettingsTypedCodesAtTheTill(t *testing.T) {
	ta := startTestApp(t, storyStart)
	staff := newDashboardClient(t, ta)
	staff.signup("McDonald's", "staff@example.com")
	m := ta.merchantOfStaff("staff@example.com")
	_, key, err := ta.app.catalog.CreateKey(context.Background(), m.ID, "pos")
	if err != nil {
		t.Fatal(err)
	}
	created := ta.call("POST", "/v1/items", key, "", teaCard(10))
	if created.Status != http.StatusCreated {
		t.Fatalf("create tea card: %d %s", created.Status, created.Body)
	}
	shop := teaShop{merchant: m, key: key, itemID: created.JSON(t)["id"].(string), channel: ta.channel()}
	_, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 2})

	// Typed codes start off; this merchant turned them on.
	if r := ta.call("PATCH", "/v1/merchant", key, "", map[string]any{"allow_typed_codes": true}); r.Status != http.StatusOK {
		t.Fatalf("allow typed codes: %d %s", r.Status, r.Body)
	}
	// storyStart is 14:30 in Shanghai, inside the card's 14:00–17:00.
	typed := ta.redeem(key, "typed-before", coupons[0].Code, nil)
	if typed.Status != http.StatusOK || typed.JSON(t)["typed"] != true {
		t.Fatalf("typed code before the change: %d %s", typed.Status, typed.Body)
	}

	form := url.Values{"name": {"McDonald's Berlin"}, "time_zone": {"Europe/Berlin"}, "allow_typed_codes": {"refuse"}}
	status, body, header := staff.post("/dashboard/settings", "/dashboard/settings", form, true)
	if status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", status, body)
	}
	status, page := staff.get(header.Get("Location"))
	if status != http.StatusOK || !strings.Contains(page, `class="flash"`) || !strings.Contains(page, "coupons already issued keep Asia/Shanghai") {
		t.Fatalf("after saving: %d %s", status, page)
	}
	if name, zone, typed := settingsFormValues(t, page); name != "McDonald&#39;s Berlin" || zone != "Europe/Berlin" || typed != "refuse" {
		t.Fatalf("form shows %q %q %q after saving", name, zone, typed)
	}

	got := ta.call("GET", "/v1/merchant", key, "", nil).JSON(t)
	if got["name"] != "McDonald's Berlin" || got["time_zone"] != "Europe/Berlin" || got["allow_typed_codes"] != false || got["default_currency"] != "CNY" {
		t.Fatalf("GET /v1/merchant: %v", got)
	}

	refused := ta.redeem(key, "typed-after", coupons[1].Code, nil)
	wantProblem(t, refused, http.StatusUnprocessableEntity, payments.CodeTypedCodesNotAllowed)

	// 14:30 in Shanghai is 07:30 in Berlin: the scan is accepted only
	// because the coupon kept the zone it was issued with.
	scanned := ta.redeem(key, "scanned-after", payments.RedemptionQRContent(coupons[1], ta.clock.Now()), nil)
	if scanned.Status != http.StatusOK || scanned.JSON(t)["typed"] != false {
		t.Fatalf("scanned QR after the change: %d %s", scanned.Status, scanned.Body)
	}
	_, later := ta.buy(shop, "43", map[string]int{shop.itemID: 1})
	if later[0].TimeZone != "Europe/Berlin" {
		t.Fatalf("a coupon sold after the change reads its hours in %q", later[0].TimeZone)
	}
	assertVerifyClean(t, ta)
}
