-- +goose Up
-- Payments: channels (messenger backends), shoppers, checkouts, orders and
-- coupons. The payments package alone writes these tables.

CREATE TABLE channels (
    id                text        PRIMARY KEY CHECK (id LIKE 'chn\_%'),
    name              text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind              text        NOT NULL CHECK (kind IN ('telegram', 'tamtam', 'wechat', 'whatsapp', 'other')),
    -- The HMAC launch secret is needed in clear to verify launch contexts; a
    -- channel that registers an Ed25519 public key need not share a secret.
    launch_secret     text        CHECK (length(launch_secret) >= 16),
    launch_public_key bytea       CHECK (length(launch_public_key) = 32),
    -- Only the SHA-256 of the channel's API key is stored; the key is shown once.
    api_key_hash      bytea       NOT NULL CHECK (length(api_key_hash) = 32),
    api_key_hint      text        NOT NULL,
    created_at        timestamptz NOT NULL,
    CONSTRAINT channels_api_key_hash_key UNIQUE (api_key_hash),
    CONSTRAINT channels_has_launch_key CHECK (launch_secret IS NOT NULL OR launch_public_key IS NOT NULL)
);

CREATE TABLE shoppers (
    id               text        PRIMARY KEY CHECK (id LIKE 'shp\_%'),
    channel_id       text        NOT NULL REFERENCES channels (id),
    external_user_id text        NOT NULL CHECK (length(external_user_id) BETWEEN 1 AND 256),
    display_name     text        NOT NULL DEFAULT '' CHECK (length(display_name) <= 256),
    created_at       timestamptz NOT NULL,
    CONSTRAINT shoppers_channel_user_key UNIQUE (channel_id, external_user_id)
);

CREATE TABLE checkouts (
    id          text        PRIMARY KEY CHECK (id LIKE 'chk\_%'),
    merchant_id text        NOT NULL REFERENCES merchants (id),
    -- A checkout a till shows as a dynamic QR has no shopper until one scans it.
    shopper_id  text        REFERENCES shoppers (id),
    chat_id     text        CHECK (length(chat_id) BETWEEN 1 AND 256),
    -- The QR code the checkout came from, for the per-placement funnel.
    qr_id       text,
    status      text        NOT NULL CHECK (status IN ('open', 'paid', 'expired', 'canceled')),
    -- true while the checkout holds stock for its lines (bot-created checkouts).
    reserved    boolean     NOT NULL,
    currency    text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_minor bigint      NOT NULL CHECK (total_minor >= 0),
    order_id    text,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL CHECK (expires_at > created_at),
    closed_at   timestamptz,
    CONSTRAINT checkouts_paid_has_order CHECK ((status = 'paid') = (order_id IS NOT NULL)),
    CONSTRAINT checkouts_open_reserved CHECK (status = 'open' OR NOT reserved),
    CONSTRAINT checkouts_paid_by_shopper CHECK (status <> 'paid' OR (shopper_id IS NOT NULL AND chat_id IS NOT NULL))
);
CREATE INDEX checkouts_open_expiry ON checkouts (expires_at) WHERE status = 'open';
CREATE INDEX checkouts_qr ON checkouts (qr_id) WHERE qr_id IS NOT NULL;

CREATE TABLE checkout_lines (
    checkout_id      text    NOT NULL REFERENCES checkouts (id),
    line_no          integer NOT NULL CHECK (line_no >= 1),
    item_id          text    NOT NULL REFERENCES items (id),
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    unit_price_minor bigint  NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (checkout_id, line_no)
);

CREATE TABLE orders (
    id                    text        PRIMARY KEY CHECK (id LIKE 'ord\_%'),
    checkout_id           text        NOT NULL REFERENCES checkouts (id),
    merchant_id           text        NOT NULL REFERENCES merchants (id),
    shopper_id            text        NOT NULL REFERENCES shoppers (id),
    chat_id               text        NOT NULL,
    currency              text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_minor           bigint      NOT NULL CHECK (total_minor >= 0),
    refunded_minor        bigint      NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    status                text        NOT NULL CHECK (status IN ('paid', 'partially_refunded', 'refunded')),
    -- The ledger transaction that paid it; a free order moves no money.
    ledger_transaction_id bigint,
    created_at            timestamptz NOT NULL,
    CONSTRAINT orders_paid_in_ledger CHECK ((total_minor = 0) = (ledger_transaction_id IS NULL)),
    -- One checkout pays at most one order, whatever the number of taps.
    CONSTRAINT orders_checkout_key UNIQUE (checkout_id),
    CONSTRAINT orders_refund_bounded CHECK (refunded_minor <= total_minor)
);
CREATE INDEX orders_merchant_created ON orders (merchant_id, created_at DESC, id DESC);
CREATE INDEX orders_shopper_created ON orders (shopper_id, created_at DESC, id DESC);

CREATE TABLE order_lines (
    order_id         text    NOT NULL REFERENCES orders (id),
    line_no          integer NOT NULL CHECK (line_no >= 1),
    item_id          text    NOT NULL REFERENCES items (id),
    sku              text    NOT NULL,
    title            text    NOT NULL,
    category         text    NOT NULL,
    kind             text    NOT NULL CHECK (kind IN ('product', 'voucher')),
    quantity         integer NOT NULL CHECK (quantity >= 1),
    unit_price_minor bigint  NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- How many units of an item each shopper bought, for per-shopper limits.
-- One row per (shopper, item): only that shopper's own taps contend on it.
CREATE TABLE shopper_item_purchases (
    shopper_id text    NOT NULL REFERENCES shoppers (id),
    item_id    text    NOT NULL REFERENCES items (id),
    quantity   integer NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (shopper_id, item_id)
);

CREATE TABLE coupons (
    id          text        PRIMARY KEY CHECK (id LIKE 'cpn\_%'),
    order_id    text        NOT NULL REFERENCES orders (id),
    line_no     integer     NOT NULL,
    merchant_id text        NOT NULL REFERENCES merchants (id),
    shopper_id  text        NOT NULL REFERENCES shoppers (id),
    item_id     text        NOT NULL REFERENCES items (id),
    -- Human-typeable code printed under the QR (Crockford base32 groups).
    code        text        NOT NULL CHECK (code ~ '^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$'),
    -- Seed of the short-lived redemption tokens on the receipt page.
    secret      bytea       NOT NULL CHECK (length(secret) = 20),
    -- The template's rules as they were at purchase: later edits never apply.
    rules       jsonb       NOT NULL,
    -- The merchant's zone at purchase: the windows mean local time there,
    -- even if the merchant moves its zone later.
    time_zone   text        NOT NULL,
    value_minor bigint      NOT NULL CHECK (value_minor >= 0),
    currency    text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    issued_at   timestamptz NOT NULL,
    valid_until timestamptz,
    uses_total  integer     NOT NULL CHECK (uses_total >= 1),
    uses_left   integer     NOT NULL CHECK (uses_left BETWEEN 0 AND uses_total),
    status      text        NOT NULL CHECK (status IN ('active', 'redeemed', 'expired', 'refunded')),
    closed_at   timestamptz,
    CONSTRAINT coupons_code_key UNIQUE (code),
    FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no)
);
CREATE INDEX coupons_shopper ON coupons (shopper_id, issued_at DESC);
CREATE INDEX coupons_expiry ON coupons (valid_until) WHERE status = 'active';

-- +goose Down
DROP TABLE coupons;
DROP TABLE shopper_item_purchases;
DROP TABLE order_lines;
DROP TABLE orders;
DROP TABLE checkout_lines;
DROP TABLE checkouts;
DROP TABLE shoppers;
DROP TABLE channels;
