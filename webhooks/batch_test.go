package webhooks

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/ids"
)

// Several events enqueued in one call (a purchase's order.paid and
// coupon.issued) are one statement: they keep the order given, within and
// across conversations, fan out to each of their owners' endpoints once,
// and roll back with their transaction.
func TestEnqueueSeveralInOneCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := newReceiver(t, nil)
	f.endpoint(t, channel, r)
	f.endpoint(t, merchant, r)
	ctx := context.Background()
	events := []Event{paid(channel.ID, merchant.ID, "7", 0), paid(channel.ID, merchant.ID, "8", 1), paid(channel.ID, merchant.ID, "7", 2)}
	events[1].Owners = append(events[1].Owners, merchant) // an owner named twice gets one delivery
	enqueue := func() error {
		return database.WithTx(ctx, f.db, nil, func(tx *sqlx.Tx) error { return f.svc.Enqueue(ctx, tx, events...) })
	}
	if err := enqueue(); err != nil {
		t.Fatal(err)
	}
	var orders []string
	if err := f.db.Select(&orders, `SELECT convert_from(body, 'UTF8')::jsonb -> 'data' -> 'order' ->> 'id' FROM webhook_events ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ord_7_0", "ord_8_1", "ord_7_2"}; len(orders) != 3 || orders[0] != want[0] || orders[1] != want[1] || orders[2] != want[2] {
		t.Fatalf("events in seq order %v, want %v", orders, want)
	}
	if n := f.count(t, `SELECT count(*) FROM webhook_deliveries`); n != 6 {
		t.Fatalf("%d deliveries, want 2 per event", n)
	}

	// A failing event (a duplicate id) takes the others with it.
	events[0].ID = ids.New("evt")
	events[2].ID = events[0].ID
	if err := enqueue(); err == nil {
		t.Fatal("a duplicate event id was written")
	}
	if n := f.count(t, `SELECT count(*) FROM webhook_events`); n != 3 {
		t.Fatalf("%d events after a failed call, want 3", n)
	}
}
