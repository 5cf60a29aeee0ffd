package catalog

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// People write how long a coupon lasts as "3 months" or "14 days", not as
// ISO 8601. ParseHumanDuration reads both, for forms; the API keeps taking
// ISO 8601 only (ParseDuration), so its contract does not move.

var errHumanDuration = errors.New(`write a length such as "3 months", "14 days", "2 hours" or "1 year 6 months" (ISO 8601 such as P3M works too)`)

// humanUnits maps the words of a length to its ISO 8601 designator; a
// designator after "T" is a clock unit. English singular, plural and common
// abbreviations, and the Chinese units the shopper pages use.
var humanUnits = map[string]string{
	"y": "Y", "yr": "Y", "yrs": "Y", "year": "Y", "years": "Y", "年": "Y",
	"mo": "M", "mon": "M", "mons": "M", "month": "M", "months": "M", "个月": "M", "月": "M",
	"w": "W", "wk": "W", "wks": "W", "week": "W", "weeks": "W", "周": "W", "星期": "W",
	"d": "D", "day": "D", "days": "D", "天": "D", "日": "D",
	"h": "TH", "hr": "TH", "hrs": "TH", "hour": "TH", "hours": "TH", "小时": "TH",
	"min": "TM", "mins": "TM", "minute": "TM", "minutes": "TM", "分钟": "TM",
	"s": "TS", "sec": "TS", "secs": "TS", "second": "TS", "seconds": "TS", "秒": "TS",
}

// ParseHumanDuration reads a length as people write it ("3 months",
// "14 days", "1 year 6 months", "2 weeks", "3个月") or as ISO 8601 ("P3M",
// also in lower case). Each unit may appear once; weeks combined with other
// units count as days, since ISO 8601 allows weeks only alone. The result
// obeys ParseDuration's bounds.
func ParseHumanDuration(text string) (Duration, error) {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > durationTextLengthMax {
		return Duration{}, errHumanDuration
	}
	if upper := strings.ToUpper(text); upper[0] == 'P' && !strings.ContainsFunc(upper, unicode.IsSpace) {
		d, err := ParseDuration(upper)
		if err != nil {
			return Duration{}, errHumanDuration
		}
		return d, nil
	}
	amounts := map[string]int{}
	var order []string
	rest := strings.ToLower(text)
	for rest = trimJoiners(rest); rest != ""; rest = trimJoiners(rest) {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return Duration{}, errHumanDuration
		}
		n, _ := strconv.Atoi(rest[:i]) // at most nine digits: always fits
		rest = strings.TrimLeft(rest[i:], " ")
		j := strings.IndexFunc(rest, func(r rune) bool { return r == ' ' || r == ',' || unicode.IsDigit(r) })
		if j < 0 {
			j = len(rest)
		}
		unit, ok := humanUnits[rest[:j]]
		if !ok {
			return Duration{}, errHumanDuration
		}
		if _, seen := amounts[unit]; seen {
			return Duration{}, errHumanDuration
		}
		amounts[unit] = n
		order = append(order, unit)
		rest = rest[j:]
	}
	if len(order) == 0 {
		return Duration{}, errHumanDuration
	}
	if weeks, ok := amounts["W"]; ok && len(order) > 1 {
		delete(amounts, "W")
		amounts["D"] += 7 * weeks
	}
	var iso strings.Builder
	iso.WriteByte('P')
	for _, u := range []string{"Y", "M", "W", "D"} {
		if n, ok := amounts[u]; ok {
			iso.WriteString(strconv.Itoa(n) + u)
		}
	}
	clock := false
	for _, u := range []string{"TH", "TM", "TS"} {
		if n, ok := amounts[u]; ok {
			if !clock {
				iso.WriteByte('T')
				clock = true
			}
			iso.WriteString(strconv.Itoa(n) + u[1:])
		}
	}
	d, err := ParseDuration(iso.String())
	if err != nil {
		return Duration{}, errHumanDuration
	}
	return d, nil
}

// trimJoiners drops the spaces, commas and "and"s between a length's parts.
func trimJoiners(s string) string {
	for {
		trimmed := strings.TrimLeft(s, " ,")
		trimmed = strings.TrimPrefix(trimmed, "and ")
		if trimmed == s {
			return s
		}
		s = trimmed
	}
}

// DescribeDuration words a length in lang as the rule text does: "3 months",
// "1 year 6 months", "3个月".
func DescribeDuration(d Duration, lang string) string {
	return renderDuration(languageOf(lang), d)
}

// RenderEnd shows the exclusive end of a validity in lang and loc the way
// the rule text does: an end at midnight is the last day it is valid
// ("16 Dec 2026" for 17 Dec 00:00), other ends show their time.
func RenderEnd(t time.Time, lang string, loc *time.Location) string {
	return renderInstant(languageOf(lang), t, loc, true)
}
