package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

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
	Accepted bool   `json:"accepted"`
	Code     string `json:"code"`
	Title    string `json:"title,omitempty"`
	Value    string `json:"value,omitempty"`
	UsesLeft int    `json:"uses_left"`
	Reason   string `json:"reason,omitempty"` // the stable code, kept for tests and support, never shown
	// What the cashier reads: a short headline, what it means and what to
	// do, and when the coupon can be used ("Valid again tomorrow at 14:00").
	Headline string `json:"-"`
	Advice   string `json:"-"`
	When     string `json:"-"`
}

// tillWords are the refusals in the cashier's words: a headline and what
// to do. The codes are the API's (catalog's reasons and payments' codes).
var tillWords = map[string][2]string{
	"outside_time_window":       {"Not valid at this hour", "This coupon can be used only during its hours."},
	"not_yet_valid":             {"Not valid yet", "This coupon cannot be used before its first day."},
	"expired":                   {"Expired", "This coupon's validity has ended; it cannot be used."},
	"already_redeemed":          {"Already used", "This coupon was redeemed before and cannot be used again."},
	"coupon_refunded":           {"Refunded", "The shopper got the money for this coupon back; it cannot be used."},
	"category_excluded":         {"Not for this purchase", "The basket holds something this coupon does not cover. Charge that separately, or leave the basket empty for the coupon's own item."},
	"category_not_included":     {"Not for this purchase", "This coupon covers only some kinds of items, and the basket holds others."},
	"below_min_spend":           {"Basket too small", "The basket is below this coupon's minimum spend."},
	"empty_basket":              {"Empty basket", "Type what the shopper buys, or leave the basket empty for the coupon's own item."},
	"currency_mismatch":         {"Wrong currency", "The basket is in another currency than the coupon."},
	"coupon_not_found":          {"Unknown coupon", "No coupon of this shop has this code. Check the code, or scan the QR code again."},
	"not_found":                 {"Unknown coupon", "No coupon of this shop has this code. Check the code, or scan the QR code again."},
	"redemption_token_required": {"Scan the QR code", "Scan the QR code on the shopper's screen; a code typed in is not enough here."},
	"redemption_token_invalid":  {"QR code out of date", "The code on the shopper's screen has changed or is not genuine. Ask them to show the coupon again, and scan it."},
	"typed_code_not_allowed":    {"Typed codes are off", "This shop accepts the coupon's QR code only: scan it from the shopper's screen. Settings can allow typed codes."},
}

// refusedVerdict words a refusal for the cashier; next is when the coupon
// can be used next and ended when it stopped being valid, if the refusal
// says.
func refusedVerdict(code, reason, detail, next, ended string) tillVerdict {
	v := tillVerdict{Code: code, Reason: reason}
	if words, ok := tillWords[reason]; ok {
		v.Headline, v.Advice = words[0], words[1]
	} else {
		v.Headline, v.Advice = "Cannot be used", upperFirst(detail)
	}
	switch {
	case next != "" && reason == string(catalog.ReasonNotYetValid):
		v.When = "Valid from " + next + "."
	case next != "":
		v.When = "Valid again " + next + "."
	case ended != "" && reason == string(catalog.ReasonExpired):
		v.When = "It was valid until " + ended + "."
	}
	return v
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// nextValidText says when a refused coupon can be used next, as a cashier
// would: "today at 14:00", "tomorrow at 14:00", "Fri 5 Dec at 14:00".
func nextValidText(rfc3339 string, now time.Time, loc *time.Location) string {
	t, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil {
		return ""
	}
	local, today := t.In(loc), now.In(loc)
	y, m, d := today.Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, loc)
	switch {
	case local.Before(midnight.AddDate(0, 0, 1)):
		return "today at " + local.Format("15:04")
	case local.Before(midnight.AddDate(0, 0, 2)):
		return "tomorrow at " + local.Format("15:04")
	case local.Year() == today.Year():
		return local.Format("Mon 2 Jan") + " at " + local.Format("15:04")
	}
	return local.Format("Mon 2 Jan 2006") + " at " + local.Format("15:04")
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
	ctx := c.Request().Context()
	resp, err := d.deps.Idempotency.Run(ctx, idem, func(tx *sqlx.Tx) (int, any, error) {
		r, err := d.deps.Payments.Redeem(ctx, tx, m.ID, req)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, tillVerdict{Accepted: true, Code: r.Code, Title: r.Title, Value: r.Value.String(), UsesLeft: r.UsesLeft}, nil
	})
	refused := resp.Refusal
	if err != nil {
		// An unknown code is an answer for the cashier, not an error page;
		// a bad basket goes back to the form.
		p, ok := problem.As(err)
		if !ok || p.Kind != problem.KindNotFound {
			return d.showTill(c, view, err)
		}
		refused = p
	}
	var verdict tillVerdict
	if refused != nil {
		next := ""
		if at, ok := refused.Extensions["next_valid_at"].(string); ok {
			now, err := d.deps.Payments.NowFor(ctx, m.ID) // a sandbox merchant's test clock
			if err != nil {
				return d.renderError(c, err)
			}
			next = nextValidText(at, now, m.Location())
		}
		ended := ""
		if at, ok := refused.Extensions["expires_at"].(string); ok {
			if t, err := time.Parse(time.RFC3339, at); err == nil {
				ended = catalog.RenderEnd(t, "en", m.Location())
			}
		}
		verdict = refusedVerdict(req.Code, refused.Code, refused.Detail, next, ended)
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
