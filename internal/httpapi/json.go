package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/problem"
)

// ReadBody reads the whole request body (already bounded by the body-limit
// middleware, and bounded here again for handlers mounted without it).
func ReadBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, BodyLimitBytes+1))
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
			return nil, problem.New(problem.KindTooLarge, "request_too_large", "the request body exceeds %d bytes", BodyLimitBytes)
		}
		return nil, problem.New(problem.KindBadRequest, "bad_request", "reading the body failed: %v", err)
	}
	if len(body) > BodyLimitBytes {
		return nil, problem.New(problem.KindTooLarge, "request_too_large", "the request body exceeds %d bytes", BodyLimitBytes)
	}
	return body, nil
}

// DecodeJSON decodes exactly one JSON object into v, refusing unknown fields,
// and names the offending field in the problem it returns.
func DecodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return problem.New(problem.KindBadRequest, "malformed_json", "the request body is empty; a JSON object is expected")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.New(problem.KindBadRequest, "malformed_json", "the body holds more than one JSON value")
	}
	return nil
}

// BindJSON reads and decodes the request body.
func BindJSON(c echo.Context, v any) ([]byte, error) {
	body, err := ReadBody(c)
	if err != nil {
		return nil, err
	}
	return body, DecodeJSON(body, v)
}

func jsonProblem(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var p *problem.Error
	switch {
	case errors.As(err, &p):
		return p // a field's own UnmarshalJSON said what is wrong
	case errors.As(err, &syntaxErr):
		return problem.New(problem.KindBadRequest, "malformed_json", "invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		return problem.Field(field, "invalid_type", "expected %s, got JSON %s", typeErr.Type, typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return problem.Field(name, "unknown_field", "unknown field %q", name)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.New(problem.KindBadRequest, "malformed_json", "the JSON body ends too early")
	}
	return problem.New(problem.KindBadRequest, "malformed_json", "%v", fmt.Sprint(err))
}
