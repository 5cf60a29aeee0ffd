package webhooks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/problem"
)

// Enqueue writes e to the outbox in the caller's transaction tx and fans it
// out to the matching enabled endpoints of its owners, so the event commits
// or rolls back with the business change. Dispatchers are woken at commit.
// A zero e.CreatedAt means time.Now(); an empty e.ID gets a new "evt_" id.
// It returns an error (not a *problem.Error: a bad event is a programming
// error of the caller) when the event is malformed, and database errors.
func Enqueue(ctx context.Context, tx sqlx.ExtContext, e Event) error {
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	_, err := enqueue(ctx, tx, nil, e, "")
	return err
}

// enqueue validates and writes e, with its statements prepared when stmts
// is not nil; targetEndpointID, when set, delivers to that one endpoint
// whatever its filter (test pings).
func enqueue(ctx context.Context, tx sqlx.ExtContext, stmts *database.Stmts, e Event, targetEndpointID string) (string, error) {
	events := []Event{e}
	if err := enqueueAll(ctx, tx, stmts, events, targetEndpointID); err != nil {
		return "", err
	}
	return events[0].ID, nil
}

// enqueueAll validates events and writes them in one statement, in order;
// it assigns the ids of events that have none (in events itself).
func enqueueAll(ctx context.Context, tx sqlx.ExtContext, stmts *database.Stmts, events []Event, targetEndpointID string) error {
	b, err := prepareBatch(events, targetEndpointID)
	if err != nil {
		return err
	}
	_, err = insertEvents(ctx, tx, stmts, b)
	return err
}

func (e Event) validate() error {
	switch {
	case !ids.HasPrefix(e.ID, "evt"):
		return fmt.Errorf("webhooks: event id %q must start with evt_", e.ID)
	case !knownType(e.Type):
		return fmt.Errorf("webhooks: unknown event type %q", e.Type)
	case len(e.Owners) == 0 || len(e.Owners) > ownersPerEventMax:
		return fmt.Errorf("webhooks: an event needs 1 to %d owners, got %d", ownersPerEventMax, len(e.Owners))
	case e.OrderingKey == "" || len(e.OrderingKey) > orderingKeyLengthMax:
		return fmt.Errorf("webhooks: ordering key must have 1 to %d bytes", orderingKeyLengthMax)
	}
	for _, o := range e.Owners {
		if !o.valid() {
			return fmt.Errorf("webhooks: invalid owner %q", o.String())
		}
	}
	return nil
}

// body encodes the envelope that is sent (and signed) byte for byte.
func (e Event) body() ([]byte, error) {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return nil, fmt.Errorf("webhooks: encode %s data: %w", e.Type, err)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return nil, fmt.Errorf("webhooks: %s data must encode to a JSON object", e.Type)
	}
	body, err := json.Marshal(Envelope{ID: e.ID, Type: e.Type, APIVersion: APIVersion, Livemode: !e.Test,
		Timestamp: e.CreatedAt.UTC(), Data: data})
	if err != nil {
		return nil, fmt.Errorf("webhooks: encode %s: %w", e.Type, err)
	}
	if len(body) > eventBodyBytesMax {
		return nil, fmt.Errorf("webhooks: %s body has %d bytes, more than %d", e.Type, len(body), eventBodyBytesMax)
	}
	return body, nil
}

// Service manages endpoints, deliveries and replays for their owners.
type Service struct {
	db     *sqlx.DB
	policy URLPolicy
	now    func() time.Time
	// stmts runs the outbox inserts prepared: every purchase writes two events.
	stmts *database.Stmts
	// test marks every event livemode=false (NewSandboxService).
	test bool
}

// NewService returns a Service on db that checks endpoint URLs with policy.
func NewService(db *sqlx.DB, policy URLPolicy, now func() time.Time) *Service {
	return &Service{db: db, policy: policy, now: now, stmts: database.NewStmts(db)}
}

// Enqueue is the package Enqueue with the service's clock and prepared
// statements, for one event or several: several (a purchase's order.paid
// and coupon.issued) are written in one statement, in the order given. A
// nil Service writes as the package Enqueue does, so a collaborator built
// without webhooks (a test, a one-off command) still writes its events.
func (s *Service) Enqueue(ctx context.Context, tx sqlx.ExtContext, events ...Event) error {
	b, err := s.Batch(events...)
	if err != nil {
		return err
	}
	var stmts *database.Stmts
	if s != nil {
		stmts = s.stmts
	}
	_, err = insertEvents(ctx, tx, stmts, b)
	return err
}

// Batch prepares events as Enqueue would write them (the service's clock
// for a zero CreatedAt, its test mode), for a caller whose own database
// function writes them with webhook_enqueue. A nil Service uses time.Now, as
// the package Enqueue does.
func (s *Service) Batch(events ...Event) (Batch, error) {
	events = slices.Clone(events)
	now, test := time.Now, false
	if s != nil {
		now, test = s.now, s.test
	}
	for i := range events {
		if events[i].CreatedAt.IsZero() {
			events[i].CreatedAt = now()
		}
		events[i].Test = events[i].Test || test
	}
	return prepareBatch(events, "")
}

// Endpoint is a webhook endpoint as its owner sees it (secrets apart).
type Endpoint struct {
	ID                  string     `json:"id"`
	Owner               Owner      `json:"owner"`
	URL                 string     `json:"url"`
	Description         string     `json:"description"`
	EventTypes          []string   `json:"event_types"` // null: every type
	Enabled             bool       `json:"enabled"`
	DisabledReason      string     `json:"disabled_reason,omitempty"`
	FailingSince        *time.Time `json:"failing_since,omitempty"`
	SecretRotatingUntil *time.Time `json:"previous_secret_expires_at,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

func (r endpointRow) public() Endpoint {
	ep := Endpoint{
		ID: r.ID, Owner: Owner{Kind: r.OwnerKind, ID: r.OwnerID}, URL: r.URL, Description: r.Description,
		EventTypes: []string(r.EventTypes), Enabled: r.Enabled, DisabledReason: r.DisabledReason,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.FailingSince.Valid {
		t := r.FailingSince.Time.UTC()
		ep.FailingSince = &t
	}
	if r.PreviousSecretExpiresAt.Valid {
		t := r.PreviousSecretExpiresAt.Time.UTC()
		ep.SecretRotatingUntil = &t
	}
	return ep
}

// EndpointInput is what an owner sets on an endpoint.
type EndpointInput struct {
	URL         string
	Description string
	EventTypes  []string // empty: every type
}

func (s *Service) validate(ctx context.Context, in *EndpointInput) error {
	in.URL = strings.TrimSpace(in.URL)
	if err := s.policy.CheckURL(ctx, in.URL); err != nil {
		return err
	}
	if len(in.Description) > descriptionLengthMax {
		return problem.Field("description", "too_long", "at most %d characters", descriptionLengthMax)
	}
	if len(in.EventTypes) > eventTypesPerFilterMax {
		return problem.Field("event_types", "too_many", "at most %d types", eventTypesPerFilterMax)
	}
	seen := map[string]bool{}
	unique := in.EventTypes[:0:0]
	for i, t := range in.EventTypes {
		if !knownType(t) {
			return problem.Field("event_types."+strconv.Itoa(i), "unknown_event_type", "%q is not an event type (%s)", t, strings.Join(EventTypes, ", "))
		}
		if !seen[t] {
			seen[t] = true
			unique = append(unique, t)
		}
	}
	in.EventTypes = unique
	return nil
}

// Secret is an endpoint's signing secret, shown to its owner, with when the
// old secrets that still sign expire (the latest, and each).
type Secret struct {
	Secret                  string      `json:"secret"`
	PreviousSecretExpiresAt *time.Time  `json:"previous_secret_expires_at,omitempty"`
	PreviousSecretsExpireAt []time.Time `json:"previous_secrets_expire_at,omitempty"`
}

// CreateEndpoint creates an enabled endpoint with a new secret. It returns a
// validation problem (422) for a bad URL, description or filter.
func (s *Service) CreateEndpoint(ctx context.Context, owner Owner, in EndpointInput) (Endpoint, Secret, error) {
	if err := s.validate(ctx, &in); err != nil {
		return Endpoint{}, Secret{}, err
	}
	row, err := insertEndpoint(ctx, s.db, owner, in, NewSecret(), s.now())
	if err != nil {
		return Endpoint{}, Secret{}, err
	}
	return row.public(), Secret{Secret: row.Secret}, nil
}

// GetEndpoint returns the owner's endpoint or not_found.
func (s *Service) GetEndpoint(ctx context.Context, owner Owner, id string) (Endpoint, error) {
	row, err := getEndpoint(ctx, s.db, owner, id)
	return row.public(), err
}

// EndpointSecret returns the owner's endpoint's current secret or not_found.
func (s *Service) EndpointSecret(ctx context.Context, owner Owner, id string) (Secret, error) {
	row, err := getEndpoint(ctx, s.db, owner, id)
	if err != nil {
		return Secret{}, err
	}
	return secretOf(row, s.now()), nil
}

func secretOf(row endpointRow, now time.Time) Secret {
	out := Secret{Secret: row.Secret}
	if row.PreviousSecretExpiresAt.Valid && now.Before(row.PreviousSecretExpiresAt.Time) {
		t := row.PreviousSecretExpiresAt.Time.UTC()
		out.PreviousSecretExpiresAt = &t
	}
	return out
}

// previousSecretsMax bounds the old secrets that keep signing after
// rotations: each adds a signature to every request.
const previousSecretsMax = 4

type endpointCursor struct {
	CreatedAt time.Time
	ID        string
}

func encodeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "|")))
}

func decodeCursor(cursor string, parts int) ([]string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	fields := strings.Split(string(raw), "|")
	if err != nil || len(fields) != parts {
		return nil, problem.New(problem.KindBadRequest, "invalid_cursor", "the cursor is not one this API returned")
	}
	return fields, nil
}

func pageSize(limit int) int {
	if limit <= 0 {
		return pageSizeDefault
	}
	return min(limit, pageSizeMax)
}

// ListEndpoints returns a page of the owner's endpoints, newest first, and the
// cursor of the next page ("" at the end). A bad cursor is invalid_cursor (400).
func (s *Service) ListEndpoints(ctx context.Context, owner Owner, cursor string, limit int) ([]Endpoint, string, error) {
	var after *endpointCursor
	if cursor != "" {
		fields, err := decodeCursor(cursor, 2)
		if err != nil {
			return nil, "", err
		}
		nanos, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return nil, "", problem.New(problem.KindBadRequest, "invalid_cursor", "the cursor is not one this API returned")
		}
		after = &endpointCursor{CreatedAt: time.Unix(0, nanos), ID: fields[1]}
	}
	limit = pageSize(limit)
	rows, err := listEndpoints(ctx, s.db, owner, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		next = encodeCursor(strconv.FormatInt(last.CreatedAt.UnixNano(), 10), last.ID)
	}
	out := make([]Endpoint, len(rows))
	for i, r := range rows {
		out[i] = r.public()
	}
	return out, next, nil
}

// EndpointUpdate changes the fields that are set.
type EndpointUpdate struct {
	URL         *string
	Description *string
	EventTypes  *[]string // empty slice: every type
	Enabled     *bool
}

// UpdateEndpoint changes the owner's endpoint. Re-enabling clears the disabled
// reason and the failure streak. Returns not_found or a validation problem.
func (s *Service) UpdateEndpoint(ctx context.Context, owner Owner, id string, u EndpointUpdate) (Endpoint, error) {
	var out endpointRow
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		row, err := getEndpointForUpdate(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		in := EndpointInput{URL: row.URL, Description: row.Description, EventTypes: row.EventTypes}
		if u.URL != nil {
			in.URL = *u.URL
		}
		if u.Description != nil {
			in.Description = *u.Description
		}
		if u.EventTypes != nil {
			in.EventTypes = *u.EventTypes
		}
		if err := s.validate(ctx, &in); err != nil {
			return err
		}
		row.URL, row.Description, row.EventTypes = in.URL, in.Description, in.EventTypes
		if u.Enabled != nil && *u.Enabled != row.Enabled {
			row.Enabled = *u.Enabled
			row.FailingSince.Valid = false
			row.DisabledReason = ""
			if !row.Enabled {
				row.DisabledReason = "disabled by owner"
			}
		}
		out, err = updateEndpoint(ctx, tx, row, s.now())
		return err
	})
	return out.public(), err
}

// DeleteEndpoint deletes the owner's endpoint with its deliveries, or returns not_found.
func (s *Service) DeleteEndpoint(ctx context.Context, owner Owner, id string) error {
	return deleteEndpoint(ctx, s.db, owner, id)
}

// RotateSecret gives the endpoint a new secret; the old one keeps signing for
// grace (SecretGraceDefault when zero), so receivers can switch without
// losing a webhook. Secrets from earlier rotations keep signing until their
// own expiry, at most previousSecretsMax of them. Returns not_found, a
// validation problem, or too_many_secrets (409) when that many old secrets
// still sign.
func (s *Service) RotateSecret(ctx context.Context, owner Owner, id string, grace time.Duration) (Secret, error) {
	if grace == 0 {
		grace = SecretGraceDefault
	}
	if grace < 0 || grace > secretGraceMax {
		return Secret{}, problem.Field("grace_period_seconds", "out_of_range", "must be between 0 and %d", int(secretGraceMax.Seconds()))
	}
	now := s.now()
	secret := NewSecret()
	expiresAt := now.Add(grace)
	var out Secret
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		row, err := getEndpointForUpdate(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		kept, err := keptSecretExpiries(ctx, tx, row.ID, now)
		if err != nil {
			return err
		}
		if len(kept) >= previousSecretsMax {
			return problem.New(problem.KindConflict, "too_many_secrets",
				"%d old secrets still sign; the first expires at %s — rotate after that, or with grace_period_seconds 0 to end the current one at once",
				len(kept), kept[0].UTC().Format(time.RFC3339))
		}
		if err := rotateSecret(ctx, tx, row.ID, secret, row.Secret, expiresAt, now); err != nil {
			return err
		}
		out = Secret{Secret: secret}
		for _, at := range append(kept, expiresAt) {
			if at.After(now) {
				out.PreviousSecretsExpireAt = append(out.PreviousSecretsExpireAt, at.UTC())
			}
		}
		if n := len(out.PreviousSecretsExpireAt); n > 0 {
			latest := slices.MaxFunc(out.PreviousSecretsExpireAt, time.Time.Compare)
			out.PreviousSecretExpiresAt = &latest
		}
		return nil
	})
	return out, err
}

// Backlog is what waits to be delivered, for monitoring: the pending
// deliveries of every endpoint and the age of the oldest (zero when none).
type Backlog struct {
	Pending   int
	OldestAge time.Duration
}

// Backlog measures the delivery backlog now.
func (s *Service) Backlog(ctx context.Context) (Backlog, error) {
	pending, oldest, err := backlog(ctx, s.db)
	if err != nil {
		return Backlog{}, err
	}
	b := Backlog{Pending: pending}
	if oldest.Valid {
		b.OldestAge = max(s.now().Sub(oldest.Time), 0)
	}
	return b, nil
}

// SendWaitingByID is SendWaiting for the operator, who may act on any
// owner's endpoint. Returns not_found or endpoint_disabled.
func (s *Service) SendWaitingByID(ctx context.Context, endpointID string) (int, error) {
	row, err := getEndpointByID(ctx, s.db, endpointID)
	if err != nil {
		return 0, err
	}
	return s.SendWaiting(ctx, Owner{Kind: row.OwnerKind, ID: row.OwnerID}, endpointID)
}

// SendWaiting makes every delivery of the owner's endpoint that waits for a
// retry due now (the operator's or owner's "send waiting now" after fixing a
// receiver), keeping each conversation's order. Returns how many were
// brought forward, not_found, or endpoint_disabled.
func (s *Service) SendWaiting(ctx context.Context, owner Owner, endpointID string) (int, error) {
	var n int
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		row, err := getEndpointForUpdate(ctx, tx, owner, endpointID)
		if err != nil {
			return err
		}
		if !row.Enabled {
			return ErrEndpointDisabled
		}
		n, err = bringForward(ctx, tx, row.ID, s.now())
		return err
	})
	return n, err
}

// ErrEndpointDisabled is the problem for sending to a disabled endpoint.
var ErrEndpointDisabled = problem.New(problem.KindConflict, "endpoint_disabled", "the endpoint is disabled; enable it first")

// SendTest enqueues a test.ping to the owner's endpoint, whatever its filter,
// and returns the event id. Returns not_found or endpoint_disabled (409).
func (s *Service) SendTest(ctx context.Context, owner Owner, id string) (string, error) {
	var eventID string
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		row, err := getEndpoint(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		if !row.Enabled {
			return ErrEndpointDisabled
		}
		e := Event{
			Type: TypeTestPing, CreatedAt: s.now(), Owners: []Owner{owner}, OrderingKey: "test:" + row.ID,
			Data: TestPingData{Message: "Test event from chatpay: this endpoint is reachable.", EndpointID: row.ID},
			Test: s.test,
		}
		eventID, err = enqueue(ctx, tx, s.stmts, e, row.ID)
		return err
	})
	return eventID, err
}

// Attempt is one try at a delivery.
type Attempt struct {
	AttemptedAt     time.Time `json:"attempted_at"`
	Outcome         string    `json:"outcome"` // delivered, http_error, network_error, refused
	StatusCode      *int      `json:"status_code,omitempty"`
	LatencyMS       int       `json:"latency_ms"`
	Error           string    `json:"error,omitempty"`
	ResponseExcerpt string    `json:"response_excerpt,omitempty"`
}

// Delivery is one event on its way to one endpoint.
type Delivery struct {
	ID             int64           `json:"id"`
	EventID        string          `json:"event_id"`
	EventType      string          `json:"event_type"`
	Status         string          `json:"status"` // pending, delivered, failed
	AttemptCount   int             `json:"attempt_count"`
	NextAttemptAt  *time.Time      `json:"next_attempt_at,omitempty"`
	LastStatusCode *int            `json:"last_status_code,omitempty"`
	LastError      string          `json:"last_error,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	FinishedAt     *time.Time      `json:"finished_at,omitempty"`
	Payload        json.RawMessage `json:"payload"`
	Attempts       []Attempt       `json:"attempts"`
}

// ListDeliveries returns a page of an endpoint's deliveries, newest first,
// each with its latest attempts; status filters when not empty. Returns
// not_found, invalid_cursor, or a validation problem for status.
func (s *Service) ListDeliveries(ctx context.Context, owner Owner, endpointID, status, cursor string, limit int) ([]Delivery, string, error) {
	if status != "" && status != "pending" && status != "delivered" && status != "failed" {
		return nil, "", problem.Field("status", "invalid_status", "must be pending, delivered or failed")
	}
	var before int64
	if cursor != "" {
		fields, err := decodeCursor(cursor, 1)
		if err != nil {
			return nil, "", err
		}
		if before, err = strconv.ParseInt(fields[0], 10, 64); err != nil || before <= 0 {
			return nil, "", problem.New(problem.KindBadRequest, "invalid_cursor", "the cursor is not one this API returned")
		}
	}
	if _, err := getEndpoint(ctx, s.db, owner, endpointID); err != nil {
		return nil, "", err
	}
	limit = pageSize(limit)
	rows, err := listDeliveries(ctx, s.db, endpointID, before, status, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(strconv.FormatInt(rows[limit-1].ID, 10))
	}
	deliveryIDs := make([]int64, len(rows))
	for i, r := range rows {
		deliveryIDs[i] = r.ID
	}
	attempts, err := listAttempts(ctx, s.db, deliveryIDs)
	if err != nil {
		return nil, "", err
	}
	byDelivery := map[int64][]Attempt{}
	for _, a := range attempts {
		out := Attempt{AttemptedAt: a.AttemptedAt.UTC(), Outcome: a.Outcome, LatencyMS: a.LatencyMS, Error: a.Error, ResponseExcerpt: a.ResponseExcerpt}
		if a.StatusCode.Valid {
			code := int(a.StatusCode.Int32)
			out.StatusCode = &code
		}
		byDelivery[a.DeliveryID] = append(byDelivery[a.DeliveryID], out)
	}
	out := make([]Delivery, len(rows))
	for i, r := range rows {
		d := Delivery{ID: r.ID, EventID: r.EventID, EventType: r.EventType, Status: r.Status, AttemptCount: r.AttemptCount,
			LastError: r.LastError, CreatedAt: r.CreatedAt.UTC(), Payload: r.Body, Attempts: byDelivery[r.ID]}
		if d.Attempts == nil {
			d.Attempts = []Attempt{}
		}
		if r.Status == "pending" {
			t := r.NextAttemptAt.UTC()
			d.NextAttemptAt = &t
		}
		if r.LastStatusCode.Valid {
			code := int(r.LastStatusCode.Int32)
			d.LastStatusCode = &code
		}
		if r.FinishedAt.Valid {
			t := r.FinishedAt.Time.UTC()
			d.FinishedAt = &t
		}
		out[i] = d
	}
	return out, next, nil
}

// ReplayEvent sends the owner's event again to its endpoints (or to
// endpointID only) as a new delivery cycle; deliveries still pending are left
// alone. Returns how many were replayed, or not_found.
func (s *Service) ReplayEvent(ctx context.Context, owner Owner, eventID, endpointID string) (int, error) {
	var n int
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		var err error
		if n, err = replayEvent(ctx, tx, owner, eventID, endpointID, s.now()); err != nil || n == 0 {
			return err
		}
		return notify(ctx, tx)
	})
	return n, err
}

// ReplayFailed sends again the endpoint's failed deliveries created since
// since, oldest first, at most replayBatchMax per call. Returns how many were
// replayed, not_found, or endpoint_disabled.
func (s *Service) ReplayFailed(ctx context.Context, owner Owner, endpointID string, since time.Time) (int, error) {
	var n int
	err := database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		row, err := getEndpointForUpdate(ctx, tx, owner, endpointID)
		if err != nil {
			return err
		}
		if !row.Enabled {
			return ErrEndpointDisabled
		}
		if n, err = replayFailed(ctx, tx, row.ID, since, s.now()); err != nil || n == 0 {
			return err
		}
		return notify(ctx, tx)
	})
	return n, err
}

// errLeaseLost is logged when a delivery's claim expired before its result was written.
var errLeaseLost = errors.New("webhooks: claim expired before the attempt was recorded")
