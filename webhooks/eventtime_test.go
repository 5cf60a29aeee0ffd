package webhooks

import (
	"testing"
	"time"
)

// An event's timestamp is the caller's clock (a test clock, `expire --now`),
// but its delivery is due by the real clock: a future-stamped event goes out
// at once and keeps its timestamp, and the next event of the same
// conversation is not parked behind it.
func TestFutureEventIsDueNow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := newReceiver(t, nil)
	f.endpoint(t, channel, r)

	future := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	ahead := paid(channel.ID, merchant.ID, "77", 1)
	ahead.CreatedAt = future
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	behind := paid(channel.ID, merchant.ID, "77", 2)
	behind.CreatedAt = past
	f.enqueueCommitted(t, ahead)
	f.enqueueCommitted(t, behind)
	if n := f.count(t, `SELECT count(*) FROM webhook_deliveries WHERE next_attempt_at > now()`); n != 0 {
		t.Fatalf("%d deliveries scheduled in the future", n)
	}
	if n := f.count(t, `SELECT count(*) FROM webhook_deliveries WHERE next_attempt_at = $1`, past); n != 1 {
		t.Fatalf("the past event's delivery is not due at its own time (%d rows)", n)
	}
	// The dispatcher starts after the schedule is read: a delivery it makes
	// rewrites the row's next attempt.
	start(t, newDispatcher(t, f.fastConfig(t)))
	waitFor(t, 5*time.Second, "both events", func() bool {
		accepted, _ := r.snapshot()
		return len(accepted) == 2
	})
	accepted, _ := r.snapshot()
	if !accepted[0].Envelope.Timestamp.Equal(future) || accepted[0].Data.Order.Lines[0].Quantity != 1 {
		t.Fatalf("first arrival %+v, want the future-stamped event with timestamp %s", accepted[0].Envelope, future)
	}
	if !accepted[1].Envelope.Timestamp.Equal(past) {
		t.Fatalf("second arrival's timestamp %s, want %s", accepted[1].Envelope.Timestamp, past)
	}
}
