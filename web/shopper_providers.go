package web

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
)

// The checkout page of a merchant with a real payment provider (Stripe,
// WeChat Pay) has no card field: the shopper pays on the provider's page
// (Stripe Checkout), in WeChat's own payment sheet (JSAPI) or by scanning
// WeChat Pay's QR code (Native), and chatpay only ever holds the provider's
// ids. The sandbox's card form stays for merchants without one.

var providerTemplates = template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/topup_provider.html"))

// providerWords are the provider pages' words, by language.
type providerWords struct {
	PayWith  string // "Pay %s with %s"
	Note     string
	Waiting  string
	ScanHint string
	Done     string
	Back     string
}

var providerText = map[string]providerWords{
	"en": {PayWith: "Pay %s with %s", Note: "You pay on %s's own page; chatpay never sees your card.",
		Waiting: "Waiting for %s to confirm the payment…", ScanHint: "Scan this code with WeChat to pay.",
		Done: "Paid. Your wallet has been topped up.", Back: "Back to the item"},
	"zh": {PayWith: "用%[2]s支付 %[1]s", Note: "在%s的页面付款，chatpay 不会接触您的银行卡。",
		Waiting: "正在等待%s确认付款…", ScanHint: "请用微信扫码支付。",
		Done: "付款成功，钱包已充值。", Back: "返回商品"},
	"ru": {PayWith: "Оплатить %s через %s", Note: "Вы платите на странице %s; chatpay не видит вашу карту.",
		Waiting: "Ждём, пока %s подтвердит платёж…", ScanHint: "Отсканируйте этот код в WeChat, чтобы заплатить.",
		Done: "Оплачено. Кошелёк пополнен.", Back: "Вернуться к товару"},
}

var providerNames = map[string]string{"stripe": "Stripe", "wechatpay": "WeChat Pay"}

// hostedForm fills the checkout page's top-up form for a merchant with a
// real provider: which method, and the button's words.
func (h *Shopper) hostedForm(c echo.Context, view *checkoutView) error {
	provider, ok, err := h.payments.HasHostedProvider(c.Request().Context(), view.Merchant.ID)
	if err != nil || !ok {
		return err
	}
	words := providerText[view.T.Lang]
	name := providerNames[provider]
	view.Provider, view.ProviderMethod = provider, payments.MethodCheckout
	if provider == "wechatpay" {
		view.ProviderMethod = payments.MethodNative
		if inWeChat(c.Request()) {
			view.ProviderMethod = payments.MethodJSAPI
		}
	}
	view.ProviderButton = fmt.Sprintf(words.PayWith, view.ShortBy, name)
	view.ProviderNote = fmt.Sprintf(words.Note, name)
	return nil
}

// inWeChat tells WeChat's own browser, where the JSAPI sheet exists.
func inWeChat(r *http.Request) bool { return strings.Contains(r.UserAgent(), "MicroMessenger") }

// hostedTopUp starts the provider's payment for what the wallet lacks:
// Stripe's page by redirect, WeChat Pay's sheet or QR on our own page. The
// wallet is credited when the provider's signed notification arrives.
func (h *Shopper) hostedTopUp(c echo.Context, launch string, shopper payments.Shopper, amount money.Amount) error {
	ctx := c.Request().Context()
	merchantID, err := h.merchantOfCode(c)
	if err != nil {
		return h.renderProblem(c, err)
	}
	back := baseURL(c) + "/q/" + url.PathEscape(c.Param("token")) + "?launch=" + url.QueryEscape(launch)
	top, err := h.payments.StartHostedTopUp(ctx, shopper, payments.HostedStart{
		MerchantID: merchantID, Amount: amount, Method: c.FormValue("method"),
		ReturnURL: back, Key: c.FormValue("idempotency_key"),
	})
	if err != nil {
		return h.renderProblem(c, err)
	}
	return h.showHostedTopUp(c, top, back)
}

// merchantOfCode is the merchant behind the scanned code: the merchant of a
// top-up is never taken from a form field.
func (h *Shopper) merchantOfCode(c echo.Context) (string, error) {
	ctx := c.Request().Context()
	code, err := h.payments.ScannedCode(ctx, c.Param("token"))
	if err != nil {
		return "", err
	}
	// The wording does not matter here: only the merchant is read.
	view := checkoutView{T: &shopperEnglish}
	if code.TargetType == qr.TargetCheckout {
		err = h.tillView(ctx, code, &view)
	} else {
		err = h.itemView(ctx, code, &view)
	}
	return view.Merchant.ID, err
}

// refuseCardForHosted refuses the sandbox's card form for a merchant that
// takes real money through its provider: a card number typed into chatpay
// would put chatpay in card-data scope. nil lets the card through.
func (h *Shopper) refuseCardForHosted(c echo.Context) error {
	merchantID, err := h.merchantOfCode(c)
	if err != nil {
		return err
	}
	if _, hosted, err := h.payments.HasHostedProvider(c.Request().Context(), merchantID); err != nil || hosted {
		if err != nil {
			return err
		}
		return problem.New(problem.KindInvalid, "card_not_accepted",
			"this merchant takes payments on its payment provider's page; chatpay does not take card numbers")
	}
	return nil
}

func (h *Shopper) showHostedTopUp(c echo.Context, top payments.HostedTopUp, back string) error {
	page := top.Page()
	if top.Status == payments.TopUpPending && page.RedirectURL != "" {
		return c.Redirect(http.StatusSeeOther, page.RedirectURL)
	}
	t := pageText(c, "")
	words := providerText[t.Lang]
	view := hostedView{T: t, Words: words, Back: back, TopUpID: top.ID, Status: top.Status,
		Waiting: fmt.Sprintf(words.Waiting, providerNames[top.Provider]), JSAPI: page.JSAPI, Nonce: scriptNonce()}
	if page.QRContent != "" {
		svg, err := qr.SVG(page.QRContent, 280)
		if err != nil {
			return h.renderProblem(c, err)
		}
		view.QR = inlineSVG(svg)
	}
	header := c.Response().Header()
	header.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	header.Set("Cache-Control", "no-store")
	// The JSAPI page runs one script of ours, named by its nonce; the
	// WeixinJSBridge object it calls is WeChat's own, not loaded from
	// anywhere.
	header.Set("Content-Security-Policy", shopperCSPBase+"; script-src 'nonce-"+view.Nonce+"'")
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Referrer-Policy", "no-referrer")
	c.Response().WriteHeader(http.StatusOK)
	if err := providerTemplates.ExecuteTemplate(c.Response(), "topup_provider.html", view); err != nil {
		return fmt.Errorf("render provider top-up: %w", err)
	}
	return nil
}

type hostedView struct {
	T       *shopperText
	Words   providerWords
	Back    string
	TopUpID string
	Status  string
	Waiting string
	QR      template.HTML
	JSAPI   map[string]string
	Nonce   string
}

func scriptNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func baseURL(c echo.Context) string {
	return c.Scheme() + "://" + c.Request().Host
}
