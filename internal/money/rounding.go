package money

import (
	"fmt"
	"math"
	"strings"

	"github.com/shopspring/decimal"
)

// The rounding rule, the one place chatpay rounds money:
//
//   - A rate applied to an amount (a platform fee, a percent-off discount) is
//     computed exactly in decimal and rounded to minor units half away from
//     zero ("commercial rounding": 0.5 fen rounds up to 1 fen).
//   - The other part is the remainder, never rounded on its own, so the
//     parts always add up to the whole: fee + net == gross.
//   - A whole split over several parts (a discount or a refund spread over
//     lines) uses Allocate: shares by weight, rounded down, with the leftover
//     minor units handed out one each by largest remainder (earliest part
//     wins ties), so the shares add up exactly.

// Rate is a non-negative fraction such as 0.025 for 2.5 %.
type Rate struct{ d decimal.Decimal }

// rateMax keeps rates sane: nothing takes more than the whole.
var rateMax = decimal.NewFromInt(1)

// rateTextMax bounds a rate's text. Together with accepting only plain
// digits it keeps exponents out: "1e-2000000000" would make every later
// rescale compute a power of ten with two billion digits.
const rateTextMax = 20

// ParseRate reads a decimal fraction ("0.025"). It rejects negatives,
// exponents, values above 1 and texts longer than rateTextMax.
func ParseRate(text string) (Rate, error) {
	plain := len(text) > 0 && len(text) <= rateTextMax && strings.Count(text, ".") <= 1 &&
		text[0] != '.' && text[len(text)-1] != '.' &&
		strings.Trim(text, "0123456789.") == ""
	if strings.HasPrefix(text, "-") {
		return Rate{}, errorf("rate_out_of_range", "rate must be between 0 and 1, not %s", text)
	}
	d, err := decimal.NewFromString(text)
	if err != nil || !plain {
		return Rate{}, errorf("invalid_rate", "rate must be a decimal fraction such as 0.025, not %q", text)
	}
	if d.IsNegative() || d.GreaterThan(rateMax) {
		return Rate{}, errorf("rate_out_of_range", "rate must be between 0 and 1, not %s", text)
	}
	return Rate{d: d}, nil
}

// MustRate is ParseRate for constants.
func MustRate(text string) Rate {
	r, err := ParseRate(text)
	if err != nil {
		panic(err)
	}
	return r
}

// BasisPoints returns a Rate of bp/10000 (250 bp = 2.5 %).
func BasisPoints(bp int64) Rate {
	if bp < 0 || bp > 10000 {
		panic(fmt.Sprintf("money: basis points %d out of range", bp))
	}
	return Rate{d: decimal.New(bp, -4)}
}

func (r Rate) String() string { return r.d.String() }

// Apply returns round_half_away_from_zero(minor × rate).
func (r Rate) Apply(minor int64) int64 {
	return decimal.NewFromInt(minor).Mul(r.d).Round(0).IntPart()
}

// Split divides gross into the rate's part and the remainder:
// part = Apply(gross), rest = gross − part, so part + rest == gross always.
func (r Rate) Split(gross int64) (part, rest int64) {
	part = r.Apply(gross)
	return part, gross - part
}

// Allocate splits total into len(weights) shares proportional to weights,
// summing exactly to total (see the rounding rule above). Weights must be
// non-negative with a positive sum; total must be non-negative.
func Allocate(total int64, weights []int64) []int64 {
	var sum int64
	for _, w := range weights {
		if w < 0 {
			panic("money: negative weight")
		}
		if w > math.MaxInt64-sum {
			panic("money: Allocate weights sum beyond int64")
		}
		sum += w
	}
	if sum <= 0 || total < 0 {
		panic("money: Allocate needs a positive weight sum and a non-negative total")
	}
	shares := make([]int64, len(weights))
	remainders := make([]decimal.Decimal, len(weights))
	dTotal, dSum := decimal.NewFromInt(total), decimal.NewFromInt(sum)
	var given int64
	for i, w := range weights {
		exact := dTotal.Mul(decimal.NewFromInt(w))
		q, rem := exact.QuoRem(dSum, 0)
		shares[i] = q.IntPart()
		remainders[i] = rem
		given += shares[i]
	}
	// Fewer than len(weights) units are left over, so each part gets one at most.
	taken := decimal.NewFromInt(-1)
	for left := total - given; left > 0; left-- {
		best := 0
		for i := range remainders {
			if remainders[i].GreaterThan(remainders[best]) {
				best = i
			}
		}
		shares[best]++
		remainders[best] = taken
	}
	return shares
}
