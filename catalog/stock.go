package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Stock is kept in buckets (rows of item_stock) so that concurrent buyers of
// one item lock different rows: a flash sale of one tea card would otherwise
// queue every buyer behind a single row lock for the whole of each
// checkout's commit. A sale takes a unit from a random unlocked bucket (SKIP
// LOCKED) and only waits for a lock when every bucket that still has stock is
// held by another sale in flight. The item's stock is the sum of its buckets;
// the CHECK (quantity >= 0) on each bucket makes overselling impossible.
//
// See docs/performance.md for the measurement behind StockBucketsMax.
// StockBucketsMax is how many rows an item's stock is spread over.
const StockBucketsMax = 16

// ErrSoldOut means the item has fewer units left than asked for.
var ErrSoldOut = errors.New("sold out")

// spreadStock splits a quantity over buckets as evenly as possible; small
// quantities get one unit per bucket.
func spreadStock(quantity int64) []int64 {
	n := min(int64(StockBucketsMax), quantity)
	if n == 0 {
		return []int64{0}
	}
	buckets := make([]int64, n)
	for i := range buckets {
		buckets[i] = quantity / n
		if int64(i) < quantity%n {
			buckets[i]++
		}
	}
	return buckets
}

// takeStockSQL takes stock in one round trip: the function of migration
// 00121 (take from an unlocked bucket, wait for one only when every bucket
// with stock is held). purchase_pay calls the same function.
const takeStockSQL = `SELECT catalog_take_stock($1, $2)`

// TakeStock takes quantity units of a tracked item inside the caller's
// transaction, or returns ErrSoldOut; the caller rolls back on any error, so
// a partial take never commits.
func (s *Service) TakeStock(ctx context.Context, tx sqlx.ExtContext, itemID string, quantity int64) error {
	var taken bool
	if err := s.stmts.Get(ctx, tx, &taken, takeStockSQL, itemID, quantity); err != nil {
		return fmt.Errorf("take stock: %w", err)
	}
	if !taken {
		return ErrSoldOut
	}
	return nil
}

// ReturnStock puts units back (an expired or canceled reservation, a
// refunded product) into one of the item's buckets. Untracked items ignore it.
func (s *Service) ReturnStock(ctx context.Context, tx sqlx.ExtContext, itemID string, quantity int64) error {
	const give = `
		WITH pick AS (
			SELECT bucket FROM item_stock WHERE item_id = $1
			ORDER BY random() LIMIT 1
			FOR UPDATE)
		UPDATE item_stock s SET quantity = s.quantity + $2
		FROM pick WHERE s.item_id = $1 AND s.bucket = pick.bucket`
	if _, err := tx.ExecContext(ctx, give, itemID, quantity); err != nil {
		return fmt.Errorf("return stock: %w", err)
	}
	return nil
}

// ItemForSale returns an item (of any merchant) with its merchant, inside
// the caller's transaction, for the checkout. It returns problem.NotFound.
func (s *Service) ItemForSale(ctx context.Context, q sqlx.ExtContext, itemID string) (Item, Merchant, error) {
	if q == nil {
		q = s.db
	}
	return getItemForSale(ctx, q, s.stmts, itemID)
}
