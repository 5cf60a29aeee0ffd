// Package apifuzz is chatpay's schema-driven API fuzzer, the role Schemathesis
// plays for Python services. From openapi.yaml it builds, for every
// operation, valid requests and mutated ones (wrong types, out-of-range
// numbers, hostile strings, missing and extra fields, duplicate and
// case-folded names, wrong content types, bad query values), sends them to a
// real server with valid credentials, and checks what the contract promises:
// never a 5xx, only documented statuses, problem+json errors, bodies valid
// against their schemas, a Location on every 201. It is seeded and bounded,
// so a failure is reproducible, and every failure carries a curl line.
package apifuzz

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Hints generate meaningful values for properties and parameters by name
// (an existing item id, the merchant's currency), so that valid requests get
// past "not found" and reach the code behind it.
type Hints map[string]func(*rand.Rand) any

// Config says what to fuzz and how hard.
type Config struct {
	BaseURL string
	Doc     *openapi3.T
	Client  *http.Client
	Seed    uint64
	// ExamplesPerOperation bounds the requests per operation.
	ExamplesPerOperation int
	// Authorization maps a security scheme to the header value that passes it.
	Authorization map[string]string
	// PathValue returns a real value for a path parameter of path, or "".
	PathValue func(path, param string, r *rand.Rand) string
	Hints     Hints
	// Skip leaves operations out (e.g. ones that change the credentials).
	Skip func(method, path string) bool
	// Deadline stops the run early; what ran is reported.
	Deadline time.Time
	Now      time.Time
}

// Failure is one broken promise, with what reproduces it.
type Failure struct {
	Operation string
	Mutation  string
	Status    int
	Reason    string
	Curl      string
}

// Report is what a run did and found.
type Report struct {
	Requests   int
	Operations int
	Failures   []Failure
	// Statuses counts answers per operation and status, for the note.
	Statuses map[string]map[int]int
}

var registerDecoders sync.Once

type operation struct {
	method, path string
	op           *openapi3.Operation
	params       openapi3.Parameters
}

// Run fuzzes every operation of the document.
func Run(ctx context.Context, cfg Config) (Report, error) {
	doc := *cfg.Doc
	doc.Servers = nil
	router, err := legacy.NewRouter(&doc)
	if err != nil {
		return Report{}, fmt.Errorf("apifuzz: router: %w", err)
	}
	registerDecoders.Do(func() {
		// kin-openapi decodes JSON and text; images are checked by type only.
		openapi3filter.RegisterBodyDecoder("image/svg+xml", openapi3filter.FileBodyDecoder)
		openapi3filter.RegisterBodyDecoder("image/png", openapi3filter.FileBodyDecoder)
	})
	ops := operations(cfg.Doc)
	report := Report{Statuses: map[string]map[int]int{}}
	r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	g := &generator{rand: r, hints: cfg.Hints, now: cfg.Now}
	for _, o := range ops {
		if cfg.Skip != nil && cfg.Skip(o.method, o.path) {
			continue
		}
		report.Operations++
		for i := range cfg.ExamplesPerOperation {
			if ctx.Err() != nil || (!cfg.Deadline.IsZero() && time.Now().After(cfg.Deadline)) {
				return report, nil
			}
			c := buildCase(g, cfg, o, i)
			failure, status := send(ctx, cfg, router, o, c)
			report.Requests++
			key := o.method + " " + o.path
			if report.Statuses[key] == nil {
				report.Statuses[key] = map[int]int{}
			}
			report.Statuses[key][status]++
			if failure != nil {
				report.Failures = append(report.Failures, *failure)
			}
		}
	}
	return report, nil
}

func operations(doc *openapi3.T) []operation {
	var out []operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			params := append(openapi3.Parameters{}, item.Parameters...)
			params = append(params, op.Parameters...)
			out = append(out, operation{method: method, path: path, op: op, params: params})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].path != out[j].path {
			return out[i].path < out[j].path
		}
		return out[i].method < out[j].method
	})
	return out
}

// testCase is one request to send.
type testCase struct {
	mutation    string
	path        string
	query       url.Values
	rawQuery    string // appended verbatim (hostile encodings)
	header      http.Header
	body        []byte
	hasBody     bool
	contentType string
	// mustRefuse: the mutation broke a rule no answer may accept with a 2xx,
	// whatever the schema says (NUL, duplicate names, wrong media type…).
	mustRefuse bool
}

func send(ctx context.Context, cfg Config, router routers.Router, o operation, c testCase) (*Failure, int) {
	target := cfg.BaseURL + c.path
	q := c.query.Encode()
	if c.rawQuery != "" {
		if q != "" {
			q += "&"
		}
		q += c.rawQuery
	}
	if q != "" {
		target += "?" + q
	}
	var body io.Reader
	if c.hasBody {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, o.method, target, body)
	if err != nil {
		return &Failure{Operation: o.method + " " + o.path, Mutation: c.mutation, Reason: "cannot build request: " + err.Error()}, 0
	}
	req.Header = c.header.Clone()
	if c.hasBody && c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	fail := func(status int, format string, args ...any) *Failure {
		return &Failure{Operation: o.method + " " + o.path, Mutation: c.mutation, Status: status,
			Reason: fmt.Sprintf(format, args...), Curl: curl(req, c.body)}
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return fail(0, "request failed: %v", err), 0
	}
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	_ = resp.Body.Close()
	if err != nil {
		return fail(resp.StatusCode, "reading the answer: %v", err), resp.StatusCode
	}
	if f := check(router, o, req, resp, respBody, fail); f != nil {
		return f, resp.StatusCode
	}
	if resp.StatusCode < 300 {
		if c.mustRefuse {
			return fail(resp.StatusCode, "accepted a %s request: %s", c.mutation, truncate(respBody)), resp.StatusCode
		}
		if err := validateRequest(router, req, c.body); err != nil {
			return fail(resp.StatusCode, "accepted a request the document calls invalid: %s", firstLines(err.Error())), resp.StatusCode
		}
	}
	return nil, resp.StatusCode
}

// validateRequest checks a sent request against the document, so that a
// server accepting what its own contract forbids (a too-long name, an
// out-of-range number) is caught even though it answered "success".
func validateRequest(router routers.Router, sent *http.Request, body []byte) error {
	req := sent.Clone(context.Background())
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	})
}

// check holds the promises of the contract for one answer.
func check(router routers.Router, o operation, req *http.Request, resp *http.Response, body []byte,
	fail func(int, string, ...any) *Failure) *Failure {
	status := resp.StatusCode
	if status >= 500 {
		return fail(status, "server error: %s", truncate(body))
	}
	if o.op.Responses.Status(status) == nil {
		return fail(status, "status %d is not documented for this operation: %s", status, truncate(body))
	}
	contentType := resp.Header.Get("Content-Type")
	if status >= 400 && !strings.HasPrefix(contentType, "application/problem+json") {
		return fail(status, "an error answered %q, not application/problem+json", contentType)
	}
	if status == http.StatusCreated && resp.Header.Get("Location") == "" {
		return fail(status, "201 without a Location header")
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return fail(status, "the document has no route for the request: %v", err)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  status,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return fail(status, "answer does not match the document: %s\n%s", firstLines(err.Error()), truncate(body))
	}
	return nil
}

// firstLines keeps what kin-openapi says is wrong and drops the schema and
// value dumps it appends.
func firstLines(s string) string {
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "Schema:") {
			break
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, " ")
}

func truncate(b []byte) string {
	const max = 400
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// curl prints a command that sends the same bytes again.
func curl(req *http.Request, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "curl -sS -X %s %s", req.Method, shellQuote(req.URL.String()))
	names := make([]string, 0, len(req.Header))
	for name := range req.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range req.Header[name] {
			fmt.Fprintf(&b, " -H %s", shellQuote(name+": "+v))
		}
	}
	if body != nil {
		if len(body) > 2048 {
			fmt.Fprintf(&b, " --data-binary @<(head -c %d /dev/zero) # %d-byte body, first bytes %q", len(body), len(body), body[:64])
		} else {
			fmt.Fprintf(&b, " --data-binary %s", shellQuote(string(body)))
		}
	}
	return b.String()
}

// shellQuote uses bash's $'…' so any byte survives a copy and paste.
func shellQuote(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
