package payments

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/problem"
)

// AdminHTTP serves the operator's channel routes: registering a messenger
// backend and replacing its API key when it leaks. Creation takes no
// Idempotency-Key on purpose: a replay would have to return the secrets,
// which chatpay keeps only as hashes.
type AdminHTTP struct {
	service *Service
}

// NewAdminHTTP returns the operator's channel routes.
func NewAdminHTTP(s *Service) *AdminHTTP { return &AdminHTTP{service: s} }

// Register mounts the routes on g, which must be behind
// httpapi.RequireOperator.
func (h *AdminHTTP) Register(g *echo.Group) {
	g.POST("/channels", h.createChannel)
	g.GET("/channels/:id", h.getChannel)
	g.POST("/channels/:id/rotate-key", h.rotateKey)
}

type channelJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Ed25519   bool      `json:"ed25519_launch_key"`
	CreatedAt time.Time `json:"created_at"`
}

func toChannelJSON(ch Channel) channelJSON {
	return channelJSON{ID: ch.ID, Name: ch.Name, Kind: ch.Kind, Ed25519: len(ch.LaunchPublicKey) == ed25519.PublicKeySize,
		CreatedAt: ch.CreatedAt}
}

func (h *AdminHTTP) createChannel(c echo.Context) error {
	var in struct {
		Name            string `json:"name"`
		Kind            string `json:"kind"`
		LaunchPublicKey string `json:"ed25519_launch_public_key"`
		messengerJSON
	}
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return err
	}
	var key ed25519.PublicKey
	if in.LaunchPublicKey != "" {
		raw, err := base64.StdEncoding.DecodeString(in.LaunchPublicKey)
		if err != nil {
			return problem.Field("ed25519_launch_public_key", "invalid_key", "the key must be base64")
		}
		key = raw
	}
	messenger, err := in.messengerJSON.input()
	if err != nil {
		return err
	}
	created, settings, err := h.service.CreateMessengerChannel(c.Request().Context(),
		NewChannel{Name: in.Name, Kind: in.Kind, LaunchPublicKey: key}, messenger)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{
		"channel": toChannelJSON(created.Channel), "api_key": created.APIKey, "launch_secret": created.LaunchSecret,
		"messenger": settings,
	})
}

func (h *AdminHTTP) getChannel(c echo.Context) error {
	ch, err := h.service.Channel(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toChannelJSON(ch))
}

func (h *AdminHTTP) rotateKey(c echo.Context) error {
	ch, apiKey, err := h.service.RotateChannelKey(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"channel": toChannelJSON(ch), "api_key": apiKey})
}
