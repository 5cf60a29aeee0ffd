package money

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestRateApply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate  string
		gross int64
		part  int64
	}{
		{"0.025", 300, 8},   // 7.5 rounds half away from zero
		{"0.025", 100, 3},   // 2.5 → 3
		{"0.025", 99, 2},    // 2.475 → 2
		{"0.025", -300, -8}, // refunds round symmetrically
		{"0.5", 1, 1}, {"0.5", 3, 2}, {"0.5", -1, -1},
		{"0", 12345, 0}, {"1", 12345, 12345}, {"0.0001", 4999, 0}, {"0.0001", 5000, 1},
		{"1", MinorMax, MinorMax}, {"0.3333333333", MinorMax, 333333333300000},
	} {
		r := MustRate(tc.rate)
		if got := r.Apply(tc.gross); got != tc.part {
			t.Errorf("%s × %d = %d, want %d", tc.rate, tc.gross, got, tc.part)
		}
		part, rest := r.Split(tc.gross)
		if part != tc.part || part+rest != tc.gross {
			t.Errorf("Split(%d) by %s = %d + %d", tc.gross, tc.rate, part, rest)
		}
	}
	if BasisPoints(250).String() != "0.025" {
		t.Errorf("250 bp = %s", BasisPoints(250))
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"0", "1", "0.025", "1.0", "0.0000000001"} {
		if _, err := ParseRate(ok); err != nil {
			t.Errorf("ParseRate(%q): %v", ok, err)
		}
	}
	for text, code := range map[string]string{
		"1.01": "rate_out_of_range", "-0.1": "rate_out_of_range", "2": "rate_out_of_range",
		"": "invalid_rate", "abc": "invalid_rate", "1e-2": "invalid_rate", ".5": "invalid_rate",
		"1e-2000000000": "invalid_rate", "0." + strings.Repeat("1", 30): "invalid_rate", "0.5%": "invalid_rate",
	} {
		if _, err := ParseRate(text); errCode(err) != code {
			t.Errorf("ParseRate(%q) = %v, want %s", text, err, code)
		}
	}
}

// TestSplitSumsExactly is the rounding rule's promise: fee + net == gross
// for every rate and amount.
func TestSplitSumsExactly(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20_000 {
		r := BasisPoints(rng.Int64N(10_001))
		gross := rng.Int64N(MinorMax + 1)
		part, rest := r.Split(gross)
		if part+rest != gross || part < 0 || rest < 0 {
			t.Fatalf("Split(%d) by %s = %d + %d", gross, r, part, rest)
		}
	}
}

func TestAllocate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		total   int64
		weights []int64
		want    []int64
	}{
		{100, []int64{1, 1, 1}, []int64{34, 33, 33}}, // leftover to the earliest on ties
		{100, []int64{1, 2}, []int64{33, 67}},        // 33.33 / 66.67: largest remainder wins
		{5, []int64{0, 1, 0}, []int64{0, 5, 0}},
		{0, []int64{3, 4}, []int64{0, 0}},
		{1, []int64{1, 1, 1, 1}, []int64{1, 0, 0, 0}},
		{MinorMax, []int64{1, 1, 1}, []int64{333333333333334, 333333333333333, 333333333333333}},
		{10, []int64{1 << 62, 1 << 61}, []int64{7, 3}},
	} {
		if got := Allocate(tc.total, tc.weights); !slices.Equal(got, tc.want) {
			t.Errorf("Allocate(%d, %v) = %v, want %v", tc.total, tc.weights, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5_000 {
		weights := make([]int64, 1+rng.IntN(12))
		for i := range weights {
			weights[i] = rng.Int64N(1_000)
		}
		weights[rng.IntN(len(weights))]++ // a positive sum
		total := rng.Int64N(1_000_000)
		shares := Allocate(total, weights)
		var sum, weightSum int64
		for _, w := range weights {
			weightSum += w
		}
		for i, s := range shares {
			sum += s
			// Each share is its exact share rounded down or up by one unit.
			floor := total * weights[i] / weightSum
			if s != floor && s != floor+1 {
				t.Fatalf("Allocate(%d, %v) share %d = %d, exact floor %d", total, weights, i, s, floor)
			}
		}
		if sum != total {
			t.Fatalf("Allocate(%d, %v) = %v sums to %d", total, weights, shares, sum)
		}
	}
}

func TestAllocatePanics(t *testing.T) {
	t.Parallel()
	for name, call := range map[string]func(){
		"negative weight": func() { Allocate(1, []int64{-1, 2}) },
		"zero weights":    func() { Allocate(1, []int64{0, 0}) },
		"no weights":      func() { Allocate(1, nil) },
		"negative total":  func() { Allocate(-1, []int64{1}) },
		"overflowing sum": func() { Allocate(1, []int64{1 << 62, 1 << 62}) },
		"basis points":    func() { BasisPoints(10_001) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			call()
		}()
	}
}
