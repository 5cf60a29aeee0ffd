// Package catalog owns what merchants sell and who may sell it: merchants,
// their staff users and API keys, items with their stock, coupon templates,
// and the coupon rules engine (Check) with its plain-language rendering
// (RenderRules).
//
// The rules engine is pure: it takes rules, the state of one coupon, a basket
// and an instant, and answers with one precise reason. Payments snapshots
// Rules into every coupon it issues and calls Check at redemption; catalog
// never learns about coupons or orders.
package catalog

import (
	"sync"
	"time"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// Limits on every input that can grow.
const (
	MerchantNameLengthMax  = 200
	TimeZoneLengthMax      = 64
	EmailLengthMax         = 254
	PasswordLengthMin      = 10
	PasswordLengthMax      = 72 // bcrypt reads no further than 72 bytes
	KeyNameLengthMax       = 100
	SKULengthMax           = 64
	TitleLengthMax         = 200
	DescriptionLengthMax   = 4000
	CategoryLengthMax      = 64
	ImageURLLengthMax      = 2000
	StockMax               = 1_000_000_000
	PerShopperLimitMax     = 1_000_000
	PageSizeMax            = 100
	PageSizeDefault        = 20
	WindowsMax             = 14
	CategoriesMax          = 50
	UsesPerCouponMax       = 1000
	PercentOffBasisPoints  = 10_000 // 100 %
	apiKeySecretBytes      = 24     // 192 random bits
	apiKeyTouchIntervalMin = time.Minute
)

// Merchant statuses.
const (
	MerchantActive    = "active"
	MerchantSuspended = "suspended"
)

// Merchant is a business selling through chatpay.
type Merchant struct {
	ID              string
	Name            string
	TimeZone        string
	DefaultCurrency money.Currency
	Status          string
	AllowTypedCodes bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
	// CatalogVersion rises with every change of the merchant, its items or
	// its coupon templates (migration 00125); read with an item for sale
	// only (0 elsewhere). A sale priced from it is refused if it moved.
	CatalogVersion int64
}

// Location is the merchant's time zone. Zones are validated before they are
// stored, so a failure here means the server's zone database lost a zone;
// UTC keeps the service answering rather than failing every request.
func (m Merchant) Location() *time.Location {
	return loadLocation(m.TimeZone)
}

// locations caches loaded zones: time.LoadLocation reads the zone file on
// every call, and there are only a few hundred IANA zones to remember.
var locations sync.Map // zone name → *time.Location

func loadLocation(name string) *time.Location {
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	locations.Store(name, loc)
	return loc
}

// Staff is a merchant's dashboard user.
type Staff struct {
	ID         string
	MerchantID string
	Email      string
	CreatedAt  time.Time
}

// APIKey describes a secret key without the secret.
type APIKey struct {
	ID         string
	MerchantID string
	Name       string
	Hint       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// Item kinds.
const (
	KindProduct = "product"
	KindVoucher = "voucher"
)

// Item is something a merchant sells. A voucher item carries the rules of the
// coupon each sale issues.
type Item struct {
	ID              string
	MerchantID      string
	SKU             string
	Title           string
	Description     string
	Category        string
	GTIN            string // "" when the item has no barcode
	Price           money.Amount
	Kind            string
	Stock           *int64 // nil: unlimited; otherwise the sum of item_stock buckets
	PerShopperLimit *int   // nil: no limit
	Active          bool
	ImageURL        string // "" when none
	TemplateID      string // vouchers only
	Rules           *Rules // vouchers only: the template's current rules
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// ItemDraft is a new item or the whole new state of an edited one.
type ItemDraft struct {
	SKU             string
	Title           string
	Description     string
	Category        string
	GTIN            string
	Price           money.Amount
	Kind            string
	Stock           *int64
	PerShopperLimit *int
	Active          bool
	ImageURL        string
	Rules           *Rules
}

// Draft returns the item's editable state.
func (it Item) Draft() ItemDraft {
	return ItemDraft{
		SKU: it.SKU, Title: it.Title, Description: it.Description, Category: it.Category,
		GTIN: it.GTIN, Price: it.Price, Kind: it.Kind, Stock: it.Stock,
		PerShopperLimit: it.PerShopperLimit, Active: it.Active, ImageURL: it.ImageURL, Rules: it.Rules,
	}
}

// Errors with stable codes. Lookups of anything that is absent or belongs
// to another merchant return problem.NotFound, so ids never leak.
var (
	ErrUnauthorized   = problem.New(problem.KindUnauthorized, "unauthorized", "a valid API key is required: Authorization: Bearer sk_...")
	ErrBadCredentials = problem.New(problem.KindUnauthorized, "bad_credentials", "the e-mail address or password is wrong")
	ErrSuspended      = problem.New(problem.KindForbidden, "merchant_suspended", "the merchant is suspended")
	ErrSKUTaken       = problem.New(problem.KindConflict, "sku_taken", "another item of this merchant has this sku")
	ErrGTINTaken      = problem.New(problem.KindConflict, "gtin_taken", "another item of this merchant has this gtin")
	ErrEmailTaken     = problem.New(problem.KindConflict, "email_taken", "a staff user with this e-mail address exists")
)
