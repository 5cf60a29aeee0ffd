-- +goose Up
-- Messenger adapters (issue 13). A channel's kind now decides how chatpay
-- learns who a shopper is (docs/messengers.md): Telegram initData, VK launch
-- params, WeChat web authorization, or chatpay's generic signed context.

ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('telegram', 'tamtam', 'wechat', 'whatsapp', 'vk', 'other'));

-- Telegram. Only the key derived from the bot token is kept
-- (HMAC-SHA256(key "WebAppData", token)): it verifies initData and is all
-- chatpay needs, but it cannot call the Bot API, so a copy of this table
-- does not hand out the bot. A channel without it verifies Telegram's
-- Ed25519 signature with the bot id alone (third-party mode). A telegram
-- channel with neither keeps accepting chatpay's generic signed context,
-- as every channel did before.
ALTER TABLE channels
    ADD COLUMN telegram_bot_id         bigint  CHECK (telegram_bot_id > 0),
    ADD COLUMN telegram_secret_key     bytea   CHECK (length(telegram_secret_key) = 32),
    ADD COLUMN telegram_test_env       boolean NOT NULL DEFAULT false,
    ADD COLUMN telegram_bot_username   text    CHECK (telegram_bot_username ~ '^[A-Za-z][A-Za-z0-9_]{3,31}$'),
    ADD COLUMN telegram_app_short_name text    CHECK (telegram_app_short_name ~ '^[A-Za-z0-9_]{3,30}$'),
    -- WhatsApp: the business number a wa.me link opens (digits only).
    ADD COLUMN whatsapp_number         text    CHECK (whatsapp_number ~ '^[1-9][0-9]{6,14}$'),
    -- VK Mini Apps: the app id and its protected key, which signs launch params.
    ADD COLUMN vk_app_id               bigint  CHECK (vk_app_id > 0),
    ADD COLUMN vk_app_secret           text    CHECK (length(vk_app_secret) BETWEEN 8 AND 128),
    -- WeChat Official Account: the app id and secret that exchange an
    -- authorization code for the shopper's openid, server to server.
    ADD COLUMN wechat_app_id           text    CHECK (wechat_app_id ~ '^[A-Za-z0-9_]{4,64}$'),
    ADD COLUMN wechat_app_secret       text    CHECK (length(wechat_app_secret) BETWEEN 8 AND 128),
    ADD CONSTRAINT channels_vk_verifiable CHECK (
        kind <> 'vk' OR (vk_app_id IS NOT NULL AND vk_app_secret IS NOT NULL)),
    ADD CONSTRAINT channels_wechat_verifiable CHECK (
        kind <> 'wechat' OR (wechat_app_id IS NULL) = (wechat_app_secret IS NULL));

-- WeChat web authorization in flight: the state parameter chatpay sent,
-- bound to the browser (by the SHA-256 of a cookie) so a code obtained in
-- another browser cannot be replayed here (CSRF). Used once, short-lived.
CREATE TABLE wechat_oauth_states (
    state        text        PRIMARY KEY CHECK (state ~ '^[a-z2-7]{26}$'),
    channel_id   text        NOT NULL REFERENCES channels (id),
    browser_hash bytea       NOT NULL CHECK (length(browser_hash) = 32),
    return_path  text        NOT NULL CHECK (return_path ~ '^/q/[a-z2-7]{26}$'),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL CHECK (expires_at > created_at),
    used_at      timestamptz
);
CREATE INDEX wechat_oauth_states_expiry ON wechat_oauth_states (expires_at);

-- QR codes that open a messenger. opens is what the printed code encodes:
-- chatpay's page ('web'), a Telegram Mini App or WhatsApp chat of a channel,
-- or the chooser page for every messenger ('chooser', the poster default).
ALTER TABLE qr_codes
    ADD COLUMN opens      text NOT NULL DEFAULT 'web'
        CHECK (opens IN ('web', 'telegram', 'whatsapp', 'wechat', 'chooser')),
    ADD COLUMN channel_id text CHECK (char_length(channel_id) BETWEEN 1 AND 64),
    ADD CONSTRAINT qr_codes_opens_channel CHECK (
        (opens IN ('telegram', 'whatsapp', 'wechat')) = (channel_id IS NOT NULL));

-- Which messenger a scan came through, for the per-messenger funnel.
ALTER TABLE qr_scans
    ADD COLUMN messenger text NOT NULL DEFAULT 'web'
        CHECK (messenger IN ('web', 'telegram', 'whatsapp', 'wechat', 'vk', 'tamtam', 'other', 'chooser'));

-- +goose Down
ALTER TABLE qr_scans DROP COLUMN messenger;
ALTER TABLE qr_codes DROP CONSTRAINT qr_codes_opens_channel, DROP COLUMN channel_id, DROP COLUMN opens;
DROP TABLE wechat_oauth_states;
ALTER TABLE channels
    DROP CONSTRAINT channels_wechat_verifiable, DROP CONSTRAINT channels_vk_verifiable,
    DROP COLUMN wechat_app_secret, DROP COLUMN wechat_app_id, DROP COLUMN vk_app_secret, DROP COLUMN vk_app_id,
    DROP COLUMN whatsapp_number, DROP COLUMN telegram_app_short_name, DROP COLUMN telegram_bot_username,
    DROP COLUMN telegram_test_env, DROP COLUMN telegram_secret_key, DROP COLUMN telegram_bot_id;
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('telegram', 'tamtam', 'wechat', 'whatsapp', 'other'));
