-- +goose Up
-- Catalog: merchants, their staff and API keys, coupon templates, items and
-- item stock. The catalog package alone writes these tables (payments
-- decrements item_stock, see below).

CREATE TABLE merchants (
    id                text        PRIMARY KEY CHECK (id LIKE 'mer\_%'),
    name              text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- An IANA zone name, validated by Go's time.LoadLocation before writing.
    time_zone         text        NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    default_currency  text        NOT NULL CHECK (default_currency ~ '^[A-Z]{3}$'),
    status            text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- Whether cashiers may type a coupon code instead of scanning it.
    allow_typed_codes boolean     NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

-- Staff sign in to the dashboard with an e-mail address that is unique across
-- all merchants, so that sign-in needs no merchant id.
CREATE TABLE staff_users (
    id            text        PRIMARY KEY CHECK (id LIKE 'usr\_%'),
    merchant_id   text        NOT NULL REFERENCES merchants (id),
    email         text        NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT staff_users_email_key UNIQUE (email)
);
CREATE INDEX staff_users_merchant ON staff_users (merchant_id);

-- Only the SHA-256 of a secret key is stored; the key itself is shown once.
CREATE TABLE api_keys (
    id           text        PRIMARY KEY CHECK (id LIKE 'key\_%'),
    merchant_id  text        NOT NULL REFERENCES merchants (id),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
    -- The first characters of the key, so staff can tell keys apart.
    hint         text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

-- Coupon rules as catalog.Rules JSON. Issued coupons copy the rules (payments
-- snapshots them), so editing a template never changes an issued coupon.
CREATE TABLE coupon_templates (
    id          text        PRIMARY KEY CHECK (id LIKE 'tpl\_%'),
    merchant_id text        NOT NULL REFERENCES merchants (id),
    rules       jsonb       NOT NULL CHECK (jsonb_typeof(rules) = 'object'),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- Lets items reference a template of their own merchant only.
    CONSTRAINT coupon_templates_merchant_id_key UNIQUE (merchant_id, id)
);

-- Items are never deleted (orders reference them); DELETE deactivates.
-- Stock lives in item_stock, not here, so that a flash sale does not
-- hot-update the items row that every read touches.
CREATE TABLE items (
    id                text        PRIMARY KEY CHECK (id LIKE 'item\_%'),
    merchant_id       text        NOT NULL REFERENCES merchants (id),
    sku               text        NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    title             text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description       text        NOT NULL DEFAULT '',
    category          text        NOT NULL DEFAULT '',
    gtin              text        CHECK (gtin ~ '^([0-9]{8}|[0-9]{12,14})$'),
    price_minor       bigint      NOT NULL CHECK (price_minor >= 0),
    currency          text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    kind              text        NOT NULL CHECK (kind IN ('product', 'voucher')),
    -- false: unlimited stock and no item_stock rows.
    stock_tracked     boolean     NOT NULL,
    per_shopper_limit integer     CHECK (per_shopper_limit > 0),
    active            boolean     NOT NULL DEFAULT true,
    image_url         text        CHECK (image_url LIKE 'https://%'),
    template_id       text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT items_merchant_sku_key UNIQUE (merchant_id, sku),
    CONSTRAINT items_template_fkey FOREIGN KEY (merchant_id, template_id)
        REFERENCES coupon_templates (merchant_id, id),
    CONSTRAINT items_voucher_template_check CHECK ((kind = 'voucher') = (template_id IS NOT NULL))
);
CREATE UNIQUE INDEX items_merchant_gtin_key ON items (merchant_id, gtin) WHERE gtin IS NOT NULL;
-- Keyset pagination of a merchant's items in creation order.
CREATE INDEX items_merchant_created ON items (merchant_id, created_at, id);

-- Stock of tracked items. An item's stock is the sum of its buckets. The
-- catalog writes the whole quantity into bucket 0; checkout (payments) owns
-- decrementing and may spread the quantity over several buckets so that
-- concurrent buyers of one item lock different rows.
CREATE TABLE item_stock (
    item_id  text     NOT NULL REFERENCES items (id),
    bucket   smallint NOT NULL DEFAULT 0 CHECK (bucket >= 0),
    quantity bigint   NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (item_id, bucket)
);

-- +goose Down
DROP TABLE item_stock;
DROP TABLE items;
DROP TABLE coupon_templates;
DROP TABLE api_keys;
DROP TABLE staff_users;
DROP TABLE merchants;
