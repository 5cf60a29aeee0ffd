-- +goose Up
-- Dashboard sign-in: staff sessions and the failed-login counters that rate
-- limit password guessing. The web package alone writes these tables.

-- A session is found by the SHA-256 of its cookie value, so a copy of this
-- table (a backup, a replica) holds nothing a browser could present.
CREATE TABLE dashboard_sessions (
    token_hash   bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    staff_id     text        NOT NULL REFERENCES staff_users (id) ON DELETE CASCADE,
    merchant_id  text        NOT NULL REFERENCES merchants (id),
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL CHECK (expires_at > created_at)
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);

-- One row per (e-mail, client address) pair, keyed by a hash so that the
-- table does not become a list of who tried to sign in from where. Rows of
-- windows that ended are deleted as new failures arrive, which keeps the
-- table bounded by the failures of one window.
CREATE TABLE dashboard_login_failures (
    key_hash     bytea       PRIMARY KEY CHECK (length(key_hash) = 32),
    failures     integer     NOT NULL CHECK (failures >= 1),
    window_start timestamptz NOT NULL
);
CREATE INDEX dashboard_login_failures_window ON dashboard_login_failures (window_start);

-- +goose Down
DROP TABLE dashboard_login_failures;
DROP TABLE dashboard_sessions;
