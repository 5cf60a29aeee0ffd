package qr_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/qr"
)

func TestNewTokenShapeAndEntropy(t *testing.T) {
	t.Parallel()
	const samples = 4096
	seen := make(map[string]bool, samples)
	counts := map[rune]int{}
	for range samples {
		token, err := qr.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(token) != qr.TokenLength || qr.TokenLength != 26 {
			t.Fatalf("token %q has length %d, want 26 (128 bits in base32)", token, len(token))
		}
		for _, r := range token {
			if !strings.ContainsRune(qr.TokenAlphabet, r) {
				t.Fatalf("token %q has %q outside the URL-safe alphabet", token, r)
			}
		}
		if _, err := qr.ParseToken(token); err != nil {
			t.Fatalf("fresh token %q does not parse: %v", token, err)
		}
		if seen[token] {
			t.Fatalf("token %q repeated", token)
		}
		seen[token] = true
		// The last character carries only 3 bits; count the first 25.
		for _, r := range token[:qr.TokenLength-1] {
			counts[r]++
		}
	}
	if qr.TokenBytes*8 < 128 {
		t.Fatalf("tokens carry %d bits, want at least 128", qr.TokenBytes*8)
	}
	// Every base32 symbol should appear about equally often in the 25 full
	// positions: 4096*25/32 = 3200 expected; ±20% is far beyond chance.
	expected := samples * (qr.TokenLength - 1) / 32
	for _, r := range qr.TokenAlphabet {
		if c := counts[r]; c < expected*8/10 || c > expected*12/10 {
			t.Fatalf("symbol %q appeared %d times, expected about %d: tokens are not uniform", r, c, expected)
		}
	}
}

func TestParseTokenRejects(t *testing.T) {
	t.Parallel()
	good, err := qr.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{
		"Empty":        "",
		"Short":        good[:25],
		"Long":         good + "a",
		"UpperCase":    strings.ToUpper(good),
		"Digit1":       "1" + good[1:],
		"Slash":        "/" + good[1:],
		"NonCanonical": good[:25] + "7", // trailing bits set
	} {
		t.Run("Err"+name, func(t *testing.T) {
			t.Parallel()
			_, err := qr.ParseToken(token)
			if !qr.HasCode(err, qr.CodeNotFound) {
				t.Fatalf("ParseToken(%q) = %v, want qr_not_found", token, err)
			}
		})
	}
}

// FuzzParseToken checks that the parser never panics, accepts only canonical
// tokens, and that whatever it accepts is exactly its input.
func FuzzParseToken(f *testing.F) {
	for _, seed := range []string{"", "abcdefghijklmnopqrstuvwxya", "abcdefghijklmnopqrstuvwxyz",
		"aaaaaaaaaaaaaaaaaaaaaaaaaa", "77777777777777777777777777", "ABCDEFGHIJKLMNOPQRSTUVWXYA",
		"abcdefghijklmnopqrstuvwxy\x00", "é", "abcdefghijklmnopqrstuvwxyaa"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		token, err := qr.ParseToken(s)
		if err != nil {
			if !qr.HasCode(err, qr.CodeNotFound) {
				t.Fatalf("ParseToken(%q) error %v is not qr_not_found", s, err)
			}
			return
		}
		if token != s || len(s) != qr.TokenLength {
			t.Fatalf("ParseToken(%q) accepted as %q", s, token)
		}
		for _, r := range s {
			if !strings.ContainsRune(qr.TokenAlphabet, r) {
				t.Fatalf("ParseToken accepted %q with %q", s, r)
			}
		}
		// The unused low bits of the last symbol must be zero (canonical form).
		// 128 bits fill 25 symbols and 3 bits of the 26th, so its low 2 bits are 0.
		if last := strings.IndexByte(qr.TokenAlphabet, s[len(s)-1]); last&3 != 0 {
			t.Fatalf("ParseToken accepted non-canonical %q", s)
		}
	})
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"": qr.ImageSizeDefaultPx, "64": 64, "2048": 2048, "512": 512, "0100": 100} {
		got, err := qr.ParseSize(in)
		if err != nil || got != want {
			t.Fatalf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"63", "2049", "100000", "99999999999999999999999", "-512", "+512", "512px", " 512", "1e3", "0x200"} {
		_, err := qr.ParseSize(in)
		var p *problem.Error
		if !errors.As(err, &p) || p.Status() != 422 || len(p.Fields) != 1 || p.Fields[0].Field != "size" {
			t.Fatalf("ParseSize(%q) = %v, want a 422 naming size", in, err)
		}
	}
}

// FuzzParseSize checks that the size parser never panics and only ever
// returns a size within the bounds, or a 422 naming the field.
func FuzzParseSize(f *testing.F) {
	for _, seed := range []string{"", "64", "512", "2048", "63", "2049", "100000", "-1", "+64",
		"99999999999999999999", "512 ", "٥١٢", "0064"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := qr.ParseSize(s)
		if err != nil {
			var p *problem.Error
			if !errors.As(err, &p) || p.Status() != 422 || p.Fields[0].Field != "size" {
				t.Fatalf("ParseSize(%q) error %v is not a 422 naming size", s, err)
			}
			return
		}
		if n < qr.ImageSizeMinPx || n > qr.ImageSizeMaxPx {
			t.Fatalf("ParseSize(%q) = %d, out of bounds", s, n)
		}
	})
}
