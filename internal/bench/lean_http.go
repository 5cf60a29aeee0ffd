package bench

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/problem"
)

// The purchase's floors over HTTP: the lean functions behind what every
// purchase over HTTP must do whatever its own logic — a JSON request to
// the bench's server, the channel key's look-up, and the Idempotency-Key
// claimed and stored in the request's transaction (internal/idempotency,
// as chatpay runs it) — in the same process as chatpay's server, served to
// the same clients as the scenarios.
//
//   - lean-http: lean-fn's function in one request (the one-call
//     purchase's floor). onecall / lean-http is what chatpay's own purchase
//     logic costs on top of it; lean-http / lean-fn what HTTP,
//     authentication and idempotency cost.
//   - lean-http-2tx: lean-2tx's two transactions as two requests, create +
//     reserve, then confirm (the two-step checkout's floor). The server
//     keeps nothing between them, so the confirming function reads the
//     item, shopper and accounts again, where lean-2tx's script reuses what
//     its first transaction read.
const (
	LeanHTTP      = "lean-http"
	LeanHTTPTwoTx = "lean-http-2tx"
)

// Their routes on the bench's server, and the functions behind them
// (lean.go's leanFunctions).
const (
	leanHTTPPath            = "/bench/lean/purchases"
	leanHTTPReservePath     = "/bench/lean/checkouts"
	leanHTTPConfirmPath     = "/bench/lean/checkouts/confirm"
	leanHTTPFunction        = "bench_lean_http_purchase"
	leanHTTPReserveFunction = "bench_lean_http_reserve"
	leanHTTPConfirmFunction = "bench_lean_http_confirm"
)

// leanRequest is a lean request's body: the item and shopper numbers a
// lean script draws, and for a confirmation the checkout.
type leanRequest struct {
	N        int    `json:"n"`
	S        int    `json:"s"`
	Checkout string `json:"checkout"`
}

// withLeanHTTP serves the lean requests next to chatpay's handler.
func withLeanHTTP(db *sqlx.DB, app http.Handler) http.Handler {
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if p, ok := problem.As(err); ok && p.Status() < http.StatusInternalServerError {
			status, body := problem.Render(p, c.Request().URL.Path)
			_ = c.Blob(status, problem.ContentType, body)
			return
		}
		_ = c.NoContent(http.StatusInternalServerError)
	}
	stmts := database.NewStmts(db)
	store := idempotency.NewStore(db, time.Now)
	// serve answers one lean request: the key's channel, then query (one
	// function call answering an id) in the transaction claiming the key.
	serve := func(query string, status int, args func(leanRequest) []any, answer func(id string) any) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx := c.Request().Context()
			key, _ := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
			hash := sha256.Sum256([]byte(key))
			var channelID string
			if err := stmts.Get(ctx, db, &channelID, `SELECT id FROM channels WHERE api_key_hash = $1`, hash[:]); err != nil {
				return problem.New(problem.KindUnauthorized, "invalid_api_key", "the channel API key is not valid")
			}
			var in leanRequest
			body, err := httpapi.BindJSON(c, &in)
			if err != nil {
				return err
			}
			return store.Handle(c, idempotency.ChannelScope(channelID), body, func(tx *sqlx.Tx) (int, any, error) {
				var id string
				if err := stmts.Get(ctx, tx, &id, query, args(in)...); err != nil {
					return 0, nil, err
				}
				return status, answer(id), nil
			})
		}
	}
	drawn := func(in leanRequest) []any { return []any{in.N, in.S} }
	paid := func(id string) any { return map[string]any{"order": map[string]any{"id": id, "status": "paid"}} }
	e.POST(leanHTTPPath, serve(`SELECT `+leanHTTPFunction+`($1, $2)`, http.StatusOK, drawn, paid))
	e.POST(leanHTTPReservePath, serve(`SELECT `+leanHTTPReserveFunction+`($1, $2)`, http.StatusCreated, drawn,
		func(id string) any { return map[string]any{"id": id, "status": "open", "reserved": true} }))
	e.POST(leanHTTPConfirmPath, serve(`SELECT `+leanHTTPConfirmFunction+`($1, $2, $3)`, http.StatusOK,
		func(in leanRequest) []any { return []any{in.N, in.S, in.Checkout} }, paid))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/bench/lean/") {
			e.ServeHTTP(w, r)
			return
		}
		app.ServeHTTP(w, r)
	})
}

// runLeanHTTP drives both floors like the onecall and spread scenarios
// (same clients, items and shoppers); their rows are complete purchases,
// which the audit holds.
func (e *env) runLeanHTTP(ctx context.Context, w *world) ([]Result, error) {
	var out []Result
	for _, name := range []string{LeanHTTP, LeanHTTPTwoTx} {
		progress(e.opts, "%s: lean functions behind HTTP, the channel key and Idempotency-Key, %d clients", name, e.opts.Clients)
		e.resetStatements(ctx)
		rngs := clientRands(e.opts.Clients, 3)
		l := e.drive(ctx, name, e.opts.PurchasesMax, func(ctx context.Context, c, n int) outcome {
			in := leanRequest{N: rngs[c].IntN(len(w.items)), S: c*shoppersPerClient + n%shoppersPerClient}
			key := e.key(name, c, n)
			if name == LeanHTTPTwoTx {
				created, out := e.leanCall(ctx, w, leanHTTPReservePath, key+"-create", in, http.StatusCreated)
				if out.code != "" {
					return out
				}
				var checkout struct{ ID string }
				if err := json.Unmarshal(created, &checkout); err != nil {
					return outcome{status: http.StatusCreated, code: "unreadable"}
				}
				in.Checkout = checkout.ID
				_, out = e.leanCall(ctx, w, leanHTTPConfirmPath, key+"-confirm", in, http.StatusOK)
				return out
			}
			_, out := e.leanCall(ctx, w, leanHTTPPath, key, in, http.StatusOK)
			return out
		}, nil)
		res := l.result(name)
		res.Statements = e.topStatements(ctx, name)
		if err := e.audit(ctx, res); err != nil {
			return out, err
		}
		out = append(out, *res)
	}
	return out, nil
}

// leanCall posts one lean request and answers its body.
func (e *env) leanCall(ctx context.Context, w *world, path, key string, in leanRequest, want int) ([]byte, outcome) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, outcome{code: "unwritable"}
	}
	r, err := e.call(ctx, http.MethodPost, path, w.channel.Key, key, json.RawMessage(body))
	if err != nil {
		return nil, outcome{code: "transport"}
	}
	if r.Status != want {
		return nil, outcome{status: r.Status, code: orUnknown(r.code())}
	}
	return r.Body, outcome{status: r.Status}
}

// leanHTTPResult is the named floor's result, or nil.
func (r *Report) leanHTTPResult(name string) *Result {
	for i := range r.LeanHTTP {
		if r.LeanHTTP[i].Name == name {
			return &r.LeanHTTP[i]
		}
	}
	return nil
}
