package catalog

import (
	"context"
	"sync"

	"github.com/jmoiron/sqlx"
)

// Purchases may price their lines from a cache of the items sold lately
// instead of reading the item, its merchant, its coupon template and its
// stock buckets in every purchase's transaction: that read cost ≈ 0.3 ms of
// PostgreSQL's CPU and 0.1 ms of Go's per purchase in `chatpay bench`
// (docs/performance.md, issue 19). It is safe because an entry carries its
// merchant's catalog version (migration 00125), which every change of the
// merchant, its items or its templates raises, and purchase_pay checks that
// version before it writes anything: a sale priced from a stale entry never
// commits, it is retried from a fresh read. Every instance's cache is
// checked against the database on every sale, so no invalidation messages
// are needed between instances.

// saleItemsMax bounds the cache. Past it, arbitrary entries make room: a
// dropped entry costs one read on its next sale.
const saleItemsMax = 10_000

type saleItemCache struct {
	mu   sync.RWMutex
	byID map[string]saleItem
}

type saleItem struct {
	item     Item
	merchant Merchant
}

// CachedItemForSale is ItemForSale from the cache, read through q and kept
// on a miss. It is for purchases only, whose write checks
// Merchant.CatalogVersion; a refusal must still be decided on ItemForSale's
// fresh answer. The item's Stock is the count when the entry was read:
// whether the item is tracked is current (changing it raises the version),
// the count is not. The Item shares its pointers with the cache: read them,
// never write through them.
func (s *Service) CachedItemForSale(ctx context.Context, q sqlx.ExtContext, itemID string) (Item, Merchant, error) {
	c := &s.saleItems
	c.mu.RLock()
	e, ok := c.byID[itemID]
	c.mu.RUnlock()
	if ok {
		return e.item, e.merchant, nil
	}
	item, m, err := s.ItemForSale(ctx, q, itemID)
	if err != nil {
		return Item{}, Merchant{}, err
	}
	c.mu.Lock()
	if len(c.byID) >= saleItemsMax {
		for id := range c.byID {
			delete(c.byID, id)
			if len(c.byID) < saleItemsMax*9/10 {
				break
			}
		}
	}
	c.byID[itemID] = saleItem{item: item, merchant: m}
	c.mu.Unlock()
	return item, m, nil
}

// ForgetItemForSale drops an item's cache entry: a sale priced from it was
// refused because its merchant's catalog changed.
func (s *Service) ForgetItemForSale(itemID string) {
	s.saleItems.mu.Lock()
	delete(s.saleItems.byID, itemID)
	s.saleItems.mu.Unlock()
}
