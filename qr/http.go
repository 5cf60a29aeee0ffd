package qr

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
)

// MerchantResolver returns the authenticated merchant's id for a request, or
// a *problem.Error (401) when there is none. The wiring passes the merchant
// API key check; tests pass a header reader.
type MerchantResolver func(c echo.Context) (string, error)

// HTTP serves the merchant API for QR codes.
type HTTP struct {
	svc          *Service
	idempotency  *idempotency.Store
	merchantFrom MerchantResolver
}

// NewHTTP returns the handlers; Register mounts them.
func NewHTTP(svc *Service, idem *idempotency.Store, merchantFrom MerchantResolver) *HTTP {
	return &HTTP{svc: svc, idempotency: idem, merchantFrom: merchantFrom}
}

// Register mounts the routes on g, which is the /v1 group:
//
//	POST /qr-codes                  create a static code (Idempotency-Key)
//	GET  /qr-codes                  list, newest first (?cursor, ?limit, ?kind)
//	GET  /qr-codes/:id              one code
//	POST /qr-codes/:id/revoke       withdraw a code
//	GET  /qr-codes/:id/image.png    PNG (?size in px)
//	GET  /qr-codes/:id/image.svg    SVG (?size in px sets width and height)
//
// The middleware (the merchant's authentication) is attached per route, not
// to the group, so that unknown paths under the group stay 404.
func (h *HTTP) Register(g *echo.Group, m ...echo.MiddlewareFunc) {
	g.POST("/qr-codes", h.create, m...)
	g.GET("/qr-codes", h.list, m...)
	g.GET("/qr-codes/:id", h.get, m...)
	g.POST("/qr-codes/:id/revoke", h.revoke, m...)
	g.GET("/qr-codes/:id/image.png", h.png, m...)
	g.GET("/qr-codes/:id/image.svg", h.svg, m...)
}

// codeView is the JSON form of a code.
type codeView struct {
	ID         string        `json:"id"`
	Object     string        `json:"object"`
	Kind       Kind          `json:"kind"`
	Status     Status        `json:"status"`
	TargetType TargetType    `json:"target_type"`
	TargetID   string        `json:"target_id"`
	Placement  string        `json:"placement"`
	URL        string        `json:"url"`
	Opens      string        `json:"opens"`
	ChannelID  string        `json:"channel_id,omitempty"`
	Amount     *money.Amount `json:"amount,omitempty"`
	CreatedAt  time.Time     `json:"created_at"`
	ExpiresAt  *time.Time    `json:"expires_at"`
	RevokedAt  *time.Time    `json:"revoked_at"`
	ConsumedAt *time.Time    `json:"consumed_at"`
	ScanCount  int64         `json:"scan_count"`
	ImagePNG   string        `json:"image_png"`
	ImageSVG   string        `json:"image_svg"`
}

func (h *HTTP) view(c echo.Context, code Code) codeView {
	// Image links are relative to this route's mount point, which the
	// request path tells (…/qr-codes or …/qr-codes/<id>[/revoke]).
	base := c.Request().URL.Path
	if i := strings.Index(base, "/qr-codes"); i >= 0 {
		base = base[:i]
	}
	self := base + "/qr-codes/" + code.ID
	return codeView{
		ID: code.ID, Object: "qr_code", Kind: code.Kind, Status: code.StatusAt(h.svc.now()),
		TargetType: code.TargetType, TargetID: code.TargetID, Placement: code.Placement,
		URL: h.codeURL(c, code), Opens: opensOrWeb(code.Opens), ChannelID: code.ChannelID, Amount: code.Amount, CreatedAt: code.CreatedAt,
		ExpiresAt: code.ExpiresAt, RevokedAt: code.RevokedAt, ConsumedAt: code.ConsumedAt,
		ScanCount: code.ScanCount, ImagePNG: self + "/image.png", ImageSVG: self + "/image.svg",
	}
}

type createRequest struct {
	ItemID    string `json:"item_id"`
	Placement string `json:"placement"`
	Opens     string `json:"opens"`
	ChannelID string `json:"channel_id"`
}

func (h *HTTP) create(c echo.Context) error {
	merchantID, err := h.merchantFrom(c)
	if err != nil {
		return err
	}
	var req createRequest
	body, err := httpapi.BindJSON(c, &req)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	return h.idempotency.Handle(c, idempotency.MerchantScope(merchantID), body, func(tx *sqlx.Tx) (int, any, error) {
		code, err := h.svc.CreateStatic(ctx, tx, merchantID, StaticInput(req))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, h.view(c, code), nil
	})
}

func (h *HTTP) list(c echo.Context) error {
	merchantID, err := h.merchantFrom(c)
	if err != nil {
		return err
	}
	q := ListQuery{Kind: Kind(c.QueryParam("kind")), Cursor: c.QueryParam("cursor")}
	limit, err := httpapi.QueryLimit(c, PageSizeMax)
	if err != nil {
		return err
	}
	q.Limit = limit
	page, err := h.svc.List(c.Request().Context(), merchantID, q)
	if err != nil {
		return err
	}
	views := make([]codeView, 0, len(page.Codes))
	for _, code := range page.Codes {
		views = append(views, h.view(c, code))
	}
	return c.JSON(http.StatusOK, httpapi.NewPage(views, page.NextCursor))
}

func (h *HTTP) get(c echo.Context) error {
	merchantID, err := h.merchantFrom(c)
	if err != nil {
		return err
	}
	code, err := h.svc.Get(c.Request().Context(), merchantID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.view(c, code))
}

func (h *HTTP) revoke(c echo.Context) error {
	merchantID, err := h.merchantFrom(c)
	if err != nil {
		return err
	}
	code, err := h.svc.Revoke(c.Request().Context(), merchantID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.view(c, code))
}

// imageCacheControl lets the merchant's browser keep an image for a day. A
// code's token never changes, so neither does its image; "private" keeps
// shared caches from storing what an API key fetched.
const imageCacheControl = "private, max-age=86400"

func (h *HTTP) png(c echo.Context) error {
	return h.image(c, "png", "image/png", PNG)
}

func (h *HTTP) svg(c echo.Context) error {
	return h.image(c, "svg", "image/svg+xml", SVG)
}

func (h *HTTP) image(c echo.Context, ext, contentType string, render func(string, int) ([]byte, error)) error {
	merchantID, err := h.merchantFrom(c)
	if err != nil {
		return err
	}
	size, err := ParseSize(c.QueryParam("size"))
	if err != nil {
		return err
	}
	code, err := h.svc.Get(c.Request().Context(), merchantID, c.Param("id"))
	if err != nil {
		return err
	}
	target, err := h.svc.CodeURL(c.Request().Context(), code)
	if err != nil {
		return err
	}
	content, err := render(target, size)
	if err != nil {
		return fmt.Errorf("render qr code %s: %w", code.ID, err)
	}
	sum := sha256.Sum256(content)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	header := c.Response().Header()
	header.Set("ETag", etag)
	header.Set("Cache-Control", imageCacheControl)
	if etagMatches(c.Request().Header.Get("If-None-Match"), etag) {
		return c.NoContent(http.StatusNotModified)
	}
	header.Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s-%d.%s"`, code.ID, size, ext))
	header.Set("X-Content-Type-Options", "nosniff")
	return c.Blob(http.StatusOK, contentType, content)
}

// etagMatches applies If-None-Match (RFC 9110 §13.1.2): "*" or any listed
// entity tag equal to etag under weak comparison.
func etagMatches(ifNoneMatch, etag string) bool {
	if ifNoneMatch == "" {
		return false
	}
	if strings.TrimSpace(ifNoneMatch) == "*" {
		return true
	}
	for _, candidate := range strings.Split(ifNoneMatch, ",") {
		candidate = strings.TrimPrefix(strings.TrimSpace(candidate), "W/")
		if candidate == etag {
			return true
		}
	}
	return false
}
