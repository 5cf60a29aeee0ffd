package web

import (
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/payments"
)

// WeChatPages are the two hops of a WeChat Official Account's web
// authorization (payments/wechat_oauth.go): /wx/<channel>/authorize sends the
// shopper to WeChat, /wx/<channel>/callback comes back with the code and
// opens the checkout with a launch context chatpay signed for the channel.
type WeChatPages struct {
	shopper *Shopper
	oauth   *payments.WeChatOAuth
}

// weChatCookie binds a sign-in's state to the browser that started it.
const (
	weChatCookie    = "chatpay_wx"
	weChatCookieAge = 15 * time.Minute
)

// NewWeChatPages returns the sign-in routes; shopper renders their refusals.
func NewWeChatPages(shopper *Shopper, oauth *payments.WeChatOAuth) *WeChatPages {
	return &WeChatPages{shopper: shopper, oauth: oauth}
}

// Register mounts /wx/:channel/authorize and /wx/:channel/callback.
func (p *WeChatPages) Register(g *echo.Group) {
	g.GET("/wx/:channel/authorize", p.authorize)
	g.GET("/wx/:channel/callback", p.callback)
}

func (p *WeChatPages) authorize(c echo.Context) error {
	secret := ""
	if cookie, err := c.Cookie(weChatCookie); err == nil && len(cookie.Value) <= 64 {
		secret = cookie.Value
	}
	if secret == "" {
		secret = payments.WeChatBrowserSecret()
	}
	target, err := p.oauth.Start(c.Request().Context(), c.Param("channel"), c.QueryParam("return"), secret)
	if err != nil {
		return p.shopper.renderProblem(c, err)
	}
	c.SetCookie(&http.Cookie{Name: weChatCookie, Value: secret, Path: "/wx/", MaxAge: int(weChatCookieAge / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Scheme() == "https"})
	return c.Redirect(http.StatusFound, target)
}

func (p *WeChatPages) callback(c echo.Context) error {
	secret := ""
	if cookie, err := c.Cookie(weChatCookie); err == nil {
		secret = cookie.Value
	}
	back, launch, err := p.oauth.Finish(c.Request().Context(), c.Param("channel"), c.QueryParam("state"), c.QueryParam("code"), secret)
	if err != nil {
		return p.shopper.renderProblem(c, err)
	}
	return c.Redirect(http.StatusSeeOther, back+"?launch="+url.QueryEscape(launch))
}
