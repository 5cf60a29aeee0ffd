package catalog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/memo"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// Service is the catalog's rules over its tables. It is safe for concurrent use.
type Service struct {
	db  *sqlx.DB
	now func() time.Time
	// stmts runs the statements every purchase reads and writes prepared.
	stmts *database.Stmts
	// passwordCost is bcrypt's work factor; only this package's tests lower it.
	passwordCost int
	// dummyPasswordHash is compared against when an e-mail address is
	// unknown, so that a sign-in takes as long whether or not the address
	// exists. It is made on first use, not at start: it costs a bcrypt round.
	dummyPasswordHash func() []byte
	// keyPrefix starts new API keys: sk, or sk_test on a sandbox (sandbox.go).
	keyPrefix string
	// saleItems is CachedItemForSale's cache (sale_cache.go).
	saleItems *memo.Map[string, saleItem]
}

// NewService returns a Service on db with an injected clock.
func NewService(db *sqlx.DB, now func() time.Time) *Service {
	s := &Service{db: db, now: now, passwordCost: passwordHashCost, stmts: database.NewStmts(db), keyPrefix: apiKeyPrefix,
		saleItems: memo.New[string, saleItem](saleItemsMax)}
	s.dummyPasswordHash = sync.OnceValue(func() []byte {
		hash, _ := bcrypt.GenerateFromPassword([]byte("chatpay-no-such-user"), s.passwordCost)
		return hash
	})
	return s
}

// clock returns now at PostgreSQL's precision (microseconds), so that a
// value written and read back compares equal (pagination cursors rely on it).
func (s *Service) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// MerchantDraft is what a new merchant needs.
type MerchantDraft struct {
	Name            string
	TimeZone        string
	DefaultCurrency string
}

// CreateMerchant validates and stores a merchant. It returns a validation
// problem naming name, time_zone or default_currency.
func (s *Service) CreateMerchant(ctx context.Context, draft MerchantDraft) (Merchant, error) {
	now := s.clock()
	// Typed codes start off: a printed code would let a screenshot redeem,
	// which the rotating QR exists to prevent (migration 111).
	m := Merchant{ID: ids.New("mer"), Status: MerchantActive, AllowTypedCodes: false, CreatedAt: now, UpdatedAt: now}
	if err := applyMerchantDraft(&m, draft); err != nil {
		return Merchant{}, err
	}
	if err := insertMerchant(ctx, s.db, m); err != nil {
		return Merchant{}, err
	}
	return m, nil
}

func applyMerchantDraft(m *Merchant, draft MerchantDraft) error {
	var errs []problem.FieldError
	m.Name = strings.TrimSpace(draft.Name)
	if m.Name == "" || utf8.RuneCountInString(m.Name) > MerchantNameLengthMax || !utf8.ValidString(m.Name) {
		errs = append(errs, problem.FieldError{Field: "name", Code: "invalid_name",
			Detail: fmt.Sprintf("name must be 1 to %d characters", MerchantNameLengthMax)})
	}
	if err := validateTimeZone(draft.TimeZone); err != nil {
		errs = append(errs, problem.FieldError{Field: "time_zone", Code: "unknown_time_zone", Detail: err.Error()})
	}
	m.TimeZone = draft.TimeZone
	c, err := money.ParseCurrency(draft.DefaultCurrency)
	if err != nil {
		errs = append(errs, *fieldError("default_currency", err))
	}
	m.DefaultCurrency = c
	if len(errs) > 0 {
		return problem.Invalid(errs...)
	}
	return nil
}

// validateTimeZone accepts IANA zone names only. time.LoadLocation also
// accepts "" and "Local" (the server's zone), which mean nothing to a
// merchant, and file paths, which must not reach it.
func validateTimeZone(name string) error {
	if name == "" || name == "Local" || len(name) > TimeZoneLengthMax || strings.Contains(name, "..") ||
		strings.HasPrefix(name, "/") {
		return fmt.Errorf("time_zone must be an IANA zone such as Asia/Shanghai, not %q", name)
	}
	if _, err := time.LoadLocation(name); err != nil {
		return fmt.Errorf("time_zone must be an IANA zone such as Asia/Shanghai, not %q", name)
	}
	return nil
}

// Merchant returns problem.NotFound for an unknown id.
func (s *Service) Merchant(ctx context.Context, id string) (Merchant, error) {
	return getMerchant(ctx, s.db, id, false)
}

// MerchantPatch changes the fields that are not nil.
type MerchantPatch struct {
	Name            *string
	TimeZone        *string
	DefaultCurrency *string
	AllowTypedCodes *bool
}

// UpdateMerchant applies patch. It returns problem.NotFound or a validation problem.
func (s *Service) UpdateMerchant(ctx context.Context, id string, patch MerchantPatch) (Merchant, error) {
	var m Merchant
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		var err error
		if m, err = getMerchant(ctx, tx, id, true); err != nil {
			return err
		}
		draft := MerchantDraft{Name: m.Name, TimeZone: m.TimeZone, DefaultCurrency: m.DefaultCurrency.Code()}
		if patch.Name != nil {
			draft.Name = *patch.Name
		}
		if patch.TimeZone != nil {
			draft.TimeZone = *patch.TimeZone
		}
		if patch.DefaultCurrency != nil {
			draft.DefaultCurrency = *patch.DefaultCurrency
		}
		if err := applyMerchantDraft(&m, draft); err != nil {
			return err
		}
		if patch.AllowTypedCodes != nil {
			m.AllowTypedCodes = *patch.AllowTypedCodes
		}
		m.UpdatedAt = s.clock()
		return updateMerchant(ctx, tx, m)
	})
	if err != nil {
		return Merchant{}, err
	}
	return m, nil
}

// SetMerchantStatus is for operators: a suspended merchant's keys stop working.
// It returns problem.NotFound or a validation problem.
func (s *Service) SetMerchantStatus(ctx context.Context, id, status string) (Merchant, error) {
	if status != MerchantActive && status != MerchantSuspended {
		return Merchant{}, problem.Field("status", "invalid_status", "status must be active or suspended")
	}
	var m Merchant
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		var err error
		if m, err = getMerchant(ctx, tx, id, true); err != nil {
			return err
		}
		m.Status, m.UpdatedAt = status, s.clock()
		return updateMerchant(ctx, tx, m)
	})
	return m, err
}

// CreateStaff adds a dashboard user. It returns problem.NotFound for an
// unknown merchant, ErrEmailTaken, or a validation problem naming email or
// password.
func (s *Service) CreateStaff(ctx context.Context, merchantID, email, password string) (Staff, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return Staff{}, err
	}
	if len(password) < PasswordLengthMin || len(password) > PasswordLengthMax {
		return Staff{}, problem.Field("password", "invalid_password", "a password is %d to %d bytes long", PasswordLengthMin, PasswordLengthMax)
	}
	if _, err := getMerchant(ctx, s.db, merchantID, false); err != nil {
		return Staff{}, err
	}
	hash, err := hashPassword(password, s.passwordCost)
	if err != nil {
		return Staff{}, fmt.Errorf("hash password: %w", err)
	}
	staff := Staff{ID: ids.New("usr"), MerchantID: merchantID, Email: email, CreatedAt: s.clock()}
	if err := insertStaff(ctx, s.db, staff, hash); err != nil {
		return Staff{}, err
	}
	return staff, nil
}

func normalizeEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > EmailLengthMax {
		return "", problem.Field("email", "invalid_email", "email must be a plain address such as staff@example.com")
	}
	return email, nil
}

// Authenticate checks a staff user's password. It returns ErrBadCredentials
// for an unknown address or a wrong password (without saying which), and
// ErrSuspended when the merchant is suspended.
func (s *Service) Authenticate(ctx context.Context, email, password string) (Staff, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	staff, hash, found, err := staffByEmail(ctx, s.db, email)
	if err != nil {
		return Staff{}, err
	}
	if !found {
		_ = bcrypt.CompareHashAndPassword(s.dummyPasswordHash(), []byte(password))
		return Staff{}, ErrBadCredentials
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		return Staff{}, ErrBadCredentials
	}
	m, err := getMerchant(ctx, s.db, staff.MerchantID, false)
	if err != nil {
		return Staff{}, err
	}
	if m.Status != MerchantActive {
		return Staff{}, ErrSuspended
	}
	return staff, nil
}

// CreateKey mints an API key for the merchant and returns its secret, which
// is never available again. It returns problem.NotFound or a validation
// problem naming name.
func (s *Service) CreateKey(ctx context.Context, merchantID, name string) (APIKey, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > KeyNameLengthMax {
		return APIKey{}, "", problem.Field("name", "invalid_name", "a key name is 1 to %d characters", KeyNameLengthMax)
	}
	if _, err := getMerchant(ctx, s.db, merchantID, false); err != nil {
		return APIKey{}, "", err
	}
	secret := ids.Secret(s.keyPrefix, apiKeySecretBytes)
	key := APIKey{ID: ids.New("key"), MerchantID: merchantID, Name: name, Hint: secret[:apiKeyHintLength],
		CreatedAt: s.clock()}
	if err := insertKey(ctx, s.db, key, hashKey(secret)); err != nil {
		return APIKey{}, "", err
	}
	return key, secret, nil
}

// Keys lists the merchant's keys, revoked ones included.
func (s *Service) Keys(ctx context.Context, merchantID string) ([]APIKey, error) {
	return listKeys(ctx, s.db, merchantID)
}

// RevokeKey makes a key unusable from now on. It returns problem.NotFound
// unless the merchant has the key.
func (s *Service) RevokeKey(ctx context.Context, merchantID, keyID string) error {
	return revokeKey(ctx, s.db, merchantID, keyID, s.clock())
}

// AuthenticateKey resolves a secret key to its merchant. It returns
// ErrUnauthorized for an unknown or revoked key and ErrSuspended for a
// suspended merchant.
func (s *Service) AuthenticateKey(ctx context.Context, secret string) (Merchant, APIKey, error) {
	if !strings.HasPrefix(secret, apiKeyPrefix+"_") || len(secret) > 128 {
		return Merchant{}, APIKey{}, ErrUnauthorized
	}
	key, found, err := keyByHash(ctx, s.db, hashKey(secret))
	if err != nil {
		return Merchant{}, APIKey{}, err
	}
	if !found || key.RevokedAt != nil {
		return Merchant{}, APIKey{}, ErrUnauthorized
	}
	m, err := getMerchant(ctx, s.db, key.MerchantID, false)
	if err != nil {
		return Merchant{}, APIKey{}, err
	}
	if m.Status != MerchantActive {
		return Merchant{}, APIKey{}, ErrSuspended
	}
	now := s.clock()
	if key.LastUsedAt == nil || now.Sub(*key.LastUsedAt) >= apiKeyTouchIntervalMin {
		if err := touchKey(ctx, s.db, key.ID, now); err != nil {
			return Merchant{}, APIKey{}, err
		}
		key.LastUsedAt = &now
	}
	return m, key, nil
}

// CreateItem validates draft and stores it in its own transaction; see CreateItemTx.
func (s *Service) CreateItem(ctx context.Context, merchantID string, draft ItemDraft) (Item, error) {
	var it Item
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		var err error
		it, err = s.CreateItemTx(ctx, tx, merchantID, draft)
		return err
	})
	return it, err
}

// CreateItemTx validates draft and stores the item, its stock and (for a
// voucher) its coupon template in the caller's transaction. It returns a
// validation problem naming the field, ErrSKUTaken or ErrGTINTaken.
func (s *Service) CreateItemTx(ctx context.Context, tx sqlx.ExtContext, merchantID string, draft ItemDraft) (Item, error) {
	draft, err := validateItem(draft)
	if err != nil {
		return Item{}, err
	}
	now := s.clock()
	it := itemFromDraft(draft)
	it.ID, it.MerchantID, it.CreatedAt, it.UpdatedAt = ids.New("item"), merchantID, now, now
	if it.Rules != nil {
		it.TemplateID = ids.New("tpl")
		if err := insertTemplate(ctx, tx, it.TemplateID, merchantID, *it.Rules, now); err != nil {
			return Item{}, err
		}
	}
	if err := insertItem(ctx, tx, it); err != nil {
		return Item{}, err
	}
	if err := setStock(ctx, tx, it.ID, it.Stock); err != nil {
		return Item{}, err
	}
	return it, nil
}

func itemFromDraft(d ItemDraft) Item {
	return Item{SKU: d.SKU, Title: d.Title, Description: d.Description, Category: d.Category, GTIN: d.GTIN,
		Price: d.Price, Kind: d.Kind, Stock: d.Stock, PerShopperLimit: d.PerShopperLimit, Active: d.Active,
		ImageURL: d.ImageURL, Rules: d.Rules}
}

// Item returns the merchant's item; problem.NotFound if it is absent or another merchant's.
func (s *Service) Item(ctx context.Context, merchantID, id string) (Item, error) {
	if merchantID == "" {
		return Item{}, problem.NotFound("item")
	}
	return getItem(ctx, s.db, merchantID, id, false)
}

// ItemByID returns any merchant's item, for callers that reach items without
// a merchant key (a shopper's checkout through a channel). Check Active and
// the merchant's status before selling. q may be a transaction. It returns
// problem.NotFound.
func (s *Service) ItemByID(ctx context.Context, q sqlx.ExtContext, id string) (Item, error) {
	if q == nil {
		q = s.db
	}
	return getItem(ctx, q, "", id, false)
}

// ItemByGTIN returns the merchant's item with this barcode; problem.NotFound if none.
func (s *Service) ItemByGTIN(ctx context.Context, merchantID, gtin string) (Item, error) {
	if !ValidGTIN(gtin) {
		return Item{}, problem.NotFound("item")
	}
	items, err := listItems(ctx, s.db, merchantID, nil, 1, gtin)
	if err != nil {
		return Item{}, err
	}
	if len(items) == 0 {
		return Item{}, problem.NotFound("item")
	}
	return items[0], nil
}

// ListOptions select a page of items.
type ListOptions struct {
	Limit  int    // 1 to PageSizeMax; 0 means PageSizeDefault
	Cursor string // from the previous page's NextCursor; "" for the first page
	GTIN   string // only items with this barcode
}

// ItemPage is one page of items.
type ItemPage struct {
	Items      []Item
	NextCursor string // "" on the last page
}

// Items lists the merchant's items in creation order. It returns a
// validation problem naming limit, cursor or gtin.
func (s *Service) Items(ctx context.Context, merchantID string, opts ListOptions) (ItemPage, error) {
	if opts.Limit == 0 {
		opts.Limit = PageSizeDefault
	}
	if opts.Limit < 1 || opts.Limit > PageSizeMax {
		return ItemPage{}, problem.Field("limit", "out_of_range", "limit must be 1 to %d", PageSizeMax)
	}
	if opts.GTIN != "" && !ValidGTIN(opts.GTIN) {
		return ItemPage{}, problem.Field("gtin", "invalid_gtin", "gtin must be 8, 12, 13 or 14 digits with a correct check digit")
	}
	var after *itemCursor
	if opts.Cursor != "" {
		c, err := decodeCursor(opts.Cursor)
		if err != nil {
			return ItemPage{}, err
		}
		after = &c
	}
	items, err := listItems(ctx, s.db, merchantID, after, opts.Limit+1, opts.GTIN)
	if err != nil {
		return ItemPage{}, err
	}
	page := ItemPage{Items: items}
	if len(items) > opts.Limit {
		page.Items = items[:opts.Limit]
		last := page.Items[opts.Limit-1]
		page.NextCursor = encodeCursor(itemCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return page, nil
}

// Cursors are opaque to clients: base64url of a small JSON position.
func encodeCursor(c itemCursor) string {
	body, _ := json.Marshal(c) // a time and a string always encode
	return base64.RawURLEncoding.EncodeToString(body)
}

const cursorLengthMax = 200

func decodeCursor(text string) (itemCursor, error) {
	bad := problem.Field("cursor", "invalid_cursor", "cursor must be a next_cursor value from a previous page")
	if len(text) > cursorLengthMax {
		return itemCursor{}, bad
	}
	body, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return itemCursor{}, bad
	}
	var c itemCursor
	if err := json.Unmarshal(body, &c); err != nil || c.ID == "" {
		return itemCursor{}, bad
	}
	return c, nil
}

// UpdateItem edits the merchant's item: edit changes a copy of its current
// state, which is then validated and written whole, under the item's row
// lock. Editing a voucher's rules changes its template; coupons already
// issued keep the rules they were issued with. It returns problem.NotFound,
// edit's error, a validation problem, ErrSKUTaken or ErrGTINTaken.
func (s *Service) UpdateItem(ctx context.Context, merchantID, id string, edit func(*ItemDraft) error) (Item, error) {
	var updated Item
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		if merchantID == "" {
			return problem.NotFound("item")
		}
		current, err := getItem(ctx, tx, merchantID, id, true)
		if err != nil {
			return err
		}
		draft := current.Draft()
		if err := edit(&draft); err != nil {
			return err
		}
		if draft, err = validateItem(draft); err != nil {
			return err
		}
		now := s.clock()
		it := itemFromDraft(draft)
		it.ID, it.MerchantID, it.CreatedAt, it.UpdatedAt, it.TemplateID = current.ID, current.MerchantID, current.CreatedAt, now, current.TemplateID
		switch {
		case it.Rules == nil:
			// A product has no template; an old one stays for issued coupons' history.
			it.TemplateID = ""
		case it.TemplateID == "":
			it.TemplateID = ids.New("tpl")
			err = insertTemplate(ctx, tx, it.TemplateID, merchantID, *it.Rules, now)
		default:
			err = updateTemplate(ctx, tx, it.TemplateID, *it.Rules, now)
		}
		if err != nil {
			return err
		}
		if err := updateItem(ctx, tx, it); err != nil {
			return err
		}
		if !sameStock(current.Stock, it.Stock) {
			if err := setStock(ctx, tx, it.ID, it.Stock); err != nil {
				return err
			}
		}
		updated = it
		return nil
	})
	return updated, err
}

func sameStock(a, b *int64) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// DeactivateItem stops the item from being sold; items are never deleted
// because orders reference them. It returns problem.NotFound.
func (s *Service) DeactivateItem(ctx context.Context, merchantID, id string) (Item, error) {
	return s.UpdateItem(ctx, merchantID, id, func(d *ItemDraft) error {
		d.Active = false
		return nil
	})
}

// validateItem checks and normalises a draft, returning every bad field.
func validateItem(d ItemDraft) (ItemDraft, error) {
	var errs []problem.FieldError
	bad := func(field, code, format string, args ...any) {
		errs = append(errs, problem.FieldError{Field: field, Code: code, Detail: fmt.Sprintf(format, args...)})
	}
	d.SKU = strings.TrimSpace(d.SKU)
	if d.SKU == "" || len(d.SKU) > SKULengthMax || strings.IndexFunc(d.SKU, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		bad("sku", "invalid_sku", "sku is 1 to %d printable ASCII characters without spaces", SKULengthMax)
	}
	d.Title = strings.TrimSpace(d.Title)
	if d.Title == "" || !validText(d.Title, TitleLengthMax) {
		bad("title", "invalid_title", "title is 1 to %d characters", TitleLengthMax)
	}
	if !validText(d.Description, DescriptionLengthMax) {
		bad("description", "invalid_description", "description is at most %d characters", DescriptionLengthMax)
	}
	d.Category = normalizeCategory(d.Category)
	if !validText(d.Category, CategoryLengthMax) {
		bad("category", "invalid_category", "category is at most %d characters", CategoryLengthMax)
	}
	if d.GTIN != "" && !ValidGTIN(d.GTIN) {
		bad("gtin", "invalid_gtin", "gtin must be 8, 12, 13 or 14 digits with a correct check digit")
	}
	if d.Price.Currency.IsZero() {
		bad("price.currency", "required", "price needs a currency")
	} else if d.Price.Minor < 0 || d.Price.Minor > money.MinorMax {
		bad("price.amount", "amount_out_of_range", "price must be between 0 and %s", d.Price.Currency.Format(money.MinorMax))
	}
	switch d.Kind {
	case KindProduct:
		if d.Rules != nil {
			bad("rules", "not_allowed", "only vouchers have coupon rules")
		}
	case KindVoucher:
		if d.Rules == nil {
			bad("rules", "required", "a voucher needs coupon rules")
		} else {
			for _, a := range []struct {
				field  string
				amount *money.Amount
			}{{"rules.min_spend.currency", d.Rules.MinSpend}, {"rules.amount_off.currency", d.Rules.AmountOff}} {
				if a.amount != nil && a.amount.Currency != d.Price.Currency {
					bad(a.field, "currency_mismatch", "coupon amounts must be in the item's currency %s", d.Price.Currency)
				}
			}
		}
	default:
		bad("kind", "invalid_kind", "kind must be product or voucher")
	}
	if d.Stock != nil && (*d.Stock < 0 || *d.Stock > StockMax) {
		bad("stock", "out_of_range", "stock must be 0 to %d, or null for unlimited", StockMax)
	}
	if d.PerShopperLimit != nil && (*d.PerShopperLimit < 1 || *d.PerShopperLimit > PerShopperLimitMax) {
		bad("per_shopper_limit", "out_of_range", "per_shopper_limit must be 1 to %d, or null for none", PerShopperLimitMax)
	}
	if d.ImageURL != "" {
		u, err := url.Parse(d.ImageURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || len(d.ImageURL) > ImageURLLengthMax {
			bad("image_url", "invalid_url", "image_url must be an https URL of at most %d bytes", ImageURLLengthMax)
		}
	}
	if len(errs) > 0 {
		return ItemDraft{}, problem.Invalid(errs...)
	}
	return d, nil
}

func validText(s string, lengthMax int) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > lengthMax {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) < 0
}

// ValidGTIN checks a GTIN-8, -12, -13 or -14 barcode number and its check
// digit (GS1's mod-10: weights 3 and 1 alternating from the right).
func ValidGTIN(gtin string) bool {
	switch len(gtin) {
	case 8, 12, 13, 14:
	default:
		return false
	}
	sum := 0
	for i := len(gtin) - 2; i >= 0; i-- {
		c := gtin[i]
		if c < '0' || c > '9' {
			return false
		}
		weight := 1
		if (len(gtin)-2-i)%2 == 0 {
			weight = 3
		}
		sum += int(c-'0') * weight
	}
	check := gtin[len(gtin)-1]
	return check >= '0' && check <= '9' && int(check-'0') == (10-sum%10)%10
}
