package web

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/qr"
)

// QR image sizes of the dashboard, in pixels.
const (
	qrPreviewSizePx  = 240
	qrDownloadSizePx = 1024
	qrPosterSizePx   = 560
)

func (d *Dashboard) registerQR(g *echo.Group) {
	g.GET("/qr", d.qrCodes)
	g.POST("/qr", d.createQR)
	g.GET("/qr/:id", d.qrCode)
	g.GET("/qr/:id/qr.png", d.qrPNG)
	g.GET("/qr/:id/qr.svg", d.qrSVG)
	g.GET("/qr/:id/poster", d.qrPoster)
	g.GET("/qr/:id/revoke", d.confirmRevokeQR)
	g.POST("/qr/:id/revoke", d.revokeQR)
}

type qrRow struct {
	qr.Code
	ItemTitle  string
	Status     qr.Status
	OpensLabel string
}

type qrListView struct {
	Codes      []qrRow
	Items      []catalog.Item
	ItemID     string
	Placement  string
	NextCursor string
	Targets    []opensChoice // what a new code may open (dashboard_messengers.go)
	Opens      string
}

// itemTitles maps the merchant's item ids to titles for labels; a page of
// the newest items is enough for labels, others show their id.
func (d *Dashboard) itemTitles(c echo.Context) (map[string]string, []catalog.Item, error) {
	p, err := d.deps.Catalog.Items(c.Request().Context(), merchantOf(c).ID, catalog.ListOptions{Limit: catalog.PageSizeMax})
	if err != nil {
		return nil, nil, err
	}
	titles := make(map[string]string, len(p.Items))
	for _, it := range p.Items {
		titles[it.ID] = it.Title
	}
	return titles, p.Items, nil
}

func (d *Dashboard) qrCodes(c echo.Context) error {
	view, err := d.qrList(c)
	if err != nil {
		return d.renderError(c, err)
	}
	view.ItemID = c.QueryParam("item_id")
	return d.renderPage(c, http.StatusOK, "dash_qr_list.html", newPage(c, "QR codes", "qr", view))
}

func (d *Dashboard) qrList(c echo.Context) (qrListView, error) {
	m := merchantOf(c)
	titles, items, err := d.itemTitles(c)
	if err != nil {
		return qrListView{}, err
	}
	p, err := d.deps.QR.List(c.Request().Context(), m.ID, qr.ListQuery{Kind: qr.KindStatic, Cursor: c.QueryParam("cursor"), Limit: qr.PageSizeMax})
	if err != nil {
		return qrListView{}, err
	}
	view := qrListView{NextCursor: p.NextCursor}
	if view.Targets, err = d.opensChoices(c); err != nil {
		return qrListView{}, err
	}
	for _, it := range items {
		if it.Active {
			view.Items = append(view.Items, it)
		}
	}
	now := d.deps.Now()
	for _, code := range p.Codes {
		view.Codes = append(view.Codes, qrRow{Code: code, ItemTitle: titleOr(titles, code.TargetID), Status: code.StatusAt(now),
			OpensLabel: opensLabel(code)})
	}
	return view, nil
}

func titleOr(titles map[string]string, id string) string {
	if t, ok := titles[id]; ok {
		return t
	}
	return id
}

func (d *Dashboard) createQR(c echo.Context) error {
	m := merchantOf(c)
	in := qr.StaticInput{ItemID: c.FormValue("item_id"), Placement: strings.TrimSpace(c.FormValue("placement"))}
	in.Opens, in.ChannelID = parseOpensChoice(c.FormValue("opens"))
	code, err := d.deps.QR.CreateStatic(c.Request().Context(), d.deps.DB, m.ID, in)
	if err == nil {
		return redirectFlash(c, "/dashboard/qr/"+code.ID, "QR code created. Download it or print the poster.")
	}
	p, ok := formProblem(err)
	if !ok {
		return d.renderError(c, err)
	}
	view, listErr := d.qrList(c)
	if listErr != nil {
		return d.renderError(c, listErr)
	}
	view.ItemID, view.Placement, view.Opens = in.ItemID, in.Placement, c.FormValue("opens")
	pg := newPage(c, "QR codes", "qr", view)
	pg.Error, pg.Fields = p.Detail, p.Fields
	return d.renderPage(c, p.Status(), "dash_qr_list.html", pg)
}

type qrView struct {
	Code      qr.Code
	Status    qr.Status
	ItemTitle string
	Item      catalog.Item
	URL       string
	SVG       template.HTML
	RulesText string
	Opens     string // "All messengers (chooser page)", "Telegram", …
}

func (d *Dashboard) loadQR(c echo.Context, sizePx int) (qrView, error) {
	m := merchantOf(c)
	ctx := c.Request().Context()
	code, err := d.deps.QR.Get(ctx, m.ID, c.Param("id"))
	if err != nil {
		return qrView{}, err
	}
	target, err := d.deps.QR.CodeURL(ctx, code)
	if err != nil {
		return qrView{}, err
	}
	view := qrView{Code: code, Status: code.StatusAt(d.deps.Now()), URL: target, ItemTitle: code.TargetID, Opens: opensLabel(code)}
	if it, err := d.deps.Catalog.Item(ctx, m.ID, code.TargetID); err == nil {
		view.Item, view.ItemTitle = it, it.Title
		if it.Rules != nil {
			view.RulesText = catalog.RenderRules(*it.Rules, "en", m.Location(), nil)
		}
	}
	svg, err := qr.SVG(view.URL, sizePx)
	if err != nil {
		return qrView{}, fmt.Errorf("render qr: %w", err)
	}
	view.SVG = inlineSVG(svg)
	return view, nil
}

func (d *Dashboard) qrCode(c echo.Context) error {
	view, err := d.loadQR(c, qrPreviewSizePx)
	if err != nil {
		return d.renderError(c, err)
	}
	return d.renderPage(c, http.StatusOK, "dash_qr.html", newPage(c, "QR code · "+view.ItemTitle, "qr", view))
}

func (d *Dashboard) qrPoster(c echo.Context) error {
	view, err := d.loadQR(c, qrPosterSizePx)
	if err != nil {
		return d.renderError(c, err)
	}
	return d.renderPage(c, http.StatusOK, "dash_qr_poster.html", newPage(c, "Poster · "+view.ItemTitle, "qr", view))
}

func (d *Dashboard) qrPNG(c echo.Context) error {
	return d.qrImage(c, "png", "image/png", qr.PNG)
}

func (d *Dashboard) qrSVG(c echo.Context) error {
	return d.qrImage(c, "svg", "image/svg+xml", qr.SVG)
}

// qrImage sends the code as a download named after its placement.
func (d *Dashboard) qrImage(c echo.Context, ext, contentType string, render func(string, int) ([]byte, error)) error {
	m := merchantOf(c)
	code, err := d.deps.QR.Get(c.Request().Context(), m.ID, c.Param("id"))
	if err != nil {
		return d.renderError(c, err)
	}
	target, err := d.deps.QR.CodeURL(c.Request().Context(), code)
	if err != nil {
		return d.renderError(c, err)
	}
	body, err := render(target, qrDownloadSizePx)
	if err != nil {
		return d.renderError(c, fmt.Errorf("render qr: %w", err))
	}
	c.Response().Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="chatpay-%s.%s"`, code.ID, ext))
	c.Response().Header().Set("Cache-Control", "private, no-store")
	return c.Blob(http.StatusOK, contentType, body)
}

func (d *Dashboard) confirmRevokeQR(c echo.Context) error {
	view, err := d.loadQR(c, qrPreviewSizePx)
	if err != nil {
		return d.renderError(c, err)
	}
	placement := view.Code.Placement
	if placement == "" {
		placement = "(none)"
	}
	return d.renderConfirm(c, "qr", confirmView{
		Heading: "Revoke this QR code?",
		Facts:   []confirmFact{{"Item", view.ItemTitle}, {"Placement", placement}, {"Scans so far", itoa(int(view.Code.ScanCount))}},
		Consequence: "Scanning it will show that it is no longer valid, wherever it is printed or posted; nobody can buy through it. " +
			"Revoking cannot be undone: make a new code instead.",
		Action: "/dashboard/qr/" + view.Code.ID + "/revoke", Button: "Revoke the code", ButtonID: "confirm-revoke",
		Cancel: "/dashboard/qr/" + view.Code.ID,
	})
}

func (d *Dashboard) revokeQR(c echo.Context) error {
	m := merchantOf(c)
	if err := requireConfirmed(c); err != nil {
		return d.renderError(c, err)
	}
	if _, err := d.deps.QR.Revoke(c.Request().Context(), m.ID, c.Param("id")); err != nil {
		return d.renderError(c, err)
	}
	return redirectFlash(c, "/dashboard/qr/"+c.Param("id"), "The code is revoked: scanning it now shows that it is no longer valid.")
}
