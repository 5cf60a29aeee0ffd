package payments

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/qr"
)

// saleWorld is a merchant's tea card (stock 5, limit 2 per shopper) and a
// shopper with 10.00 CNY, on a fresh database.
type saleWorld struct {
	s       *Service
	db      *sqlx.DB
	item    catalog.Item
	shopper Shopper
}

func newSaleWorld(t *testing.T) saleWorld {
	t.Helper()
	ctx := context.Background()
	clock := fakeclock.New(time.Date(2026, 12, 2, 6, 30, 0, 0, time.UTC))
	db := testdb.New(t)
	q, err := qr.NewService(db, clock.Now, "http://127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog.NewService(db, clock.Now)
	s := NewService(db, clock.Now, ledger.New(clock.Now), cat, q, Config{})
	m, err := cat.CreateMerchant(ctx, catalog.MerchantDraft{Name: "Tea house", TimeZone: "Asia/Shanghai", DefaultCurrency: "CNY"})
	if err != nil {
		t.Fatal(err)
	}
	stock, limit := int64(5), 2
	item, err := cat.CreateItem(ctx, m.ID, catalog.ItemDraft{
		SKU: "TEA", Title: "Tea card", Category: "tea", Price: money.New(300, money.MustCurrency("CNY")),
		Kind: catalog.KindVoucher, Stock: &stock, PerShopperLimit: &limit, Active: true,
		Rules: &catalog.Rules{Kind: catalog.CouponVoucher, ValidFor: catalog.Duration{Months: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.CreateChannel(ctx, NewChannel{Name: "Tea bot", Kind: "telegram"})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := s.EnsureShopper(ctx, db, ch.Channel.ID, "42", "Li Wei")
	if err != nil {
		t.Fatal(err)
	}
	err = database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
		return s.FundWallets(ctx, tx, Funding{ShopperID: sh.ID, Amount: money.New(1000, money.MustCurrency("CNY")),
			Source: "demo", Key: "start", Description: "start"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return saleWorld{s: s, db: db, item: item, shopper: sh}
}

func (w saleWorld) buy(t *testing.T, quantity int) (Receipt, error) {
	t.Helper()
	var r Receipt
	err := database.WithTx(context.Background(), w.db, nil, func(tx *sqlx.Tx) error {
		var err error
		r, err = w.s.Buy(context.Background(), tx, Purchase{Shopper: w.shopper, ItemID: w.item.ID, Quantity: quantity})
		return err
	})
	return r, err
}

// counts is what a purchase writes, as rows: orders, coupons, credentials,
// events, the shopper's count, stock left and the wallet.
func (w saleWorld) counts(t *testing.T) [7]int64 {
	t.Helper()
	var c [7]int64
	for i, q := range []string{
		`SELECT count(*) FROM orders`, `SELECT count(*) FROM coupons`, `SELECT count(*) FROM coupon_credentials`,
		`SELECT count(*) FROM webhook_events`, `SELECT COALESCE(sum(quantity), 0) FROM shopper_item_purchases`,
		`SELECT COALESCE(sum(quantity), 0) FROM item_stock`,
		`SELECT COALESCE(sum(b.balance), 0) FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id WHERE a.code LIKE 'shopper:%'`,
	} {
		if err := w.db.Get(&c[i], q); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// purchase_pay writes every row of a purchase in one call, and a refusal
// it raises after it wrote some (the limit, after the stock; the funds,
// after stock and limit) leaves none of them: the database aborts the
// transaction.
func TestPurchasePayWritesAllOrNothing(t *testing.T) {
	w := newSaleWorld(t)
	before := w.counts(t)
	r, err := w.buy(t, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Coupons) != 2 || r.Wallet.Minor != 400 || r.Remaining[w.item.ID] != 0 || !r.Order.LedgerTransactionID.Valid {
		t.Fatalf("receipt: %d coupons, wallet %d, remaining %v, ledger %v", len(r.Coupons), r.Wallet.Minor, r.Remaining, r.Order.LedgerTransactionID)
	}
	after := w.counts(t)
	if want := [7]int64{before[0] + 1, before[1] + 2, before[2] + 2, before[3] + 3, before[4] + 2, before[5] - 2, before[6] - 600}; after != want {
		t.Fatalf("rows after a purchase of two: %v, want %v", after, want)
	}

	// The limit (2) is reached: stock is taken first, then the count refuses.
	_, err = w.buy(t, 1)
	if p, ok := problem.As(err); !ok || p.Code != CodeLimitReached {
		t.Fatalf("third unit: %v, want %s", err, CodeLimitReached)
	}
	if got := w.counts(t); got != after {
		t.Fatalf("rows after a refused purchase: %v, want %v", got, after)
	}

	// Another shopper without money: stock and count are written, the post refuses.
	poor, err := w.s.EnsureShopper(context.Background(), w.db, w.shopper.ChannelID, "43", "Wang Fang")
	if err != nil {
		t.Fatal(err)
	}
	w.shopper = poor
	_, err = w.buy(t, 1)
	if p, ok := problem.As(err); !ok || p.Code != ledger.CodeInsufficientFunds {
		t.Fatalf("poor shopper: %v, want %s", err, ledger.CodeInsufficientFunds)
	}
	if got := w.counts(t); got != after {
		t.Fatalf("rows after a refusal for funds: %v, want %v", got, after)
	}
}

// A new coupon code that is taken already (60 random bits: it does not
// happen, so the test takes one on purpose) aborts the call with a
// serialization failure, which database.WithTx answers by running the whole
// transaction again with new codes.
func TestCouponCodeTakenIsRetried(t *testing.T) {
	w := newSaleWorld(t)
	first, err := w.buy(t, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := w.counts(t)
	err = database.WithTx(ctx, w.db, nil, func(tx *sqlx.Tx) error {
		lines, merchant, err := w.s.priceLines(ctx, tx, []LineRequest{{ItemID: w.item.ID, Quantity: 1}}, w.s.catalog.ItemForSale)
		if err != nil {
			return err
		}
		order := Order{ID: "ord_taken", MerchantID: merchant.ID, ShopperID: w.shopper.ID, ChatID: "42", Currency: "CNY",
			TotalMinor: 300, Status: OrderPaid, CreatedAt: first.Order.CreatedAt}
		sl := sale{order: order, lines: lines, merchant: merchant, shopper: w.shopper, takeStock: true,
			ledgerKey: "order:ord_taken:pay", ledgerDescription: "sale ord_taken"}
		coupons, err := newCoupons(order, lines, merchant)
		if err != nil {
			return err
		}
		coupons[0].Code = first.Coupons[0].Code
		post, err := w.s.ledger.PreparePost(saleTransaction(sl, money.MustCurrency("CNY"), w.s.fee))
		if err != nil {
			return err
		}
		events, err := w.s.outbox.Batch(w.s.paidEvents(order, coupons, w.shopper, money.MustCurrency("CNY"))...)
		if err != nil {
			return err
		}
		_, err = w.s.writeSale(ctx, tx, saleWrite{sale: sl, order: order, coupons: coupons, post: &post, events: events})
		if !database.IsRetryable(err) {
			t.Errorf("a taken code: %v, want a retryable error", err)
		}
		return nil
	})
	if err == nil {
		t.Fatal("the transaction committed after the call was aborted")
	}
	if got := w.counts(t); got != before {
		t.Fatalf("rows after the aborted call: %v, want %v", got, before)
	}
	// A purchase after it, with codes of its own, goes through.
	if _, err := w.buy(t, 1); err != nil {
		t.Fatal(err)
	}
}

// A purchase priced from a stale cache entry of the item never pays at the
// old terms: purchase_pay refuses it (the merchant's catalog version moved)
// and WithTx runs it again from a fresh read; a refusal decided on a cached
// entry is decided again on the catalog's current word. Another instance,
// with a cache of its own, sees the changes too.
func TestStaleCachedItemIsRepriced(t *testing.T) {
	w := newSaleWorld(t)
	ctx := context.Background()
	cat := w.s.catalog
	cny := money.MustCurrency("CNY")
	other := NewService(w.db, w.s.now, ledger.New(w.s.now), catalog.NewService(w.db, w.s.now), w.s.qr, Config{})
	buyFrom := func(s *Service, sh Shopper) (Receipt, error) {
		t.Helper()
		var r Receipt
		err := database.WithTx(ctx, w.db, nil, func(tx *sqlx.Tx) error {
			var err error
			r, err = s.Buy(ctx, tx, Purchase{Shopper: sh, ItemID: w.item.ID})
			return err
		})
		return r, err
	}
	edit := func(change func(d *catalog.ItemDraft)) {
		t.Helper()
		if _, err := cat.UpdateItem(ctx, w.item.MerchantID, w.item.ID, func(d *catalog.ItemDraft) error { change(d); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	holdsStalePrice := func(s *Service, minor int64) {
		t.Helper()
		if stale, _, err := s.catalog.CachedItemForSale(ctx, w.db, w.item.ID); err != nil || stale.Price.Minor != minor {
			t.Fatalf("the cache should still hold the old price %d: %v, %v", minor, stale.Price, err)
		}
	}
	if _, err := buyFrom(other, w.shopper); err != nil { // other's cache: 3.00, limit 2
		t.Fatal(err)
	}

	// The price moves behind the cache, nothing that refuses does: the
	// write refuses the stale sale and the retry pays the new price.
	edit(func(d *catalog.ItemDraft) { d.Price = money.New(200, cny) })
	holdsStalePrice(other, 300)
	r, err := buyFrom(other, w.shopper)
	if err != nil || r.Order.TotalMinor != 200 || r.Wallet.Minor != 1000-300-200 {
		t.Fatalf("second unit after a price change: total %d, wallet %d, %v; want 200 and %d", r.Order.TotalMinor, r.Wallet.Minor, err, 1000-300-200)
	}

	// The limit (2, reached) is raised behind the first instance's cache,
	// which refuses; the fresh read lets the third unit through.
	if _, err := buyFrom(w.s, w.shopper); !isCode(err, CodeLimitReached) { // fills w.s's cache at 2.00, limit 2
		t.Fatalf("third unit at the limit: %v, want %s", err, CodeLimitReached)
	}
	holdsStalePrice(w.s, 200)
	edit(func(d *catalog.ItemDraft) { d.PerShopperLimit = new(3) })
	if r, err := buyFrom(w.s, w.shopper); err != nil || r.Order.TotalMinor != 200 {
		t.Fatalf("third unit after the limit was raised: %v, total %d", err, r.Order.TotalMinor)
	}

	// Withdrawn from sale behind other's cache, which says active: a new
	// shopper's purchase is refused by the write, and the retry's fresh
	// read answers item_unavailable; nothing is written.
	edit(func(d *catalog.ItemDraft) { d.Active = false })
	holdsStalePrice(other, 200)
	newcomer, err := w.s.EnsureShopper(ctx, w.db, w.shopper.ChannelID, "44", "Zhang Min")
	if err != nil {
		t.Fatal(err)
	}
	before := w.counts(t)
	if _, err := buyFrom(other, newcomer); !isCode(err, CodeItemUnavailable) {
		t.Fatalf("withdrawn item: %v, want %s", err, CodeItemUnavailable)
	}
	if got := w.counts(t); got != before {
		t.Fatalf("rows after a refusal: %v, want %v", got, before)
	}
}

func isCode(err error, code string) bool {
	p, ok := problem.As(err)
	return ok && p.Code == code
}
