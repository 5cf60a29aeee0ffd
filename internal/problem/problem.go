// Package problem is chatpay's one error vocabulary: domain packages return
// *problem.Error with a stable code, and this package alone turns errors into
// RFC 9457 "application/problem+json" responses. Unknown errors become a
// generic 500 whose details go to the log, never to the client.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error; each kind has one HTTP status.
type Kind int

const (
	KindInternal     Kind = iota // a bug or an outage: 500
	KindInvalid                  // malformed or unacceptable input: 422
	KindBadRequest               // unparseable request: 400
	KindUnauthorized             // no or bad credentials: 401
	KindForbidden                // authenticated but not allowed: 403
	KindNotFound                 // absent, or not the caller's: 404
	KindConflict                 // state forbids it now (sold out, already paid): 409
	KindRefused                  // a business rule said no (insufficient funds): 422
	KindTooLarge                 // body over the limit: 413
	KindUnavailable              // a dependency is down: 503
	KindMethodNotAllowed
	KindTooManyRequests
	KindUnsupportedMediaType // the body is not in a media type the route takes: 415
)

var statusOf = map[Kind]int{
	KindInternal:             http.StatusInternalServerError,
	KindInvalid:              http.StatusUnprocessableEntity,
	KindBadRequest:           http.StatusBadRequest,
	KindUnauthorized:         http.StatusUnauthorized,
	KindForbidden:            http.StatusForbidden,
	KindNotFound:             http.StatusNotFound,
	KindConflict:             http.StatusConflict,
	KindRefused:              http.StatusUnprocessableEntity,
	KindTooLarge:             http.StatusRequestEntityTooLarge,
	KindUnavailable:          http.StatusServiceUnavailable,
	KindMethodNotAllowed:     http.StatusMethodNotAllowed,
	KindTooManyRequests:      http.StatusTooManyRequests,
	KindUnsupportedMediaType: http.StatusUnsupportedMediaType,
}

// FieldError names one bad input field, as a JSON pointer-ish dotted path.
type FieldError struct {
	Field  string `json:"field"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// Error is a domain error with a stable machine-readable code.
type Error struct {
	Kind   Kind
	Code   string // stable, snake_case: "sold_out", "insufficient_funds"
	Detail string // one sentence for humans
	Fields []FieldError
	// Extensions are extra members of the problem document (e.g. "next_valid_at").
	Extensions map[string]any
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Code
	}
	return e.Code + ": " + e.Detail
}

// Status is the HTTP status for the error's kind.
func (e *Error) Status() int { return statusOf[e.Kind] }

// With returns a copy with an extension member set.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Extensions = make(map[string]any, len(e.Extensions)+1)
	for k, v := range e.Extensions {
		c.Extensions[k] = v
	}
	c.Extensions[key] = value
	return &c
}

// New builds an error of kind with code and a formatted detail.
func New(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// NotFound is the answer for anything absent or belonging to someone else, so
// that ids of other merchants never leak.
func NotFound(what string) *Error {
	return &Error{Kind: KindNotFound, Code: "not_found", Detail: what + " not found"}
}

// Invalid reports bad fields; the detail names the first.
func Invalid(fields ...FieldError) *Error {
	detail := "the request is invalid"
	if len(fields) > 0 {
		detail = fields[0].Field + ": " + fields[0].Detail
	}
	return &Error{Kind: KindInvalid, Code: "validation_failed", Detail: detail, Fields: fields}
}

// Field is shorthand for an Invalid error about one field.
func Field(field, code, format string, args ...any) *Error {
	return Invalid(FieldError{Field: field, Code: code, Detail: fmt.Sprintf(format, args...)})
}

// As returns the *Error inside err, if any.
func As(err error) (*Error, bool) {
	var p *Error
	if errors.As(err, &p) {
		return p, true
	}
	return nil, false
}

// Document is the RFC 9457 JSON body.
type Document struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Code     string       `json:"code"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// ContentType is the media type of problem documents.
const ContentType = "application/problem+json"

// TypeBase prefixes every problem type URI; the code completes it.
const TypeBase = "https://chatpay.dev/problems/"

// Render encodes err as a problem document. Errors that are not *Error render
// as a generic internal error (the caller logs the real one).
func Render(err error, instance string) (status int, body []byte) {
	p, ok := As(err)
	if !ok {
		p = &Error{Kind: KindInternal, Code: "internal_error", Detail: "an unexpected error occurred; it has been logged"}
	}
	status = p.Status()
	doc := map[string]any{
		"type":   TypeBase + p.Code,
		"title":  http.StatusText(status),
		"status": status,
		"code":   p.Code,
	}
	if p.Detail != "" {
		doc["detail"] = p.Detail
	}
	if instance != "" {
		doc["instance"] = instance
	}
	if len(p.Fields) > 0 {
		doc["errors"] = p.Fields
	}
	for k, v := range p.Extensions {
		if _, taken := doc[k]; !taken {
			doc[k] = v
		}
	}
	body, mErr := json.Marshal(doc)
	if mErr != nil {
		return http.StatusInternalServerError, []byte(`{"type":"` + TypeBase + `internal_error","title":"Internal Server Error","status":500,"code":"internal_error"}`)
	}
	return status, body
}

// kindNames are the stable names a stored refusal keeps its kind under
// (internal/idempotency); Kind's numbers may change, these may not.
var kindNames = map[Kind]string{
	KindInternal:         "internal",
	KindInvalid:          "invalid",
	KindBadRequest:       "bad_request",
	KindUnauthorized:     "unauthorized",
	KindForbidden:        "forbidden",
	KindNotFound:         "not_found",
	KindConflict:         "conflict",
	KindRefused:          "refused",
	KindTooLarge:         "too_large",
	KindUnavailable:      "unavailable",
	KindMethodNotAllowed: "method_not_allowed",
	KindTooManyRequests:  "too_many_requests",
}

// String is the kind's stable name.
func (k Kind) String() string { return kindNames[k] }

// kindOfStatus reads a kind back from a status, for documents stored before
// their kind was: 422 reads as refused, the kind of every stored refusal of
// the purchase path.
func kindOfStatus(status int) Kind {
	if status == http.StatusUnprocessableEntity {
		return KindRefused
	}
	for k, s := range statusOf {
		if s == status {
			return k
		}
	}
	return KindInternal
}

// Decode reads a problem document that Render wrote back into the *Error it
// rendered: code, detail, field errors and extension members, with the kind
// named kindName (Kind.String). An empty kindName falls back to the status.
func Decode(body []byte, kindName string, status int) (*Error, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, fmt.Errorf("decode problem document: %w", err)
	}
	var doc Document
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode problem document: %w", err)
	}
	p := &Error{Kind: kindOfStatus(status), Code: doc.Code, Detail: doc.Detail, Fields: doc.Errors}
	if kindName != "" {
		found := false
		for k, name := range kindNames {
			if name == kindName {
				p.Kind, found = k, true
			}
		}
		if !found {
			return nil, fmt.Errorf("decode problem document: unknown kind %q", kindName)
		}
	}
	for name, raw := range members {
		switch name {
		case "type", "title", "status", "code", "detail", "instance", "errors":
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("decode problem member %s: %w", name, err)
		}
		if p.Extensions == nil {
			p.Extensions = map[string]any{}
		}
		p.Extensions[name] = v
	}
	return p, nil
}
