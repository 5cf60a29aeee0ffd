-- +goose Up
-- Coupon credentials (payments/coupon_credentials.go): the bearer token in a
-- coupon link from the chat (redeem_url) or from the receipt page. A link
-- opens its coupon, and the shopper's other coupons of the same merchant
-- bought through the same channel ("My coupons"), with no messenger launch
-- context, so it keeps working after the chat's 15 minutes. Only the SHA-256
-- of the token is stored. A credential stops showing the code when its coupon
-- stops being active (redeemed in full, refunded, expired): the coupon's own
-- status decides, so no refund or expiry path can forget to revoke it.
CREATE TABLE coupon_credentials (
    token_hash  bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    coupon_id   text        NOT NULL REFERENCES coupons (id),
    shopper_id  text        NOT NULL REFERENCES shoppers (id),
    merchant_id text        NOT NULL REFERENCES merchants (id),
    -- chat: minted with the coupon for coupon.issued; receipt: minted when
    -- the shopper, proven by the messenger, opens the receipt page.
    source      text        NOT NULL CHECK (source IN ('chat', 'receipt')),
    created_at  timestamptz NOT NULL,
    -- Orders the receipt's links of one coupon (a test clock freezes
    -- created_at): the oldest beyond ten are dropped.
    seq         bigint      GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX coupon_credentials_coupon ON coupon_credentials (coupon_id, seq DESC);

-- +goose Down
DROP TABLE coupon_credentials;
