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

// draft is a valid request before a mutation, with what mutations need.
type draft struct {
	testCase
	pathParams map[string]string
	body       any
	bodySchema *openapi3.Schema
}

func buildCase(g *generator, cfg Config, o operation, _ int) testCase {
	d := validDraft(g, cfg, o)
	d.mutation = pickMutation(g, o, d.body, d.pathParams, d.header)
	mutate(g, o, &d)
	d.path = expand(o.path, d.pathParams)
	if d.hasBody {
		d.testCase.body = encodeJSON(d.body)
	}
	return d.testCase
}

// validDraft fills every parameter and the body from the schema (and the
// hints), with the operation's credentials.
func validDraft(g *generator, cfg Config, o operation) draft {
	d := draft{testCase: testCase{mutation: mutValid, query: url.Values{}, header: http.Header{}}, pathParams: map[string]string{}}
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
			d.pathParams[param.Name] = v
		case "query":
			if param.Required || g.rand.IntN(2) == 0 {
				d.query.Set(param.Name, stringify(g.value(param.Name, param.Schema, 0)))
			}
		case "header":
			if strings.EqualFold(param.Name, "Idempotency-Key") {
				d.header.Set("Idempotency-Key", "fuzz-"+g.text(&openapi3.Schema{MinLength: 24, MaxLength: ptr(uint64(24))}))
			}
		}
	}
	if rb := o.op.RequestBody; rb != nil && rb.Value != nil {
		if media := rb.Value.Content.Get("application/json"); media != nil {
			d.bodySchema = schemaOf(media.Schema)
			d.body = g.value("(body)", media.Schema, 0)
			d.hasBody, d.contentType = true, "application/json"
		}
	}
	if auth := authorization(cfg, o); auth != "" {
		d.header.Set("Authorization", auth)
	}
	return d
}

// mutate applies d.mutation and says whether no server may accept the result.
func mutate(g *generator, o operation, d *draft) {
	switch d.mutation {
	case mutContentType, mutNotObject, mutBlankKey, mutExtra, mutNoCredentials:
		d.mustRefuse = true
	}
	switch d.mutation {
	case mutHostileString:
		j := g.rand.IntN(len(hostileStrings))
		// An empty object (every member optional and left out) has nowhere
		// to put the string: the request is then valid and need not fail.
		d.mustRefuse = setRandomString(g, d.body, hostileStrings[j]) && j < refusedHostileStrings
	case mutWrongType:
		setRandomMember(g, d.body, wrongTypes[g.rand.IntN(len(wrongTypes))])
	case mutOutOfRange:
		d.body = outOfRangeMember(g, d.bodySchema, d.body)
	case mutMissing:
		d.body = dropRequired(g, d.bodySchema, d.body)
	case mutExtra:
		if obj, ok := d.body.(object); ok {
			d.body = append(obj, member{"unexpected_" + g.text(&openapi3.Schema{MaxLength: ptr(uint64(6))}), "x"})
		}
	case mutDuplicate:
		if obj, ok := d.body.(object); ok && len(obj) > 0 {
			d.body, d.mustRefuse = append(obj, obj[g.rand.IntN(len(obj))]), true
		}
	case mutCaseFolded:
		if obj, ok := d.body.(object); ok && len(obj) > 0 {
			j := g.rand.IntN(len(obj))
			obj[j].name, d.mustRefuse = strings.ToUpper(obj[j].name), true
		}
	default:
		mutateRequest(g, o, d)
	}
}

// mutateRequest breaks what is around the body: media type, path, query,
// headers.
func mutateRequest(g *generator, o operation, d *draft) {
	switch d.mutation {
	case mutContentType:
		d.contentType = []string{"text/plain", "application/x-www-form-urlencoded", "", "application/xml"}[g.rand.IntN(4)]
		if d.contentType == "" {
			d.header.Del("Content-Type")
		}
	case mutNotObject:
		d.body = []raw{`[]`, `"text"`, `null`, `{`, ` `, `{"a":1}{"b":2}`}[g.rand.IntN(6)]
	case mutHostilePath:
		names := keys(d.pathParams)
		j := g.rand.IntN(len(hostileQueryValues))
		d.mustRefuse = j < refusedHostileQueryValues
		d.pathParams[names[g.rand.IntN(len(names))]] = hostileQueryValues[j]
	case mutHostileQuery:
		d.rawQuery, d.mustRefuse = hostileQuery(g, o)
	case mutBlankKey:
		d.header.Set("Idempotency-Key", []string{"", " ", "\t"}[g.rand.IntN(3)])
	case mutNoCredentials:
		d.header.Del("Authorization")
	}
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
