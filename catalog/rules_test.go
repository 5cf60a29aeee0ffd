package catalog

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/money"
)

var (
	cny      = money.MustCurrency("CNY")
	shanghai = mustZone("Asia/Shanghai")
	berlin   = mustZone("Europe/Berlin")
)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func local(loc *time.Location, year int, month time.Month, day, hour, minute, second int) time.Time {
	return time.Date(year, month, day, hour, minute, second, 0, loc)
}

func utc(year int, month time.Month, day, hour, minute, second int) time.Time {
	return time.Date(year, month, day, hour, minute, second, 0, time.UTC)
}

func ptr[T any](v T) *T { return &v }

// teaCard is the story's voucher: 14:00–17:00 daily in Shanghai, not for
// coffee, valid for three months after purchase.
func teaCard() Rules {
	return Rules{
		Kind:              CouponVoucher,
		ValidFor:          Duration{Months: 3},
		Windows:           []Window{{Days: EveryDay, FromMinute: 14 * 60, ToMinute: 17 * 60}},
		ExcludeCategories: []string{"coffee"},
		UsesPerCoupon:     1,
	}
}

func basket(lines ...Line) Basket { return Basket{Lines: lines} }

func line(category string, minor int64) Line {
	return Line{SKU: "sku-" + category, Category: category, Amount: money.New(minor, cny)}
}

var tea = basket(line("tea", 300))

type checkCase struct {
	name     string
	rules    Rules
	state    CouponState
	basket   Basket
	at       time.Time
	loc      *time.Location
	reason   Reason // "" for OK
	next     *time.Time
	discount int64
}

func runChecks(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := tc.state
			if state.UsesLeft == 0 && state.IssuedAt.IsZero() {
				t.Fatal("test case needs a state")
			}
			got := Check(tc.rules, state, tc.basket, tc.at, tc.loc)
			if got.Reason != tc.reason || got.OK != (tc.reason == "") {
				t.Fatalf("Check at %s = %q (ok %v), want %q", tc.at.In(tc.loc), got.Reason, got.OK, tc.reason)
			}
			switch {
			case tc.next == nil && got.NextValidAt != nil:
				t.Errorf("NextValidAt = %s, want nil", got.NextValidAt.In(tc.loc))
			case tc.next != nil && got.NextValidAt == nil:
				t.Errorf("NextValidAt = nil, want %s", tc.next.In(tc.loc))
			case tc.next != nil && !got.NextValidAt.Equal(*tc.next):
				t.Errorf("NextValidAt = %s, want %s", got.NextValidAt.In(tc.loc), tc.next.In(tc.loc))
			}
			if got.OK && got.Discount.Minor != tc.discount {
				t.Errorf("Discount = %d, want %d", got.Discount.Minor, tc.discount)
			}
			if got.NextValidAt != nil && !tc.rules.OpenAt(*got.NextValidAt, tc.loc) {
				t.Errorf("NextValidAt %s is not inside a window", got.NextValidAt.In(tc.loc))
			}
		})
	}
}

func TestCheckTeaCard(t *testing.T) {
	issued := CouponState{IssuedAt: local(shanghai, 2026, 11, 21, 10, 0, 0), UsesLeft: 1}
	sh := func(month time.Month, day, hour, minute, second int) time.Time {
		year := 2026
		if month < 11 {
			year = 2027
		}
		return local(shanghai, year, month, day, hour, minute, second)
	}
	runChecks(t, []checkCase{
		{"OutsideTimeWindowAt135959", teaCard(), issued, tea, sh(11, 22, 13, 59, 59), shanghai,
			ReasonOutsideTimeWindow, ptr(sh(11, 22, 14, 0, 0)), 0},
		{"OKAt1400", teaCard(), issued, tea, sh(11, 22, 14, 0, 0), shanghai, "", nil, 0},
		{"OKAt165959", teaCard(), issued, tea, sh(11, 22, 16, 59, 59), shanghai, "", nil, 0},
		{"OutsideTimeWindowAt1700", teaCard(), issued, tea, sh(11, 22, 17, 0, 0), shanghai,
			ReasonOutsideTimeWindow, ptr(sh(11, 23, 14, 0, 0)), 0},
		{"CategoryExcludedCoffee", teaCard(), issued, basket(line("coffee", 1200)), sh(11, 22, 14, 30, 0), shanghai,
			ReasonCategoryExcluded, nil, 0},
		{"CategoryExcludedTeaAndCoffee", teaCard(), issued, basket(line("tea", 300), line("Coffee", 1200)), sh(11, 22, 14, 30, 0), shanghai,
			ReasonCategoryExcluded, nil, 0},
		{"AlreadyRedeemed", teaCard(), CouponState{IssuedAt: issued.IssuedAt, UsesLeft: 0}, tea, sh(11, 22, 14, 30, 0), shanghai,
			ReasonAlreadyRedeemed, nil, 0},
		{"OKOnLastDay", teaCard(), issued, tea, sh(2, 21, 16, 0, 0), shanghai, "", nil, 0},
		{"OutsideOnLastDayNeverAgain", teaCard(), issued, tea, sh(2, 21, 17, 30, 0), shanghai,
			ReasonOutsideTimeWindow, nil, 0},
		{"ExpiredDayAfter", teaCard(), issued, tea, sh(2, 22, 14, 30, 0), shanghai, ReasonExpired, nil, 0},
		{"EmptyBasket", teaCard(), issued, basket(), sh(11, 22, 14, 30, 0), shanghai, ReasonEmptyBasket, nil, 0},
		// The order of rules: a used coupon is already_redeemed even when expired.
		{"RedeemedBeforeExpired", teaCard(), CouponState{IssuedAt: issued.IssuedAt}, tea, sh(5, 1, 14, 30, 0), shanghai,
			ReasonAlreadyRedeemed, nil, 0},
		// Time comes before the basket: coffee at 13:00 is outside the window.
		{"WindowBeforeCategory", teaCard(), issued, basket(line("coffee", 1200)), sh(11, 22, 13, 0, 0), shanghai,
			ReasonOutsideTimeWindow, ptr(sh(11, 22, 14, 0, 0)), 0},
	})
}

func TestCheckWindowAcrossMidnight(t *testing.T) {
	// Friday 22:00 to Saturday 02:00; 2027-01-01 is a Friday.
	rules := Rules{Kind: CouponVoucher, Windows: []Window{{Days: 1 << time.Friday, FromMinute: 22 * 60, ToMinute: 2 * 60}}}
	state := CouponState{IssuedAt: local(shanghai, 2026, 12, 1, 0, 0, 0), UsesLeft: 1}
	at := func(day, hour, minute int) time.Time { return local(shanghai, 2027, 1, day, hour, minute, 0) }
	runChecks(t, []checkCase{
		{"OutsideFriday2159", rules, state, tea, at(1, 21, 59), shanghai, ReasonOutsideTimeWindow, ptr(at(1, 22, 0)), 0},
		{"OKFriday2200", rules, state, tea, at(1, 22, 0), shanghai, "", nil, 0},
		{"OKSaturday0100", rules, state, tea, at(2, 1, 0), shanghai, "", nil, 0},
		{"OutsideSaturday0200", rules, state, tea, at(2, 2, 0), shanghai, ReasonOutsideTimeWindow, ptr(at(8, 22, 0)), 0},
		// Friday 01:00 belongs to Thursday's window, and Thursday has none.
		{"OutsideFriday0100", rules, state, tea, at(1, 1, 0), shanghai, ReasonOutsideTimeWindow, ptr(at(1, 22, 0)), 0},
	})
	allDay := Rules{Kind: CouponVoucher, Windows: []Window{{Days: 1 << time.Monday, FromMinute: 0, ToMinute: 24 * 60}}}
	runChecks(t, []checkCase{
		{"OKMonday2359", allDay, state, tea, at(4, 23, 59), shanghai, "", nil, 0},
		{"OutsideTuesday0000", allDay, state, tea, at(5, 0, 0), shanghai, ReasonOutsideTimeWindow, ptr(at(11, 0, 0)), 0},
	})
}

func TestCheckDST(t *testing.T) {
	state := CouponState{IssuedAt: utc(2027, 1, 1, 0, 0, 0), UsesLeft: 1}
	window := func(days Weekdays, from, to int) Rules {
		return Rules{Kind: CouponVoucher, Windows: []Window{{Days: days, FromMinute: from, ToMinute: to}}}
	}
	w0130to0330 := window(EveryDay, 90, 210)
	// 2027-03-28: Berlin skips 02:00–03:00 (01:00 UTC, CET → CEST), so the
	// window 01:30–03:30 is open one hour, 00:30–01:30 UTC.
	runChecks(t, []checkCase{
		{"GapOutside0129", w0130to0330, state, tea, utc(2027, 3, 28, 0, 29, 59), berlin, ReasonOutsideTimeWindow, ptr(utc(2027, 3, 28, 0, 30, 0)), 0},
		{"GapOK0130CET", w0130to0330, state, tea, utc(2027, 3, 28, 0, 30, 0), berlin, "", nil, 0},
		{"GapOK0159CET", w0130to0330, state, tea, utc(2027, 3, 28, 0, 59, 59), berlin, "", nil, 0},
		{"GapOK0300CEST", w0130to0330, state, tea, utc(2027, 3, 28, 1, 0, 0), berlin, "", nil, 0},
		{"GapOutside0330CEST", w0130to0330, state, tea, utc(2027, 3, 28, 1, 30, 0), berlin, ReasonOutsideTimeWindow, ptr(utc(2027, 3, 28, 23, 30, 0)), 0},
		// A window starting inside the skipped hour opens when the clock jumps.
		{"GapStartOpensAtJump", window(EveryDay, 150, 240), state, tea, utc(2027, 3, 28, 0, 50, 0), berlin, ReasonOutsideTimeWindow, ptr(utc(2027, 3, 28, 1, 0, 0)), 0},
		// A Sunday-only window wholly inside the skipped hour does not open
		// that day; it opens the next Sunday.
		{"GapWholeWindowSkipsAWeek", window(1<<time.Sunday, 135, 165), state, tea, utc(2027, 3, 28, 0, 0, 0), berlin, ReasonOutsideTimeWindow, ptr(utc(2027, 4, 4, 0, 15, 0)), 0},
	})
	// 2027-10-31: Berlin repeats 02:00–03:00 (01:00 UTC, CEST → CET), so the
	// window 01:30–03:30 is open three hours, 23:30–02:30 UTC.
	runChecks(t, []checkCase{
		{"OverlapOK0130CEST", w0130to0330, state, tea, utc(2027, 10, 30, 23, 30, 0), berlin, "", nil, 0},
		{"OverlapOK0230CEST", w0130to0330, state, tea, utc(2027, 10, 31, 0, 30, 0), berlin, "", nil, 0},
		{"OverlapOK0230CET", w0130to0330, state, tea, utc(2027, 10, 31, 1, 30, 0), berlin, "", nil, 0},
		{"OverlapOK0329CET", w0130to0330, state, tea, utc(2027, 10, 31, 2, 29, 59), berlin, "", nil, 0},
		{"OverlapOutside0330CET", w0130to0330, state, tea, utc(2027, 10, 31, 2, 30, 0), berlin, ReasonOutsideTimeWindow, ptr(utc(2027, 11, 1, 0, 30, 0)), 0},
		// 02:50 CEST: the window 02:15–02:45 reopens at its second 02:15 (CET).
		{"OverlapReopensSecondTime", window(EveryDay, 135, 165), state, tea, utc(2027, 10, 31, 0, 50, 0), berlin, ReasonOutsideTimeWindow, ptr(utc(2027, 10, 31, 1, 15, 0)), 0},
		// 02:45 CEST: the window 01:30–02:30 reopens when the clock falls back to 02:00.
		{"OverlapReopensAtFallBack", window(EveryDay, 90, 150), state, tea, utc(2027, 10, 31, 0, 45, 0), berlin, ReasonOutsideTimeWindow, ptr(utc(2027, 10, 31, 1, 0, 0)), 0},
	})
}

func TestCheckValidity(t *testing.T) {
	from := local(shanghai, 2027, 1, 1, 0, 0, 0)
	until := local(shanghai, 2027, 1, 10, 0, 0, 0)
	absolute := Rules{Kind: CouponVoucher, ValidFrom: &from, ValidUntil: &until,
		Windows: []Window{{Days: EveryDay, FromMinute: 14 * 60, ToMinute: 17 * 60}}}
	state := CouponState{IssuedAt: local(shanghai, 2026, 12, 1, 0, 0, 0), UsesLeft: 1}
	capped := teaCard()
	capped.ValidUntil = &until
	runChecks(t, []checkCase{
		{"NotYetValidNextIsFirstWindow", absolute, state, tea, local(shanghai, 2026, 12, 31, 15, 0, 0), shanghai,
			ReasonNotYetValid, ptr(local(shanghai, 2027, 1, 1, 14, 0, 0)), 0},
		{"OK", absolute, state, tea, local(shanghai, 2027, 1, 9, 15, 0, 0), shanghai, "", nil, 0},
		{"ExpiredAtValidUntil", absolute, state, tea, until, shanghai, ReasonExpired, nil, 0},
		{"ValidUntilCapsValidFor", capped, state, tea, local(shanghai, 2027, 1, 10, 15, 0, 0), shanghai, ReasonExpired, nil, 0},
	})
}

func TestCheckBasket(t *testing.T) {
	state := CouponState{IssuedAt: utc(2027, 1, 1, 0, 0, 0), UsesLeft: 1}
	at := utc(2027, 1, 2, 0, 0, 0)
	minSpend := money.New(2000, cny)
	onlyTea := Rules{Kind: CouponPercentOff, PercentOffBasisPoints: 1500, IncludeCategories: []string{"tea"}, MinSpend: &minSpend}
	amountOff := Rules{Kind: CouponAmountOff, AmountOff: ptr(money.New(1000, cny))}
	usd := Line{Category: "tea", Amount: money.New(100, money.MustCurrency("USD"))}
	runChecks(t, []checkCase{
		{"CategoryNotIncluded", onlyTea, state, basket(line("tea", 2000), line("cake", 500)), at, time.UTC, ReasonCategoryNotIncluded, nil, 0},
		{"BelowMinSpend", onlyTea, state, basket(line("tea", 1999)), at, time.UTC, ReasonBelowMinSpend, nil, 0},
		// 15 % of 20.03 is 3.0045, rounded half away from zero to 3.00.
		{"PercentOffRounded", onlyTea, state, basket(line("tea", 2003)), at, time.UTC, "", nil, 300},
		// 15 % of 20.10 is 3.015 → 3.02.
		{"PercentOffRoundedHalfUp", onlyTea, state, basket(line("tea", 2010)), at, time.UTC, "", nil, 302},
		{"CurrencyMismatchLines", onlyTea, state, basket(line("tea", 2000), usd), at, time.UTC, ReasonCurrencyMismatch, nil, 0},
		{"CurrencyMismatchMinSpend", onlyTea, state, basket(usd), at, time.UTC, ReasonCurrencyMismatch, nil, 0},
		{"AmountOffCappedAtBasket", amountOff, state, basket(line("cake", 600)), at, time.UTC, "", nil, 600},
		{"AmountOff", amountOff, state, basket(line("cake", 1600)), at, time.UTC, "", nil, 1000},
	})
}

func TestExpiresAtMonthEnd(t *testing.T) {
	cases := []struct {
		name     string
		issued   time.Time
		validFor string
		want     time.Time // exclusive end
	}{
		// 30 Nov + 3 months clamps to 28 Feb; valid through that whole day.
		{"30Nov+P3M", local(shanghai, 2026, 11, 30, 15, 20, 0), "P3M", local(shanghai, 2027, 3, 1, 0, 0, 0)},
		{"31Jan+P1M", local(shanghai, 2027, 1, 31, 9, 0, 0), "P1M", local(shanghai, 2027, 3, 1, 0, 0, 0)},
		{"31Jan+P1MLeapYear", local(shanghai, 2028, 1, 31, 9, 0, 0), "P1M", local(shanghai, 2028, 3, 1, 0, 0, 0)},
		{"29Feb+P1Y", local(shanghai, 2028, 2, 29, 9, 0, 0), "P1Y", local(shanghai, 2029, 3, 1, 0, 0, 0)},
		{"31Mar+P1M", local(shanghai, 2027, 3, 31, 9, 0, 0), "P1M", local(shanghai, 2027, 5, 1, 0, 0, 0)},
		{"P14D", local(shanghai, 2027, 1, 1, 9, 0, 0), "P14D", local(shanghai, 2027, 1, 16, 0, 0, 0)},
		{"PT2HExact", local(shanghai, 2027, 1, 1, 9, 30, 0), "PT2H", local(shanghai, 2027, 1, 1, 11, 30, 0)},
		// Across Berlin's spring-forward day: one calendar day keeps the wall
		// clock (23 hours), then two hours of elapsed time.
		{"P1DT2HAcrossDST", local(berlin, 2027, 3, 27, 12, 0, 0), "P1DT2H", local(berlin, 2027, 3, 28, 14, 0, 0)},
		{"P1Y2M10DT2H30M", local(shanghai, 2026, 12, 25, 8, 0, 0), "P1Y2M10DT2H30M", local(shanghai, 2028, 3, 6, 10, 30, 0)}, // 25 Feb 2028 + 10 days, a leap February
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDuration(tc.validFor)
			if err != nil {
				t.Fatal(err)
			}
			r := Rules{Kind: CouponVoucher, ValidFor: d}
			got := r.ExpiresAt(tc.issued, tc.want.Location())
			if got == nil || !got.Equal(tc.want) {
				t.Fatalf("ExpiresAt = %v, want %s", got, tc.want)
			}
			state := CouponState{IssuedAt: tc.issued, UsesLeft: 1}
			if res := Check(r, state, tea, tc.want.Add(-time.Second), tc.want.Location()); !res.OK {
				t.Errorf("a second before the end: %s", res.Reason)
			}
			if res := Check(r, state, tea, tc.want, tc.want.Location()); res.Reason != ReasonExpired {
				t.Errorf("at the end: %q, want expired", res.Reason)
			}
		})
	}
	t.Run("AddToClampsMonthEnd", func(t *testing.T) {
		got := Duration{Months: 3}.AddTo(local(shanghai, 2026, 11, 30, 10, 0, 0), shanghai)
		if want := local(shanghai, 2027, 2, 28, 10, 0, 0); !got.Equal(want) {
			t.Fatalf("30 Nov 2026 + P3M = %s, want %s", got, want)
		}
	})
}

func TestParseDuration(t *testing.T) {
	good := map[string]Duration{
		"P3M":            {Months: 3},
		"P14D":           {Days: 14},
		"PT2H":           {Hours: 2},
		"P2W":            {Weeks: 2},
		"P1Y2M10DT2H30M": {Years: 1, Months: 2, Days: 10, Hours: 2, Minutes: 30},
		"PT90S":          {Seconds: 90},
	}
	for text, want := range good {
		got, err := ParseDuration(text)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %+v, %v; want %+v", text, got, err, want)
		}
		if got.String() != text {
			t.Errorf("String() = %q, want %q", got.String(), text)
		}
	}
	for _, text := range []string{"", "P", "PT", "P1", "3M", "p3m", "P3m", "P1M2Y", "P1DT", "P-1D", "P1.5D", "P0D", "PT0S",
		"P1W2D", "P101Y", "P1D1D", "PT1H1D", "P1T1H", "P1234567890D", "P 1D", "P1DT2H3", "P1Y2M10DT2H30M1S1"} {
		if d, err := ParseDuration(text); err == nil {
			t.Errorf("ParseDuration(%q) = %+v, want an error", text, d)
		}
	}
}

func TestParseWindow(t *testing.T) {
	good := []WindowJSON{
		{From: "14:00", To: "17:00"},
		{Days: []string{"mon", "fri"}, From: "22:00", To: "02:00"},
		{From: "00:00", To: "24:00"},
	}
	for _, w := range good {
		if _, errs := ParseWindow(w, "w"); len(errs) > 0 {
			t.Errorf("ParseWindow(%+v): %v", w, errs)
		}
	}
	bad := map[string]WindowJSON{
		"w.from":    {From: "25:00", To: "17:00"},
		"w.to":      {From: "14:00", To: "14:00"},
		"w.days[1]": {Days: []string{"mon", "funday"}, From: "14:00", To: "17:00"},
	}
	for field, w := range bad {
		_, errs := ParseWindow(w, "w")
		if len(errs) != 1 || errs[0].Field != field {
			t.Errorf("ParseWindow(%+v) = %v, want one error on %s", w, errs, field)
		}
	}
	for _, text := range []string{"24:00", "14:60", "1400", "7:00", "14:0a", "-1:00", " 14:00"} {
		if _, err := parseClock(text, false); err == nil {
			t.Errorf("parseClock(%q) accepted", text)
		}
	}
}

func TestRulesJSONRoundTrip(t *testing.T) {
	until := local(shanghai, 2027, 6, 30, 0, 0, 0)
	r := teaCard()
	r.ValidUntil = &until
	r.MinSpend = ptr(money.New(2000, cny))
	r.Windows = append(r.Windows, Window{Days: 1<<time.Saturday | 1<<time.Sunday, FromMinute: 22 * 60, ToMinute: 24 * 60})
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Rules
	if err := json.Unmarshal(body, &back); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	again, _ := json.Marshal(back)
	if string(again) != string(body) {
		t.Fatalf("round trip changed the rules:\n%s\n%s", body, again)
	}
	const want = `{"kind":"voucher","valid_until":"2027-06-30T00:00:00+08:00","valid_for":"P3M","windows":[{"days":["mon","tue","wed","thu","fri","sat","sun"],"from":"14:00","to":"17:00"},{"days":["sat","sun"],"from":"22:00","to":"24:00"}],"exclude_categories":["coffee"],"min_spend":{"amount":"20.00","currency":"CNY"},"uses_per_coupon":1}`
	if string(body) != want {
		t.Errorf("JSON = %s\nwant   %s", body, want)
	}
}

func TestRenderRules(t *testing.T) {
	issued := local(shanghai, 2026, 11, 21, 10, 0, 0)
	minSpend := money.New(2000, cny)
	busy := Rules{
		Kind: CouponPercentOff, PercentOffBasisPoints: 1250,
		Windows: []Window{
			{Days: 0x3e, FromMinute: 8 * 60, ToMinute: 10 * 60}, // Mon–Fri
			{Days: 0x3e, FromMinute: 14 * 60, ToMinute: 17 * 60},
			{Days: 1<<time.Saturday | 1<<time.Sunday, FromMinute: 10 * 60, ToMinute: 22 * 60},
			{Days: 1<<time.Monday | 1<<time.Wednesday | 1<<time.Friday, FromMinute: 22 * 60, ToMinute: 2 * 60},
		},
		IncludeCategories: []string{"tea", "cake"},
		MinSpend:          &minSpend,
		UsesPerCoupon:     3,
	}
	until := local(shanghai, 2027, 1, 31, 16, 30, 0)
	absolute := Rules{Kind: CouponAmountOff, AmountOff: ptr(money.New(500, cny)), ValidUntil: &until}
	cases := []struct {
		name   string
		rules  Rules
		lang   string
		issued *time.Time
		want   string
	}{
		{"TeaCardBeforeIssue", teaCard(), "en", nil,
			"Valid 14:00–17:00 daily (Asia/Shanghai), not for coffee, for 3 months after purchase"},
		{"TeaCardAfterIssue", teaCard(), "en-GB", &issued,
			"Valid 14:00–17:00 daily (Asia/Shanghai), not for coffee, until 21 Feb 2027"},
		{"Busy", busy, "en", nil,
			"12.5% off. Valid Mon–Fri 08:00–10:00, 14:00–17:00; Sat, Sun 10:00–22:00; Mon, Wed, Fri 22:00–02:00 (Asia/Shanghai), only for tea or cake, on orders from 20.00 CNY, usable 3 times"},
		{"AbsoluteUntilWithTime", absolute, "en", nil, "5.00 CNY off. Valid any time, until 31 Jan 2027 16:30"},
		{"UnknownLanguageIsEnglish", teaCard(), "xx", nil,
			"Valid 14:00–17:00 daily (Asia/Shanghai), not for coffee, for 3 months after purchase"},
		{"ChineseAfterIssue", teaCard(), "zh-CN", &issued,
			"每天 14:00–17:00（Asia/Shanghai） 可用，不适用于“coffee”，有效期至 2027年2月21日"},
		{"ChineseBeforeIssue", teaCard(), "zh", nil,
			"每天 14:00–17:00（Asia/Shanghai） 可用，不适用于“coffee”，购买后 3个月 内有效"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenderRules(tc.rules, tc.lang, shanghai, tc.issued); got != tc.want {
				t.Errorf("RenderRules =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestValidGTIN(t *testing.T) {
	for _, g := range []string{"96385074", "036000291452", "4006381333931", "10614141000415", "00012345600012"} {
		if !ValidGTIN(g) {
			t.Errorf("ValidGTIN(%q) = false", g)
		}
	}
	for _, g := range []string{"", "96385075", "4006381333932", "400638133393", "12345", "40063813339a1", "123456789012345"} {
		if ValidGTIN(g) {
			t.Errorf("ValidGTIN(%q) = true", g)
		}
	}
}

var fuzzZones = []*time.Location{time.UTC, shanghai, berlin, mustZone("America/Santiago"), mustZone("Australia/Lord_Howe"), mustZone("Asia/Kathmandu")}

// FuzzCheck: Check never panics, whatever the rules, state, basket and
// time, and what it says holds together.
func FuzzCheck(f *testing.F) {
	f.Add(int64(1795000000), int64(1790000000), uint8(0x7f), 840, 1020, "P3M", uint8(1), 1, int64(300), "voucher", int64(0), int64(0), int64(0))
	f.Add(int64(1806100000), int64(1800000000), uint8(0x01), 1320, 120, "PT2H", uint8(2), 0, int64(-5), "percent_off", int64(20000), int64(-1), int64(1))
	f.Add(int64(-62135596800), int64(253402300799), uint8(0xff), -5, 5000, "P100Y", uint8(4), 3, int64(1<<62), "amount_off", int64(-3), int64(1<<62), int64(-1<<62))
	f.Fuzz(func(t *testing.T, atUnix, issuedUnix int64, days uint8, from, to int, validFor string, zone uint8, uses int,
		lineMinor int64, kind string, bp int64, minSpend int64, validFromUnix int64) {
		loc := fuzzZones[int(zone)%len(fuzzZones)]
		d, _ := ParseDuration(validFor)
		rules := Rules{
			Kind: CouponKind(kind), PercentOffBasisPoints: bp, ValidFor: d,
			Windows:           []Window{{Days: Weekdays(days), FromMinute: from, ToMinute: to}},
			ExcludeCategories: []string{"coffee"},
			MinSpend:          ptr(money.New(minSpend, cny)),
			AmountOff:         ptr(money.New(bp, cny)),
		}
		if validFromUnix%2 == 0 {
			vf := time.Unix(validFromUnix, 0)
			rules.ValidFrom = &vf
		}
		at := time.Unix(atUnix, 0)
		res := Check(rules, CouponState{IssuedAt: time.Unix(issuedUnix, 0), UsesLeft: uses},
			basket(line("tea", lineMinor), line("cake", lineMinor/2)), at, loc)
		if res.OK != (res.Reason == "") {
			t.Fatalf("OK %v with reason %q", res.OK, res.Reason)
		}
		if res.OK && (res.Discount.Minor < 0 || res.Discount.Minor > res.Eligible.Minor) {
			t.Fatalf("discount %d outside 0..eligible %d", res.Discount.Minor, res.Eligible.Minor)
		}
		if res.NextValidAt != nil {
			if res.NextValidAt.Before(at) && res.Reason == ReasonOutsideTimeWindow {
				t.Fatalf("NextValidAt %s before at %s", res.NextValidAt, at)
			}
			if !rules.OpenAt(*res.NextValidAt, loc) {
				t.Fatalf("NextValidAt %s is not open", res.NextValidAt)
			}
		}
		_ = RenderRules(rules, "en", loc, &at)
		_ = RenderRules(rules, "zh", loc, nil)
	})
}

// FuzzParseDuration: every accepted duration prints canonically and parses back.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"P3M", "P14D", "PT2H", "P1Y2M10DT2H30M", "P2W", "P", "PT", "P1DT", "P999999999D", "P0D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		d, err := ParseDuration(text)
		if err != nil {
			return
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("%q → %+v → %q → %+v, %v", text, d, d.String(), back, err)
		}
		_ = d.AddTo(time.Unix(1795000000, 0), berlin)
	})
}

// FuzzParseWindow: every accepted window prints and parses back to itself.
func FuzzParseWindow(f *testing.F) {
	for _, s := range [][3]string{{"mon", "14:00", "17:00"}, {"fri", "22:00", "02:00"}, {"sun", "00:00", "24:00"},
		{"", "25:00", "17:00"}, {"tue", "14:00", "14:00"}, {"xyz", "1:00", "24:01"}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, day, from, to string) {
		in := WindowJSON{From: from, To: to}
		if day != "" {
			in.Days = []string{day}
		}
		w, errs := ParseWindow(in, "w")
		if len(errs) > 0 {
			return
		}
		if w.FromMinute == w.ToMinute || w.FromMinute < 0 || w.FromMinute >= 1440 || w.ToMinute <= 0 || w.ToMinute > 1440 {
			t.Fatalf("accepted %+v as %+v", in, w)
		}
		if formatClock(w.FromMinute) != from || formatClock(w.ToMinute) != to {
			t.Fatalf("%+v printed as %s–%s", in, formatClock(w.FromMinute), formatClock(w.ToMinute))
		}
	})
}
