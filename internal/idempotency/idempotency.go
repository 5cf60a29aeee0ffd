// Package idempotency implements the Idempotency-Key header (IETF
// draft-ietf-httpapi-idempotency-key-header) for every POST that creates
// something or moves money.
//
// The key is claimed in the same database transaction as the change it
// guards, so "the key is stored" and "the change committed" are one fact:
//
//   - a replay with the same body gets the stored response byte for byte;
//   - the same key with another body is 422 idempotency_key_reused;
//   - while the first request still runs, others get 409
//     idempotency_key_in_use with Retry-After (a transaction-scoped advisory
//     lock, tried without waiting, tells them apart);
//   - a business refusal (4xx from the change) is stored and replayed as it
//     was, after the change's transaction is rolled back (so nothing it
//     wrote stays); the primary key decides between it and a request with
//     the same key that ran in between;
//   - a failure (5xx) rolls everything back and stores nothing, so a retry
//     runs the change again; except that a connection lost during COMMIT
//     (answered 503 database_unavailable) leaves the outcome unknown to the
//     server too, which is why clients retry with the same key.
//
// Keys are scoped to the caller (merchant, channel, shopper), so callers can
// never see each other's responses, and are kept RetentionMin at least.
package idempotency

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/problem"
)

const (
	// HeaderKey is the request header carrying the key.
	HeaderKey = "Idempotency-Key"
	// HeaderReplayed marks a response that was replayed from storage.
	HeaderReplayed = "Idempotent-Replayed"
	// KeyLengthMax bounds keys; UUIDs and ULIDs fit easily.
	KeyLengthMax = 255
	// RetentionMin is how long a key is kept at least.
	RetentionMin = 24 * time.Hour
	// retryAfterSeconds is what a request that found its key in flight is told.
	retryAfterSeconds = 1
)

// Change runs inside the claiming transaction. It returns the success status
// and the value to encode as JSON, or an error: a *problem.Error with a 4xx
// status is a business refusal and is stored; anything else is a failure.
type Change func(tx *sqlx.Tx) (status int, value any, err error)

// Response is what a request answers, whether fresh or replayed.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
	Replayed    bool
	// Refusal is the business refusal the change returned (or, replayed,
	// the one it returned the first time, decoded with its stored kind);
	// nil for a success. Callers that are not HTTP handlers read it instead
	// of parsing Body.
	Refusal *problem.Error
}

// Store keeps idempotency keys in PostgreSQL.
type Store struct {
	db  *sqlx.DB
	now func() time.Time
	// stmts runs the claim's statements prepared: every keyed request runs them.
	stmts *database.Stmts
}

// NewStore returns a Store on db with an injected clock.
func NewStore(db *sqlx.DB, now func() time.Time) *Store {
	return &Store{db: db, now: now, stmts: database.NewStmts(db)}
}

// Scope is the caller a key belongs to. Build it with MerchantScope,
// ChannelScope or ShopperScope, never by hand, so that two kinds of caller
// can never share a key space by a typo.
type Scope string

// MerchantScope is the scope of a merchant's keys (API key or dashboard).
func MerchantScope(merchantID string) Scope { return Scope("merchant:" + merchantID) }

// ChannelScope is the scope of a messenger backend's keys (channel API).
func ChannelScope(channelID string) Scope { return Scope("channel:" + channelID) }

// ShopperScope is the scope of a shopper's keys (the shopper pages).
func ShopperScope(shopperID string) Scope { return Scope("shopper:" + shopperID) }

// Request identifies one idempotent request.
type Request struct {
	Scope  Scope  // the caller
	Key    string // empty: no key, the change simply runs once
	Method string
	Path   string
	Body   []byte
}

func (r Request) hash() []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", r.Method, r.Path)
	h.Write(r.Body)
	return h.Sum(nil)
}

// Run executes change in one transaction that also claims req.Key.
// It returns problem errors idempotency_key_invalid, idempotency_key_in_use
// and idempotency_key_reused, or the change's failure.
func (s *Store) Run(ctx context.Context, req Request, change Change) (Response, error) {
	if req.Key == "" {
		var resp Response
		err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
			status, value, err := change(tx)
			if err != nil {
				return err
			}
			resp, err = jsonResponse(status, value)
			return err
		})
		return resp, err
	}
	if err := validateKey(req.Key); err != nil {
		return Response{}, err
	}
	hash := req.hash()
	var resp Response
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		var err error
		resp, err = s.runClaimed(ctx, tx, req, hash, change)
		return err
	})
	var refused refusal
	switch {
	case errors.As(err, &refused):
		return s.storeRefusal(ctx, req, hash, refused.resp)
	case errors.Is(err, errClaimLost):
		return s.replay(ctx, req, hash)
	}
	return resp, err
}

// refusal carries a business refusal out of the claiming transaction, which
// rolls back so that nothing the change wrote stays; the answer is then
// stored on its own (storeRefusal). Rolling back the whole transaction
// costs a refusal one statement more than a savepoint would, and saves
// every success the SAVEPOINT round trip.
type refusal struct{ resp Response }

func (r refusal) Error() string { return "business refusal: " + r.resp.Refusal.Error() }

// errClaimLost is the claiming transaction's answer when its key row could
// not be inserted: another request with the key stored its answer first
// (only possible after this one's refusal was rolled back and stored
// unlocked, see storeRefusal). The change rolls back and the stored answer
// is replayed.
var errClaimLost = errors.New("idempotency key stored by another request")

func (s *Store) runClaimed(ctx context.Context, tx *sqlx.Tx, req Request, hash []byte, change Change) (Response, error) {
	var claim claimRow
	if err := s.stmts.Get(ctx, tx, &claim, claimSQL, string(req.Scope), req.Key); err != nil {
		return Response{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	if !claim.Locked {
		return Response{}, errInUse()
	}
	if claim.Status.Valid {
		return claim.stored().replayFor(hash)
	}

	resp, err := runChange(tx, change)
	if err != nil {
		p, isProblem := problem.As(err)
		if !isProblem || p.Status() >= 500 || database.IsRetryable(err) {
			return Response{}, err
		}
		status, body := problem.Render(p, req.Path)
		return Response{}, refusal{Response{Status: status, ContentType: problem.ContentType, Body: body, Refusal: p}}
	}
	stored, err := s.insert(ctx, tx, req, hash, resp)
	if err != nil {
		return Response{}, err
	}
	if !stored {
		return Response{}, errClaimLost
	}
	return resp, nil
}

// storeRefusal keeps a refusal's answer after its transaction rolled back,
// in one statement of its own. The key's lock went with that transaction,
// so another request with the key may have run meanwhile: the primary key
// decides whose answer is the key's, and the loser replays the winner's.
func (s *Store) storeRefusal(ctx context.Context, req Request, hash []byte, resp Response) (Response, error) {
	stored, err := s.insert(ctx, s.db, req, hash, resp)
	if err != nil {
		return Response{}, err
	}
	if !stored {
		return s.replay(ctx, req, hash)
	}
	return resp, nil
}

// insert stores resp as the key's answer and says whether it did: false when
// the key already has one.
func (s *Store) insert(ctx context.Context, q sqlx.ExtContext, req Request, hash []byte, resp Response) (bool, error) {
	var kind sql.NullString
	if resp.Refusal != nil {
		kind = sql.NullString{String: resp.Refusal.Kind.String(), Valid: true}
	}
	res, err := s.stmts.Exec(ctx, q, insertSQL, req.Scope, req.Key, hash, req.Method, req.Path,
		resp.Status, resp.ContentType, resp.Body, s.now(), kind)
	if err != nil {
		return false, fmt.Errorf("store idempotency key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store idempotency key: %w", err)
	}
	return n == 1, nil
}

// replay answers the key's stored response (outside any transaction: the
// row is committed, or the insert that lost to it would not have returned).
func (s *Store) replay(ctx context.Context, req Request, hash []byte) (Response, error) {
	var r storedResponse
	err := s.stmts.Get(ctx, s.db, &r, lookupSQL, req.Scope, req.Key)
	if errors.Is(err, sql.ErrNoRows) {
		return Response{}, fmt.Errorf("idempotency key %q vanished after a conflicting insert", req.Key)
	}
	if err != nil {
		return Response{}, fmt.Errorf("look up idempotency key: %w", err)
	}
	return r.replayFor(hash)
}

func errInUse() error {
	return problem.New(problem.KindConflict, "idempotency_key_in_use",
		"a request with this Idempotency-Key is still being processed; retry shortly").
		With("retry_after_seconds", retryAfterSeconds)
}

const (
	// claimSQL tries the key's lock and looks the key up after it is held,
	// in one round trip (migration 107 says why it is a function).
	claimSQL  = `SELECT o_locked, o_request_hash, o_status, o_content_type, o_body, o_problem_kind FROM idempotency_claim($1, $2)`
	lookupSQL = `SELECT request_hash, status, content_type, body, problem_kind FROM idempotency_keys WHERE scope = $1 AND key = $2`
	insertSQL = `
		INSERT INTO idempotency_keys (scope, key, request_hash, method, path, status, content_type, body, created_at, problem_kind)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (scope, key) DO NOTHING`
)

// claimRow is idempotency_claim's answer: the lock, and the stored answer
// when the key has one (Status valid).
type claimRow struct {
	Locked      bool           `db:"o_locked"`
	Hash        []byte         `db:"o_request_hash"`
	Status      sql.NullInt32  `db:"o_status"`
	ContentType sql.NullString `db:"o_content_type"`
	Body        []byte         `db:"o_body"`
	ProblemKind sql.NullString `db:"o_problem_kind"`
}

func (c claimRow) stored() storedResponse {
	return storedResponse{Hash: c.Hash, Status: int(c.Status.Int32), ContentType: c.ContentType.String, Body: c.Body, ProblemKind: c.ProblemKind}
}

func runChange(tx *sqlx.Tx, change Change) (Response, error) {
	status, value, err := change(tx)
	if err != nil {
		return Response{}, err
	}
	return jsonResponse(status, value)
}

type storedResponse struct {
	Hash        []byte         `db:"request_hash"`
	Status      int            `db:"status"`
	ContentType string         `db:"content_type"`
	Body        []byte         `db:"body"`
	ProblemKind sql.NullString `db:"problem_kind"`
}

// replayFor replays a stored answer to a request whose body hashes to hash:
// another body is idempotency_key_reused. A stored refusal is decoded back
// into the *problem.Error the change returned, with the kind stored next to
// it.
func (r storedResponse) replayFor(hash []byte) (Response, error) {
	if string(r.Hash) != string(hash) {
		return Response{}, problem.New(problem.KindInvalid, "idempotency_key_reused",
			"this Idempotency-Key was used with a different request; use a new key for a new request")
	}
	resp := Response{Status: r.Status, ContentType: r.ContentType, Body: r.Body, Replayed: true}
	if r.ContentType != problem.ContentType {
		return resp, nil
	}
	refused, err := problem.Decode(r.Body, r.ProblemKind.String, r.Status)
	if err != nil {
		return Response{}, fmt.Errorf("stored refusal: %w", err)
	}
	resp.Refusal = refused
	return resp, nil
}

// Purge deletes keys older than olderThan (at least RetentionMin) and says how many.
func (s *Store) Purge(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < RetentionMin {
		olderThan = RetentionMin
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, s.now().Add(-olderThan))
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return res.RowsAffected()
}

// KeyOf returns the request's Idempotency-Key, "" when it has none. A header
// that is present but blank, or sent twice, is idempotency_key_invalid: the
// client meant to protect the request, and running it unprotected would
// turn its retry into a second purchase.
func KeyOf(r *http.Request) (string, error) {
	values := r.Header.Values(HeaderKey)
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", problem.New(problem.KindBadRequest, "idempotency_key_invalid", "send one Idempotency-Key header, not %d", len(values))
	case strings.TrimSpace(values[0]) == "":
		return "", problem.New(problem.KindBadRequest, "idempotency_key_invalid", "Idempotency-Key is blank: send a unique key, or leave the header out")
	}
	return values[0], validateKey(values[0])
}

func validateKey(key string) error {
	if len(key) > KeyLengthMax {
		return problem.New(problem.KindBadRequest, "idempotency_key_invalid", "Idempotency-Key is longer than %d characters", KeyLengthMax)
	}
	for _, r := range key {
		if r < 0x21 || r > 0x7e {
			return problem.New(problem.KindBadRequest, "idempotency_key_invalid", "Idempotency-Key must be printable ASCII without spaces")
		}
	}
	return nil
}

func jsonResponse(status int, value any) (Response, error) {
	body, err := json.Marshal(value)
	if err != nil {
		return Response{}, fmt.Errorf("encode response: %w", err)
	}
	return Response{Status: status, ContentType: echo.MIMEApplicationJSON, Body: body}, nil
}

// Handle runs change for an echo request under the caller's scope and writes
// the response (fresh or replayed). body is the already-read request body.
func (s *Store) Handle(c echo.Context, scope Scope, body []byte, change Change) error {
	key, err := KeyOf(c.Request())
	if err != nil {
		return err
	}
	req := Request{
		Scope:  scope,
		Key:    key,
		Method: c.Request().Method,
		Path:   c.Request().URL.Path,
		Body:   body,
	}
	resp, err := s.Run(c.Request().Context(), req, change)
	if err != nil {
		return err
	}
	if resp.Replayed {
		c.Response().Header().Set(HeaderReplayed, "true")
	}
	if resp.Status == http.StatusNoContent {
		return c.NoContent(resp.Status)
	}
	return c.Blob(resp.Status, resp.ContentType, resp.Body)
}
