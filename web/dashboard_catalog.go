package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// itemListSizeMax is how many items the catalog page shows at once.
const itemListSizeMax = catalog.PageSizeMax

func (d *Dashboard) registerCatalog(g *echo.Group) {
	g.GET("/items", d.items)
	g.GET("/items/new", d.newItem)
	g.POST("/items", d.createItem)
	g.GET("/items/:id", d.editItem)
	g.POST("/items/:id", d.updateItem)
	g.GET("/items/:id/deactivate", d.confirmDeactivateItem)
	g.POST("/items/:id/deactivate", d.deactivateItem)
}

// itemRow is one line of the catalog page.
type itemRow struct {
	catalog.Item
	RulesText string
}

type itemsView struct {
	Items      []itemRow
	NextCursor string
}

func (d *Dashboard) items(c echo.Context) error {
	m := merchantOf(c)
	p, err := d.deps.Catalog.Items(c.Request().Context(), m.ID, catalog.ListOptions{Limit: itemListSizeMax, Cursor: c.QueryParam("cursor")})
	if err != nil {
		return d.renderError(c, err)
	}
	view := itemsView{NextCursor: p.NextCursor}
	for _, it := range p.Items {
		row := itemRow{Item: it}
		if it.Rules != nil {
			row.RulesText = catalog.RenderRules(*it.Rules, "en", m.Location(), nil)
		}
		view.Items = append(view.Items, row)
	}
	return d.renderPage(c, http.StatusOK, "dash_items.html", newPage(c, "Catalog", "items", view))
}

// itemForm is the item editor's fields as text, so that whatever was typed
// comes back unchanged next to its error.
type itemForm struct {
	ID              string
	SKU             string
	Title           string
	Description     string
	Category        string
	GTIN            string
	Kind            string
	Price           string
	Currency        string
	Stock           string
	PerShopperLimit string
	Active          bool
	// Coupon rules (vouchers).
	CouponKind string
	AmountOff  string
	PercentOff string
	ValidFor   string
	ValidFrom  string
	ValidUntil string
	Windows    string
	Exclude    string
	Include    string
	MinSpend   string
	Uses       string
	RulesText  string // the saved rules in plain words
}

type itemFormView struct {
	Form  itemForm
	IsNew bool
}

func (d *Dashboard) newItem(c echo.Context) error {
	m := merchantOf(c)
	form := itemForm{Kind: catalog.KindVoucher, CouponKind: string(catalog.CouponVoucher), Currency: m.DefaultCurrency.Code(), Active: true, Uses: "1"}
	return d.renderPage(c, http.StatusOK, "dash_item_form.html", newPage(c, "New item", "items", itemFormView{Form: form, IsNew: true}))
}

func (d *Dashboard) createItem(c echo.Context) error {
	m := merchantOf(c)
	form := readItemForm(c)
	draft, err := form.draft(m)
	if err == nil {
		var it catalog.Item
		if it, err = d.deps.Catalog.CreateItem(c.Request().Context(), m.ID, draft); err == nil {
			return redirectFlash(c, "/dashboard/items/"+it.ID, "Item created.")
		}
	}
	return d.showItemForm(c, form, true, err)
}

func (d *Dashboard) editItem(c echo.Context) error {
	m := merchantOf(c)
	it, err := d.deps.Catalog.Item(c.Request().Context(), m.ID, c.Param("id"))
	if err != nil {
		return d.renderError(c, err)
	}
	return d.renderPage(c, http.StatusOK, "dash_item_form.html", newPage(c, it.Title, "items", itemFormView{Form: formOfItem(it, m)}))
}

func (d *Dashboard) updateItem(c echo.Context) error {
	m := merchantOf(c)
	form := readItemForm(c)
	form.ID = c.Param("id")
	draft, err := form.draft(m)
	if err == nil {
		_, err = d.deps.Catalog.UpdateItem(c.Request().Context(), m.ID, form.ID, func(current *catalog.ItemDraft) error {
			draft.ImageURL = current.ImageURL // not edited here
			*current = draft
			return nil
		})
		if err == nil {
			return redirectFlash(c, "/dashboard/items/"+form.ID, "Saved.")
		}
	}
	return d.showItemForm(c, form, false, err)
}

func (d *Dashboard) confirmDeactivateItem(c echo.Context) error {
	it, err := d.deps.Catalog.Item(c.Request().Context(), merchantOf(c).ID, c.Param("id"))
	if err != nil {
		return d.renderError(c, err)
	}
	return d.renderConfirm(c, "items", confirmView{
		Heading: "Stop selling " + it.Title + "?",
		Facts:   []confirmFact{{"Item", it.Title}, {"SKU", it.SKU}, {"Price", it.Price.String()}},
		Consequence: "Shoppers can no longer buy it: its QR codes show that it is not on sale. Coupons already sold stay valid. " +
			"You can put it on sale again from its page.",
		Action: "/dashboard/items/" + it.ID + "/deactivate", Button: "Stop selling", ButtonID: "confirm-deactivate",
		Cancel: "/dashboard/items/" + it.ID,
	})
}

func (d *Dashboard) deactivateItem(c echo.Context) error {
	m := merchantOf(c)
	if err := requireConfirmed(c); err != nil {
		return d.renderError(c, err)
	}
	it, err := d.deps.Catalog.DeactivateItem(c.Request().Context(), m.ID, c.Param("id"))
	if err != nil {
		return d.renderError(c, err)
	}
	return redirectFlash(c, "/dashboard/items", it.Title+" is no longer on sale.")
}

func (d *Dashboard) showItemForm(c echo.Context, form itemForm, isNew bool, err error) error {
	p, ok := formProblem(err)
	if !ok {
		return d.renderError(c, err)
	}
	view := newPage(c, "Item", "items", itemFormView{Form: form, IsNew: isNew})
	view.Error, view.Fields = p.Detail, p.Fields
	return d.renderPage(c, p.Status(), "dash_item_form.html", view)
}

func readItemForm(c echo.Context) itemForm {
	v := func(name string) string { return strings.TrimSpace(c.FormValue(name)) }
	return itemForm{
		SKU: v("sku"), Title: v("title"), Description: v("description"), Category: v("category"), GTIN: v("gtin"),
		Kind: v("kind"), Price: v("price"), Currency: strings.ToUpper(v("currency")), Stock: v("stock"),
		PerShopperLimit: v("per_shopper_limit"), Active: c.FormValue("active") == "on",
		CouponKind: v("coupon_kind"), AmountOff: v("amount_off"), PercentOff: v("percent_off"),
		ValidFor: v("valid_for"), ValidFrom: v("valid_from"), ValidUntil: v("valid_until"),
		Windows: v("windows"), Exclude: v("exclude_categories"), Include: v("include_categories"),
		MinSpend: v("min_spend"), Uses: v("uses_per_coupon"),
	}
}

// draft turns the form into an item draft; catalog validates the rest.
func (f itemForm) draft(m catalog.Merchant) (catalog.ItemDraft, error) {
	var fields []problem.FieldError
	bad := func(field, format string, args ...any) {
		fields = append(fields, problem.FieldError{Field: field, Code: "invalid", Detail: fmt.Sprintf(format, args...)})
	}
	d := catalog.ItemDraft{SKU: f.SKU, Title: f.Title, Description: f.Description, Category: f.Category, GTIN: f.GTIN,
		Kind: f.Kind, Active: f.Active}
	currency, err := money.ParseCurrency(f.Currency)
	if err != nil {
		bad("price.currency", "%v", err)
	} else if minor, err := currency.Parse(f.Price); err != nil {
		bad("price.amount", "%v", err)
	} else {
		d.Price = money.New(minor, currency)
	}
	if f.Stock != "" {
		n, err := strconv.ParseInt(f.Stock, 10, 64)
		if err != nil {
			bad("stock", "stock is a whole number, or empty for unlimited")
		}
		d.Stock = &n
	}
	if f.PerShopperLimit != "" {
		n, err := strconv.Atoi(f.PerShopperLimit)
		if err != nil {
			bad("per_shopper_limit", "the limit is a whole number, or empty for none")
		}
		d.PerShopperLimit = &n
	}
	if f.Kind == catalog.KindVoucher {
		rules, ruleFields := f.rules(m, f.Currency)
		fields = append(fields, ruleFields...)
		d.Rules = &rules
	}
	if len(fields) > 0 {
		return catalog.ItemDraft{}, problem.Invalid(fields...)
	}
	return d, nil
}

// rules reads the coupon rules editor through catalog's wire form, so the
// form accepts exactly what the API accepts.
func (f itemForm) rules(m catalog.Merchant, currency string) (catalog.Rules, []problem.FieldError) {
	w := catalog.RulesJSON{Kind: f.CouponKind, ExcludeCategories: splitList(f.Exclude), IncludeCategories: splitList(f.Include)}
	var fields []problem.FieldError
	if f.ValidFor != "" {
		d, err := catalog.ParseHumanDuration(f.ValidFor)
		if err != nil {
			fields = append(fields, problem.FieldError{Field: "rules.valid_for", Code: "invalid_duration", Detail: err.Error()})
		} else {
			w.ValidFor = d.String()
		}
	}
	if f.AmountOff != "" && f.CouponKind == string(catalog.CouponAmountOff) {
		w.AmountOff = &catalog.AmountJSON{Amount: f.AmountOff, Currency: currency}
	}
	if f.PercentOff != "" && f.CouponKind == string(catalog.CouponPercentOff) {
		bp, err := parsePercentBasisPoints(f.PercentOff)
		if err != nil {
			fields = append(fields, problem.FieldError{Field: "rules.percent_off_bp", Code: "invalid", Detail: "percent off is a number such as 15 or 12.5"})
		} else {
			w.PercentOffBP = &bp
		}
	}
	if f.MinSpend != "" {
		w.MinSpend = &catalog.AmountJSON{Amount: f.MinSpend, Currency: currency}
	}
	if f.Uses != "" {
		n, err := strconv.Atoi(f.Uses)
		if err != nil {
			fields = append(fields, problem.FieldError{Field: "rules.uses_per_coupon", Code: "invalid", Detail: "uses per coupon is a whole number"})
		}
		w.UsesPerCoupon = &n
	}
	loc := m.Location()
	for _, pair := range []struct {
		field string
		text  string
		out   *string
	}{{"rules.valid_from", f.ValidFrom, &w.ValidFrom}, {"rules.valid_until", f.ValidUntil, &w.ValidUntil}} {
		if pair.text == "" {
			continue
		}
		t, err := parseLocalDateTime(pair.text, loc)
		if err != nil {
			fields = append(fields, problem.FieldError{Field: pair.field, Code: "invalid_time", Detail: "a date such as 2027-02-21, or a date and time such as 2027-02-21 23:59"})
			continue
		}
		*pair.out = t.Format("2006-01-02T15:04:05Z07:00")
	}
	windows, windowFields := parseWindowLines(f.Windows)
	fields = append(fields, windowFields...)
	w.Windows = windows
	rules, ruleFields := catalog.ParseRules(w, "rules")
	return rules, append(fields, ruleFields...)
}

// parseWindowLines reads one window a line: "14:00-17:00" every day, or
// "mon,tue,fri 11:00–14:00" on those days.
func parseWindowLines(text string) ([]catalog.WindowJSON, []problem.FieldError) {
	var out []catalog.WindowJSON
	var fields []problem.FieldError
	for i, line := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if len(out) >= catalog.WindowsMax {
			fields = append(fields, problem.FieldError{Field: "rules.windows", Code: "too_many", Detail: fmt.Sprintf("at most %d windows", catalog.WindowsMax)})
			break
		}
		var w catalog.WindowJSON
		span := line
		if days, rest, ok := strings.Cut(line, " "); ok {
			for _, day := range strings.Split(days, ",") {
				if day = strings.ToLower(strings.TrimSpace(day)); day != "" {
					w.Days = append(w.Days, day)
				}
			}
			span = strings.TrimSpace(rest)
		}
		from, to, ok := strings.Cut(strings.ReplaceAll(span, "–", "-"), "-")
		if !ok {
			fields = append(fields, problem.FieldError{Field: fmt.Sprintf("rules.windows[%d]", i), Code: "invalid_window",
				Detail: fmt.Sprintf("line %d: write a window as 14:00-17:00, or mon,tue 14:00-17:00", i+1)})
			continue
		}
		w.From, w.To = strings.TrimSpace(from), strings.TrimSpace(to)
		out = append(out, w)
	}
	return out, fields
}

func splitList(text string) []string {
	var out []string
	for _, part := range strings.Split(text, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// parseLocalDateTime reads a date or date and time in the merchant's zone.
func parseLocalDateTime(text string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, text, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date: %q", text)
}

// formOfItem fills the editor from a saved item.
func formOfItem(it catalog.Item, m catalog.Merchant) itemForm {
	f := itemForm{
		ID: it.ID, SKU: it.SKU, Title: it.Title, Description: it.Description, Category: it.Category, GTIN: it.GTIN,
		Kind: it.Kind, Price: it.Price.Currency.Format(it.Price.Minor), Currency: it.Price.Currency.Code(),
		Active: it.Active, Uses: "1",
	}
	if it.Stock != nil {
		f.Stock = strconv.FormatInt(*it.Stock, 10)
	}
	if it.PerShopperLimit != nil {
		f.PerShopperLimit = strconv.Itoa(*it.PerShopperLimit)
	}
	if it.Rules == nil {
		f.CouponKind = string(catalog.CouponVoucher)
		return f
	}
	r := *it.Rules
	loc := m.Location()
	w := r.JSON()
	f.CouponKind = w.Kind
	if !r.ValidFor.IsZero() {
		f.ValidFor = catalog.DescribeDuration(r.ValidFor, "en")
	}
	f.Exclude, f.Include = strings.Join(r.ExcludeCategories, ", "), strings.Join(r.IncludeCategories, ", ")
	if r.AmountOff != nil {
		f.AmountOff = r.AmountOff.Currency.Format(r.AmountOff.Minor)
	}
	if r.Kind == catalog.CouponPercentOff {
		f.PercentOff = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%d.%02d", r.PercentOffBasisPoints/100, r.PercentOffBasisPoints%100), "0"), ".")
	}
	if r.MinSpend != nil {
		f.MinSpend = r.MinSpend.Currency.Format(r.MinSpend.Minor)
	}
	if r.ValidFrom != nil {
		f.ValidFrom = r.ValidFrom.In(loc).Format("2006-01-02 15:04")
	}
	if r.ValidUntil != nil {
		f.ValidUntil = r.ValidUntil.In(loc).Format("2006-01-02 15:04")
	}
	var lines []string
	for _, win := range w.Windows {
		span := win.From + "-" + win.To
		if len(win.Days) > 0 && len(win.Days) < 7 {
			span = strings.Join(win.Days, ",") + " " + span
		}
		lines = append(lines, span)
	}
	f.Windows = strings.Join(lines, "\n")
	f.Uses = strconv.Itoa(r.Uses())
	f.RulesText = catalog.RenderRules(r, "en", loc, nil)
	return f
}

// parsePercentBasisPoints reads "15" or "12.5" (percent, at most two
// decimals) as basis points, exactly, without floats.
func parsePercentBasisPoints(text string) (int64, error) {
	whole, frac, _ := strings.Cut(text, ".")
	if whole == "" || len(whole) > 3 || len(frac) > 2 || strings.Trim(whole+frac, "0123456789") != "" {
		return 0, fmt.Errorf("not a percentage: %q", text)
	}
	n, err := strconv.ParseInt(whole+frac+strings.Repeat("0", 2-len(frac)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a percentage: %q", text)
	}
	return n, nil
}
