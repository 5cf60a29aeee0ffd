package payments

import (
	"context"
	"net/http"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/qr"
)

// HTTP serves the channel API (bots acting for their shoppers) and the
// merchant's order API.
type HTTP struct {
	service     *Service
	catalog     *catalog.Service
	idempotency *idempotency.Store
}

// NewHTTP returns the payment routes.
func NewHTTP(service *Service, c *catalog.Service, idem *idempotency.Store) *HTTP {
	return &HTTP{service: service, catalog: c, idempotency: idem}
}

// Register mounts the routes: /v1/channel/… behind the channel key,
// /v1/orders… behind the merchant key.
func (h *HTTP) Register(g *echo.Group) {
	channel := RequireChannelKey(h.service)
	v1 := g.Group("/v1")
	v1.POST("/channel/shoppers", h.ensureShopper, channel)
	v1.GET("/channel/shoppers/:id/wallet", h.wallet, channel)
	v1.GET("/channel/shoppers/:id/coupons", h.shopperCoupons, channel)
	v1.POST("/channel/purchases", h.purchase, channel)
	v1.POST("/channel/checkouts", h.createCheckout, channel)
	v1.GET("/channel/checkouts/:id", h.getCheckout, channel)
	v1.POST("/channel/checkouts/:id/confirm", h.confirm, channel)
	v1.POST("/channel/checkouts/:id/cancel", h.cancel, channel)

	merchant := catalog.RequireMerchantKey(h.catalog)
	v1.POST("/checkouts", h.createTillCheckout, merchant)
	v1.GET("/orders", h.listOrders, merchant)
	v1.GET("/orders/:id", h.getOrder, merchant)
	h.registerAfterSale(v1, channel, merchant)
	h.registerLaunch(v1)
}

func channelOf(c echo.Context) Channel {
	ch, ok := ChannelFromContext(c)
	if !ok {
		panic("payments: channel route without RequireChannelKey")
	}
	return ch
}

func merchantOf(c echo.Context) catalog.Merchant {
	m, ok := catalog.MerchantFromContext(c)
	if !ok {
		panic("payments: merchant route without RequireMerchantKey")
	}
	return m
}

type shopperRequest struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
}

func (h *HTTP) ensureShopper(c echo.Context) error {
	var in shopperRequest
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return err
	}
	ch := channelOf(c)
	var sh Shopper
	err := withTx(c.Request().Context(), h.service.db, func(tx *sqlx.Tx) error {
		var err error
		sh, err = h.service.EnsureShopper(c.Request().Context(), tx, ch.ID, in.UserID, in.Name)
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sh)
}

func (h *HTTP) shopperParam(c echo.Context) (Shopper, error) {
	return h.service.ShopperOfChannel(c.Request().Context(), channelOf(c).ID, c.Param("id"))
}

func (h *HTTP) wallet(c echo.Context) error {
	sh, err := h.shopperParam(c)
	if err != nil {
		return err
	}
	currency, err := money.ParseCurrency(c.QueryParam("currency"))
	if err != nil {
		return money.FieldProblem("currency", err)
	}
	balance, err := h.service.WalletBalance(c.Request().Context(), sh.ID, currency)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"shopper_id": sh.ID, "balance": balance})
}

func (h *HTTP) shopperCoupons(c echo.Context) error {
	sh, err := h.shopperParam(c)
	if err != nil {
		return err
	}
	coupons, err := h.service.ShopperCoupons(c.Request().Context(), sh.ID, ListPageSizeMax)
	if err != nil {
		return err
	}
	out := make([]couponJSON, len(coupons))
	for i, cp := range coupons {
		out[i] = toCouponJSON(cp)
	}
	return c.JSON(http.StatusOK, httpapi.NewPage(out, ""))
}

type purchaseRequest struct {
	ShopperID string `json:"shopper_id"`
	ChatID    string `json:"chat_id"`
	ItemID    string `json:"item_id"`
	Code      string `json:"code"`
	Quantity  *int   `json:"quantity"`
}

// purchase is the one-call purchase: an item (or a scanned item or till
// code) paid from the shopper's wallet in the transaction that claims the
// Idempotency-Key, answering the receipt. Bots that must hold stock while
// the shopper decides use the two-step checkout below instead.
func (h *HTTP) purchase(c echo.Context) error {
	var in purchaseRequest
	body, err := httpapi.BindJSON(c, &in)
	if err != nil {
		return err
	}
	ch := channelOf(c)
	sh, err := h.namedShopper(c, ch.ID, in.ShopperID)
	if err != nil {
		return err
	}
	p := Purchase{Shopper: sh, ChatID: in.ChatID, ItemID: in.ItemID, Code: in.Code}
	if in.Quantity != nil {
		if *in.Quantity < 1 || *in.Quantity > LineQuantityMax {
			return problem.Field("quantity", "invalid_quantity", "quantity must be 1 to %d", LineQuantityMax)
		}
		p.Quantity = *in.Quantity
	}
	return h.idempotency.Handle(c, idempotency.ChannelScope(ch.ID), body, func(tx *sqlx.Tx) (int, any, error) {
		receipt, err := h.service.Buy(c.Request().Context(), tx, p)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toReceiptJSON(receipt), nil
	})
}

// namedShopper is the shopper a channel's purchase or checkout names,
// refused as a field of the body when the channel has no such shopper.
func (h *HTTP) namedShopper(c echo.Context, channelID, shopperID string) (Shopper, error) {
	sh, err := h.service.cachedShopperOfChannel(c.Request().Context(), channelID, shopperID)
	if p, ok := problem.As(err); ok && p.Kind == problem.KindNotFound {
		return Shopper{}, problem.Field("shopper_id", "unknown_shopper", "no shopper %q on this channel", shopperID)
	}
	return sh, err
}

type checkoutRequest struct {
	ShopperID  string `json:"shopper_id"`
	ChatID     string `json:"chat_id"`
	TTLSeconds *int64 `json:"ttl_seconds"`
	Lines      []struct {
		ItemID   string `json:"item_id"`
		Quantity int    `json:"quantity"`
	} `json:"lines"`
}

func (h *HTTP) createCheckout(c echo.Context) error {
	var in checkoutRequest
	body, err := httpapi.BindJSON(c, &in)
	if err != nil {
		return err
	}
	ch := channelOf(c)
	sh, err := h.namedShopper(c, ch.ID, in.ShopperID)
	if err != nil {
		return err
	}
	ttl, err := httpapi.Seconds("ttl_seconds", in.TTLSeconds, CheckoutTTLMin, CheckoutTTLMax)
	if err != nil {
		return err
	}
	req := CheckoutRequest{Shopper: sh, ChatID: in.ChatID, Reserve: true, TTL: ttl}
	for _, l := range in.Lines {
		req.Lines = append(req.Lines, LineRequest{ItemID: l.ItemID, Quantity: l.Quantity})
	}
	return h.idempotency.Handle(c, idempotency.ChannelScope(ch.ID), body, func(tx *sqlx.Tx) (int, any, error) {
		co, err := h.service.CreateCheckout(c.Request().Context(), tx, req)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, toCheckoutJSON(co), nil
	})
}

// checkoutShopper returns the shopper of one of the channel's checkouts;
// another channel's checkout is not found.
func (h *HTTP) checkoutShopper(c echo.Context) (Shopper, error) {
	return h.service.CheckoutShopper(c.Request().Context(), channelOf(c).ID, c.Param("id"))
}

func (h *HTTP) getCheckout(c echo.Context) error {
	sh, err := h.checkoutShopper(c)
	if err != nil {
		return err
	}
	co, err := h.service.Checkout(c.Request().Context(), c.Param("id"), sh.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCheckoutJSON(co))
}

// checkoutAction runs act on one of the channel's checkouts in a transaction
// that claims the request's Idempotency-Key under the channel's scope.
func (h *HTTP) checkoutAction(c echo.Context, act func(ctx context.Context, tx *sqlx.Tx, sh Shopper) (any, error)) error {
	body, err := httpapi.ReadBody(c)
	if err != nil {
		return err
	}
	sh, err := h.checkoutShopper(c)
	if err != nil {
		return err
	}
	return h.idempotency.Handle(c, idempotency.ChannelScope(channelOf(c).ID), body, func(tx *sqlx.Tx) (int, any, error) {
		out, err := act(c.Request().Context(), tx, sh)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, out, nil
	})
}

func (h *HTTP) confirm(c echo.Context) error {
	return h.checkoutAction(c, func(ctx context.Context, tx *sqlx.Tx, sh Shopper) (any, error) {
		receipt, err := h.service.Buy(ctx, tx, Purchase{Shopper: sh, CheckoutID: c.Param("id")})
		if err != nil {
			return nil, err
		}
		return toReceiptJSON(receipt), nil
	})
}

func (h *HTTP) cancel(c echo.Context) error {
	return h.checkoutAction(c, func(ctx context.Context, tx *sqlx.Tx, sh Shopper) (any, error) {
		co, err := h.service.Cancel(ctx, tx, c.Param("id"), sh)
		if err != nil {
			return nil, err
		}
		return toCheckoutJSON(co), nil
	})
}

func (h *HTTP) listOrders(c echo.Context) error {
	limit, err := httpapi.QueryLimit(c, ListPageSizeMax)
	if err != nil {
		return err
	}
	page, err := h.service.MerchantOrders(c.Request().Context(), merchantOf(c).ID, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	out := make([]orderJSON, len(page.Orders))
	for i, o := range page.Orders {
		out[i] = toOrderJSON(o)
	}
	return c.JSON(http.StatusOK, httpapi.NewPage(out, page.NextCursor))
}

func (h *HTTP) getOrder(c echo.Context) error {
	o, err := h.service.MerchantOrder(c.Request().Context(), merchantOf(c).ID, c.Param("id"))
	if err != nil {
		return err
	}
	coupons, err := h.service.OrderCoupons(c.Request().Context(), o.ID)
	if err != nil {
		return err
	}
	out := toOrderJSON(o)
	for _, cp := range coupons {
		out.Coupons = append(out.Coupons, toCouponJSON(cp))
	}
	return c.JSON(http.StatusOK, out)
}

type tillCheckoutRequest struct {
	TTLSeconds *int64 `json:"ttl_seconds"`
	Lines      []struct {
		ItemID   string `json:"item_id"`
		Quantity int    `json:"quantity"`
	} `json:"lines"`
}

type tillCheckoutJSON struct {
	Checkout checkoutJSON `json:"checkout"`
	QRCodeID string       `json:"qr_code_id"`
	URL      string       `json:"url"`
}

// createTillCheckout is the point of sale's "show a code to pay": a checkout
// of the merchant's items and its one-time QR code.
func (h *HTTP) createTillCheckout(c echo.Context) error {
	var in tillCheckoutRequest
	body, err := httpapi.BindJSON(c, &in)
	if err != nil {
		return err
	}
	m := merchantOf(c)
	lines := make([]LineRequest, 0, len(in.Lines))
	for _, l := range in.Lines {
		lines = append(lines, LineRequest{ItemID: l.ItemID, Quantity: l.Quantity})
	}
	ttl, err := httpapi.Seconds("ttl_seconds", in.TTLSeconds, qr.DynamicTTLMin, qr.DynamicTTLMax)
	if err != nil {
		return err
	}
	return h.idempotency.Handle(c, idempotency.MerchantScope(m.ID), body, func(tx *sqlx.Tx) (int, any, error) {
		till, err := h.service.CreateTillCheckout(c.Request().Context(), tx, m.ID, lines, ttl)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, tillCheckoutJSON{
			Checkout: toCheckoutJSON(till.Checkout), QRCodeID: till.Code.ID, URL: h.service.qr.URL(till.Code.Token),
		}, nil
	})
}
