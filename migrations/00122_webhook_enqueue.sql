-- +goose Up
-- webhook_enqueue writes events in one call (issue 19): the statement that
-- webhooks.Service.Enqueue ran (round two), now a function so that a
-- purchase's own function (purchase_pay) can write its events without a
-- round trip of their own. PL/pgSQL keeps its plan for the session, as the
-- prepared statement did. In order: the conversations' advisory locks, in
-- the sorted order given, before any seq is drawn (so seqs follow commit
-- order per conversation); the events, with seqs in the order given; one
-- delivery per enabled endpoint of each owner that takes the type (or only
-- p_target_endpoint, for a test ping); a NOTIFY when there is a delivery.
-- +goose StatementBegin
CREATE FUNCTION webhook_enqueue(
    p_conversations text[], p_ids text[], p_types text[], p_ordering_keys text[], p_bodies bytea[],
    p_created_at timestamptz[], p_owners text[], p_owner_events text[], p_owner_kinds text[], p_owner_ids text[],
    p_target_endpoint text, p_notify_channel text)
RETURNS TABLE (o_deliveries bigint, o_notified text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    WITH locked AS (
        SELECT count(*) AS conversations
        FROM (SELECT pg_advisory_xact_lock(hashtextextended('webhooks:' || k, 0)) FROM unnest(p_conversations) AS k) l
    ), event AS (
        INSERT INTO webhook_events (id, type, owners, ordering_key, seq, body, created_at)
        SELECT x.id, x.type, x.owners::text[], x.ordering_key, nextval('webhook_event_seq'), x.body, x.created_at
        FROM locked, unnest(p_ids, p_types, p_ordering_keys, p_bodies, p_created_at, p_owners)
            WITH ORDINALITY AS x (id, type, ordering_key, body, created_at, owners, n)
        ORDER BY x.n
        RETURNING webhook_events.id, webhook_events.type, webhook_events.seq, webhook_events.ordering_key, webhook_events.created_at
    ), fanout AS (
        INSERT INTO webhook_deliveries (event_id, endpoint_id, ordering_key, seq, status, next_attempt_at, created_at)
        SELECT event.id, e.id, event.ordering_key, event.seq, 'pending', LEAST(event.created_at, now()), event.created_at
        FROM event
        JOIN unnest(p_owner_events, p_owner_kinds, p_owner_ids) AS o (event_id, kind, owner_id) ON o.event_id = event.id
        JOIN webhook_endpoints e ON e.owner_kind = o.kind AND e.owner_id = o.owner_id
        WHERE e.enabled
          AND CASE WHEN p_target_endpoint = '' THEN e.event_types IS NULL OR event.type = ANY (e.event_types)
                   ELSE e.id = p_target_endpoint END
        RETURNING 1
    ), made AS (
        SELECT count(*) AS deliveries FROM fanout
    )
    SELECT made.deliveries, CASE WHEN made.deliveries > 0 THEN pg_notify(p_notify_channel, '')::text END FROM made;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION webhook_enqueue(text[], text[], text[], text[], bytea[], timestamptz[], text[], text[], text[], text[], text, text);
