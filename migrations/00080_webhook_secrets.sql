-- +goose Up
-- Every secret an endpoint had before a rotation keeps signing until its own
-- expiry: rotating twice within a grace period must not end the first old
-- secret early (receivers may still be switching to it). The number kept is
-- bounded in code (webhooks.previousSecretsMax).
CREATE TABLE webhook_endpoint_secrets (
    endpoint_id  text        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    secret       text        NOT NULL CHECK (secret LIKE 'whsec_%'),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (endpoint_id, secret)
);

INSERT INTO webhook_endpoint_secrets (endpoint_id, secret, expires_at)
SELECT id, previous_secret, previous_secret_expires_at FROM webhook_endpoints WHERE previous_secret IS NOT NULL;

ALTER TABLE webhook_endpoints DROP COLUMN previous_secret, DROP COLUMN previous_secret_expires_at;

-- +goose Down
ALTER TABLE webhook_endpoints
    ADD COLUMN previous_secret text NULL CHECK (previous_secret LIKE 'whsec_%'),
    ADD COLUMN previous_secret_expires_at timestamptz NULL,
    ADD CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL));
UPDATE webhook_endpoints e SET previous_secret = s.secret, previous_secret_expires_at = s.expires_at
FROM (SELECT DISTINCT ON (endpoint_id) endpoint_id, secret, expires_at
      FROM webhook_endpoint_secrets ORDER BY endpoint_id, expires_at DESC) s
WHERE s.endpoint_id = e.id;
DROP TABLE webhook_endpoint_secrets;
