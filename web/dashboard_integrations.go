package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/webhooks"
)

// Page sizes of the integrations pages.
const (
	endpointsShownMax  = 100
	deliveriesPageSize = 50
)

func (d *Dashboard) registerIntegrations(g *echo.Group) {
	g.GET("/integrations", d.integrations)
	g.POST("/keys", d.createKey)
	g.GET("/keys/:id/revoke", d.confirmRevokeKey)
	g.POST("/keys/:id/revoke", d.revokeKey)
	g.POST("/webhooks", d.createEndpoint)
	g.GET("/webhooks/:id", d.endpoint)
	g.POST("/webhooks/:id/test", d.testEndpoint)
	g.POST("/webhooks/:id/replay", d.replayEvent)
	g.POST("/webhooks/:id/send-waiting", d.sendWaiting)
}

func ownerOf(c echo.Context) webhooks.Owner {
	return webhooks.Owner{Kind: webhooks.OwnerMerchant, ID: merchantOf(c).ID}
}

type integrationsView struct {
	Keys       []catalog.APIKey
	NewKey     string // the secret of a key just created: shown once
	NewKeyName string
	Endpoints  []webhooks.Endpoint
	NewSecret  string // the signing secret of an endpoint just created
	EventTypes []string
	Form       endpointForm
}

type endpointForm struct {
	URL         string
	Description string
	Types       map[string]bool
}

func (d *Dashboard) integrationsView(c echo.Context) (integrationsView, error) {
	ctx := c.Request().Context()
	keys, err := d.deps.Catalog.Keys(ctx, merchantOf(c).ID)
	if err != nil {
		return integrationsView{}, err
	}
	endpoints, _, err := d.deps.Webhooks.ListEndpoints(ctx, ownerOf(c), "", endpointsShownMax)
	if err != nil {
		return integrationsView{}, err
	}
	return integrationsView{Keys: keys, Endpoints: endpoints, EventTypes: webhooks.EventTypes}, nil
}

func (d *Dashboard) integrations(c echo.Context) error {
	view, err := d.integrationsView(c)
	if err != nil {
		return d.renderError(c, err)
	}
	return d.renderPage(c, http.StatusOK, "dash_integrations.html", newPage(c, "Integrations", "integrations", view))
}

// createKey shows the new secret on the answer to the post itself, never in
// a URL or a later page: it exists in clear only in this one response.
func (d *Dashboard) createKey(c echo.Context) error {
	name := strings.TrimSpace(c.FormValue("name"))
	key, secret, err := d.deps.Catalog.CreateKey(c.Request().Context(), merchantOf(c).ID, name)
	view, listErr := d.integrationsView(c)
	if listErr != nil {
		return d.renderError(c, listErr)
	}
	pg := newPage(c, "Integrations", "integrations", view)
	if err != nil {
		p, ok := formProblem(err)
		if !ok {
			return d.renderError(c, err)
		}
		pg.Error, pg.Fields = p.Detail, p.Fields
		return d.renderPage(c, p.Status(), "dash_integrations.html", pg)
	}
	view.NewKey, view.NewKeyName = secret, key.Name
	pg.Data = view
	return d.renderPage(c, http.StatusCreated, "dash_integrations.html", pg)
}

func (d *Dashboard) confirmRevokeKey(c echo.Context) error {
	ctx := c.Request().Context()
	m := merchantOf(c)
	keys, err := d.deps.Catalog.Keys(ctx, m.ID)
	if err != nil {
		return d.renderError(c, err)
	}
	for _, k := range keys {
		if k.ID != c.Param("id") || k.RevokedAt != nil {
			continue
		}
		lastUsed := "never"
		if k.LastUsedAt != nil {
			lastUsed = k.LastUsedAt.In(m.Location()).Format("2 Jan 2006 15:04")
		}
		return d.renderConfirm(c, "integrations", confirmView{
			Heading: "Revoke the API key " + k.Name + "?",
			Facts:   []confirmFact{{"Name", k.Name}, {"Starts with", k.Hint + "…"}, {"Last used", lastUsed}},
			Consequence: "Every system using this key (a till, a POS, your backend) is refused from now on. " +
				"Revoking cannot be undone: create a new key and put it in their settings.",
			Action: "/dashboard/keys/" + k.ID + "/revoke", Button: "Revoke the key", ButtonID: "confirm-revoke",
			Cancel: "/dashboard/integrations",
		})
	}
	return d.renderError(c, problem.NotFound("active API key"))
}

func (d *Dashboard) revokeKey(c echo.Context) error {
	if err := requireConfirmed(c); err != nil {
		return d.renderError(c, err)
	}
	if err := d.deps.Catalog.RevokeKey(c.Request().Context(), merchantOf(c).ID, c.Param("id")); err != nil {
		return d.renderError(c, err)
	}
	return redirectFlash(c, "/dashboard/integrations", "The key is revoked.")
}

func (d *Dashboard) createEndpoint(c echo.Context) error {
	form, _ := c.FormParams()
	in := webhooks.EndpointInput{URL: strings.TrimSpace(c.FormValue("url")), Description: strings.TrimSpace(c.FormValue("description")),
		EventTypes: form["event_types"]}
	_, secret, err := d.deps.Webhooks.CreateEndpoint(c.Request().Context(), ownerOf(c), in)
	view, listErr := d.integrationsView(c)
	if listErr != nil {
		return d.renderError(c, listErr)
	}
	pg := newPage(c, "Integrations", "integrations", view)
	if err != nil {
		p, ok := formProblem(err)
		if !ok {
			return d.renderError(c, err)
		}
		view.Form = endpointForm{URL: in.URL, Description: in.Description, Types: map[string]bool{}}
		for _, t := range in.EventTypes {
			view.Form.Types[t] = true
		}
		pg.Data, pg.Error, pg.Fields = view, p.Detail, p.Fields
		return d.renderPage(c, p.Status(), "dash_integrations.html", pg)
	}
	view.NewSecret = secret.Secret
	pg.Data = view
	return d.renderPage(c, http.StatusCreated, "dash_integrations.html", pg)
}

type endpointView struct {
	Endpoint   webhooks.Endpoint
	Deliveries []webhooks.Delivery
	NextCursor string
	Status     string
}

func (d *Dashboard) endpoint(c echo.Context) error {
	ctx := c.Request().Context()
	ep, err := d.deps.Webhooks.GetEndpoint(ctx, ownerOf(c), c.Param("id"))
	if err != nil {
		return d.renderError(c, err)
	}
	status := c.QueryParam("status")
	deliveries, next, err := d.deps.Webhooks.ListDeliveries(ctx, ownerOf(c), ep.ID, status, c.QueryParam("cursor"), deliveriesPageSize)
	if err != nil {
		return d.renderError(c, err)
	}
	view := endpointView{Endpoint: ep, Deliveries: deliveries, NextCursor: next, Status: status}
	return d.renderPage(c, http.StatusOK, "dash_webhook.html", newPage(c, "Webhook endpoint", "integrations", view))
}

func (d *Dashboard) testEndpoint(c echo.Context) error {
	if _, err := d.deps.Webhooks.SendTest(c.Request().Context(), ownerOf(c), c.Param("id")); err != nil {
		return d.renderError(c, err)
	}
	return redirectFlash(c, "/dashboard/webhooks/"+c.Param("id"), "A test event is on its way.")
}

func (d *Dashboard) replayEvent(c echo.Context) error {
	n, err := d.deps.Webhooks.ReplayEvent(c.Request().Context(), ownerOf(c), c.FormValue("event_id"), c.Param("id"))
	if err != nil {
		return d.renderError(c, err)
	}
	flash := "The event will be delivered again."
	if n == 0 {
		flash = "Nothing to replay: the event is still being delivered."
	}
	return redirectFlash(c, "/dashboard/webhooks/"+c.Param("id"), flash)
}

// sendWaiting is "send waiting now": after fixing a receiver, its deliveries
// waiting for a retry go out at once, each chat's in order.
func (d *Dashboard) sendWaiting(c echo.Context) error {
	n, err := d.deps.Webhooks.SendWaiting(c.Request().Context(), ownerOf(c), c.Param("id"))
	if err != nil {
		return d.renderError(c, err)
	}
	flash := fmt.Sprintf("%d waiting %s now.", n, plural(n, "delivery is being sent", "deliveries are being sent"))
	if n == 0 {
		flash = "No delivery is waiting for a retry."
	}
	return redirectFlash(c, "/dashboard/webhooks/"+c.Param("id"), flash)
}
