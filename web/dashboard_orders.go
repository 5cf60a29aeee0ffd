package web

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/jmoiron/sqlx"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/idempotency"
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
	Order          payments.Order
	Coupons        []payments.Coupon
	IdempotencyKey string // the refund forms' key: a double click refunds once
	Refundable     bool
}

func (d *Dashboard) order(c echo.Context) error {
	ctx := c.Request().Context()
	o, err := d.deps.Payments.MerchantOrder(ctx, merchantOf(c).ID, c.Param("id"))
	if err != nil {
		return d.renderError(c, err)
	}
	coupons, err := d.deps.Payments.OrderCoupons(ctx, o.ID)
	if err != nil {
		return d.renderError(c, err)
	}
	view := orderView{Order: o, Coupons: coupons, IdempotencyKey: newKey(), Refundable: o.Status != payments.OrderRefunded}
	return d.renderPage(c, http.StatusOK, "dash_order.html", newPage(c, "Order "+o.ID, "orders", view))
}

// refund gives an order (or one unredeemed voucher of it) back to the
// shopper's wallet, under the form's idempotency key. The payments service
// refuses what may not be refunded (a redeemed voucher, more than was paid).
func (d *Dashboard) refund(c echo.Context) error {
	ctx := c.Request().Context()
	m := merchantOf(c)
	orderID, couponID := c.Param("id"), c.FormValue("coupon_id")
	req := idempotency.Request{Scope: idempotency.MerchantScope(m.ID), Key: c.FormValue("idempotency_key"), Method: http.MethodPost,
		Path: "/dashboard/orders/" + orderID + "/refund", Body: []byte(couponID)}
	resp, err := d.deps.Idempotency.Run(ctx, req, func(tx *sqlx.Tx) (int, any, error) {
		r, err := d.deps.Payments.Refund(ctx, tx, m.ID, orderID, payments.RefundRequest{CouponID: couponID})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]string{"refunded": r.Amount.String()}, nil
	})
	if err != nil {
		return d.renderError(c, err)
	}
	flash := "Refund refused: see the order's state."
	if resp.ContentType != problem.ContentType {
		var done map[string]string
		if err := json.Unmarshal(resp.Body, &done); err == nil {
			flash = "Refunded " + done["refunded"] + " to the shopper's wallet."
		}
	} else {
		var doc struct{ Detail string }
		if err := json.Unmarshal(resp.Body, &doc); err == nil {
			flash = "Refund refused: " + doc.Detail
		}
	}
	return c.Redirect(http.StatusSeeOther, "/dashboard/orders/"+url.PathEscape(orderID)+"?flash="+url.QueryEscape(flash))
}

func (d *Dashboard) redemptions(c echo.Context) error {
	coupons, err := d.deps.Payments.MerchantCoupons(c.Request().Context(), merchantOf(c).ID, payments.CouponRedeemed, redemptionsShownMax)
	if err != nil {
		return d.renderError(c, err)
	}
	return d.renderPage(c, http.StatusOK, "dash_redemptions.html", newPage(c, "Redemptions", "redemptions", coupons))
}
