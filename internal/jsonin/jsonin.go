// Package jsonin is chatpay's one decoder for JSON that arrives from outside
// (request bodies and the values nested in them). It exists so that no
// handler can forget a rule: the body must be one JSON value in valid UTF-8;
// member names match exactly (no case folding) and appear once; unknown
// members are refused; no string holds a NUL (PostgreSQL refuses it, so it
// would otherwise surface as a 500 deep in a transaction). Every refusal is a
// problem naming the field.
//
// Decoding is done by github.com/go-json-experiment/json (the implementation
// that became encoding/json/v2): it matches names case-sensitively, refuses
// duplicate names and invalid UTF-8 by itself, and reports the JSON pointer
// of a failure, which encoding/json cannot do.
package jsonin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/chatpay/chatpay/internal/problem"
)

// DepthMax bounds nesting; chatpay's deepest request (coupon rules) is 4 deep.
const DepthMax = 32

// Decode decodes exactly one JSON value from data into v under chatpay's
// rules. Errors are *problem.Error: malformed_json (400) for text that is not
// JSON, validation_failed (422) naming the field otherwise. A problem returned
// by a nested UnmarshalJSON method passes through with the field named.
func Decode(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return problem.New(problem.KindBadRequest, "malformed_json", "the request body is empty; a JSON object is expected")
	}
	if err := checkText(data); err != nil {
		return err
	}
	if kind := jsontext.Value(bytes.TrimSpace(data)).Kind(); kind != '{' {
		return problem.New(problem.KindBadRequest, "malformed_json", "the body must be a JSON object, not %s", kindName(kind))
	}
	err := json.Unmarshal(data, v, options...)
	if err == nil {
		return nil
	}
	return decodeProblem(err)
}

// DecodeNested decodes a value an UnmarshalJSON method was handed. The whole
// body has already passed checkText, so only the decoding rules apply here.
func DecodeNested(data []byte, v any) error {
	return json.Unmarshal(data, v, options...)
}

// errNull is refused null for a member that has no "absent" form in Go (a
// string, number or boolean): silently turning null into "" or 0 would
// accept what the contract calls invalid. Pointer, slice and map members,
// and PATCH's optional members, take null as they always did.
var errNull = errors.New("null is not allowed here")

func refuseNull[T any](dec *jsontext.Decoder, _ *T) error {
	if dec.PeekKind() == 'n' {
		return errNull
	}
	return json.SkipFunc
}

var options = []json.Options{
	json.RejectUnknownMembers(true),
	json.WithUnmarshalers(json.JoinUnmarshalers(
		json.UnmarshalFromFunc(refuseNull[string]),
		json.UnmarshalFromFunc(refuseNull[bool]),
		json.UnmarshalFromFunc(refuseNull[int]),
		json.UnmarshalFromFunc(refuseNull[int64]),
	)),
}

// Coded is an error a nested UnmarshalJSON may return to keep its own stable
// code (money's invalid_amount, unknown_currency…) in the field problem.
type Coded interface {
	error
	ProblemCode() string
}

// checkText walks every token once: syntax, UTF-8, duplicate names (all
// refused by jsontext itself) and NUL characters (refused here).
func checkText(data []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	depth := 0
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return syntaxProblem(err, dec)
		}
		switch tok.Kind() {
		case '{', '[':
			depth++
			if depth > DepthMax {
				return problem.New(problem.KindBadRequest, "malformed_json", "the JSON nests deeper than %d levels", DepthMax)
			}
		case '}', ']':
			depth--
		case '"':
			if strings.ContainsRune(tok.String(), 0) {
				return problem.Field(FieldName(dec.StackPointer()), "invalid_text", "text may not contain the NUL character")
			}
		}
	}
}

func syntaxProblem(err error, dec *jsontext.Decoder) error {
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		field := FieldName(syn.JSONPointer)
		switch {
		case errors.Is(err, jsontext.ErrDuplicateName):
			return problem.Field(field, "duplicate_field", "%s appears more than once", field)
		case strings.Contains(syn.Error(), "invalid UTF-8"), strings.Contains(syn.Error(), "surrogate"):
			// jsontext has no sentinel for bad text; its message is all there is.
			return problem.Field(field, "invalid_text", "text must be valid UTF-8 (no lone surrogates)")
		}
		return problem.New(problem.KindBadRequest, "malformed_json", "invalid JSON at byte %d: %v", syn.ByteOffset, syn.Err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return problem.New(problem.KindBadRequest, "malformed_json", "the JSON body ends too early")
	}
	return problem.New(problem.KindBadRequest, "malformed_json", "invalid JSON: %v", err)
}

func decodeProblem(err error) error {
	if p, ok := problem.As(err); ok {
		var sem *json.SemanticError
		if errors.As(err, &sem) && len(p.Fields) == 0 && p.Kind == problem.KindInvalid {
			return problem.Field(FieldName(sem.JSONPointer), p.Code, "%s", p.Detail)
		}
		return p // a nested UnmarshalJSON already named what is wrong
	}
	var sem *json.SemanticError
	if !errors.As(err, &sem) {
		return problem.New(problem.KindBadRequest, "malformed_json", "invalid JSON: %v", err)
	}
	field := FieldName(fullPointer(err))
	if errors.Is(err, json.ErrUnknownName) {
		return problem.Field(field, "unknown_field", "unknown field %q", field)
	}
	if errors.Is(err, errNull) {
		return problem.Field(field, "null_not_allowed", "%s cannot be null; leave it out instead", field)
	}
	var coded Coded
	if errors.As(err, &coded) {
		return problem.Field(field, coded.ProblemCode(), "%s", coded.Error())
	}
	if sem.GoType != nil {
		return problem.Field(field, "invalid_type", "expected %s, got JSON %s", describe(sem.GoType.Kind().String()), kindName(sem.JSONKind))
	}
	detail := "invalid value"
	if sem.Err != nil {
		detail = sem.Err.Error()
	}
	return problem.Field(field, "invalid_value", "%s", detail)
}

// fullPointer joins the pointers of nested semantic errors: a value decoded
// by a nested UnmarshalJSON reports its pointer relative to itself.
func fullPointer(err error) jsontext.Pointer {
	var p jsontext.Pointer
	for err != nil {
		var sem *json.SemanticError
		if !errors.As(err, &sem) {
			break
		}
		p += sem.JSONPointer
		err = sem.Err
	}
	return p
}

// FieldName turns a JSON pointer (/rules/windows/0/from) into the dotted form
// chatpay's problems use (rules.windows[0].from); the root is "(body)".
func FieldName(p jsontext.Pointer) string {
	if p == "" {
		return "(body)"
	}
	var b strings.Builder
	for token := range p.Tokens() {
		if _, err := strconv.Atoi(token); err == nil && b.Len() > 0 {
			fmt.Fprintf(&b, "[%s]", token)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(token)
	}
	return b.String()
}

func describe(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return goKind
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}
