package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/webhooks"
)

// Stable problem codes of refunds.
const (
	CodeRefundExceedsPaid       = "refund_exceeds_paid"
	CodeRefundExceedsRefundable = "refund_exceeds_refundable"
	CodeCouponAlreadyRedeemed   = "coupon_already_redeemed"
	CodeCouponNotRefundable     = "coupon_not_refundable"
	CodeAlreadyRefunded         = "already_refunded"
)

// RefundRequest says what to give back to the shopper's wallet.
type RefundRequest struct {
	// CouponID refunds that voucher whole (it must be unredeemed). Amount,
	// if given with it, must be the voucher's value.
	CouponID string
	// Amount refunds part of the order's product lines. Absent (nil) with
	// no CouponID: everything still refundable — the remaining product
	// amount and every unredeemed voucher.
	Amount *money.Amount
	// Reason is why staff refund, in their words (at most RefundReasonMax
	// bytes; may be empty): kept with the refund and shown with it.
	Reason string
}

// RefundReasonMax bounds a refund's reason, in bytes.
const RefundReasonMax = 500

// Refund is one refund of an order to the shopper's wallet.
type Refund struct {
	ID        string
	OrderID   string
	CouponIDs []string // vouchers refunded by it
	Amount    money.Amount
	Vouchers  money.Amount // from the merchant's deferred revenue
	Products  money.Amount // from the merchant's available balance and the platform's fee
	FeeBack   money.Amount // the platform fee returned (part of Products)
	Order     Order        // the order after the refund
	Reason    string
	CreatedAt time.Time
}

// Refund gives money of a merchant's order back to the shopper's wallet, in
// tx: never more than was paid (orders.refunded_minor, checked here and by
// the schema). A voucher is refundable only while unredeemed: its coupon
// becomes refunded and its value moves D merchant deferred → C wallet.
// Product lines move D merchant available (net) and D platform fees → C
// wallet: the fee goes back in proportion to the product amount refunded,
// computed cumulatively (money.Allocate of everything refunded so far over
// the sale's fee and net), so refunds in several parts return exactly the
// fee taken, never more. One ledger transaction, order.refunded queued.
//
// Errors: not_found; validation_failed; refund_exceeds_paid (more than the
// order has left); refund_exceeds_refundable (the products have less left,
// vouchers are refunded whole by coupon_id); coupon_already_redeemed,
// coupon_not_refundable (expired), already_refunded — all 422, nothing written.
func (s *Service) Refund(ctx context.Context, tx *sqlx.Tx, merchantID, orderID string, req RefundRequest) (Refund, error) {
	var o Order
	err := tx.GetContext(ctx, &o, `SELECT `+orderColumns+` FROM orders WHERE id = $1 AND merchant_id = $2 FOR UPDATE`, orderID, merchantID)
	if errors.Is(err, sql.ErrNoRows) {
		return Refund{}, problem.NotFound("order")
	}
	if err != nil {
		return Refund{}, fmt.Errorf("lock order: %w", err)
	}
	if err := loadOrderLines(ctx, tx, &o); err != nil {
		return Refund{}, err
	}
	currency, err := money.ParseCurrency(o.Currency)
	if err != nil {
		return Refund{}, fmt.Errorf("order currency: %w", err)
	}
	if len(req.Reason) > RefundReasonMax {
		return Refund{}, problem.Field("reason", "too_long", "a reason is at most %d bytes", RefundReasonMax)
	}
	if req.Amount != nil && (req.Amount.Currency != currency || req.Amount.Minor <= 0) {
		return Refund{}, problem.Field("amount", "invalid_amount", "a refund is a positive amount in the order's currency %s", currency.Code())
	}
	// Coupons are locked after the order, in id order: Redeem and the
	// expiry job lock a single coupon, so no cycle can form.
	var coupons []Coupon
	q := `SELECT ` + couponColumns + couponFrom + ` WHERE c.order_id = $1 ORDER BY c.id FOR UPDATE OF c`
	if err := tx.SelectContext(ctx, &coupons, q, o.ID); err != nil {
		return Refund{}, fmt.Errorf("lock order coupons: %w", err)
	}
	plan, err := s.planRefund(ctx, tx, o, coupons, req)
	if err != nil {
		return Refund{}, err
	}
	return s.bookRefund(ctx, tx, o, currency, plan, req.Reason)
}

// refundPlan is what one refund takes from where.
type refundPlan struct {
	coupons  []Coupon
	vouchers int64
	products int64
	feeBack  int64
	couponID string // the coupon the request named, if any
	sale     saleSplit
}

// saleSplit is how the order's product lines were booked at the sale.
type saleSplit struct{ products, fee, net, refunded int64 }

func (s *Service) planRefund(ctx context.Context, tx *sqlx.Tx, o Order, coupons []Coupon, req RefundRequest) (refundPlan, error) {
	left := o.TotalMinor - o.RefundedMinor
	if req.Amount != nil && req.Amount.Minor > left {
		return refundPlan{}, problem.New(problem.KindRefused, CodeRefundExceedsPaid,
			"the order has %s left to refund", money.New(left, req.Amount.Currency)).With("refundable", left)
	}
	sale, err := s.productSplit(ctx, tx, o)
	if err != nil {
		return refundPlan{}, err
	}
	plan := refundPlan{sale: sale}
	productsLeft := sale.products - sale.refunded
	switch {
	case req.CouponID != "":
		var found *Coupon
		for i := range coupons {
			if coupons[i].ID == req.CouponID {
				found = &coupons[i]
			}
		}
		if found == nil {
			return refundPlan{}, problem.Field("coupon_id", "unknown_coupon", "the order has no coupon %q", req.CouponID)
		}
		if err := refundableCoupon(*found); err != nil {
			return refundPlan{}, err
		}
		if req.Amount != nil && req.Amount.Minor != found.ValueMinor {
			return refundPlan{}, problem.Field("amount", "partial_voucher_refund", "a voucher is refunded whole: leave amount out or give its value")
		}
		plan.coupons, plan.vouchers, plan.couponID = []Coupon{*found}, found.ValueMinor, found.ID
	case req.Amount != nil:
		if req.Amount.Minor > productsLeft {
			return refundPlan{}, problem.New(problem.KindRefused, CodeRefundExceedsRefundable,
				"the order's products have %s left to refund; vouchers are refunded whole with coupon_id",
				money.New(productsLeft, req.Amount.Currency)).With("refundable", productsLeft)
		}
		plan.products = req.Amount.Minor
	default:
		plan.products = productsLeft
		redeemed := false
		for _, c := range coupons {
			if refundableCoupon(c) == nil {
				plan.coupons = append(plan.coupons, c)
				plan.vouchers += c.ValueMinor
			} else if c.Status == CouponRedeemed || c.UsesLeft < c.UsesTotal {
				redeemed = true
			}
		}
		if plan.products+plan.vouchers == 0 {
			if redeemed {
				return refundPlan{}, problem.New(problem.KindRefused, CodeCouponAlreadyRedeemed,
					"the order's vouchers were redeemed, and a redeemed voucher cannot be refunded")
			}
			return refundPlan{}, problem.New(problem.KindRefused, CodeAlreadyRefunded, "nothing is left to refund on this order")
		}
	}
	if plan.products > 0 {
		// Cumulative proportional fee: the fee share of everything refunded
		// after this refund, minus what earlier refunds already returned.
		before := feeShare(sale, sale.refunded)
		after := feeShare(sale, sale.refunded+plan.products)
		plan.feeBack = after - before
	}
	if plan.products+plan.vouchers > left {
		// The parts come from the order's own records, so this means the
		// books disagree with the order: refuse rather than overpay.
		return refundPlan{}, fmt.Errorf("order %s: refund of %d exceeds the %d left", o.ID, plan.products+plan.vouchers, left)
	}
	return plan, nil
}

func refundableCoupon(c Coupon) error {
	switch {
	case c.Status == CouponRefunded:
		return problem.New(problem.KindRefused, CodeAlreadyRefunded, "coupon %s was refunded already", c.ID)
	case c.Status == CouponRedeemed || c.UsesLeft < c.UsesTotal:
		return problem.New(problem.KindRefused, CodeCouponAlreadyRedeemed, "coupon %s was redeemed and cannot be refunded", c.ID)
	case c.Status == CouponExpired:
		return problem.New(problem.KindRefused, CodeCouponNotRefundable, "coupon %s expired; its value went to breakage", c.ID)
	}
	return nil
}

// feeShare is the fee part of refunded minor units of the products.
func feeShare(sale saleSplit, refunded int64) int64 {
	if sale.fee == 0 || refunded == 0 {
		return 0
	}
	return money.Allocate(refunded, []int64{sale.fee, sale.net})[0]
}

// productSplit reads how the sale booked the products (from the ledger, so a
// later change of the fee rate cannot change a refund) and how much of them
// was refunded before.
func (s *Service) productSplit(ctx context.Context, tx *sqlx.Tx, o Order) (saleSplit, error) {
	var split saleSplit
	for _, l := range o.Lines {
		if l.Kind != "voucher" {
			split.products += l.UnitPriceMinor * int64(l.Quantity)
		}
	}
	if split.products > 0 && o.LedgerTransactionID.Valid {
		sale, err := s.ledger.Transaction(ctx, tx, o.LedgerTransactionID.Int64)
		if err != nil {
			return saleSplit{}, fmt.Errorf("sale transaction: %w", err)
		}
		for _, p := range sale.Postings {
			switch p.Account.Kind {
			case ledger.KindPlatformFees:
				split.fee += p.Amount
			case ledger.KindMerchantAvailable:
				split.net += p.Amount
			}
		}
		if split.fee+split.net != split.products {
			return saleSplit{}, fmt.Errorf("order %s: sale booked %d+%d for products of %d", o.ID, split.fee, split.net, split.products)
		}
	}
	const refunded = `SELECT COALESCE(sum(product_minor), 0) FROM refunds WHERE order_id = $1`
	if err := tx.GetContext(ctx, &split.refunded, refunded, o.ID); err != nil {
		return saleSplit{}, fmt.Errorf("refunded products: %w", err)
	}
	return split, nil
}

func (s *Service) bookRefund(ctx context.Context, tx *sqlx.Tx, o Order, currency money.Currency, plan refundPlan, reason string) (Refund, error) {
	now, err := s.nowFor(ctx, tx, o.MerchantID)
	if err != nil {
		return Refund{}, err
	}
	amount := plan.vouchers + plan.products
	r := Refund{
		ID: ids.New("rfd"), OrderID: o.ID, Amount: money.New(amount, currency),
		Vouchers: money.New(plan.vouchers, currency), Products: money.New(plan.products, currency),
		FeeBack: money.New(plan.feeBack, currency), CreatedAt: now, CouponIDs: []string{}, Reason: reason,
	}
	postings := []ledger.Posting{ledger.Credit(ledger.ShopperWallet(o.ShopperID), currency, amount)}
	for _, p := range []ledger.Posting{
		ledger.Debit(ledger.MerchantDeferred(o.MerchantID), currency, plan.vouchers),
		ledger.Debit(ledger.MerchantAvailable(o.MerchantID), currency, plan.products-plan.feeBack),
		ledger.Debit(ledger.PlatformFees(), currency, plan.feeBack),
	} {
		if p.Amount != 0 {
			postings = append(postings, p)
		}
	}
	posted, err := s.ledger.Post(ctx, tx, ledger.Transaction{Key: "refund:" + r.ID, Description: "refund " + r.ID + " of order " + o.ID, Postings: postings})
	if err != nil {
		return Refund{}, fmt.Errorf("book refund: %w", err)
	}
	const insert = `
		INSERT INTO refunds (id, order_id, merchant_id, coupon_id, amount_minor, voucher_minor, product_minor, fee_back_minor,
			currency, ledger_transaction_id, created_at, reason)
		VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, $8, $9, $10, $11, $12)`
	if _, err := tx.ExecContext(ctx, insert, r.ID, o.ID, o.MerchantID, plan.couponID, amount, plan.vouchers, plan.products,
		plan.feeBack, currency.Code(), posted.ID, now, reason); err != nil {
		return Refund{}, fmt.Errorf("record refund: %w", err)
	}
	const closeCoupon = `UPDATE coupons SET status = 'refunded', closed_at = $2 WHERE id = $1 AND status = 'active'`
	for _, c := range plan.coupons {
		if _, err := tx.ExecContext(ctx, closeCoupon, c.ID, now); err != nil {
			return Refund{}, fmt.Errorf("refund coupon: %w", err)
		}
		if err := s.giveBackUnit(ctx, tx, o.ShopperID, c.ItemID); err != nil {
			return Refund{}, err
		}
		r.CouponIDs = append(r.CouponIDs, c.ID)
	}
	o.RefundedMinor += amount
	o.Status = OrderPartiallyRefunded
	if o.RefundedMinor == o.TotalMinor {
		o.Status = OrderRefunded
	}
	const update = `UPDATE orders SET refunded_minor = $2, status = $3 WHERE id = $1`
	if _, err := tx.ExecContext(ctx, update, o.ID, o.RefundedMinor, o.Status); err != nil {
		return Refund{}, fmt.Errorf("update order: %w", err)
	}
	r.Order = o
	return r, s.enqueueRefunded(ctx, tx, o, r, plan.couponID)
}

// giveBackUnit undoes one refunded voucher's sale outside the ledger: the
// unit goes back to the item's stock (if it is counted) and no longer counts
// toward the shopper's purchase limit. Product refunds are by amount and map
// to no unit, so they leave both alone.
func (s *Service) giveBackUnit(ctx context.Context, tx *sqlx.Tx, shopperID, itemID string) error {
	item, _, err := s.catalog.ItemForSale(ctx, tx, itemID)
	if err != nil {
		return err
	}
	if item.Stock != nil {
		if err := s.catalog.ReturnStock(ctx, tx, itemID, 1); err != nil {
			return err
		}
	}
	const uncount = `UPDATE shopper_item_purchases SET quantity = quantity - 1 WHERE shopper_id = $1 AND item_id = $2 AND quantity > 0`
	if _, err := tx.ExecContext(ctx, uncount, shopperID, itemID); err != nil {
		return fmt.Errorf("uncount purchase: %w", err)
	}
	return nil
}

func (s *Service) enqueueRefunded(ctx context.Context, tx *sqlx.Tx, o Order, r Refund, couponID string) error {
	var chat webhooks.Chat
	const q = `SELECT channel_id, external_user_id FROM shoppers WHERE id = $1`
	if err := tx.QueryRowxContext(ctx, q, o.ShopperID).Scan(&chat.ChannelID, &chat.ExternalUserID); err != nil {
		return fmt.Errorf("refund conversation: %w", err)
	}
	chat.ChatID = o.ChatID
	titles := make([]string, 0, len(o.Lines))
	for _, l := range o.Lines {
		titles = append(titles, l.Title)
	}
	event := webhooks.OrderRefunded(r.CreatedAt, webhooks.OrderRefundedData{
		ChatData: webhooks.ChatData{Chat: chat,
			Message: fmt.Sprintf("Refunded %s to your wallet — %s", r.Amount, strings.Join(titles, ", "))},
		OrderID: o.ID, MerchantID: o.MerchantID, CouponID: couponID, Refund: webhookAmount(r.Amount), RefundedAt: r.CreatedAt,
	})
	if err := s.outbox.Enqueue(ctx, tx, event); err != nil {
		return fmt.Errorf("enqueue order.refunded: %w", err)
	}
	return nil
}

// RefundRecord is a past refund as an order's history shows it.
type RefundRecord struct {
	ID          string         `db:"id"`
	CouponID    sql.NullString `db:"coupon_id"`
	AmountMinor int64          `db:"amount_minor"`
	Currency    string         `db:"currency"`
	Reason      string         `db:"reason"`
	CreatedAt   time.Time      `db:"created_at"`
}

// orderRefundsShownMax bounds an order's refund history; an order is
// refunded in few parts (each at least one minor unit of what was paid).
const orderRefundsShownMax = 200

// OrderRefunds lists a merchant's order's refunds, oldest first.
func (s *Service) OrderRefunds(ctx context.Context, merchantID, orderID string) ([]RefundRecord, error) {
	const q = `SELECT id, coupon_id, amount_minor, currency, reason, created_at FROM refunds
		WHERE order_id = $1 AND merchant_id = $2 ORDER BY created_at, id LIMIT $3`
	var out []RefundRecord
	if err := s.db.SelectContext(ctx, &out, q, orderID, merchantID, orderRefundsShownMax); err != nil {
		return nil, fmt.Errorf("order refunds: %w", err)
	}
	return out, nil
}

// Refundable is what an order has left to refund, as Refund would plan it.
type Refundable struct {
	Order    Order
	Products money.Amount // of the product lines, refundable by amount
	Coupons  []Coupon     // unredeemed vouchers, each refundable whole
	Total    money.Amount // all of it: what a refund of everything gives back
}

// OrderRefundable tells a merchant what an order has left to refund: the
// dashboard's refund page offers exactly that. The numbers follow
// planRefund's rules (products by amount, net of earlier product refunds;
// vouchers whole while unredeemed), read without locks: Refund checks again.
func (s *Service) OrderRefundable(ctx context.Context, merchantID, orderID string) (Refundable, error) {
	o, err := s.MerchantOrder(ctx, merchantID, orderID)
	if err != nil {
		return Refundable{}, err
	}
	currency, err := money.ParseCurrency(o.Currency)
	if err != nil {
		return Refundable{}, fmt.Errorf("order currency: %w", err)
	}
	coupons, err := s.OrderCoupons(ctx, o.ID)
	if err != nil {
		return Refundable{}, err
	}
	var products, productsRefunded, vouchers int64
	for _, l := range o.Lines {
		if l.Kind != "voucher" {
			products += l.UnitPriceMinor * int64(l.Quantity)
		}
	}
	const refunded = `SELECT COALESCE(sum(product_minor), 0) FROM refunds WHERE order_id = $1`
	if err := s.db.GetContext(ctx, &productsRefunded, refunded, o.ID); err != nil {
		return Refundable{}, fmt.Errorf("refunded products: %w", err)
	}
	r := Refundable{Order: o, Products: money.New(max(0, products-productsRefunded), currency)}
	for _, c := range coupons {
		if refundableCoupon(c) == nil {
			r.Coupons = append(r.Coupons, c)
			vouchers += c.ValueMinor
		}
	}
	r.Total = money.New(min(r.Products.Minor+vouchers, o.TotalMinor-o.RefundedMinor), currency)
	return r, nil
}
