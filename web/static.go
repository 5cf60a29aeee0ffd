package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"
)

// Static files (scripts) are embedded and served from this origin only, so
// the shopper pages' CSP can stay "script-src 'self'" with no inline script.
// Pages link them as /static/<name>?v=<hash of the content>: a URL that
// names its content can be cached for a year, and a new build changes it.

//go:embed static
var staticFS embed.FS

type staticFile struct {
	body        []byte
	gzipped     []byte // body compressed once at start: a phone on a slow line loads a quarter
	version     string // the first 12 hex digits of the content's SHA-256
	contentType string
}

const (
	staticImmutable = "public, max-age=31536000, immutable"
	// staticRevalidate is for a URL without (or with an old) version: the
	// browser may keep it but asks again each time.
	staticRevalidate = "public, no-cache"
	// couponWorkerPath is the service worker's own URL: a worker controls
	// the pages under the folder it is served from, here the coupon links.
	couponWorkerPath = "/c/sw.js"
)

var staticFiles = loadStatic()

func loadStatic() map[string]staticFile {
	files := map[string]staticFile{}
	entries, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		panic(err) // embedded at build time: cannot fail
	}
	for _, e := range entries {
		body, err := staticFS.ReadFile("static/" + e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(body)
		contentType := mime.TypeByExtension(path.Ext(e.Name()))
		if strings.HasSuffix(e.Name(), ".js") {
			contentType = "text/javascript; charset=utf-8"
		}
		files[e.Name()] = staticFile{body: body, gzipped: gzipBytes(body), version: hex.EncodeToString(sum[:6]), contentType: contentType}
	}
	return files
}

// staticURL is the versioned URL of an embedded static file, for templates.
func staticURL(name string) string {
	f, ok := staticFiles[name]
	if !ok {
		panic("web: no static file " + name) // a template names a file that is not embedded
	}
	return "/static/" + name + "?v=" + f.version
}

// registerStatic mounts /static/:name and the coupon pages' service worker.
func registerStatic(g *echo.Group) {
	g.GET("/static/:name", serveStatic)
	g.GET(couponWorkerPath, serveCouponWorker)
}

func serveStatic(c echo.Context) error {
	f, ok := staticFiles[c.Param("name")]
	if !ok || c.Param("name") == couponWorkerFile {
		return c.NoContent(http.StatusNotFound)
	}
	cacheControl := staticRevalidate
	if c.QueryParam("v") == f.version {
		cacheControl = staticImmutable
	}
	return writeStatic(c, f, cacheControl)
}

func writeStatic(c echo.Context, f staticFile, cacheControl string) error {
	h := c.Response().Header()
	etag := `"` + f.version + `"`
	h.Set("Cache-Control", cacheControl)
	h.Set("ETag", etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	if c.Request().Header.Get("If-None-Match") == etag {
		return c.NoContent(http.StatusNotModified)
	}
	if strings.Contains(c.Request().Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		return c.Blob(http.StatusOK, f.contentType, f.gzipped)
	}
	return c.Blob(http.StatusOK, f.contentType, f.body)
}

func gzipBytes(body []byte) []byte {
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		panic(err) // a valid level: cannot fail
	}
	_, _ = w.Write(body) // writes to memory cannot fail
	_ = w.Close()
	return out.Bytes()
}

// couponWorkerFile is the worker's source; the placeholder names the files
// it keeps for offline use, with their versions.
const (
	couponWorkerFile        = "coupon-sw.js"
	couponWorkerAssetsSlot  = "'__ASSETS__'"
	couponWorkerVersionSlot = "__VERSION__"
)

var couponWorker = buildCouponWorker()

func buildCouponWorker() staticFile {
	src := staticFiles[couponWorkerFile]
	assets := []string{staticURL("qrcode.js"), staticURL("coupon.js")}
	list, err := json.Marshal(assets)
	if err != nil {
		panic(err)
	}
	sum := sha256.New()
	sum.Write(src.body)
	for _, a := range assets {
		sum.Write([]byte(a))
	}
	version := hex.EncodeToString(sum.Sum(nil)[:6])
	body := strings.Replace(string(src.body), couponWorkerAssetsSlot, string(list), 1)
	body = strings.Replace(body, couponWorkerVersionSlot, version, 1)
	return staticFile{body: []byte(body), gzipped: gzipBytes([]byte(body)), version: version, contentType: src.contentType}
}

// serveCouponWorker serves the worker at /c/sw.js. Browsers check a
// worker's script for updates themselves; no-cache makes every check reach
// the server, so a fixed worker reaches phones at their next visit.
func serveCouponWorker(c echo.Context) error {
	c.Response().Header().Set("Content-Security-Policy", "default-src 'self'")
	return writeStatic(c, couponWorker, "no-cache")
}
