package web

import (
	"strings"
	"testing"

	"github.com/chatpay/chatpay/internal/money"
)

func TestSuggestedTopUps(t *testing.T) {
	for _, tc := range []struct {
		short money.Amount
		want  string
	}{
		{money.New(180, money.MustCurrency("CNY")), "1.80 CNY, 10.00 CNY, 20.00 CNY"},
		{money.New(1000, money.MustCurrency("CNY")), "10.00 CNY, 20.00 CNY, 50.00 CNY"},
		{money.New(15_000, money.MustCurrency("CNY")), "150.00 CNY, 200.00 CNY, 500.00 CNY"},
		{money.New(800, money.MustCurrency("JPY")), "800 JPY, 1000 JPY, 2000 JPY"},
	} {
		var got []string
		for _, a := range suggestedTopUps(tc.short) {
			got = append(got, a.String())
		}
		if strings.Join(got, ", ") != tc.want {
			t.Errorf("suggestedTopUps(%s) = %v, want %s", tc.short, got, tc.want)
		}
	}
}
