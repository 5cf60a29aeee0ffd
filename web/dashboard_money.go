package web

import (
	"fmt"
	"html/template"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/qr"
)

// salesChartDays is the span of the sales chart: the last 30 local days.
const salesChartDays = 30

// statementPageSize is how many postings one statement page shows.
const statementPageSize = 50

func (d *Dashboard) registerMoney(g *echo.Group) {
	g.GET("/money", d.money)
}

// balances are the merchant's accounts in its default currency.
type balances struct {
	Available money.Amount
	Deferred  money.Amount
	Breakage  money.Amount
	Revenue   money.Amount // recognised, before fees
	Fees      money.Amount // the platform's share of Revenue at the current rate
	FeeRate   string
}

func (d *Dashboard) balances(c echo.Context, m catalog.Merchant) (balances, error) {
	ctx := c.Request().Context()
	cur := m.DefaultCurrency
	b := balances{FeeRate: d.deps.Payments.PlatformFee().String()}
	for _, acc := range []struct {
		ref ledger.AccountRef
		out *money.Amount
	}{{ledger.MerchantAvailable(m.ID), &b.Available}, {ledger.MerchantDeferred(m.ID), &b.Deferred}, {ledger.MerchantBreakage(m.ID), &b.Breakage}} {
		minor, err := d.deps.Ledger.Balance(ctx, d.deps.DB, acc.ref, cur)
		if err != nil {
			return balances{}, err
		}
		*acc.out = money.New(minor, cur)
	}
	revenue, err := d.deps.Payments.RecognisedRevenue(ctx, m.ID, cur)
	if err != nil {
		return balances{}, err
	}
	fee, _ := d.deps.Payments.PlatformFee().Split(revenue.Minor)
	b.Revenue, b.Fees = revenue, money.New(fee, cur)
	return b, nil
}

// homeView is the overview: balances and the three charts.
type homeView struct {
	Balances     balances
	SalesOrders  template.HTML
	SalesRevenue template.HTML
	OrdersTotal  int64
	RevenueTotal money.Amount
	Coupons      template.HTML
	QRFunnel     []qrFunnelRow
	Days         int
}

type qrFunnelRow struct {
	qr.FunnelRow
	ItemTitle string
	Chart     template.HTML
	// ByMessenger words the scans per messenger ("Telegram 3 · WeChat 1").
	ByMessenger string
}

func (d *Dashboard) home(c echo.Context) error {
	ctx := c.Request().Context()
	m := merchantOf(c)
	b, err := d.balances(c, m)
	if err != nil {
		return d.renderError(c, err)
	}
	view := homeView{Balances: b, Days: salesChartDays}
	now, err := d.deps.Payments.NowFor(ctx, m.ID) // a sandbox merchant's test clock
	if err != nil {
		return d.renderError(c, err)
	}
	days, err := d.deps.Payments.SalesByDay(ctx, m.ID, m.DefaultCurrency, m.Location(), now, salesChartDays)
	if err != nil {
		return d.renderError(c, err)
	}
	var orders, revenue []Bar
	var revenueMinor int64
	for _, day := range days {
		label := day.Day.Format("2 Jan")
		orders = append(orders, Bar{Label: label, Value: day.Orders, Display: countOf(day.Orders, "order", "orders")})
		revenue = append(revenue, Bar{Label: label, Value: day.Revenue.Minor, Display: day.Revenue.String()})
		view.OrdersTotal += day.Orders
		revenueMinor += day.Revenue.Minor
	}
	view.RevenueTotal = money.New(revenueMinor, m.DefaultCurrency)
	noSales := fmt.Sprintf("No sales in the last %d days\nOrders and revenue appear here, day by day, from your first sale.", salesChartDays)
	view.SalesOrders = ColumnChart("Orders per day, last 30 days", "#1d4ed8", noSales, orders)
	view.SalesRevenue = ColumnChart("Revenue per day, last 30 days ("+m.DefaultCurrency.Code()+")", "#0b6e4f", "", revenue)

	counts, err := d.deps.Payments.CouponFunnel(ctx, m.ID)
	if err != nil {
		return d.renderError(c, err)
	}
	view.Coupons = FunnelChart("Coupons: issued, redeemed, expired", "No coupons issued yet\nEach voucher sold issues a coupon; you will see here how many are redeemed, expire or are refunded.", []string{"#1d4ed8", "#0b6e4f", "#a4161a", "#6b7280"}, []Bar{
		{Label: "Issued", Value: counts.Issued, Display: itoa(int(counts.Issued))},
		{Label: "Redeemed", Value: counts.Redeemed, Display: itoa(int(counts.Redeemed))},
		{Label: "Expired", Value: counts.Expired, Display: itoa(int(counts.Expired))},
		{Label: "Refunded", Value: counts.Refunded, Display: itoa(int(counts.Refunded))},
	})

	if view.QRFunnel, err = d.qrFunnel(c, m); err != nil {
		return d.renderError(c, err)
	}
	return d.renderPage(c, http.StatusOK, "dash_home.html", newPage(c, "Overview", "home", view))
}

// qrFunnel joins qr's scans per code with payments' checkouts and paid
// orders per code: the dashboard asks each domain for its own numbers.
func (d *Dashboard) qrFunnel(c echo.Context, m catalog.Merchant) ([]qrFunnelRow, error) {
	ctx := c.Request().Context()
	rows, err := d.deps.QR.Funnel(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	qrIDs := make([]string, len(rows))
	for i, r := range rows {
		qrIDs[i] = r.QRID
	}
	counts, err := d.deps.Payments.CheckoutCountsByQR(ctx, m.ID, qrIDs)
	if err != nil {
		return nil, err
	}
	titles, _, err := d.itemTitles(c)
	if err != nil {
		return nil, err
	}
	byMessenger, err := d.deps.QR.ScansByMessenger(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	out := make([]qrFunnelRow, 0, len(rows))
	for _, r := range rows {
		label := r.Placement
		if label == "" {
			label = "(no placement)"
		}
		n := counts[r.QRID]
		out = append(out, qrFunnelRow{FunnelRow: r, ItemTitle: titleOr(titles, r.TargetID),
			Chart: FunnelChart("QR "+label+": scans, checkouts, paid", "Not scanned yet\nPrint the code or post it in your chat channel.", []string{"#6b21a8", "#1d4ed8", "#0b6e4f"}, []Bar{
				{Label: "Scans", Value: r.Scans, Display: itoa(int(r.Scans))},
				{Label: "Checkouts", Value: n.Checkouts, Display: itoa(int(n.Checkouts))},
				{Label: "Paid", Value: n.Paid, Display: itoa(int(n.Paid))},
			}), ByMessenger: scansByMessengerText(byMessenger[r.QRID])})
	}
	return out, nil
}

// moneyView is the balances and one account's statement.
type moneyView struct {
	Balances   balances
	Account    string
	Accounts   []string
	Lines      []statementLine
	NextCursor string
}

type statementLine struct {
	ledger.StatementLine
	Amount       money.Amount
	BalanceAfter money.Amount
}

func (d *Dashboard) money(c echo.Context) error {
	ctx := c.Request().Context()
	m := merchantOf(c)
	b, err := d.balances(c, m)
	if err != nil {
		return d.renderError(c, err)
	}
	view := moneyView{Balances: b, Account: c.QueryParam("account"), Accounts: []string{"available", "deferred", "breakage"}}
	ref := ledger.MerchantAvailable(m.ID)
	switch view.Account {
	case "deferred":
		ref = ledger.MerchantDeferred(m.ID)
	case "breakage":
		ref = ledger.MerchantBreakage(m.ID)
	default:
		view.Account = "available"
	}
	statement, err := d.deps.Ledger.Statement(ctx, d.deps.DB, ref, m.DefaultCurrency, c.QueryParam("cursor"), statementPageSize)
	// An account that was never posted to has no statement yet: show none.
	if p, ok := problem.As(err); err != nil && !(ok && p.Kind == problem.KindNotFound) {
		return d.renderError(c, err)
	}
	for _, l := range statement.Lines {
		view.Lines = append(view.Lines, statementLine{StatementLine: l, Amount: money.New(l.Amount, m.DefaultCurrency), BalanceAfter: money.New(l.BalanceAfter, m.DefaultCurrency)})
	}
	view.NextCursor = statement.NextCursor
	return d.renderPage(c, http.StatusOK, "dash_money.html", newPage(c, "Money", "money", view))
}
