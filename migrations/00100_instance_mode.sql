-- +goose Up
-- Whether this database belongs to a live or a sandbox (test mode) instance,
-- recorded once by the first `chatpay serve` (internal/instancemode): a
-- sandbox refuses a live database and the reverse, so test keys, test clocks
-- and livemode=false events never mix with real money.
CREATE TABLE instance_mode (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    mode        text        NOT NULL CHECK (mode IN ('live', 'sandbox')),
    recorded_at timestamptz NOT NULL
);
-- A database that already has merchants predates sandbox mode, so a live
-- instance used it.
INSERT INTO instance_mode (mode, recorded_at) SELECT 'live', now() WHERE EXISTS (SELECT 1 FROM merchants);

-- +goose Down
DROP TABLE instance_mode;
