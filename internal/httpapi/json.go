package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/jsonin"
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

// DecodeJSON decodes exactly one JSON value into v under jsonin's rules
// (exact member names, once each, no unknown members, valid UTF-8 without
// NUL), naming the offending field in the problem it returns.
func DecodeJSON(body []byte, v any) error { return jsonin.Decode(body, v) }

// BindJSON checks that the request says it is JSON, then reads and decodes
// its body. A form, text or a missing Content-Type is 415: a client that
// does not say what it sends is a client whose bytes may mean something else.
func BindJSON(c echo.Context, v any) ([]byte, error) {
	if err := RequireJSON(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
		return nil, err
	}
	body, err := ReadBody(c)
	if err != nil {
		return nil, err
	}
	return body, DecodeJSON(body, v)
}

// RequireJSON accepts application/json and any +json media type.
func RequireJSON(contentType string) error {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err == nil && (mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")) {
		return nil
	}
	return problem.New(problem.KindUnsupportedMediaType, "unsupported_media_type",
		"the request body must be JSON, sent with Content-Type: application/json")
}
