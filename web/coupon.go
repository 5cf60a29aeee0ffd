package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
)

// The coupon pages (docs/coupons.md): a coupon link from the chat
// (/c/<token>, payments' coupon credential) opens the coupon with its QR
// drawn on the phone every time step by web/static/coupon.js, and "My
// coupons" (/c/<token>/wallet) lists the shopper's other coupons of the same
// shop. They need no messenger launch context, and a service worker
// (web/static/coupon-sw.js) keeps them for use with no connection.

// couponCSP is shopperCSP (same-origin scripts only: no inline script, no
// eval) with the service worker these pages register.
const couponCSP = shopperCSP + "; worker-src 'self'"

// couponWorkerScope is what the service worker controls: the coupon links.
const couponWorkerScope = payments.CouponLinkPath

var couponFuncs = template.FuncMap{"static": staticURL}

// registerCoupons mounts the coupon links, My coupons and their files.
func (h *Shopper) registerCoupons(g *echo.Group) {
	registerStatic(g)
	g.GET(payments.CouponLinkPath+":token", h.couponLinkPage)
	g.GET(payments.CouponLinkPath+":token/wallet", h.walletPage)
	g.GET(payments.CouponLinkPath+":token/coupons/:id", h.walletCouponPage)
}

// couponCard is one coupon as the receipt, the coupon page and My coupons
// draw it.
type couponCard struct {
	C        *couponText
	Coupon   payments.Coupon
	Showable bool
	// What coupon.js needs to draw the rotating QR on the phone.
	Secret      string // base64 of the coupon's secret
	RenderedAt  int64  // the server's (the merchant's) time, in ms
	StepSeconds int
	Digits      int
	Prefix      string
	SizePx      int
	// QRSVG is the QR of the current step, drawn by the server: the page
	// shows a code even before (or without) the script.
	QRSVG     template.HTML
	TypedCode bool // the merchant accepts the printed code, shown on tap
	UsesLeft  int
	Status    string // the plain words for a coupon that cannot be shown
	Link      string // the coupon's own page (receipt cards)
}

func (h *Shopper) couponCard(ctx context.Context, ct *couponText, lang string, cp payments.Coupon, merchant catalog.Merchant, now time.Time) (couponCard, error) {
	issued := cp.IssuedAt
	var err error
	if cp.RulesText, err = h.rulesText(ctx, merchant.ID, cp.Location(), cp.Rules, lang, &issued); err != nil {
		return couponCard{}, err
	}
	card := couponCard{C: ct, Coupon: cp, Showable: cp.Showable(now), UsesLeft: cp.UsesLeft}
	if !card.Showable {
		card.Status = couponStatusText(ct, cp)
		return card, nil
	}
	svg, err := qr.SVG(payments.RedemptionQRContent(cp, now), couponQRSizePx)
	if err != nil {
		return card, err
	}
	card.QRSVG = inlineSVG(svg)
	card.Secret = base64.StdEncoding.EncodeToString(cp.Secret)
	card.RenderedAt = now.UnixMilli()
	card.StepSeconds = int(payments.RedemptionTokenStep / time.Second)
	card.Digits = payments.RedemptionTokenDigits
	card.Prefix = payments.RedemptionQRPrefix
	card.SizePx = couponQRSizePx
	card.TypedCode = merchant.AllowTypedCodes
	return card, nil
}

// couponStatusText words why a coupon shows no code: used, refunded, or
// (status expired, or past its end before the expiry job ran) expired.
func couponStatusText(ct *couponText, cp payments.Coupon) string {
	switch cp.Status {
	case payments.CouponRedeemed:
		return ct.StatusUsed
	case payments.CouponRefunded:
		return ct.StatusRefunded
	}
	return ct.StatusExpired
}

type couponPageView struct {
	T         *shopperText
	C         *couponText
	Merchant  catalog.Merchant
	Card      couponCard
	WalletURL string // "" once the link's own coupon cannot be shown
	Worker    string
	Scope     string
}

// couponLinkPage opens the coupon of a link from the chat or the receipt.
func (h *Shopper) couponLinkPage(c echo.Context) error {
	token := c.Param("token")
	cred, cp, err := h.payments.CouponByLink(c.Request().Context(), token)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	return h.showCoupon(c, token, cred, cp)
}

// walletCouponPage opens another coupon of My coupons, through the link that
// opened the list.
func (h *Shopper) walletCouponPage(c echo.Context) error {
	ctx := c.Request().Context()
	token := c.Param("token")
	cred, own, err := h.payments.CouponByLink(ctx, token)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	now, err := h.payments.NowFor(ctx, cred.MerchantID)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	if !own.Showable(now) {
		// The link's own coupon is over: it no longer opens the others.
		return h.renderCouponProblem(c, problem.New(problem.KindNotFound, payments.CodeCouponLinkClosed, "link closed"))
	}
	cp, err := h.payments.CredentialCoupon(ctx, cred, c.Param("id"))
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	return h.showCoupon(c, token, cred, cp)
}

func (h *Shopper) showCoupon(c echo.Context, token string, cred payments.CouponCredential, cp payments.Coupon) error {
	ctx := c.Request().Context()
	t := textForLaunch(c, payments.Launch{})
	ct := couponTextFor(t)
	merchant, err := h.catalog.Merchant(ctx, cp.MerchantID)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	now, err := h.payments.NowFor(ctx, cp.MerchantID)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	card, err := h.couponCard(ctx, ct, t.Lang, cp, merchant, now)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	view := couponPageView{T: t, C: ct, Merchant: merchant, Card: card, Worker: couponWorkerPath, Scope: couponWorkerScope}
	if cred.CouponID != cp.ID || card.Showable {
		view.WalletURL = payments.CouponLinkPath + token + "/wallet"
	}
	return h.renderCoupon(c, http.StatusOK, "coupon.html", view)
}

type walletView struct {
	T        *shopperText
	C        *couponText
	Merchant catalog.Merchant
	Intro    string
	Entries  []walletEntry
	Worker   string
	Scope    string
}

type walletEntry struct {
	Title string
	Rules string
	Price money.Amount
	URL   string
}

// walletPage is My coupons: the shopper's coupons of the link's shop that
// can still be used, each one tap from its QR.
func (h *Shopper) walletPage(c echo.Context) error {
	ctx := c.Request().Context()
	token := c.Param("token")
	cred, _, err := h.payments.CouponByLink(ctx, token)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	now, err := h.payments.NowFor(ctx, cred.MerchantID)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	coupons, err := h.payments.CredentialWallet(ctx, cred, now)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	merchant, err := h.catalog.Merchant(ctx, cred.MerchantID)
	if err != nil {
		return h.renderCouponProblem(c, err)
	}
	t := textForLaunch(c, payments.Launch{})
	ct := couponTextFor(t)
	view := walletView{T: t, C: ct, Merchant: merchant, Intro: fmt.Sprintf(ct.MyCouponsIntro, merchant.Name),
		Worker: couponWorkerPath, Scope: couponWorkerScope}
	for _, cp := range coupons {
		card, err := h.couponCard(ctx, ct, t.Lang, cp, merchant, now)
		if err != nil {
			return h.renderCouponProblem(c, err)
		}
		currency, err := money.ParseCurrency(cp.Currency)
		if err != nil {
			return h.renderCouponProblem(c, err)
		}
		view.Entries = append(view.Entries, walletEntry{Title: cp.Title, Rules: card.Coupon.RulesText,
			Price: money.New(cp.ValueMinor, currency), URL: payments.CouponLinkPath + token + "/coupons/" + cp.ID})
	}
	return h.renderCoupon(c, http.StatusOK, "wallet.html", view)
}

// renderCoupon renders a page that runs the coupon scripts. The address
// carries the link's token: no referrer may take it elsewhere, and no
// search engine may keep it.
func (h *Shopper) renderCoupon(c echo.Context, status int, name string, data any) error {
	header := c.Response().Header()
	header.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	header.Set("Cache-Control", "private, no-cache")
	header.Set("Content-Security-Policy", couponCSP)
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Referrer-Policy", "no-referrer")
	header.Set("X-Robots-Tag", "noindex")
	c.Response().WriteHeader(status)
	if err := h.templates.ExecuteTemplate(c.Response(), name, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return nil
}

// renderCouponProblem words what went wrong with a coupon link for the
// shopper; other failures are the shopper pages' own.
func (h *Shopper) renderCouponProblem(c echo.Context, err error) error {
	p, ok := problem.As(err)
	if !ok {
		return h.renderProblem(c, err)
	}
	t := textForLaunch(c, payments.Launch{})
	ct := couponTextFor(t)
	switch p.Code {
	case payments.CodeCouponLinkClosed:
		// The link's own page says what became of its coupon.
		return c.Redirect(http.StatusSeeOther, payments.CouponLinkPath+c.Param("token"))
	case payments.CodeCouponLinkNotFound:
		return h.render(c, http.StatusNotFound, "message.html", messagePage{T: t, Title: ct.LinkNotFoundTitle,
			Message: ct.LinkNotFoundMsg, Hint: ct.LinkNotFoundHint, Code: p.Code})
	case payments.CodeCouponNotFound:
		return h.render(c, http.StatusNotFound, "message.html", messagePage{T: t, Title: ct.CouponGoneTitle,
			Message: ct.CouponGoneMsg, Hint: ct.LinkNotFoundHint, Code: p.Code})
	}
	return h.renderProblem(c, err)
}

type receiptView struct {
	T        *shopperText
	C        *couponText
	Order    payments.Order
	Total    money.Amount
	Merchant catalog.Merchant
	Cards    []couponCard
	Wallet   money.Amount
	Lines    []lineView
}

type lineView struct {
	payments.OrderLine
	Price money.Amount
}

// receiptPage is the order's receipt for the shopper the messenger proves.
// Its coupons rotate on the phone like the coupon page's, with no reload,
// and each links to its coupon page: a fresh link of its own, which keeps
// working once the launch context has expired and opens offline.
func (h *Shopper) receiptPage(c echo.Context) error {
	ctx := c.Request().Context()
	shopper, verified, err := h.shopperFromRequest(c, launchParam(c))
	if err != nil {
		return h.renderProblem(c, err)
	}
	order, err := h.payments.ShopperOrder(ctx, shopper.ID, c.Param("id"))
	if err != nil {
		return h.renderProblem(c, err)
	}
	currency, err := money.ParseCurrency(order.Currency)
	if err != nil {
		return h.renderProblem(c, err)
	}
	merchant, err := h.catalog.Merchant(ctx, order.MerchantID)
	if err != nil {
		return h.renderProblem(c, err)
	}
	coupons, err := h.payments.OrderCoupons(ctx, order.ID)
	if err != nil {
		return h.renderProblem(c, err)
	}
	wallet, err := h.payments.WalletBalance(ctx, shopper.ID, currency)
	if err != nil {
		return h.renderProblem(c, err)
	}
	links, err := h.payments.ReceiptCouponLinks(ctx, shopper.ID, coupons)
	if err != nil {
		return h.renderProblem(c, err)
	}
	// The till checks the token at the merchant's time: a sandbox test clock.
	now, err := h.payments.NowFor(ctx, order.MerchantID)
	if err != nil {
		return h.renderProblem(c, err)
	}
	t := textForLaunch(c, verified)
	ct := couponTextFor(t)
	view := receiptView{T: t, C: ct, Order: order, Total: money.New(order.TotalMinor, currency), Merchant: merchant, Wallet: wallet}
	for _, l := range order.Lines {
		view.Lines = append(view.Lines, lineView{OrderLine: l, Price: money.New(l.UnitPriceMinor*int64(l.Quantity), currency)})
	}
	for _, cp := range coupons {
		card, err := h.couponCard(ctx, ct, t.Lang, cp, merchant, now)
		if err != nil {
			return h.renderProblem(c, err)
		}
		if token, ok := links[cp.ID]; ok {
			card.Link = payments.CouponLinkPath + token
		}
		view.Cards = append(view.Cards, card)
	}
	return h.renderCoupon(c, http.StatusOK, "receipt.html", view)
}
