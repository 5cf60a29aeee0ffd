package money

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParse holds Parse to its contract for any text: it never panics, an
// accepted amount is within 0..MinorMax, and formatting it and parsing
// again gives the same minor units.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 30s ./internal/money/
func FuzzParse(f *testing.F) {
	for _, seed := range []string{"3.00", "3", "0.5", "0", "007.10", "1.001", "-1", "1e3", ".5", "1.",
		"10000000000000.00", "10000000000000.01", "99999999999999999999999999999999", "１", "1.2.3", ""} {
		for _, code := range []string{"CNY", "JPY", "KWD"} {
			f.Add(code, seed)
		}
	}
	f.Fuzz(func(t *testing.T, code, text string) {
		c, err := ParseCurrency(code)
		if err != nil {
			return
		}
		minor, err := c.Parse(text)
		if err != nil {
			if minor != 0 || errCode(err) == "" || strings.HasPrefix(errCode(err), "other") {
				t.Fatalf("Parse(%q) = %d, %v", text, minor, err)
			}
			return
		}
		if minor < 0 || minor > MinorMax {
			t.Fatalf("Parse(%q) = %d, out of range", text, minor)
		}
		formatted := c.Format(minor)
		again, err := c.Parse(formatted)
		if err != nil || again != minor {
			t.Fatalf("Parse(Format(%d)) = Parse(%q) = %d, %v", minor, formatted, again, err)
		}
	})
}

// FuzzAmountJSON holds the JSON amount to its contract: any accepted body
// round-trips through MarshalJSON unchanged, and errors are money errors.
//
//	go test -run '^$' -fuzz FuzzAmountJSON -fuzztime 30s ./internal/money/
func FuzzAmountJSON(f *testing.F) {
	for _, seed := range []string{
		`{"amount":"3.00","currency":"CNY"}`, `{"amount":"300","currency":"JPY"}`, `{"amount":"1.234","currency":"KWD"}`,
		`{"amount":3,"currency":"CNY"}`, `{"amount":"3.001","currency":"CNY"}`, `{"currency":"CNY"}`, `null`, `[]`,
		`{"amount":"3","currency":"CNY","extra":true}`, `{"AMOUNT":"3","Currency":"CNY"}`, `{"amount":"3","currency":"XAF"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var a Amount
		if err := json.Unmarshal(body, &a); err != nil {
			return
		}
		if a.Minor < 0 || a.Minor > MinorMax || a.Currency.IsZero() {
			t.Fatalf("accepted %s as %+v", body, a)
		}
		out, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var b Amount
		if err := json.Unmarshal(out, &b); err != nil || b != a {
			t.Fatalf("%s → %s → %+v, %v", body, out, b, err)
		}
	})
}
