-- +goose Up
-- QR codes (package qr). A static code points at a catalog item and is
-- reusable until revoked; a dynamic code is bound to one checkout, an amount
-- and a currency, expires, and is consumed by the payment that uses it.
-- merchant_id and target_id carry no foreign keys on purpose: qr knows other
-- domains only by id, and the owning packages check their own objects.
-- The token is stored in plain text because it is printed on posters and
-- shown on screens anyway (it is a link, not a credential), and the merchant
-- must be able to download the same image again at any time.
CREATE TABLE qr_codes (
    id            text        PRIMARY KEY CHECK (id ~ '^qr_[a-z2-7]{24}$'),
    merchant_id   text        NOT NULL CHECK (char_length(merchant_id) BETWEEN 1 AND 64),
    kind          text        NOT NULL CHECK (kind IN ('static', 'dynamic')),
    target_type   text        NOT NULL CHECK (target_type IN ('item', 'checkout')),
    target_id     text        NOT NULL CHECK (char_length(target_id) BETWEEN 1 AND 64),
    placement     text        NOT NULL DEFAULT '' CHECK (char_length(placement) <= 64),
    token         text        NOT NULL CHECK (token ~ '^[a-z2-7]{26}$'),
    amount_minor  bigint,
    currency      text,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    consumed_at   timestamptz,
    CONSTRAINT qr_codes_token_key UNIQUE (token),
    -- Each kind has exactly one shape, so a row can never be half of each.
    CONSTRAINT qr_codes_kind_shape CHECK (
        (kind = 'static' AND target_type = 'item'
            AND amount_minor IS NULL AND currency IS NULL
            AND expires_at IS NULL AND consumed_at IS NULL)
        OR
        (kind = 'dynamic' AND target_type = 'checkout'
            AND amount_minor IS NOT NULL AND amount_minor BETWEEN 0 AND 1000000000000000
            AND currency ~ '^[A-Z]{3}$'
            AND expires_at IS NOT NULL AND expires_at > created_at)
    )
);
-- The merchant's list, newest first, with a stable tiebreaker for cursors.
CREATE INDEX qr_codes_merchant_created ON qr_codes (merchant_id, created_at DESC, id DESC);

-- Scans are append-only, one row per scan, so a popular poster never makes
-- a hot row; counts are aggregated when read.
CREATE TABLE qr_scans (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    qr_id        text        NOT NULL REFERENCES qr_codes (id) ON DELETE CASCADE,
    scanned_at   timestamptz NOT NULL,
    shopper_ref  text        CHECK (char_length(shopper_ref) BETWEEN 1 AND 128),
    user_agent   text        NOT NULL DEFAULT '' CHECK (char_length(user_agent) <= 256)
);
CREATE INDEX qr_scans_qr_scanned ON qr_scans (qr_id, scanned_at);

-- +goose Down
DROP TABLE qr_scans;
DROP TABLE qr_codes;
