package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// The store is plain functions on sqlx.ExtContext, so the same SQL runs on
// the pool or inside a caller's transaction (the idempotency claim's).

// merchantRow is a merchants row.
type merchantRow struct {
	ID              string    `db:"id"`
	Name            string    `db:"name"`
	TimeZone        string    `db:"time_zone"`
	DefaultCurrency string    `db:"default_currency"`
	Status          string    `db:"status"`
	AllowTypedCodes bool      `db:"allow_typed_codes"`
	CreatedAt       time.Time `db:"created_at"`
	UpdatedAt       time.Time `db:"updated_at"`
	CatalogVersion  int64     `db:"catalog_version"`
}

func (r merchantRow) merchant() (Merchant, error) {
	c, err := money.ParseCurrency(r.DefaultCurrency)
	if err != nil {
		return Merchant{}, fmt.Errorf("merchant %s: stored currency: %w", r.ID, err)
	}
	return Merchant{ID: r.ID, Name: r.Name, TimeZone: r.TimeZone, DefaultCurrency: c, Status: r.Status,
		AllowTypedCodes: r.AllowTypedCodes, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, CatalogVersion: r.CatalogVersion}, nil
}

func insertMerchant(ctx context.Context, q sqlx.ExtContext, m Merchant) error {
	const query = `
		INSERT INTO merchants (id, name, time_zone, default_currency, status, allow_typed_codes, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	_, err := q.ExecContext(ctx, query, m.ID, m.Name, m.TimeZone, m.DefaultCurrency.Code(), m.Status,
		m.AllowTypedCodes, m.CreatedAt, m.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert merchant: %w", err)
	}
	return nil
}

// getMerchant returns problem.NotFound for an unknown id. forUpdate locks the row.
func getMerchant(ctx context.Context, q sqlx.ExtContext, id string, forUpdate bool) (Merchant, error) {
	query := `SELECT id, name, time_zone, default_currency, status, allow_typed_codes, created_at, updated_at
		FROM merchants WHERE id = $1`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	var row merchantRow
	if err := sqlx.GetContext(ctx, q, &row, query, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Merchant{}, problem.NotFound("merchant")
		}
		return Merchant{}, fmt.Errorf("get merchant: %w", err)
	}
	return row.merchant()
}

func updateMerchant(ctx context.Context, q sqlx.ExtContext, m Merchant) error {
	const query = `
		UPDATE merchants SET name = $2, time_zone = $3, default_currency = $4, status = $5,
			allow_typed_codes = $6, updated_at = $7
		WHERE id = $1`
	_, err := q.ExecContext(ctx, query, m.ID, m.Name, m.TimeZone, m.DefaultCurrency.Code(), m.Status,
		m.AllowTypedCodes, m.UpdatedAt)
	if err != nil {
		return fmt.Errorf("update merchant: %w", err)
	}
	return nil
}

// insertStaff returns ErrEmailTaken for a duplicate address.
func insertStaff(ctx context.Context, q sqlx.ExtContext, s Staff, passwordHash string) error {
	const query = `
		INSERT INTO staff_users (id, merchant_id, email, password_hash, created_at)
		VALUES ($1, $2, $3, $4, $5)`
	_, err := q.ExecContext(ctx, query, s.ID, s.MerchantID, s.Email, passwordHash, s.CreatedAt)
	if database.IsUniqueViolation(err, "staff_users_email_key") {
		return ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("insert staff user: %w", err)
	}
	return nil
}

// staffByEmail returns found == false for an unknown address.
func staffByEmail(ctx context.Context, q sqlx.ExtContext, email string) (s Staff, passwordHash string, found bool, err error) {
	const query = `SELECT id, merchant_id, email, password_hash, created_at FROM staff_users WHERE email = $1`
	err = q.QueryRowxContext(ctx, query, email).Scan(&s.ID, &s.MerchantID, &s.Email, &passwordHash, &s.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Staff{}, "", false, nil
	}
	if err != nil {
		return Staff{}, "", false, fmt.Errorf("get staff user: %w", err)
	}
	return s, passwordHash, true, nil
}

func insertKey(ctx context.Context, q sqlx.ExtContext, k APIKey, secretHash []byte) error {
	const query = `
		INSERT INTO api_keys (id, merchant_id, name, secret_hash, hint, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`
	if _, err := q.ExecContext(ctx, query, k.ID, k.MerchantID, k.Name, secretHash, k.Hint, k.CreatedAt); err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

type keyRow struct {
	ID         string     `db:"id"`
	MerchantID string     `db:"merchant_id"`
	Name       string     `db:"name"`
	Hint       string     `db:"hint"`
	CreatedAt  time.Time  `db:"created_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
}

func (r keyRow) key() APIKey {
	return APIKey(r)
}

// keyByHash returns found == false for an unknown key.
func keyByHash(ctx context.Context, q sqlx.ExtContext, secretHash []byte) (APIKey, bool, error) {
	const query = `SELECT id, merchant_id, name, hint, created_at, last_used_at, revoked_at
		FROM api_keys WHERE secret_hash = $1`
	var row keyRow
	if err := sqlx.GetContext(ctx, q, &row, query, secretHash); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return APIKey{}, false, nil
		}
		return APIKey{}, false, fmt.Errorf("get api key: %w", err)
	}
	return row.key(), true, nil
}

func listKeys(ctx context.Context, q sqlx.ExtContext, merchantID string) ([]APIKey, error) {
	const query = `SELECT id, merchant_id, name, hint, created_at, last_used_at, revoked_at
		FROM api_keys WHERE merchant_id = $1 ORDER BY created_at, id`
	var rows []keyRow
	if err := sqlx.SelectContext(ctx, q, &rows, query, merchantID); err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	keys := make([]APIKey, len(rows))
	for i, r := range rows {
		keys[i] = r.key()
	}
	return keys, nil
}

// touchKey records a use of the key, unless one was recorded less than
// apiKeyTouchIntervalMin ago: the condition makes concurrent requests write
// at most once a minute per key.
func touchKey(ctx context.Context, q sqlx.ExtContext, id string, now time.Time) error {
	const query = `UPDATE api_keys SET last_used_at = $2
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)`
	if _, err := q.ExecContext(ctx, query, id, now, now.Add(-apiKeyTouchIntervalMin)); err != nil {
		return fmt.Errorf("touch api key: %w", err)
	}
	return nil
}

// revokeKey returns problem.NotFound unless the merchant has the key.
func revokeKey(ctx context.Context, q sqlx.ExtContext, merchantID, id string, now time.Time) error {
	const query = `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND merchant_id = $2`
	res, err := q.ExecContext(ctx, query, id, merchantID, now)
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	} else if n == 0 {
		return problem.NotFound("api key")
	}
	return nil
}

func insertTemplate(ctx context.Context, q sqlx.ExtContext, id, merchantID string, rules Rules, now time.Time) error {
	const query = `
		INSERT INTO coupon_templates (id, merchant_id, rules, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4)`
	body, err := json.Marshal(rules)
	if err != nil {
		return fmt.Errorf("encode rules: %w", err)
	}
	if _, err := q.ExecContext(ctx, query, id, merchantID, body, now); err != nil {
		return fmt.Errorf("insert coupon template: %w", err)
	}
	return nil
}

func updateTemplate(ctx context.Context, q sqlx.ExtContext, id string, rules Rules, now time.Time) error {
	const query = `UPDATE coupon_templates SET rules = $2, updated_at = $3 WHERE id = $1`
	body, err := json.Marshal(rules)
	if err != nil {
		return fmt.Errorf("encode rules: %w", err)
	}
	if _, err := q.ExecContext(ctx, query, id, body, now); err != nil {
		return fmt.Errorf("update coupon template: %w", err)
	}
	return nil
}

// itemColumns reads an item with its template's rules and its stock (the
// sum of its buckets).
const itemColumns = itemSelect + `
	FROM items i LEFT JOIN coupon_templates t ON t.id = i.template_id`

const itemSelect = `
	i.id, i.merchant_id, i.sku, i.title, i.description, i.category, i.gtin, i.price_minor, i.currency,
	i.kind, i.stock_tracked, i.per_shopper_limit, i.active, i.image_url, i.template_id, t.rules,
	i.created_at, i.updated_at,
	(SELECT COALESCE(SUM(s.quantity), 0) FROM item_stock s WHERE s.item_id = i.id) AS stock`

type itemRow struct {
	ID              string         `db:"id"`
	MerchantID      string         `db:"merchant_id"`
	SKU             string         `db:"sku"`
	Title           string         `db:"title"`
	Description     string         `db:"description"`
	Category        string         `db:"category"`
	GTIN            sql.NullString `db:"gtin"`
	PriceMinor      int64          `db:"price_minor"`
	Currency        string         `db:"currency"`
	Kind            string         `db:"kind"`
	StockTracked    bool           `db:"stock_tracked"`
	PerShopperLimit *int           `db:"per_shopper_limit"`
	Active          bool           `db:"active"`
	ImageURL        sql.NullString `db:"image_url"`
	TemplateID      sql.NullString `db:"template_id"`
	Rules           []byte         `db:"rules"`
	CreatedAt       time.Time      `db:"created_at"`
	UpdatedAt       time.Time      `db:"updated_at"`
	Stock           int64          `db:"stock"`
}

// item checks what it reads: a row that breaks an invariant is an error, not
// an item with half its data.
func (r itemRow) item() (Item, error) {
	c, err := money.ParseCurrency(r.Currency)
	if err != nil {
		return Item{}, fmt.Errorf("item %s: stored currency: %w", r.ID, err)
	}
	it := Item{
		ID: r.ID, MerchantID: r.MerchantID, SKU: r.SKU, Title: r.Title, Description: r.Description,
		Category: r.Category, GTIN: r.GTIN.String, Price: money.New(r.PriceMinor, c), Kind: r.Kind,
		PerShopperLimit: r.PerShopperLimit, Active: r.Active, ImageURL: r.ImageURL.String,
		TemplateID: r.TemplateID.String, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.StockTracked {
		stock := r.Stock
		it.Stock = &stock
	}
	if r.Rules != nil {
		var rules Rules
		if err := json.Unmarshal(r.Rules, &rules); err != nil {
			return Item{}, fmt.Errorf("item %s: stored rules: %w", r.ID, err)
		}
		it.Rules = &rules
	}
	if (it.Kind == KindVoucher) != (it.Rules != nil) {
		return Item{}, fmt.Errorf("item %s: a voucher must have rules and only a voucher may", r.ID)
	}
	return it, nil
}

// getItem returns problem.NotFound for an unknown id, or one of another
// merchant when merchantID is not empty. forUpdate locks the items row.
func getItem(ctx context.Context, q sqlx.ExtContext, merchantID, id string, forUpdate bool) (Item, error) {
	query := `SELECT ` + itemColumns + ` WHERE i.id = $1 AND ($2 = '' OR i.merchant_id = $2)`
	if forUpdate {
		query += ` FOR UPDATE OF i`
	}
	var row itemRow
	if err := sqlx.GetContext(ctx, q, &row, query, id, merchantID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Item{}, problem.NotFound("item")
		}
		return Item{}, fmt.Errorf("get item: %w", err)
	}
	return row.item()
}

// itemForSaleRow is an item with its merchant, read in one statement.
type itemForSaleRow struct {
	itemRow
	Merchant merchantRow `db:"m"`
}

const itemForSaleSQL = `SELECT ` + itemSelect + `,
	m.id AS "m.id", m.name AS "m.name", m.time_zone AS "m.time_zone", m.default_currency AS "m.default_currency",
	m.status AS "m.status", m.allow_typed_codes AS "m.allow_typed_codes", m.created_at AS "m.created_at",
	m.updated_at AS "m.updated_at", m.catalog_version AS "m.catalog_version"
	FROM items i JOIN merchants m ON m.id = i.merchant_id
	LEFT JOIN coupon_templates t ON t.id = i.template_id
	WHERE i.id = $1`

// getItemForSale reads any merchant's item and its merchant in one
// statement: every checkout and every confirmation does it once per line,
// and a second round trip for the merchant was a measurable share of a
// purchase (docs/performance.md). It returns problem.NotFound.
func getItemForSale(ctx context.Context, q sqlx.ExtContext, stmts *database.Stmts, id string) (Item, Merchant, error) {
	var row itemForSaleRow
	if err := stmts.Get(ctx, q, &row, itemForSaleSQL, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Item{}, Merchant{}, problem.NotFound("item")
		}
		return Item{}, Merchant{}, fmt.Errorf("get item for sale: %w", err)
	}
	item, err := row.item()
	if err != nil {
		return Item{}, Merchant{}, err
	}
	m, err := row.Merchant.merchant()
	if err != nil {
		return Item{}, Merchant{}, err
	}
	return item, m, nil
}

// itemCursor is the position after the last item of a page.
type itemCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"id"`
}

// listItems returns up to limit items of the merchant after cursor (nil:
// from the start), in creation order, optionally only those with gtin.
func listItems(ctx context.Context, q sqlx.ExtContext, merchantID string, after *itemCursor, limit int, gtin string) ([]Item, error) {
	const query = `SELECT ` + itemColumns + `
		WHERE i.merchant_id = $1
		  AND ($2::timestamptz IS NULL OR (i.created_at, i.id) > ($2, $3))
		  AND ($4 = '' OR i.gtin = $4)
		ORDER BY i.created_at, i.id
		LIMIT $5`
	var afterTime *time.Time
	afterID := ""
	if after != nil {
		afterTime, afterID = &after.CreatedAt, after.ID
	}
	var rows []itemRow
	if err := sqlx.SelectContext(ctx, q, &rows, query, merchantID, afterTime, afterID, gtin, limit); err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	items := make([]Item, 0, len(rows))
	for _, r := range rows {
		it, err := r.item()
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// insertItem returns ErrSKUTaken or ErrGTINTaken for duplicates.
func insertItem(ctx context.Context, q sqlx.ExtContext, it Item) error {
	const query = `
		INSERT INTO items (id, merchant_id, sku, title, description, category, gtin, price_minor, currency, kind,
			stock_tracked, per_shopper_limit, active, image_url, template_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8, $9, $10, $11, $12, $13, NULLIF($14, ''), NULLIF($15, ''), $16, $17)`
	_, err := q.ExecContext(ctx, query, it.ID, it.MerchantID, it.SKU, it.Title, it.Description, it.Category, it.GTIN,
		it.Price.Minor, it.Price.Currency.Code(), it.Kind, it.Stock != nil, it.PerShopperLimit, it.Active,
		it.ImageURL, it.TemplateID, it.CreatedAt, it.UpdatedAt)
	return itemWriteError("insert item", err)
}

// updateItem writes every editable column; it returns ErrSKUTaken or ErrGTINTaken.
func updateItem(ctx context.Context, q sqlx.ExtContext, it Item) error {
	const query = `
		UPDATE items SET sku = $2, title = $3, description = $4, category = $5, gtin = NULLIF($6, ''),
			price_minor = $7, currency = $8, kind = $9, stock_tracked = $10, per_shopper_limit = $11,
			active = $12, image_url = NULLIF($13, ''), template_id = NULLIF($14, ''), updated_at = $15
		WHERE id = $1`
	_, err := q.ExecContext(ctx, query, it.ID, it.SKU, it.Title, it.Description, it.Category, it.GTIN,
		it.Price.Minor, it.Price.Currency.Code(), it.Kind, it.Stock != nil, it.PerShopperLimit,
		it.Active, it.ImageURL, it.TemplateID, it.UpdatedAt)
	return itemWriteError("update item", err)
}

func itemWriteError(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case database.IsUniqueViolation(err, "items_merchant_sku_key"):
		return ErrSKUTaken
	case database.IsUniqueViolation(err, "items_merchant_gtin_key"):
		return ErrGTINTaken
	}
	return fmt.Errorf("%s: %w", what, err)
}

// setStock replaces an item's stock buckets with the quantity spread over
// up to StockBucketsMax buckets (see stock.go), or none for unlimited stock. Callers hold the items row lock, so two edits
// cannot interleave; a sale in flight holds its bucket row, and the DELETE
// waits for it.
func setStock(ctx context.Context, q sqlx.ExtContext, itemID string, stock *int64) error {
	const deleteQuery = `DELETE FROM item_stock WHERE item_id = $1`
	const insertQuery = `INSERT INTO item_stock (item_id, bucket, quantity) SELECT $1, b - 1, q FROM unnest($2::bigint[]) WITH ORDINALITY AS t(q, b)`
	if _, err := q.ExecContext(ctx, deleteQuery, itemID); err != nil {
		return fmt.Errorf("clear item stock: %w", err)
	}
	if stock == nil {
		return nil
	}
	if _, err := q.ExecContext(ctx, insertQuery, itemID, pq.Array(spreadStock(*stock))); err != nil {
		return fmt.Errorf("set item stock: %w", err)
	}
	return nil
}
