package payments

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/jsonin"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
)

// registerAfterSale mounts top-ups (channel key), redemptions, refunds,
// balances and statements (merchant key).
func (h *HTTP) registerAfterSale(v1 *echo.Group, channel, merchant echo.MiddlewareFunc) {
	v1.POST("/channel/shoppers/:id/topups", h.topUp, channel)
	v1.GET("/channel/shoppers/:id/topups/:topup", h.getTopUp, channel)
	h.registerHosted(v1, channel)
	v1.POST("/redemptions", h.redeem, merchant)
	v1.POST("/orders/:id/refunds", h.refund, merchant)
	v1.GET("/balances", h.balances, merchant)
	v1.GET("/ledger/accounts/:kind/statement", h.statement, merchant)
}

type topUpRequest struct {
	Amount money.Amount `json:"amount"`
	Card   string       `json:"card"`
	// Method, MerchantID and ReturnURL pay on a merchant's provider page
	// (hosted.go) instead of by card.
	Method     string `json:"method"`
	MerchantID string `json:"merchant_id"`
	ReturnURL  string `json:"return_url"`
}

type topUpJSON struct {
	ID        string        `json:"id"`
	ShopperID string        `json:"shopper_id"`
	Status    string        `json:"status"`
	Amount    money.Amount  `json:"amount"`
	CardLast4 string        `json:"card_last4"`
	Balance   *money.Amount `json:"balance,omitempty"`
	Failure   string        `json:"failure_code,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
}

func toTopUpJSON(t TopUp) topUpJSON {
	out := topUpJSON{
		ID: t.ID, ShopperID: t.ShopperID, Status: t.Status, Amount: amount(t.AmountMinor, t.Currency),
		CardLast4: t.CardLast4, Failure: t.FailureCode.String, CreatedAt: t.CreatedAt,
	}
	if t.BalanceAfterMinor.Valid {
		b := amount(t.BalanceAfterMinor.Int64, t.Currency)
		out.Balance = &b
	}
	return out
}

// topUpStatus is 201 for a credited top-up and 202 while the outcome is
// being confirmed (the client polls GET …/topups/{id}).
func topUpStatus(t TopUp) int {
	if t.Status == TopUpSucceeded {
		return http.StatusCreated
	}
	return http.StatusAccepted
}

func (h *HTTP) topUp(c echo.Context) error {
	var in topUpRequest
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return money.FieldProblem("amount", err)
	}
	if in.Method != "" && in.Method != MethodCard {
		return h.hostedTopUp(c, in)
	}
	sh, err := h.shopperParam(c)
	if err != nil {
		return err
	}
	key, err := idempotency.KeyOf(c.Request())
	if err != nil {
		return err
	}
	t, err := h.service.TopUp(c.Request().Context(), sh, in.Amount, in.Card, key)
	if err != nil {
		return err
	}
	return c.JSON(topUpStatus(t), toTopUpJSON(t))
}

func (h *HTTP) getTopUp(c echo.Context) error {
	sh, err := h.shopperParam(c)
	if err != nil {
		return err
	}
	t, err := h.service.HostedTopUpByID(c.Request().Context(), sh.ID, c.Param("topup"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toHostedTopUpJSON(t))
}

type redeemLineJSON struct {
	SKU      string       `json:"sku"`
	Category string       `json:"category"`
	Amount   money.Amount `json:"amount"`
}

type redeemRequestJSON struct {
	Code  string           `json:"code"`
	Lines []redeemLineJSON `json:"lines"`
	At    *time.Time       `json:"at"`
}

type redemptionJSON struct {
	ID         string       `json:"id"`
	CouponID   string       `json:"coupon_id"`
	Code       string       `json:"code"`
	Title      string       `json:"title"`
	Value      money.Amount `json:"value"`
	Fee        money.Amount `json:"fee"`
	Net        money.Amount `json:"net"`
	UsesLeft   int          `json:"uses_left"`
	Status     string       `json:"coupon_status"`
	Typed      bool         `json:"typed"`
	RedeemedAt time.Time    `json:"redeemed_at"`
}

func (h *HTTP) redeem(c echo.Context) error {
	var in redeemRequestJSON
	body, err := httpapi.BindJSON(c, &in)
	if err != nil {
		return err
	}
	// A scanned QR carries its token; anything else is a typed code.
	req := RedeemRequest{Code: in.Code, Typed: !strings.HasPrefix(strings.TrimSpace(in.Code), RedemptionQRPrefix)}
	if in.At != nil {
		req.At = *in.At
	}
	for _, l := range in.Lines {
		req.Lines = append(req.Lines, catalog.Line{SKU: l.SKU, Category: l.Category, Amount: l.Amount})
	}
	m := merchantOf(c)
	return h.idempotency.Handle(c, idempotency.MerchantScope(m.ID), body, func(tx *sqlx.Tx) (int, any, error) {
		r, err := h.service.Redeem(c.Request().Context(), tx, m.ID, req)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, redemptionJSON{
			ID: r.ID, CouponID: r.CouponID, Code: r.Code, Title: r.Title, Value: r.Value, Fee: r.Fee, Net: r.Net,
			UsesLeft: r.UsesLeft, Status: r.Status, Typed: r.Typed, RedeemedAt: r.RedeemedAt,
		}, nil
	})
}

type refundRequestJSON struct {
	Amount   *money.Amount `json:"amount"`
	CouponID presentString `json:"coupon_id"`
	Reason   string        `json:"reason"`
}

// presentString tells an absent member from one that is present: a refund
// without coupon_id refunds the whole order, so a coupon_id that is there
// but empty or null must be refused, never read as "everything".
type presentString struct {
	Set   bool
	Value string
}

func (p *presentString) UnmarshalJSON(data []byte) error {
	p.Set = true
	return jsonin.DecodeNested(data, &p.Value)
}

type refundJSON struct {
	ID        string       `json:"id"`
	OrderID   string       `json:"order_id"`
	CouponIDs []string     `json:"coupon_ids"`
	Amount    money.Amount `json:"amount"`
	Vouchers  money.Amount `json:"vouchers"`
	Products  money.Amount `json:"products"`
	FeeBack   money.Amount `json:"fee_returned"`
	Order     orderJSON    `json:"order"`
	Reason    string       `json:"reason"`
	CreatedAt time.Time    `json:"created_at"`
}

func (h *HTTP) refund(c echo.Context) error {
	var in refundRequestJSON
	body, err := httpapi.ReadBody(c)
	if err != nil {
		return err
	}
	// An empty body is a full refund.
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := httpapi.RequireJSON(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
			return err
		}
		if err := httpapi.DecodeJSON(body, &in); err != nil {
			return money.FieldProblem("amount", err)
		}
	}
	if in.CouponID.Set && in.CouponID.Value == "" {
		return problem.Field("coupon_id", "required", "name the voucher to refund, or leave coupon_id out to refund the whole order")
	}
	m := merchantOf(c)
	return h.idempotency.Handle(c, idempotency.MerchantScope(m.ID), body, func(tx *sqlx.Tx) (int, any, error) {
		r, err := h.service.Refund(c.Request().Context(), tx, m.ID, c.Param("id"), RefundRequest{CouponID: in.CouponID.Value, Amount: in.Amount, Reason: in.Reason})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, refundJSON{
			ID: r.ID, OrderID: r.OrderID, CouponIDs: r.CouponIDs, Amount: r.Amount, Vouchers: r.Vouchers,
			Products: r.Products, FeeBack: r.FeeBack, Order: toOrderJSON(r.Order), Reason: r.Reason, CreatedAt: r.CreatedAt,
		}, nil
	})
}

// merchantCurrency is the ?currency= parameter, or the merchant's default.
func merchantCurrency(c echo.Context, m catalog.Merchant) (money.Currency, error) {
	code := c.QueryParam("currency")
	if code == "" {
		return m.DefaultCurrency, nil
	}
	currency, err := money.ParseCurrency(code)
	if err != nil {
		return money.Currency{}, money.FieldProblem("currency", err)
	}
	return currency, nil
}

func (h *HTTP) balances(c echo.Context) error {
	m := merchantOf(c)
	currency, err := merchantCurrency(c, m)
	if err != nil {
		return err
	}
	b, err := h.service.MerchantBalances(c.Request().Context(), m.ID, currency)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"currency": currency.Code(), "available": b.Available, "deferred": b.Deferred,
		"breakage": b.Breakage, "fees_paid": b.FeesPaid,
	})
}

type statementLineJSON struct {
	PostingID     int64     `json:"posting_id"`
	TransactionID int64     `json:"transaction_id"`
	Description   string    `json:"description"`
	Amount        string    `json:"amount"` // signed: negative for a debit
	BalanceAfter  string    `json:"balance_after"`
	CreatedAt     time.Time `json:"created_at"`
}

func (h *HTTP) statement(c echo.Context) error {
	m := merchantOf(c)
	var ref ledger.AccountRef
	switch c.Param("kind") {
	case "available":
		ref = ledger.MerchantAvailable(m.ID)
	case "deferred":
		ref = ledger.MerchantDeferred(m.ID)
	case "breakage":
		ref = ledger.MerchantBreakage(m.ID)
	default:
		return problem.NotFound("account")
	}
	currency, err := merchantCurrency(c, m)
	if err != nil {
		return err
	}
	limit, err := httpapi.QueryLimit(c, ledger.StatementPageSizeMax)
	if err != nil {
		return err
	}
	cursor := c.QueryParam("cursor")
	if len(cursor) > statementCursorLengthMax {
		return problem.Field("cursor", "invalid_cursor", "a statement cursor has at most %d characters; pass next_cursor as it came", statementCursorLengthMax)
	}
	page, err := h.service.Statement(c.Request().Context(), ref, currency, cursor, limit)
	if err != nil {
		return err
	}
	lines := make([]statementLineJSON, len(page.Lines))
	for i, l := range page.Lines {
		lines[i] = statementLineJSON{
			PostingID: l.PostingID, TransactionID: l.TransactionID, Description: l.Description,
			Amount: currency.Format(l.Amount), BalanceAfter: currency.Format(l.BalanceAfter), CreatedAt: l.CreatedAt,
		}
	}
	return c.JSON(http.StatusOK, statementJSON{Account: ref.Code(), Currency: currency.Code(), Page: httpapi.NewPage(lines, page.NextCursor)})
}

// statementJSON is a list like every other ({data, next_cursor}) with the
// account it belongs to.
// statementCursorLengthMax is the longest cursor a statement hands out (two
// integers), as openapi.yaml says.
const statementCursorLengthMax = 64

type statementJSON struct {
	Account  string `json:"account"`
	Currency string `json:"currency"`
	httpapi.Page[statementLineJSON]
}

// Balances are a merchant's accounts in one currency.
type Balances struct {
	Available money.Amount
	Deferred  money.Amount
	Breakage  money.Amount
	// FeesPaid is the platform fee taken from the merchant's recognised
	// revenue, net of fees returned by refunds.
	FeesPaid money.Amount
}

// MerchantBalances returns a merchant's balances in currency. Deferred is
// shown as the liability it is: the value of sold, unredeemed vouchers
// (the ledger keeps it as a credit balance).
func (s *Service) MerchantBalances(ctx context.Context, merchantID string, currency money.Currency) (Balances, error) {
	var b Balances
	for _, part := range []struct {
		ref ledger.AccountRef
		dst *money.Amount
	}{
		{ledger.MerchantAvailable(merchantID), &b.Available},
		{ledger.MerchantDeferred(merchantID), &b.Deferred},
		{ledger.MerchantBreakage(merchantID), &b.Breakage},
	} {
		balance, err := s.ledger.Balance(ctx, s.db, part.ref, currency)
		if err != nil {
			return Balances{}, err
		}
		*part.dst = money.New(balance, currency)
	}
	fees, err := s.ledger.SumAlongside(ctx, s.db, ledger.PlatformFees(), ledger.MerchantAvailable(merchantID), currency)
	if err != nil {
		return Balances{}, err
	}
	b.FeesPaid = money.New(fees, currency)
	return b, nil
}

// Statement is a page of one of a merchant's accounts; an account never
// posted to has an empty statement.
func (s *Service) Statement(ctx context.Context, ref ledger.AccountRef, currency money.Currency, cursor string, limit int) (ledger.StatementPage, error) {
	page, err := s.ledger.Statement(ctx, s.db, ref, currency, cursor, limit)
	if p, ok := problem.As(err); ok && p.Kind == problem.KindNotFound {
		return ledger.StatementPage{}, nil
	}
	return page, err
}
