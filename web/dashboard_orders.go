package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/payments"
)

// ordersPageSize is how many orders one page of the orders list shows.
const ordersPageSize = 50

// redemptionsShownMax is how many recent redemptions the page lists.
const redemptionsShownMax = payments.ListPageSizeMax

func (d *Dashboard) registerOrders(g *echo.Group) {
	g.GET("/orders", d.orders)
	g.GET("/orders/:id", d.order)
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
	Order   payments.Order
	Coupons []payments.Coupon
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
	return d.renderPage(c, http.StatusOK, "dash_order.html", newPage(c, "Order "+o.ID, "orders", orderView{Order: o, Coupons: coupons}))
}

func (d *Dashboard) redemptions(c echo.Context) error {
	coupons, err := d.deps.Payments.MerchantCoupons(c.Request().Context(), merchantOf(c).ID, payments.CouponRedeemed, redemptionsShownMax)
	if err != nil {
		return d.renderError(c, err)
	}
	return d.renderPage(c, http.StatusOK, "dash_redemptions.html", newPage(c, "Redemptions", "redemptions", coupons))
}
