package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
)

// Seeding sizes. Shoppers are the clients' own (a wallet is one locked row,
// and a real shopper does not buy from 32 phones at once).
const (
	shoppersPerClient = 8
	// walletMinor funds every shopper for far more purchases than a run makes.
	walletMinor = 1_000_000_000
	// spreadStock and hotStock are "ample": no run sells them out.
	spreadStock = 1_000_000
	hotStock    = 100_000_000
	// seedWorkers bounds the concurrent seeding requests.
	seedWorkers = 16
	// fundBatch is how many wallets one funding transaction tops up.
	fundBatch   = 200
	priceAmount = "3.00"
	priceMinor  = 300
)

// world is what the scenarios buy from and with.
type world struct {
	channel   Account
	merchants []Account
	items     []string   // spread items, one per merchant
	shoppers  [][]string // per client
	hot       Account    // the hot merchant
	hotItem   string
}

// apiResult is one HTTP answer.
type apiResult struct {
	Status int
	Body   []byte
}

// code is the problem code of an error answer, or "".
func (r apiResult) code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.Body, &p)
	return p.Code
}

// call sends one JSON request to the server under test.
func (e *env) call(ctx context.Context, method, path, bearer, idempotencyKey string, body any) (apiResult, error) {
	var reader io.Reader = http.NoBody
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return apiResult{}, err
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.baseURL+path, reader)
	if err != nil {
		return apiResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return apiResult{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return apiResult{}, err
	}
	return apiResult{Status: resp.StatusCode, Body: raw}, nil
}

// created decodes the id of a 200/201 answer or says what went wrong.
func created(what string, r apiResult, err error) (string, error) {
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		return "", fmt.Errorf("%s: HTTP %d: %s", what, r.Status, r.Body)
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil || v.ID == "" {
		return "", fmt.Errorf("%s: no id in %s", what, r.Body)
	}
	return v.ID, nil
}

// voucherItem is the tea card of DESIGN.md as the merchant API takes it.
func voucherItem(sku string, stock int64, perShopperLimit int) map[string]any {
	item := map[string]any{
		"sku": sku, "title": "Tea card", "description": "A pot of tea with a snack",
		"category": "tea", "price": map[string]string{"amount": priceAmount, "currency": Currency},
		"kind": "voucher", "stock": stock,
		"rules": map[string]any{
			"kind":               "voucher",
			"valid_for":          "P3M",
			"windows":            []map[string]any{{"from": "14:00", "to": "17:00"}},
			"exclude_categories": []string{"coffee"},
		},
	}
	if perShopperLimit > 0 {
		item["per_shopper_limit"] = perShopperLimit
	}
	return item
}

// parallel runs fn(0..n-1) on at most workers goroutines and returns the
// first error.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// createItem publishes an item through the merchant API.
func (e *env) createItem(ctx context.Context, merchant Account, item map[string]any) (string, error) {
	r, err := e.call(ctx, http.MethodPost, "/v1/items", merchant.Key, "", item)
	return created("create item", r, err)
}

// createShoppers registers n shoppers of the channel through the channel
// API and funds their wallets.
func (e *env) createShoppers(ctx context.Context, channel Account, prefix string, n int) ([]string, error) {
	shoppers := make([]string, n)
	err := parallel(ctx, n, seedWorkers, func(i int) error {
		user := prefix + "-" + strconv.Itoa(i)
		r, err := e.call(ctx, http.MethodPost, "/v1/channel/shoppers", channel.Key, "",
			map[string]string{"user_id": user, "name": "Shopper " + user})
		shoppers[i], err = created("create shopper", r, err)
		return err
	})
	if err != nil {
		return nil, err
	}
	batches := (n + fundBatch - 1) / fundBatch
	err = parallel(ctx, batches, 4, func(b int) error {
		return e.app.Fund(ctx, shoppers[b*fundBatch:min(n, (b+1)*fundBatch)], walletMinor)
	})
	return shoppers, err
}

// seedWorld creates the spread merchants and items, the hot merchant and
// item, the channel and the clients' shoppers.
func (e *env) seedWorld(ctx context.Context) (*world, error) {
	o := e.opts
	w := &world{merchants: make([]Account, o.Merchants), items: make([]string, o.Merchants)}
	progress(o, "seeding %d merchants with one tea card each, a hot merchant, %d shoppers", o.Merchants, o.Clients*shoppersPerClient)
	var err error
	if w.channel, err = e.app.CreateChannel(ctx, "bench "+e.runID); err != nil {
		return nil, err
	}
	err = parallel(ctx, o.Merchants, seedWorkers, func(i int) error {
		m, err := e.app.CreateMerchant(ctx, fmt.Sprintf("Bench merchant %d %s", i, e.runID))
		if err != nil {
			return err
		}
		w.merchants[i] = m
		w.items[i], err = e.createItem(ctx, m, voucherItem("TEA-"+strconv.Itoa(i), spreadStock, 0))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("seed merchants: %w", err)
	}
	if w.hot, err = e.app.CreateMerchant(ctx, "Bench hot merchant "+e.runID); err != nil {
		return nil, err
	}
	if w.hotItem, err = e.createItem(ctx, w.hot, voucherItem("TEA-HOT", hotStock, 0)); err != nil {
		return nil, err
	}
	ids := []string{w.hot.ID}
	for _, m := range w.merchants {
		ids = append(ids, m.ID)
	}
	if err := e.app.PrepareMerchants(ctx, ids); err != nil {
		return nil, fmt.Errorf("prepare merchant accounts: %w", err)
	}
	all, err := e.createShoppers(ctx, w.channel, "bench-"+e.runID, o.Clients*shoppersPerClient)
	if err != nil {
		return nil, fmt.Errorf("seed shoppers: %w", err)
	}
	w.shoppers = make([][]string, o.Clients)
	for c := range o.Clients {
		w.shoppers[c] = all[c*shoppersPerClient : (c+1)*shoppersPerClient]
	}
	return w, nil
}
