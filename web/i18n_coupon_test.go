package web

import (
	"reflect"
	"strings"
	"testing"
)

// Every coupon string exists in every language, with the same placeholders
// as the English one, and each language is picked by the shopper pages' own.
func TestCouponTextComplete(t *testing.T) {
	english := reflect.ValueOf(couponEnglish)
	for lang, text := range map[string]couponText{"zh": couponChinese, "ru": couponRussian} {
		v := reflect.ValueOf(text)
		for i := range v.NumField() {
			name := v.Type().Field(i).Name
			got, want := v.Field(i).String(), english.Field(i).String()
			if got == "" || want == "" {
				t.Errorf("%s.%s is empty", lang, name)
			}
			if strings.Count(got, "%") != strings.Count(want, "%") {
				t.Errorf("%s.%s has other placeholders than English: %q vs %q", lang, name, got, want)
			}
		}
	}
	for lang, want := range map[string]*couponText{"en": &couponEnglish, "zh": &couponChinese, "zh-CN": &couponChinese, "ru": &couponRussian, "fr": &couponEnglish} {
		if got := couponTextFor(&shopperText{Lang: lang}); got != want {
			t.Errorf("shopper pages in %q get the coupon wording of %q", lang, got.MyCoupons)
		}
	}
}
