package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/problem"
)

// OperatorTokenLengthMin is the shortest operator token serve accepts: the
// token guards every merchant and channel, so it must not be guessable.
const OperatorTokenLengthMin = 32

// RequireOperator is echo middleware for the operator's admin routes: it
// accepts "Authorization: Bearer <token>" with the configured token and
// answers 401 unauthorized otherwise. Both sides are hashed before the
// constant-time comparison so that neither the token's content nor its
// length leaks through timing.
func RequireOperator(token string) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			scheme, given, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
			got := sha256.Sum256([]byte(strings.TrimSpace(given)))
			if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				return problem.New(problem.KindUnauthorized, "unauthorized", "the operator token is required: Authorization: Bearer <token>")
			}
			return next(c)
		}
	}
}
