package catalog

import (
	"errors"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/jsonin"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// HTTP serves the catalog's /v1 routes for merchant systems.
type HTTP struct {
	service     *Service
	idempotency *idempotency.Store
}

// NewHTTP returns the catalog's HTTP handlers.
func NewHTTP(service *Service, idempotency *idempotency.Store) *HTTP {
	return &HTTP{service: service, idempotency: idempotency}
}

// Register mounts the routes on the root group g, each behind RequireMerchantKey. The
// middleware is attached per route rather than to a /v1 group, so that other
// packages' /v1 routes keep their own authentication and unknown paths stay 404.
func (h *HTTP) Register(g *echo.Group) {
	auth := RequireMerchantKey(h.service)
	v1 := g.Group("/v1")
	v1.GET("/merchant", h.getMerchant, auth)
	v1.PATCH("/merchant", h.patchMerchant, auth)
	v1.GET("/items", h.listItems, auth)
	v1.POST("/items", h.createItem, auth)
	v1.GET("/items/:id", h.getItem, auth)
	v1.PATCH("/items/:id", h.patchItem, auth)
	v1.DELETE("/items/:id", h.deleteItem, auth)
	v1.GET("/category-labels", h.getCategoryLabels, auth)
	v1.PUT("/category-labels", h.putCategoryLabels, auth)
}

// categoryLabelsJSON is a merchant's category labels in requests and
// responses.
type categoryLabelsJSON struct {
	Categories CategoryLabels `json:"categories"`
}

func (h *HTTP) getCategoryLabels(c echo.Context) error {
	m, err := merchantOf(c)
	if err != nil {
		return err
	}
	labels, err := h.service.CategoryLabels(c.Request().Context(), m.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, categoryLabelsJSON{Categories: labels})
}

// putCategoryLabels replaces the merchant's labels: the same body twice
// leaves the same labels, so a retry needs no idempotency key.
func (h *HTTP) putCategoryLabels(c echo.Context) error {
	m, err := merchantOf(c)
	if err != nil {
		return err
	}
	var in categoryLabelsJSON
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return err
	}
	if in.Categories == nil {
		return problem.Field("categories", "required", "categories is required: an object of category → language → label ({} removes every label)")
	}
	labels, err := h.service.SetCategoryLabels(c.Request().Context(), m.ID, in.Categories)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, categoryLabelsJSON{Categories: labels})
}

// errNoMerchant guards handlers mounted without RequireMerchantKey: a
// programming error, so a 500 with the cause in the log.
var errNoMerchant = errors.New("catalog: route mounted without RequireMerchantKey")

func merchantOf(c echo.Context) (Merchant, error) {
	m, ok := MerchantFromContext(c)
	if !ok {
		return Merchant{}, errNoMerchant
	}
	return m, nil
}

// merchantJSON is a merchant in responses.
type merchantJSON struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	TimeZone        string    `json:"time_zone"`
	DefaultCurrency string    `json:"default_currency"`
	Status          string    `json:"status"`
	AllowTypedCodes bool      `json:"allow_typed_codes"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

func toMerchantJSON(m Merchant) merchantJSON {
	return merchantJSON{ID: m.ID, Name: m.Name, TimeZone: m.TimeZone, DefaultCurrency: m.DefaultCurrency.Code(),
		Status: m.Status, AllowTypedCodes: m.AllowTypedCodes, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

func (h *HTTP) getMerchant(c echo.Context) error {
	m, err := merchantOf(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMerchantJSON(m))
}

type merchantPatchJSON struct {
	Name            optional[string] `json:"name"`
	TimeZone        optional[string] `json:"time_zone"`
	DefaultCurrency optional[string] `json:"default_currency"`
	AllowTypedCodes optional[bool]   `json:"allow_typed_codes"`
}

func (h *HTTP) patchMerchant(c echo.Context) error {
	m, err := merchantOf(c)
	if err != nil {
		return err
	}
	var in merchantPatchJSON
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return err
	}
	var errs []problem.FieldError
	patch := MerchantPatch{
		Name:            in.Name.required("name", &errs),
		TimeZone:        in.TimeZone.required("time_zone", &errs),
		DefaultCurrency: in.DefaultCurrency.required("default_currency", &errs),
		AllowTypedCodes: in.AllowTypedCodes.required("allow_typed_codes", &errs),
	}
	if len(errs) > 0 {
		return problem.Invalid(errs...)
	}
	updated, err := h.service.UpdateMerchant(c.Request().Context(), m.ID, patch)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMerchantJSON(updated))
}

// itemJSON is an item in responses. rules_text is the rules in plain English
// as a shopper sees them before buying.
type itemJSON struct {
	ID               string       `json:"id"`
	SKU              string       `json:"sku"`
	Title            string       `json:"title"`
	Description      string       `json:"description"`
	Category         string       `json:"category"`
	GTIN             *string      `json:"gtin"`
	Price            money.Amount `json:"price"`
	Kind             string       `json:"kind"`
	Stock            *int64       `json:"stock"`
	PerShopperLimit  *int         `json:"per_shopper_limit"`
	Active           bool         `json:"active"`
	ImageURL         *string      `json:"image_url"`
	CouponTemplateID *string      `json:"coupon_template_id"`
	Rules            *RulesJSON   `json:"rules"`
	RulesText        *string      `json:"rules_text"`
	CreatedAt        time.Time    `json:"created_at"`
	UpdatedAt        time.Time    `json:"updated_at"`
}

func toItemJSON(it Item, loc *time.Location) itemJSON {
	out := itemJSON{
		ID: it.ID, SKU: it.SKU, Title: it.Title, Description: it.Description, Category: it.Category,
		GTIN: nonEmpty(it.GTIN), Price: it.Price, Kind: it.Kind, Stock: it.Stock, PerShopperLimit: it.PerShopperLimit,
		Active: it.Active, ImageURL: nonEmpty(it.ImageURL), CouponTemplateID: nonEmpty(it.TemplateID),
		CreatedAt: it.CreatedAt, UpdatedAt: it.UpdatedAt,
	}
	if it.Rules != nil {
		rules := it.Rules.JSON()
		text := RenderRules(*it.Rules, "en", loc, nil)
		out.Rules, out.RulesText = &rules, &text
	}
	return out
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// itemCreateJSON is the body of POST /v1/items. A price without a currency
// is in the merchant's default currency.
type itemCreateJSON struct {
	SKU             string      `json:"sku"`
	Title           string      `json:"title"`
	Description     string      `json:"description"`
	Category        string      `json:"category"`
	GTIN            *string     `json:"gtin"`
	Price           *AmountJSON `json:"price"`
	Kind            string      `json:"kind"`
	Stock           *int64      `json:"stock"`
	PerShopperLimit *int        `json:"per_shopper_limit"`
	Active          *bool       `json:"active"`
	ImageURL        *string     `json:"image_url"`
	Rules           *RulesJSON  `json:"rules"`
}

func (in itemCreateJSON) draft(m Merchant) (ItemDraft, error) {
	var errs []problem.FieldError
	d := ItemDraft{SKU: in.SKU, Title: in.Title, Description: in.Description, Category: in.Category,
		Kind: in.Kind, Stock: in.Stock, PerShopperLimit: in.PerShopperLimit, Active: true}
	if in.GTIN != nil {
		d.GTIN = *in.GTIN
	}
	if in.ImageURL != nil {
		d.ImageURL = *in.ImageURL
	}
	if in.Active != nil {
		d.Active = *in.Active
	}
	if in.Price == nil {
		errs = append(errs, problem.FieldError{Field: "price", Code: "required", Detail: `price is required, e.g. {"amount":"3.00","currency":"CNY"}`})
	} else {
		d.Price = parsePrice(*in.Price, m, &errs)
	}
	if in.Rules != nil {
		d.Rules = parseRulesField(*in.Rules, &errs)
	}
	if len(errs) > 0 {
		return ItemDraft{}, problem.Invalid(errs...)
	}
	return validateItem(d)
}

func parsePrice(in AmountJSON, m Merchant, errs *[]problem.FieldError) money.Amount {
	if in.Currency == "" {
		in.Currency = m.DefaultCurrency.Code()
	}
	price, fe := in.Parse("price")
	if fe != nil {
		*errs = append(*errs, *fe)
	}
	return price
}

func parseRulesField(in RulesJSON, errs *[]problem.FieldError) *Rules {
	rules, fieldErrs := ParseRules(in, "rules")
	if len(fieldErrs) > 0 {
		*errs = append(*errs, fieldErrs...)
		return nil
	}
	return &rules
}

func (h *HTTP) createItem(c echo.Context) error {
	m, err := merchantOf(c)
	if err != nil {
		return err
	}
	var in itemCreateJSON
	body, err := httpapi.BindJSON(c, &in)
	if err != nil {
		return err
	}
	// Invalid input is refused before the key is claimed: nothing is stored,
	// and the client may retry the corrected request with the same key.
	draft, err := in.draft(m)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	return h.idempotency.Handle(c, idempotency.MerchantScope(m.ID), body, func(tx *sqlx.Tx) (int, any, error) {
		it, err := h.service.CreateItemTx(ctx, tx, m.ID, draft)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, toItemJSON(it, m.Location()), nil
	})
}

func (h *HTTP) getItem(c echo.Context) error {
	m, err := merchantOf(c)
	if err != nil {
		return err
	}
	it, err := h.service.Item(c.Request().Context(), m.ID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toItemJSON(it, m.Location()))
}

type itemListJSON struct {
	Data       []itemJSON `json:"data"`
	NextCursor *string    `json:"next_cursor"`
}

func (h *HTTP) listItems(c echo.Context) error {
	m, err := merchantOf(c)
	if err != nil {
		return err
	}
	query := c.QueryParams()
	for name := range query {
		switch name {
		case "limit", "cursor", "gtin":
		default:
			return problem.Field(name, "unknown_parameter", "unknown query parameter %q", name)
		}
	}
	opts := ListOptions{Cursor: query.Get("cursor"), GTIN: query.Get("gtin")}
	limit, err := httpapi.QueryLimit(c, PageSizeMax)
	if err != nil {
		return err
	}
	opts.Limit = limit
	page, err := h.service.Items(c.Request().Context(), m.ID, opts)
	if err != nil {
		return err
	}
	out := itemListJSON{Data: make([]itemJSON, 0, len(page.Items)), NextCursor: nonEmpty(page.NextCursor)}
	loc := m.Location()
	for _, it := range page.Items {
		out.Data = append(out.Data, toItemJSON(it, loc))
	}
	return c.JSON(http.StatusOK, out)
}

// itemPatchJSON is the body of PATCH /v1/items/{id}: members present change,
// null clears a nullable member (gtin, stock, per_shopper_limit, image_url).
type itemPatchJSON struct {
	SKU             optional[string]     `json:"sku"`
	Title           optional[string]     `json:"title"`
	Description     optional[string]     `json:"description"`
	Category        optional[string]     `json:"category"`
	GTIN            optional[string]     `json:"gtin"`
	Price           optional[AmountJSON] `json:"price"`
	Kind            optional[string]     `json:"kind"`
	Stock           optional[int64]      `json:"stock"`
	PerShopperLimit optional[int]        `json:"per_shopper_limit"`
	Active          optional[bool]       `json:"active"`
	ImageURL        optional[string]     `json:"image_url"`
	Rules           optional[RulesJSON]  `json:"rules"`
}

func (h *HTTP) patchItem(c echo.Context) error {
	m, err := merchantOf(c)
	if err != nil {
		return err
	}
	var in itemPatchJSON
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return err
	}
	var errs []problem.FieldError
	sku := in.SKU.required("sku", &errs)
	title := in.Title.required("title", &errs)
	description := in.Description.required("description", &errs)
	category := in.Category.required("category", &errs)
	kind := in.Kind.required("kind", &errs)
	active := in.Active.required("active", &errs)
	var price *money.Amount
	if p := in.Price.required("price", &errs); p != nil {
		parsed := parsePrice(*p, m, &errs)
		price = &parsed
	}
	var rules *Rules
	if in.Rules.Set && !in.Rules.Null {
		rules = parseRulesField(in.Rules.Value, &errs)
	}
	if len(errs) > 0 {
		return problem.Invalid(errs...)
	}
	edit := func(d *ItemDraft) error {
		set(&d.SKU, sku)
		set(&d.Title, title)
		set(&d.Description, description)
		set(&d.Category, category)
		set(&d.Kind, kind)
		set(&d.Active, active)
		set(&d.Price, price)
		if in.GTIN.Set {
			d.GTIN = in.GTIN.Value
		}
		if in.ImageURL.Set {
			d.ImageURL = in.ImageURL.Value
		}
		if in.Stock.Set {
			d.Stock = in.Stock.pointer()
		}
		if in.PerShopperLimit.Set {
			d.PerShopperLimit = in.PerShopperLimit.pointer()
		}
		if in.Rules.Set {
			d.Rules = rules // null clears the rules of an item turning into a product
		}
		return nil
	}
	it, err := h.service.UpdateItem(c.Request().Context(), m.ID, c.Param("id"), edit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toItemJSON(it, m.Location()))
}

func set[T any](dst *T, value *T) {
	if value != nil {
		*dst = *value
	}
}

func (h *HTTP) deleteItem(c echo.Context) error {
	m, err := merchantOf(c)
	if err != nil {
		return err
	}
	it, err := h.service.DeactivateItem(c.Request().Context(), m.ID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toItemJSON(it, m.Location()))
}

// optional is a PATCH member: absent, null, or a value.
type optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// UnmarshalJSON decodes the value strictly (unknown members of nested
// objects are refused, as in the rest of the body).
func (o *optional[T]) UnmarshalJSON(data []byte) error {
	o.Set = true
	if string(data) == "null" {
		o.Null = true
		return nil
	}
	return jsonin.DecodeNested(data, &o.Value)
}

// required returns the value of a member that may be absent but not null.
func (o optional[T]) required(field string, errs *[]problem.FieldError) *T {
	if !o.Set {
		return nil
	}
	if o.Null {
		*errs = append(*errs, problem.FieldError{Field: field, Code: "null_not_allowed", Detail: field + " cannot be null"})
		return nil
	}
	v := o.Value
	return &v
}

// pointer returns nil for null and the value otherwise.
func (o optional[T]) pointer() *T {
	if o.Null {
		return nil
	}
	v := o.Value
	return &v
}
