package qr

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/money"
)

// The store functions take sqlx.ExtContext so that the same SQL runs on the
// pool or inside a caller's transaction (payments consumes a code inside its
// checkout transaction). Only this file writes SQL against qr_codes and
// qr_scans.

const codeColumns = `id, merchant_id, kind, target_type, target_id, placement, token,
	amount_minor, currency, created_at, expires_at, revoked_at, consumed_at, opens, COALESCE(channel_id, '') AS channel_id`

// scanCountColumn counts a code's scans. Scans are append-only rows, so the
// count is computed when read instead of bumping a counter on a hot row.
const scanCountColumn = `(SELECT count(*) FROM qr_scans s WHERE s.qr_id = qr_codes.id) AS scan_count`

type codeRow struct {
	ID          string         `db:"id"`
	MerchantID  string         `db:"merchant_id"`
	Kind        string         `db:"kind"`
	TargetType  string         `db:"target_type"`
	TargetID    string         `db:"target_id"`
	Placement   string         `db:"placement"`
	Token       string         `db:"token"`
	AmountMinor sql.NullInt64  `db:"amount_minor"`
	Currency    sql.NullString `db:"currency"`
	CreatedAt   time.Time      `db:"created_at"`
	ExpiresAt   *time.Time     `db:"expires_at"`
	RevokedAt   *time.Time     `db:"revoked_at"`
	ConsumedAt  *time.Time     `db:"consumed_at"`
	ScanCount   int64          `db:"scan_count"`
	Opens       string         `db:"opens"`
	ChannelID   string         `db:"channel_id"`
}

func (r codeRow) code() (Code, error) {
	c := Code{
		ID:         r.ID,
		MerchantID: r.MerchantID,
		Kind:       Kind(r.Kind),
		TargetType: TargetType(r.TargetType),
		TargetID:   r.TargetID,
		Placement:  r.Placement,
		Token:      r.Token,
		CreatedAt:  r.CreatedAt.UTC(),
		ExpiresAt:  utc(r.ExpiresAt),
		RevokedAt:  utc(r.RevokedAt),
		ConsumedAt: utc(r.ConsumedAt),
		ScanCount:  r.ScanCount,
		Opens:      r.Opens,
		ChannelID:  r.ChannelID,
	}
	if r.AmountMinor.Valid != r.Currency.Valid {
		return Code{}, fmt.Errorf("qr code %s has half an amount", r.ID) // the schema forbids it
	}
	if r.AmountMinor.Valid {
		currency, err := money.ParseCurrency(r.Currency.String)
		if err != nil {
			return Code{}, fmt.Errorf("qr code %s: stored currency: %w", r.ID, err)
		}
		amount := money.New(r.AmountMinor.Int64, currency)
		c.Amount = &amount
	}
	return c, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func insertCode(ctx context.Context, db sqlx.ExtContext, c Code) error {
	const q = `
		INSERT INTO qr_codes (id, merchant_id, kind, target_type, target_id, placement, token,
			amount_minor, currency, created_at, expires_at, opens, channel_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	var minor sql.NullInt64
	var currency sql.NullString
	if c.Amount != nil {
		minor = sql.NullInt64{Int64: c.Amount.Minor, Valid: true}
		currency = sql.NullString{String: c.Amount.Currency.Code(), Valid: true}
	}
	if _, err := db.ExecContext(ctx, q, c.ID, c.MerchantID, c.Kind, c.TargetType, c.TargetID, c.Placement,
		c.Token, minor, currency, c.CreatedAt, c.ExpiresAt, opensOrWeb(c.Opens),
		sql.NullString{String: c.ChannelID, Valid: c.ChannelID != ""}); err != nil {
		return fmt.Errorf("insert qr code: %w", err)
	}
	return nil
}

// codeByToken returns the code with token; found is false when none has it.
func codeByToken(ctx context.Context, db sqlx.ExtContext, token string) (c Code, found bool, err error) {
	const q = `SELECT ` + codeColumns + ` FROM qr_codes WHERE token = $1`
	return getCode(ctx, db, q, token)
}

// codeByID returns the merchant's code with id and its scan count; another
// merchant's code is simply not found.
func codeByID(ctx context.Context, db sqlx.ExtContext, merchantID, id string) (Code, bool, error) {
	const q = `SELECT ` + codeColumns + `, ` + scanCountColumn + `
		FROM qr_codes WHERE merchant_id = $1 AND id = $2`
	return getCode(ctx, db, q, merchantID, id)
}

func getCode(ctx context.Context, db sqlx.ExtContext, q string, args ...any) (Code, bool, error) {
	var row codeRow
	err := sqlx.GetContext(ctx, db, &row, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return Code{}, false, nil
	}
	if err != nil {
		return Code{}, false, fmt.Errorf("select qr code: %w", err)
	}
	c, err := row.code()
	return c, err == nil, err
}

// listPage is one page of a merchant's codes, newest first; after is the
// (created_at, id) position of the last row of the previous page.
type listPage struct {
	merchantID string
	kind       Kind // empty: every kind
	after      *cursor
	limit      int
}

func listCodes(ctx context.Context, db sqlx.ExtContext, p listPage) ([]Code, error) {
	const q = `
		SELECT ` + codeColumns + `, ` + scanCountColumn + `
		FROM qr_codes
		WHERE merchant_id = $1
		  AND ($2 = '' OR kind = $2)
		  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::text))
		ORDER BY created_at DESC, id DESC
		LIMIT $5`
	var afterTime sql.NullTime
	var afterID string
	if p.after != nil {
		afterTime = sql.NullTime{Time: p.after.createdAt, Valid: true}
		afterID = p.after.id
	}
	var rows []codeRow
	if err := sqlx.SelectContext(ctx, db, &rows, q, p.merchantID, string(p.kind), afterTime, afterID, p.limit); err != nil {
		return nil, fmt.Errorf("list qr codes: %w", err)
	}
	codes := make([]Code, 0, len(rows))
	for _, r := range rows {
		c, err := r.code()
		if err != nil {
			return nil, err
		}
		codes = append(codes, c)
	}
	return codes, nil
}

// revokeCode marks the merchant's active or expired code revoked at now and
// returns it; found is false when no such unrevoked, unused code exists.
func revokeCode(ctx context.Context, db sqlx.ExtContext, merchantID, id string, now time.Time) (Code, bool, error) {
	const q = `
		UPDATE qr_codes SET revoked_at = $3
		WHERE merchant_id = $1 AND id = $2 AND revoked_at IS NULL AND consumed_at IS NULL
		RETURNING ` + codeColumns + `, ` + scanCountColumn
	return getCode(ctx, db, q, merchantID, id, now)
}

// consumeCode marks an active dynamic code used at now, in one statement, so
// that of any number of concurrent callers exactly one gets found = true: the
// others wait for its row lock and then no longer match the WHERE clause.
func consumeCode(ctx context.Context, db sqlx.ExtContext, token string, now time.Time) (Code, bool, error) {
	const q = `
		UPDATE qr_codes SET consumed_at = $2
		WHERE token = $1 AND kind = 'dynamic'
		  AND revoked_at IS NULL AND consumed_at IS NULL AND expires_at > $2
		RETURNING ` + codeColumns
	return getCode(ctx, db, q, token, now)
}

// insertScan appends one scan; a qrID that matches no code is reported as
// found = false through the foreign key.
func insertScan(ctx context.Context, db sqlx.ExtContext, qrID string, scan Scan, now time.Time) (found bool, err error) {
	const q = `INSERT INTO qr_scans (qr_id, scanned_at, shopper_ref, user_agent, messenger) VALUES ($1, $2, $3, $4, $5)`
	shopperRef := sql.NullString{String: scan.ShopperRef, Valid: scan.ShopperRef != ""}
	if _, err := db.ExecContext(ctx, q, qrID, now, shopperRef, scan.UserAgent, scanMessenger(scan.Messenger)); err != nil {
		if database.SQLState(err) == database.CodeForeignKeyViolation {
			return false, nil
		}
		return false, fmt.Errorf("insert qr scan: %w", err)
	}
	return true, nil
}

// funnelScans returns the merchant's newest static codes with their scan counts.
func funnelScans(ctx context.Context, db sqlx.ExtContext, merchantID string, limit int) ([]FunnelRow, error) {
	const q = `
		SELECT id, target_id, placement, created_at, revoked_at, ` + scanCountColumn + `
		FROM qr_codes
		WHERE merchant_id = $1 AND kind = 'static'
		ORDER BY created_at DESC, id DESC
		LIMIT $2`
	var rows []struct {
		ID        string     `db:"id"`
		TargetID  string     `db:"target_id"`
		Placement string     `db:"placement"`
		CreatedAt time.Time  `db:"created_at"`
		RevokedAt *time.Time `db:"revoked_at"`
		ScanCount int64      `db:"scan_count"`
	}
	if err := sqlx.SelectContext(ctx, db, &rows, q, merchantID, limit); err != nil {
		return nil, fmt.Errorf("select qr funnel: %w", err)
	}
	funnel := make([]FunnelRow, 0, len(rows))
	for _, r := range rows {
		funnel = append(funnel, FunnelRow{
			QRID: r.ID, TargetID: r.TargetID, Placement: r.Placement,
			CreatedAt: r.CreatedAt.UTC(), RevokedAt: utc(r.RevokedAt), Scans: r.ScanCount,
		})
	}
	return funnel, nil
}
