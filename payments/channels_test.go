package payments

import (
	"context"
	"testing"

	"github.com/chatpay/chatpay/internal/problem"
)

// A channel names its own shoppers only, from the cache as from the
// database: a shopper remembered for one channel is not found for another.
func TestCachedShopperOfChannelKeepsChannelsApart(t *testing.T) {
	w := newSaleWorld(t)
	ctx := context.Background()
	other, err := w.s.CreateChannel(ctx, NewChannel{Name: "Other bot", Kind: "telegram"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a miss, then the cache
		sh, err := w.s.cachedShopperOfChannel(ctx, w.shopper.ChannelID, w.shopper.ID)
		if err != nil || sh.ID != w.shopper.ID || sh.ExternalUserID != "42" {
			t.Fatalf("own shopper: %+v, %v", sh, err)
		}
		if _, err := w.s.cachedShopperOfChannel(ctx, other.Channel.ID, w.shopper.ID); !isNotFoundProblem(err) {
			t.Fatalf("another channel's shopper: %v, want not found", err)
		}
	}
	if _, err := w.s.cachedShopperOfChannel(ctx, w.shopper.ChannelID, "shp_none"); !isNotFoundProblem(err) {
		t.Fatalf("unknown shopper: %v, want not found", err)
	}
	if n := w.s.channelShoppers.Len(); n != 1 {
		t.Fatalf("%d shoppers cached, want only the one found", n)
	}
}

func isNotFoundProblem(err error) bool {
	p, ok := problem.As(err)
	return ok && p.Kind == problem.KindNotFound
}
