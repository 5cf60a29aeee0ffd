-- +goose Up
-- Webhooks: endpoints of channels and merchants, the transactional outbox
-- (events written in the caller's transaction), one delivery per event and
-- endpoint (fanned out at enqueue time), and every attempt of a delivery.
-- Owners are not foreign keys: the webhooks package knows no domain table.
CREATE TABLE webhook_endpoints (
    id                          text        PRIMARY KEY,
    owner_kind                  text        NOT NULL CHECK (owner_kind IN ('channel', 'merchant')),
    owner_id                    text        NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 64),
    url                         text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                 text        NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- NULL means every event type.
    event_types                 text[]      NULL CHECK (cardinality(event_types) BETWEEN 1 AND 32),
    secret                      text        NOT NULL CHECK (secret LIKE 'whsec_%'),
    -- During a rotation the old secret still signs until it expires.
    previous_secret             text        NULL CHECK (previous_secret LIKE 'whsec_%'),
    previous_secret_expires_at  timestamptz NULL,
    enabled                     boolean     NOT NULL DEFAULT true,
    disabled_reason             text        NOT NULL DEFAULT '',
    -- Set at the first failed attempt after a success; the endpoint is
    -- disabled when it stays set for longer than the configured period.
    failing_since               timestamptz NULL,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL,
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner_kind, owner_id, created_at DESC, id DESC);

-- seq is taken while the enqueuing transaction holds a per-conversation
-- advisory lock that it keeps until commit, so within one ordering key a
-- larger seq always means a later commit.
CREATE SEQUENCE webhook_event_seq;

CREATE TABLE webhook_events (
    id            text        PRIMARY KEY,
    type          text        NOT NULL CHECK (length(type) BETWEEN 1 AND 64),
    owners        text[]      NOT NULL CHECK (cardinality(owners) BETWEEN 1 AND 4),
    ordering_key  text        NOT NULL CHECK (length(ordering_key) BETWEEN 1 AND 300),
    seq           bigint      NOT NULL,
    body          bytea       NOT NULL CHECK (length(body) <= 65536),
    created_at    timestamptz NOT NULL
);
CREATE INDEX webhook_events_created_at ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id               bigserial   PRIMARY KEY,
    event_id         text        NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id      text        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    ordering_key     text        NOT NULL,
    -- The event's seq, or a fresh one when the delivery is replayed, so that a
    -- replay goes to the back of its conversation instead of blocking it.
    seq              bigint      NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Attempts in the current cycle (a replay starts a new cycle).
    attempt_count    integer     NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    next_attempt_at  timestamptz NOT NULL,
    claimed_until    timestamptz NULL,
    claim_token      text        NULL,
    last_attempt_at  timestamptz NULL,
    last_status_code integer     NULL,
    last_error       text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    finished_at      timestamptz NULL,
    UNIQUE (endpoint_id, event_id)
);
-- The dispatcher's claim: due pending deliveries, oldest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq) WHERE status = 'pending';
-- "Is an earlier delivery of this conversation still pending?"
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, ordering_key, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);

CREATE TABLE webhook_attempts (
    id                bigserial   PRIMARY KEY,
    delivery_id       bigint      NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at      timestamptz NOT NULL,
    outcome           text        NOT NULL CHECK (outcome IN ('delivered', 'http_error', 'network_error', 'refused')),
    status_code       integer     NULL,
    latency_ms        integer     NOT NULL CHECK (latency_ms >= 0),
    error             text        NOT NULL DEFAULT '' CHECK (length(error) <= 1024),
    response_excerpt  text        NOT NULL DEFAULT '' CHECK (octet_length(response_excerpt) <= 1024)
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP SEQUENCE webhook_event_seq;
DROP TABLE webhook_endpoints;
