package qr_test

import (
	"bytes"
	"encoding/xml"
	"image/png"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	zxingqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/chatpay/chatpay/qr"
)

// sampleURL is as long as the URLs chatpay encodes (base URL, /q/, token).
const sampleURL = "https://pay.chatpay.example/q/abcdefghijklmnopqrstuvwxyz"

// decodePNG reads a PNG with gozxing, a decoder that shares no code with the
// encoder, and returns the text it finds.
func decodePNG(t *testing.T, data []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("png decode: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatalf("binary bitmap: %v", err)
	}
	result, err := zxingqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("qr decode at %dx%d: %v", img.Bounds().Dx(), img.Bounds().Dy(), err)
	}
	return result.GetText()
}

func TestPNGDecodesToURL(t *testing.T) {
	t.Parallel()
	for _, size := range []int{qr.ImageSizeMinPx, 100, 257, qr.ImageSizeDefaultPx, 1000, qr.ImageSizeMaxPx} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			data, err := qr.PNG(sampleURL, size)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds().Dx() != size || img.Bounds().Dy() != size {
				t.Fatalf("image is %v, want %dx%d", img.Bounds(), size, size)
			}
			if got := decodePNG(t, data); got != sampleURL {
				t.Fatalf("decoded %q, want %q", got, sampleURL)
			}
		})
	}
}

func TestRenderingsAreDeterministic(t *testing.T) {
	t.Parallel()
	renderers := map[string]func() ([]byte, error){
		"png": func() ([]byte, error) { return qr.PNG(sampleURL, 512) },
		"svg": func() ([]byte, error) { return qr.SVG(sampleURL, 512) },
		"terminal": func() ([]byte, error) {
			s, err := qr.Terminal(sampleURL, false)
			return []byte(s), err
		},
	}
	for name, render := range renderers {
		first, err := render()
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			again, err := render()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, again) {
				t.Fatalf("%s rendering differs between runs", name)
			}
		}
	}
}

type svgDoc struct {
	XMLName        xml.Name  `xml:"svg"`
	ViewBox        string    `xml:"viewBox,attr"`
	ShapeRendering string    `xml:"shape-rendering,attr"`
	Background     []svgRect `xml:"rect"`
	Group          struct {
		Fill  string    `xml:"fill,attr"`
		Rects []svgRect `xml:"rect"`
	} `xml:"g"`
}

type svgRect struct {
	X      int    `xml:"x,attr"`
	Y      int    `xml:"y,attr"`
	Width  int    `xml:"width,attr"`
	Height int    `xml:"height,attr"`
	Fill   string `xml:"fill,attr"`
}

func TestSVGRebuildsBitmap(t *testing.T) {
	t.Parallel()
	data, err := qr.SVG(sampleURL, 300)
	if err != nil {
		t.Fatal(err)
	}
	// Well-formed: the strict decoder reads every token to the end.
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed XML: %v", err)
		}
	}
	var doc svgDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	bitmap, err := qr.Bitmap(sampleURL)
	if err != nil {
		t.Fatal(err)
	}
	n := len(bitmap)
	if want := "0 0 " + strconv.Itoa(n) + " " + strconv.Itoa(n); doc.ViewBox != want {
		t.Fatalf("viewBox %q, want %q", doc.ViewBox, want)
	}
	if doc.ShapeRendering != "crispEdges" {
		t.Fatalf("shape-rendering %q", doc.ShapeRendering)
	}
	if len(doc.Background) != 1 || doc.Background[0].Width != n || doc.Background[0].Fill != "#ffffff" {
		t.Fatalf("background %+v", doc.Background)
	}
	if doc.Group.Fill != "#000000" {
		t.Fatalf("dark fill %q", doc.Group.Fill)
	}

	// Paint the rectangles; each module must be painted at most once, and the
	// painted set must be exactly the dark modules.
	painted := make([][]int, n)
	for y := range painted {
		painted[y] = make([]int, n)
	}
	darkModules := 0
	for _, row := range bitmap {
		for _, dark := range row {
			if dark {
				darkModules++
			}
		}
	}
	area := 0
	for _, r := range doc.Group.Rects {
		if r.Width < 1 || r.Height < 1 || r.X < 0 || r.Y < 0 || r.X+r.Width > n || r.Y+r.Height > n {
			t.Fatalf("rect out of bounds: %+v", r)
		}
		area += r.Width * r.Height
		for y := r.Y; y < r.Y+r.Height; y++ {
			for x := r.X; x < r.X+r.Width; x++ {
				painted[y][x]++
			}
		}
	}
	if area != darkModules {
		t.Fatalf("rects cover %d modules, bitmap has %d dark", area, darkModules)
	}
	for y := range n {
		for x := range n {
			if (painted[y][x] == 1) != bitmap[y][x] || painted[y][x] > 1 {
				t.Fatalf("module (%d,%d): painted %d times, dark=%v", x, y, painted[y][x], bitmap[y][x])
			}
		}
	}
	if len(doc.Group.Rects) >= darkModules/2 {
		t.Fatalf("%d rects for %d dark modules: runs are not merged", len(doc.Group.Rects), darkModules)
	}
}

func TestTerminalRebuildsBitmap(t *testing.T) {
	t.Parallel()
	bitmap, err := qr.Bitmap(sampleURL)
	if err != nil {
		t.Fatal(err)
	}
	n := len(bitmap)
	for _, invert := range []bool{false, true} {
		text, err := qr.Terminal(sampleURL, invert)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if len(lines) != (n+1)/2 {
			t.Fatalf("invert=%v: %d lines for %d module rows", invert, len(lines), n)
		}
		rebuilt := make([][]bool, 0, len(lines)*2)
		for _, line := range lines {
			top, bottom := make([]bool, 0, n), make([]bool, 0, n)
			for _, r := range line {
				var inkTop, inkBottom bool
				switch r {
				case '█':
					inkTop, inkBottom = true, true
				case '▀':
					inkTop = true
				case '▄':
					inkBottom = true
				case ' ':
				default:
					t.Fatalf("unexpected glyph %q", r)
				}
				// Ink is dark, or light when inverted.
				top, bottom = append(top, inkTop != invert), append(bottom, inkBottom != invert)
			}
			if len(top) != n {
				t.Fatalf("line is %d cells wide, want %d", len(top), n)
			}
			rebuilt = append(rebuilt, top, bottom)
		}
		for y := range n {
			for x := range n {
				if rebuilt[y][x] != bitmap[y][x] {
					t.Fatalf("invert=%v: module (%d,%d) differs", invert, x, y)
				}
			}
		}
		if n%2 == 1 && len(rebuilt) > n {
			for x, dark := range rebuilt[n] {
				if dark {
					t.Fatalf("invert=%v: padding row is dark at %d", invert, x)
				}
			}
		}
		// The quiet zone: the first line is all light modules.
		for x := range n {
			if rebuilt[0][x] {
				t.Fatalf("invert=%v: quiet zone missing", invert)
			}
		}
	}
}

func TestBitmapHasQuietZone(t *testing.T) {
	t.Parallel()
	bitmap, err := qr.Bitmap(sampleURL)
	if err != nil {
		t.Fatal(err)
	}
	n := len(bitmap)
	for y := range n {
		for x := range n {
			edge := x < qr.QuietZoneModules || y < qr.QuietZoneModules || x >= n-qr.QuietZoneModules || y >= n-qr.QuietZoneModules
			if edge && bitmap[y][x] {
				t.Fatalf("dark module (%d,%d) inside the quiet zone", x, y)
			}
		}
	}
}

func TestBitmapRefusesOversizedContent(t *testing.T) {
	t.Parallel()
	if _, err := qr.Bitmap(strings.Repeat("a", qr.ContentLengthMax+1)); err == nil {
		t.Fatal("oversized content encoded")
	}
	if _, err := qr.Bitmap(""); err == nil {
		t.Fatal("empty content encoded")
	}
}
