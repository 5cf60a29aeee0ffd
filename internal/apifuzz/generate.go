package apifuzz

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// raw is JSON text emitted verbatim: it lets the fuzzer send what an encoder
// would never produce (invalid UTF-8, lone surrogates, duplicate names).
type raw string

// member is one name/value pair of a generated object, in order.
type member struct {
	name  string
	value any
}

// object is a generated JSON object; a slice keeps order and allows
// duplicate names.
type object []member

// generator makes values from schemas with a seeded source.
type generator struct {
	rand  *rand.Rand
	hints Hints
	now   time.Time
}

// value generates a valid value for schema; name is the property or
// parameter it is for, so hints can supply meaningful ones (ids, currencies).
func (g *generator) value(name string, ref *openapi3.SchemaRef, depth int) any {
	if hint, ok := g.hints[name]; ok {
		return hint(g.rand)
	}
	s := schemaOf(ref)
	if s == nil {
		return "x"
	}
	if len(s.AllOf) > 0 {
		return g.value(name, s.AllOf[0], depth)
	}
	if len(s.Enum) > 0 {
		return s.Enum[g.rand.IntN(len(s.Enum))]
	}
	composite := s.Type.Is("object") || s.Type.Is("array")
	if s.Example != nil && !composite && g.rand.IntN(2) == 0 {
		return s.Example
	}
	if s.Default != nil && !composite && g.rand.IntN(3) == 0 {
		return s.Default
	}
	switch {
	case s.Type.Is("object"):
		return g.object(s, depth)
	case s.Type.Is("array"):
		n := 1 + g.rand.IntN(2)
		if s.MaxItems != nil && uint64(n) > *s.MaxItems {
			n = int(*s.MaxItems)
		}
		out := make([]any, 0, n)
		for range n {
			out = append(out, g.value(name, s.Items, depth+1))
		}
		return out
	case s.Type.Is("integer"):
		lo, hi := bounds(s, 0, 100)
		return int64(lo) + g.rand.Int64N(int64(hi-lo)+1)
	case s.Type.Is("number"):
		lo, hi := bounds(s, 0, 100)
		return lo + g.rand.Float64()*(hi-lo)
	case s.Type.Is("boolean"):
		return g.rand.IntN(2) == 0
	}
	return g.text(s)
}

func (g *generator) object(s *openapi3.Schema, depth int) object {
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	var out object
	for _, name := range names {
		prop := schemaOf(s.Properties[name])
		if prop != nil && prop.ReadOnly {
			continue
		}
		if !required[name] && (depth > 2 || g.rand.IntN(2) == 0) {
			continue
		}
		out = append(out, member{name, g.value(name, s.Properties[name], depth+1)})
	}
	return out
}

func (g *generator) text(s *openapi3.Schema) string {
	switch s.Format {
	case "date-time":
		return g.now.Add(time.Duration(g.rand.IntN(72)) * time.Hour).UTC().Format(time.RFC3339)
	case "uri":
		return "https://127.0.0.1/hook"
	case "email":
		return fmt.Sprintf("fuzz%d@example.com", g.rand.IntN(1e6))
	}
	lo, hi := uint64(1), uint64(16)
	if s.MinLength > lo {
		lo = s.MinLength
	}
	if s.MaxLength != nil && *s.MaxLength < hi {
		hi = *s.MaxLength
	}
	if hi < lo {
		hi = lo
	}
	n := int(lo) + g.rand.IntN(int(hi-lo)+1)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	for range n {
		b.WriteByte(alphabet[g.rand.IntN(len(alphabet))])
	}
	return b.String()
}

func bounds(s *openapi3.Schema, lo, hi float64) (float64, float64) {
	if s.Min != nil {
		lo = *s.Min
		if hi < lo {
			hi = lo + 100
		}
	}
	if s.Max != nil {
		hi = *s.Max
		if lo > hi {
			lo = hi
		}
	}
	return lo, hi
}

func schemaOf(ref *openapi3.SchemaRef) *openapi3.Schema {
	if ref == nil {
		return nil
	}
	return ref.Value
}

// hostileStrings are the texts every string input must survive: the first
// refusedHostileStrings are never acceptable text (PostgreSQL refuses them);
// the rest test length and display handling.
var hostileStrings = []raw{
	`"a\u0000b"`,                // NUL
	`"\ud800"`,                  // a lone surrogate, valid JSON syntax
	raw("\"\xed\xa0\x80\xff\""), // invalid UTF-8 bytes
	`"\u202etxet\u200b"`,        // right-to-left override, zero-width space
	raw(`"` + strings.Repeat("测试", 200) + `"`),    // long in characters and bytes
	raw(`"` + strings.Repeat("x", 100<<10) + `"`), // 100 KB
	`""`,
	`" "`,
}

// refusedHostileStrings counts the hostileStrings no server may accept.
const refusedHostileStrings = 3

// hostileQueryValues are the same ideas for query strings and path segments,
// percent-encoded; the first refusedHostileQueryValues are never valid text.
var hostileQueryValues = []string{
	"%00", "a%00b", "%ED%A0%80", "%FF", "%E2%80%AE", strings.Repeat("%E6%B5%8B", 300), "", "-1", "0",
	"99999999999999999999", "1.5", "abc", "null",
}

// wrongTypes replaces a value with one of another JSON type.
const refusedHostileQueryValues = 4

var wrongTypes = []raw{`"text"`, `12`, `-1`, `1.5`, `true`, `null`, `{}`, `[]`, `1e13`, `[1,2]`}

// outOfRange returns numbers just outside a numeric schema's bounds.
func outOfRange(s *openapi3.Schema) []raw {
	var out []raw
	if s.Min != nil {
		out = append(out, raw(strconv.FormatFloat(*s.Min-1, 'f', -1, 64)))
	}
	if s.Max != nil {
		out = append(out, raw(strconv.FormatFloat(*s.Max+1, 'f', -1, 64)))
	}
	return append(out, raw(strconv.FormatFloat(math.Pow(10, 13), 'f', -1, 64)), `-1`, `0`)
}
