package apifuzz

import (
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// The mutations: each breaks one promise a client could break.
const (
	mutValid         = "valid"
	mutHostileString = "hostile-string"
	mutWrongType     = "wrong-type"
	mutOutOfRange    = "out-of-range"
	mutMissing       = "missing-required"
	mutExtra         = "extra-field"
	mutDuplicate     = "duplicate-name"
	mutCaseFolded    = "case-folded-name"
	mutContentType   = "wrong-content-type"
	mutNotObject     = "not-an-object"
	mutHostilePath   = "hostile-path"
	mutHostileQuery  = "hostile-query"
	mutBlankKey      = "blank-idempotency-key"
	mutNoCredentials = "no-credentials"
)

func buildCase(g *generator, cfg Config, o operation, i int) testCase {
	c := testCase{mutation: mutValid, query: url.Values{}, header: http.Header{}}
	pathParams := map[string]string{}
	var bodyValue any
	var bodySchema *openapi3.Schema
	for _, p := range o.params {
		param := p.Value
		if param == nil {
			continue
		}
		switch param.In {
		case "path":
			v := ""
			if cfg.PathValue != nil {
				v = cfg.PathValue(o.path, param.Name, g.rand)
			}
			if v == "" {
				v = stringify(g.value(param.Name, param.Schema, 0))
			}
			pathParams[param.Name] = v
		case "query":
			if param.Required || g.rand.IntN(2) == 0 {
				c.query.Set(param.Name, stringify(g.value(param.Name, param.Schema, 0)))
			}
		case "header":
			if strings.EqualFold(param.Name, "Idempotency-Key") {
				c.header.Set("Idempotency-Key", "fuzz-"+g.text(&openapi3.Schema{MinLength: 24, MaxLength: ptr(uint64(24))}))
			}
		}
	}
	if rb := o.op.RequestBody; rb != nil && rb.Value != nil {
		if media := rb.Value.Content.Get("application/json"); media != nil {
			bodySchema = schemaOf(media.Schema)
			bodyValue = g.value("(body)", media.Schema, 0)
			c.hasBody, c.contentType = true, "application/json"
		}
	}
	if auth := authorization(cfg, o); auth != "" {
		c.header.Set("Authorization", auth)
	}

	c.mutation = pickMutation(g, o, bodyValue, pathParams, c.header)
	switch c.mutation {
	case mutContentType, mutNotObject, mutBlankKey, mutExtra, mutNoCredentials:
		c.mustRefuse = true
	}
	switch c.mutation {
	case mutHostileString:
		j := g.rand.IntN(len(hostileStrings))
		// An empty object (every member optional and left out) has nowhere
		// to put the string: the request is then valid and need not fail.
		c.mustRefuse = setRandomString(g, bodyValue, hostileStrings[j]) && j < refusedHostileStrings
	case mutWrongType:
		setRandomMember(g, bodyValue, wrongTypes[g.rand.IntN(len(wrongTypes))])
	case mutOutOfRange:
		bodyValue = outOfRangeMember(g, bodySchema, bodyValue)
	case mutMissing:
		bodyValue = dropRequired(g, bodySchema, bodyValue)
	case mutExtra:
		if obj, ok := bodyValue.(object); ok {
			bodyValue = append(obj, member{"unexpected_" + g.text(&openapi3.Schema{MaxLength: ptr(uint64(6))}), "x"})
		}
	case mutDuplicate:
		if obj, ok := bodyValue.(object); ok && len(obj) > 0 {
			m := obj[g.rand.IntN(len(obj))]
			bodyValue, c.mustRefuse = append(obj, m), true
		}
	case mutCaseFolded:
		if obj, ok := bodyValue.(object); ok && len(obj) > 0 {
			j := g.rand.IntN(len(obj))
			obj[j].name, c.mustRefuse = strings.ToUpper(obj[j].name), true
		}
	case mutContentType:
		c.contentType = []string{"text/plain", "application/x-www-form-urlencoded", "", "application/xml"}[g.rand.IntN(4)]
		if c.contentType == "" {
			c.header.Del("Content-Type")
		}
	case mutNotObject:
		bodyValue = []raw{`[]`, `"text"`, `null`, `{`, ` `, `{"a":1}{"b":2}`}[g.rand.IntN(6)]
	case mutHostilePath:
		names := keys(pathParams)
		j := g.rand.IntN(len(hostileQueryValues))
		c.mustRefuse = j < refusedHostileQueryValues
		pathParams[names[g.rand.IntN(len(names))]] = hostileQueryValues[j]
	case mutHostileQuery:
		c.rawQuery, c.mustRefuse = hostileQuery(g, o)
	case mutBlankKey:
		c.header.Set("Idempotency-Key", []string{"", " ", "\t"}[g.rand.IntN(3)])
	case mutNoCredentials:
		c.header.Del("Authorization")
	}
	c.path = expand(o.path, pathParams)
	if c.hasBody {
		c.body = encodeJSON(bodyValue)
	}
	return c
}

func pickMutation(g *generator, o operation, body any, pathParams map[string]string, header http.Header) string {
	candidates := []string{mutValid, mutValid, mutValid, mutHostileQuery}
	if _, ok := body.(object); ok {
		candidates = append(candidates, mutHostileString, mutHostileString, mutWrongType, mutOutOfRange, mutMissing,
			mutExtra, mutDuplicate, mutCaseFolded, mutContentType, mutNotObject)
	}
	if len(pathParams) > 0 {
		candidates = append(candidates, mutHostilePath, mutHostilePath)
	}
	if header.Get("Idempotency-Key") != "" {
		candidates = append(candidates, mutBlankKey)
	}
	if header.Get("Authorization") != "" {
		candidates = append(candidates, mutNoCredentials)
	}
	return candidates[g.rand.IntN(len(candidates))]
}

// authorization returns the header value for the operation's first security
// requirement (or the document's).
func authorization(cfg Config, o operation) string {
	reqs := cfg.Doc.Security
	if o.op.Security != nil {
		reqs = *o.op.Security
	}
	for _, req := range reqs {
		for scheme := range req {
			if v, ok := cfg.Authorization[scheme]; ok {
				return v
			}
		}
	}
	return ""
}

// slots lists the members of an object tree, so a mutation can reach a
// nested field as well as a top-level one.
func slots(v any, out *[]*member) {
	obj, ok := v.(object)
	if !ok {
		return
	}
	for i := range obj {
		*out = append(*out, &obj[i])
		slots(obj[i].value, out)
	}
}

func setRandomMember(g *generator, body any, value raw) {
	var all []*member
	slots(body, &all)
	if len(all) > 0 {
		all[g.rand.IntN(len(all))].value = value
	}
}

// setRandomString puts value into a random string member (or any member),
// and reports whether the body had one.
func setRandomString(g *generator, body any, value raw) bool {
	var all, texts []*member
	slots(body, &all)
	for _, m := range all {
		if _, ok := m.value.(string); ok {
			texts = append(texts, m)
		}
	}
	if len(texts) == 0 {
		texts = all
	}
	if len(texts) == 0 {
		return false
	}
	texts[g.rand.IntN(len(texts))].value = value
	return true
}

func outOfRangeMember(g *generator, s *openapi3.Schema, body any) any {
	obj, ok := body.(object)
	if !ok || s == nil {
		return body
	}
	var numeric []string
	for name, prop := range s.Properties {
		if p := schemaOf(prop); p != nil && (p.Type.Is("integer") || p.Type.Is("number")) {
			numeric = append(numeric, name)
		}
	}
	if len(numeric) == 0 {
		setRandomMember(g, body, wrongTypes[g.rand.IntN(len(wrongTypes))])
		return body
	}
	sortStrings(numeric)
	name := numeric[g.rand.IntN(len(numeric))]
	values := outOfRange(schemaOf(s.Properties[name]))
	obj = withoutMember(obj, name)
	return append(obj, member{name, values[g.rand.IntN(len(values))]})
}

func dropRequired(g *generator, s *openapi3.Schema, body any) any {
	obj, ok := body.(object)
	if !ok || s == nil || len(s.Required) == 0 {
		return body
	}
	return withoutMember(obj, s.Required[g.rand.IntN(len(s.Required))])
}

func withoutMember(obj object, name string) object {
	out := obj[:0:0]
	for _, m := range obj {
		if m.name != name {
			out = append(out, m)
		}
	}
	return out
}

func hostileQuery(g *generator, o operation) (string, bool) {
	var names []string
	for _, p := range o.params {
		if p.Value != nil && p.Value.In == "query" {
			names = append(names, p.Value.Name)
		}
	}
	if len(names) == 0 {
		names = []string{"limit", "cursor"}
	}
	name := names[g.rand.IntN(len(names))]
	j := g.rand.IntN(len(hostileQueryValues))
	return url.QueryEscape(name) + "=" + hostileQueryValues[j], j < refusedHostileQueryValues
}

// expand fills a path template; values that look percent-encoded already
// (hostile ones) go in as they are.
func expand(template string, values map[string]string) string {
	out := template
	for name, v := range values {
		if !strings.Contains(v, "%") {
			v = url.PathEscape(v)
		}
		if v == "" {
			v = "%20"
		}
		out = strings.ReplaceAll(out, "{"+name+"}", v)
	}
	return out
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

func sortStrings(s []string) { sort.Strings(s) }

func ptr[T any](v T) *T { return &v }
