package web

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/qr"
)

// The chooser is what a multi-messenger code (the poster default) opens:
// one printed code, a small page "Open in Telegram / WhatsApp / WeChat /
// continue in the browser". The shopper's last choice is remembered in a
// cookie and offered first next time; the scan itself is counted when the
// chosen messenger opens the checkout, under that messenger.
const (
	chooserCookie    = "chatpay_messenger"
	chooserCookieAge = 180 * 24 * time.Hour
)

// messengerNames are the labels of the chooser, in every language.
var messengerNames = map[string]string{
	qr.OpensTelegram: "Telegram", qr.OpensWhatsApp: "WhatsApp", qr.OpensWeChat: "WeChat 微信", qr.OpensWeb: "",
}

type chooserOption struct {
	Messenger string
	Label     string
	Href      string
}

type chooserView struct {
	T        *shopperText
	M        messengerText
	Title    string
	Item     catalog.Item
	Merchant catalog.Merchant
	Options  []chooserOption
	LastText string
}

func (h *Shopper) chooserPage(c echo.Context) error {
	ctx := c.Request().Context()
	token := c.Param("token")
	code, err := h.payments.ScannedCode(ctx, token)
	if err != nil {
		return h.renderProblem(c, err)
	}
	item, merchant, err := h.payments.OfferedItem(ctx, code.TargetID)
	if err != nil {
		return h.renderProblem(c, err)
	}
	channels, err := h.payments.ChooserChannels(ctx)
	if err != nil {
		return h.renderProblem(c, err)
	}
	t := pageText(c, "")
	m := messengerTextFor(t)
	view := chooserView{T: t, M: m, Title: m.ChooserTitle, Item: item, Merchant: merchant}
	last := ""
	if cookie, err := c.Cookie(chooserCookie); err == nil {
		last = cookie.Value
	}
	for _, link := range channels {
		option := chooserOption{Messenger: link.Kind, Label: fmt.Sprintf(m.OpenIn, messengerNames[link.Kind]),
			Href: "/o/" + token + "/go?m=" + url.QueryEscape(link.Kind)}
		view.Options = append(view.Options, option)
	}
	view.Options = append(view.Options, chooserOption{Messenger: qr.OpensWeb, Label: m.ContinueBrowser, Href: "/o/" + token + "/go?m=web"})
	for i, o := range view.Options {
		if o.Messenger == last {
			// The remembered choice goes first.
			view.Options[0], view.Options[i] = view.Options[i], view.Options[0]
			if name := messengerNames[last]; name != "" {
				view.LastText = fmt.Sprintf(m.LastChoice, name)
			}
			break
		}
	}
	return renderMessengerPage(c, shopperCSP, http.StatusOK, "chooser.html", view)
}

// chooseMessenger remembers the choice and sends the shopper on: to the
// messenger's deep link, to WeChat's sign-in, or to the checkout page.
func (h *Shopper) chooseMessenger(c echo.Context) error {
	ctx := c.Request().Context()
	token, choice := c.Param("token"), c.QueryParam("m")
	if _, err := h.payments.ScannedCode(ctx, token); err != nil {
		return h.renderProblem(c, err)
	}
	target := "/q/" + token
	if choice != qr.OpensWeb {
		channels, err := h.payments.ChooserChannels(ctx)
		if err != nil {
			return h.renderProblem(c, err)
		}
		target = ""
		for _, link := range channels {
			if link.Kind != choice {
				continue
			}
			if choice == qr.OpensWeChat {
				target = "/q/" + token + "?channel=" + url.QueryEscape(link.ChannelID)
			} else if target, err = qr.MessengerURL(choice, link, token); err != nil {
				return h.renderProblem(c, err)
			}
		}
		if target == "" {
			return c.Redirect(http.StatusSeeOther, "/o/"+token)
		}
	}
	c.SetCookie(&http.Cookie{Name: chooserCookie, Value: choice, Path: "/o/", MaxAge: int(chooserCookieAge / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Scheme() == "https"})
	return c.Redirect(http.StatusSeeOther, target)
}
