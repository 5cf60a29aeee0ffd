package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The accessibility checkers of the browser tests, installed from
// .ci/a11y/package.json by `make ensure-a11y`: axe-core runs inside the page
// the test has open (its rules are the WCAG 2.x A/AA ones and best
// practices), Lighthouse loads the page again in its own Chromium and scores
// it. The product's bar is axe 0 violations and Lighthouse accessibility at
// least minLighthouseAccessibility on every page a shopper or merchant uses.
const (
	minLighthouseAccessibility = 0.98
	lighthouseTimeout          = 5 * time.Minute

	// The two screens every page is checked on: a small phone and a laptop.
	desktopViewportWidth  = 1366
	desktopViewportHeight = 800
)

// a11yTools is the folder with the checkers' node_modules; without it the
// checks skip on a developer machine and fail in CI, where they must run.
func a11yTools(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", ".ci", "a11y"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the accessibility checkers are not installed, and CI is set (make ensure-a11y installs them): %v", err)
		}
		t.Skip("the accessibility checkers are not installed: run `make ensure-a11y` (or `make test`)")
	}
	return dir
}

// axeViolation is the part of an axe-core result a failure message needs.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// axe runs axe-core on the page open in b and fails the test for every
// violation; name labels the page in messages and in the saved report.
func (b *browser) axe(name string) []axeViolation {
	b.t.Helper()
	violations := b.axeViolations(name)
	for _, v := range violations {
		b.t.Errorf("axe on %s: %s (%s): %s at %s", name, v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
	}
	return violations
}

// axeViolations runs axe-core on the page open in b and keeps its report
// with the screenshots.
func (b *browser) axeViolations(name string) []axeViolation {
	b.t.Helper()
	source, err := os.ReadFile(filepath.Join(a11yTools(b.t), "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		b.t.Fatal(err)
	}
	// The script is evaluated through the DevTools protocol, which the page's
	// Content-Security-Policy does not govern: the page is checked as served.
	run := string(source) + `;
axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify(r.violations.map(v => ({
  id: v.id, impact: v.impact || '', help: v.help,
  targets: v.nodes.map(n => n.target.join(' ')),
}))))`
	out := b.eval(run)
	var violations []axeViolation
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		b.t.Fatalf("axe on %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.artifacts, "axe-"+name+".json"), []byte(out), 0o644); err != nil {
		b.t.Fatal(err)
	}
	return violations
}

// atViewport sets b's viewport to one of the two checked screens.
func (b *browser) atViewport(phone bool) {
	b.t.Helper()
	if phone {
		b.do(chromedp.EmulateViewport(phoneViewportWidthPx, phoneViewportHeight, chromedp.EmulateScale(2), chromedp.EmulateMobile))
		return
	}
	b.do(chromedp.EmulateViewport(desktopViewportWidth, desktopViewportHeight))
}

// lighthousePage is one page for Lighthouse, on one screen.
type lighthousePage struct {
	Name    string            `json:"name"` // unique in one call; names the report file
	URL     string            `json:"url"`
	Width   int               `json:"width"`
	Height  int               `json:"height"`
	Mobile  bool              `json:"mobile"`
	Headers map[string]string `json:"headers,omitempty"` // a dashboard session's Cookie, say
	Locale  string            `json:"locale,omitempty"`
}

// onBothScreens is page on the phone and on the laptop, named name-360 and
// name-1366.
func onBothScreens(name, url string, headers map[string]string) []lighthousePage {
	return []lighthousePage{
		{Name: name + "-360", URL: url, Width: phoneViewportWidthPx, Height: phoneViewportHeight, Mobile: true, Headers: headers},
		{Name: name + "-1366", URL: url, Width: desktopViewportWidth, Height: desktopViewportHeight, Headers: headers},
	}
}

type lighthouseResult struct {
	Name    string  `json:"name"`
	URL     string  `json:"url"`
	Score   float64 `json:"score"`
	Failing []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	} `json:"failing"`
	RuntimeError string `json:"runtimeError"`
}

// lighthouseAccessibility scores pages with Lighthouse's accessibility
// category, all in one Chromium, and fails the test for every page under
// minLighthouseAccessibility. The HTML reports are kept with the test's
// screenshots. Pages that need a session pass its cookie in Headers, since
// Lighthouse's browser is not the test's.
func lighthouseAccessibility(t *testing.T, pages ...lighthousePage) map[string]lighthouseResult {
	t.Helper()
	results := runLighthouse(t, pages)
	for _, r := range results {
		if r.RuntimeError != "" {
			t.Errorf("lighthouse on %s (%s): %s", r.Name, r.URL, r.RuntimeError)
			continue
		}
		if r.Score < minLighthouseAccessibility {
			var failing []string
			for _, f := range r.Failing {
				failing = append(failing, f.ID+" ("+f.Title+")")
			}
			t.Errorf("lighthouse accessibility of %s is %.2f, under %.2f; failing: %s", r.Name, r.Score, minLighthouseAccessibility, strings.Join(failing, "; "))
		}
	}
	return results
}

func runLighthouse(t *testing.T, pages []lighthousePage) map[string]lighthouseResult {
	t.Helper()
	tools := a11yTools(t)
	input, err := json.Marshal(map[string]any{
		"chrome":  chromiumPath(t),
		"reports": artifactsDir(t),
		"pages":   pages,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lighthouseTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(tools, "lighthouse.mjs"))
	cmd.Dir = tools
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Its own process group, so that a timeout stops Chromium with node.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(), "CHROME_PATH="+chromiumPath(t), "TMPDIR="+t.TempDir())
	if err := cmd.Run(); err != nil {
		t.Fatalf("lighthouse: %v\n%s", err, stderr.String())
	}
	var results []lighthouseResult
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		t.Fatalf("lighthouse output: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	byName := make(map[string]lighthouseResult, len(results))
	for _, r := range results {
		byName[r.Name] = r
		t.Logf("lighthouse accessibility %s: %.2f", r.Name, r.Score)
	}
	if len(byName) != len(pages) {
		t.Fatalf("lighthouse scored %d of %d pages", len(byName), len(pages))
	}
	return byName
}

// The checkers themselves: axe finds the faults of a page made to fail and
// none on a clean one, and Lighthouse scores them apart. Without this, a
// checker that silently ran nothing would pass every page.
func TestA11yCheckersFindFaults(t *testing.T) {
	a11yTools(t)
	const clean = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Clean</title></head>
<body><main><h1>Tea card</h1><p>Usable 14:00–17:00.</p>
<form><label for="q">Quantity</label><input id="q" name="q" value="1"><button>Buy now</button></form></main></body></html>`
	const faulty = `<!doctype html><html><head><title>Faulty</title></head>
<body><img src="/x.png"><input name="q"><p style="color:#eee;background:#fff">Low contrast</p>
<button></button></body></html>`
	mux := http.NewServeMux()
	mux.HandleFunc("/clean", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, clean) })
	mux.HandleFunc("/faulty", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, faulty) })
	srv := httptest.NewServer(mux) // httptest listens on 127.0.0.1
	defer srv.Close()

	b := startBrowser(t)
	b.atViewport(true)
	b.do(chromedp.Navigate(srv.URL + "/clean"))
	if v := b.axe("clean"); len(v) != 0 {
		t.Fatalf("axe found %d violations on the clean page", len(v))
	}
	b.do(chromedp.Navigate(srv.URL + "/faulty"))
	found := b.axeViolations("faulty")
	want := map[string]bool{"image-alt": false, "label": false, "color-contrast": false, "button-name": false, "html-has-lang": false}
	for _, v := range found {
		if _, ok := want[v.ID]; ok {
			want[v.ID] = true
		}
	}
	for id, seen := range want {
		if !seen {
			t.Errorf("axe did not report %s on the faulty page; it reported %+v", id, found)
		}
	}

	results := runLighthouse(t, []lighthousePage{
		{Name: "clean", URL: srv.URL + "/clean", Width: phoneViewportWidthPx, Height: phoneViewportHeight, Mobile: true},
		{Name: "faulty", URL: srv.URL + "/faulty", Width: desktopViewportWidth, Height: desktopViewportHeight},
	})
	if s := results["clean"].Score; s < minLighthouseAccessibility {
		t.Errorf("lighthouse scored the clean page %.2f: %+v", s, results["clean"])
	}
	if s := results["faulty"].Score; s >= minLighthouseAccessibility {
		t.Errorf("lighthouse scored the faulty page %.2f, at or above the bar", s)
	}
}
