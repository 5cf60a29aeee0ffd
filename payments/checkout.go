package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/ledger"
	"github.com/chatpay/chatpay/webhooks"
)

// Checkout statuses: open → paid | expired | canceled.
const (
	StatusOpen     = "open"
	StatusPaid     = "paid"
	StatusExpired  = "expired"
	StatusCanceled = "canceled"
)

// Checkout is a shopper's intent to buy, with a price fixed at creation.
type Checkout struct {
	ID         string         `db:"id"`
	MerchantID string         `db:"merchant_id"`
	ShopperID  string         `db:"shopper_id"`
	ChatID     string         `db:"chat_id"`
	QRID       sql.NullString `db:"qr_id"`
	Status     string         `db:"status"`
	Reserved   bool           `db:"reserved"`
	Currency   string         `db:"currency"`
	TotalMinor int64          `db:"total_minor"`
	OrderID    sql.NullString `db:"order_id"`
	CreatedAt  time.Time      `db:"created_at"`
	ExpiresAt  time.Time      `db:"expires_at"`
	ClosedAt   sql.NullTime   `db:"closed_at"`
	Lines      []CheckoutLine `db:"-"`
}

// CheckoutLine is one item of a checkout.
type CheckoutLine struct {
	LineNo         int    `db:"line_no"`
	ItemID         string `db:"item_id"`
	Quantity       int    `db:"quantity"`
	UnitPriceMinor int64  `db:"unit_price_minor"`
}

// LineRequest asks for quantity units of an item.
type LineRequest struct {
	ItemID   string
	Quantity int
}

// CheckoutRequest opens a checkout for a shopper.
type CheckoutRequest struct {
	Shopper Shopper
	ChatID  string
	Lines   []LineRequest
	QRID    string // the QR code scanned, if any
	// Reserve holds stock until the checkout is paid, expires or is canceled
	// (bot-created checkouts); a page opened from a static QR reserves nothing.
	Reserve bool
	TTL     time.Duration
}

// saleLine is a checkout line joined with what the catalog says about it.
type saleLine struct {
	CheckoutLine
	item catalog.Item
}

// CreateCheckout opens a checkout in tx. It returns validation_failed for bad
// lines, item_unavailable, mixed_merchants, currency_mismatch,
// purchase_limit_reached, or sold_out when Reserve finds no stock.
func (s *Service) CreateCheckout(ctx context.Context, tx *sqlx.Tx, req CheckoutRequest) (Checkout, error) {
	lines, merchant, err := s.priceLines(ctx, tx, req.Lines, s.catalog.ItemForSale)
	if err != nil {
		return Checkout{}, err
	}
	if err := s.checkLimits(ctx, tx, req.Shopper.ID, lines); err != nil {
		return Checkout{}, err
	}
	if req.Reserve {
		if err := s.takeStock(ctx, tx, lines); err != nil {
			return Checkout{}, err
		}
	}
	ttl := req.TTL
	if ttl <= 0 || ttl > CheckoutTTLMax {
		ttl = s.checkoutTTL
	}
	now, err := s.nowFor(ctx, tx, merchant.ID)
	if err != nil {
		return Checkout{}, err
	}
	chatID := req.ChatID
	if chatID == "" {
		chatID = req.Shopper.ExternalUserID
	}
	if utf8.RuneCountInString(chatID) > ChatIDLengthMax {
		return Checkout{}, problem.Field("chat_id", "too_long", "a chat id has at most %d characters", ChatIDLengthMax)
	}
	co := Checkout{
		ID: ids.New("chk"), MerchantID: merchant.ID, ShopperID: req.Shopper.ID, ChatID: chatID,
		QRID: sql.NullString{String: req.QRID, Valid: req.QRID != ""}, Status: StatusOpen, Reserved: req.Reserve,
		Currency: lines[0].item.Price.Currency.Code(), CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	for _, l := range lines {
		co.TotalMinor += l.UnitPriceMinor * int64(l.Quantity)
		co.Lines = append(co.Lines, l.CheckoutLine)
	}
	if co.TotalMinor > money.MinorMax {
		return Checkout{}, problem.Field("lines", "amount_out_of_range", "the checkout total is too large")
	}
	// The checkout and its lines in one statement: one round trip (issue 19).
	const insertCheckout = `
		WITH co AS (
			INSERT INTO checkouts (id, merchant_id, shopper_id, chat_id, qr_id, status, reserved, currency, total_minor, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			RETURNING id
		)
		INSERT INTO checkout_lines (checkout_id, line_no, item_id, quantity, unit_price_minor)
		SELECT co.id, l.line_no, l.item_id, l.quantity, l.unit_price_minor
		FROM co, unnest($12::integer[], $13::text[], $14::integer[], $15::bigint[]) AS l (line_no, item_id, quantity, unit_price_minor)`
	lineNos := make([]int64, len(co.Lines))
	itemIDs := make([]string, len(co.Lines))
	quantities := make([]int64, len(co.Lines))
	prices := make([]int64, len(co.Lines))
	for i, l := range co.Lines {
		lineNos[i], itemIDs[i], quantities[i], prices[i] = int64(l.LineNo), l.ItemID, int64(l.Quantity), l.UnitPriceMinor
	}
	if _, err := s.stmts.Exec(ctx, tx, insertCheckout, co.ID, co.MerchantID, co.ShopperID, co.ChatID, co.QRID, co.Status,
		co.Reserved, co.Currency, co.TotalMinor, co.CreatedAt, co.ExpiresAt,
		pq.Int64Array(lineNos), pq.StringArray(itemIDs), pq.Int64Array(quantities), pq.Int64Array(prices)); err != nil {
		return Checkout{}, fmt.Errorf("insert checkout: %w", err)
	}
	return co, nil
}

func (s *Service) insertCheckoutLines(ctx context.Context, tx *sqlx.Tx, co Checkout) error {
	const insertLine = `
		INSERT INTO checkout_lines (checkout_id, line_no, item_id, quantity, unit_price_minor)
		VALUES ($1, $2, $3, $4, $5)`
	for _, l := range co.Lines {
		if _, err := s.stmts.Exec(ctx, tx, insertLine, co.ID, l.LineNo, l.ItemID, l.Quantity, l.UnitPriceMinor); err != nil {
			return fmt.Errorf("insert checkout line: %w", err)
		}
	}
	return nil
}

// priceLines validates requested lines against the catalog: every item
// active, of one merchant and one currency.
func (s *Service) priceLines(ctx context.Context, q sqlx.ExtContext, req []LineRequest, read itemReader) ([]saleLine, catalog.Merchant, error) {
	if len(req) == 0 || len(req) > LinesMax {
		return nil, catalog.Merchant{}, problem.Field("lines", "invalid_lines", "a checkout has 1 to %d lines", LinesMax)
	}
	var merchant catalog.Merchant
	lines := make([]saleLine, 0, len(req))
	seen := make(map[string]bool, len(req))
	for i, r := range req {
		field := fmt.Sprintf("lines[%d]", i)
		if r.Quantity < 1 || r.Quantity > LineQuantityMax {
			return nil, merchant, problem.Field(field+".quantity", "invalid_quantity", "quantity must be 1 to %d", LineQuantityMax)
		}
		if seen[r.ItemID] {
			return nil, merchant, problem.Field(field+".item_id", "duplicate_item", "item %s appears twice; use quantity", r.ItemID)
		}
		seen[r.ItemID] = true
		item, m, err := read(ctx, q, r.ItemID)
		if err != nil {
			if p, ok := problem.As(err); ok && p.Kind == problem.KindNotFound {
				return nil, merchant, problem.Field(field+".item_id", "unknown_item", "no item %q", r.ItemID)
			}
			return nil, merchant, err
		}
		if err := sellable(item, m); err != nil {
			return nil, merchant, err
		}
		if i == 0 {
			merchant = m
		} else if m.ID != merchant.ID {
			return nil, merchant, problem.Field(field+".item_id", CodeMixedMerchants, "all lines of a checkout must be from one merchant")
		} else if item.Price.Currency != lines[0].item.Price.Currency {
			return nil, merchant, problem.Field(field+".item_id", "currency_mismatch", "all lines of a checkout must be in one currency")
		}
		lines = append(lines, saleLine{
			CheckoutLine: CheckoutLine{LineNo: i + 1, ItemID: item.ID, Quantity: r.Quantity, UnitPriceMinor: item.Price.Minor},
			item:         item,
		})
	}
	return lines, merchant, nil
}

// takeStock takes every tracked line's quantity, or refuses with sold_out.
func (s *Service) takeStock(ctx context.Context, tx *sqlx.Tx, lines []saleLine) error {
	for _, l := range lines {
		if l.item.Stock == nil {
			continue
		}
		if err := s.catalog.TakeStock(ctx, tx, l.ItemID, int64(l.Quantity)); err != nil {
			if errors.Is(err, catalog.ErrSoldOut) {
				return soldOut(l.item.Title)
			}
			return err
		}
	}
	return nil
}

// checkLimits refuses lines that would take the shopper past an item's
// per-shopper limit, counting what they bought and what they hold in open
// checkouts: one shopper must not hold every unit in checkouts that are each
// within the limit. The purchase's own count (purchase_pay) is the final word.
func (s *Service) checkLimits(ctx context.Context, tx *sqlx.Tx, shopperID string, lines []saleLine) error {
	for _, l := range lines {
		if l.item.PerShopperLimit == nil {
			continue
		}
		var held int
		if err := s.stmts.Get(ctx, tx, &held, heldSQL, shopperID, l.ItemID); err != nil {
			return fmt.Errorf("read purchases: %w", err)
		}
		if held+l.Quantity > *l.item.PerShopperLimit {
			return limitReached(l.item, held)
		}
	}
	return nil
}

func limitReached(item catalog.Item, bought int) error {
	limit := *item.PerShopperLimit
	return problem.New(problem.KindConflict, CodeLimitReached,
		"%s is limited to %d per shopper; you already have %d", item.Title, limit, bought).
		With("limit", limit).With("remaining", max(0, limit-bought))
}

// HeldByShopper is how many units of an item a shopper has bought or holds
// in open checkouts: what the per-shopper limit counts, so that a page can
// say "limit reached" instead of offering "Buy now".
func (s *Service) HeldByShopper(ctx context.Context, shopperID, itemID string) (int, error) {
	var held int
	if err := s.stmts.Get(ctx, s.db, &held, heldSQL, shopperID, itemID); err != nil {
		return 0, fmt.Errorf("read purchases: %w", err)
	}
	return held, nil
}

// A till checkout has no shopper until one scans its code: read as "".
// Statements of the purchase path, prepared through s.stmts.
const (
	// heldSQL is what a shopper has of an item: bought, plus reserved in open checkouts.
	heldSQL = `SELECT COALESCE((SELECT quantity FROM shopper_item_purchases WHERE shopper_id = $1 AND item_id = $2), 0)
		+ COALESCE((SELECT sum(l.quantity) FROM checkout_lines l JOIN checkouts c ON c.id = l.checkout_id
			WHERE c.shopper_id = $1 AND c.status = 'open' AND c.reserved AND l.item_id = $2), 0)`
	checkoutLinesSQL = `SELECT line_no, item_id, quantity, unit_price_minor FROM checkout_lines WHERE checkout_id = $1 ORDER BY line_no`
)

const checkoutColumns = `id, merchant_id, COALESCE(shopper_id, '') AS shopper_id, COALESCE(chat_id, '') AS chat_id,
	qr_id, status, reserved, currency, total_minor, order_id, created_at, expires_at, closed_at`

// CheckoutShopper returns the shopper of one of the channel's checkouts;
// another channel's checkout is not_found.
func (s *Service) CheckoutShopper(ctx context.Context, channelID, checkoutID string) (Shopper, error) {
	var sh Shopper
	err := s.stmts.Get(ctx, s.db, &sh, checkoutShopperSQL, checkoutID, channelID)
	if errors.Is(err, sql.ErrNoRows) {
		return Shopper{}, problem.NotFound("checkout")
	}
	if err != nil {
		return Shopper{}, fmt.Errorf("find checkout: %w", err)
	}
	return sh, nil
}

const checkoutShopperSQL = `SELECT s.id, s.channel_id, s.external_user_id, s.display_name, s.created_at
	FROM checkouts co JOIN shoppers s ON s.id = co.shopper_id
	WHERE co.id = $1 AND s.channel_id = $2`

// checkoutForUpdate locks a shopper's checkout; other shoppers' are not found.
func (s *Service) checkoutForUpdate(ctx context.Context, tx *sqlx.Tx, id, shopperID string) (Checkout, error) {
	return s.readCheckout(ctx, tx, `id = $1 AND shopper_id = $2 FOR UPDATE`, id, shopperID)
}

// Checkout returns a shopper's checkout.
func (s *Service) Checkout(ctx context.Context, id, shopperID string) (Checkout, error) {
	return s.readCheckout(ctx, s.db, `id = $1 AND shopper_id = $2`, id, shopperID)
}

// readCheckout reads the one checkout that where (with args; it may end in a
// locking clause) selects, with its lines in the same statement (issue 19:
// a confirm read them with a second round trip), or returns not_found.
func (s *Service) readCheckout(ctx context.Context, q sqlx.ExtContext, where string, args ...any) (Checkout, error) {
	var row struct {
		Checkout
		LineNos    pq.Int64Array  `db:"line_nos"`
		ItemIDs    pq.StringArray `db:"item_ids"`
		Quantities pq.Int64Array  `db:"quantities"`
		Prices     pq.Int64Array  `db:"unit_prices_minor"`
	}
	err := s.stmts.Get(ctx, q, &row, `SELECT `+checkoutColumns+`, `+checkoutLineArrays+` FROM checkouts WHERE `+where, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkout{}, problem.NotFound("checkout")
	}
	if err != nil {
		return Checkout{}, fmt.Errorf("read checkout: %w", err)
	}
	co := row.Checkout
	if len(row.ItemIDs) != len(row.LineNos) || len(row.Quantities) != len(row.LineNos) || len(row.Prices) != len(row.LineNos) {
		return Checkout{}, fmt.Errorf("read checkout %s: lines of uneven length", co.ID)
	}
	co.Lines = make([]CheckoutLine, len(row.LineNos))
	for i := range row.LineNos {
		co.Lines[i] = CheckoutLine{LineNo: int(row.LineNos[i]), ItemID: row.ItemIDs[i], Quantity: int(row.Quantities[i]), UnitPriceMinor: row.Prices[i]}
	}
	return co, nil
}

// checkoutLineArrays are a checkout's lines as one array per column, in
// line order, for readCheckout (each an index scan of the line's key).
const checkoutLineArrays = `
	ARRAY(SELECT l.line_no FROM checkout_lines l WHERE l.checkout_id = checkouts.id ORDER BY l.line_no) AS line_nos,
	ARRAY(SELECT l.item_id FROM checkout_lines l WHERE l.checkout_id = checkouts.id ORDER BY l.line_no) AS item_ids,
	ARRAY(SELECT l.quantity FROM checkout_lines l WHERE l.checkout_id = checkouts.id ORDER BY l.line_no) AS quantities,
	ARRAY(SELECT l.unit_price_minor FROM checkout_lines l WHERE l.checkout_id = checkouts.id ORDER BY l.line_no) AS unit_prices_minor`

// confirm pays an open checkout in tx (Buy is its one caller): exactly once,
// whatever the number of taps or retries. It returns not_found,
// already_paid (409, with the order), checkout_expired, checkout_canceled,
// item_unavailable, sold_out, purchase_limit_reached or insufficient_funds
// (422); on any of them nothing is written.
func (s *Service) confirm(ctx context.Context, tx *sqlx.Tx, checkoutID string, shopper Shopper) (Receipt, error) {
	co, err := s.checkoutForUpdate(ctx, tx, checkoutID, shopper.ID)
	if err != nil {
		return Receipt{}, err
	}
	now, err := s.nowFor(ctx, tx, co.MerchantID)
	if err != nil {
		return Receipt{}, err
	}
	if err := checkPayable(co, now); err != nil {
		return Receipt{}, err
	}
	sl, err := s.priceSale(func(read itemReader) (sale, error) {
		lines, merchant, err := s.sellableLines(ctx, tx, co, read)
		if err != nil {
			return sale{}, err
		}
		return sale{
			order: Order{
				ID: ids.New("ord"), CheckoutID: co.ID, MerchantID: co.MerchantID, ShopperID: shopper.ID, ChatID: co.ChatID,
				Currency: co.Currency, TotalMinor: co.TotalMinor, Status: OrderPaid, CreatedAt: now,
			},
			lines: lines, merchant: merchant, shopper: shopper, takeStock: !co.Reserved,
			ledgerKey: "checkout:" + co.ID + ":pay", ledgerDescription: "sale " + co.ID,
		}, nil
	})
	if err != nil {
		return Receipt{}, err
	}
	// pay marks the checkout paid with its order.
	return s.pay(ctx, tx, sl)
}

// sale is what a purchase pays for, whether a checkout opened it (confirm)
// or it is paid in the same call that asked for it (buyNow).
type sale struct {
	order    Order // without lines and ledger transaction: pay fills them
	lines    []saleLine
	merchant catalog.Merchant
	shopper  Shopper
	// takeStock is false when the stock is already held (a reserved checkout).
	takeStock bool
	// qrID is the code a one-call purchase was bought from ("" for a checkout).
	qrID                         string
	ledgerKey, ledgerDescription string
}

// pay is the part of every purchase after its lines are priced and found
// sellable: stock, the per-shopper count, the ledger, the order, coupons and
// their links, the checkout's status and events, written by one call of
// purchase_pay in tx (writeSale), then the receipt. It returns sold_out,
// purchase_limit_reached or insufficient_funds, after which tx is aborted:
// nothing it wrote can commit.
func (s *Service) pay(ctx context.Context, tx *sqlx.Tx, sl sale) (Receipt, error) {
	currency, err := money.ParseCurrency(sl.order.Currency)
	if err != nil {
		return Receipt{}, fmt.Errorf("sale currency: %w", err)
	}
	order := sl.order
	for _, l := range sl.lines {
		order.Lines = append(order.Lines, OrderLine{
			LineNo: l.LineNo, ItemID: l.ItemID, SKU: l.item.SKU, Title: l.item.Title, Category: l.item.Category,
			Kind: l.item.Kind, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor,
		})
	}
	coupons, err := newCoupons(order, sl.lines, sl.merchant)
	if err != nil {
		return Receipt{}, err
	}
	events, err := s.outbox.Batch(s.paidEvents(order, coupons, sl.shopper, currency)...)
	if err != nil {
		return Receipt{}, fmt.Errorf("order.paid and coupon.issued: %w", err)
	}
	w := saleWrite{sale: sl, order: order, coupons: coupons, events: events}
	if order.TotalMinor > 0 {
		post, err := s.ledger.PreparePost(saleTransaction(sl, currency, s.fee))
		if err != nil {
			return Receipt{}, err
		}
		w.post = &post
	}
	written, err := s.writeSale(ctx, tx, w)
	if err != nil {
		return Receipt{}, err
	}
	r := Receipt{Order: written.order, Coupons: coupons, Remaining: map[string]int{}}
	if written.wallet != nil {
		r.Wallet = money.New(*written.wallet, currency)
	} else {
		balance, err := s.ledger.Balance(ctx, tx, ledger.ShopperWallet(sl.shopper.ID), currency)
		if err != nil {
			return Receipt{}, fmt.Errorf("wallet balance: %w", err)
		}
		r.Wallet = money.New(balance, currency)
	}
	for i, l := range sl.lines {
		if l.item.PerShopperLimit != nil {
			r.Remaining[l.ItemID] = max(0, *l.item.PerShopperLimit-written.bought[i])
		}
	}
	return r, nil
}

// checkPayable refuses a checkout that is no longer open at now.
func checkPayable(co Checkout, now time.Time) error {
	switch {
	case co.Status == StatusPaid:
		return problem.New(problem.KindConflict, CodeAlreadyPaid, "this checkout is already paid").
			With("order_id", co.OrderID.String)
	case co.Status == StatusCanceled:
		return problem.New(problem.KindConflict, CodeCheckoutClosed, "this checkout was canceled")
	case co.Status == StatusExpired || !now.Before(co.ExpiresAt):
		return problem.New(problem.KindConflict, CodeCheckoutExpired, "this checkout expired; scan the code again")
	}
	return nil
}

// sellableLines reads what the catalog says now about a checkout's items,
// refusing any that stopped being sellable since the checkout was opened.
func (s *Service) sellableLines(ctx context.Context, tx *sqlx.Tx, co Checkout, read itemReader) ([]saleLine, catalog.Merchant, error) {
	lines := make([]saleLine, len(co.Lines))
	var merchant catalog.Merchant
	for i, l := range co.Lines {
		item, m, err := read(ctx, tx, l.ItemID)
		if err != nil {
			return nil, merchant, err
		}
		if err := sellable(item, m); err != nil {
			return nil, merchant, err
		}
		lines[i] = saleLine{CheckoutLine: l, item: item}
		merchant = m
	}
	return lines, merchant, nil
}

// saleTransaction books a sale: the wallet pays the total; voucher lines go
// to the merchant's deferred revenue (recognised at redemption), product
// lines to its available balance net of the platform fee.
func saleTransaction(sl sale, currency money.Currency, fee money.Rate) ledger.Transaction {
	var deferred, products int64
	for _, l := range sl.lines {
		amount := l.UnitPriceMinor * int64(l.Quantity)
		if l.item.Kind == catalog.KindVoucher {
			deferred += amount
		} else {
			products += amount
		}
	}
	feePart, net := fee.Split(products)
	merchantID := sl.order.MerchantID
	postings := []ledger.Posting{ledger.Debit(ledger.ShopperWallet(sl.shopper.ID), currency, sl.order.TotalMinor)}
	for _, p := range []ledger.Posting{
		ledger.Credit(ledger.MerchantDeferred(merchantID), currency, deferred),
		ledger.Credit(ledger.MerchantAvailable(merchantID), currency, net),
		ledger.Credit(ledger.PlatformFees(), currency, feePart),
	} {
		if p.Amount != 0 {
			postings = append(postings, p)
		}
	}
	return ledger.Transaction{Key: sl.ledgerKey, Description: sl.ledgerDescription, Postings: postings}
}

// paidEvents are a purchase's order.paid and a coupon.issued per coupon.
func (s *Service) paidEvents(order Order, coupons []Coupon, shopper Shopper, currency money.Currency) []webhooks.Event {
	chat := webhooks.Chat{ChannelID: shopper.ChannelID, ExternalUserID: shopper.ExternalUserID, ChatID: order.ChatID}
	titles := make([]string, 0, len(order.Lines))
	lines := make([]webhooks.OrderLine, 0, len(order.Lines))
	for _, l := range order.Lines {
		title := l.Title
		if l.Quantity > 1 {
			title = fmt.Sprintf("%d × %s", l.Quantity, l.Title)
		}
		titles = append(titles, title)
		lines = append(lines, webhooks.OrderLine{ItemID: l.ItemID, SKU: l.SKU, Title: l.Title, Quantity: l.Quantity,
			UnitPrice: webhookAmount(money.New(l.UnitPriceMinor, currency))})
	}
	message := fmt.Sprintf("Paid %s — %s", money.New(order.TotalMinor, currency), strings.Join(titles, ", "))
	if len(coupons) > 0 {
		message += ". " + coupons[0].RulesText
	}
	paid := webhooks.OrderPaid(order.CreatedAt, webhooks.OrderPaidData{
		ChatData: webhooks.ChatData{Chat: chat, Message: message},
		Order: webhooks.Order{ID: order.ID, MerchantID: order.MerchantID, Lines: lines,
			Total: webhookAmount(money.New(order.TotalMinor, currency)), PaidAt: order.CreatedAt},
	})
	events := make([]webhooks.Event, 0, 1+len(coupons))
	events = append(events, paid)
	for _, c := range coupons {
		events = append(events, webhooks.CouponIssued(order.CreatedAt, webhooks.CouponData{
			// No printed code in the chat: the coupon is shown from its link,
			// whose QR rotates (docs/coupons.md).
			ChatData: webhooks.ChatData{Chat: chat, Message: fmt.Sprintf("Your %s coupon is ready. %s", c.Title, c.RulesText)},
			Coupon:   c.webhook(CouponActive, s.CouponLink(c.LinkToken)),
		}))
	}
	return events
}

func webhookAmount(a money.Amount) webhooks.Amount {
	return webhooks.Amount{Amount: a.Currency.Format(a.Minor), Currency: a.Currency.Code()}
}

// ExpireCheckouts closes open checkouts past their expiry and returns their
// reserved stock; it is safe to run in several processes at once (rows are
// claimed with SKIP LOCKED) and returns how many it expired.
func (s *Service) ExpireCheckouts(ctx context.Context, batchMax int) (int, error) {
	expired := 0
	err := withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		var due []Checkout
		claim := `SELECT ` + checkoutColumns + ` FROM checkouts
			WHERE status = 'open' AND expires_at <= $1 AND ` + fmt.Sprintf(notClockedSQL, "checkouts.merchant_id") + `
			ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`
		if err := tx.SelectContext(ctx, &due, claim, s.now().UTC(), batchMax); err != nil {
			return fmt.Errorf("claim expired checkouts: %w", err)
		}
		for _, co := range due {
			if err := s.expireCheckout(ctx, tx, co, s.now().UTC()); err != nil {
				return err
			}
		}
		expired = len(due)
		return nil
	})
	return expired, err
}

// expireCheckout closes an open checkout claimed in tx at now and returns its
// reserved stock (the real-time job and a test clock's advance).
func (s *Service) expireCheckout(ctx context.Context, tx *sqlx.Tx, co Checkout, now time.Time) error {
	if co.Reserved {
		var lines []CheckoutLine
		if err := tx.SelectContext(ctx, &lines, checkoutLinesSQL, co.ID); err != nil {
			return fmt.Errorf("read checkout lines: %w", err)
		}
		for _, l := range lines {
			if err := s.catalog.ReturnStock(ctx, tx, l.ItemID, int64(l.Quantity)); err != nil {
				return err
			}
		}
	}
	const close = `UPDATE checkouts SET status = 'expired', reserved = false, closed_at = $2 WHERE id = $1`
	if _, err := tx.ExecContext(ctx, close, co.ID, now); err != nil {
		return fmt.Errorf("expire checkout: %w", err)
	}
	return nil
}

// Cancel closes an open checkout and returns its reserved stock. Canceling a
// canceled checkout answers it again; a paid one is already_paid.
func (s *Service) Cancel(ctx context.Context, tx *sqlx.Tx, checkoutID string, shopper Shopper) (Checkout, error) {
	co, err := s.checkoutForUpdate(ctx, tx, checkoutID, shopper.ID)
	if err != nil {
		return Checkout{}, err
	}
	switch co.Status {
	case StatusPaid:
		return Checkout{}, problem.New(problem.KindConflict, CodeAlreadyPaid, "this checkout is already paid").With("order_id", co.OrderID.String)
	case StatusCanceled, StatusExpired:
		return co, nil
	}
	if co.Reserved {
		for _, l := range co.Lines {
			if err := s.catalog.ReturnStock(ctx, tx, l.ItemID, int64(l.Quantity)); err != nil {
				return Checkout{}, err
			}
		}
	}
	now := s.now().UTC()
	const cancel = `UPDATE checkouts SET status = 'canceled', reserved = false, closed_at = $2 WHERE id = $1`
	if _, err := tx.ExecContext(ctx, cancel, co.ID, now); err != nil {
		return Checkout{}, fmt.Errorf("cancel checkout: %w", err)
	}
	co.Status, co.Reserved, co.ClosedAt = StatusCanceled, false, sql.NullTime{Time: now, Valid: true}
	return co, nil
}
