package qr

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strconv"
	"strings"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/chatpay/chatpay/internal/problem"
)

// Rendering limits.
const (
	// ImageSizeDefaultPx is the PNG and SVG edge when the caller does not say.
	ImageSizeDefaultPx = 512
	// ImageSizeMinPx keeps every module at least one pixel wide for the
	// URLs chatpay encodes; ImageSizeMaxPx keeps a request from asking the
	// server for a poster-sized bitmap (2048 px is ~30 cm at 180 dpi, and an
	// SVG scales beyond that for free).
	ImageSizeMinPx = 64
	ImageSizeMaxPx = 2048
	// sizeDigitsMax rejects absurd size strings before converting them, so
	// no integer overflow is ever attempted.
	sizeDigitsMax = 6
	// ContentLengthMax bounds what is encoded; a URL of chatpay's is about
	// 60 bytes, and a longer payload only makes a denser, harder code.
	ContentLengthMax = 512
	// QuietZoneModules is the light margin the QR standard requires around
	// the symbol; go-qrcode's bitmap already includes it.
	QuietZoneModules = 4
)

// recoveryLevel is medium (about 15% of the symbol may be damaged): a
// printed poster survives smudges and a phone screen's glare without the
// symbol growing denser as it would at high.
const recoveryLevel = qrcode.Medium

// ParseSize reads the size query parameter in pixels: empty means
// ImageSizeDefaultPx; anything but plain decimal digits within
// [ImageSizeMinPx, ImageSizeMaxPx] is a 422 problem naming the field "size".
func ParseSize(s string) (int, error) {
	if s == "" {
		return ImageSizeDefaultPx, nil
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, problem.Field("size", "invalid_size", "size must be a whole number of pixels, not %q", truncate(s, 16))
		}
	}
	if len(s) > sizeDigitsMax {
		return 0, sizeRangeError()
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("parse size digits %q: %w", s, err) // digits checked above: a bug
	}
	if n < ImageSizeMinPx || n > ImageSizeMaxPx {
		return 0, sizeRangeError()
	}
	return n, nil
}

func sizeRangeError() error {
	return problem.Field("size", "out_of_range", "size must be between %d and %d pixels", ImageSizeMinPx, ImageSizeMaxPx)
}

// Bitmap encodes content as a QR symbol at medium error correction and
// returns its modules, quiet zone included, row by row (true = dark). The same
// content always gives the same bitmap, so every rendering and its ETag are
// stable.
func Bitmap(content string) ([][]bool, error) {
	if content == "" || len(content) > ContentLengthMax {
		return nil, fmt.Errorf("qr content must be 1 to %d bytes, got %d", ContentLengthMax, len(content))
	}
	code, err := qrcode.New(content, recoveryLevel)
	if err != nil {
		return nil, fmt.Errorf("encode qr: %w", err)
	}
	code.DisableBorder = false
	return code.Bitmap(), nil
}

var pngPalette = color.Palette{color.White, color.Black}

// PNG renders content as a sizePx × sizePx two-colour PNG. go-qrcode does
// the encoding; the painting is ours because its Image scales by a
// fractional ratio, giving modules of uneven pixel widths that cameras read
// worse. Here every module is the same whole number of pixels and the
// remainder becomes extra quiet zone. If sizePx is smaller than the symbol
// (never for chatpay's URLs at ImageSizeMinPx) modules are one pixel and the
// image is as large as the symbol.
func PNG(content string, sizePx int) ([]byte, error) {
	bitmap, err := Bitmap(content)
	if err != nil {
		return nil, err
	}
	modules := len(bitmap)
	scale := sizePx / modules
	if scale < 1 {
		scale, sizePx = 1, modules
	}
	offset := (sizePx - scale*modules) / 2
	img := image.NewPaletted(image.Rect(0, 0, sizePx, sizePx), pngPalette) // index 0: white
	for y, row := range bitmap {
		for x, dark := range row {
			if !dark {
				continue
			}
			for dy := 0; dy < scale; dy++ {
				start := img.PixOffset(offset+x*scale, offset+y*scale+dy)
				for dx := 0; dx < scale; dx++ {
					img.Pix[start+dx] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	encoder := png.Encoder{CompressionLevel: png.BestCompression}
	if err := encoder.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// Rect is a dark rectangle of the SVG rendering, in modules.
type Rect struct{ X, Y, Width, Height int }

// Rects covers the dark modules of bitmap with rectangles: each row's runs
// of dark modules, merged downwards with identical runs of the rows below.
// The rectangles never overlap and are ordered by (Y, X).
func Rects(bitmap [][]bool) []Rect {
	var rects []Rect
	open := map[[2]int]int{} // (x, width) of a run → index of its rect, if it reached the previous row
	for y, row := range bitmap {
		next := map[[2]int]int{}
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			start := x
			for x < len(row) && row[x] {
				x++
			}
			key := [2]int{start, x - start}
			if i, ok := open[key]; ok {
				rects[i].Height++
				next[key] = i
				continue
			}
			rects = append(rects, Rect{X: start, Y: y, Width: x - start, Height: 1})
			next[key] = len(rects) - 1
		}
		open = next
	}
	return rects
}

// SVG renders content as a vector image: a light background and the dark
// modules as merged rectangles in module units (viewBox), drawn with
// crispEdges so that scaled edges stay sharp. sizePx sets width and height.
func SVG(content string, sizePx int) ([]byte, error) {
	bitmap, err := Bitmap(content)
	if err != nil {
		return nil, err
	}
	n := len(bitmap)
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 %d %d" width="%d" height="%d" shape-rendering="crispEdges">`+"\n", n, n, sizePx, sizePx)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", n, n)
	b.WriteString(`<g fill="#000000">` + "\n")
	for _, r := range Rects(bitmap) {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d"/>`+"\n", r.X, r.Y, r.Width, r.Height)
	}
	b.WriteString("</g>\n</svg>\n")
	return b.Bytes(), nil
}

// Half-block glyphs: each character cell shows two modules, one above the other.
const (
	glyphBoth   = "█"
	glyphTop    = "▀"
	glyphBottom = "▄"
	glyphNone   = " "
)

// Terminal renders content for a terminal with Unicode half blocks, two
// module rows per text line, quiet zone included. A glyph's ink is the
// terminal's text colour, so by default dark modules are inked, for dark
// text on a light background; invert inks the light modules instead, for
// light text on a dark background, so that either way the camera sees dark
// modules on a light field. An odd last row is paired with a light row.
func Terminal(content string, invert bool) (string, error) {
	bitmap, err := Bitmap(content)
	if err != nil {
		return "", err
	}
	ink := func(y, x int) bool {
		dark := y < len(bitmap) && bitmap[y][x]
		return dark != invert
	}
	var b strings.Builder
	for y := 0; y < len(bitmap); y += 2 {
		for x := range bitmap[y] {
			top, bottom := ink(y, x), ink(y+1, x)
			switch {
			case top && bottom:
				b.WriteString(glyphBoth)
			case top:
				b.WriteString(glyphTop)
			case bottom:
				b.WriteString(glyphBottom)
			default:
				b.WriteString(glyphNone)
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
