-- +goose Up
-- The one-call purchase (issue 19) pays for an item in one transaction with
-- no checkout row: nothing is held between two calls, so nothing needs one.
-- Its order has no checkout and records the QR code it was bought from, for
-- the per-placement funnel that otherwise counts checkouts (no index: only
-- the dashboard's funnel reads it, through the merchant's orders).
ALTER TABLE orders ALTER COLUMN checkout_id DROP NOT NULL;
ALTER TABLE orders ADD COLUMN qr_id text;
ALTER TABLE orders ADD CONSTRAINT orders_qr_without_checkout CHECK (qr_id IS NULL OR checkout_id IS NULL);

-- +goose Down
ALTER TABLE orders DROP COLUMN qr_id;
ALTER TABLE orders ALTER COLUMN checkout_id SET NOT NULL;
