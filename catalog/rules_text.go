package catalog

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chatpay/chatpay/internal/money"
)

// messages is one language's wording of rules. Phrases are functions rather
// than format strings because word order differs between languages; adding
// a language is adding one entry to languages.
type messages struct {
	lang        string    // the language's primary subtag: "en"
	days        [7]string // by time.Weekday
	dayRange    string    // joins the first and last day of a run: "Mon–Fri"
	listSep     string    // between list items: "Mon, Wed"
	groupSep    string    // between windows on different days
	orWord      string    // before the last of alternatives: "tea or cake"
	clauseSep   string    // between clauses of the sentence
	sentenceSep string    // between the discount and the conditions
	daily       func(times string) string
	onDays      func(days, times string) string
	valid       func(schedule string) string
	anyTime     string
	zone        func(name string) string
	onlyFor     func(list string) string
	notFor      func(list string) string
	minSpend    func(amount string) string
	amountOff   func(amount string) string
	percentOff  func(percent string) string
	afterIssue  func(duration string) string
	fromDate    func(date string) string
	untilDate   func(date string) string
	latest      func(date string) string
	uses        func(n int) string
	date        func(t time.Time) string
	dateTime    func(t time.Time) string
	units       func(n int, unit string) string // unit: year, month, week, day, hour, minute, second
	unitJoiner  string
	moneyFormat func(a money.Amount) string
	// quote marks a merchant's category name that has no label in this
	// language, so that it reads as a name: 不适用于“coffee”.
	quote func(name string) string
}

var shortMonths = [...]string{"", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

var english = messages{
	lang:        "en",
	days:        [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"},
	dayRange:    "–",
	listSep:     ", ",
	groupSep:    "; ",
	orWord:      " or ",
	clauseSep:   ", ",
	sentenceSep: ". ",
	daily:       func(times string) string { return times + " daily" },
	onDays:      func(days, times string) string { return days + " " + times },
	valid:       func(schedule string) string { return "Valid " + schedule },
	anyTime:     "any time",
	zone:        func(name string) string { return " (" + name + ")" },
	onlyFor:     func(list string) string { return "only for " + list },
	notFor:      func(list string) string { return "not for " + list },
	minSpend:    func(amount string) string { return "on orders from " + amount },
	amountOff:   func(amount string) string { return amount + " off" },
	percentOff: func(percent string) string {
		return percent + "% off"
	},
	afterIssue: func(d string) string { return "for " + d + " after purchase" },
	fromDate:   func(date string) string { return "from " + date },
	untilDate:  func(date string) string { return "until " + date },
	latest:     func(date string) string { return "until " + date + " at the latest" },
	uses:       func(n int) string { return "usable " + strconv.Itoa(n) + " times" },
	date: func(t time.Time) string {
		return fmt.Sprintf("%d %s %d", t.Day(), shortMonths[t.Month()], t.Year())
	},
	dateTime: func(t time.Time) string {
		return fmt.Sprintf("%d %s %d %02d:%02d", t.Day(), shortMonths[t.Month()], t.Year(), t.Hour(), t.Minute())
	},
	units: func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.Itoa(n) + " " + unit + "s"
	},
	unitJoiner:  " ",
	moneyFormat: func(a money.Amount) string { return a.String() },
	quote:       func(name string) string { return name },
}

var chinese = messages{
	lang:        "zh",
	days:        [7]string{"周日", "周一", "周二", "周三", "周四", "周五", "周六"},
	dayRange:    "至",
	listSep:     "、",
	groupSep:    "；",
	orWord:      "或",
	clauseSep:   "，",
	sentenceSep: "。",
	daily:       func(times string) string { return "每天 " + times },
	onDays:      func(days, times string) string { return days + " " + times },
	valid:       func(schedule string) string { return schedule + " 可用" },
	anyTime:     "任何时间",
	zone:        func(name string) string { return "（" + name + "）" },
	onlyFor:     func(list string) string { return "仅限" + list },
	notFor:      func(list string) string { return "不适用于" + list },
	minSpend:    func(amount string) string { return "满 " + amount + " 可用" },
	amountOff:   func(amount string) string { return "减 " + amount },
	percentOff:  func(percent string) string { return "优惠 " + percent + "%" },
	afterIssue:  func(d string) string { return "购买后 " + d + " 内有效" },
	fromDate:    func(date string) string { return date + " 起" },
	untilDate:   func(date string) string { return "有效期至 " + date },
	latest:      func(date string) string { return "最晚至 " + date },
	uses:        func(n int) string { return "可使用 " + strconv.Itoa(n) + " 次" },
	date:        func(t time.Time) string { return fmt.Sprintf("%d年%d月%d日", t.Year(), t.Month(), t.Day()) },
	dateTime: func(t time.Time) string {
		return fmt.Sprintf("%d年%d月%d日 %02d:%02d", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute())
	},
	units:       func(n int, unit string) string { return strconv.Itoa(n) + chineseUnits[unit] },
	unitJoiner:  "",
	moneyFormat: func(a money.Amount) string { return a.String() },
	quote:       func(name string) string { return "“" + name + "”" },
}

var chineseUnits = map[string]string{
	"year": "年", "month": "个月", "week": "周", "day": "天", "hour": "小时", "minute": "分钟", "second": "秒",
}

var russianMonths = [...]string{"", "января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
	"сентября", "октября", "ноября", "декабря"}

var russian = messages{
	lang:        "ru",
	days:        [7]string{"вс", "пн", "вт", "ср", "чт", "пт", "сб"},
	dayRange:    "–",
	listSep:     ", ",
	groupSep:    "; ",
	orWord:      " или ",
	clauseSep:   ", ",
	sentenceSep: ". ",
	daily:       func(times string) string { return "ежедневно " + times },
	onDays:      func(days, times string) string { return days + " " + times },
	valid:       func(schedule string) string { return "Действует " + schedule },
	anyTime:     "в любое время",
	zone:        func(name string) string { return " (" + name + ")" },
	onlyFor:     func(list string) string { return "только для: " + list },
	notFor:      func(list string) string { return "не действует для: " + list },
	minSpend:    func(amount string) string { return "при заказе от " + amount },
	amountOff:   func(amount string) string { return "Скидка " + amount },
	percentOff:  func(percent string) string { return "Скидка " + percent + "%" },
	afterIssue:  func(d string) string { return d + " после покупки" },
	fromDate:    func(date string) string { return "с " + date },
	untilDate:   func(date string) string { return "по " + date },
	latest:      func(date string) string { return "но не позднее " + date },
	uses: func(n int) string {
		return "можно использовать " + strconv.Itoa(n) + " " + russianPlural(n, "раз", "раза", "раз")
	},
	date: func(t time.Time) string {
		return fmt.Sprintf("%d %s %d", t.Day(), russianMonths[t.Month()], t.Year())
	},
	dateTime: func(t time.Time) string {
		return fmt.Sprintf("%d %s %d %02d:%02d", t.Day(), russianMonths[t.Month()], t.Year(), t.Hour(), t.Minute())
	},
	units: func(n int, unit string) string {
		forms := russianUnits[unit]
		return strconv.Itoa(n) + " " + russianPlural(n, forms[0], forms[1], forms[2])
	},
	unitJoiner:  " ",
	moneyFormat: func(a money.Amount) string { return a.String() },
	quote:       func(name string) string { return "«" + name + "»" },
}

// russianUnits are each unit's forms for 1, 2–4 and 5 or more ("1 месяц",
// "3 месяца", "5 месяцев").
var russianUnits = map[string][3]string{
	"year": {"год", "года", "лет"}, "month": {"месяц", "месяца", "месяцев"}, "week": {"неделя", "недели", "недель"},
	"day": {"день", "дня", "дней"}, "hour": {"час", "часа", "часов"}, "minute": {"минута", "минуты", "минут"},
	"second": {"секунда", "секунды", "секунд"},
}

// russianPlural picks the form Russian counts with n: one (1, 21, 101…),
// few (2–4, 22–24…) or many (the rest, and 11–14).
func russianPlural(n int, one, few, many string) string {
	n %= 100
	switch {
	case n >= 11 && n <= 14:
		return many
	case n%10 == 1:
		return one
	case n%10 >= 2 && n%10 <= 4:
		return few
	}
	return many
}

// languages maps a language tag's primary subtag to its wording.
var languages = map[string]*messages{
	"en": &english,
	"zh": &chinese,
	"ru": &russian,
}

// RenderRules describes rules in plain words for shoppers, in lang (a BCP 47
// tag such as "en" or "zh-CN"; unknown languages fall back to English):
//
//	Valid 14:00–17:00 daily (Asia/Shanghai), not for coffee, until 21 Feb 2027
//
// issuedAt is nil before a coupon exists (an item page says "for 3 months
// after purchase") and the coupon's issue time after (a receipt says
// "until 21 Feb 2027"). Times are shown in loc.
func RenderRules(rules Rules, lang string, loc *time.Location, issuedAt *time.Time) string {
	return RenderRulesLabelled(rules, lang, loc, issuedAt, nil)
}

// RenderRulesLabelled is RenderRules with the merchant's own names for its
// categories (CategoryLabels), so that a Chinese page says 不适用于咖啡, not
// 不适用于coffee.
func RenderRulesLabelled(rules Rules, lang string, loc *time.Location, issuedAt *time.Time, labels CategoryLabels) string {
	m := languageOf(lang)
	if loc == nil {
		loc = time.UTC
	}
	var clauses []string

	schedule := m.anyTime
	if len(rules.Windows) > 0 {
		schedule = renderWindows(m, rules.Windows) + m.zone(loc.String())
	}
	discount := ""
	switch rules.Kind {
	case CouponAmountOff:
		if rules.AmountOff != nil {
			discount = m.amountOff(m.moneyFormat(*rules.AmountOff)) + m.sentenceSep
		}
	case CouponPercentOff:
		discount = m.percentOff(formatPercent(rules.PercentOffBasisPoints)) + m.sentenceSep
	}
	clauses = append(clauses, m.valid(schedule))
	if len(rules.IncludeCategories) > 0 {
		clauses = append(clauses, m.onlyFor(joinOr(m, labels.names(m, rules.IncludeCategories))))
	}
	if len(rules.ExcludeCategories) > 0 {
		clauses = append(clauses, m.notFor(joinOr(m, labels.names(m, rules.ExcludeCategories))))
	}
	if rules.MinSpend != nil {
		clauses = append(clauses, m.minSpend(m.moneyFormat(*rules.MinSpend)))
	}
	if rules.ValidFrom != nil && (issuedAt == nil || rules.ValidFrom.After(*issuedAt)) {
		clauses = append(clauses, m.fromDate(renderInstant(m, *rules.ValidFrom, loc, false)))
	}
	switch {
	case issuedAt != nil:
		if expires := rules.ExpiresAt(*issuedAt, loc); expires != nil {
			clauses = append(clauses, m.untilDate(renderInstant(m, *expires, loc, true)))
		}
	case !rules.ValidFor.IsZero():
		clauses = append(clauses, m.afterIssue(renderDuration(m, rules.ValidFor)))
		if rules.ValidUntil != nil {
			clauses = append(clauses, m.latest(renderInstant(m, *rules.ValidUntil, loc, true)))
		}
	case rules.ValidUntil != nil:
		clauses = append(clauses, m.untilDate(renderInstant(m, *rules.ValidUntil, loc, true)))
	}
	if uses := rules.Uses(); uses > 1 {
		clauses = append(clauses, m.uses(uses))
	}
	return discount + strings.Join(clauses, m.clauseSep)
}

func languageOf(tag string) *messages {
	primary, _, _ := strings.Cut(strings.ToLower(tag), "-")
	primary, _, _ = strings.Cut(primary, "_")
	if m, ok := languages[primary]; ok {
		return m
	}
	return &english
}

// renderWindows groups windows with the same days: "14:00–17:00 daily",
// "Mon–Fri 08:00–10:00, 14:00–17:00; Sat, Sun 10:00–22:00".
func renderWindows(m *messages, windows []Window) string {
	var order []Weekdays
	times := map[Weekdays][]string{}
	for _, w := range windows {
		if _, seen := times[w.Days]; !seen {
			order = append(order, w.Days)
		}
		times[w.Days] = append(times[w.Days], formatClock(w.FromMinute)+"–"+formatClock(w.ToMinute))
	}
	parts := make([]string, 0, len(order))
	for _, days := range order {
		t := strings.Join(times[days], m.listSep)
		if days == EveryDay {
			parts = append(parts, m.daily(t))
		} else {
			parts = append(parts, m.onDays(renderDays(m, days), t))
		}
	}
	return strings.Join(parts, m.groupSep)
}

// renderDays writes runs of three or more consecutive days (Monday first)
// as ranges: Mon–Fri, Mon, Wed, Fri, Sat, Sun.
func renderDays(m *messages, days Weekdays) string {
	var parts []string
	for i := 0; i < len(mondayFirst); {
		if !days.Has(mondayFirst[i]) {
			i++
			continue
		}
		j := i
		for j+1 < len(mondayFirst) && days.Has(mondayFirst[j+1]) {
			j++
		}
		switch {
		case j-i >= 2:
			parts = append(parts, m.days[mondayFirst[i]]+m.dayRange+m.days[mondayFirst[j]])
		default:
			for k := i; k <= j; k++ {
				parts = append(parts, m.days[mondayFirst[k]])
			}
		}
		i = j + 1
	}
	return strings.Join(parts, m.listSep)
}

func joinOr(m *messages, items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return strings.Join(items[:len(items)-1], m.listSep) + m.orWord + items[len(items)-1]
}

// renderInstant shows an instant in loc. An exclusive end at midnight is the
// end of the day before ("until 28 Feb" for 1 Mar 00:00), and one a minute
// before midnight or later is that day; other ends show the time too.
func renderInstant(m *messages, t time.Time, loc *time.Location, isEnd bool) string {
	local := t.In(loc)
	hour, minute, second := local.Clock()
	switch {
	case isEnd && hour == 0 && minute == 0 && second == 0 && local.Nanosecond() == 0:
		return m.date(local.Add(-time.Nanosecond))
	case isEnd && hour == 23 && minute == 59:
		return m.date(local)
	case !isEnd && hour == 0 && minute == 0:
		return m.date(local)
	}
	return m.dateTime(local)
}

func renderDuration(m *messages, d Duration) string {
	var parts []string
	for _, u := range []struct {
		n    int
		unit string
	}{{d.Years, "year"}, {d.Months, "month"}, {d.Weeks, "week"}, {d.Days, "day"},
		{d.Hours, "hour"}, {d.Minutes, "minute"}, {d.Seconds, "second"}} {
		if u.n != 0 {
			parts = append(parts, m.units(u.n, u.unit))
		}
	}
	return strings.Join(parts, m.unitJoiner)
}

// formatPercent writes basis points as a percentage without trailing zeros:
// 1500 → "15", 1250 → "12.5", 5 → "0.05".
func formatPercent(bp int64) string {
	whole, frac := bp/100, bp%100
	if frac == 0 {
		return strconv.FormatInt(whole, 10)
	}
	return strings.TrimRight(fmt.Sprintf("%d.%02d", whole, frac), "0")
}
