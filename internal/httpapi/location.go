package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"
)

// Locations maps a route (as registered: "/v1/items") to the URL template of
// what it creates ("/v1/items/{id}"); each {field} is a member of the JSON
// answer, dotted for nested ones ("{channel.id}"). The wiring owns the table,
// so domain handlers stay unaware of it and replayed answers get the same
// header as fresh ones (it is computed from the body both times).
type Locations map[string]string

var templateField = regexp.MustCompile(`\{([a-z_.]+)\}`)

// locate sets Location on 201 and 202 answers of the routes in the table.
func locate(table Locations) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			template, ok := table[c.Path()]
			if !ok {
				return next(c)
			}
			res := c.Response()
			res.Writer = &locatingWriter{ResponseWriter: res.Writer, template: template}
			return next(c)
		}
	}
}

// locatingWriter holds a 201/202 status back until the body arrives, so the
// Location can be read from it; echo writes a JSON body in one Write.
type locatingWriter struct {
	http.ResponseWriter
	template string
	status   int
}

func (w *locatingWriter) WriteHeader(status int) {
	if status == http.StatusCreated || status == http.StatusAccepted {
		w.status = status
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *locatingWriter) Write(body []byte) (int, error) {
	if w.status != 0 {
		if loc := expandLocation(w.template, body); loc != "" {
			w.Header().Set(echo.HeaderLocation, loc)
		}
		w.ResponseWriter.WriteHeader(w.status)
		w.status = 0
	}
	return w.ResponseWriter.Write(body)
}

func (w *locatingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *locatingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// expandLocation fills template from the JSON body; "" when a field is missing.
func expandLocation(template string, body []byte) string {
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	missing := false
	out := templateField.ReplaceAllStringFunc(template, func(m string) string {
		var v any = doc
		for _, part := range strings.Split(m[1:len(m)-1], ".") {
			obj, ok := v.(map[string]any)
			if !ok {
				missing = true
				return ""
			}
			v = obj[part]
		}
		s, ok := v.(string)
		if !ok || s == "" {
			missing = true
			return ""
		}
		return url.PathEscape(s)
	})
	if missing {
		return ""
	}
	return out
}
