package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is an ISO 8601 duration such as P3M, P14D, PT2H or
// P1Y2M10DT2H30M: a calendar part (years, months, weeks, days) and a clock
// part (hours, minutes, seconds). Only whole numbers are accepted; weeks may
// not be combined with other units (ISO 8601's rule).
//
// Adding a duration to an instant (AddTo) works in the merchant's time zone:
//
//   - Years and months move the calendar month and keep the day of the
//     month, clamped to the last day of a shorter month: 30 Nov + P3M is
//     28 Feb (29 Feb in a leap year), 31 Jan + P1M is 28 Feb. Go's AddDate
//     would normalise 30 Feb to 2 Mar instead, which nobody expects.
//   - Weeks and days then move whole calendar days, keeping the wall clock
//     (a day across a DST change is 23 or 25 hours long).
//   - Hours, minutes and seconds are then added as elapsed time.
type Duration struct {
	Years, Months, Weeks, Days int
	Hours, Minutes, Seconds    int
}

// Bounds on each component: a coupon valid for more than a century is a typo.
const (
	durationTextLengthMax = 40
	durationYearsMax      = 100
	durationMonthsMax     = durationYearsMax * 12
	durationWeeksMax      = durationYearsMax * 53
	durationDaysMax       = durationYearsMax * 366
	durationHoursMax      = durationDaysMax * 24
	durationMinutesMax    = durationHoursMax * 60
	durationSecondsMax    = durationMinutesMax * 60
)

var errDuration = errors.New(`a duration is ISO 8601 such as "P3M", "P14D", "PT2H" or "P1Y2M10DT2H30M"`)

// ParseDuration reads a strict ISO 8601 duration: upper-case designators in
// order (Y M W D, then T H M S), whole numbers of at most nine digits
// without signs or fractions, at least one component, not all zero.
func ParseDuration(text string) (Duration, error) {
	var d Duration
	if len(text) < 3 || len(text) > durationTextLengthMax || text[0] != 'P' {
		return d, errDuration
	}
	rest := text[1:]
	datePart, timePart, hasTime := strings.Cut(rest, "T")
	if hasTime && timePart == "" {
		return d, fmt.Errorf("%w: T must be followed by hours, minutes or seconds", errDuration)
	}
	type unit struct {
		designator byte
		field      *int
		max        int
	}
	dateUnits := []unit{{'Y', &d.Years, durationYearsMax}, {'M', &d.Months, durationMonthsMax},
		{'W', &d.Weeks, durationWeeksMax}, {'D', &d.Days, durationDaysMax}}
	timeUnits := []unit{{'H', &d.Hours, durationHoursMax}, {'M', &d.Minutes, durationMinutesMax},
		{'S', &d.Seconds, durationSecondsMax}}
	components := 0
	parse := func(part string, units []unit) error {
		next := 0
		for part != "" {
			i := 0
			for i < len(part) && part[i] >= '0' && part[i] <= '9' {
				i++
			}
			if i == 0 || i == len(part) {
				return errDuration
			}
			if i > 9 {
				return fmt.Errorf("%w: number %s is too large", errDuration, part[:i])
			}
			n, err := strconv.Atoi(part[:i])
			if err != nil {
				return errDuration
			}
			designator := part[i]
			found := false
			for next < len(units) {
				u := units[next]
				next++
				if u.designator == designator {
					if n > u.max {
						return fmt.Errorf("%w: %d%c is above the maximum of %d", errDuration, n, designator, u.max)
					}
					*u.field = n
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("%w: unexpected or out-of-order %q", errDuration, string(designator))
			}
			components++
			part = part[i+1:]
		}
		return nil
	}
	if err := parse(datePart, dateUnits); err != nil {
		return Duration{}, err
	}
	if err := parse(timePart, timeUnits); err != nil {
		return Duration{}, err
	}
	if components == 0 {
		return Duration{}, errDuration
	}
	if d.Weeks > 0 && components > 1 {
		return Duration{}, fmt.Errorf("%w: weeks cannot be combined with other units", errDuration)
	}
	if d.IsZero() {
		return Duration{}, fmt.Errorf("%w: the duration must not be zero", errDuration)
	}
	return d, nil
}

// IsZero reports a duration of no length (also the "not set" value).
func (d Duration) IsZero() bool {
	return d == Duration{}
}

// HasClock reports whether the duration has hours, minutes or seconds.
func (d Duration) HasClock() bool {
	return d.Hours != 0 || d.Minutes != 0 || d.Seconds != 0
}

// String renders the canonical ISO 8601 form ("P1Y2M10DT2H30M").
func (d Duration) String() string {
	if d.IsZero() {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteByte('P')
	write := func(n int, designator byte) {
		if n != 0 {
			b.WriteString(strconv.Itoa(n))
			b.WriteByte(designator)
		}
	}
	write(d.Years, 'Y')
	write(d.Months, 'M')
	write(d.Weeks, 'W')
	write(d.Days, 'D')
	if d.HasClock() {
		b.WriteByte('T')
		write(d.Hours, 'H')
		write(d.Minutes, 'M')
		write(d.Seconds, 'S')
	}
	return b.String()
}

// MarshalJSON writes the ISO 8601 string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads an ISO 8601 string.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return errDuration
	}
	parsed, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}

// AddTo returns t + d under the rule in Duration's comment, in loc.
func (d Duration) AddTo(t time.Time, loc *time.Location) time.Time {
	local := t.In(loc)
	year, month, day := local.Date()
	hour, minute, second := local.Clock()
	totalMonths := int(month) - 1 + d.Months + 12*d.Years
	year += totalMonths / 12
	month = time.Month(totalMonths%12 + 1)
	if last := daysIn(year, month); day > last {
		day = last
	}
	day += 7*d.Weeks + d.Days
	shifted := time.Date(year, month, day, hour, minute, second, local.Nanosecond(), loc)
	clock := time.Duration(d.Hours)*time.Hour + time.Duration(d.Minutes)*time.Minute + time.Duration(d.Seconds)*time.Second
	return shifted.Add(clock)
}

// daysIn is the number of days of month in year.
func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
