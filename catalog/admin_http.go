package catalog

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/httpapi"
)

// AdminHTTP serves the operator's merchant routes. Merchants sign up in the
// dashboard themselves; what only the operator may do is look any merchant
// up and suspend or reinstate it (a suspended merchant's keys stop working
// and its items are no longer sold).
type AdminHTTP struct {
	service *Service
}

// NewAdminHTTP returns the operator's merchant routes.
func NewAdminHTTP(s *Service) *AdminHTTP { return &AdminHTTP{service: s} }

// Register mounts the routes on g, which must be behind
// httpapi.RequireOperator.
func (h *AdminHTTP) Register(g *echo.Group) {
	g.GET("/merchants/:id", h.getMerchant)
	g.PUT("/merchants/:id/status", h.setStatus)
}

func (h *AdminHTTP) getMerchant(c echo.Context) error {
	m, err := h.service.Merchant(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMerchantJSON(m))
}

// setStatus is a PUT of the status itself, so repeating it is harmless.
func (h *AdminHTTP) setStatus(c echo.Context) error {
	var in struct {
		Status string `json:"status"`
	}
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return err
	}
	m, err := h.service.SetMerchantStatus(c.Request().Context(), c.Param("id"), in.Status)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMerchantJSON(m))
}
