-- +goose Up
-- The idempotency claim in one round trip (issue 19): try the key's
-- transaction-scoped advisory lock and, only once it is held, look the key
-- up. Both used to be statements of their own because one statement's
-- snapshot is taken before its lock: a first request committing in between
-- would be invisible and its change would run a second time. A VOLATILE
-- PL/pgSQL function takes a fresh snapshot for each of its queries (READ
-- COMMITTED), so the look-up here sees every row committed before the lock
-- was granted. One row always: o_locked false means another request with
-- this key is in flight; o_status NULL means the key is free.
-- +goose StatementBegin
CREATE FUNCTION idempotency_claim(p_scope text, p_key text)
RETURNS TABLE (o_locked boolean, o_request_hash bytea, o_status integer, o_content_type text, o_body bytea, o_problem_kind text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended(p_scope || E'\n' || p_key, 0)) THEN
        RETURN QUERY SELECT false, NULL::bytea, NULL::integer, NULL::text, NULL::bytea, NULL::text;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT true, k.request_hash, k.status, k.content_type, k.body, k.problem_kind
        FROM (SELECT 1) AS one
        LEFT JOIN idempotency_keys k ON k.scope = p_scope AND k.key = p_key;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION idempotency_claim(text, text);
