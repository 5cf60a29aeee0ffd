-- +goose Up
-- catalog_take_stock takes p_quantity units of a tracked item's stock in the
-- caller's transaction (issue 19: a purchase's writes in one round trip; it is
-- what catalog.TakeStock runs, and what purchase_pay calls). Answers false
-- when the item has fewer units left; the caller then rolls back, so a
-- partial take never commits. Each query of a VOLATILE PL/pgSQL function
-- takes a fresh snapshot (READ COMMITTED), as the statements of the Go loop
-- it replaces did:
--   take from a random bucket that has stock and that no sale in flight
--   holds (SKIP LOCKED), as much as it has; when every such bucket is held,
--   wait for the fullest one (after the wait PostgreSQL re-checks
--   quantity > 0 and may find it emptied), and go round again.
-- +goose StatementBegin
CREATE FUNCTION catalog_take_stock(p_item_id text, p_quantity bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_left      bigint := p_quantity;
    v_taken     bigint;
    v_committed bigint;
    v_round     integer := 0;
BEGIN
    WHILE v_left > 0 LOOP
        v_round := v_round + 1;
        IF v_round > 64 THEN
            RAISE EXCEPTION 'take stock of %: still contended after 64 rounds', p_item_id;
        END IF;
        WITH pick AS (
            SELECT bucket, quantity FROM item_stock
            WHERE item_id = p_item_id AND quantity > 0
            ORDER BY random() LIMIT 1
            FOR UPDATE SKIP LOCKED)
        UPDATE item_stock s SET quantity = s.quantity - LEAST(pick.quantity, v_left)
        FROM pick WHERE s.item_id = p_item_id AND s.bucket = pick.bucket
        RETURNING LEAST(pick.quantity, v_left) INTO v_taken;
        IF FOUND THEN
            v_left := v_left - v_taken;
            CONTINUE;
        END IF;
        SELECT COALESCE(sum(quantity), 0) INTO v_committed FROM item_stock WHERE item_id = p_item_id;
        IF v_committed = 0 THEN
            RETURN false;
        END IF;
        -- The bucket is ours now (or emptied); the next round takes from it.
        PERFORM bucket FROM item_stock
        WHERE item_id = p_item_id AND quantity > 0
        ORDER BY quantity DESC LIMIT 1
        FOR UPDATE;
    END LOOP;
    RETURN true;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION catalog_take_stock(text, bigint);
