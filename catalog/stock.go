package catalog

import (
	"context"
	"database/sql"
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
const (
	// StockBucketsMax is how many rows an item's stock is spread over.
	StockBucketsMax = 16
	// stockTakeRoundsMax bounds the wait-and-retry rounds of one take.
	stockTakeRoundsMax = 64
)

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

// takeUnlockedSQL takes from any unlocked bucket that has stock, as much as
// it holds.
const takeUnlockedSQL = `
	WITH pick AS (
		SELECT bucket, quantity FROM item_stock
		WHERE item_id = $1 AND quantity > 0
		ORDER BY random() LIMIT 1
		FOR UPDATE SKIP LOCKED)
	UPDATE item_stock s SET quantity = s.quantity - LEAST(pick.quantity, $2)
	FROM pick WHERE s.item_id = $1 AND s.bucket = pick.bucket
	RETURNING LEAST(pick.quantity, $2)`

// TakeStock takes quantity units of a tracked item inside the caller's
// transaction, or returns ErrSoldOut; the caller rolls back on any error, so
// a partial take never commits.
func (s *Service) TakeStock(ctx context.Context, tx sqlx.ExtContext, itemID string, quantity int64) error {
	// Every bucket with stock is held by a sale in flight: wait for the
	// fullest one. After the wait PostgreSQL re-checks quantity > 0 and may
	// return no row, which sends us round again.
	const waitForBucket = `
		SELECT bucket FROM item_stock
		WHERE item_id = $1 AND quantity > 0
		ORDER BY quantity DESC LIMIT 1
		FOR UPDATE`
	const committedStock = `SELECT COALESCE(sum(quantity), 0) FROM item_stock WHERE item_id = $1`

	left := quantity
	for round := 0; left > 0; round++ {
		if round >= stockTakeRoundsMax {
			return fmt.Errorf("take stock of %s: still contended after %d rounds", itemID, stockTakeRoundsMax)
		}
		var taken int64
		err := s.stmts.Get(ctx, tx, &taken, takeUnlockedSQL, itemID, left)
		if err == nil {
			left -= taken
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("take stock: %w", err)
		}
		var committed int64
		if err := sqlx.GetContext(ctx, tx, &committed, committedStock, itemID); err != nil {
			return fmt.Errorf("read stock: %w", err)
		}
		if committed == 0 {
			return ErrSoldOut
		}
		var bucket int
		if err := sqlx.GetContext(ctx, tx, &bucket, waitForBucket, itemID); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("wait for stock: %w", err)
		}
		// The bucket is ours now (or emptied); the next round takes from it.
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
