package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/payments"
)

// tillBasketLinesMax bounds the basket typed at the till.
const tillBasketLinesMax = payments.RedeemLinesMax

// tillView is the till page: the code field and the verdict of the last scan.
type tillView struct {
	Available      bool
	IdempotencyKey string
	Code           string
	Basket         string
	Verdict        *tillVerdict
}

// tillVerdict is what the cashier sees after a scan. It is also the stored
// answer of the till's idempotent post, so a double submit shows the first
// verdict instead of "already redeemed".
type tillVerdict struct {
	Accepted    bool   `json:"accepted"`
	Code        string `json:"code"`
	Title       string `json:"title,omitempty"`
	Value       string `json:"value,omitempty"`
	UsesLeft    int    `json:"uses_left"`
	Reason      string `json:"reason,omitempty"`
	Detail      string `json:"detail,omitempty"`
	NextValidAt string `json:"next_valid_at,omitempty"` // in the merchant's zone, for people
}

func (d *Dashboard) tillPage(c echo.Context) error {
	view := tillView{Available: true, IdempotencyKey: newKey()}
	return d.renderPage(c, http.StatusOK, "dash_till.html", newPage(c, "Till", "till", view))
}

// tillRedeem redeems what the cashier typed or scanned. A handheld scanner
// types the coupon QR's content ("CP1:…") followed by Enter, so the same
// field takes both; anything else is a typed printed code.
func (d *Dashboard) tillRedeem(c echo.Context) error {
	m := merchantOf(c)
	view := tillView{Available: true, IdempotencyKey: newKey(), Code: strings.TrimSpace(c.FormValue("code")), Basket: c.FormValue("basket")}
	lines, err := parseBasket(view.Basket, m.DefaultCurrency)
	if err != nil {
		return d.showTill(c, view, err)
	}
	req := payments.RedeemRequest{Code: view.Code, Lines: lines, Typed: !strings.HasPrefix(view.Code, payments.RedemptionQRPrefix)}
	body, _ := json.Marshal(req) // strings, amounts and a bool always encode
	idem := idempotency.Request{Scope: idempotency.MerchantScope(m.ID), Key: c.FormValue("idempotency_key"), Method: http.MethodPost, Path: "/dashboard/till", Body: body}
	// A refusal comes back as the problem it is, so the idempotency layer
	// rolls the change back to its savepoint before storing the answer.
	resp, err := d.deps.Idempotency.Run(c.Request().Context(), idem, func(tx *sqlx.Tx) (int, any, error) {
		r, err := d.deps.Payments.Redeem(c.Request().Context(), tx, m.ID, req)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, tillVerdict{Accepted: true, Code: r.Code, Title: r.Title, Value: r.Value.String(), UsesLeft: r.UsesLeft}, nil
	})
	if err != nil {
		return d.showTill(c, view, err)
	}
	var verdict tillVerdict
	if resp.ContentType == problem.ContentType {
		var refused struct {
			Code        string `json:"code"`
			Detail      string `json:"detail"`
			NextValidAt string `json:"next_valid_at"`
		}
		if err := json.Unmarshal(resp.Body, &refused); err != nil {
			return d.renderError(c, fmt.Errorf("stored till refusal: %w", err))
		}
		verdict = tillVerdict{Code: req.Code, Reason: refused.Code, Detail: refused.Detail}
		if refused.NextValidAt != "" {
			verdict.NextValidAt = localTimeText(refused.NextValidAt, m)
		}
	} else if err := json.Unmarshal(resp.Body, &verdict); err != nil {
		return d.renderError(c, fmt.Errorf("stored till verdict: %w", err))
	}
	view.Verdict = &verdict
	if verdict.Accepted {
		view.Code, view.Basket = "", "" // ready for the next customer
	}
	status := http.StatusOK
	if !verdict.Accepted {
		status = http.StatusUnprocessableEntity
	}
	return d.renderPage(c, status, "dash_till.html", newPage(c, "Till", "till", view))
}

func (d *Dashboard) showTill(c echo.Context, view tillView, err error) error {
	p, ok := formProblem(err)
	if !ok {
		return d.renderError(c, err)
	}
	pg := newPage(c, "Till", "till", view)
	pg.Error, pg.Fields = p.Detail, p.Fields
	return d.renderPage(c, p.Status(), "dash_till.html", pg)
}

// parseBasket reads "category amount" lines ("coffee 12.00"); an empty
// basket means the voucher's own item.
func parseBasket(text string, currency money.Currency) ([]catalog.Line, error) {
	var lines []catalog.Line
	for i, raw := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if len(lines) >= tillBasketLinesMax {
			return nil, problem.Field("basket", "too_many_lines", "a basket has at most %d lines", tillBasketLinesMax)
		}
		category, amount, ok := strings.Cut(raw, " ")
		minor, err := currency.Parse(strings.TrimSpace(amount))
		if !ok || err != nil {
			return nil, problem.Field("basket", "invalid_line", "line %d: write a category and an amount, such as: coffee 12.00", i+1)
		}
		lines = append(lines, catalog.Line{SKU: fmt.Sprintf("till-%d", i+1), Category: strings.ToLower(category), Amount: money.New(minor, currency)})
	}
	return lines, nil
}

func localTimeText(rfc3339 string, m catalog.Merchant) string {
	t, err := timeParseRFC3339(rfc3339)
	if err != nil {
		return rfc3339
	}
	return t.In(m.Location()).Format("Mon 2 Jan 2006 15:04")
}
