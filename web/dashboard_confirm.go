package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/problem"
)

// Destructive actions (revoking a QR code or an API key, taking an item off
// sale) are asked on a page of their own: the list or detail page links to
// it, it says what will happen, and only its form posts. It works without
// script and a stray tap on a phone changes nothing.

// confirmView is the confirmation page of one action.
type confirmView struct {
	Heading     string
	Facts       []confirmFact // what the action applies to
	Consequence string        // what will happen, in plain words
	Action      string        // where the form posts
	Button      string
	ButtonID    string
	Cancel      string // where Cancel leads back to
}

type confirmFact struct{ Label, Value string }

func (d *Dashboard) renderConfirm(c echo.Context, nav string, view confirmView) error {
	return d.renderPage(c, http.StatusOK, "dash_confirm.html", newPage(c, view.Heading, nav, view))
}

// requireConfirmed refuses a destructive post that did not come from its
// confirmation page (an old page, a hand-made form).
func requireConfirmed(c echo.Context) error {
	if c.FormValue("confirmed") != "yes" {
		return problem.New(problem.KindInvalid, "not_confirmed", "this asks for a confirmation first: open the page again and confirm")
	}
	return nil
}
