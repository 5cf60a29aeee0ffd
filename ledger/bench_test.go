package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/testdb"
)

// benchPostersPerCPU makes RunParallel start 32 posters on a 2-core machine
// (and proportionally more elsewhere): GOMAXPROCS × this many goroutines.
const benchPostersPerCPU = 16

// benchMerchantCount is how many merchants the spread shape credits.
const benchMerchantCount = 1000

// BenchmarkPost compares sales credited to one hot merchant account with
// sales spread over benchMerchantCount merchants, with the bucketed balance
// rows (BucketsDefault) and with the naive one row per account. Each sale is
// its own database transaction: D the poster's provider clearing account,
// C merchant deferred. See docs/ledger.md for the figures.
//
//	go test -run '^$' -bench BenchmarkPost -benchtime 20000x ./ledger/
func BenchmarkPost(b *testing.B) {
	for _, shape := range []struct {
		name    string
		hot     bool
		buckets int
	}{
		{"spread", false, BucketsDefault},
		{"hot", true, BucketsDefault},
		{"spread-naive", false, 1},
		{"hot-naive", true, 1},
	} {
		b.Run(shape.name, func(b *testing.B) {
			ctx := context.Background()
			l, db := New(fixedClock()), testdb.New(b)
			l.buckets = shape.buckets
			for i := range benchMerchantCount {
				if _, err := l.EnsureAccount(ctx, db, MerchantDeferred(fmt.Sprintf("m%d", i)), cny); err != nil {
					b.Fatal(err)
				}
			}
			var posters, keys atomic.Int64
			b.SetParallelism(benchPostersPerCPU)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				poster := posters.Add(1)
				provider := ProviderClearing(fmt.Sprintf("p%d", poster))
				rng := rand.New(rand.NewPCG(uint64(poster), 1))
				for pb.Next() {
					merchant := "m0"
					if !shape.hot {
						merchant = fmt.Sprintf("m%d", rng.IntN(benchMerchantCount))
					}
					tr := Transaction{Key: fmt.Sprintf("k%d", keys.Add(1)), Description: "sale", Postings: []Posting{
						Debit(provider, cny, 300), Credit(MerchantDeferred(merchant), cny, 300),
					}}
					err := database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
						_, err := l.Post(ctx, tx, tr)
						return err
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			report, err := Audit(ctx, db)
			if err != nil || !report.OK() {
				b.Fatalf("audit after benchmark: %v %v", err, report.Err())
			}
		})
	}
}
