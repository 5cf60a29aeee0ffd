package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/problem"
)

const (
	transferWorkers      = 64
	transferWalletCount  = 20
	transferDuration     = 10 * time.Second
	transferOpsPerWorker = 100_000 // a bound in count as well as in time
	walletStartMinor     = 1_000
)

// TestConcurrentTransfers moves money between no_negative wallets from 64
// goroutines: the total is conserved, no wallet is ever negative, and no
// deadlock or serialization failure survives WithTx's bounded retries.
func TestConcurrentTransfers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	wallets := make([]AccountRef, transferWalletCount)
	for i := range wallets {
		wallets[i] = ShopperWallet(fmt.Sprintf("s%d", i))
		mustPost(t, l, db, topUp(fmt.Sprintf("fund%d", i), wallets[i].Owner, walletStartMinor))
	}
	deadline := time.Now().Add(transferDuration)
	var moved, refused atomic.Int64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() { // watch the wallets while money moves
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var lowest int64
			if err := db.GetContext(ctx, &lowest, `SELECT coalesce(min(balance), 0) FROM ledger_balances WHERE no_negative`); err != nil {
				t.Error(err)
				return
			}
			if lowest < 0 {
				t.Errorf("a wallet is at %d", lowest)
			}
		}
	})
	var wg sync.WaitGroup
	for w := range transferWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < transferOpsPerWorker && time.Now().Before(deadline); i++ {
				from, to := rng.IntN(transferWalletCount), rng.IntN(transferWalletCount-1)
				if to >= from {
					to++
				}
				tr := Transaction{Key: fmt.Sprintf("w%d-%d", w, i), Postings: []Posting{
					Debit(wallets[from], cny, 1+rng.Int64N(300)), Credit(wallets[to], cny, 0),
				}}
				tr.Postings[1].Amount = -tr.Postings[0].Amount
				// Two postings on two wallets each way round: the fixed lock
				// order is what keeps this free of deadlocks.
				if rng.IntN(2) == 0 {
					tr.Postings[0], tr.Postings[1] = tr.Postings[1], tr.Postings[0]
				}
				err := database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
					_, err := l.Post(ctx, tx, tr)
					return err
				})
				if p, ok := problem.As(err); ok && p.Code == CodeInsufficientFunds {
					refused.Add(1)
					continue
				}
				if err != nil {
					t.Errorf("transfer: %v", err)
					return
				}
				moved.Add(1)
			}
		})
	}
	wg.Wait()
	close(stopSampling)
	sampler.Wait()
	t.Logf("%d transfers, %d refused for insufficient funds", moved.Load(), refused.Load())
	if moved.Load() == 0 || refused.Load() == 0 {
		t.Errorf("the test did not exercise both outcomes")
	}
	var total int64
	for _, w := range wallets {
		total += balance(t, l, db, w)
	}
	if want := int64(transferWalletCount * walletStartMinor); total != want {
		t.Errorf("wallets hold %d in total, want %d", total, want)
	}
	auditClean(t, db)
}

// TestConcurrentSameKey posts one key from 64 goroutines at once: exactly
// one transaction exists and every caller gets it.
func TestConcurrentSameKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	mustPost(t, l, db, topUp("fund", "s1", 1000))
	const callers = 64
	results := make([]Posted, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			errs[i] = database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
				var err error
				results[i], err = l.Post(ctx, tx, sale("same-key", "s1", "m1", 300))
				return err
			})
		})
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if results[i].ID != results[0].ID || len(results[i].Postings) != 2 {
			t.Fatalf("caller %d got %+v, caller 0 got %+v", i, results[i], results[0])
		}
		if !results[i].Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d callers saw a fresh post, want 1", fresh)
	}
	var count int
	if err := db.GetContext(ctx, &count, `SELECT count(*) FROM ledger_transactions WHERE idempotency_key = 'same-key'`); err != nil || count != 1 {
		t.Fatalf("%d transactions with the key, %v", count, err)
	}
	if got := balance(t, l, db, ShopperWallet("s1")); got != 700 {
		t.Errorf("wallet = %d, want 700 (debited once)", got)
	}
	auditClean(t, db)
}

// TestConcurrentAccountCreation creates one new account from many posts at once.
func TestConcurrentAccountCreation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := newLedger(t)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			err := database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
				_, err := l.Post(ctx, tx, Transaction{Key: fmt.Sprintf("k%d", i), Postings: []Posting{
					Debit(ProviderClearing("new"), cny, 5), Credit(MerchantAvailable("new"), cny, 5)}})
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := balance(t, l, db, MerchantAvailable("new")); got != 32*5 {
		t.Errorf("balance = %d", got)
	}
	auditClean(t, db)
}
