package apifuzz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// encode writes a generated value as JSON text; raw values go verbatim.
func encode(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case raw:
		b.WriteString(string(x))
	case object:
		b.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			name, _ := json.Marshal(m.name)
			b.Write(name)
			b.WriteByte(':')
			encode(b, m.value)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			encode(b, e)
		}
		b.WriteByte(']')
	case map[string]any: // examples and defaults from the document
		names := make([]string, 0, len(x))
		for n := range x {
			names = append(names, n)
		}
		sort.Strings(names)
		var o object
		for _, n := range names {
			o = append(o, member{n, x[n]})
		}
		encode(b, o)
	default:
		text, err := json.Marshal(x)
		if err != nil {
			panic(fmt.Sprintf("apifuzz: cannot encode %T: %v", v, err))
		}
		b.Write(text)
	}
}

func encodeJSON(v any) []byte {
	var b bytes.Buffer
	encode(&b, v)
	return b.Bytes()
}

// stringify turns a generated scalar into a query or path value.
func stringify(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case raw:
		return string(x)
	case float64:
		return fmt.Sprintf("%g", x)
	}
	return fmt.Sprint(v)
}
