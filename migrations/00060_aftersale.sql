-- +goose Up
-- After the sale: wallet top-ups through a payment provider, redemptions at
-- the till and refunds. The payments package alone writes these tables.

-- A top-up is recorded before the provider is called, so that a crash or a
-- lost answer leaves a row that reconciliation can finish:
-- pending → succeeded | failed | unknown, and unknown → succeeded | failed.
CREATE TABLE topups (
    id                    text        PRIMARY KEY CHECK (id LIKE 'top\_%'),
    shopper_id            text        NOT NULL REFERENCES shoppers (id),
    -- The caller's Idempotency-Key and the hash of its request, so a replay
    -- finds this row and a reuse with another body is refused.
    request_key           text        NOT NULL CHECK (length(request_key) BETWEEN 1 AND 255),
    request_hash          bytea       NOT NULL CHECK (length(request_hash) = 32),
    provider              text        NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
    -- The key chatpay sends the provider: one top-up, one charge, whatever
    -- the number of attempts.
    provider_key          text        NOT NULL,
    provider_charge_id    text,
    card_last4            text        NOT NULL CHECK (card_last4 ~ '^[0-9a-z_]{0,4}$'),
    amount_minor          bigint      NOT NULL CHECK (amount_minor > 0),
    currency              text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status                text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'unknown')),
    failure_code          text,
    chat_id               text        NOT NULL,
    ledger_transaction_id bigint,
    -- The wallet balance right after the credit, so replays answer the same.
    balance_after_minor   bigint,
    attempts              integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CONSTRAINT topups_request_key UNIQUE (shopper_id, request_key),
    CONSTRAINT topups_provider_key UNIQUE (provider, provider_key),
    -- Credited exactly when it succeeded: never a credit without a capture.
    CONSTRAINT topups_credited CHECK ((status = 'succeeded') = (ledger_transaction_id IS NOT NULL)),
    CONSTRAINT topups_failed_has_code CHECK ((status = 'failed') = (failure_code IS NOT NULL))
);
CREATE INDEX topups_open ON topups (updated_at) WHERE status IN ('pending', 'unknown');

CREATE TABLE redemptions (
    id                    text        PRIMARY KEY CHECK (id LIKE 'red\_%'),
    coupon_id             text        NOT NULL REFERENCES coupons (id),
    merchant_id           text        NOT NULL REFERENCES merchants (id),
    -- Which use of the coupon this was (1 for single-use coupons).
    use_no                integer     NOT NULL CHECK (use_no >= 1),
    value_minor           bigint      NOT NULL CHECK (value_minor >= 0),
    fee_minor             bigint      NOT NULL CHECK (fee_minor >= 0),
    net_minor             bigint      NOT NULL CHECK (net_minor >= 0),
    currency              text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- The basket as the till sent it, for disputes.
    basket                jsonb       NOT NULL,
    typed                 boolean     NOT NULL,
    redeemed_at           timestamptz NOT NULL,
    ledger_transaction_id bigint,
    created_at            timestamptz NOT NULL,
    CONSTRAINT redemptions_coupon_use_key UNIQUE (coupon_id, use_no),
    CONSTRAINT redemptions_parts CHECK (fee_minor + net_minor = value_minor),
    CONSTRAINT redemptions_in_ledger CHECK ((value_minor = 0) = (ledger_transaction_id IS NULL))
);
CREATE INDEX redemptions_merchant_created ON redemptions (merchant_id, created_at DESC, id DESC);

CREATE TABLE refunds (
    id                    text        PRIMARY KEY CHECK (id LIKE 'rfd\_%'),
    order_id              text        NOT NULL REFERENCES orders (id),
    merchant_id           text        NOT NULL REFERENCES merchants (id),
    -- Set when a voucher was refunded whole.
    coupon_id             text        REFERENCES coupons (id),
    amount_minor          bigint      NOT NULL CHECK (amount_minor > 0),
    -- The parts: from unredeemed vouchers (deferred) and from products
    -- (available and the platform's fee, returned in proportion).
    voucher_minor         bigint      NOT NULL CHECK (voucher_minor >= 0),
    product_minor         bigint      NOT NULL CHECK (product_minor >= 0),
    fee_back_minor        bigint      NOT NULL CHECK (fee_back_minor BETWEEN 0 AND product_minor),
    currency              text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    ledger_transaction_id bigint      NOT NULL,
    created_at            timestamptz NOT NULL,
    CONSTRAINT refunds_parts CHECK (voucher_minor + product_minor = amount_minor)
);
CREATE INDEX refunds_order ON refunds (order_id);
-- A voucher is refunded at most once.
CREATE UNIQUE INDEX refunds_coupon_key ON refunds (coupon_id) WHERE coupon_id IS NOT NULL;

-- +goose Down
DROP TABLE refunds;
DROP TABLE redemptions;
DROP TABLE topups;
