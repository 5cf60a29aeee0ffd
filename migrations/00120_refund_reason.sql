-- +goose Up
-- Why a refund was made, as staff gave it when confirming it (the dashboard
-- asks; the API takes it optionally): the order page and the API show it
-- back, so a later question "why was this refunded?" has an answer.
ALTER TABLE refunds ADD COLUMN reason text NOT NULL DEFAULT '' CHECK (length(reason) <= 500);

-- +goose Down
ALTER TABLE refunds DROP COLUMN reason;
