package ledger

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/money"
)

// sumAlongsideSQL sums ref's postings in the transactions that also post to
// with: an index scan of with's postings, then one lookup per transaction.
const sumAlongsideSQL = `
SELECT COALESCE(sum(p.amount), 0)
FROM ledger_accounts wa
JOIN ledger_postings wp ON wp.account_id = wa.id
JOIN ledger_postings p ON p.transaction_id = wp.transaction_id
JOIN ledger_accounts a ON a.id = p.account_id
WHERE wa.code = $1 AND wa.currency = $3 AND a.code = $2 AND a.currency = $3
  AND wp.id = (SELECT min(x.id) FROM ledger_postings x WHERE x.transaction_id = wp.transaction_id AND x.account_id = wa.id)`

// SumAlongside returns the sum of ref's postings in currency over the
// transactions that also post to with. It answers questions such as "the
// platform fees taken from this merchant's revenue" (ref PlatformFees(),
// with MerchantAvailable(id)) without the ledger knowing what a merchant is.
//
// Errors: CodeInvalidAccount for a malformed ref or with.
func (l *Ledger) SumAlongside(ctx context.Context, q sqlx.QueryerContext, ref, with AccountRef, currency money.Currency) (int64, error) {
	if err := ref.validate(); err != nil {
		return 0, err
	}
	if err := with.validate(); err != nil {
		return 0, err
	}
	var sum int64
	if err := sqlx.GetContext(ctx, q, &sum, sumAlongsideSQL, with.Code(), ref.Code(), currency.Code()); err != nil {
		return 0, fmt.Errorf("sum of %s alongside %s: %w", ref.Code(), with.Code(), err)
	}
	return sum, nil
}
