-- +goose Up
-- Test clocks of a sandbox instance (payments/testclock.go): a merchant's
-- objects read the clock's frozen time instead of the real one, and an
-- advance runs what would have happened meanwhile. One clock per merchant.
CREATE TABLE test_clocks (
    id          text        PRIMARY KEY,
    merchant_id text        NOT NULL UNIQUE REFERENCES merchants (id),
    frozen_time timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- One row per advance: asking for the same target again answers the stored
-- report instead of running anything twice.
CREATE TABLE test_clock_advances (
    clock_id   text        NOT NULL REFERENCES test_clocks (id),
    to_time    timestamptz NOT NULL,
    report     jsonb       NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (clock_id, to_time)
);

-- +goose Down
DROP TABLE test_clock_advances;
DROP TABLE test_clocks;
