package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lib/pq"
)

// The lean same-work baselines (issue 19): the rows one purchase writes —
// stock, the per-shopper count, a ledger transaction with its two postings
// and two balance rows, the order and its line, the coupon and its chat
// link's credential, two outbox events and the idempotency row (plus, for two transactions, the checkout,
// its line and a second idempotency row) — written by plain SQL with one
// read, as pgbench scripts against the same schema, in the same database, on
// the same cluster, with the same clients and duration as the scenarios.
// They are what the schema costs when nothing else is done; chatpay's
// purchase is reported as a ratio of them. Their rows are complete
// purchases (ledger keys, events naming the order and coupon), so
// `chatpay verify` stays clean after them.
const (
	LeanTwoTransactions = "lean-2tx"
	LeanOneTransaction  = "lean-1tx"
	LeanFunction        = "lean-fn"
)

// LeanBaselines lists them in run order.
var LeanBaselines = []string{LeanTwoTransactions, LeanOneTransaction, LeanFunction}

// leanSetupSQL maps the seeded world to numbers a pgbench script can draw:
// the spread items (1..items) and each client's shoppers (client c draws
// c*8 .. c*8+7, as the scenarios' clients do), and defines the one-call
// function. bench_ tables are the bench's own and dropped afterwards.
var leanSetupSQL = []string{
	`DROP TABLE IF EXISTS bench_lean_items, bench_lean_shoppers`,
	`CREATE TABLE bench_lean_items (n integer PRIMARY KEY, item_id text NOT NULL)`,
	`CREATE TABLE bench_lean_shoppers (n integer PRIMARY KEY, shopper_id text NOT NULL)`,
	`INSERT INTO bench_lean_items SELECT ord - 1, id FROM unnest($1::text[]) WITH ORDINALITY AS x (id, ord)`,
	`INSERT INTO bench_lean_shoppers SELECT ord - 1, id FROM unnest($1::text[]) WITH ORDINALITY AS x (id, ord)`,
	`ANALYZE bench_lean_items, bench_lean_shoppers`,
}

const leanTeardownSQL = `DROP TABLE IF EXISTS bench_lean_items, bench_lean_shoppers`

// leanReadSQL is the purchase's one read: the item with its merchant,
// template and the ledger accounts the sale moves, the shopper, and fresh
// ids for what the purchase creates; {extra} takes more columns. pgbench
// reads ":name" even inside quotes, so no literal has a colon before a
// letter.
const leanReadSQL = `SELECT i.id AS item_id, i.merchant_id, i.price_minor AS price, i.sku, i.title, i.category, i.kind,
    t.rules, m.time_zone, d.id AS deferred_id, pg_backend_pid() % d.buckets AS deferred_bucket,
    s.id AS shopper_id, s.channel_id, s.external_user_id AS chat_id, w.id AS wallet_id,
    'ord_' || g.h AS order_id, 'cpn_' || g.h AS coupon_id, 'evt_' || g.h AS event_id,
    upper(substr(g.h, 1, 4) || '-' || substr(g.h, 5, 4) || '-' || substr(g.h, 9, 4)) AS coupon_code{extra}
FROM bench_lean_items li JOIN items i ON i.id = li.item_id JOIN merchants m ON m.id = i.merchant_id
JOIN coupon_templates t ON t.id = i.template_id
JOIN ledger_accounts d ON d.code = 'merchant:' || i.merchant_id || ':' || 'deferred' AND d.currency = i.currency
CROSS JOIN bench_lean_shoppers ls JOIN shoppers s ON s.id = ls.shopper_id
JOIN ledger_accounts w ON w.code = 'shopper:' || s.id || ':' || 'wallet' AND w.currency = 'CNY'
CROSS JOIN (SELECT md5(random()::text || clock_timestamp()::text) AS h) g
WHERE li.n = :n AND ls.n = :s`

// leanPayStatements are the confirming transaction's writes after the read
// (:checkout is NULL for one transaction). Placeholders are pgbench
// variables, sent as parameters (-M prepared).
var leanPayStatements = []string{
	`INSERT INTO shopper_item_purchases AS p (shopper_id, item_id, quantity) VALUES (:shopper_id, :item_id, 1)
    ON CONFLICT (shopper_id, item_id) DO UPDATE SET quantity = p.quantity + 1`,
	`INSERT INTO ledger_transactions (idempotency_key, request_hash, description, created_at, postings_count)
    VALUES (:ledger_key::text, sha256(convert_to(:ledger_key::text, 'UTF8')), 'sale ' || :order_id::text, now(), 2)
    RETURNING id AS ledger_id`,
	`INSERT INTO ledger_postings (transaction_id, account_id, currency, amount, created_at)
    VALUES (:ledger_id::bigint, :wallet_id::bigint, 'CNY', 0 - :price::bigint, now()), (:ledger_id::bigint, :deferred_id::bigint, 'CNY', :price::bigint, now())`,
	`UPDATE ledger_balances b SET balance = b.balance + v.delta
    FROM (VALUES (:wallet_id::bigint, 0, 0 - :price::bigint), (:deferred_id::bigint, :deferred_bucket::integer, :price::bigint)) AS v (account_id, bucket, delta)
    WHERE b.account_id = v.account_id AND b.bucket = v.bucket`,
	`INSERT INTO orders (id, checkout_id, merchant_id, shopper_id, chat_id, currency, total_minor, status, ledger_transaction_id, created_at)
    VALUES (:order_id, :checkout, :merchant_id, :shopper_id, :chat_id, 'CNY', :price::bigint, 'paid', :ledger_id::bigint, now())`,
	`INSERT INTO order_lines (order_id, line_no, item_id, sku, title, category, kind, quantity, unit_price_minor)
    VALUES (:order_id, 1, :item_id, :sku, :title, :category, :kind, 1, :price::bigint)`,
	`INSERT INTO coupons (id, order_id, line_no, merchant_id, shopper_id, item_id, code, secret, rules, time_zone,
        value_minor, currency, issued_at, valid_until, uses_total, uses_left, status)
    VALUES (:coupon_id, :order_id, 1, :merchant_id, :shopper_id, :item_id, :coupon_code,
        decode(md5(:coupon_id::text) || '00000000', 'hex'), :rules::jsonb, :time_zone, :price::bigint, 'CNY', now(), now() + interval '3 months', 1, 1, 'active')`,
	`INSERT INTO coupon_credentials (token_hash, coupon_id, shopper_id, merchant_id, source, created_at)
    VALUES (sha256(convert_to(:coupon_id::text, 'UTF8')), :coupon_id, :shopper_id, :merchant_id, 'chat', now())`,
	`INSERT INTO webhook_events (id, type, owners, ordering_key, seq, body, created_at)
    SELECT :event_id::text || e.suffix, e.type, ARRAY['channel:' || :channel_id::text, 'merchant:' || :merchant_id::text],
        :channel_id::text || ':' || :chat_id::text, nextval('webhook_event_seq'),
        convert_to(json_build_object('id', :event_id::text || e.suffix, 'type', e.type, 'created_at', now(), 'data', json_build_object(
            'chat', json_build_object('channel_id', :channel_id::text, 'external_user_id', :chat_id::text, 'chat_id', :chat_id::text),
            'message', 'Paid 3.00 CNY — ' || :title::text, e.object, json_build_object('id', e.id, 'merchant_id', :merchant_id::text,
            'item_id', :item_id::text, 'title', :title::text, 'total', json_build_object('amount', '3.00', 'currency', 'CNY'))))::text, 'UTF8'),
        now()
    FROM (VALUES ('-paid', 'order.paid', 'order', :order_id::text), ('-coupon', 'coupon.issued', 'coupon', :coupon_id::text)) AS e (suffix, type, object, id)`,
	`INSERT INTO idempotency_keys (scope, key, request_hash, method, path, status, content_type, body, created_at)
    VALUES ('channel:' || :channel_id::text, :order_id::text || '-pay', sha256(convert_to(:order_id::text, 'UTF8')), 'POST', '/v1/channel/purchases', 200,
        'application/json', convert_to(json_build_object('order', json_build_object('id', :order_id::text, 'checkout_id', :checkout::text,
            'merchant_id', :merchant_id::text, 'shopper_id', :shopper_id::text, 'status', 'paid', 'total', json_build_object('amount', '3.00', 'currency', 'CNY')),
            'coupons', json_build_array(json_build_object('id', :coupon_id::text, 'code', :coupon_code::text)),
            'wallet_balance', json_build_object('amount', '0.00', 'currency', 'CNY'))::text, 'UTF8'), now())`,
}

const leanTakeStock = `UPDATE item_stock SET quantity = quantity - 1 WHERE item_id = :item_id AND bucket = 0 AND quantity >= 1`

// The two-step checkout's own rows: the checkout and its line, written with
// the reservation; then marked paid by the confirming transaction, which
// finds its checkout again, locks it and marks it in one statement.
const (
	leanCheckoutInsert = `INSERT INTO checkouts (id, merchant_id, shopper_id, chat_id, status, reserved, currency, total_minor, created_at, expires_at)
    VALUES (:checkout, :merchant_id, :shopper_id, :chat_id, 'open', true, 'CNY', :price::bigint, now(), now() + interval '15 minutes')`
	leanCheckoutLineInsert = `INSERT INTO checkout_lines (checkout_id, line_no, item_id, quantity, unit_price_minor) VALUES (:checkout, 1, :item_id, 1, :price::bigint)`
	leanCheckoutPaid       = `UPDATE checkouts SET status = 'paid', reserved = false, order_id = :order_id, closed_at = now() WHERE id = :checkout AND status = 'open'`
)

// leanScript returns the pgbench script of a baseline.
func leanScript(name string, items int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\\set n random(0, %d)\n\\set s :client_id * %d + random(0, %d)\n", items-1, shoppersPerClient, shoppersPerClient-1)
	stmt := func(sql string) { b.WriteString(strings.TrimSpace(sql) + ";\n") }
	gset := func(sql string) { b.WriteString(strings.TrimSpace(sql) + " \\gset\n") }
	read := func(extra string) { gset(strings.Replace(leanReadSQL, "{extra}", extra, 1)) }
	pay := func(checkout bool) {
		for _, s := range leanPayStatements {
			if !checkout {
				s = strings.ReplaceAll(s, ":checkout", "NULL")
			}
			if strings.Contains(s, "RETURNING id AS ledger_id") {
				gset(s)
			} else {
				stmt(s)
			}
		}
	}
	switch name {
	case LeanFunction:
		stmt(`SELECT bench_lean_purchase(:n, :s)`)
	case LeanOneTransaction:
		stmt("BEGIN")
		read(`, 'order:' || 'ord_' || g.h || ':' || 'pay' AS ledger_key`)
		stmt(leanTakeStock)
		pay(false)
		stmt("COMMIT")
	case LeanTwoTransactions:
		stmt("BEGIN")
		read(`, 'chk_' || g.h AS checkout, 'checkout:' || 'chk_' || g.h || ':' || 'pay' AS ledger_key`)
		stmt(leanTakeStock)
		stmt(leanCheckoutInsert)
		stmt(leanCheckoutLineInsert)
		stmt(`INSERT INTO idempotency_keys (scope, key, request_hash, method, path, status, content_type, body, created_at)
    VALUES ('channel:' || :channel_id::text, :checkout::text || '-create', sha256(convert_to(:checkout::text, 'UTF8')), 'POST', '/v1/channel/checkouts', 201,
        'application/json', convert_to(json_build_object('id', :checkout::text, 'merchant_id', :merchant_id::text, 'shopper_id', :shopper_id::text,
            'status', 'open', 'reserved', true, 'total', json_build_object('amount', '3.00', 'currency', 'CNY'))::text, 'UTF8'), now())`)
		stmt("COMMIT")
		stmt("BEGIN")
		stmt(leanCheckoutPaid)
		pay(true)
		stmt("COMMIT")
	}
	return b.String()
}

// leanFunction is a lean script as one PL/pgSQL function: the read (with
// extra columns, which name the sale's ledger_key) into r, then statements
// with the script's :variables as r's fields, answering answer (if any).
type leanFunction struct {
	name, params, returns string
	extra                 string
	statements            []string
	answer                string
}

// leanPayFunction is the one-transaction script, with or without its
// idempotency row (lean-fn writes it; lean-http's store writes its own).
func leanPayFunction(name string, keyRow bool) leanFunction {
	f := leanFunction{name: name, params: "p_n integer, p_s integer", returns: "void",
		extra:      `, NULL::text AS checkout, 'order:' || 'ord_' || g.h || ':' || 'pay' AS ledger_key`,
		statements: []string{leanTakeStock}}
	f.statements = append(f.statements, leanPayStatementsFor(keyRow)...)
	if !keyRow {
		f.returns, f.answer = "text", "r.order_id"
	}
	return f
}

// leanPayStatementsFor are leanPayStatements, without the idempotency row
// unless keyRow.
func leanPayStatementsFor(keyRow bool) []string {
	var out []string
	for _, s := range leanPayStatements {
		if keyRow || !strings.Contains(s, "INSERT INTO idempotency_keys") {
			out = append(out, s)
		}
	}
	return out
}

// leanFunctions are the functions the baselines call: lean-fn's, and the
// three lean-http and lean-http-2tx serve (lean_http.go).
func leanFunctions() []leanFunction {
	reserve := leanFunction{name: leanHTTPReserveFunction, params: "p_n integer, p_s integer", returns: "text",
		extra:      `, 'chk_' || g.h AS checkout, NULL::text AS ledger_key`,
		statements: []string{leanTakeStock, leanCheckoutInsert, leanCheckoutLineInsert}, answer: "r.checkout"}
	confirm := leanFunction{name: leanHTTPConfirmFunction, params: "p_n integer, p_s integer, p_checkout text", returns: "text",
		extra:      `, p_checkout AS checkout, 'checkout:' || p_checkout || ':' || 'pay' AS ledger_key`,
		statements: append([]string{leanCheckoutPaid}, leanPayStatementsFor(false)...), answer: "r.order_id"}
	return []leanFunction{leanPayFunction("bench_lean_purchase", true), leanPayFunction(leanHTTPFunction, false), reserve, confirm}
}

func (f leanFunction) sql() string {
	var b strings.Builder
	fmt.Fprintf(&b, `CREATE OR REPLACE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    v_ledger_id bigint;
BEGIN
`, f.name, f.params, f.returns)
	read := strings.Replace(leanReadSQL, "{extra}", f.extra, 1)
	read = strings.NewReplacer(":n", "p_n", ":s", "p_s").Replace(read)
	b.WriteString("    " + strings.Replace(read, "\nFROM bench_lean_items", "\n    INTO r\nFROM bench_lean_items", 1) + ";\n")
	for _, s := range f.statements {
		s = plpgsqlVars(s)
		s = strings.Replace(s, "RETURNING id AS ledger_id", "RETURNING id INTO v_ledger_id", 1)
		b.WriteString("    " + s + ";\n")
	}
	if f.answer != "" {
		b.WriteString("    RETURN " + f.answer + ";\n")
	}
	b.WriteString("END;\n$fn$")
	return b.String()
}

// drop is the statement that drops the function.
func (f leanFunction) drop() string {
	var types []string
	for _, p := range strings.Split(f.params, ", ") {
		types = append(types, strings.Fields(p)[1])
	}
	return fmt.Sprintf("DROP FUNCTION IF EXISTS %s(%s)", f.name, strings.Join(types, ", "))
}

// plpgsqlVars turns a script's :variables into the function's record fields.
func plpgsqlVars(sql string) string {
	var out strings.Builder
	for i := 0; i < len(sql); i++ {
		if sql[i] == ':' && i+1 < len(sql) && sql[i+1] != ':' && (i == 0 || sql[i-1] != ':') && isIdentStart(sql[i+1]) {
			j := i + 1
			for j < len(sql) && (isIdentStart(sql[j]) || sql[j] >= '0' && sql[j] <= '9') {
				j++
			}
			name := sql[i+1 : j]
			if name == "ledger_id" {
				out.WriteString("v_ledger_id")
			} else {
				out.WriteString("r." + name)
			}
			i = j - 1
			continue
		}
		out.WriteByte(sql[i])
	}
	return out.String()
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// runLean runs the lean baselines with pgbench on the bench's own database,
// then lean-http and lean-http-2tx through the bench's server.
func (e *env) runLean(ctx context.Context, w *world) ([]PgbenchResult, []Result, error) {
	bin := findPgbench()
	if bin == "" {
		return []PgbenchResult{{Name: "lean", Missing: "pgbench not found; no lean baselines"}}, nil, nil
	}
	var shoppers []string
	for _, own := range w.shoppers {
		shoppers = append(shoppers, own...)
	}
	for i, stmt := range leanSetupSQL {
		var args []any
		switch i {
		case 3:
			args = []any{pq.Array(w.items)}
		case 4:
			args = []any{pq.Array(shoppers)}
		}
		if _, err := e.db.ExecContext(ctx, stmt, args...); err != nil {
			return nil, nil, fmt.Errorf("lean set-up: %w", err)
		}
	}
	defer func() {
		for _, f := range leanFunctions() {
			if _, err := e.db.ExecContext(context.Background(), f.drop()); err != nil {
				e.opts.Logger.Warn("lean tear-down", "function", f.name, "error", err)
			}
		}
		if _, err := e.db.ExecContext(context.Background(), leanTeardownSQL); err != nil {
			e.opts.Logger.Warn("lean tear-down", "error", err)
		}
	}()
	for _, f := range leanFunctions() {
		if _, err := e.db.ExecContext(ctx, f.sql()); err != nil {
			return nil, nil, fmt.Errorf("lean function %s: %w", f.name, err)
		}
	}
	dir, err := os.MkdirTemp("", "chatpay-bench-lean-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	var out []PgbenchResult
	for _, name := range LeanBaselines {
		script := filepath.Join(dir, name+".sql")
		if err := os.WriteFile(script, []byte(leanScript(name, len(w.items))), 0o644); err != nil {
			return nil, nil, err
		}
		if e.opts.ProfileDir != "" {
			_ = os.WriteFile(filepath.Join(e.opts.ProfileDir, name+".sql"), []byte(leanScript(name, len(w.items))), 0o644)
		}
		res := PgbenchResult{Name: name, Clients: e.opts.Clients, Threads: 2, Seconds: e.opts.Duration.Seconds()}
		progress(e.opts, "%s: pgbench -f %s.sql -M prepared -c %d -j 2", name, name, e.opts.Clients)
		e.pgbenchLoad(ctx, bin, []string{"-f", script, "-M", "prepared", "--max-tries", "5"}, e.dsnFor(), &res)
		out = append(out, res)
	}
	leanHTTP, err := e.runLeanHTTP(ctx, w)
	return out, leanHTTP, err
}

// dsnFor is the libpq connection string of the bench's own database.
func (e *env) dsnFor() string {
	if e.cluster != nil {
		return e.cluster.URL()
	}
	return e.dsn
}
