-- +goose Up
-- Typed coupon codes are off for new merchants: a printed code defeats the
-- rotating QR (a screenshot or a forwarded message would redeem). Merchants
-- that exist keep the answer they have; the dashboard's settings turn it on.
ALTER TABLE merchants ALTER COLUMN allow_typed_codes SET DEFAULT false;

-- +goose Down
ALTER TABLE merchants ALTER COLUMN allow_typed_codes SET DEFAULT true;
