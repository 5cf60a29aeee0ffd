package money

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chatpay/chatpay/internal/problem"
)

func TestParseCurrency(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code   string
		digits int
		err    string
	}{
		{"CNY", 2, ""}, {"JPY", 0, ""}, {"KWD", 3, ""}, {"USD", 2, ""}, {"EUR", 2, ""}, {"BHD", 3, ""},
		// Real money despite the X: CFA francs, CFP franc, East Caribbean dollar.
		{"XAF", 0, ""}, {"XOF", 0, ""}, {"XPF", 0, ""}, {"XCD", 2, ""},
		// ISO 4217's exponents where CLDR's display digits differ.
		{"IDR", 2, ""}, {"COP", 2, ""}, {"PKR", 2, ""}, {"IQD", 3, ""}, {"HUF", 2, ""}, {"TWD", 2, ""},
		{"ISK", 0, ""}, {"UGX", 0, ""}, {"CLP", 0, ""}, {"KRW", 0, ""}, {"VND", 0, ""},
		{"cny", 0, "invalid_currency"}, {"", 0, "invalid_currency"}, {"CNYY", 0, "invalid_currency"},
		{"€", 0, "unknown_currency"}, {"ABC", 0, "unknown_currency"},
		// Not legal tender: no currency, testing, metals, fund codes, historical.
		{"XXX", 0, "unknown_currency"}, {"XTS", 0, "unknown_currency"}, {"XAU", 0, "unknown_currency"},
		{"XDR", 0, "unknown_currency"}, {"USN", 0, "unknown_currency"}, {"DEM", 0, "unknown_currency"},
	} {
		c, err := ParseCurrency(tc.code)
		if code := errCode(err); code != tc.err {
			t.Errorf("ParseCurrency(%q) error %v, want %q", tc.code, err, tc.err)
			continue
		}
		if err == nil && (c.MinorDigits() != tc.digits || c.Code() != tc.code || c.String() != tc.code || c.IsZero()) {
			t.Errorf("ParseCurrency(%q) = %+v, want %d digits", tc.code, c, tc.digits)
		}
	}
}

func errCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

func TestParse(t *testing.T) {
	t.Parallel()
	cny, jpy, kwd := MustCurrency("CNY"), MustCurrency("JPY"), MustCurrency("KWD")
	for _, tc := range []struct {
		c     Currency
		text  string
		minor int64
		err   string
	}{
		{cny, "3.00", 300, ""}, {cny, "3", 300, ""}, {cny, "0.5", 50, ""}, {cny, "0.05", 5, ""},
		{cny, "0", 0, ""}, {cny, "007.10", 710, ""}, {jpy, "300", 300, ""}, {kwd, "1.234", 1234, ""},
		{cny, "10000000000000.00", MinorMax, ""},
		{cny, "10000000000000.01", 0, "amount_out_of_range"},
		{jpy, "1000000000000001", 0, "amount_out_of_range"},
		{cny, "99999999999999999999999999999999", 0, "amount_out_of_range"},
		{cny, "3.001", 0, "too_many_decimals"}, {jpy, "3.0", 0, "too_many_decimals"}, {kwd, "1.2345", 0, "too_many_decimals"},
		{cny, "-1", 0, "negative_amount"}, {cny, "-0.00", 0, "negative_amount"},
		{cny, "", 0, "invalid_amount"}, {cny, "+1", 0, "invalid_amount"}, {cny, "1e3", 0, "invalid_amount"},
		{cny, "1.", 0, "invalid_amount"}, {cny, ".5", 0, "invalid_amount"}, {cny, "1.2.3", 0, "invalid_amount"},
		{cny, " 1", 0, "invalid_amount"}, {cny, "1,00", 0, "invalid_amount"}, {cny, "١", 0, "invalid_amount"},
		{cny, "NaN", 0, "invalid_amount"}, {cny, strings.Repeat("1", amountTextMax+1), 0, "invalid_amount"},
		{Currency{}, "1", 0, "invalid_currency"},
	} {
		minor, err := tc.c.Parse(tc.text)
		if code := errCode(err); code != tc.err || minor != tc.minor {
			t.Errorf("%s.Parse(%q) = %d, %v; want %d, %q", tc.c, tc.text, minor, err, tc.minor, tc.err)
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code  string
		minor int64
		want  string
	}{
		{"CNY", 300, "3.00"}, {"CNY", 5, "0.05"}, {"CNY", 0, "0.00"}, {"CNY", -5, "-0.05"},
		{"JPY", 300, "300"}, {"KWD", 1234, "1.234"}, {"KWD", 1, "0.001"}, {"CNY", MinorMax, "10000000000000.00"},
	} {
		if got := MustCurrency(tc.code).Format(tc.minor); got != tc.want {
			t.Errorf("Format(%d %s) = %q, want %q", tc.minor, tc.code, got, tc.want)
		}
	}
	if got := New(300, MustCurrency("CNY")).String(); got != "3.00 CNY" {
		t.Errorf("String = %q", got)
	}
}

func TestAmountJSON(t *testing.T) {
	t.Parallel()
	var a Amount
	if err := json.Unmarshal([]byte(`{"amount":"3.00","currency":"CNY"}`), &a); err != nil || a.Minor != 300 || a.Currency.Code() != "CNY" {
		t.Fatalf("unmarshal = %+v, %v", a, err)
	}
	out, err := json.Marshal(a)
	if err != nil || string(out) != `{"amount":"3.00","currency":"CNY"}` {
		t.Fatalf("marshal = %s, %v", out, err)
	}
	for body, code := range map[string]string{
		`{"amount":3.00,"currency":"CNY"}`:               "invalid_amount",
		`{"amount":"3.00","currency":"CNY","x":1}`:       "invalid_amount",
		`{"amount":"3.001","currency":"CNY"}`:            "too_many_decimals",
		`{"amount":"3","currency":"XAU"}`:                "unknown_currency",
		`{"amount":"3"}`:                                 "invalid_currency",
		`{"currency":"CNY"}`:                             "invalid_amount",
		`{"amount":"-3","currency":"CNY"}`:               "negative_amount",
		`"3.00 CNY"`:                                     "invalid_amount",
		`{"amount":"1e3","currency":"JPY"}`:              "invalid_amount",
		`{"amount":"1000000000000001","currency":"JPY"}`: "amount_out_of_range",
	} {
		var a Amount
		err := json.Unmarshal([]byte(body), &a)
		if errCode(err) != code {
			t.Errorf("unmarshal %s: %v, want %s", body, err, code)
		}
	}
}

func TestFieldProblem(t *testing.T) {
	t.Parallel()
	_, err := MustCurrency("CNY").Parse("1.001")
	for _, e := range []error{err, fmt.Errorf("price: %w", err)} {
		p, ok := problem.As(FieldProblem("price", e))
		if !ok || p.Kind != problem.KindInvalid || p.Fields[0].Field != "price" || p.Fields[0].Code != "too_many_decimals" {
			t.Errorf("FieldProblem(%v) = %+v", e, p)
		}
	}
	other := errors.New("disk on fire")
	if FieldProblem("price", other) != other {
		t.Error("other errors must pass through")
	}
}
