package instancemode

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestClaimRecordsOnceAndRefusesTheOtherMode(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	if mode, err := Read(ctx, db); err != nil || mode != Live {
		t.Fatalf("fresh database reads %q %v, want live", mode, err)
	}
	for range 2 {
		if err := Claim(ctx, db, Sandbox, time.Now()); err != nil {
			t.Fatalf("claim sandbox: %v", err)
		}
	}
	if err := Claim(ctx, db, Live, time.Now()); !errors.Is(err, ErrMismatch) {
		t.Fatalf("live on a sandbox database: %v, want ErrMismatch", err)
	}
	if mode, err := Read(ctx, db); err != nil || mode != Sandbox {
		t.Fatalf("reads %q %v after the claims, want sandbox", mode, err)
	}
}

// A database a live command wrote to before any serve recorded a mode is
// live: a sandbox may not adopt it.
func TestDatabaseWithMerchantsIsLive(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	if _, err := catalog.NewService(db, time.Now).CreateMerchant(ctx, catalog.MerchantDraft{
		Name: "Tea house", TimeZone: "Asia/Shanghai", DefaultCurrency: "CNY"}); err != nil {
		t.Fatal(err)
	}
	if err := Claim(ctx, db, Sandbox, time.Now()); !errors.Is(err, ErrMismatch) {
		t.Fatalf("sandbox on a database with merchants: %v, want ErrMismatch", err)
	}
}

// Instances of both modes starting at once on an empty database: one mode
// wins, every claim of it succeeds and every claim of the other fails.
func TestConcurrentClaimsAgreeOnOneMode(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	const starters = 16
	errs := make([]error, starters)
	var wg sync.WaitGroup
	for i := range starters {
		wg.Go(func() { errs[i] = Claim(ctx, db, Of(i%2 == 0), time.Now()) })
	}
	wg.Wait()
	won, err := Read(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if (Of(i%2 == 0) == won) != (err == nil) {
			t.Fatalf("starter %d (%s) got %v; the database is %s", i, Of(i%2 == 0), err, won)
		}
	}
}
