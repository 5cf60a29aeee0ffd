// Package web renders chatpay's HTML: the shopper pages a messenger opens in
// its in-app browser (checkout and receipt) and the merchant dashboard.
// Templates and styles are embedded in the binary; pages work without
// JavaScript and load nothing from outside the server.
package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
)

//go:embed templates/*.html
var templateFS embed.FS

// The wait of a double tap: a second "Buy now" whose key is still in flight
// waits for the first to finish and then shows the same receipt.
const (
	inFlightWait     = 200 * time.Millisecond
	inFlightWaitsMax = 25
	couponQRSizePx   = 220
)

// Shopper serves the pages a shopper sees inside the chat app.
type Shopper struct {
	payments    *payments.Service
	catalog     *catalog.Service
	idempotency *idempotency.Store
	logger      *slog.Logger
	templates   *template.Template
	now         func() time.Time
}

// NewShopper returns the shopper pages. The receipt's rotating coupon QR is
// made at the merchant's time, which payments.NowFor gives (a sandbox's test
// clock); now is kept for the pages' other uses.
func NewShopper(p *payments.Service, c *catalog.Service, idem *idempotency.Store, logger *slog.Logger, now func() time.Time) *Shopper {
	return &Shopper{
		payments: p, catalog: c, idempotency: idem, logger: logger,
		templates: template.Must(template.New("").Funcs(funcs).Funcs(couponFuncs).ParseFS(templateFS, "templates/checkout.html",
			"templates/receipt.html", "templates/coupon.html", "templates/wallet.html", "templates/message.html", "templates/layout.html")),
		now: now,
	}
}

// Register mounts /q/:token (checkout) and /receipts/:id.
func (h *Shopper) Register(g *echo.Group) {
	g.GET("/q/:token", h.checkoutPage)
	g.POST("/q/:token/buy", h.buy)
	g.POST("/q/:token/topup", h.topUp)
	g.GET("/receipts/:id", h.receiptPage)
	g.GET("/tg/:channel", h.telegramEntry)
	g.POST("/tg/:channel", h.telegramEntry) // a page that posts initData
	g.GET("/o/:token", h.chooserPage)
	g.GET("/o/:token/go", h.chooseMessenger)
	h.registerCoupons(g) // coupon.go: coupon links, My coupons, static files
}

var funcs = template.FuncMap{
	"money": func(a money.Amount) string { return a.String() },
	// couponStatus words a coupon that can no longer be shown at the till.
	"couponStatus": func(t *shopperText, status string) string {
		switch status {
		case payments.CouponRedeemed:
			return t.CouponUsed
		case payments.CouponRefunded:
			return t.CouponRefunded
		}
		return t.CouponExpired
	},
	// amountText is the bare decimal ("3.00") a form posts back.
	"amountText": func(a money.Amount) string { return a.Currency.Format(a.Minor) },
	// page bundles what the shared head needs: the title, the wording and
	// an optional reload interval in seconds.
	"page": func(title string, t *shopperText, refreshSeconds int) headData {
		return headData{Title: title, T: t, Refresh: refreshSeconds}
	},
}

type headData struct {
	Title   string
	T       *shopperText
	Refresh int
}

// messagePage is the one page for every state that is not a checkout: a
// revoked code, a stale launch, an unknown receipt.
type messagePage struct {
	T       *shopperText
	Title   string
	Message string
	Hint    string
	Code    string
}

// shopperCSP lets a shopper page load nothing but its own images: the pages
// have no scripts, their styles are inline and their QR codes are inline SVG.
// It has no frame-ancestors because messengers show the pages inside their
// own web views and frames.
const shopperCSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"

func (h *Shopper) render(c echo.Context, status int, name string, data any) error {
	header := c.Response().Header()
	header.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	header.Set("Cache-Control", "no-store")
	header.Set("Content-Security-Policy", shopperCSP)
	header.Set("X-Content-Type-Options", "nosniff")
	// A receipt's address is the shopper's; no link may carry it elsewhere.
	header.Set("Referrer-Policy", "no-referrer")
	c.Response().WriteHeader(status)
	if err := h.templates.ExecuteTemplate(c.Response(), name, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return nil
}

// renderProblem shows a domain refusal as a page a shopper can read.
func (h *Shopper) renderProblem(c echo.Context, err error) error {
	t := shopperTextFor(c.Request().Header.Get("Accept-Language"))
	p, ok := problem.As(err)
	if !ok {
		h.logger.ErrorContext(c.Request().Context(), "shopper page failed", "error", err, "path", c.Request().URL.Path)
		return h.render(c, http.StatusInternalServerError, "message.html", messagePage{
			T: t, Title: t.WrongTitle, Message: t.WrongMessage, Hint: t.WrongHint, Code: "internal_error"})
	}
	page := messagePage{T: t, Title: t.ErrorTitle, Message: p.Detail, Code: p.Code}
	switch p.Code {
	case qr.CodeRevoked:
		page = messagePage{T: t, Title: t.RevokedTitle, Message: t.RevokedMessage, Hint: t.RevokedHint, Code: p.Code}
	case qr.CodeExpired:
		page = messagePage{T: t, Title: t.ExpiredTitle, Message: t.ExpiredMessage, Hint: t.ExpiredHint, Code: p.Code}
	case qr.CodeUsed:
		page = messagePage{T: t, Title: t.UsedTitle, Message: t.UsedMessage, Hint: t.UsedHint, Code: p.Code}
	case qr.CodeNotFound:
		page = messagePage{T: t, Title: t.NotFoundTitle, Message: t.NotFoundMsg, Hint: t.NotFoundHint, Code: p.Code}
	case "invalid_launch_context":
		page = messagePage{T: t, Title: t.LaunchTitle, Message: p.Detail, Hint: t.LaunchHint, Code: p.Code}
	}
	return h.render(c, p.Status(), "message.html", page)
}

// shopperFromRequest verifies the launch context the messenger passed.
func (h *Shopper) shopperFromRequest(c echo.Context, raw string) (payments.Shopper, payments.Launch, error) {
	fields, _ := url.ParseQuery(raw)
	return h.payments.ShopperFromLaunch(c.Request().Context(), fields.Get("channel_id"), raw)
}

type checkoutView struct {
	T              *shopperText
	Token          string
	Launch         string
	IdempotencyKey string
	TopUpKey       string // the top-up form's own idempotency key
	Notice         string // the outcome of a top-up
	Title          string
	Till           bool           // a till's one-time code: Lines instead of Item
	Lines          []tillLineView // the till's lines
	Item           catalog.Item
	Merchant       catalog.Merchant
	Price          money.Amount
	Rules          string
	Wallet         money.Amount
	Short          bool // the wallet cannot cover the price
	ShortBy        money.Amount
	ReceiptURL     string // set when the refusal is already_paid
	SoldOut        bool
	Error          string
	ErrorCode      string
	Shopper        payments.Shopper
	// Provider is the merchant's real payment provider (shopper_providers.go);
	// "" shows the sandbox's card form.
	Provider       string
	ProviderMethod string
	ProviderButton string
	ProviderNote   string
}

func (h *Shopper) checkoutPage(c echo.Context) error {
	launch := launchParam(c)
	if launch == "" && channelParamPattern.MatchString(c.QueryParam("channel")) {
		return h.renderLaunchBootstrap(c, c.QueryParam("channel"))
	}
	return h.showCheckout(c, launch, nil, "")
}

// showCheckout renders the item behind a static QR for the shopper, with
// refusal (if any) from a previous "Buy now".
func (h *Shopper) showCheckout(c echo.Context, launch string, refusal *problem.Error, notice string) error {
	ctx := c.Request().Context()
	code, err := h.payments.ScannedCode(ctx, c.Param("token"))
	if err != nil {
		return h.renderProblem(c, err)
	}
	shopper, verified, err := h.shopperFromRequest(c, launch)
	if err != nil {
		return h.renderProblem(c, err)
	}
	if refusal == nil {
		scan := qr.Scan{ShopperRef: shopper.ID, UserAgent: c.Request().UserAgent(), Messenger: verified.Messenger}
		if err := h.payments.RecordScan(ctx, code.ID, scan); err != nil {
			h.logger.WarnContext(ctx, "record scan", "error", err)
		}
	}
	t := textForLaunch(c, verified)
	view := checkoutView{T: t, Token: c.Param("token"), Launch: launch, IdempotencyKey: newKey(), TopUpKey: newKey(), Shopper: shopper, Notice: notice}
	if code.TargetType == qr.TargetCheckout {
		err = h.tillView(ctx, code, &view)
	} else {
		err = h.itemView(ctx, code, &view)
	}
	if err != nil {
		return h.renderProblem(c, err)
	}
	wallet, err := h.payments.WalletBalance(ctx, shopper.ID, view.Price.Currency)
	if err != nil {
		return h.renderProblem(c, err)
	}
	view.Wallet, view.Short = wallet, wallet.Minor < view.Price.Minor
	if view.Short {
		view.ShortBy = money.New(view.Price.Minor-wallet.Minor, view.Price.Currency)
		if err := h.hostedForm(c, &view); err != nil {
			return h.renderProblem(c, err)
		}
	}
	status := http.StatusOK
	if refusal != nil {
		view.Error, view.ErrorCode, status = refusalText(t, refusal), refusal.Code, refusal.Status()
		if refusal.Code == payments.CodeSoldOut {
			view.SoldOut = true
		}
		if refusal.Code == payments.CodeAlreadyPaid {
			if orderID, ok := refusal.Extensions["order_id"].(string); ok {
				view.ReceiptURL = "/receipts/" + orderID + "?launch=" + url.QueryEscape(launch)
			}
		}
	}
	return h.render(c, status, "checkout.html", view)
}

// itemView fills the page for a static code: one item, its rules.
func (h *Shopper) itemView(ctx context.Context, code qr.Code, view *checkoutView) error {
	item, merchant, err := h.payments.OfferedItem(ctx, code.TargetID)
	if err != nil {
		return err
	}
	view.Title, view.Item, view.Merchant, view.Price = item.Title, item, merchant, item.Price
	view.SoldOut = (item.Stock != nil && *item.Stock == 0) || !item.Active
	if item.Rules != nil {
		view.Rules = catalog.RenderRules(*item.Rules, view.T.Lang, merchant.Location(), nil)
	}
	return nil
}

// tillView fills the page for a till's one-time code: the rung-up lines and
// the amount the code is bound to.
func (h *Shopper) tillView(ctx context.Context, code qr.Code, view *checkoutView) error {
	co, err := h.payments.TillCheckoutForCode(ctx, code)
	if err != nil {
		return err
	}
	merchant, err := h.catalog.Merchant(ctx, co.MerchantID)
	if err != nil {
		return err
	}
	currency, err := money.ParseCurrency(co.Currency)
	if err != nil {
		return err
	}
	view.Till, view.Merchant, view.Price, view.Title = true, merchant, money.New(co.TotalMinor, currency), merchant.Name
	for _, l := range co.Lines {
		item, _, err := h.payments.OfferedItem(ctx, l.ItemID)
		if err != nil {
			return err
		}
		view.Lines = append(view.Lines, tillLineView{Title: item.Title, Quantity: l.Quantity,
			Price: money.New(l.UnitPriceMinor*int64(l.Quantity), currency)})
	}
	return nil
}

type tillLineView struct {
	Title    string
	Quantity int
	Price    money.Amount
}

type boughtJSON struct {
	OrderID string `json:"order_id"`
}

// buy pays for what the scanned code shows (an item, or a till's rung-up
// lines) through payments.Buy, under the form's idempotency key, so a double
// tap or a resubmission pays once and shows the same receipt.
func (h *Shopper) buy(c echo.Context) error {
	ctx := c.Request().Context()
	launch, key := c.FormValue("launch"), c.FormValue("idempotency_key")
	shopper, ctxLaunch, err := h.shopperFromRequest(c, launch)
	if err != nil {
		return h.renderProblem(c, err)
	}
	token := c.Param("token")
	req := idempotency.Request{
		Scope: idempotency.ShopperScope(shopper.ID), Key: key, Method: http.MethodPost, Path: c.Request().URL.Path,
		Body: []byte(token),
	}
	if key == "" {
		return h.renderProblem(c, problem.New(problem.KindBadRequest, "missing_idempotency_key", "the form lost its key; reload the page"))
	}
	resp, err := h.runWaitingForFirstTap(ctx, req, func(tx *sqlx.Tx) (int, any, error) {
		receipt, err := h.payments.Buy(ctx, tx, payments.Purchase{Shopper: shopper, ChatID: ctxLaunch.ChatID, Code: token})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, boughtJSON{OrderID: receipt.Order.ID}, nil
	})
	if err != nil {
		if p, ok := problem.As(err); ok && p.Status() < 500 {
			return h.showCheckout(c, launch, p, "")
		}
		return h.renderProblem(c, err)
	}
	if resp.Refusal != nil {
		return h.showCheckout(c, launch, resp.Refusal, "")
	}
	var bought boughtJSON
	if err := json.Unmarshal(resp.Body, &bought); err != nil {
		return h.renderProblem(c, fmt.Errorf("stored purchase: %w", err))
	}
	return c.Redirect(http.StatusSeeOther, "/receipts/"+bought.OrderID+"?launch="+url.QueryEscape(launch))
}

// runWaitingForFirstTap runs req; while the same key is in flight (a double
// tap) it waits for the first request and then replays its answer.
func (h *Shopper) runWaitingForFirstTap(ctx context.Context, req idempotency.Request, change idempotency.Change) (idempotency.Response, error) {
	for wait := 0; ; wait++ {
		resp, err := h.idempotency.Run(ctx, req, change)
		if p, ok := problem.As(err); ok && p.Code == "idempotency_key_in_use" && wait < inFlightWaitsMax {
			select {
			case <-ctx.Done():
				return resp, ctx.Err()
			case <-time.After(inFlightWait):
				continue
			}
		}
		return resp, err
	}
}

func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// refusalText words a refusal of "Buy now" in the shopper's language; codes
// without a translation keep the service's English detail.
func refusalText(t *shopperText, p *problem.Error) string {
	switch p.Code {
	case payments.CodeSoldOut:
		return t.SoldOutHint
	case payments.CodeAlreadyPaid:
		return t.AlreadyPaid
	case payments.CodeLimitReached:
		return t.LimitReached
	case payments.CodeItemUnavailable:
		return t.Unavailable
	case "insufficient_funds":
		return t.Insufficient
	case "missing_idempotency_key":
		return t.MissingKey
	}
	return p.Detail
}

// topUp charges the shopper's card for what the wallet lacks and shows the
// checkout again. The form's key makes a resubmission charge once; an
// outcome the provider has not confirmed yet is said plainly, and
// reconciliation finishes it.
func (h *Shopper) topUp(c echo.Context) error {
	ctx := c.Request().Context()
	launch := c.FormValue("launch")
	shopper, verified, err := h.shopperFromRequest(c, launch)
	if err != nil {
		return h.renderProblem(c, err)
	}
	t := textForLaunch(c, verified)
	currency, err := money.ParseCurrency(c.FormValue("currency"))
	if err != nil {
		return h.renderProblem(c, money.FieldProblem("currency", err))
	}
	minor, err := currency.Parse(c.FormValue("amount"))
	if err != nil {
		return h.showCheckout(c, launch, money.FieldProblem("amount", err).(*problem.Error), "")
	}
	amount := money.New(minor, currency)
	if method := c.FormValue("method"); method != "" && method != payments.MethodCard {
		return h.hostedTopUp(c, launch, shopper, amount)
	}
	if err := h.refuseCardForHosted(c); err != nil {
		return h.renderProblem(c, err)
	}
	topUp, err := h.payments.TopUp(ctx, shopper, amount, c.FormValue("card"), c.FormValue("idempotency_key"))
	if err != nil {
		if p, ok := problem.As(err); ok && p.Status() < 500 {
			if p.Code == "card_declined" {
				p = &problem.Error{Kind: p.Kind, Code: p.Code, Detail: t.TopUpDeclined}
			}
			return h.showCheckout(c, launch, p, "")
		}
		return h.renderProblem(c, err)
	}
	notice := fmt.Sprintf(t.TopUpDone, amount)
	if topUp.Status != payments.TopUpSucceeded {
		notice = t.TopUpPending
	}
	return h.showCheckout(c, launch, nil, notice)
}

// inlineSVG embeds one of our own SVG images in a page: the XML prolog a
// standalone .svg file needs has no place inside HTML.
func inlineSVG(svg []byte) template.HTML {
	_, body, found := bytes.Cut(svg, []byte("?>"))
	if !found {
		body = svg
	}
	return template.HTML(bytes.TrimSpace(body)) //nolint:gosec // generated by package qr from our own data
}
