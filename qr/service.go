package qr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// idPrefix prefixes every QR code id ("qr_…").
const idPrefix = "qr"

// ItemChecker tells whether itemID is one of merchantID's items. catalog
// provides it through the wiring in cmd; it returns a *problem.Error of kind
// not found for a foreign or unknown item.
type ItemChecker func(ctx context.Context, merchantID, itemID string) error

// Service holds the rules for QR codes. Methods that another package runs
// inside its own transaction take a sqlx.ExtContext (a *sqlx.Tx or the pool).
type Service struct {
	db        *sqlx.DB
	now       func() time.Time
	baseURL   string
	checkItem ItemChecker
	// linkChannel looks up the channels of codes that open a messenger
	// (messengers.go); nil allows only web and chooser codes.
	linkChannel ChannelLinker
}

// NewService returns a Service on db with an injected clock. publicBaseURL is
// where shoppers reach chatpay ("https://pay.example.com"); codes encode
// publicBaseURL + "/q/" + token. checkItem is catalog's check that a static
// code's item belongs to the merchant; nil checks only the item id's form,
// for programs that create no static codes (run-once commands, tests).
func NewService(db *sqlx.DB, now func() time.Time, publicBaseURL string, checkItem ItemChecker, options ...Option) (*Service, error) {
	base, err := normalizeBaseURL(publicBaseURL)
	if err != nil {
		return nil, err
	}
	s := &Service{db: db, now: now, baseURL: base, checkItem: checkItem}
	for _, option := range options {
		option(s)
	}
	return s, nil
}

func normalizeBaseURL(raw string) (string, error) {
	base := strings.TrimRight(raw, "/")
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("qr public base URL %q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("qr public base URL %q must be an absolute http(s) URL without credentials, query or fragment", raw)
	}
	if len(base) > PublicBaseURLLengthMax {
		return "", fmt.Errorf("qr public base URL is %d bytes; at most %d keep the QR code easy to scan", len(base), PublicBaseURLLengthMax)
	}
	return base, nil
}

// URL is the address a code with token encodes: the shopper page that
// payments serves at /q/<token>.
func (s *Service) URL(token string) string { return s.baseURL + "/q/" + token }

// PageURL is the public URL of another page of chatpay (a receipt), so that
// every link chatpay hands out shares the one configured base URL.
func (s *Service) PageURL(path string) string { return s.baseURL + path }

// targetIDPattern is the form of the foreign ids chatpay makes (ids.New) with
// room for other reasonable ids; it keeps odd bytes out of URLs and logs.
var targetIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// CreateStatic makes a reusable code for one of the merchant's items. It
// runs on db, which may be a transaction (the idempotent POST runs it inside
// the transaction that claims the key). Errors: validation_failed naming
// item_id or placement, or the item checker's refusal as a field error.
func (s *Service) CreateStatic(ctx context.Context, db sqlx.ExtContext, merchantID string, in StaticInput) (Code, error) {
	if err := checkMerchantID(merchantID); err != nil {
		return Code{}, err
	}
	var fields []problem.FieldError
	if !targetIDPattern.MatchString(in.ItemID) {
		fields = append(fields, problem.FieldError{Field: "item_id", Code: "invalid_id",
			Detail: fmt.Sprintf("item_id must be 1 to %d letters, digits, '_' or '-'", TargetIDLengthMax)})
	}
	if f, ok := checkPlacement(in.Placement); !ok {
		fields = append(fields, f)
	}
	if len(fields) > 0 {
		return Code{}, problem.Invalid(fields...)
	}
	if s.checkItem != nil {
		if err := s.checkItem(ctx, merchantID, in.ItemID); err != nil {
			return Code{}, itemCheckError(err)
		}
	}
	if err := s.checkOpens(ctx, &in); err != nil {
		return Code{}, err
	}
	token, err := NewToken()
	if err != nil {
		return Code{}, err
	}
	c := Code{
		ID:         ids.New(idPrefix),
		MerchantID: merchantID,
		Kind:       KindStatic,
		TargetType: TargetItem,
		TargetID:   in.ItemID,
		Placement:  in.Placement,
		Token:      token,
		CreatedAt:  s.now().UTC().Truncate(time.Microsecond), // PostgreSQL keeps microseconds
		Opens:      in.Opens,
		ChannelID:  in.ChannelID,
	}
	if err := insertCode(ctx, db, c); err != nil {
		return Code{}, err
	}
	return c, nil
}

func itemCheckError(err error) error {
	if p, ok := problem.As(err); ok {
		if p.Kind == problem.KindNotFound {
			return problem.Field("item_id", "item_not_found", "the merchant has no item with this id")
		}
		return p
	}
	return fmt.Errorf("check item: %w", err)
}

func checkMerchantID(merchantID string) error {
	// The merchant id comes from authentication, never from a client, so a
	// bad one is a wiring bug rather than a validation error.
	if merchantID == "" || len(merchantID) > MerchantIDLengthMax {
		return fmt.Errorf("qr: merchant id %q is empty or longer than %d bytes", merchantID, MerchantIDLengthMax)
	}
	return nil
}

func checkPlacement(placement string) (problem.FieldError, bool) {
	fail := func(detail string) (problem.FieldError, bool) {
		return problem.FieldError{Field: "placement", Code: "invalid_placement", Detail: detail}, false
	}
	if !utf8.ValidString(placement) {
		return fail("placement must be valid UTF-8 text")
	}
	if n := utf8.RuneCountInString(placement); n > PlacementLengthMax {
		return fail(fmt.Sprintf("placement must be at most %d characters, got %d", PlacementLengthMax, n))
	}
	for _, r := range placement {
		if unicode.IsControl(r) {
			return fail("placement must not contain control characters")
		}
	}
	return problem.FieldError{}, true
}

// CreateDynamic makes a one-time code for a checkout, bound to amount and
// expiring after ttl (DynamicTTLDefault when ttl is 0). payments calls it in
// its checkout transaction. Errors: validation_failed naming checkout_id,
// amount or ttl.
func (s *Service) CreateDynamic(ctx context.Context, db sqlx.ExtContext, merchantID, checkoutID string, amount money.Amount, ttl time.Duration) (Code, error) {
	if err := checkMerchantID(merchantID); err != nil {
		return Code{}, err
	}
	if ttl == 0 {
		ttl = DynamicTTLDefault
	}
	var fields []problem.FieldError
	if !targetIDPattern.MatchString(checkoutID) {
		fields = append(fields, problem.FieldError{Field: "checkout_id", Code: "invalid_id",
			Detail: fmt.Sprintf("checkout_id must be 1 to %d letters, digits, '_' or '-'", TargetIDLengthMax)})
	}
	if amount.Currency.IsZero() || amount.Minor < 0 || amount.Minor > money.MinorMax {
		fields = append(fields, problem.FieldError{Field: "amount", Code: "invalid_amount",
			Detail: "amount must have a currency and lie between zero and the maximum amount"})
	}
	if ttl < DynamicTTLMin || ttl > DynamicTTLMax {
		fields = append(fields, problem.FieldError{Field: "ttl", Code: "out_of_range",
			Detail: fmt.Sprintf("ttl must be between %s and %s", DynamicTTLMin, DynamicTTLMax)})
	}
	if len(fields) > 0 {
		return Code{}, problem.Invalid(fields...)
	}
	token, err := NewToken()
	if err != nil {
		return Code{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	expires := now.Add(ttl)
	c := Code{
		ID:         ids.New(idPrefix),
		MerchantID: merchantID,
		Kind:       KindDynamic,
		TargetType: TargetCheckout,
		TargetID:   checkoutID,
		Token:      token,
		Amount:     &amount,
		CreatedAt:  now,
		ExpiresAt:  &expires,
	}
	if err := insertCode(ctx, db, c); err != nil {
		return Code{}, err
	}
	return c, nil
}

// Resolve returns the active code with token. Errors: qr_not_found (404) for
// a malformed or unknown token; qr_revoked, qr_expired or qr_used (409) for a
// code that exists but cannot be used any more. With those three the code is
// returned too, so that the page can still name the merchant or link to the
// receipt of the checkout that used it.
func (s *Service) Resolve(ctx context.Context, db sqlx.ExtContext, token string) (Code, error) {
	token, err := ParseToken(token)
	if err != nil {
		return Code{}, err
	}
	c, found, err := codeByToken(ctx, db, token)
	if err != nil {
		return Code{}, err
	}
	if !found {
		return Code{}, errNotFound()
	}
	return c, statusError(c.StatusAt(s.now()))
}

// Consume marks the dynamic code with token used and returns it. payments
// calls it inside the transaction that confirms the checkout, so the code is
// used exactly when the payment commits; of concurrent callers exactly one
// succeeds. The caller must check that the returned code's TargetID and
// Amount are the checkout it is confirming. Errors: qr_not_found, qr_revoked,
// qr_expired, qr_used, and qr_not_consumable (409) for a static code.
func (s *Service) Consume(ctx context.Context, db sqlx.ExtContext, token string) (Code, error) {
	token, err := ParseToken(token)
	if err != nil {
		return Code{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	c, consumed, err := consumeCode(ctx, db, token, now)
	if err != nil || consumed {
		return c, err
	}
	// Nothing matched: read the code to say precisely why.
	c, found, err := codeByToken(ctx, db, token)
	switch {
	case err != nil:
		return Code{}, err
	case !found:
		return Code{}, errNotFound()
	case c.Kind != KindDynamic:
		return Code{}, problem.New(problem.KindConflict, CodeNotConsumable, "a static QR code is reusable and cannot be consumed")
	}
	if err := statusError(c.StatusAt(now)); err != nil {
		return c, err
	}
	return Code{}, fmt.Errorf("consume qr code %s: active, yet the update matched no row", c.ID)
}

// Get returns the merchant's code with id and its scan count. Errors:
// qr_not_found, also for another merchant's code.
func (s *Service) Get(ctx context.Context, merchantID, id string) (Code, error) {
	if !ids.HasPrefix(id, idPrefix) {
		return Code{}, errNotFound()
	}
	c, found, err := codeByID(ctx, s.db, merchantID, id)
	if err != nil {
		return Code{}, err
	}
	if !found {
		return Code{}, errNotFound()
	}
	return c, nil
}

// Revoke withdraws the merchant's code so that it no longer resolves. Revoking
// a revoked code returns it unchanged. Errors: qr_not_found, and qr_used (409)
// for a dynamic code that a payment already used (its history stays as is).
func (s *Service) Revoke(ctx context.Context, merchantID, id string) (Code, error) {
	if !ids.HasPrefix(id, idPrefix) {
		return Code{}, errNotFound()
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	c, revoked, err := revokeCode(ctx, s.db, merchantID, id, now)
	if err != nil || revoked {
		return c, err
	}
	c, err = s.Get(ctx, merchantID, id)
	switch {
	case err != nil:
		return Code{}, err
	case c.RevokedAt != nil:
		return c, nil
	case c.ConsumedAt != nil:
		return Code{}, statusError(StatusUsed)
	}
	return Code{}, fmt.Errorf("revoke qr code %s: unrevoked and unused, yet the update matched no row", id)
}

// ListQuery selects a page of the merchant's codes.
type ListQuery struct {
	Kind   Kind   // empty: every kind
	Cursor string // from the previous Page's NextCursor; empty for the first page
	Limit  int    // 0: PageSizeDefault
}

// Page is one page of codes, newest first. NextCursor is empty on the last page.
type Page struct {
	Codes      []Code
	NextCursor string
}

// List returns a page of the merchant's codes with their scan counts.
// Errors: validation_failed naming kind, cursor or limit.
func (s *Service) List(ctx context.Context, merchantID string, q ListQuery) (Page, error) {
	if q.Limit == 0 {
		q.Limit = PageSizeDefault
	}
	if q.Limit < 1 || q.Limit > PageSizeMax {
		return Page{}, problem.Field("limit", "out_of_range", "limit must be between 1 and %d", PageSizeMax)
	}
	if q.Kind != "" && q.Kind != KindStatic && q.Kind != KindDynamic {
		return Page{}, problem.Field("kind", "invalid_kind", "kind must be %q or %q", KindStatic, KindDynamic)
	}
	page := listPage{merchantID: merchantID, kind: q.Kind, limit: q.Limit + 1}
	if q.Cursor != "" {
		after, err := parseCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		page.after = &after
	}
	codes, err := listCodes(ctx, s.db, page)
	if err != nil {
		return Page{}, err
	}
	var next string
	if len(codes) > q.Limit {
		codes = codes[:q.Limit]
		last := codes[len(codes)-1]
		next = cursor{createdAt: last.CreatedAt, id: last.ID}.String()
	}
	return Page{Codes: codes, NextCursor: next}, nil
}

// cursor is the position after which a page starts: the (created_at, id) of
// the previous page's last code. Its text form is opaque to clients.
type cursor struct {
	createdAt time.Time
	id        string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.createdAt.UnixMicro(), 10) + "." + c.id))
}

// cursorLengthMax bounds the cursor text: a timestamp and an id fit in 64.
const cursorLengthMax = 128

func parseCursor(s string) (cursor, error) {
	bad := problem.Field("cursor", "invalid_cursor", "cursor must be a next_cursor value returned by this list")
	if len(s) > cursorLengthMax {
		return cursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, bad
	}
	micros, id, ok := strings.Cut(string(raw), ".")
	if !ok || !ids.HasPrefix(id, idPrefix) {
		return cursor{}, bad
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return cursor{}, bad
	}
	return cursor{createdAt: time.UnixMicro(n).UTC(), id: id}, nil
}

// RecordScan appends a scan of the code qrID, whatever its state: scans of a
// revoked poster still tell the merchant it hangs somewhere. payments calls
// it when the shopper page opens. The user agent is cut to
// UserAgentLengthMax. Errors: qr_not_found, validation_failed naming
// shopper_ref.
func (s *Service) RecordScan(ctx context.Context, db sqlx.ExtContext, qrID string, scan Scan) error {
	if !ids.HasPrefix(qrID, idPrefix) {
		return errNotFound()
	}
	if len(scan.ShopperRef) > ShopperRefLengthMax || !utf8.ValidString(scan.ShopperRef) || strings.ContainsRune(scan.ShopperRef, 0) {
		return problem.Field("shopper_ref", "invalid_shopper_ref", "shopper_ref must be UTF-8 text of at most %d bytes", ShopperRefLengthMax)
	}
	// User agents are whatever a client sent: keep valid text only, without
	// the NUL bytes PostgreSQL's text type refuses.
	agent := strings.ReplaceAll(strings.ToValidUTF8(scan.UserAgent, ""), "\x00", "")
	scan.UserAgent = truncate(agent, UserAgentLengthMax)
	found, err := insertScan(ctx, db, qrID, scan, s.now().UTC())
	if err != nil {
		return err
	}
	if !found {
		return errNotFound()
	}
	return nil
}

// Funnel reports scans of the merchant's newest FunnelCodesMax static
// codes. Dynamic codes are left out: each belongs to one checkout already.
// The dashboard joins the rows with payments' checkout counts itself, so
// data flows one way: qr knows nothing of checkouts.
func (s *Service) Funnel(ctx context.Context, merchantID string) ([]FunnelRow, error) {
	return funnelScans(ctx, s.db, merchantID, FunnelCodesMax)
}

// HasCode reports whether err is a problem with the given code, so callers
// can tell the qr_* errors apart without unwrapping them.
func HasCode(err error, code string) bool {
	var p *problem.Error
	return errors.As(err, &p) && p.Code == code
}
