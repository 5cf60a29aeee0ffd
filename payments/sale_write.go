package payments

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/webhooks"
)

// saleWrite is everything pay writes, computed before the one call.
type saleWrite struct {
	sale    sale
	order   Order // with its lines
	coupons []Coupon
	post    *ledger.PreparedPost // nil: a free order posts nothing
	events  webhooks.Batch
}

// saleWritten is what purchase_pay answers.
type saleWritten struct {
	order Order // with its ledger transaction
	// wallet is the shopper's wallet balance after the post, when it said.
	wallet *int64
	// bought is the shopper's count of each line's item after the purchase.
	bought []int
}

// purchasePaySQL calls migration 00126's function with purchasePayArgs:
// 37 of the sale's own, then the ledger post's 8 and webhooks.Batch's 12.
const purchasePaySQL = `
SELECT o_outcome, o_ledger_id, o_wallet_code, o_wallet_currency, o_wallet_balance, o_limit_totals
FROM purchase_pay($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
    $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37,
    $38, $39, $40, $41, $42, $43, $44, $45,
    $46, $47, $48, $49, $50, $51, $52, $53, $54, $55, $56, $57)`

// refusedSQLState is the SQLSTATE purchase_pay raises a refusal with.
const refusedSQLState = "CP001"

// writeSale writes w in tx with one call of purchase_pay (migration 00124):
// one round trip for what were ten statements or more. A merchant's first
// sale creates its ledger accounts and calls again.
func (s *Service) writeSale(ctx context.Context, tx *sqlx.Tx, w saleWrite) (saleWritten, error) {
	args := purchasePayArgs(w)
	for round := 1; round <= 2; round++ {
		var out struct {
			Outcome        string         `db:"o_outcome"`
			LedgerID       sql.NullInt64  `db:"o_ledger_id"`
			WalletCode     sql.NullString `db:"o_wallet_code"`
			WalletCurrency sql.NullString `db:"o_wallet_currency"`
			WalletBalance  sql.NullInt64  `db:"o_wallet_balance"`
			LimitTotals    pq.Int64Array  `db:"o_limit_totals"`
		}
		if err := s.stmts.Get(ctx, tx, &out, purchasePaySQL, args...); err != nil {
			if database.IsRetryable(err) {
				// Most likely the catalog changed since the lines were
				// priced (a cached entry is stale); the retry reads afresh.
				for _, l := range w.sale.lines {
					s.catalog.ForgetItemForSale(l.ItemID)
				}
			}
			return saleWritten{}, s.saleRefusal(w, err)
		}
		if out.Outcome == "missing_accounts" && round == 1 && w.post != nil {
			if err := s.ledger.EnsureAccounts(ctx, tx, w.post.Transaction()); err != nil {
				return saleWritten{}, err
			}
			continue
		}
		if out.Outcome != "paid" {
			return saleWritten{}, fmt.Errorf("purchase_pay: unexpected outcome %q in round %d", out.Outcome, round)
		}
		written := saleWritten{order: w.order}
		if w.post != nil {
			posted, err := w.post.Result(ledger.PostOutcome{Outcome: "posted", TransactionID: out.LedgerID,
				AccountCode: out.WalletCode, AccountCurrency: out.WalletCurrency, Balance: out.WalletBalance})
			if err != nil {
				return saleWritten{}, err
			}
			written.order.LedgerTransactionID = sql.NullInt64{Int64: posted.ID, Valid: true}
			if a := posted.After; a != nil && a.Account == ledger.ShopperWallet(w.sale.shopper.ID) {
				written.wallet = &a.Balance
			}
		}
		for _, total := range out.LimitTotals {
			written.bought = append(written.bought, int(total))
		}
		return written, nil
	}
	panic("unreachable")
}

// purchasePayArgs are purchase_pay's arguments for w, in order.
func purchasePayArgs(w saleWrite) []any {
	sl, o := w.sale, w.order
	var stockItems []string
	var stockQuantities []int64
	limitItems := make([]string, len(sl.lines))
	limitQuantities := make([]int64, len(sl.lines))
	limits := make([]sql.NullInt64, len(sl.lines))
	for i, l := range sl.lines {
		if sl.takeStock && l.item.Stock != nil {
			stockItems, stockQuantities = append(stockItems, l.ItemID), append(stockQuantities, int64(l.Quantity))
		}
		limitItems[i], limitQuantities[i] = l.ItemID, int64(l.Quantity)
		if l.item.PerShopperLimit != nil {
			limits[i] = sql.NullInt64{Int64: int64(*l.item.PerShopperLimit), Valid: true}
		}
	}
	n := len(o.Lines)
	lineNos, quantities, prices := make([]int64, n), make([]int64, n), make([]int64, n)
	itemIDs, skus, titles, categories, kinds := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, l := range o.Lines {
		lineNos[i], itemIDs[i], skus[i], titles[i], categories[i], kinds[i] = int64(l.LineNo), l.ItemID, l.SKU, l.Title, l.Category, l.Kind
		quantities[i], prices[i] = int64(l.Quantity), l.UnitPriceMinor
	}
	c := len(w.coupons)
	couponIDs, couponItems, codes, rules, validUntil := make([]string, c), make([]string, c), make([]string, c), make([]string, c), make([]string, c)
	couponLines, values, uses := make([]int64, c), make([]int64, c), make([]int64, c)
	secrets, tokenHashes := make([][]byte, c), make([][]byte, c)
	for i, cp := range w.coupons {
		couponIDs[i], couponLines[i], couponItems[i], codes[i], secrets[i] = cp.ID, int64(cp.LineNo), cp.ItemID, cp.Code, cp.Secret
		rules[i], values[i], uses[i], tokenHashes[i] = string(cp.RulesJSON), cp.ValueMinor, int64(cp.UsesTotal), couponTokenHash(cp.LinkToken)
		if cp.ValidUntil.Valid {
			validUntil[i] = cp.ValidUntil.Time.Format("2006-01-02T15:04:05.999999999Z07:00")
		}
	}
	args := []any{
		sl.shopper.ID,
		pq.StringArray(stockItems), pq.Int64Array(stockQuantities),
		pq.StringArray(limitItems), pq.Int64Array(limitQuantities), pq.Array(limits),
		o.ID, sql.NullString{String: o.CheckoutID, Valid: o.CheckoutID != ""}, o.MerchantID, sl.merchant.CatalogVersion,
		o.ChatID, o.Currency, o.TotalMinor,
		o.Status, o.CreatedAt, sql.NullString{String: sl.qrID, Valid: sl.qrID != ""},
		pq.Int64Array(lineNos), pq.StringArray(itemIDs), pq.StringArray(skus), pq.StringArray(titles), pq.StringArray(categories),
		pq.StringArray(kinds), pq.Int64Array(quantities), pq.Int64Array(prices),
		sl.merchant.TimeZone, pq.StringArray(couponIDs), pq.Int64Array(couponLines), pq.StringArray(couponItems), pq.StringArray(codes),
		pq.ByteaArray(secrets), pq.StringArray(rules), pq.Int64Array(values), pq.StringArray(validUntil),
		pq.Int64Array(uses), pq.ByteaArray(tokenHashes), credentialFromChat,
		w.post != nil,
	}
	if w.post != nil {
		args = append(args, w.post.Args()...)
	} else {
		args = append(args, nil, nil, nil, nil, nil, nil, nil, nil)
	}
	return append(args, w.events.Args()...)
}

// saleRefusal turns purchase_pay's refusals into the problems pay always
// answered; any other error is returned as it is.
func (s *Service) saleRefusal(w saleWrite, err error) error {
	if database.IsUniqueViolation(err, "orders_checkout_key") {
		// The checkout row lock makes this unreachable; the constraint is the second check.
		return problem.New(problem.KindConflict, CodeAlreadyPaid, "this checkout is already paid")
	}
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) || string(pqErr.Code) != refusedSQLState {
		return fmt.Errorf("write the purchase: %w", err)
	}
	var facts struct {
		ItemID          string  `json:"item_id"`
		Bought          int     `json:"bought"`
		Outcome         string  `json:"outcome"`
		TransactionID   *int64  `json:"transaction_id"`
		AccountCode     *string `json:"account_code"`
		AccountCurrency *string `json:"account_currency"`
		Balance         *int64  `json:"balance"`
	}
	if jsonErr := json.Unmarshal([]byte(pqErr.Detail), &facts); jsonErr != nil {
		return fmt.Errorf("write the purchase: %w (detail: %v)", err, jsonErr)
	}
	switch pqErr.Message {
	case "sold_out", "limit_reached":
		for _, l := range w.sale.lines {
			if l.ItemID != facts.ItemID {
				continue
			}
			if pqErr.Message == "sold_out" {
				return soldOut(l.item.Title)
			}
			return limitReached(l.item, facts.Bought)
		}
	case "ledger":
		if w.post != nil {
			_, refusal := w.post.Result(ledger.PostOutcome{Outcome: facts.Outcome,
				TransactionID: nullInt64(facts.TransactionID), AccountCode: nullString(facts.AccountCode),
				AccountCurrency: nullString(facts.AccountCurrency), Balance: nullInt64(facts.Balance)})
			return refusal
		}
	}
	return fmt.Errorf("write the purchase: %w", err)
}

func nullInt64(v *int64) sql.NullInt64 {
	if v == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: *v, Valid: true}
}

func nullString(v *string) sql.NullString {
	if v == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *v, Valid: true}
}
