package web

import (
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/problem"
)

// The error summary names the form's fields, links to them, and says each
// problem once, without the API's paths or names.
func TestFieldSummaryInFormWords(t *testing.T) {
	p := page{Fields: []problem.FieldError{
		{Field: "price.amount", Code: "invalid_amount", Detail: `amount must look like 3.00 (digits and one decimal point), not "three"`},
		{Field: "rules.windows[0].to", Code: "invalid_time_of_day", Detail: `a time of day is HH:MM, not "26:00"`},
		{Field: "rules.windows[0].to", Code: "invalid_time_of_day", Detail: `a time of day is HH:MM, not "26:00"`},
		{Field: "rules.percent_off_bp", Code: "out_of_range", Detail: "percent_off_bp is basis points from 1 to 10000 (100 %), not 0"},
		{Field: "rules.valid_until", Code: "invalid_range", Detail: "valid_until must be after valid_from"},
		{Field: "mystery_field[2]", Code: "invalid", Detail: "is wrong"},
	}}
	want := []fieldLine{
		{Label: "Price", Anchor: "price", Detail: `amount must look like 3.00 (digits and one decimal point), not "three"`},
		{Label: "Hours", Anchor: "windows", Detail: `a time of day is HH:MM, not "26:00"`},
		{Label: "Percent off", Anchor: "percent_off", Detail: "percent off is from 0.01 to 100, not 0"},
		{Label: "Valid until", Anchor: "valid_until", Detail: "valid until must be after valid from"},
		{Label: "Mystery field", Detail: "is wrong"},
	}
	got := p.FieldSummary()
	if len(got) != len(want) {
		t.Fatalf("summary %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d is %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestNextValidInCashiersWords(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 17, 30, 0, 0, shanghai)
	for at, want := range map[time.Time]string{
		time.Date(2026, 11, 21, 18, 0, 0, 0, shanghai): "today at 18:00",
		time.Date(2026, 11, 22, 14, 0, 0, 0, shanghai): "tomorrow at 14:00",
		time.Date(2026, 11, 25, 14, 0, 0, 0, shanghai): "Wed 25 Nov at 14:00",
		time.Date(2027, 1, 4, 9, 5, 0, 0, shanghai):    "Mon 4 Jan 2027 at 09:05",
	} {
		if got := nextValidText(at.UTC().Format(time.RFC3339), now.UTC(), shanghai); got != want {
			t.Errorf("%s reads %q, want %q", at, got, want)
		}
	}
	v := refusedVerdict("X", "outside_time_window", "this coupon cannot be used at this time of day", "tomorrow at 14:00", "")
	if v.Headline != "Not valid at this hour" || v.When != "Valid again tomorrow at 14:00." || strings.Contains(v.Advice, "_") {
		t.Errorf("verdict %+v", v)
	}
}

func TestCountsAndEmptyCharts(t *testing.T) {
	for n, want := range map[any]string{0: "0 attempts", 1: "1 attempt", int64(2): "2 attempts"} {
		if got := countOf(n, "attempt", "attempts"); got != want {
			t.Errorf("%v: %q", n, got)
		}
	}
	empty := string(ColumnChart("Orders", "#000", "No sales yet\nThey appear here.", []Bar{{Label: "1 Dec"}, {Label: "2 Dec"}}))
	if strings.Contains(empty, "max") || strings.Contains(empty, "<svg") || !strings.Contains(empty, "No sales yet") {
		t.Errorf("an empty chart renders %s", empty)
	}
	chart := string(ColumnChart("Orders", "#000", "", []Bar{{Label: "1 Dec", Value: 1, Display: "1 order"}, {Label: "2 Dec", Value: 3, Display: "3 orders"}}))
	if !strings.Contains(chart, "Best day: 2 Dec, 3 orders") || strings.Count(chart, "<rect") != 2 {
		t.Errorf("chart %s", chart)
	}
}
