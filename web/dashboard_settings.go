package web

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/problem"
)

// The two answers of the typed-codes choice. A pair of radio buttons rather
// than a checkbox: an unticked checkbox posts nothing, so a form that lost the
// field would silently switch typed codes off; here a missing answer is an
// error and nothing is saved.
const (
	typedCodesAllow  = "allow"
	typedCodesRefuse = "refuse"
)

func (d *Dashboard) registerSettings(g *echo.Group) {
	g.GET("/settings", d.settings)
	g.POST("/settings", d.saveSettings)
}

// settingsForm is the settings form as text, so that whatever was typed comes
// back unchanged next to its error.
type settingsForm struct {
	Name       string
	TimeZone   string
	TypedCodes string // typedCodesAllow, typedCodesRefuse, or "" when not answered
}

type settingsView struct {
	Form  settingsForm
	Zones []string
}

func formOfMerchant(m catalog.Merchant) settingsForm {
	f := settingsForm{Name: m.Name, TimeZone: m.TimeZone, TypedCodes: typedCodesRefuse}
	if m.AllowTypedCodes {
		f.TypedCodes = typedCodesAllow
	}
	return f
}

func (d *Dashboard) settings(c echo.Context) error {
	view := settingsView{Form: formOfMerchant(merchantOf(c)), Zones: commonZones}
	return d.renderPage(c, http.StatusOK, "dash_settings.html", newPage(c, "Settings", "settings", view))
}

// saveSettings changes the session's own merchant and no other: the id comes
// from the session, never from the form or the URL.
func (d *Dashboard) saveSettings(c echo.Context) error {
	m := merchantOf(c)
	form := settingsForm{
		Name:       strings.TrimSpace(c.FormValue("name")),
		TimeZone:   strings.TrimSpace(c.FormValue("time_zone")),
		TypedCodes: c.FormValue("allow_typed_codes"),
	}
	var allow bool
	switch form.TypedCodes {
	case typedCodesAllow:
		allow = true
	case typedCodesRefuse:
	default:
		form.TypedCodes = ""
		return d.showSettingsForm(c, form, problem.Field("allow_typed_codes", "invalid_choice",
			"choose whether the till accepts typed coupon codes"))
	}
	updated, err := d.deps.Catalog.UpdateMerchant(c.Request().Context(), m.ID,
		catalog.MerchantPatch{Name: &form.Name, TimeZone: &form.TimeZone, AllowTypedCodes: &allow})
	if err != nil {
		return d.showSettingsForm(c, form, err)
	}
	flash := "Settings saved."
	if updated.TimeZone != m.TimeZone {
		flash = "Settings saved. Coupons sold from now on read their hours in " + updated.TimeZone +
			"; coupons already issued keep " + m.TimeZone + "."
	}
	return redirectFlash(c, "/dashboard/settings", flash)
}

func (d *Dashboard) showSettingsForm(c echo.Context, form settingsForm, err error) error {
	p, ok := formProblem(err)
	if !ok {
		return d.renderError(c, err)
	}
	view := newPage(c, "Settings", "settings", settingsView{Form: form, Zones: commonZones})
	view.Error, view.Fields = p.Detail, p.Fields
	return d.renderPage(c, p.Status(), "dash_settings.html", view)
}
