package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chatpay/chatpay/internal/jsonin"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// CouponKind says what a coupon is worth.
type CouponKind string

// Coupon kinds.
const (
	// CouponVoucher pays for the item it was bought as (the tea card): its
	// value is the price payments snapshotted at sale, not a discount.
	CouponVoucher CouponKind = "voucher"
	// CouponAmountOff takes a fixed amount off the basket.
	CouponAmountOff CouponKind = "amount_off"
	// CouponPercentOff takes a share of the basket, in basis points.
	CouponPercentOff CouponKind = "percent_off"
)

// Rules are the conditions of a coupon. They are plain data, serialised as
// JSON (see RulesJSON), and payments copies them into every coupon it
// issues, so a later edit of the template never changes an issued coupon.
//
// Times of day and weekdays are read in the merchant's time zone, which the
// caller passes to Check and RenderRules.
type Rules struct {
	Kind                  CouponKind
	AmountOff             *money.Amount // CouponAmountOff only
	PercentOffBasisPoints int64         // CouponPercentOff only: 1500 = 15 %

	// Absolute validity: from inclusive, until exclusive; either may be nil.
	ValidFrom  *time.Time
	ValidUntil *time.Time
	// Relative validity from the issue of a coupon (zero: none). See ExpiresAt.
	ValidFor Duration

	// Windows are the weekly hours the coupon can be used; none means any time.
	Windows []Window

	// Categories are lower-case. A basket line in an excluded category, or
	// outside the included ones (when any are given), refuses the coupon.
	IncludeCategories []string
	ExcludeCategories []string

	MinSpend      *money.Amount // the basket must total at least this
	UsesPerCoupon int           // how often one coupon can be redeemed; 0 means 1
}

// Window is a weekly time window in wall-clock time: on each of Days, from
// From (inclusive) to To (exclusive), both minutes after midnight. To may be
// 1440 ("24:00"). A window whose To is before its From crosses midnight and
// belongs to the day it starts: Fri 22:00–02:00 is open Friday 22:00 until
// Saturday 02:00.
type Window struct {
	Days       Weekdays
	FromMinute int
	ToMinute   int
}

// Weekdays is a set of days, bit i standing for time.Weekday(i).
type Weekdays uint8

// EveryDay holds all seven days.
const EveryDay Weekdays = 0x7f

// Has reports whether d is in the set.
func (w Weekdays) Has(d time.Weekday) bool { return w&(1<<uint(d)) != 0 }

// Reason is why Check refused a coupon; the values are stable API codes.
type Reason string

// Refusal reasons, in the order Check tests them.
const (
	ReasonAlreadyRedeemed     Reason = "already_redeemed"
	ReasonNotYetValid         Reason = "not_yet_valid"
	ReasonExpired             Reason = "expired"
	ReasonOutsideTimeWindow   Reason = "outside_time_window"
	ReasonEmptyBasket         Reason = "empty_basket"
	ReasonCurrencyMismatch    Reason = "currency_mismatch"
	ReasonCategoryExcluded    Reason = "category_excluded"
	ReasonCategoryNotIncluded Reason = "category_not_included"
	ReasonBelowMinSpend       Reason = "below_min_spend"
)

// CouponState is what payments knows about one issued coupon.
type CouponState struct {
	IssuedAt time.Time
	UsesLeft int // starts at Rules.Uses(); 0 means used up
}

// Line is one basket line: its amount is the line total (price × quantity).
type Line struct {
	SKU      string
	Category string
	Amount   money.Amount
}

// Basket is what the coupon is presented against.
type Basket struct {
	Lines []Line
}

// Result is Check's answer: OK, or one reason.
type Result struct {
	OK     bool
	Reason Reason // empty when OK
	// NextValidAt is when a coupon refused as not_yet_valid or
	// outside_time_window can next be used; nil if never again before it
	// expires.
	NextValidAt *time.Time
	// ExpiresAt is the coupon's end of validity (exclusive); nil if none.
	ExpiresAt *time.Time
	// Eligible is the basket total the coupon applies to, and Discount what
	// it takes off (zero for a voucher, whose value is its own item). Both
	// are set when OK.
	Eligible money.Amount
	Discount money.Amount
}

// Uses is how often a coupon with these rules can be redeemed.
func (r Rules) Uses() int {
	if r.UsesPerCoupon <= 0 {
		return 1
	}
	return r.UsesPerCoupon
}

// ExpiresAt is when a coupon issued at issuedAt stops being valid
// (exclusive), or nil if never. It is the earlier of ValidUntil and
// issuedAt + ValidFor. A ValidFor with only calendar units (P3M, P14D) runs
// to the end of its last day in loc, as people expect of "valid for three
// months": issued 30 Nov 2026 with P3M, the coupon is valid through
// 28 Feb 2027 and expires at 1 Mar 2027 00:00. A ValidFor with a clock part
// (PT2H, P1DT12H) ends at that exact instant.
func (r Rules) ExpiresAt(issuedAt time.Time, loc *time.Location) *time.Time {
	if loc == nil {
		loc = time.UTC
	}
	var expires *time.Time
	if !r.ValidFor.IsZero() {
		end := r.ValidFor.AddTo(issuedAt, loc)
		if !r.ValidFor.HasClock() {
			year, month, day := end.In(loc).Date()
			end = time.Date(year, month, day+1, 0, 0, 0, 0, loc)
		}
		expires = &end
	}
	if r.ValidUntil != nil && (expires == nil || r.ValidUntil.Before(*expires)) {
		until := *r.ValidUntil
		expires = &until
	}
	return expires
}

// Check decides whether a coupon with rules and state can be used for basket
// at instant at, reading wall-clock rules in loc. It never panics, whatever
// its input. The rules are checked in this order, and the first that fails
// is the one reason returned:
//
//  1. already_redeemed: no uses left. Nothing else can ever help.
//  2. not_yet_valid: before ValidFrom.
//  3. expired: at or after ExpiresAt.
//  4. outside_time_window: no window is open now (NextValidAt says when).
//  5. empty_basket: no lines.
//  6. currency_mismatch: lines, minimum spend and amount off disagree.
//  7. category_excluded: a line is in an excluded category.
//  8. category_not_included: a line is outside the included categories.
//  9. below_min_spend: the basket total is under the minimum spend.
//
// The coupon's own state and time come first, because the cashier can do
// nothing about them; the basket comes last, because it can be changed.
func Check(rules Rules, state CouponState, basket Basket, at time.Time, loc *time.Location) Result {
	if loc == nil {
		loc = time.UTC
	}
	expires := rules.ExpiresAt(state.IssuedAt, loc)
	refuse := func(reason Reason, next *time.Time) Result {
		return Result{Reason: reason, NextValidAt: next, ExpiresAt: expires}
	}
	if state.UsesLeft <= 0 {
		return refuse(ReasonAlreadyRedeemed, nil)
	}
	if rules.ValidFrom != nil && at.Before(*rules.ValidFrom) {
		return refuse(ReasonNotYetValid, rules.nextOpen(*rules.ValidFrom, expires, loc))
	}
	if expires != nil && !at.Before(*expires) {
		return refuse(ReasonExpired, nil)
	}
	if len(rules.Windows) > 0 && !rules.OpenAt(at, loc) {
		return refuse(ReasonOutsideTimeWindow, rules.nextOpen(at, expires, loc))
	}
	if len(basket.Lines) == 0 {
		return refuse(ReasonEmptyBasket, nil)
	}
	currency := basket.Lines[0].Amount.Currency
	for _, line := range basket.Lines {
		if line.Amount.Currency != currency {
			return refuse(ReasonCurrencyMismatch, nil)
		}
	}
	if (rules.MinSpend != nil && rules.MinSpend.Currency != currency) ||
		(rules.Kind == CouponAmountOff && rules.AmountOff != nil && rules.AmountOff.Currency != currency) {
		return refuse(ReasonCurrencyMismatch, nil)
	}
	for _, line := range basket.Lines {
		if containsFold(rules.ExcludeCategories, line.Category) {
			return refuse(ReasonCategoryExcluded, nil)
		}
	}
	if len(rules.IncludeCategories) > 0 {
		for _, line := range basket.Lines {
			if !containsFold(rules.IncludeCategories, line.Category) {
				return refuse(ReasonCategoryNotIncluded, nil)
			}
		}
	}
	var total int64
	for _, line := range basket.Lines {
		total = addSaturating(total, max(line.Amount.Minor, 0))
	}
	if rules.MinSpend != nil && total < rules.MinSpend.Minor {
		return refuse(ReasonBelowMinSpend, nil)
	}
	result := Result{OK: true, ExpiresAt: expires, Eligible: money.New(total, currency), Discount: money.New(0, currency)}
	switch rules.Kind {
	case CouponAmountOff:
		if rules.AmountOff != nil {
			result.Discount.Minor = min(max(rules.AmountOff.Minor, 0), total)
		}
	case CouponPercentOff:
		bp := min(max(rules.PercentOffBasisPoints, 0), PercentOffBasisPoints)
		result.Discount.Minor = min(money.BasisPoints(bp).Apply(total), total)
	}
	return result
}

func addSaturating(a, b int64) int64 {
	if a > money.MinorMax*1000-b {
		return money.MinorMax * 1000
	}
	return a + b
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// OpenAt reports whether any window is open at t (true when there are no
// windows). The instant is converted into wall-clock time in loc first, so
// DST days need no special case: on a day that skips 02:00–03:00, a window
// 01:30–03:30 is open one hour; on a day that repeats 02:00–03:00, three.
func (r Rules) OpenAt(t time.Time, loc *time.Location) bool {
	if len(r.Windows) == 0 {
		return true
	}
	local := t.In(loc)
	hour, minute, second := local.Clock()
	secondOfDay := hour*3600 + minute*60 + second
	today := local.Weekday()
	yesterday := (today + 6) % 7
	for _, w := range r.Windows {
		from, to := w.FromMinute*60, w.ToMinute*60
		switch {
		case from < to:
			if w.Days.Has(today) && secondOfDay >= from && secondOfDay < to {
				return true
			}
		case to < from: // crosses midnight
			if (w.Days.Has(today) && secondOfDay >= from) || (w.Days.Has(yesterday) && secondOfDay < to) {
				return true
			}
		}
	}
	return false
}

// Bounds of the search for the next opening: every window opens within a
// week, but a window that falls into a DST gap on its only day may skip one
// week, so two weeks and a day always suffice.
const (
	nextOpenSearchDays   = 16
	zoneTransitionsMax   = 64
	secondsPerDay        = 24 * 3600
	nextOpenCandidateMax = nextOpenSearchDays * WindowsMax * 4
)

// nextOpen returns the first instant at or after from when a window is open
// and the coupon has not expired, or nil. Openings are found as instants
// whose wall-clock time is a window's start (trying every UTC offset the
// zone uses around then, so both occurrences of a repeated hour count) and
// zone transitions (where the wall clock jumps into a window, e.g. a start
// inside a skipped hour).
func (r Rules) nextOpen(from time.Time, expires *time.Time, loc *time.Location) *time.Time {
	best := (*time.Time)(nil)
	consider := func(c time.Time) {
		if c.Before(from) || (expires != nil && !c.Before(*expires)) || (best != nil && !c.Before(*best)) {
			return
		}
		if r.OpenAt(c, loc) {
			best = &c
		}
	}
	consider(from)
	if len(r.Windows) == 0 {
		return best
	}
	local := from.In(loc)
	year, month, day := local.Date()
	rangeStart := time.Date(year, month, day-1, 0, 0, 0, 0, time.UTC)
	rangeEnd := rangeStart.AddDate(0, 0, nextOpenSearchDays+1)

	// Zone transitions in the range, and the offsets in use around them.
	_, offset := local.Zone()
	offsets := []int{offset}
	t := from.Add(-2 * secondsPerDay * time.Second)
	for range zoneTransitionsMax {
		_, end := t.In(loc).ZoneBounds()
		if end.IsZero() || end.After(rangeEnd.Add(2*secondsPerDay*time.Second)) || !end.After(t) {
			break
		}
		consider(end)
		for _, at := range []time.Time{end.Add(-time.Second), end} {
			if _, off := at.In(loc).Zone(); !slices.Contains(offsets, off) {
				offsets = append(offsets, off)
			}
		}
		t = end
	}

	candidates := 0
	for d := 0; d <= nextOpenSearchDays && candidates < nextOpenCandidateMax; d++ {
		date := rangeStart.AddDate(0, 0, d)
		for _, w := range r.Windows {
			if !w.Days.Has(date.Weekday()) || w.FromMinute < 0 || w.FromMinute >= 24*60 {
				continue
			}
			wall := date.Add(time.Duration(w.FromMinute) * time.Minute)
			for _, off := range offsets {
				candidates++
				instant := wall.Add(-time.Duration(off) * time.Second)
				if sameWall(instant.In(loc), wall) {
					consider(instant)
				}
			}
		}
	}
	return best
}

func sameWall(local, wall time.Time) bool {
	y1, m1, d1 := local.Date()
	y2, m2, d2 := wall.Date()
	h1, i1, s1 := local.Clock()
	h2, i2, s2 := wall.Clock()
	return y1 == y2 && m1 == m2 && d1 == d2 && h1 == h2 && i1 == i2 && s1 == s2
}

// RulesJSON is the wire form of Rules, in requests, responses and coupon
// snapshots. Every field is a string or a number so that parsing can name
// the exact field that is wrong.
type RulesJSON struct {
	Kind              string       `json:"kind"`
	AmountOff         *AmountJSON  `json:"amount_off,omitempty"`
	PercentOffBP      *int64       `json:"percent_off_bp,omitempty"`
	ValidFrom         string       `json:"valid_from,omitempty"`
	ValidUntil        string       `json:"valid_until,omitempty"`
	ValidFor          string       `json:"valid_for,omitempty"`
	Windows           []WindowJSON `json:"windows,omitempty"`
	IncludeCategories []string     `json:"include_categories,omitempty"`
	ExcludeCategories []string     `json:"exclude_categories,omitempty"`
	MinSpend          *AmountJSON  `json:"min_spend,omitempty"`
	UsesPerCoupon     *int         `json:"uses_per_coupon,omitempty"`
}

// WindowJSON is a window on the wire: {"days":["mon","tue"],"from":"14:00","to":"17:00"}.
// No days means every day.
type WindowJSON struct {
	Days []string `json:"days,omitempty"`
	From string   `json:"from"`
	To   string   `json:"to"`
}

// AmountJSON is an amount on the wire before it is parsed, so that errors
// can name the field: {"amount":"3.00","currency":"CNY"}.
type AmountJSON struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// Parse validates the amount, naming field in its problems.
func (a AmountJSON) Parse(field string) (money.Amount, *problem.FieldError) {
	c, err := money.ParseCurrency(a.Currency)
	if err != nil {
		return money.Amount{}, fieldError(field+".currency", err)
	}
	minor, err := c.Parse(a.Amount)
	if err != nil {
		return money.Amount{}, fieldError(field+".amount", err)
	}
	return money.New(minor, c), nil
}

func amountJSON(a money.Amount) *AmountJSON {
	return &AmountJSON{Amount: a.Currency.Format(a.Minor), Currency: a.Currency.Code()}
}

func fieldError(field string, err error) *problem.FieldError {
	code := "invalid"
	var me *money.Error
	if errors.As(err, &me) {
		code = me.Code
	}
	return &problem.FieldError{Field: field, Code: code, Detail: err.Error()}
}

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// JSON returns the wire form of the rules.
func (r Rules) JSON() RulesJSON {
	w := RulesJSON{
		Kind:              string(r.Kind),
		IncludeCategories: r.IncludeCategories,
		ExcludeCategories: r.ExcludeCategories,
	}
	if r.AmountOff != nil {
		w.AmountOff = amountJSON(*r.AmountOff)
	}
	if r.Kind == CouponPercentOff {
		bp := r.PercentOffBasisPoints
		w.PercentOffBP = &bp
	}
	if r.ValidFrom != nil {
		w.ValidFrom = r.ValidFrom.Format(time.RFC3339)
	}
	if r.ValidUntil != nil {
		w.ValidUntil = r.ValidUntil.Format(time.RFC3339)
	}
	if !r.ValidFor.IsZero() {
		w.ValidFor = r.ValidFor.String()
	}
	for _, win := range r.Windows {
		wj := WindowJSON{From: formatClock(win.FromMinute), To: formatClock(win.ToMinute)}
		for _, d := range mondayFirst {
			if win.Days.Has(d) {
				wj.Days = append(wj.Days, dayNames[d])
			}
		}
		w.Windows = append(w.Windows, wj)
	}
	if r.MinSpend != nil {
		w.MinSpend = amountJSON(*r.MinSpend)
	}
	uses := r.Uses()
	w.UsesPerCoupon = &uses
	return w
}

// MarshalJSON writes the wire form.
func (r Rules) MarshalJSON() ([]byte, error) { return json.Marshal(r.JSON()) }

// UnmarshalJSON reads and validates the wire form, so a snapshot read back
// is exactly the rules that were written.
func (r *Rules) UnmarshalJSON(data []byte) error {
	var w RulesJSON
	if err := jsonin.DecodeNested(data, &w); err != nil {
		return fmt.Errorf("coupon rules: %w", err)
	}
	parsed, fields := ParseRules(w, "rules")
	if len(fields) > 0 {
		return problem.Invalid(fields...)
	}
	*r = parsed
	return nil
}

var mondayFirst = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

// ParseRules validates the wire form. Its problems name fields below prefix
// ("rules.windows[0].from"); it returns all of them, not just the first.
func ParseRules(w RulesJSON, prefix string) (Rules, []problem.FieldError) {
	errs := &fieldErrors{prefix: prefix}
	r := Rules{Kind: CouponKind(w.Kind), UsesPerCoupon: 1}
	parseCouponValue(w, &r, errs)
	parseValidity(w, &r, errs)
	parseConditions(w, &r, errs)
	if len(errs.list) > 0 {
		return Rules{}, errs.list
	}
	return r, nil
}

// fieldErrors collects the problems of one request body.
type fieldErrors struct {
	prefix string
	list   []problem.FieldError
}

func (e *fieldErrors) bad(field, code, format string, args ...any) {
	e.list = append(e.list, problem.FieldError{Field: e.prefix + "." + field, Code: code, Detail: fmt.Sprintf(format, args...)})
}

func (e *fieldErrors) add(fields ...problem.FieldError) {
	e.list = append(e.list, fields...)
}

// parseCouponValue reads kind and what the coupon is worth.
func parseCouponValue(w RulesJSON, r *Rules, errs *fieldErrors) {
	switch r.Kind {
	case CouponVoucher, CouponAmountOff, CouponPercentOff:
	case "":
		errs.bad("kind", "required", "kind is required: voucher, amount_off or percent_off")
	default:
		errs.bad("kind", "invalid_kind", "kind must be voucher, amount_off or percent_off, not %q", w.Kind)
	}
	switch {
	case w.AmountOff != nil && r.Kind != CouponAmountOff:
		errs.bad("amount_off", "not_allowed", "amount_off belongs to kind amount_off only")
	case w.AmountOff != nil:
		if a, fe := w.AmountOff.Parse(errs.prefix + ".amount_off"); fe != nil {
			errs.add(*fe)
		} else if a.Minor == 0 {
			errs.bad("amount_off.amount", "invalid_amount", "amount_off must be more than zero")
		} else {
			r.AmountOff = &a
		}
	case r.Kind == CouponAmountOff:
		errs.bad("amount_off", "required", "kind amount_off needs amount_off")
	}
	switch {
	case w.PercentOffBP != nil && r.Kind != CouponPercentOff:
		errs.bad("percent_off_bp", "not_allowed", "percent_off_bp belongs to kind percent_off only")
	case w.PercentOffBP != nil:
		if bp := *w.PercentOffBP; bp < 1 || bp > PercentOffBasisPoints {
			errs.bad("percent_off_bp", "out_of_range", "percent_off_bp is basis points from 1 to %d (100 %%), not %d", PercentOffBasisPoints, bp)
		} else {
			r.PercentOffBasisPoints = bp
		}
	case r.Kind == CouponPercentOff:
		errs.bad("percent_off_bp", "required", "kind percent_off needs percent_off_bp")
	}
}

// parseValidity reads valid_from, valid_until and valid_for.
func parseValidity(w RulesJSON, r *Rules, errs *fieldErrors) {
	parseInstant := func(field, text string) *time.Time {
		if text == "" {
			return nil
		}
		t, err := time.Parse(time.RFC3339, text)
		if err != nil {
			errs.bad(field, "invalid_time", "%s must be an RFC 3339 time such as 2027-02-21T23:59:59+08:00", field)
			return nil
		}
		return &t
	}
	r.ValidFrom = parseInstant("valid_from", w.ValidFrom)
	r.ValidUntil = parseInstant("valid_until", w.ValidUntil)
	if r.ValidFrom != nil && r.ValidUntil != nil && !r.ValidUntil.After(*r.ValidFrom) {
		errs.bad("valid_until", "invalid_range", "valid_until must be after valid_from")
	}
	if w.ValidFor != "" {
		d, err := ParseDuration(w.ValidFor)
		if err != nil {
			errs.bad("valid_for", "invalid_duration", "%v", err)
		}
		r.ValidFor = d
	}
}

// parseConditions reads windows, categories, minimum spend and uses.
func parseConditions(w RulesJSON, r *Rules, errs *fieldErrors) {
	if len(w.Windows) > WindowsMax {
		errs.bad("windows", "too_many", "at most %d windows", WindowsMax)
	} else {
		for i, wj := range w.Windows {
			win, fieldErrs := ParseWindow(wj, fmt.Sprintf("%s.windows[%d]", errs.prefix, i))
			errs.add(fieldErrs...)
			r.Windows = append(r.Windows, win)
		}
	}
	var fe []problem.FieldError
	r.IncludeCategories, fe = parseCategories(w.IncludeCategories, errs.prefix+".include_categories")
	errs.add(fe...)
	r.ExcludeCategories, fe = parseCategories(w.ExcludeCategories, errs.prefix+".exclude_categories")
	errs.add(fe...)
	for _, c := range r.IncludeCategories {
		if slices.Contains(r.ExcludeCategories, c) {
			errs.bad("exclude_categories", "conflict", "category %q is both included and excluded", c)
		}
	}
	if w.MinSpend != nil {
		if a, fe := w.MinSpend.Parse(errs.prefix + ".min_spend"); fe != nil {
			errs.add(*fe)
		} else {
			r.MinSpend = &a
		}
	}
	if r.MinSpend != nil && r.AmountOff != nil && r.MinSpend.Currency != r.AmountOff.Currency {
		errs.bad("min_spend.currency", "currency_mismatch", "min_spend and amount_off must have the same currency")
	}
	if w.UsesPerCoupon != nil {
		if n := *w.UsesPerCoupon; n < 1 || n > UsesPerCouponMax {
			errs.bad("uses_per_coupon", "out_of_range", "uses_per_coupon must be 1 to %d", UsesPerCouponMax)
		} else {
			r.UsesPerCoupon = n
		}
	}
}

// ParseWindow validates one window, naming fields below prefix.
func ParseWindow(w WindowJSON, prefix string) (Window, []problem.FieldError) {
	var errs []problem.FieldError
	bad := func(field, code, format string, args ...any) {
		errs = append(errs, problem.FieldError{Field: prefix + "." + field, Code: code, Detail: fmt.Sprintf(format, args...)})
	}
	win := Window{Days: EveryDay}
	if len(w.Days) > 0 {
		win.Days = 0
		for i, name := range w.Days {
			d := slices.Index(dayNames[:], name)
			switch {
			case d < 0:
				bad(fmt.Sprintf("days[%d]", i), "invalid_day", "days are mon, tue, wed, thu, fri, sat, sun; not %q", name)
			case win.Days.Has(time.Weekday(d)):
				bad(fmt.Sprintf("days[%d]", i), "duplicate_day", "%q is listed twice", name)
			default:
				win.Days |= 1 << uint(d)
			}
		}
	}
	var err error
	if win.FromMinute, err = parseClock(w.From, false); err != nil {
		bad("from", "invalid_time_of_day", "%v", err)
	}
	if win.ToMinute, err = parseClock(w.To, true); err != nil {
		bad("to", "invalid_time_of_day", "%v", err)
	}
	if len(errs) == 0 && win.FromMinute == win.ToMinute {
		bad("to", "empty_window", "from and to are equal; a window needs a length (use 00:00–24:00 for a whole day)")
	}
	if len(errs) > 0 {
		return Window{}, errs
	}
	return win, nil
}

// parseClock reads "HH:MM" (00:00 to 23:59, and 24:00 when allow24) into
// minutes after midnight.
func parseClock(text string, allow24 bool) (int, error) {
	bad := fmt.Errorf("a time of day is HH:MM from 00:00 to 23:59 (24:00 allowed as an end), not %q", text)
	if len(text) != 5 || text[2] != ':' {
		return 0, bad
	}
	digit := func(b byte) (int, bool) { return int(b - '0'), b >= '0' && b <= '9' }
	h1, ok1 := digit(text[0])
	h2, ok2 := digit(text[1])
	m1, ok3 := digit(text[3])
	m2, ok4 := digit(text[4])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, bad
	}
	hour, minute := h1*10+h2, m1*10+m2
	if minute > 59 || hour > 24 || (hour == 24 && (minute != 0 || !allow24)) {
		return 0, bad
	}
	return hour*60 + minute, nil
}

func formatClock(minutes int) string {
	return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60)
}

// parseCategories lower-cases, trims and de-duplicates category names.
func parseCategories(in []string, field string) ([]string, []problem.FieldError) {
	if len(in) > CategoriesMax {
		return nil, []problem.FieldError{{Field: field, Code: "too_many", Detail: fmt.Sprintf("at most %d categories", CategoriesMax)}}
	}
	var out []string
	var errs []problem.FieldError
	for i, c := range in {
		c = normalizeCategory(c)
		if c == "" || len(c) > CategoryLengthMax {
			errs = append(errs, problem.FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Code: "invalid_category",
				Detail: fmt.Sprintf("a category is 1 to %d bytes", CategoryLengthMax)})
			continue
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, errs
}

func normalizeCategory(c string) string {
	return strings.ToLower(strings.TrimSpace(c))
}
