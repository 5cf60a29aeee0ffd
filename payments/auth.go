package payments

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/problem"
)

// How a channel API call is authenticated: the echo side of channels.go.

// channelContextKey holds the authenticated channel in an echo context.
const channelContextKey = "payments.channel"

// RequireChannelKey authenticates `Authorization: Bearer ck_…`.
func RequireChannelKey(s *Service) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
			if !ok || !strings.HasPrefix(key, "ck_") {
				return problem.New(problem.KindUnauthorized, "missing_api_key", "send the channel API key as Authorization: Bearer ck_…")
			}
			ch, err := s.ChannelByAPIKey(c.Request().Context(), key)
			if err != nil {
				return err
			}
			c.Set(channelContextKey, ch)
			return next(c)
		}
	}
}

// ChannelFromContext returns the channel RequireChannelKey authenticated.
func ChannelFromContext(c echo.Context) (Channel, bool) {
	ch, ok := c.Get(channelContextKey).(Channel)
	return ch, ok
}
