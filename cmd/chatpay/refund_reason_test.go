package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A refund keeps the reason staff gave, through the API as through the
// dashboard; one past 500 bytes is refused and nothing moves.
func TestRefundKeepsItsReason(t *testing.T) {
	ta := startTestApp(t, storyStart)
	shop := ta.teaShop(500)
	orderID, coupons := ta.buy(shop, "42", map[string]int{shop.itemID: 1})
	before, err := ta.app.payments.OrderRefundable(context.Background(), shop.merchant.ID, orderID)
	if err != nil || before.Total.String() != "3.00 CNY" || len(before.Coupons) != 1 || before.Coupons[0].ID != coupons[0].ID || before.Products.Minor != 0 {
		t.Fatalf("refundable before: %+v %v", before, err)
	}
	refund := func(key, reason string) apiResponse {
		return ta.call("POST", "/v1/orders/"+orderID+"/refunds", shop.key, key, map[string]any{"reason": reason})
	}
	wantProblem(t, refund("too-long", strings.Repeat("x", 501)), http.StatusUnprocessableEntity, "validation_failed")
	if n := ta.count(`SELECT count(*) FROM refunds`); n != 0 {
		t.Fatalf("%d refunds after a refused one", n)
	}
	done := refund("ok", "Charged twice")
	if done.Status != http.StatusCreated || done.JSON(t)["reason"] != "Charged twice" {
		t.Fatalf("refund: %d %s", done.Status, done.Body)
	}
	if n := ta.count(`SELECT count(*) FROM refunds WHERE order_id = $1 AND reason = 'Charged twice'`, orderID); n != 1 {
		t.Fatalf("%d refunds keep their reason", n)
	}
	if after, err := ta.app.payments.OrderRefundable(context.Background(), shop.merchant.ID, orderID); err != nil || after.Total.Minor != 0 || len(after.Coupons) != 0 {
		t.Fatalf("refundable after: %+v %v", after, err)
	}
}
