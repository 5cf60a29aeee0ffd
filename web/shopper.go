// Package web renders chatpay's HTML: the shopper pages a messenger opens in
// its in-app browser (checkout and receipt) and the merchant dashboard.
// Templates and styles are embedded in the binary; pages work without
// JavaScript and load nothing from outside the server.
package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/instancemode"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
)

//go:embed templates/*.html
var templateFS embed.FS

// shopperScript is the shopper pages' one script (pending states), served
// from this origin like the coupon pages' (static.go), as their CSP wants.
var shopperScript = staticURL("shopper.js")

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
	// Detail is the service's own wording, for whoever reads the page's
	// source while integrating a messenger; the shopper never sees it.
	Detail string
}

// shopperCSPBase lets a shopper page load nothing but its own images: styles
// are inline and QR codes are inline SVG. It has no frame-ancestors because
// messengers show the pages inside their own web views and frames.
const shopperCSPBase = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"

// shopperCSP adds the pages' scripts: same-origin files only (the pending
// state of Buy and Top up), never inline.
const shopperCSP = shopperCSPBase + "; script-src 'self'"

// statusClientClosedRequest is what the access log records for a shopper
// who left before the answer was ready (nginx's 499): not a server error.
const statusClientClosedRequest = 499

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

// renderProblem shows a domain refusal as a page a shopper can read, in
// plain words and the shopper's language, with what to do next.
func (h *Shopper) renderProblem(c echo.Context, err error) error {
	ctx := c.Request().Context()
	if _, isProblem := problem.As(err); !isProblem && ctx.Err() != nil {
		// The shopper closed the page or lost the connection: nobody is
		// waiting for an answer, and nothing failed on our side.
		h.logger.InfoContext(ctx, "shopper left before the page was ready", "path", c.Request().URL.Path, "error", err)
		return c.NoContent(statusClientClosedRequest)
	}
	raw := launchParam(c)
	if raw == "" {
		raw = c.FormValue("launch")
	}
	t := pageText(c, unverifiedLanguage(raw))
	p, ok := problem.As(err)
	if !ok {
		h.logger.ErrorContext(ctx, "shopper page failed", "error", err, "path", c.Request().URL.Path)
		return h.render(c, http.StatusInternalServerError, "message.html", messagePage{
			T: t, Title: t.WrongTitle, Message: t.WrongMessage, Hint: t.WrongHint, Code: "internal_error"})
	}
	return h.render(c, p.Status(), "message.html", problemPage(t, p, raw, h.now()))
}

// launchStaleAfter is when an unverified launch's own date makes a refusal
// read as "opened too long ago" rather than "not from your messenger".
const launchStaleAfter = 5 * time.Minute

// problemPage words a refusal for the message page.
func problemPage(t *shopperText, p *problem.Error, rawLaunch string, now time.Time) messagePage {
	page := messagePage{T: t, Title: t.ErrorTitle, Message: refusalText(t, p), Hint: t.WrongHint, Code: p.Code, Detail: p.Detail}
	switch p.Code {
	case qr.CodeRevoked:
		page.Title, page.Message, page.Hint = t.RevokedTitle, t.RevokedMessage, t.RevokedHint
	case qr.CodeExpired:
		page.Title, page.Message, page.Hint = t.ExpiredTitle, t.ExpiredMessage, t.ExpiredHint
	case qr.CodeUsed:
		page.Title, page.Message, page.Hint = t.UsedTitle, t.UsedMessage, t.UsedHint
	case qr.CodeNotFound:
		page.Title, page.Message, page.Hint = t.NotFoundTitle, t.NotFoundMsg, t.NotFoundHint
	case "invalid_launch_context":
		page.Title, page.Hint = t.LaunchTitle, t.LaunchHint
		switch {
		case rawLaunch == "":
			page.Message = t.LaunchNone
		case launchOlderThan(rawLaunch, now, launchStaleAfter):
			page.Message = t.LaunchStale
		default:
			page.Message = t.LaunchBad
		}
	}
	return page
}

// launchOlderThan reads the date a messenger put in launch data that failed
// verification (auth_date, VK's vk_ts), only to word the refusal: a stale
// launch is worded as such, anything else as unconfirmed.
func launchOlderThan(raw string, now time.Time, age time.Duration) bool {
	fields, err := url.ParseQuery(raw)
	if err != nil {
		return false
	}
	if inner := fields.Get("launch_data"); inner != "" {
		if fields, err = url.ParseQuery(inner); err != nil {
			return false
		}
	}
	for _, name := range []string{"auth_date", "vk_ts"} {
		if unix, err := strconv.ParseInt(fields.Get(name), 10, 64); err == nil && unix > 0 {
			return now.Sub(time.Unix(unix, 0)) > age
		}
	}
	return false
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
	// LimitReached replaces "Buy now": the shopper has bought (or holds)
	// as many as the item's per-shopper limit.
	LimitReached bool
	Error        string
	ErrorCode    string
	Shopper      payments.Shopper
	// The top-up form: suggested amounts (the first is the shortfall),
	// which is chosen, the card number kept after a decline, and the test
	// cards' hint on a sandbox instance only.
	Amounts    []money.Amount
	AmountText string
	Card       string
	CardHint   bool
	Script     string
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
	return h.showCheckout(c, launch, checkoutOutcome{})
}

// checkoutOutcome is what a form post brings back to the checkout page.
type checkoutOutcome struct {
	Refusal *problem.Error // why "Buy now" or "Top up" said no
	Notice  string         // the outcome of a top-up
	Card    string         // the card number, kept after a refusal
	Amount  string         // the top-up amount chosen
}

// showCheckout renders the item behind a static QR for the shopper, with
// the outcome (if any) of a previous "Buy now" or "Top up".
func (h *Shopper) showCheckout(c echo.Context, launch string, outcome checkoutOutcome) error {
	ctx := c.Request().Context()
	refusal := outcome.Refusal
	code, err := h.payments.ScannedCode(ctx, c.Param("token"))
	if err != nil {
		return h.renderProblem(c, err)
	}
	shopper, verified, err := h.shopperFromRequest(c, launch)
	if err != nil {
		return h.renderProblem(c, err)
	}
	// A form's answer or a switch of language is not another scan.
	if refusal == nil && c.Request().Method == http.MethodGet && c.QueryParam(langParam) == "" {
		scan := qr.Scan{ShopperRef: shopper.ID, UserAgent: c.Request().UserAgent(), Messenger: verified.Messenger}
		if err := h.payments.RecordScan(ctx, code.ID, scan); err != nil {
			h.logger.WarnContext(ctx, "record scan", "error", err)
		}
	}
	t := textForLaunch(c, verified)
	view := checkoutView{T: t, Token: c.Param("token"), Launch: launch, IdempotencyKey: newKey(), TopUpKey: newKey(), Shopper: shopper,
		Notice: outcome.Notice, Card: outcome.Card, CardHint: h.payments.Mode() == instancemode.Sandbox, Script: shopperScript}
	if code.TargetType == qr.TargetCheckout {
		err = h.tillView(ctx, code, &view)
	} else {
		err = h.itemView(ctx, code, &view)
	}
	if err != nil {
		return h.renderProblem(c, err)
	}
	if limit := view.Item.PerShopperLimit; !view.Till && limit != nil {
		held, err := h.payments.HeldByShopper(ctx, shopper.ID, view.Item.ID)
		if err != nil {
			return h.renderProblem(c, err)
		}
		view.LimitReached = held >= *limit
	}
	wallet, err := h.payments.WalletBalance(ctx, shopper.ID, view.Price.Currency)
	if err != nil {
		return h.renderProblem(c, err)
	}
	view.Wallet, view.Short = wallet, wallet.Minor < view.Price.Minor
	if view.Short {
		view.ShortBy = money.New(view.Price.Minor-wallet.Minor, view.Price.Currency)
		view.Amounts = suggestedTopUps(view.ShortBy)
		// The amount chosen before a refusal stays chosen, if still offered.
		view.AmountText = view.ShortBy.Currency.Format(view.ShortBy.Minor)
		for _, a := range view.Amounts {
			if a.Currency.Format(a.Minor) == outcome.Amount {
				view.AmountText = outcome.Amount
			}
		}
		if err := h.hostedForm(c, &view); err != nil {
			return h.renderProblem(c, err)
		}
	}
	status := http.StatusOK
	if refusal != nil {
		view.Error, view.ErrorCode, status = refusalText(t, refusal), refusal.Code, refusal.Status()
		switch refusal.Code {
		case payments.CodeSoldOut:
			view.SoldOut = true
		case payments.CodeLimitReached:
			view.LimitReached = true
		case payments.CodeAlreadyPaid:
			if orderID, ok := refusal.Extensions["order_id"].(string); ok {
				view.ReceiptURL = "/receipts/" + orderID + "?launch=" + url.QueryEscape(launch)
			}
		}
	}
	return h.render(c, status, "checkout.html", view)
}

// suggestedTopUps are the amounts the top-up form offers: what the wallet
// lacks, then the next two round amounts (1, 2 or 5 times a power of ten,
// at least ten whole units), so that one top-up covers the next purchases
// too.
func suggestedTopUps(short money.Amount) []money.Amount {
	amounts := []money.Amount{short}
	unit := int64(1)
	for range short.Currency.MinorDigits() {
		unit *= 10
	}
	for step := unit; len(amounts) < 3 && step <= payments.TopUpMinorMax; step *= 10 {
		for _, m := range []int64{1, 2, 5} {
			candidate := m * step
			if candidate > short.Minor && candidate >= 10*unit && candidate <= payments.TopUpMinorMax && len(amounts) < 3 {
				amounts = append(amounts, money.New(candidate, short.Currency))
			}
		}
	}
	return amounts
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
		if view.Rules, err = h.rulesText(ctx, merchant.ID, merchant.Location(), *item.Rules, view.T.Lang, nil); err != nil {
			return err
		}
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
	launch, key := c.FormValue("launch"), c.FormValue("idempotency_key")
	shopper, ctxLaunch, err := h.shopperFromRequest(c, launch)
	if err != nil {
		return h.renderProblem(c, err)
	}
	if key == "" {
		return h.renderProblem(c, problem.New(problem.KindBadRequest, "missing_idempotency_key", "the form lost its key; reload the page"))
	}
	return h.purchase(c, shopper, ctxLaunch, launch, key, "")
}

// purchase runs payments.Buy under key and answers with the receipt, or
// the checkout page with the refusal (and notice, the outcome of a top-up
// that came first).
func (h *Shopper) purchase(c echo.Context, shopper payments.Shopper, ctxLaunch payments.Launch, launch, key, notice string) error {
	ctx := c.Request().Context()
	token := c.Param("token")
	req := idempotency.Request{
		Scope: idempotency.ShopperScope(shopper.ID), Key: key, Method: http.MethodPost, Path: "/q/" + token + "/buy",
		Body: []byte(token),
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
			return h.showCheckout(c, launch, checkoutOutcome{Refusal: p, Notice: notice})
		}
		return h.renderProblem(c, err)
	}
	if resp.Refusal != nil {
		return h.showCheckout(c, launch, checkoutOutcome{Refusal: resp.Refusal, Notice: notice})
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

// stepKey derives the idempotency key of one step of a form that does
// several ("Top up and pay": the top-up, then the purchase) from the form's
// one key, so that a resubmission replays each step instead of repeating it.
func stepKey(key, step string) string {
	if key == "" {
		return ""
	}
	if len(key)+len(step)+1 > idempotency.KeyLengthMax {
		sum := sha256.Sum256([]byte(key))
		key = hex.EncodeToString(sum[:])
	}
	return key + ":" + step
}

// refusalText words a refusal in the shopper's language. Refusals without
// wording of their own say that nothing happened and to try again: the
// service's English detail names internal things and never reaches a page.
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
	case payments.CodeCheckoutExpired:
		return t.CodeTimedOut
	case payments.CodeCheckoutClosed:
		return t.CodeCanceled
	case payments.CodeCardDeclined:
		return t.TopUpDeclined
	case payments.CodeProviderUnavailable:
		return t.TopUpOff
	case "card_not_accepted":
		return t.CardNotTaken
	case "insufficient_funds":
		return t.Insufficient
	case "missing_idempotency_key", "idempotency_key_required", "idempotency_key_invalid":
		return t.MissingKey
	case "idempotency_key_in_use":
		return t.Busy
	case "idempotency_key_reused":
		return t.FormChanged
	case "invalid_launch_context":
		return t.LaunchBad
	case qr.CodeRevoked:
		return t.RevokedMessage
	case qr.CodeExpired:
		return t.ExpiredMessage
	case qr.CodeUsed:
		return t.UsedMessage
	case qr.CodeNotFound:
		return t.NotFoundMsg
	case "validation_failed":
		if len(p.Fields) > 0 && p.Fields[0].Field == "card" {
			return t.CardInvalid
		}
		return t.AmountInvalid
	}
	return t.WrongMessage
}

// topUp charges the shopper's card and, from "Top up and pay", buys at
// once; otherwise it shows the checkout again. The form's one key gives each
// step its own (stepKey), so a resubmission charges once and buys once; an
// outcome the provider has not confirmed yet is said plainly (nothing is
// bought then), and reconciliation finishes it.
func (h *Shopper) topUp(c echo.Context) error {
	ctx := c.Request().Context()
	launch := c.FormValue("launch")
	shopper, verified, err := h.shopperFromRequest(c, launch)
	if err != nil {
		return h.renderProblem(c, err)
	}
	t := textForLaunch(c, verified)
	kept := checkoutOutcome{Card: c.FormValue("card"), Amount: c.FormValue("amount")}
	currency, err := money.ParseCurrency(c.FormValue("currency"))
	if err != nil {
		return h.renderProblem(c, money.FieldProblem("currency", err))
	}
	minor, err := currency.Parse(c.FormValue("amount"))
	if err != nil {
		kept.Refusal = problem.Field("amount", "invalid_amount", "%s", err.Error())
		return h.showCheckout(c, launch, kept)
	}
	amount := money.New(minor, currency)
	if method := c.FormValue("method"); method != "" && method != payments.MethodCard {
		return h.hostedTopUp(c, launch, shopper, amount)
	}
	if err := h.refuseCardForHosted(c); err != nil {
		return h.renderProblem(c, err)
	}
	key := c.FormValue("idempotency_key")
	topUp, err := h.payments.TopUp(ctx, shopper, amount, c.FormValue("card"), stepKey(key, "topup"))
	if err != nil {
		if p, ok := problem.As(err); ok && p.Status() < 500 {
			kept.Refusal = p
			return h.showCheckout(c, launch, kept)
		}
		return h.renderProblem(c, err)
	}
	if topUp.Status != payments.TopUpSucceeded {
		return h.showCheckout(c, launch, checkoutOutcome{Notice: t.TopUpPending})
	}
	notice := fmt.Sprintf(t.TopUpDone, amount)
	if c.FormValue("then") == "buy" {
		return h.purchase(c, shopper, verified, launch, stepKey(key, "buy"), notice)
	}
	return h.showCheckout(c, launch, checkoutOutcome{Notice: notice})
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

// rulesText words rules in lang, naming categories by the merchant's own
// labels (read only when the rules name a category), so that a Chinese page
// does not say 不适用于coffee.
func (h *Shopper) rulesText(ctx context.Context, merchantID string, loc *time.Location, rules catalog.Rules, lang string, issuedAt *time.Time) (string, error) {
	var labels catalog.CategoryLabels
	if len(rules.IncludeCategories)+len(rules.ExcludeCategories) > 0 {
		var err error
		if labels, err = h.catalog.CategoryLabels(ctx, merchantID); err != nil {
			return "", err
		}
	}
	return catalog.RenderRulesLabelled(rules, lang, loc, issuedAt, labels), nil
}
