-- +goose Up
-- Real payment providers (Stripe, WeChat Pay): the shopper pays on the
-- provider's own page, so a top-up is created before any money moves and is
-- credited later, from a verified notification or by reconciliation. The
-- payments package alone writes these tables.

-- How the shopper pays a top-up: 'card' is the sandbox's own card form;
-- 'checkout' a Stripe Checkout page; 'jsapi' the WeChat Pay sheet inside
-- WeChat; 'native' a WeChat Pay QR code for other browsers.
ALTER TABLE topups
    ADD COLUMN method         text   NOT NULL DEFAULT 'card' CHECK (method IN ('card', 'checkout', 'jsapi', 'native')),
    -- The merchant whose provider account takes a hosted payment; NULL for
    -- the sandbox, which is the platform's.
    ADD COLUMN merchant_id    text   REFERENCES merchants (id),
    -- The provider's id of the payment page or order (a Checkout Session,
    -- a WeChat Pay out_trade_no), known once the provider answered.
    ADD COLUMN payment_id     text   CHECK (length(payment_id) BETWEEN 1 AND 255),
    -- What the shopper's page needs to pay (redirect URL, QR content, signed
    -- JSAPI parameters), as the provider gave it; never a card number.
    ADD COLUMN payment_page   jsonb,
    -- Where the provider sends the shopper back: part of the request that
    -- the provider's idempotency key stands for, so it is kept to repeat it.
    ADD COLUMN return_url     text   CHECK (length(return_url) <= 2048),
    ADD COLUMN refunded_minor bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT topups_refunded_le_amount CHECK (refunded_minor BETWEEN 0 AND amount_minor),
    ADD CONSTRAINT topups_hosted_has_merchant CHECK ((method = 'card') = (merchant_id IS NULL));
CREATE UNIQUE INDEX topups_payment_id ON topups (provider, payment_id) WHERE payment_id IS NOT NULL;

-- Every verified provider notification, once: a duplicate delivery finds its
-- row and changes nothing. Written in the transaction that acts on it.
CREATE TABLE provider_events (
    provider    text        NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
    event_id    text        NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    event_type  text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 128),
    top_up_id   text        REFERENCES topups (id),
    -- What the event did: credited, failed, or ignored (the top-up was
    -- already settled, or the event type changes nothing).
    outcome     text        NOT NULL CHECK (outcome IN ('credited', 'failed', 'ignored')),
    received_at timestamptz NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- A top-up given back to the payment method it came from. The wallet is
-- debited when the refund is recorded (so the money cannot be spent while the
-- provider works); a refund the provider refuses is reversed.
CREATE TABLE topup_refunds (
    id                      text        PRIMARY KEY CHECK (id LIKE 'tre\_%'),
    top_up_id               text        NOT NULL REFERENCES topups (id),
    request_key             text        NOT NULL CHECK (length(request_key) BETWEEN 1 AND 255),
    amount_minor            bigint      NOT NULL CHECK (amount_minor > 0),
    currency                text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status                  text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    provider_refund_id      text,
    failure_code            text,
    ledger_transaction_id   bigint      NOT NULL,
    reversal_transaction_id bigint,
    attempts                integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    CONSTRAINT topup_refunds_request_key UNIQUE (top_up_id, request_key),
    CONSTRAINT topup_refunds_failed_reversed CHECK ((status = 'failed') = (reversal_transaction_id IS NOT NULL)),
    CONSTRAINT topup_refunds_succeeded_has_id CHECK (status <> 'succeeded' OR provider_refund_id IS NOT NULL)
);
CREATE INDEX topup_refunds_open ON topup_refunds (updated_at) WHERE status = 'pending';

-- Which provider a merchant takes top-ups with, and its credentials sealed
-- with AES-256-GCM under a key from chatpay's environment (key_id names it,
-- so keys can be rotated). The secrets are never shown again.
CREATE TABLE merchant_providers (
    merchant_id  text        PRIMARY KEY REFERENCES merchants (id),
    provider     text        NOT NULL CHECK (provider IN ('stripe', 'wechatpay')),
    -- Settings that are not secret (WeChat Pay mchid, appid, serial numbers),
    -- shown in the dashboard.
    settings     jsonb       NOT NULL DEFAULT '{}',
    key_id       text        NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    sealed       bytea       NOT NULL CHECK (length(sealed) > 28),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- +goose Down
DROP TABLE merchant_providers;
DROP TABLE topup_refunds;
DROP TABLE provider_events;
DROP INDEX topups_payment_id;
ALTER TABLE topups
    DROP CONSTRAINT topups_hosted_has_merchant,
    DROP CONSTRAINT topups_refunded_le_amount,
    DROP COLUMN refunded_minor,
    DROP COLUMN return_url,
    DROP COLUMN payment_page,
    DROP COLUMN payment_id,
    DROP COLUMN merchant_id,
    DROP COLUMN method;
