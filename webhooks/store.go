package webhooks

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/database"

	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/problem"
)

// endpointRow is an endpoint as stored, secrets included.
type endpointRow struct {
	ID                      string         `db:"id"`
	OwnerKind               string         `db:"owner_kind"`
	OwnerID                 string         `db:"owner_id"`
	URL                     string         `db:"url"`
	Description             string         `db:"description"`
	EventTypes              pq.StringArray `db:"event_types"`
	Secret                  string         `db:"secret"`
	PreviousSecretExpiresAt sql.NullTime   `db:"previous_secret_expires_at"` // the latest expiry of the old secrets kept
	Enabled                 bool           `db:"enabled"`
	DisabledReason          string         `db:"disabled_reason"`
	FailingSince            sql.NullTime   `db:"failing_since"`
	CreatedAt               time.Time      `db:"created_at"`
	UpdatedAt               time.Time      `db:"updated_at"`
}

const endpointColumns = `id, owner_kind, owner_id, url, description, event_types, secret,
	(SELECT max(s.expires_at) FROM webhook_endpoint_secrets s WHERE s.endpoint_id = webhook_endpoints.id) AS previous_secret_expires_at,
	enabled, disabled_reason, failing_since, created_at, updated_at`

const insertEndpointSQL = `
INSERT INTO webhook_endpoints (id, owner_kind, owner_id, url, description, event_types, secret, enabled, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8, $8)
RETURNING ` + endpointColumns

func insertEndpoint(ctx context.Context, db sqlx.QueryerContext, owner Owner, in EndpointInput, secret string, now time.Time) (endpointRow, error) {
	var row endpointRow
	err := sqlx.GetContext(ctx, db, &row, insertEndpointSQL, ids.New("whe"), owner.Kind, owner.ID, in.URL,
		in.Description, eventTypesArray(in.EventTypes), secret, now)
	if err != nil {
		return row, fmt.Errorf("insert webhook endpoint: %w", err)
	}
	return row, nil
}

// eventTypesArray stores "all types" as NULL.
func eventTypesArray(types []string) any {
	if len(types) == 0 {
		return nil
	}
	return pq.StringArray(types)
}

const getEndpointSQL = `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE id = $1 AND owner_kind = $2 AND owner_id = $3`

// getEndpoint returns the owner's endpoint, or a not_found problem for an
// absent endpoint and for another owner's alike.
func getEndpoint(ctx context.Context, db sqlx.QueryerContext, owner Owner, id string) (endpointRow, error) {
	var row endpointRow
	err := sqlx.GetContext(ctx, db, &row, getEndpointSQL, id, owner.Kind, owner.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return row, problem.NotFound("webhook endpoint")
	}
	if err != nil {
		return row, fmt.Errorf("get webhook endpoint: %w", err)
	}
	return row, nil
}

const getEndpointByIDSQL = `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE id = $1`

// getEndpointByID returns any owner's endpoint (the operator's view) or not_found.
func getEndpointByID(ctx context.Context, db sqlx.QueryerContext, id string) (endpointRow, error) {
	var row endpointRow
	err := sqlx.GetContext(ctx, db, &row, getEndpointByIDSQL, id)
	if errors.Is(err, sql.ErrNoRows) {
		return row, problem.NotFound("webhook endpoint")
	}
	if err != nil {
		return row, fmt.Errorf("get webhook endpoint: %w", err)
	}
	return row, nil
}

const getEndpointForUpdateSQL = getEndpointSQL + ` FOR UPDATE`

func getEndpointForUpdate(ctx context.Context, tx *sqlx.Tx, owner Owner, id string) (endpointRow, error) {
	var row endpointRow
	err := sqlx.GetContext(ctx, tx, &row, getEndpointForUpdateSQL, id, owner.Kind, owner.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return row, problem.NotFound("webhook endpoint")
	}
	if err != nil {
		return row, fmt.Errorf("lock webhook endpoint: %w", err)
	}
	return row, nil
}

// The list is ordered newest first; the cursor is the last row's (created_at, id).
const listEndpointsSQL = `
SELECT ` + endpointColumns + ` FROM webhook_endpoints
WHERE owner_kind = $1 AND owner_id = $2
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
ORDER BY created_at DESC, id DESC
LIMIT $5`

func listEndpoints(ctx context.Context, db sqlx.QueryerContext, owner Owner, after *endpointCursor, limit int) ([]endpointRow, error) {
	var at any
	var id string
	if after != nil {
		at, id = after.CreatedAt, after.ID
	}
	var rows []endpointRow
	if err := sqlx.SelectContext(ctx, db, &rows, listEndpointsSQL, owner.Kind, owner.ID, at, id, limit); err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	return rows, nil
}

const updateEndpointSQL = `
UPDATE webhook_endpoints
SET url = $2, description = $3, event_types = $4, enabled = $5, disabled_reason = $6,
    failing_since = $7, updated_at = $8
WHERE id = $1
RETURNING ` + endpointColumns

func updateEndpoint(ctx context.Context, tx *sqlx.Tx, row endpointRow, now time.Time) (endpointRow, error) {
	var out endpointRow
	err := sqlx.GetContext(ctx, tx, &out, updateEndpointSQL, row.ID, row.URL, row.Description,
		eventTypesArray(row.EventTypes), row.Enabled, row.DisabledReason, row.FailingSince, now)
	if err != nil {
		return out, fmt.Errorf("update webhook endpoint: %w", err)
	}
	return out, nil
}

const rotateSecretSQL = `UPDATE webhook_endpoints SET secret = $2, updated_at = $3 WHERE id = $1`

const purgeSecretsSQL = `DELETE FROM webhook_endpoint_secrets WHERE endpoint_id = $1 AND expires_at <= $2`

const liveSecretsSQL = `SELECT expires_at FROM webhook_endpoint_secrets WHERE endpoint_id = $1 ORDER BY expires_at`

const keepSecretSQL = `
INSERT INTO webhook_endpoint_secrets (endpoint_id, secret, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (endpoint_id, secret) DO UPDATE SET expires_at = greatest(webhook_endpoint_secrets.expires_at, EXCLUDED.expires_at)`

// keptSecretExpiries drops the endpoint's old secrets that expired by now and
// returns the expiries of those still signing, soonest first. The caller
// holds the endpoint's row lock.
func keptSecretExpiries(ctx context.Context, tx *sqlx.Tx, id string, now time.Time) ([]time.Time, error) {
	if _, err := tx.ExecContext(ctx, purgeSecretsSQL, id, now); err != nil {
		return nil, fmt.Errorf("purge expired webhook secrets: %w", err)
	}
	var out []time.Time
	if err := sqlx.SelectContext(ctx, tx, &out, liveSecretsSQL, id); err != nil {
		return nil, fmt.Errorf("list webhook secrets: %w", err)
	}
	return out, nil
}

// rotateSecret makes secret current and keeps previous signing until
// keepUntil (not at all when keepUntil is not after now).
func rotateSecret(ctx context.Context, tx *sqlx.Tx, id, secret, previous string, keepUntil, now time.Time) error {
	if keepUntil.After(now) {
		if _, err := tx.ExecContext(ctx, keepSecretSQL, id, previous, keepUntil); err != nil {
			return fmt.Errorf("keep the old webhook secret: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, rotateSecretSQL, id, secret, now); err != nil {
		return fmt.Errorf("rotate webhook secret: %w", err)
	}
	return nil
}

const deleteEndpointSQL = `DELETE FROM webhook_endpoints WHERE id = $1 AND owner_kind = $2 AND owner_id = $3`

func deleteEndpoint(ctx context.Context, db sqlx.ExecerContext, owner Owner, id string) error {
	res, err := db.ExecContext(ctx, deleteEndpointSQL, id, owner.Kind, owner.ID)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete webhook endpoint: %w", err)
	} else if n == 0 {
		return problem.NotFound("webhook endpoint")
	}
	return nil
}

// Enqueue takes a per-conversation advisory lock that it keeps until the
// caller's transaction ends, and only then draws the event's seq: a second
// transaction of the same conversation waits for the first to commit or roll
// back before drawing its own, so seq order is commit order within a
// conversation. Hash collisions only make two conversations wait for each
// other briefly.
const lockConversationSQL = `SELECT pg_advisory_xact_lock(hashtextextended('webhooks:' || $1, 0))`

// insertEventsSQL writes events in one round trip (issue 19; it was two or
// three per event) by calling webhook_enqueue (migration 00122), which a
// purchase's own function (purchase_pay) calls too. The function takes the conversations' locks (lockConversationSQL's,
// in sorted order so that two writers cannot deadlock, and all before any
// seq is drawn), writes the events with their seqs drawn in the order
// given, fans each out to the matching enabled endpoints of its owners (or
// to one target endpoint for a test ping), and notifies the dispatchers
// when it made a delivery. PostgreSQL delivers the notification at commit,
// and never after a rollback. A delivery is due at the event's time or the
// database's real now(), whichever is earlier: an event stamped in the
// future (`chatpay expire --now`, a sandbox test clock) goes out at once
// instead of parking its conversation's queue until then.
//
// $1 the conversations (sorted, distinct); $2–$6 the events (id, type,
// ordering key, body, created_at); $7 each event's owners as an array
// literal; $8–$10 the owners again, one row per (event, owner), distinct
// per event; $11 the target endpoint, empty for none; $12 the notify channel.
const insertEventsSQL = `SELECT o_deliveries, o_notified FROM webhook_enqueue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

const notifySQL = `SELECT pg_notify($1, '')`

// insertEvents writes a prepared batch and says how many deliveries it made.
func insertEvents(ctx context.Context, tx sqlx.ExtContext, stmts *database.Stmts, b Batch) (int, error) {
	var inserted struct {
		Deliveries int            `db:"o_deliveries"`
		Notified   sql.NullString `db:"o_notified"`
	}
	if err := stmts.Get(ctx, tx, &inserted, insertEventsSQL, b.args...); err != nil {
		return 0, fmt.Errorf("insert webhook events: %w", err)
	}
	return inserted.Deliveries, nil
}

// Batch is events ready for webhook_enqueue (migration 00122): validated,
// with ids and bodies, as the function's twelve arguments. A caller whose
// own database function writes its events (payments' purchase_pay) passes
// Args through, so the events cost it no round trip of their own.
type Batch struct {
	args []any
}

// Args are webhook_enqueue's arguments, in order.
func (b Batch) Args() []any { return b.args }

// prepareBatch validates events, gives the ones without an id a new one (in
// events itself) and encodes their bodies.
func prepareBatch(events []Event, targetEndpointID string) (Batch, error) {
	eventIDs := make([]string, len(events))
	types := make([]string, len(events))
	orderingKeys := make([]string, len(events))
	createdAt := make([]string, len(events))
	owners := make([]string, len(events))
	bodies := make([][]byte, len(events))
	var ownerEvents, ownerKinds, ownerIDs []string
	for i := range events {
		e := &events[i]
		if e.ID == "" {
			e.ID = ids.New("evt")
		}
		if err := e.validate(); err != nil {
			return Batch{}, err
		}
		body, err := e.body()
		if err != nil {
			return Batch{}, err
		}
		bodies[i] = body
		eventIDs[i], types[i], orderingKeys[i] = e.ID, e.Type, e.OrderingKey
		createdAt[i] = e.CreatedAt.Format(time.RFC3339Nano)
		names := make([]string, len(e.Owners))
		seen := make(map[Owner]bool, len(e.Owners))
		for j, o := range e.Owners {
			names[j] = o.String()
			if !seen[o] {
				seen[o] = true
				ownerEvents, ownerKinds, ownerIDs = append(ownerEvents, e.ID), append(ownerKinds, o.Kind), append(ownerIDs, o.ID)
			}
		}
		literal, err := pq.StringArray(names).Value()
		if err != nil {
			return Batch{}, fmt.Errorf("webhook event owners: %w", err)
		}
		owners[i] = literal.(string)
	}
	conversations := slices.Compact(slices.Sorted(slices.Values(orderingKeys)))
	return Batch{args: []any{pq.StringArray(conversations),
		pq.StringArray(eventIDs), pq.StringArray(types), pq.StringArray(orderingKeys), pq.ByteaArray(bodies),
		pq.StringArray(createdAt), pq.StringArray(owners),
		pq.StringArray(ownerEvents), pq.StringArray(ownerKinds), pq.StringArray(ownerIDs), targetEndpointID, NotifyChannel}}, nil
}

// deliveryRow is a delivery as listed, with its event's type.
type deliveryRow struct {
	ID             int64           `db:"id"`
	EventID        string          `db:"event_id"`
	EventType      string          `db:"event_type"`
	Status         string          `db:"status"`
	AttemptCount   int             `db:"attempt_count"`
	NextAttemptAt  time.Time       `db:"next_attempt_at"`
	LastStatusCode sql.NullInt32   `db:"last_status_code"`
	LastError      string          `db:"last_error"`
	CreatedAt      time.Time       `db:"created_at"`
	FinishedAt     sql.NullTime    `db:"finished_at"`
	Body           json.RawMessage `db:"body"`
}

const listDeliveriesSQL = `
SELECT d.id, d.event_id, ev.type AS event_type, d.status, d.attempt_count, d.next_attempt_at,
       d.last_status_code, d.last_error, d.created_at, d.finished_at, ev.body
FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
WHERE d.endpoint_id = $1 AND ($2 = 0 OR d.id < $2) AND ($3 = '' OR d.status = $3)
ORDER BY d.id DESC
LIMIT $4`

func listDeliveries(ctx context.Context, db sqlx.QueryerContext, endpointID string, before int64, status string, limit int) ([]deliveryRow, error) {
	var rows []deliveryRow
	if err := sqlx.SelectContext(ctx, db, &rows, listDeliveriesSQL, endpointID, before, status, limit); err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return rows, nil
}

type attemptRow struct {
	DeliveryID      int64         `db:"delivery_id"`
	AttemptedAt     time.Time     `db:"attempted_at"`
	Outcome         string        `db:"outcome"`
	StatusCode      sql.NullInt32 `db:"status_code"`
	LatencyMS       int           `db:"latency_ms"`
	Error           string        `db:"error"`
	ResponseExcerpt string        `db:"response_excerpt"`
}

const listAttemptsSQL = `
SELECT delivery_id, attempted_at, outcome, status_code, latency_ms, error, response_excerpt
FROM (
    SELECT a.*, row_number() OVER (PARTITION BY delivery_id ORDER BY id DESC) AS newest
    FROM webhook_attempts a WHERE delivery_id = ANY ($1)
) a
WHERE newest <= $2
ORDER BY delivery_id, attempted_at DESC`

func listAttempts(ctx context.Context, db sqlx.QueryerContext, deliveryIDs []int64) ([]attemptRow, error) {
	var rows []attemptRow
	if err := sqlx.SelectContext(ctx, db, &rows, listAttemptsSQL, pq.Int64Array(deliveryIDs), attemptsShownMax); err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", err)
	}
	return rows, nil
}

// resetDeliveryColumns starts a new delivery cycle. A fresh seq puts the
// replay at the back of its conversation instead of blocking newer events.
const resetDeliveryColumns = `status = 'pending', attempt_count = 0, next_attempt_at = $1,
    claimed_until = NULL, claim_token = NULL, finished_at = NULL, last_error = ''`

const replayEventSQL = `
UPDATE webhook_deliveries d SET ` + resetDeliveryColumns + `, seq = nextval('webhook_event_seq')
FROM webhook_endpoints e
WHERE d.endpoint_id = e.id AND d.event_id = $2 AND e.owner_kind = $3 AND e.owner_id = $4
  AND e.enabled AND d.status <> 'pending' AND ($5 = '' OR e.id = $5)`

const eventVisibleSQL = `
SELECT ev.ordering_key FROM webhook_events ev
WHERE ev.id = $1 AND EXISTS (
    SELECT 1 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
    WHERE d.event_id = ev.id AND e.owner_kind = $2 AND e.owner_id = $3 AND ($4 = '' OR e.id = $4))`

func replayEvent(ctx context.Context, tx *sqlx.Tx, owner Owner, eventID, endpointID string, now time.Time) (int, error) {
	var orderingKey string
	err := sqlx.GetContext(ctx, tx, &orderingKey, eventVisibleSQL, eventID, owner.Kind, owner.ID, endpointID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, problem.NotFound("webhook event")
	}
	if err != nil {
		return 0, fmt.Errorf("find webhook event: %w", err)
	}
	// The same lock Enqueue takes keeps the replay's new seq in commit order.
	if _, err := tx.ExecContext(ctx, lockConversationSQL, orderingKey); err != nil {
		return 0, fmt.Errorf("lock conversation: %w", err)
	}
	res, err := tx.ExecContext(ctx, replayEventSQL, now, eventID, owner.Kind, owner.ID, endpointID)
	if err != nil {
		return 0, fmt.Errorf("replay webhook event: %w", err)
	}
	return rowsAffected(res)
}

// The new seqs are drawn in the old seq order, so replayed events of one
// conversation keep their relative order.
const replayFailedSQL = `
UPDATE webhook_deliveries d SET ` + resetDeliveryColumns + `, seq = picked.new_seq
FROM (
    SELECT id, nextval('webhook_event_seq') AS new_seq
    FROM (SELECT id FROM webhook_deliveries
          WHERE endpoint_id = $2 AND status = 'failed' AND created_at >= $3
          ORDER BY seq
          LIMIT $4) oldest
) picked
WHERE d.id = picked.id`

func replayFailed(ctx context.Context, tx *sqlx.Tx, endpointID string, since, now time.Time) (int, error) {
	res, err := tx.ExecContext(ctx, replayFailedSQL, now, endpointID, since, replayBatchMax)
	if err != nil {
		return 0, fmt.Errorf("replay failed webhook deliveries: %w", err)
	}
	return rowsAffected(res)
}

func rowsAffected(res sql.Result) (int, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rows affected: %w", err)
	}
	return int(n), nil
}

func notify(ctx context.Context, tx sqlx.ExecerContext) error {
	if _, err := tx.ExecContext(ctx, notifySQL, NotifyChannel); err != nil {
		return fmt.Errorf("notify dispatchers: %w", err)
	}
	return nil
}

// The dispatcher's SQL: claiming deliveries, recording attempts, endpoint
// health, draining a recovered endpoint's backlog.

// claimed is a delivery this dispatcher holds, with what it needs to send it.
type claimed struct {
	ID           int64  `db:"id"`
	EventID      string `db:"event_id"`
	EndpointID   string `db:"endpoint_id"`
	AttemptCount int    `db:"attempt_count"`
	ClaimToken   string `db:"claim_token"`
	Body         []byte `db:"body"`
	URL          string `db:"url"`
	Secret       string `db:"secret"`
	// PreviousSecrets are the old secrets still signing, latest expiry first.
	PreviousSecrets pq.StringArray `db:"previous_secrets"`
}

// claimSQL takes due deliveries that head their conversation's queue at their
// endpoint: no earlier delivery of the same endpoint and ordering key is
// still pending (claimed or waiting for a retry), so one conversation has at
// most one delivery in flight and arrives in seq order. Rows another
// dispatcher is claiming are skipped, not waited for.
const claimSQL = `
UPDATE webhook_deliveries d
SET claimed_until = $2, claim_token = $3
FROM (
    SELECT d.id, ev.body, e.url, e.secret,
           ARRAY(SELECT s.secret FROM webhook_endpoint_secrets s
                 WHERE s.endpoint_id = e.id AND s.expires_at > $1 ORDER BY s.expires_at DESC) AS previous_secrets
    FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.id = d.endpoint_id
    JOIN webhook_events ev ON ev.id = d.event_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= $1
      AND (d.claimed_until IS NULL OR d.claimed_until < $1)
      AND e.enabled
      AND d.endpoint_id <> ALL (COALESCE($4::text[], ARRAY[]::text[]))
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries p
          WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key
            AND p.status = 'pending' AND p.seq < d.seq)
    ORDER BY d.next_attempt_at, d.seq
    LIMIT $5
    FOR UPDATE OF d SKIP LOCKED
) c
WHERE d.id = c.id
RETURNING d.id, d.event_id, d.endpoint_id, d.attempt_count, d.claim_token,
          c.body, c.url, c.secret, c.previous_secrets`

func claimDeliveries(ctx context.Context, db sqlx.QueryerContext, now, until time.Time, token string, busy []string, limit int) ([]claimed, error) {
	var out []claimed
	if err := sqlx.SelectContext(ctx, db, &out, claimSQL, now, until, token, pq.StringArray(busy), limit); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return out, nil
}

const releaseSQL = `UPDATE webhook_deliveries SET claimed_until = NULL, claim_token = NULL WHERE id = ANY ($1) AND status = 'pending'`

// releaseClaims hands claimed deliveries back without an attempt.
func releaseClaims(ctx context.Context, db sqlx.ExecerContext, deliveryIDs []int64) error {
	if _, err := db.ExecContext(ctx, releaseSQL, pq.Int64Array(deliveryIDs)); err != nil {
		return fmt.Errorf("release webhook claims: %w", err)
	}
	return nil
}

// attemptRecord is one attempt's result and the delivery's next state.
type attemptRecord struct {
	AttemptedAt   time.Time
	Outcome       string
	StatusCode    *int
	Latency       time.Duration
	ErrText       string
	Excerpt       string
	Status        string // the delivery's new status
	AttemptCount  int
	NextAttemptAt time.Time
	LastError     string
	FinishedAt    *time.Time
}

const insertAttemptSQL = `
INSERT INTO webhook_attempts (delivery_id, attempted_at, outcome, status_code, latency_ms, error, response_excerpt)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

// Only the claim holder writes the result; a stale holder whose lease was
// taken over records its attempt but leaves the delivery to the new holder.
const finishDeliverySQL = `
UPDATE webhook_deliveries
SET status = $3, attempt_count = $4, next_attempt_at = $5, claimed_until = NULL, claim_token = NULL,
    last_attempt_at = $6, last_status_code = $7, last_error = $8, finished_at = $9
WHERE id = $1 AND claim_token = $2`

// recordAttempt writes the attempt and, if the claim still holds, the
// delivery's next state; it reports whether the claim had been lost.
func recordAttempt(ctx context.Context, tx *sqlx.Tx, c claimed, a attemptRecord) (leaseLost bool, err error) {
	if _, err := tx.ExecContext(ctx, insertAttemptSQL, c.ID, a.AttemptedAt, a.Outcome, a.StatusCode,
		a.Latency.Milliseconds(), a.ErrText, a.Excerpt); err != nil {
		return false, fmt.Errorf("insert attempt: %w", err)
	}
	r, err := tx.ExecContext(ctx, finishDeliverySQL, c.ID, c.ClaimToken, a.Status, a.AttemptCount, a.NextAttemptAt,
		a.AttemptedAt, a.StatusCode, a.LastError, a.FinishedAt)
	if err != nil {
		return false, fmt.Errorf("update delivery: %w", err)
	}
	n, err := rowsAffected(r)
	return n == 0, err
}

const endpointSucceededSQL = `
UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL
RETURNING id`

// markEndpointSucceeded ends the endpoint's failure streak and reports
// whether there was one.
func markEndpointSucceeded(ctx context.Context, tx *sqlx.Tx, endpointID string) (recovered bool, err error) {
	r, err := tx.ExecContext(ctx, endpointSucceededSQL, endpointID)
	if err != nil {
		return false, fmt.Errorf("mark endpoint healthy: %w", err)
	}
	n, err := rowsAffected(r)
	return n > 0, err
}

const endpointFailedSQL = `
UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2)
WHERE id = $1
RETURNING owner_kind, owner_id, url, enabled, failing_since`

// markEndpointFailed starts or extends the failure streak; ok is false when
// the endpoint was deleted meanwhile.
func markEndpointFailed(ctx context.Context, tx *sqlx.Tx, endpointID string, now time.Time) (ep failingEndpoint, ok bool, err error) {
	err = sqlx.GetContext(ctx, tx, &ep, endpointFailedSQL, endpointID, now)
	if errors.Is(err, sql.ErrNoRows) {
		return ep, false, nil
	}
	if err != nil {
		return ep, false, fmt.Errorf("mark endpoint failing: %w", err)
	}
	return ep, true, nil
}

// bringForwardSQL makes every delivery of the endpoint that waits for a
// retry due now. Claims are left alone, and the claim's head-of-queue rule
// still sends each conversation in seq order: only the waiting is cut short.
const bringForwardSQL = `
UPDATE webhook_deliveries
SET next_attempt_at = $2
WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at > $2
  AND (claimed_until IS NULL OR claimed_until < $2)`

// bringForward makes the endpoint's waiting deliveries due at now and wakes
// the dispatchers at commit; it returns how many it moved.
func bringForward(ctx context.Context, tx *sqlx.Tx, endpointID string, now time.Time) (int, error) {
	r, err := tx.ExecContext(ctx, bringForwardSQL, endpointID, now)
	if err != nil {
		return 0, fmt.Errorf("bring waiting deliveries forward: %w", err)
	}
	n, err := rowsAffected(r)
	if err != nil || n == 0 {
		return n, err
	}
	return n, notify(ctx, tx)
}

const disableEndpointSQL = `UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = $3 WHERE id = $1`

// Deliveries still pending for a disabled endpoint end as failed, so that
// "replay failed since" brings them back once the owner re-enables it.
const failPendingSQL = `
UPDATE webhook_deliveries
SET status = 'failed', finished_at = $2, last_error = 'endpoint disabled', claimed_until = NULL, claim_token = NULL
WHERE endpoint_id = $1 AND status = 'pending'`

func disableEndpoint(ctx context.Context, tx *sqlx.Tx, endpointID, reason string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, disableEndpointSQL, endpointID, reason, now); err != nil {
		return fmt.Errorf("disable endpoint: %w", err)
	}
	if _, err := tx.ExecContext(ctx, failPendingSQL, endpointID, now); err != nil {
		return fmt.Errorf("fail pending deliveries: %w", err)
	}
	return nil
}

// backlogSQL measures what waits to be delivered: deliveries still pending
// and how long the oldest of them has existed. The partial index on pending
// deliveries keeps it cheap however many were delivered.
const backlogSQL = `SELECT count(*), min(created_at) FROM webhook_deliveries WHERE status = 'pending'`

func backlog(ctx context.Context, db sqlx.QueryerContext) (pending int, oldest sql.NullTime, err error) {
	if err := db.QueryRowxContext(ctx, backlogSQL).Scan(&pending, &oldest); err != nil {
		return 0, oldest, fmt.Errorf("webhook backlog: %w", err)
	}
	return pending, oldest, nil
}
