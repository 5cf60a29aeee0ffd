package catalog

import (
	"context"

	"github.com/jmoiron/sqlx"
)

// Purchases may price their lines from a cache of the items sold lately
// instead of reading the item, its merchant, its coupon template and its
// stock buckets in every purchase's transaction: that read was one of a
// one-call purchase's eight statements, and a four-table read with the
// rules' JSON (docs/performance.md, issue 19, change 15). It is safe
// because an entry carries its merchant's catalog version (migration
// 00125), which every change of the merchant, its items or its templates
// raises, and purchase_pay checks that version before it writes anything:
// a sale priced from a stale entry never commits, it is retried from a
// fresh read. Every instance's cache is checked against the database on
// every sale, so no invalidation messages are needed between instances.

// saleItemsMax bounds the cache (internal/memo): a dropped entry costs one
// read on its next sale.
const saleItemsMax = 10_000

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
	if e, ok := s.saleItems.Get(itemID); ok {
		return e.item, e.merchant, nil
	}
	item, m, err := s.ItemForSale(ctx, q, itemID)
	if err != nil {
		return Item{}, Merchant{}, err
	}
	s.saleItems.Put(itemID, saleItem{item: item, merchant: m})
	return item, m, nil
}

// ForgetItemForSale drops an item's cache entry: a sale priced from it was
// refused because its merchant's catalog changed.
func (s *Service) ForgetItemForSale(itemID string) {
	s.saleItems.Delete(itemID)
}
