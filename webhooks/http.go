package webhooks

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/problem"
)

// OwnerResolver tells who is calling: the merchant or channel an API key
// belongs to. It returns a *problem.Error (401) when the caller is unknown.
type OwnerResolver func(c echo.Context) (Owner, error)

// HTTP serves the webhook endpoints API for the owner the resolver names.
type HTTP struct {
	svc   *Service
	owner OwnerResolver
}

// NewHTTP returns the handlers; authentication is the resolver's business.
func NewHTTP(svc *Service, owner OwnerResolver) *HTTP {
	return &HTTP{svc: svc, owner: owner}
}

// Register mounts the routes on g, which is the /v1 group:
// /webhooks/endpoints… and /webhooks/events/:id/replay.
func (h *HTTP) Register(g *echo.Group) {
	g.POST("/webhooks/endpoints", h.create)
	g.GET("/webhooks/endpoints", h.list)
	g.GET("/webhooks/endpoints/:id", h.get)
	g.PATCH("/webhooks/endpoints/:id", h.update)
	g.DELETE("/webhooks/endpoints/:id", h.delete)
	g.GET("/webhooks/endpoints/:id/secret", h.secret)
	g.POST("/webhooks/endpoints/:id/rotate-secret", h.rotate)
	g.POST("/webhooks/endpoints/:id/test", h.test)
	g.GET("/webhooks/endpoints/:id/deliveries", h.deliveries)
	g.POST("/webhooks/endpoints/:id/replay", h.replayFailed)
	g.POST("/webhooks/endpoints/:id/send-waiting", h.sendWaiting)
	g.POST("/webhooks/events/:id/replay", h.replayEvent)
}

type createRequest struct {
	URL         string   `json:"url"`
	Description string   `json:"description"`
	EventTypes  []string `json:"event_types"`
}

type endpointWithSecret struct {
	Endpoint
	Secret string `json:"secret"`
}

func (h *HTTP) create(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	var req createRequest
	if _, err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	ep, secret, err := h.svc.CreateEndpoint(c.Request().Context(), owner, EndpointInput(req))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, endpointWithSecret{Endpoint: ep, Secret: secret.Secret})
}

func queryLimit(c echo.Context) (int, error) { return httpapi.QueryLimit(c, pageSizeMax) }

func (h *HTTP) list(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	eps, next, err := h.svc.ListEndpoints(c.Request().Context(), owner, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, httpapi.NewPage(eps, next))
}

func (h *HTTP) get(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	ep, err := h.svc.GetEndpoint(c.Request().Context(), owner, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ep)
}

// updateRequest tells "absent" from "null" for event_types: null means every type.
type updateRequest struct {
	URL         *string         `json:"url"`
	Description *string         `json:"description"`
	EventTypes  json.RawMessage `json:"event_types"`
	Enabled     *bool           `json:"enabled"`
}

func (h *HTTP) update(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	var req updateRequest
	if _, err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	u := EndpointUpdate{URL: req.URL, Description: req.Description, Enabled: req.Enabled}
	if req.EventTypes != nil {
		types := []string{}
		if string(req.EventTypes) != "null" {
			if err := json.Unmarshal(req.EventTypes, &types); err != nil {
				return problem.Field("event_types", "invalid_type", "must be a list of event types or null")
			}
		}
		u.EventTypes = &types
	}
	ep, err := h.svc.UpdateEndpoint(c.Request().Context(), owner, c.Param("id"), u)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ep)
}

func (h *HTTP) delete(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	if err := h.svc.DeleteEndpoint(c.Request().Context(), owner, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *HTTP) secret(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	s, err := h.svc.EndpointSecret(c.Request().Context(), owner, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

type rotateRequest struct {
	GracePeriodSeconds *int64 `json:"grace_period_seconds"`
}

func (h *HTTP) rotate(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	var req rotateRequest
	if body, err := httpapi.ReadBody(c); err != nil {
		return err
	} else if len(body) > 0 {
		if err := httpapi.DecodeJSON(body, &req); err != nil {
			return err
		}
	}
	var grace time.Duration
	if req.GracePeriodSeconds != nil {
		if *req.GracePeriodSeconds < 0 || *req.GracePeriodSeconds > int64(secretGraceMax.Seconds()) {
			return problem.Field("grace_period_seconds", "out_of_range", "must be between 0 and %d", int(secretGraceMax.Seconds()))
		}
		// Zero would mean "the default"; one nanosecond ends the old secret now.
		grace = max(time.Duration(*req.GracePeriodSeconds)*time.Second, time.Nanosecond)
	}
	s, err := h.svc.RotateSecret(c.Request().Context(), owner, c.Param("id"), grace)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

func (h *HTTP) test(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	eventID, err := h.svc.SendTest(c.Request().Context(), owner, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]string{"event_id": eventID})
}

func (h *HTTP) deliveries(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	ds, next, err := h.svc.ListDeliveries(c.Request().Context(), owner, c.Param("id"), c.QueryParam("status"), c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, httpapi.NewPage(ds, next))
}

type replayFailedRequest struct {
	Since time.Time `json:"since"`
}

func (h *HTTP) replayFailed(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	var req replayFailedRequest
	if _, err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if req.Since.IsZero() {
		return problem.Field("since", "required", "an RFC 3339 time, e.g. 2026-01-31T00:00:00Z")
	}
	n, err := h.svc.ReplayFailed(c.Request().Context(), owner, c.Param("id"), req.Since)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]int{"replayed": n})
}

type replayEventRequest struct {
	EndpointID string `json:"endpoint_id"`
}

func (h *HTTP) replayEvent(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	var req replayEventRequest
	if body, err := httpapi.ReadBody(c); err != nil {
		return err
	} else if len(body) > 0 {
		if err := httpapi.DecodeJSON(body, &req); err != nil {
			return err
		}
	}
	n, err := h.svc.ReplayEvent(c.Request().Context(), owner, c.Param("id"), req.EndpointID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]int{"replayed": n})
}

// sendWaiting is "send waiting now": the endpoint's deliveries waiting for a
// retry become due at once.
func (h *HTTP) sendWaiting(c echo.Context) error {
	owner, err := h.owner(c)
	if err != nil {
		return err
	}
	n, err := h.svc.SendWaiting(c.Request().Context(), owner, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]int{"brought_forward": n})
}
