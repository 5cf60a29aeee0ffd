// Package money is chatpay's only notion of an amount: integer minor units
// of an ISO 4217 currency. Decimals appear only at the edges (parsing and
// formatting decimal strings) and in the one named rounding rule for fees and
// percentages. There are no floats anywhere.
//
// Which codes are money comes from golang.org/x/text/currency (CLDR data);
// their minor units are ISO 4217's exponents (JPY 0, CNY 2, KWD 3), which is
// what payment providers and banks count in. CLDR's digits are for display
// and differ for two dozen currencies (IDR, COP, PKR… 0 instead of 2; IQD 0
// instead of 3), so they are not used.
package money

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
	"golang.org/x/text/currency"

	"github.com/chatpay/chatpay/internal/jsonin"
	"github.com/chatpay/chatpay/internal/problem"
)

// MinorMax bounds every amount (in minor units): 10^15 is ten trillion CNY,
// far above any real payment, and sums of a million such amounts still fit
// in int64 without overflow.
const MinorMax int64 = 1_000_000_000_000_000

// amountTextMax bounds the length of a decimal string before parsing it.
const amountTextMax = 32

// Currency is an ISO 4217 currency with its number of minor-unit digits.
type Currency struct {
	code  string
	scale int32
}

// Error is a parse or range error with a stable code.
type Error struct {
	Code   string
	Detail string
}

func (e *Error) Error() string { return e.Detail }

// ProblemCode lets a JSON decoder keep the code when an amount inside a
// request body is refused.
func (e *Error) ProblemCode() string { return e.Code }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// ParseCurrency accepts an upper-case ISO 4217 code of a tender currency.
func ParseCurrency(code string) (Currency, error) {
	if len(code) != 3 || strings.ToUpper(code) != code {
		return Currency{}, errorf("invalid_currency", "currency must be an upper-case ISO 4217 code such as CNY, not %q", code)
	}
	scale, ok := tender[code]
	if !ok {
		return Currency{}, errorf("unknown_currency", "unknown currency %q", code)
	}
	return Currency{code: code, scale: scale}, nil
}

// tender maps the codes of currencies that are legal tender somewhere
// today to their minor-unit digits. Historical currencies (DEM), precious
// metals (XAU), fund codes (XDR, USN) and "no currency" (XXX, XTS) are not
// money anyone can pay with, while the CFA francs and the East Caribbean
// dollar (XAF, XOF, XPF, XCD) are, despite their X.
var tender = func() map[string]int32 {
	m := make(map[string]int32, 200)
	for it := currency.Query(); it.Next(); {
		if !it.IsTender() {
			continue
		}
		code := it.Unit().String()
		scale, listed := isoExponentNot2[code]
		if !listed {
			scale = 2
		}
		m[code] = scale
	}
	return m
}()

// isoExponentNot2 lists the ISO 4217 currencies whose minor unit is not a
// hundredth (ISO 4217 list one, 2024); every other currency has two digits.
var isoExponentNot2 = map[string]int32{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
}

// MustCurrency is ParseCurrency for constants in code and tests.
func MustCurrency(code string) Currency {
	c, err := ParseCurrency(code)
	if err != nil {
		panic(err)
	}
	return c
}

// Code is the ISO 4217 code.
func (c Currency) Code() string { return c.code }

// MinorDigits is the number of fraction digits (JPY 0, CNY 2, KWD 3).
func (c Currency) MinorDigits() int { return int(c.scale) }

// IsZero reports an unset Currency.
func (c Currency) IsZero() bool { return c.code == "" }

func (c Currency) String() string { return c.code }

// Parse turns a decimal string ("3.00", "3", "0.5") into minor units. It
// rejects more fraction digits than the currency has, exponents, signs,
// negative values, and values above MinorMax.
func (c Currency) Parse(text string) (int64, error) {
	if c.IsZero() {
		return 0, errorf("invalid_currency", "no currency given")
	}
	if len(text) == 0 || len(text) > amountTextMax {
		return 0, errorf("invalid_amount", "amount must be a decimal string of 1 to %d characters", amountTextMax)
	}
	for i, r := range text {
		if (r < '0' || r > '9') && !(r == '.' && i > 0 && i < len(text)-1) {
			if r == '-' {
				return 0, errorf("negative_amount", "amount must not be negative")
			}
			return 0, errorf("invalid_amount", "amount must look like 3.00 (digits and one decimal point), not %q", text)
		}
	}
	if strings.Count(text, ".") > 1 {
		return 0, errorf("invalid_amount", "amount %q has more than one decimal point", text)
	}
	d, err := decimal.NewFromString(text)
	if err != nil {
		return 0, errorf("invalid_amount", "amount %q is not a decimal number", text)
	}
	if frac := fractionDigits(text); frac > int(c.scale) {
		return 0, errorf("too_many_decimals", "%s has %d decimal places; %q has %d", c.code, c.scale, text, frac)
	}
	minor := d.Shift(c.scale)
	if minor.GreaterThan(decimal.NewFromInt(MinorMax)) {
		return 0, errorf("amount_out_of_range", "amount %q is above the maximum %s", text, c.Format(MinorMax))
	}
	return minor.IntPart(), nil
}

func fractionDigits(text string) int {
	if i := strings.IndexByte(text, '.'); i >= 0 {
		return len(text) - i - 1
	}
	return 0
}

// Format renders minor units as a decimal string with exactly the currency's
// fraction digits: 300 CNY → "3.00", 300 JPY → "300".
func (c Currency) Format(minor int64) string {
	return decimal.New(minor, -c.scale).StringFixed(c.scale)
}

// Amount is minor units together with their currency.
type Amount struct {
	Minor    int64
	Currency Currency
}

// New returns an Amount.
func New(minor int64, c Currency) Amount { return Amount{Minor: minor, Currency: c} }

// String renders "3.00 CNY".
func (a Amount) String() string { return a.Currency.Format(a.Minor) + " " + a.Currency.code }

// wire is the JSON shape of an amount: {"amount":"3.00","currency":"CNY"}.
type wire struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// MarshalJSON writes {"amount":"3.00","currency":"CNY"}.
func (a Amount) MarshalJSON() ([]byte, error) {
	return json.Marshal(wire{Amount: a.Currency.Format(a.Minor), Currency: a.Currency.code})
}

// UnmarshalJSON reads {"amount":"3.00","currency":"CNY"} and validates both.
// Its errors are *Error; ParseAmountField turns them into field problems.
func (a *Amount) UnmarshalJSON(data []byte) error {
	var w wire
	if err := jsonin.DecodeNested(data, &w); err != nil {
		return errorf("invalid_amount", `an amount is an object like {"amount":"3.00","currency":"CNY"}`)
	}
	c, err := ParseCurrency(w.Currency)
	if err != nil {
		return err
	}
	minor, err := c.Parse(w.Amount)
	if err != nil {
		return err
	}
	*a = Amount{Minor: minor, Currency: c}
	return nil
}

// FieldProblem turns a money error into a 422 problem naming field; other
// errors pass through unchanged.
func FieldProblem(field string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return problem.Field(field, e.Code, "%s", e.Detail)
	}
	return err
}
