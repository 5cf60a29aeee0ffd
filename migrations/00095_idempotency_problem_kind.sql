-- +goose Up
-- A stored business refusal keeps its problem kind (problem.Kind's name), so
-- a replay decodes the very error the change returned instead of guessing
-- the kind back from the HTTP status (422 is both "invalid" and "refused").
-- NULL for successes and for refusals stored before this column existed.
ALTER TABLE idempotency_keys ADD COLUMN problem_kind text;

-- +goose Down
ALTER TABLE idempotency_keys DROP COLUMN problem_kind;
