package catalog

import (
	"crypto/sha256"
	"strings"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"
)

// passwordHashCost is bcrypt's work factor: 2^12 rounds, about a quarter of a
// second on one core, slow enough to blunt guessing and fast enough for a
// sign-in.
const passwordHashCost = 12

// apiKeyPrefix starts every secret key, so that leaked keys are easy to
// recognise by secret scanners and by people.
const apiKeyPrefix = "sk"

// apiKeyHintLength is how much of a key is kept in clear to tell keys apart.
const apiKeyHintLength = 7

// hashKey is the stored form of a secret key. A fast hash is enough: the key
// has 192 random bits, so there is nothing to guess, unlike a password.
func hashKey(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

func hashPassword(password string, cost int) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", err
	}
	return string(hash), nil
}

type contextKey string

const merchantContextKey contextKey = "catalog.merchant"

// RequireMerchantKey is echo middleware for /v1 routes called by merchant
// systems: it accepts "Authorization: Bearer sk_..." of an unrevoked key of
// an active merchant and puts the merchant in the context (see
// MerchantFromContext). Otherwise it answers 401 unauthorized, or 403
// merchant_suspended.
func RequireMerchantKey(s *Service) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			scheme, secret, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				return ErrUnauthorized
			}
			merchant, _, err := s.AuthenticateKey(c.Request().Context(), strings.TrimSpace(secret))
			if err != nil {
				return err
			}
			c.Set(string(merchantContextKey), merchant)
			return next(c)
		}
	}
}

// MerchantFromContext returns the merchant RequireMerchantKey authenticated;
// ok is false on routes without that middleware.
func MerchantFromContext(c echo.Context) (merchant Merchant, ok bool) {
	merchant, ok = c.Get(string(merchantContextKey)).(Merchant)
	return merchant, ok
}
