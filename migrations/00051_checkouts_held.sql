-- +goose Up
-- A shopper's open reservations count toward the per-shopper limit, read on
-- every checkout: find them without scanning all checkouts.
CREATE INDEX checkouts_shopper_reserved ON checkouts (shopper_id) WHERE status = 'open' AND reserved;

-- +goose Down
DROP INDEX checkouts_shopper_reserved;
