package jsonin

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatpay/chatpay/internal/problem"
)

type inner struct {
	Amount string `json:"amount"`
}

type body struct {
	SKU      string   `json:"sku"`
	Quantity int      `json:"quantity"`
	Tags     []string `json:"tags"`
	Price    inner    `json:"price"`
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, in, code, field string
	}{
		{"OK", `{"sku":"tea","quantity":2,"tags":["a"],"price":{"amount":"3.00"}}`, "", ""},
		{"ErrEmpty", ` `, "malformed_json", ""},
		{"ErrSyntax", `{"sku":`, "malformed_json", ""},
		{"ErrTwoValues", `{} {}`, "malformed_json", ""},
		{"ErrDuplicate", `{"sku":"a","sku":"b"}`, "validation_failed", "sku"},
		{"ErrCaseFolded", `{"SKU":"a"}`, "validation_failed", "SKU"},
		{"ErrUnknown", `{"sku":"a","extra":1}`, "validation_failed", "extra"},
		{"ErrUnknownNested", `{"price":{"amount":"1","Amount":"2"}}`, "validation_failed", "price.Amount"},
		{"ErrNUL", `{"sku":"a\u0000b"}`, "validation_failed", "sku"},
		{"ErrNULInArray", `{"tags":["ok","\u0000"]}`, "validation_failed", "tags[1]"},
		{"ErrLoneSurrogate", `{"sku":"\ud800"}`, "validation_failed", "sku"},
		{"ErrInvalidUTF8", "{\"sku\":\"\xed\xa0\x80\"}", "validation_failed", "sku"},
		{"ErrType", `{"quantity":"2"}`, "validation_failed", "quantity"},
		{"ErrFraction", `{"quantity":1.5}`, "validation_failed", "quantity"},
		{"ErrDeep", `{"tags":` + deep(40) + `}`, "malformed_json", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v body
			err := Decode([]byte(tc.in), &v)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if v.SKU != "tea" || v.Quantity != 2 || v.Price.Amount != "3.00" {
					t.Fatalf("decoded %+v", v)
				}
				return
			}
			p, ok := problem.As(err)
			if !ok {
				t.Fatalf("err = %v, want a problem", err)
			}
			if p.Code != tc.code {
				t.Fatalf("code = %s (%v), want %s", p.Code, p, tc.code)
			}
			if tc.field != "" && (len(p.Fields) == 0 || p.Fields[0].Field != tc.field) {
				t.Fatalf("fields = %+v, want %s", p.Fields, tc.field)
			}
		})
	}
}

func deep(n int) string {
	s := ""
	for range n {
		s += "["
	}
	for range n {
		s += "]"
	}
	return s
}

// FuzzDecode: no input makes Decode panic or fail with anything but a
// problem, and whatever it accepts holds only valid UTF-8 without NUL.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"sku":"a"}`, `{"sku":"\u0000"}`, `{"tags":[1]}`, "{\"sku\":\"\xff\"}", `{"price":{"amount":"1"}}`, `{"sku":"\ud83d\ude00"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v body
		if err := Decode(data, &v); err != nil {
			if _, ok := problem.As(err); !ok {
				t.Fatalf("non-problem error %v", err)
			}
			return
		}
		for _, s := range append([]string{v.SKU, v.Price.Amount}, v.Tags...) {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}

type coded struct{}

func (coded) Error() string       { return "three digits at most" }
func (coded) ProblemCode() string { return "invalid_amount" }

type withCoded struct {
	Price priced `json:"price"`
}

type priced struct{}

func (*priced) UnmarshalJSON([]byte) error { return coded{} }

func TestDecodeRefusals(t *testing.T) {
	t.Run("ErrNullScalar", func(t *testing.T) {
		var v body
		p, _ := problem.As(Decode([]byte(`{"sku":null}`), &v))
		if p == nil || p.Fields[0].Code != "null_not_allowed" || p.Fields[0].Field != "sku" {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("OKNullSlice", func(t *testing.T) {
		var v body
		if err := Decode([]byte(`{"tags":null}`), &v); err != nil {
			t.Fatal(err)
		}
	})
	for _, in := range []string{`null`, `[]`, `"x"`, `3`} {
		t.Run("ErrNotObject "+in, func(t *testing.T) {
			var v body
			if p, _ := problem.As(Decode([]byte(in), &v)); p == nil || p.Code != "malformed_json" {
				t.Fatalf("%s: %+v", in, p)
			}
		})
	}
	t.Run("ErrCodedNested", func(t *testing.T) {
		var v withCoded
		p, _ := problem.As(Decode([]byte(`{"price":{"amount":"1.001"}}`), &v))
		if p == nil || p.Code != "validation_failed" || p.Fields[0].Field != "price" || p.Fields[0].Code != "invalid_amount" {
			t.Fatalf("%+v", p)
		}
	})
}
