package web

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"

	"github.com/labstack/echo/v4"
)

// The site's icon: chatpay's green square with a white "c" (a ring open to
// the right). Browsers ask /favicon.ico by themselves, on every page of the
// site, shopper pages included; the dashboard links the SVG, which stays
// sharp at any size. The PNG is drawn once, at start, from the same shape.

const faviconSVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">` +
	`<rect width="32" height="32" rx="7" fill="#0b6e4f"/>` +
	`<path d="M22.4 11.2A8 8 0 1 0 22.4 20.8" fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round"/></svg>`

// faviconSizePx is the side of the PNG icon.
const faviconSizePx = 32

var faviconPNG = drawFavicon(faviconSizePx)

// drawFavicon draws the icon's shape at size×size pixels.
func drawFavicon(size int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	green := color.NRGBA{R: 0x0b, G: 0x6e, B: 0x4f, A: 0xff}
	white := color.NRGBA{R: 0xff, G: 0xff, B: 0xff, A: 0xff}
	scale := float64(size) / 32
	corner := 7 * scale
	for y := range size {
		for x := range size {
			px, py := float64(x)+0.5, float64(y)+0.5
			// Outside the rounded corners stays transparent.
			cx, cy := math.Max(corner-px, math.Max(0, px-(float64(size)-corner))), math.Max(corner-py, math.Max(0, py-(float64(size)-corner)))
			if cx > 0 && cy > 0 && math.Hypot(cx, cy) > corner {
				continue
			}
			img.SetNRGBA(x, y, green)
			// The ring: radius 8, width 4, open where the angle is within
			// ±37° of the right-hand side.
			dx, dy := px-16*scale, py-16*scale
			r := math.Hypot(dx, dy) / scale
			if r >= 6 && r <= 10 && math.Abs(math.Atan2(dy, dx)) > 37*math.Pi/180 {
				img.SetNRGBA(x, y, white)
			}
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img) // encoding an in-memory image cannot fail
	return b.Bytes()
}

func (d *Dashboard) registerFavicon(root *echo.Group) {
	root.GET("/favicon.ico", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=86400")
		return c.Blob(http.StatusOK, "image/png", faviconPNG)
	})
	root.GET("/favicon.svg", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=86400")
		return c.Blob(http.StatusOK, "image/svg+xml", []byte(faviconSVG))
	})
}
