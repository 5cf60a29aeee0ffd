package catalog

import (
	"testing"
	"time"
)

func TestParseHumanDuration(t *testing.T) {
	for text, want := range map[string]string{
		"3 months": "P3M", "P3M": "P3M", "p3m": "P3M", "14 days": "P14D", "1 day": "P1D", "2 hours": "PT2H",
		"1 year 6 months": "P1Y6M", "1 year, 6 months": "P1Y6M", "1 year and 6 months": "P1Y6M", "2 weeks": "P2W",
		"1 week 2 days": "P9D", "90 min": "PT90M", "3months": "P3M", " 3 Months ": "P3M", "3个月": "P3M", "1年6个月": "P1Y6M",
		"14天": "P14D", "P1Y2M10DT2H30M": "P1Y2M10DT2H30M", "1 day 12 hours": "P1DT12H",
	} {
		d, err := ParseHumanDuration(text)
		if err != nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		if d.String() != want {
			t.Errorf("%q read as %s, want %s", text, d, want)
		}
	}
	for _, text := range []string{"", "3", "months", "3 fortnights", "0 days", "3 months 2 months", "P", "P3X", "-3 days",
		"1000000000 days", "101 years", "3 months later", "3 months 3"} {
		if d, err := ParseHumanDuration(text); err == nil {
			t.Errorf("%q accepted as %s", text, d)
		}
	}
}

func TestDescribeDurationAndRenderEnd(t *testing.T) {
	d, _ := ParseDuration("P1Y6M")
	if got := DescribeDuration(d, "en"); got != "1 year 6 months" {
		t.Errorf("described as %q", got)
	}
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	midnight := time.Date(2026, 12, 17, 0, 0, 0, 0, shanghai)
	if got := RenderEnd(midnight, "en", shanghai); got != "16 Dec 2026" {
		t.Errorf("an end at midnight reads %q, want the day before", got)
	}
	if got := RenderEnd(midnight.Add(90*time.Minute), "en", shanghai); got != "17 Dec 2026 01:30" {
		t.Errorf("an end at 01:30 reads %q", got)
	}
}
