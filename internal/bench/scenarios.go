package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// key is a purchase's idempotency key, unique per run.
func (e *env) key(scenario string, client, n int) string {
	return "bench-" + e.runID + "-" + scenario + "-" + strconv.Itoa(client) + "-" + strconv.Itoa(n)
}

// scenarioSpread buys random items of the spread merchants: no two
// purchases share a hot row unless chance says so.
func (e *env) scenarioSpread(ctx context.Context, w *world) (*Result, error) {
	rngs := clientRands(e.opts.Clients, 1)
	l := e.drive(ctx, ScenarioSpread, e.opts.PurchasesMax, func(ctx context.Context, c, n int) outcome {
		item := w.items[rngs[c].IntN(len(w.items))]
		return e.purchase(ctx, w.channel, w.shoppers[c][n%shoppersPerClient], item, e.key(ScenarioSpread, c, n))
	}, nil)
	return l.result(ScenarioSpread), nil
}

// scenarioOneCall is spread through the one-call purchase
// (POST /v1/channel/purchases): one request, one transaction, no checkout.
func (e *env) scenarioOneCall(ctx context.Context, w *world) (*Result, error) {
	rngs := clientRands(e.opts.Clients, 3)
	l := e.drive(ctx, ScenarioOneCall, e.opts.PurchasesMax, func(ctx context.Context, c, n int) outcome {
		item := w.items[rngs[c].IntN(len(w.items))]
		return e.purchaseOneCall(ctx, w.channel, w.shoppers[c][n%shoppersPerClient], item, e.key(ScenarioOneCall, c, n))
	}, nil)
	return l.result(ScenarioOneCall), nil
}

// scenarioHot buys the hot merchant's one item with every client.
func (e *env) scenarioHot(ctx context.Context, w *world) (*Result, error) {
	l := e.drive(ctx, ScenarioHot, e.opts.PurchasesMax, func(ctx context.Context, c, n int) outcome {
		return e.purchase(ctx, w.channel, w.shoppers[c][n%shoppersPerClient], w.hotItem, e.key(ScenarioHot, c, n))
	}, nil)
	return l.result(ScenarioHot), nil
}

// scenarioFlash sells one item with limited stock to twice as many buyers
// as there are units, each allowed one: it must sell exactly the stock.
// The stock is sized from the spread throughput so that it sells out in
// about half the scenario's duration.
func (e *env) scenarioFlash(ctx context.Context, w *world, spreadPerSecond float64) (*Result, error) {
	stock := flashStockMin * 10
	if spreadPerSecond > 0 {
		stock = int(spreadPerSecond * e.opts.Duration.Seconds() / 2)
	}
	stock = min(max(stock, flashStockMin), flashStockMax, e.opts.PurchasesMax)
	buyers := 2 * stock
	progress(e.opts, "flash: seeding %d buyers for %d units", buyers, stock)
	merchant, err := e.app.CreateMerchant(ctx, "Bench flash merchant "+e.runID)
	if err != nil {
		return nil, err
	}
	if err := e.app.PrepareMerchants(ctx, []string{merchant.ID}); err != nil {
		return nil, err
	}
	item, err := e.createItem(ctx, merchant, voucherItem("TEA-FLASH", int64(stock), 1))
	if err != nil {
		return nil, err
	}
	shoppers, err := e.createShoppers(ctx, w.channel, "flash-"+e.runID, buyers)
	if err != nil {
		return nil, err
	}
	// Buyers are dealt out in order: purchase n is buyer n's only attempt.
	l := e.drive(ctx, ScenarioFlash, buyers, func(ctx context.Context, c, n int) outcome {
		return e.purchase(ctx, w.channel, shoppers[n], item, e.key(ScenarioFlash, c, n))
	}, func(o outcome) bool { return o.code == "sold_out" })
	res := l.result(ScenarioFlash)
	res.Flash = &FlashResult{Stock: stock, Buyers: buyers}
	sold, left, err := e.app.ItemSales(ctx, merchant.ID, item)
	if err != nil {
		return res, err
	}
	res.Flash.Sold, res.Flash.Left = sold, left
	res.Flash.Oversold = max(0, sold-stock)
	res.Flash.SoldOut = left == 0
	if res.lastPaidSeconds > 0 {
		res.Flash.SoldOutSeconds = round(res.lastPaidSeconds, 2)
		res.Flash.ThroughputUntilSoldOut = round(float64(res.Purchases)/res.lastPaidSeconds, 1)
	}
	return res, nil
}

// runDirect runs the checkout's SQL without HTTP: the same idempotency
// claims, CreateCheckout and Confirm, from as many goroutines as clients.
func (e *env) runDirect(ctx context.Context, w *world) (*Result, error) {
	progress(e.opts, "direct: the checkout's transactions without HTTP, %d goroutines, %s", e.opts.Clients, e.opts.Duration)
	rngs := clientRands(e.opts.Clients, 2)
	l := e.drive(ctx, "direct", e.opts.PurchasesMax, func(ctx context.Context, c, n int) outcome {
		item := w.items[rngs[c].IntN(len(w.items))]
		code, err := e.app.Purchase(ctx, w.channel.ID, w.shoppers[c][n%shoppersPerClient], item, e.key("direct", c, n))
		switch {
		case err != nil && ctx.Err() != nil:
			return outcome{code: "transport"}
		case err != nil:
			e.opts.Logger.Error("direct purchase", "error", err)
			return outcome{status: http.StatusInternalServerError, code: "error"}
		case code != "":
			return outcome{status: http.StatusConflict, code: code}
		}
		return outcome{status: http.StatusOK}
	}, nil)
	res := l.result("direct")
	return res, e.audit(ctx, res)
}

// redeemCouponsPerClient is how many coupons each client gets to redeem.
const redeemCouponsPerClient = 40

// scenarioRedeem is the till: coupons bought through the channel API are
// redeemed by typed code through POST /v1/redemptions, each once, until
// they run out or the time is up. It is skipped when the route is absent.
func (e *env) scenarioRedeem(ctx context.Context, w *world) (*Result, error) {
	merchant, err := e.app.CreateMerchant(ctx, "Bench till "+e.runID)
	if err != nil {
		return nil, err
	}
	r, err := e.call(ctx, http.MethodPost, "/v1/redemptions", merchant.Key, "", map[string]any{})
	if err != nil {
		return nil, err
	}
	if r.Status == http.StatusNotFound && r.code() == "route_not_found" {
		return &Result{Name: ScenarioRedeem, Skipped: "not available: POST /v1/redemptions is not in this build"}, nil
	}
	if err := e.app.AllowTypedCodes(ctx, merchant.ID); err != nil {
		return nil, err
	}
	if err := e.app.PrepareMerchants(ctx, []string{merchant.ID}); err != nil {
		return nil, err
	}
	// No time window: the till redeems now, whatever the local time.
	item := voucherItem("TEA-TILL", spreadStock, 0)
	item["rules"] = map[string]any{"kind": "voucher", "valid_for": "P3M"}
	itemID, err := e.createItem(ctx, merchant, item)
	if err != nil {
		return nil, err
	}
	total := min(e.opts.Clients*redeemCouponsPerClient, e.opts.PurchasesMax)
	progress(e.opts, "redeem: buying %d coupons to redeem", total)
	codes := make([]string, total)
	err = parallel(ctx, total, e.opts.Clients, func(i int) error {
		c := i % e.opts.Clients
		code, err := e.buyCoupon(ctx, w.channel, w.shoppers[c][i%shoppersPerClient], itemID, e.key("till", c, i))
		codes[i] = code
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("buy coupons: %w", err)
	}
	basket := []map[string]any{{"sku": "TEA-TILL", "category": "tea", "amount": map[string]string{"amount": priceAmount, "currency": Currency}}}
	l := e.drive(ctx, ScenarioRedeem, total, func(ctx context.Context, c, n int) outcome {
		r, err := e.call(ctx, http.MethodPost, "/v1/redemptions", merchant.Key, e.key(ScenarioRedeem, c, n),
			map[string]any{"code": codes[n], "lines": basket})
		switch {
		case err != nil:
			return outcome{code: "transport"}
		case r.Status != http.StatusOK:
			return outcome{status: r.Status, code: orUnknown(r.code())}
		}
		return outcome{status: r.Status}
	}, nil)
	return l.result(ScenarioRedeem), nil
}

// buyCoupon buys one voucher and returns its coupon's printed code.
func (e *env) buyCoupon(ctx context.Context, channel Account, shopperID, itemID, key string) (string, error) {
	body := map[string]any{"shopper_id": shopperID, "lines": []map[string]any{{"item_id": itemID, "quantity": 1}}}
	r, err := e.call(ctx, http.MethodPost, "/v1/channel/checkouts", channel.Key, key+"-create", body)
	checkoutID, err := created("create checkout", r, err)
	if err != nil {
		return "", err
	}
	r, err = e.call(ctx, http.MethodPost, "/v1/channel/checkouts/"+checkoutID+"/confirm", channel.Key, key+"-confirm", nil)
	if err != nil {
		return "", err
	}
	var receipt struct {
		Coupons []struct {
			Code string `json:"code"`
		} `json:"coupons"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &receipt) != nil || len(receipt.Coupons) != 1 {
		return "", fmt.Errorf("confirm: HTTP %d: %s", r.Status, r.Body)
	}
	return receipt.Coupons[0].Code, nil
}

func clientRands(n int, stream uint64) []*rand.Rand {
	seed := uint64(time.Now().UnixNano())
	out := make([]*rand.Rand, n)
	for i := range out {
		out[i] = rand.New(rand.NewPCG(seed+uint64(i), stream))
	}
	return out
}
