package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

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

	take := statementsOf(s.db).takeStock.in(ctx, s.db, tx)
	left := quantity
	for round := 0; left > 0; round++ {
		if round >= stockTakeRoundsMax {
			return fmt.Errorf("take stock of %s: still contended after %d rounds", itemID, stockTakeRoundsMax)
		}
		var taken int64
		var err error
		if take != nil {
			err = take.GetContext(ctx, &taken, itemID, left)
		} else {
			err = sqlx.GetContext(ctx, tx, &taken, takeUnlockedSQL, itemID, left)
		}
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
	return getItemForSale(ctx, q, statementsOf(s.db).itemForSale.in(ctx, s.db, q), itemID)
}

// statements are the catalog's statements that every purchase runs, each
// prepared once per pool: database/sql then keeps it prepared on every
// connection it ran on. Unprepared, lib/pq sends a statement with
// parameters in two round trips and PostgreSQL plans it every time; for
// the item read, planning cost three times what running it did
// (docs/performance.md).
type statements struct {
	itemForSale prepared
	takeStock   prepared
}

// preparedByPool holds each pool's statements; keyed by pool because a
// process (a test binary) may open several.
var preparedByPool sync.Map // *sqlx.DB → *statements

func statementsOf(db *sqlx.DB) *statements {
	if found, ok := preparedByPool.Load(db); ok {
		return found.(*statements)
	}
	found, _ := preparedByPool.LoadOrStore(db, &statements{
		itemForSale: prepared{query: itemForSaleSQL},
		takeStock:   prepared{query: takeUnlockedSQL},
	})
	return found.(*statements)
}

// prepared is one statement prepared on first use.
type prepared struct {
	query string
	mu    sync.Mutex
	stmt  *sqlx.Stmt
}

// in returns the statement bound to q when q is db or one of its
// transactions, else nil: the caller then runs the query unprepared.
func (p *prepared) in(ctx context.Context, db *sqlx.DB, q sqlx.ExtContext) *sqlx.Stmt {
	tx, isTx := q.(*sqlx.Tx)
	if pool, isPool := q.(*sqlx.DB); !isTx && (!isPool || pool != db) {
		return nil
	}
	p.mu.Lock()
	if p.stmt == nil {
		stmt, err := db.PreparexContext(ctx, p.query)
		if err != nil {
			// Prepared is only faster; the plain query reports the error.
			p.mu.Unlock()
			return nil
		}
		p.stmt = stmt
	}
	stmt := p.stmt
	p.mu.Unlock()
	if isTx {
		return tx.StmtxContext(ctx, stmt)
	}
	return stmt
}
