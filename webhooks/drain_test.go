package webhooks

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// backlogConfig retries once after 20 ms, then only after an hour: without
// the drain, a receiver back after the second attempt would wait an hour.
func backlogConfig(t *testing.T, f *fixture) DispatcherConfig {
	cfg := f.fastConfig(t)
	cfg.RetrySchedule = []time.Duration{0, 20 * time.Millisecond, time.Hour, time.Hour}
	cfg.JitterFraction = 0.01
	return cfg
}

// downReceiver answers 503 while down is set.
func downReceiver(t *testing.T, down *atomic.Bool) *receiver {
	return newReceiver(t, func(Envelope) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
}

// enqueueChats writes n events in each of the chats, in order.
func (f *fixture) enqueueChats(t *testing.T, chats []string, n int) {
	for i := range n {
		for _, chat := range chats {
			f.enqueueCommitted(t, paid(channel.ID, merchant.ID, chat, i))
		}
	}
}

// waitUntilWaiting returns once every pending delivery waits for its
// hour-long retry.
func (f *fixture) waitUntilWaiting(t *testing.T, pending int) {
	waitFor(t, 10*time.Second, "deliveries waiting for the long retry", func() bool {
		return f.count(t, `SELECT count(*) FROM webhook_deliveries
			WHERE status = 'pending' AND next_attempt_at > now() + interval '30 minutes'`) == pending
	})
}

// assertChatOrder checks that every chat's events arrived once each, in order.
func assertChatOrder(t *testing.T, r *receiver, chats []string, n int) {
	t.Helper()
	accepted, counts := r.snapshot()
	next := map[string]int{}
	for _, a := range accepted {
		chat := a.Data.Chat.ChatID
		if _, tracked := next[chat]; !tracked && !strings.HasPrefix(chat, "chat-") {
			continue
		}
		if got := a.Data.Order.Lines[0].Quantity; got != next[chat] {
			t.Fatalf("chat %s: event %d arrived where %d was due", chat, got, next[chat])
		}
		next[chat]++
	}
	for _, chat := range chats {
		if next[chat] != n {
			t.Fatalf("chat %s: %d of %d events arrived", chat, next[chat], n)
		}
	}
	for id, c := range counts {
		if c != 1 {
			t.Fatalf("event %s accepted %d times", id, c)
		}
	}
}

// A receiver that answers again gets its whole backlog at once: the first
// delivery that succeeds after failures (here a new sale's event in another
// chat) brings every waiting delivery of the endpoint forward, and each
// chat's events still arrive in order.
func TestBacklogDrainsWhenTheReceiverRecovers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var down atomic.Bool
	down.Store(true)
	r := downReceiver(t, &down)
	f.endpoint(t, channel, r)
	start(t, newDispatcher(t, backlogConfig(t, f)))

	chats := []string{"chat-a", "chat-b", "chat-c"}
	f.enqueueChats(t, chats, 4)
	// Heads of the three chats fail twice and wait an hour; the events
	// behind them wait for their heads.
	f.waitUntilWaiting(t, 3)

	down.Store(false)
	back := time.Now()
	f.enqueueCommitted(t, paid(channel.ID, merchant.ID, "chat-new", 0))
	waitFor(t, 10*time.Second, "the backlog", func() bool {
		return f.count(t, `SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'`) == 13
	})
	t.Logf("12 waiting deliveries in 3 chats arrived %s after the receiver answered again", time.Since(back).Round(time.Millisecond))
	assertChatOrder(t, r, chats, 4)
	if n := f.count(t, `SELECT count(*) FROM webhook_endpoints WHERE failing_since IS NOT NULL`); n != 0 {
		t.Fatalf("the endpoint is still marked failing")
	}
}

// "Send waiting now": after fixing a receiver, its owner makes the waiting
// deliveries due at once through the API; the order per chat is kept.
func TestSendWaitingNow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	api := newAPI(t, f, devPolicy)
	var down atomic.Bool
	down.Store(true)
	r := downReceiver(t, &down)
	ep := f.endpoint(t, channel, r)
	start(t, newDispatcher(t, backlogConfig(t, f)))

	chats := []string{"chat-a", "chat-b"}
	f.enqueueChats(t, chats, 3)
	f.waitUntilWaiting(t, 2)
	down.Store(false)

	stranger := Owner{Kind: OwnerChannel, ID: "chn_other"}
	if s := api.do(stranger, "POST", "/webhooks/endpoints/"+ep.ID+"/send-waiting", "", nil); s != http.StatusNotFound {
		t.Fatalf("another owner's send-waiting: %d", s)
	}
	var out struct {
		BroughtForward int `json:"brought_forward"`
	}
	if s := api.do(channel, "POST", "/webhooks/endpoints/"+ep.ID+"/send-waiting", "", &out); s != http.StatusAccepted || out.BroughtForward != 2 {
		t.Fatalf("send-waiting: %d %+v", s, out)
	}
	waitFor(t, 10*time.Second, "the waiting deliveries", func() bool {
		return f.count(t, `SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'`) == 6
	})
	assertChatOrder(t, r, chats, 3)

	if _, err := f.svc.UpdateEndpoint(context.Background(), channel, ep.ID, EndpointUpdate{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SendWaiting(context.Background(), channel, ep.ID); err != ErrEndpointDisabled {
		t.Fatalf("send-waiting on a disabled endpoint: %v", err)
	}
}

// Every old secret keeps signing until its own expiry, however many
// rotations came after it, up to previousSecretsMax of them.
func TestRotationKeepsEveryOldSecretUntilItsExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	r := newReceiver(t, nil)
	ep := f.endpoint(t, channel, r)
	r.mu.Lock()
	first := r.secret
	r.mu.Unlock()

	second, err := f.svc.RotateSecret(ctx, channel, ep.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	third, err := f.svc.RotateSecret(ctx, channel, ep.ID, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(third.PreviousSecretsExpireAt) != 2 {
		t.Fatalf("after two rotations %d old secrets sign, want 2: %+v", len(third.PreviousSecretsExpireAt), third)
	}
	start(t, newDispatcher(t, f.fastConfig(t)))
	// A receiver still on any of the three secrets accepts the webhook.
	for i, secret := range []string{first, second.Secret, third.Secret} {
		r.mu.Lock()
		r.secret = secret
		r.mu.Unlock()
		f.enqueueCommitted(t, paid(channel.ID, merchant.ID, fmt.Sprintf("chat-%d", i), 0))
		waitFor(t, 10*time.Second, fmt.Sprintf("a webhook verified with secret %d", i+1), func() bool {
			a, _ := r.snapshot()
			return len(a) == i+1
		})
	}
	if r.badSigs != 0 {
		t.Fatalf("%d webhooks failed verification", r.badSigs)
	}

	// The bound: with previousSecretsMax old secrets signing, another
	// rotation is refused until one expires.
	for range previousSecretsMax - 2 {
		if _, err := f.svc.RotateSecret(ctx, channel, ep.ID, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.RotateSecret(ctx, channel, ep.ID, time.Hour); err == nil || !strings.Contains(err.Error(), "too_many_secrets") {
		t.Fatalf("rotation beyond %d old secrets: %v", previousSecretsMax, err)
	}
	if n := f.count(t, `SELECT count(*) FROM webhook_endpoint_secrets WHERE endpoint_id = $1`, ep.ID); n != previousSecretsMax {
		t.Fatalf("%d old secrets stored, want %d", n, previousSecretsMax)
	}
}

func ptr[T any](v T) *T { return &v }
