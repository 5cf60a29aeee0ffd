package web

import (
	"regexp"
	"strings"

	"github.com/chatpay/chatpay/internal/problem"
)

// Services name bad fields by their API path ("rules.windows[0].from",
// "price.amount") and word problems for integrators ("percent_off_bp is
// basis points…"). A form speaks of its own fields instead: the summary
// above it names each field as its label does and links to it.

// formField is how a form names an API field: its label and the id of its
// input.
type formField struct {
	Label  string
	Anchor string
}

// formFields maps API field paths (indexes removed) to form labels.
var formFields = map[string]formField{
	"title":                    {"Title", "title"},
	"sku":                      {"SKU", "sku"},
	"description":              {"Description", "description"},
	"category":                 {"Category", "category"},
	"gtin":                     {"Barcode (GTIN)", "gtin"},
	"kind":                     {"Kind", "kind"},
	"price":                    {"Price", "price"},
	"price.amount":             {"Price", "price"},
	"price.currency":           {"Currency", "currency"},
	"currency":                 {"Currency", "currency"},
	"default_currency":         {"Currency", "currency"},
	"stock":                    {"Stock", "stock"},
	"per_shopper_limit":        {"Limit per shopper", "per_shopper_limit"},
	"rules":                    {"Coupon rules", "coupon_kind"},
	"rules.kind":               {"Coupon", "coupon_kind"},
	"rules.amount_off":         {"Amount off", "amount_off"},
	"rules.percent_off_bp":     {"Percent off", "percent_off"},
	"rules.windows":            {"Hours", "windows"},
	"rules.valid_for":          {"Valid for after purchase", "valid_for"},
	"rules.valid_from":         {"Valid from", "valid_from"},
	"rules.valid_until":        {"Valid until", "valid_until"},
	"rules.exclude_categories": {"Not for categories", "exclude_categories"},
	"rules.include_categories": {"Only for categories", "include_categories"},
	"rules.min_spend":          {"Minimum spend", "min_spend"},
	"rules.uses_per_coupon":    {"Uses per coupon", "uses_per_coupon"},
	"name":                     {"Name", "name"},
	"time_zone":                {"Time zone", "time_zone"},
	"email":                    {"E-mail", "email"},
	"password":                 {"Password", "password"},
	"url":                      {"Endpoint URL", "hook-url"},
	"event_types":              {"Events", ""},
	"basket":                   {"Basket", "basket"},
	"code":                     {"Coupon code", "code"},
	"item_id":                  {"Item", "item_id"},
	"placement":                {"Placement", "placement"},
	"opens":                    {"Opens in", "opens"},
	"channel_id":               {"Opens in", "opens"},
	"allow_typed_codes":        {"Coupon codes at the till", "typed_allow"},
	"amount":                   {"Amount", "amount"},
	"reason":                   {"Reason", "reason"},
	"note":                     {"Details", "note"},
	"scope":                    {"What to refund", "scope-all"},
	"coupon_id":                {"Voucher", "coupon_id"},
}

var fieldIndex = regexp.MustCompile(`\[\d+\]`)

// formFieldOf finds the form field of an API path: the longest known
// prefix of "rules.windows[0].from" is "rules.windows" (Hours).
func formFieldOf(path string) formField {
	key := fieldIndex.ReplaceAllString(path, "")
	for key != "" {
		if f, ok := formFields[key]; ok {
			return f
		}
		cut := strings.LastIndexByte(key, '.')
		if cut < 0 {
			break
		}
		key = key[:cut]
	}
	last := path[strings.LastIndexByte(path, '.')+1:]
	last = strings.ReplaceAll(fieldIndex.ReplaceAllString(last, ""), "_", " ")
	if last == "" {
		return formField{Label: "A field"}
	}
	return formField{Label: strings.ToUpper(last[:1]) + last[1:]}
}

// apiWords are API names that service messages mention, in form words.
var apiWords = strings.NewReplacer(
	"percent_off_bp is basis points from 1 to 10000 (100 %)", "percent off is from 0.01 to 100",
	"percent_off_bp", "percent off", "amount_off", "amount off", "min_spend", "minimum spend",
	"uses_per_coupon", "uses per coupon", "valid_until", "valid until", "valid_from", "valid from",
	"valid_for", "valid for", "per_shopper_limit", "limit per shopper", "include_categories", "only for categories",
	"exclude_categories", "not for categories", "time_zone", "time zone", "default_currency", "currency",
	"coupon_id", "voucher", "event_types", "events",
)

// humanDetail words a field problem for the form.
func humanDetail(f problem.FieldError) string {
	return apiWords.Replace(f.Detail)
}

// fieldLine is one line of a form's error summary.
type fieldLine struct {
	Label  string
	Anchor string
	Detail string
}

// FieldSummary is the page's field problems as form lines, each once.
func (p page) FieldSummary() []fieldLine {
	var lines []fieldLine
	seen := map[fieldLine]bool{}
	for _, f := range p.Fields {
		ff := formFieldOf(f.Field)
		line := fieldLine{Label: ff.Label, Anchor: ff.Anchor, Detail: humanDetail(f)}
		if !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	return lines
}

// fieldErrorText is the problem shown under a field: the first one of the
// field or of anything below it.
func fieldErrorText(fields []problem.FieldError, name string) string {
	for _, f := range fields {
		if f.Field == name || strings.HasPrefix(f.Field, name+".") || strings.HasPrefix(f.Field, name+"[") {
			return humanDetail(f)
		}
	}
	return ""
}
