package web

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/payments"
)

// How a messenger's proof of the shopper reaches the shopper pages
// (docs/messengers.md):
//
//   - Telegram opens a Mini App URL with the initData in the fragment
//     (#tgWebAppData=…), which no server sees. A page opened with
//     ?channel=<id> and no launch data is a tiny bootstrap whose one script
//     moves tgWebAppData from the fragment into the query; the checkout then
//     verifies it byte for byte. ?tgWebAppData= and ?launch= work directly.
//   - VK appends its signed vk_* parameters to the query.
//   - WeChat has no launch data: the page goes through the Official
//     Account's web authorization (WeChatPages).
//   - The generic context comes as ?launch= and names its channel.
//
// Every form and link then carries one launch envelope (payments.LaunchEnvelope).

// launchBootstrapScript is the bootstrap's only script; the page's CSP
// allows exactly this text by its hash.
const launchBootstrapScript = `(function () {
  var data = new URLSearchParams(location.hash.slice(1)).get("tgWebAppData");
  if (!data) { document.getElementById("nolaunch").hidden = false; document.getElementById("opening").hidden = true; return; }
  var next = new URL(location.href);
  next.hash = "";
  next.searchParams.set("tgWebAppData", data);
  location.replace(next.toString());
})();`

var launchBootstrapCSP = func() string {
	sum := sha256.Sum256([]byte(launchBootstrapScript))
	return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
}()

var messengerTemplates = template.Must(template.New("").Funcs(funcs).ParseFS(templateFS,
	"templates/launch.html", "templates/chooser.html", "templates/message.html", "templates/layout.html"))

// channelParamPattern keeps odd bytes out of redirects and lookups.
var channelParamPattern = regexp.MustCompile(`^chn_[a-z2-7]{1,40}$`)

// launchParam reads the shopper's launch data from the page's query: a
// generic context or envelope in launch=, Telegram's tgWebAppData=, or VK's
// vk_* parameters, and wraps a messenger's text for ?channel=.
func launchParam(c echo.Context) string {
	channel := c.QueryParam("channel")
	if !channelParamPattern.MatchString(channel) {
		channel = ""
	}
	if data := c.QueryParam("tgWebAppData"); data != "" {
		return payments.LaunchEnvelope(channel, data)
	}
	if c.QueryParam("vk_user_id") != "" && c.QueryParam("sign") != "" {
		vk := url.Values{}
		for key, values := range c.QueryParams() {
			if strings.HasPrefix(key, "vk_") || key == "sign" {
				vk[key] = values
			}
		}
		return payments.LaunchEnvelope(channel, vk.Encode())
	}
	return payments.LaunchEnvelope(channel, c.QueryParam("launch"))
}

// textForLaunch picks the page's wording (pageText) for a verified
// launch: Telegram and VK name the shopper's language; a generic context
// may carry it as language_code.
func textForLaunch(c echo.Context, launch payments.Launch) *shopperText {
	lang := launch.Language
	if lang == "" {
		lang = launch.Fields["language_code"]
	}
	return pageText(c, lang)
}

type launchPage struct {
	T       *shopperText
	M       messengerText
	Title   string
	Message string
	Script  template.JS
}

// renderLaunchBootstrap answers a page opened for a channel without launch
// data: WeChat channels go through web authorization, the others get the
// bootstrap that reads Telegram's fragment.
func (h *Shopper) renderLaunchBootstrap(c echo.Context, channelID string) error {
	t := pageText(c, "")
	ch, err := h.payments.Channel(c.Request().Context(), channelID)
	if err == nil && ch.Kind == "wechat" {
		target := "/wx/" + ch.ID + "/authorize?return=" + url.QueryEscape(c.Request().URL.Path)
		return c.Redirect(http.StatusFound, target)
	}
	page := launchPage{T: t, M: messengerTextFor(t), Title: "chatpay", Message: messengerTextFor(t).Opening, Script: template.JS(launchBootstrapScript)} //nolint:gosec // a constant
	return renderMessengerPage(c, launchBootstrapCSP, http.StatusOK, "launch.html", page)
}

// renderMessengerPage renders one of messengerTemplates with the shopper
// pages' headers and the given Content-Security-Policy.
func renderMessengerPage(c echo.Context, csp string, status int, name string, data any) error {
	header := c.Response().Header()
	header.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	header.Set("Cache-Control", "no-store")
	header.Set("Content-Security-Policy", csp)
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Referrer-Policy", "no-referrer")
	c.Response().WriteHeader(status)
	if err := messengerTemplates.ExecuteTemplate(c.Response(), name, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return nil
}

// telegramEntry is a Telegram channel's Mini App URL (/tg/<channel>, set in
// @BotFather). Opened from a t.me/<bot>/<app>?startapp=<token> link, it
// verifies the initData (in the query, or posted by a page as the form field
// tgWebAppData) and opens the checkout of the code in start_param.
func (h *Shopper) telegramEntry(c echo.Context) error {
	channelID := c.Param("channel")
	if !channelParamPattern.MatchString(channelID) {
		return h.renderProblem(c, payments.ErrUnknownChannel())
	}
	// The query or, from a page that posts it, the form.
	data := c.FormValue("tgWebAppData")
	if data == "" {
		data = c.FormValue("launch")
	}
	if data == "" {
		return h.renderLaunchBootstrap(c, channelID)
	}
	envelope := payments.LaunchEnvelope(channelID, data)
	_, launch, err := h.payments.ShopperFromLaunch(c.Request().Context(), channelID, envelope)
	if err != nil {
		return h.renderProblem(c, err)
	}
	// start_param is signed; tgWebAppStartParam repeats it in the URL for
	// clients that launch without it in initData.
	token := launch.StartParam
	if token == "" {
		token = c.QueryParam("tgWebAppStartParam")
	}
	if !qrTokenPattern.MatchString(token) {
		t := textForLaunch(c, launch)
		return h.render(c, http.StatusOK, "message.html", messagePage{T: t, Title: t.LaunchTitle, Message: messengerTextFor(t).ScanHint, Code: "no_start_param"})
	}
	return c.Redirect(http.StatusSeeOther, "/q/"+token+"?launch="+url.QueryEscape(envelope))
}

// qrTokenPattern is the shape of a QR token (package qr).
var qrTokenPattern = regexp.MustCompile(`^[a-z2-7]{26}$`)
