package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/problem"
)

// signupForm is the sign-up form as posted, shown back on errors.
type signupForm struct {
	Name     string
	TimeZone string
	Currency string
	Email    string
	Zones    []string
}

// commonZones are offered in the sign-up form; any IANA zone may be typed.
var commonZones = []string{
	"Asia/Shanghai", "Asia/Hong_Kong", "Asia/Singapore", "Asia/Tokyo", "Asia/Kolkata", "Asia/Dubai",
	"Europe/London", "Europe/Berlin", "Europe/Moscow", "America/New_York", "America/Los_Angeles",
	"America/Sao_Paulo", "Australia/Sydney", "Africa/Lagos", "UTC",
}

func (d *Dashboard) signupPage(c echo.Context) error {
	form := signupForm{TimeZone: "Asia/Shanghai", Currency: "CNY", Zones: commonZones}
	return d.renderPage(c, http.StatusOK, "dash_signup.html", page{Title: "Create your merchant account", CSRF: csrfOf(c), Data: form})
}

// signup creates the merchant and its first staff user, then signs them in.
// The two are created one after the other by catalog; if the staff user is
// refused (e-mail taken), the merchant just made is suspended so that no
// account without an owner stays usable.
func (d *Dashboard) signup(c echo.Context) error {
	ctx := c.Request().Context()
	form := signupForm{
		Name: strings.TrimSpace(c.FormValue("name")), TimeZone: strings.TrimSpace(c.FormValue("time_zone")),
		Currency: strings.ToUpper(strings.TrimSpace(c.FormValue("currency"))), Email: strings.TrimSpace(c.FormValue("email")),
		Zones: commonZones,
	}
	password := c.FormValue("password")
	show := func(err error) error {
		p, ok := formProblem(err)
		if !ok {
			return d.renderError(c, err)
		}
		view := page{Title: "Create your merchant account", CSRF: csrfOf(c), Data: form, Error: p.Detail, Fields: p.Fields}
		return d.renderPage(c, p.Status(), "dash_signup.html", view)
	}
	if len(password) < catalog.PasswordLengthMin || len(password) > catalog.PasswordLengthMax {
		return show(problem.Field("password", "invalid_password", "a password is %d to %d bytes long", catalog.PasswordLengthMin, catalog.PasswordLengthMax))
	}
	merchant, err := d.deps.Catalog.CreateMerchant(ctx, catalog.MerchantDraft{Name: form.Name, TimeZone: form.TimeZone, DefaultCurrency: form.Currency})
	if err != nil {
		return show(err)
	}
	staff, err := d.deps.Catalog.CreateStaff(ctx, merchant.ID, form.Email, password)
	if err != nil {
		if _, suspendErr := d.deps.Catalog.SetMerchantStatus(ctx, merchant.ID, catalog.MerchantSuspended); suspendErr != nil {
			return d.renderError(c, errors.Join(err, suspendErr))
		}
		return show(err)
	}
	return d.startSession(c, staff, "Welcome! Your merchant account is ready.")
}

type loginForm struct {
	Email string
}

func (d *Dashboard) loginPage(c echo.Context) error {
	return d.renderPage(c, http.StatusOK, "dash_login.html", page{Title: "Sign in", CSRF: csrfOf(c), Flash: c.QueryParam("flash"), Data: loginForm{}})
}

// login checks the password unless the (e-mail, address) pair is locked
// out; failures are counted before the answer, so parallel guesses count too.
func (d *Dashboard) login(c echo.Context) error {
	ctx := c.Request().Context()
	email, password := strings.TrimSpace(c.FormValue("email")), c.FormValue("password")
	address := clientAddress(c)
	show := func(err error) error {
		p, ok := problem.As(err)
		if !ok || p.Status() >= 500 {
			return d.renderError(c, err)
		}
		if retry, ok := p.Extensions["retry_after_seconds"].(int); ok {
			c.Response().Header().Set("Retry-After", itoa(retry))
		}
		view := page{Title: "Sign in", CSRF: csrfOf(c), Data: loginForm{Email: email}, Error: p.Detail}
		return d.renderPage(c, p.Status(), "dash_login.html", view)
	}
	if err := d.sessions.LoginAllowed(ctx, email, address); err != nil {
		return show(err)
	}
	staff, err := d.deps.Catalog.Authenticate(ctx, email, password)
	if errors.Is(err, catalog.ErrBadCredentials) {
		if err := d.sessions.LoginFailed(ctx, email, address); err != nil {
			return d.renderError(c, err)
		}
		return show(err)
	}
	if err != nil {
		return show(err)
	}
	if err := d.sessions.LoginSucceeded(ctx, email, address); err != nil {
		return d.renderError(c, err)
	}
	return d.startSession(c, staff, "")
}

// startSession issues a new session (never reusing one the browser brought,
// so a planted cookie cannot become a signed-in one) and opens the dashboard.
func (d *Dashboard) startSession(c echo.Context, staff catalog.Staff, flash string) error {
	token, err := d.sessions.Create(c.Request().Context(), staff)
	if err != nil {
		return d.renderError(c, err)
	}
	setCookie(c, sessionCookieName, token, sessionLifetimeMax)
	return redirectFlash(c, "/dashboard", flash)
}

func (d *Dashboard) logout(c echo.Context) error {
	if err := d.sessions.Delete(c.Request().Context(), cookieValue(c, sessionCookieName)); err != nil {
		return d.renderError(c, err)
	}
	setCookie(c, sessionCookieName, "", -1)
	return redirectFlash(c, "/dashboard/login", "You are signed out.")
}
