package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/payments"
)

// ordersPageSize is how many orders one page of the orders list shows.
const ordersPageSize = 50

// redemptionsShownMax is how many recent redemptions the page lists.
const redemptionsShownMax = payments.ListPageSizeMax

func (d *Dashboard) registerOrders(g *echo.Group) {
	g.GET("/orders", d.orders)
	g.GET("/orders/:id", d.order)
	g.GET("/orders/:id/refund", d.refundPage)
	g.POST("/orders/:id/refund", d.refund)
	g.GET("/redemptions", d.redemptions)
	g.GET("/till", d.tillPage)
	g.POST("/till", d.tillRedeem)
}

type ordersView struct {
	Orders     []payments.Order
	NextCursor string
}

func (d *Dashboard) orders(c echo.Context) error {
	p, err := d.deps.Payments.MerchantOrders(c.Request().Context(), merchantOf(c).ID, c.QueryParam("cursor"), ordersPageSize)
	if err != nil {
		return d.renderError(c, err)
	}
	return d.renderPage(c, http.StatusOK, "dash_orders.html", newPage(c, "Orders", "orders", ordersView{Orders: p.Orders, NextCursor: p.NextCursor}))
}

type orderView struct {
	Order      payments.Order
	Coupons    []payments.Coupon
	Refunds    []payments.RefundRecord
	Refundable bool
}

func (d *Dashboard) order(c echo.Context) error {
	ctx := c.Request().Context()
	m := merchantOf(c)
	refundable, err := d.deps.Payments.OrderRefundable(ctx, m.ID, c.Param("id"))
	if err != nil {
		return d.renderError(c, err)
	}
	o := refundable.Order
	coupons, err := d.deps.Payments.OrderCoupons(ctx, o.ID)
	if err != nil {
		return d.renderError(c, err)
	}
	refunds, err := d.deps.Payments.OrderRefunds(ctx, m.ID, o.ID)
	if err != nil {
		return d.renderError(c, err)
	}
	view := orderView{Order: o, Coupons: coupons, Refunds: refunds, Refundable: refundable.Total.Minor > 0}
	return d.renderPage(c, http.StatusOK, "dash_order.html", newPage(c, "Order "+o.ID, "orders", view))
}

// Refunds are confirmed on a page of their own: what to give back (all of
// it, one voucher, or part of the products), how much, and why. The order
// page only links to it, so no single click moves money.

// refundReasons are the reasons staff pick from, with the words kept.
var refundReasons = []struct{ Value, Label string }{
	{"requested_by_customer", "The customer asked for it"},
	{"duplicate", "Charged twice"},
	{"unavailable", "We could not provide it"},
	{"fraudulent", "Suspected fraud"},
	{"other", "Another reason (say which below)"},
}

// refundScope values of the refund form.
const (
	refundAll      = "all"
	refundCoupon   = "coupon:" // followed by the coupon's id
	refundProducts = "amount"
)

// refundForm is the refund page's fields as typed.
type refundForm struct {
	Scope  string // refundAll, refundCoupon+id or refundProducts
	Amount string
	Reason string
	Note   string
}

type refundView struct {
	Order          payments.Order
	Coupons        []payments.Coupon // those still refundable, vouchers refunded whole
	ProductsLeft   string            // "" when the order has no products left to refund
	Everything     string            // all that is refundable now
	Nothing        bool              // nothing is left to refund: no form
	Reasons        []struct{ Value, Label string }
	Form           refundForm
	IdempotencyKey string // one refund per rendering of the page, whatever the clicks
}

func (d *Dashboard) refundPage(c echo.Context) error {
	form := refundForm{Scope: refundAll}
	if id := c.QueryParam("coupon_id"); id != "" {
		form.Scope = refundCoupon + id
	}
	return d.showRefund(c, form, nil)
}

// showRefund renders the refund page, with err's problems when a refund
// was refused or the form was wrong; each rendering has a new key.
func (d *Dashboard) showRefund(c echo.Context, form refundForm, err error) error {
	r, loadErr := d.deps.Payments.OrderRefundable(c.Request().Context(), merchantOf(c).ID, c.Param("id"))
	if loadErr != nil {
		return d.renderError(c, loadErr)
	}
	o := r.Order
	view := refundView{Order: o, Coupons: r.Coupons, Reasons: refundReasons, Form: form, IdempotencyKey: newKey(),
		Everything: r.Total.String(), Nothing: r.Total.Minor == 0}
	if r.Products.Minor > 0 {
		view.ProductsLeft = r.Products.String()
	}
	pg := newPage(c, "Refund order "+o.ID, "orders", view)
	status := http.StatusOK
	if err != nil {
		p, ok := formProblem(err)
		if !ok {
			return d.renderError(c, err)
		}
		pg.Error, pg.Fields, status = p.Detail, p.Fields, p.Status()
	}
	return d.renderPage(c, status, "dash_refund.html", pg)
}

// refund gives money of an order back to the shopper's wallet as the
// refund page says, under the page's idempotency key. The payments service
// refuses what may not be refunded (a redeemed voucher, more than is left).
func (d *Dashboard) refund(c echo.Context) error {
	ctx := c.Request().Context()
	m := merchantOf(c)
	orderID := c.Param("id")
	form := refundForm{Scope: c.FormValue("scope"), Amount: strings.TrimSpace(c.FormValue("amount")),
		Reason: c.FormValue("reason"), Note: strings.TrimSpace(c.FormValue("note"))}
	req, err := d.refundRequest(ctx, m.ID, orderID, form)
	if err != nil {
		return d.showRefund(c, form, err)
	}
	body, _ := json.Marshal(form) // strings only: always encodes
	idem := idempotency.Request{Scope: idempotency.MerchantScope(m.ID), Key: c.FormValue("idempotency_key"), Method: http.MethodPost,
		Path: "/dashboard/orders/" + orderID + "/refund", Body: body}
	resp, err := d.deps.Idempotency.Run(ctx, idem, func(tx *sqlx.Tx) (int, any, error) {
		r, err := d.deps.Payments.Refund(ctx, tx, m.ID, orderID, req)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]string{"refunded": r.Amount.String()}, nil
	})
	if err != nil {
		return d.showRefund(c, form, err)
	}
	if resp.Refusal != nil {
		return d.showRefund(c, form, resp.Refusal)
	}
	var done map[string]string
	if err := json.Unmarshal(resp.Body, &done); err != nil {
		return d.renderError(c, fmt.Errorf("stored refund: %w", err))
	}
	return redirectFlash(c, "/dashboard/orders/"+url.PathEscape(orderID), "Refunded "+done["refunded"]+" to the shopper's wallet.")
}

// refundRequest reads the refund form: a reason is required, and "another
// reason" needs its words.
func (d *Dashboard) refundRequest(ctx context.Context, merchantID, orderID string, form refundForm) (payments.RefundRequest, error) {
	var fields []problem.FieldError
	reason := ""
	for _, r := range refundReasons {
		if r.Value == form.Reason {
			reason = r.Label
		}
	}
	switch {
	case reason == "":
		fields = append(fields, problem.FieldError{Field: "reason", Code: "required", Detail: "choose why you refund"})
	case form.Reason == "other" && form.Note == "":
		fields = append(fields, problem.FieldError{Field: "note", Code: "required", Detail: "say why you refund"})
	case form.Reason == "other":
		reason = form.Note
	case form.Note != "":
		reason += " — " + form.Note
	}
	req := payments.RefundRequest{Reason: reason}
	switch {
	case form.Scope == refundAll:
	case strings.HasPrefix(form.Scope, refundCoupon):
		req.CouponID = strings.TrimPrefix(form.Scope, refundCoupon)
	case form.Scope == refundProducts:
		o, err := d.deps.Payments.MerchantOrder(ctx, merchantID, orderID)
		if err != nil {
			return req, err
		}
		currency, err := money.ParseCurrency(o.Currency)
		if err != nil {
			return req, fmt.Errorf("order currency: %w", err)
		}
		minor, err := currency.Parse(form.Amount)
		if err != nil || minor <= 0 {
			fields = append(fields, problem.FieldError{Field: "amount", Code: "invalid_amount",
				Detail: "write an amount above zero, such as " + currency.Format(150)})
		} else {
			amount := money.New(minor, currency)
			req.Amount = &amount
		}
	default:
		fields = append(fields, problem.FieldError{Field: "scope", Code: "invalid_choice", Detail: "choose what to refund"})
	}
	if len(fields) > 0 {
		return req, problem.Invalid(fields...)
	}
	return req, nil
}

func (d *Dashboard) redemptions(c echo.Context) error {
	coupons, err := d.deps.Payments.MerchantCoupons(c.Request().Context(), merchantOf(c).ID, payments.CouponRedeemed, redemptionsShownMax)
	if err != nil {
		return d.renderError(c, err)
	}
	return d.renderPage(c, http.StatusOK, "dash_redemptions.html", newPage(c, "Redemptions", "redemptions", coupons))
}
