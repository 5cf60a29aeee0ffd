-- +goose Up
-- Idempotency keys (IETF draft "The Idempotency-Key HTTP Header Field").
-- A key is claimed in the same transaction as the change it guards, so a key
-- row exists exactly when the change committed (or a business refusal was
-- recorded). Keys are scoped to the caller so two merchants cannot collide.
CREATE TABLE idempotency_keys (
    scope         text        NOT NULL,
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea       NOT NULL,
    method        text        NOT NULL,
    path          text        NOT NULL,
    status        integer     NOT NULL CHECK (status BETWEEN 200 AND 499),
    content_type  text        NOT NULL,
    body          bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
