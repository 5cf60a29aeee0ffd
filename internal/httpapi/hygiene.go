package httpapi

import (
	"mime"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/problem"
)

// checkedHeaders are the request headers whose values chatpay stores or
// compares against stored text; net/http already refuses NUL in headers but
// lets invalid UTF-8 through.
var checkedHeaders = []string{"Idempotency-Key", echo.HeaderAuthorization}

// TextHygiene refuses, before any handler runs, text that PostgreSQL would
// refuse deep inside a transaction: a NUL character or invalid UTF-8 in a
// path parameter, a query or form value, or a checked header. Handlers then
// never see such bytes, whatever they forget. A path id that cannot be valid
// text names nothing (404); a bad query or form value is a 422 naming it.
func TextHygiene() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			for i, name := range c.ParamNames() {
				if i < len(c.ParamValues()) && !cleanPathText(c.ParamValues()[i]) {
					return problem.NotFound(name)
				}
			}
			if err := checkValues(c.QueryParams()); err != nil {
				return err
			}

			for _, h := range checkedHeaders {
				for _, v := range c.Request().Header.Values(h) {
					if !cleanText(v) {
						return problem.New(problem.KindBadRequest, "invalid_header", "the %s header must be valid UTF-8 text without NUL", h)
					}
				}
			}
			if isForm(c.Request().Header.Get(echo.HeaderContentType)) {
				form, err := c.FormParams()
				if err != nil {
					return problem.New(problem.KindBadRequest, "malformed_form", "the form body cannot be read: %v", err)
				}
				if err := checkValues(form); err != nil {
					return err
				}
			}
			return next(c)
		}
	}
}

func checkValues(values url.Values) error {
	for name, list := range values {
		if !cleanText(name) {
			return problem.Field("(parameter name)", "invalid_text", "parameter names must be valid UTF-8 text without NUL")
		}
		for _, v := range list {
			if !cleanText(v) {
				return problem.Field(name, "invalid_text", "%s must be valid UTF-8 text without NUL", name)
			}
		}
	}
	return nil
}

func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// cleanPathText also looks through one level of percent-encoding, since echo
// may hand a path parameter over still encoded.
func cleanPathText(s string) bool {
	if !cleanText(s) {
		return false
	}
	if unescaped, err := url.PathUnescape(s); err == nil {
		return cleanText(unescaped)
	}
	return true
}

func isForm(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mediaType == "application/x-www-form-urlencoded" || mediaType == "multipart/form-data")
}
