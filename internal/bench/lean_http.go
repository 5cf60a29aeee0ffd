package bench

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
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

// LeanHTTP is the lean one-call function behind what every one-call
// purchase over HTTP must do whatever its own logic: an HTTP request with
// a JSON body, the channel key's look-up, and the Idempotency-Key claimed
// and stored in the purchase's transaction (internal/idempotency, as
// chatpay runs it), in the same process as chatpay's server, served to
// the same clients. It is the floor of the one-call purchase: onecall /
// lean-http is what chatpay's own purchase logic costs on top of it, and
// lean-http / lean-fn what HTTP, authentication and idempotency cost.
const LeanHTTP = "lean-http"

// leanHTTPPath is the lean purchase's route on the bench's server.
const leanHTTPPath = "/bench/lean-purchases"

// leanHTTPFunction is lean-fn's function without its idempotency row (the
// store writes the real one), answering the order's id.
const leanHTTPFunction = "bench_lean_http_purchase"

// withLeanHTTP serves the lean purchase next to chatpay's handler.
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
	e.POST(leanHTTPPath, func(c echo.Context) error {
		ctx := c.Request().Context()
		key, _ := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		hash := sha256.Sum256([]byte(key))
		var channelID string
		if err := stmts.Get(ctx, db, &channelID, `SELECT id FROM channels WHERE api_key_hash = $1`, hash[:]); err != nil {
			return problem.New(problem.KindUnauthorized, "invalid_api_key", "the channel API key is not valid")
		}
		var in struct {
			N int `json:"n"`
			S int `json:"s"`
		}
		body, err := httpapi.BindJSON(c, &in)
		if err != nil {
			return err
		}
		return store.Handle(c, idempotency.ChannelScope(channelID), body, func(tx *sqlx.Tx) (int, any, error) {
			var orderID string
			if err := stmts.Get(ctx, tx, &orderID, `SELECT `+leanHTTPFunction+`($1, $2)`, in.N, in.S); err != nil {
				return 0, nil, err
			}
			return http.StatusOK, map[string]any{"order": map[string]any{"id": orderID, "status": "paid"}}, nil
		})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == leanHTTPPath {
			e.ServeHTTP(w, r)
			return
		}
		app.ServeHTTP(w, r)
	})
}

// runLeanHTTP drives the lean purchase over HTTP like the onecall scenario
// (same clients, items and shoppers); its rows are complete purchases,
// which the audit holds.
func (e *env) runLeanHTTP(ctx context.Context, w *world) (*Result, error) {
	progress(e.opts, "%s: the lean function behind HTTP, the channel key and Idempotency-Key, %d clients", LeanHTTP, e.opts.Clients)
	e.resetStatements(ctx)
	rngs := clientRands(e.opts.Clients, 3)
	l := e.drive(ctx, LeanHTTP, e.opts.PurchasesMax, func(ctx context.Context, c, n int) outcome {
		item := rngs[c].IntN(len(w.items))
		body := fmt.Appendf(nil, `{"n":%d,"s":%d}`, item, c*shoppersPerClient+n%shoppersPerClient)
		r, err := e.call(ctx, http.MethodPost, leanHTTPPath, w.channel.Key, e.key(LeanHTTP, c, n), json.RawMessage(body))
		if err != nil {
			return outcome{code: "transport"}
		}
		if r.Status != http.StatusOK {
			return outcome{status: r.Status, code: orUnknown(r.code())}
		}
		return outcome{status: r.Status}
	}, nil)
	res := l.result(LeanHTTP)
	res.Statements = e.topStatements(ctx, LeanHTTP)
	return res, e.audit(ctx, res)
}
