package catalog

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
)

// Every change of what a purchase reads about an item raises its merchant's
// catalog version (migration 00125) — through the service and in plain SQL
// alike — and selling does not.
func TestCatalogVersionRisesWithEveryChange(t *testing.T) {
	ctx := context.Background()
	s, db, m := newTeaHouse(t)
	cny := money.MustCurrency("CNY")
	stock := int64(10)
	tea, err := s.CreateItem(ctx, m.ID, ItemDraft{SKU: "TEA", Title: "Tea card", Category: "tea", Price: money.New(300, cny),
		Kind: KindVoucher, Stock: &stock, Active: true, Rules: &Rules{Kind: CouponVoucher, ValidFor: Duration{Months: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	cake, err := s.CreateItem(ctx, m.ID, ItemDraft{SKU: "CAKE", Title: "Cake", Category: "food", Price: money.New(900, cny),
		Kind: KindProduct, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	version := func() int64 {
		t.Helper()
		_, merchant, err := s.ItemForSale(ctx, nil, tea.ID)
		if err != nil {
			t.Fatal(err)
		}
		return merchant.CatalogVersion
	}
	last := version()
	rises := func(what string, change func() error) {
		t.Helper()
		if err := change(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if v := version(); v <= last {
			t.Errorf("%s: catalog version %d, was %d; want it raised", what, v, last)
		} else {
			last = v
		}
	}
	rises("price", func() error {
		_, err := s.UpdateItem(ctx, m.ID, tea.ID, func(d *ItemDraft) error { d.Price = money.New(350, cny); return nil })
		return err
	})
	rises("rules", func() error {
		_, err := s.UpdateItem(ctx, m.ID, tea.ID, func(d *ItemDraft) error { d.Rules.ValidFor = Duration{Months: 6}; return nil })
		return err
	})
	rises("template in SQL", func() error {
		_, err := db.Exec(`UPDATE coupon_templates SET rules = rules WHERE merchant_id = $1`, m.ID)
		return err
	})
	rises("another item", func() error {
		_, err := s.UpdateItem(ctx, m.ID, cake.ID, func(d *ItemDraft) error { d.Active = false; return nil })
		return err
	})
	rises("item in SQL", func() error {
		_, err := db.Exec(`UPDATE items SET per_shopper_limit = 2 WHERE id = $1`, tea.ID)
		return err
	})
	rises("merchant status", func() error {
		_, err := s.SetMerchantStatus(ctx, m.ID, MerchantSuspended)
		return err
	})
	rises("item deleted in SQL", func() error {
		_, err := db.Exec(`DELETE FROM items WHERE id = $1`, cake.ID)
		return err
	})

	if err := s.TakeStock(ctx, db, tea.ID, 1); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != last {
		t.Errorf("a sale moved the catalog version from %d to %d", last, v)
	}
}

// The cache answers what it read until its entry is forgotten; unknown
// items are not kept.
func TestCachedItemForSale(t *testing.T) {
	ctx := context.Background()
	s, db, m := newTeaHouse(t)
	cny := money.MustCurrency("CNY")
	tea, err := s.CreateItem(ctx, m.ID, ItemDraft{SKU: "TEA", Title: "Tea card", Category: "tea", Price: money.New(300, cny),
		Kind: KindProduct, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	cached, first, err := s.CachedItemForSale(ctx, db, tea.ID)
	if err != nil || cached.Price.Minor != 300 {
		t.Fatalf("first read: %v, %v", cached.Price, err)
	}
	if _, err := s.UpdateItem(ctx, m.ID, tea.ID, func(d *ItemDraft) error { d.Price = money.New(500, cny); return nil }); err != nil {
		t.Fatal(err)
	}
	cached, again, err := s.CachedItemForSale(ctx, db, tea.ID)
	if err != nil || cached.Price.Minor != 300 || again.CatalogVersion != first.CatalogVersion {
		t.Fatalf("cached read: %v version %d (was %d), %v; want the entry as read", cached.Price, again.CatalogVersion, first.CatalogVersion, err)
	}
	s.ForgetItemForSale(tea.ID)
	fresh, now, err := s.CachedItemForSale(ctx, db, tea.ID)
	if err != nil || fresh.Price.Minor != 500 || now.CatalogVersion <= first.CatalogVersion {
		t.Fatalf("after forgetting: %v version %d, %v; want 500 at a newer version", fresh.Price, now.CatalogVersion, err)
	}

	if _, _, err := s.CachedItemForSale(ctx, db, "itm_none"); !isNotFound(err) {
		t.Fatalf("unknown item: %v, want not found", err)
	}
	if _, kept := s.saleItems.Get("itm_none"); kept {
		t.Fatal("an unknown item was cached")
	}
}

// newTeaHouse is a catalog service on a fresh database with one merchant.
func newTeaHouse(t *testing.T) (*Service, *sqlx.DB, Merchant) {
	t.Helper()
	db := testdb.New(t)
	s := NewService(db, fakeclock.New(time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)).Now)
	m, err := s.CreateMerchant(context.Background(), MerchantDraft{Name: "Tea house", TimeZone: "Asia/Shanghai", DefaultCurrency: "CNY"})
	if err != nil {
		t.Fatal(err)
	}
	return s, db, m
}

func isNotFound(err error) bool {
	p, ok := problem.As(err)
	return ok && p.Kind == problem.KindNotFound
}
