package catalog

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// The tea card's "not for coffee" in each language: the merchant's label
// where it gave one, the English label or the category quoted where not,
// never a bare English word inside a Chinese or Russian sentence.
func TestRenderRulesWithCategoryLabels(t *testing.T) {
	tea := Rules{Kind: CouponVoucher, Windows: []Window{{Days: EveryDay, FromMinute: 14 * 60, ToMinute: 17 * 60}},
		ExcludeCategories: []string{"coffee"}, IncludeCategories: []string{"tea", "cake"}, ValidFor: Duration{Months: 3}}
	labels := CategoryLabels{"coffee": {"zh": "咖啡", "ru": "кофе"}, "tea": {"en": "Tea", "zh": "茶"}}
	cases := []struct {
		lang   string
		labels CategoryLabels
		want   string
	}{
		{"en", labels, "Valid 14:00–17:00 daily (Asia/Shanghai), only for Tea or cake, not for coffee, for 3 months after purchase"},
		{"zh-CN", labels, "每天 14:00–17:00（Asia/Shanghai） 可用，仅限茶或“cake”，不适用于咖啡，购买后 3个月 内有效"},
		{"ru", labels, "Действует ежедневно 14:00–17:00 (Asia/Shanghai), только для: «Tea» или «cake», не действует для: кофе, 3 месяца после покупки"},
		{"zh", nil, "每天 14:00–17:00（Asia/Shanghai） 可用，仅限“tea”或“cake”，不适用于“coffee”，购买后 3个月 内有效"},
	}
	for _, tc := range cases {
		if got := RenderRulesLabelled(tea, tc.lang, shanghai, nil, tc.labels); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.lang, got, tc.want)
		}
	}
}

func TestRussianPlural(t *testing.T) {
	for n, want := range map[int]string{1: "месяц", 2: "месяца", 4: "месяца", 5: "месяцев", 11: "месяцев", 12: "месяцев",
		21: "месяц", 22: "месяца", 25: "месяцев", 111: "месяцев", 101: "месяц"} {
		if got := russianPlural(n, "месяц", "месяца", "месяцев"); got != want {
			t.Errorf("%d %s, want %s", n, got, want)
		}
	}
}

// The labels API: replace, read back normalised, refuse bad entries by
// name, clear with {}.
func TestCategoryLabelsAPI(t *testing.T) {
	env := newAPIEnv(t)
	_, key := env.merchant("McDonald's")
	put := env.do("PUT", "/v1/category-labels", key, map[string]any{"categories": map[string]any{
		" Coffee ": map[string]string{"zh-CN": "咖啡", "ru": " кофе "}, "tea": map[string]string{"zh-Hans": "茶"}}})
	if put.Status != http.StatusOK {
		t.Fatalf("put: %d %s", put.Status, put.Body)
	}
	var got struct {
		Categories CategoryLabels `json:"categories"`
	}
	get := env.do("GET", "/v1/category-labels", key, nil)
	get.decode(t, &got)
	want := CategoryLabels{"coffee": {"zh": "咖啡", "ru": "кофе"}, "tea": {"zh": "茶"}}
	if !reflect.DeepEqual(got.Categories, want) {
		t.Fatalf("labels %v, want %v", got.Categories, want)
	}
	bad := env.do("PUT", "/v1/category-labels", key, map[string]any{"categories": map[string]any{
		"coffee": map[string]string{"zz-not-a-tag-!": "x", "ru": strings.Repeat("к", CategoryLabelLengthMax+1)}}})
	if code, fields := bad.problem(t); bad.Status != http.StatusUnprocessableEntity || code != "validation_failed" || len(fields) != 2 {
		t.Fatalf("bad labels: %d %s %v", bad.Status, code, fields)
	}
	if missing := env.do("PUT", "/v1/category-labels", key, map[string]any{}); missing.Status != http.StatusUnprocessableEntity {
		t.Fatalf("no categories: %d %s", missing.Status, missing.Body)
	}
	env.do("PUT", "/v1/category-labels", key, map[string]any{"categories": map[string]any{}})
	get = env.do("GET", "/v1/category-labels", key, nil)
	got.Categories = nil
	get.decode(t, &got)
	if len(got.Categories) != 0 {
		t.Fatalf("labels after clearing: %v", got.Categories)
	}
}
