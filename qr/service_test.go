package qr_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/fakeclock"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/internal/testdb"
	"github.com/chatpay/chatpay/qr"
)

const (
	merchantA = "mer_aaaaaaaaaaaaaaaaaaaaaaaa"
	merchantB = "mer_bbbbbbbbbbbbbbbbbbbbbbbb"
	itemTea   = "item_teacardteacardteacard"
	baseURL   = "https://pay.chatpay.example"
)

var cny = money.MustCurrency("CNY")

func newService(t *testing.T) (*qr.Service, *sqlx.DB, *fakeclock.Clock) {
	t.Helper()
	db := testdb.New(t)
	clk := newClock()
	svc, err := qr.NewService(db, clk.Now, baseURL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc, db, clk
}

func mustStatic(t *testing.T, svc *qr.Service, db sqlx.ExtContext, merchantID, placement string) qr.Code {
	t.Helper()
	c, err := svc.CreateStatic(context.Background(), db, merchantID, qr.StaticInput{ItemID: itemTea, Placement: placement})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustDynamic(t *testing.T, svc *qr.Service, db sqlx.ExtContext, ttl time.Duration) qr.Code {
	t.Helper()
	c, err := svc.CreateDynamic(context.Background(), db, merchantA, "chk_oneoneoneoneoneoneoneone", money.New(300, cny), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	var p *problem.Error
	if !errors.As(err, &p) || p.Code != code || p.Status() != status {
		t.Fatalf("error %v, want %s (%d)", err, code, status)
	}
}

func TestNewServiceRejectsBadBaseURL(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"", "pay.example.com", "ftp://pay.example.com", "https://pay.example.com/?a=b",
		"https://user:pw@pay.example.com", "https://pay.example.com/" + strings.Repeat("x", qr.PublicBaseURLLengthMax)} {
		if _, err := qr.NewService(nil, time.Now, base, nil); err == nil {
			t.Fatalf("base URL %q accepted", base)
		}
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	svc, err := qr.NewService(nil, time.Now, "https://pay.example.com/shop/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.URL("tok"); got != "https://pay.example.com/shop/q/tok" {
		t.Fatalf("URL = %q", got)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, db, clk := newService(t)

	t.Run("OKStatic", func(t *testing.T) {
		c := mustStatic(t, svc, db, merchantA, "counter")
		got, err := svc.Resolve(ctx, db, c.Token)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != c.ID || got.Kind != qr.KindStatic || got.TargetType != qr.TargetItem || got.TargetID != itemTea ||
			got.MerchantID != merchantA || got.Placement != "counter" || !got.CreatedAt.Equal(clk.Now()) {
			t.Fatalf("resolved %+v, created %+v", got, c)
		}
	})
	t.Run("OKDynamic", func(t *testing.T) {
		c := mustDynamic(t, svc, db, 0)
		got, err := svc.Resolve(ctx, db, c.Token)
		if err != nil {
			t.Fatal(err)
		}
		if got.Amount == nil || got.Amount.Minor != 300 || got.Amount.Currency != cny {
			t.Fatalf("amount %+v", got.Amount)
		}
		if !got.ExpiresAt.Equal(clk.Now().Add(qr.DynamicTTLDefault)) {
			t.Fatalf("expires at %v, want now + %v", got.ExpiresAt, qr.DynamicTTLDefault)
		}
	})
	t.Run("ErrRevoked", func(t *testing.T) {
		c := mustStatic(t, svc, db, merchantA, "window poster")
		if _, err := svc.Revoke(ctx, merchantA, c.ID); err != nil {
			t.Fatal(err)
		}
		got, err := svc.Resolve(ctx, db, c.Token)
		wantCode(t, err, qr.CodeRevoked, 409)
		if got.ID != c.ID {
			t.Fatal("a revoked code is returned with its error so the page can name the merchant")
		}
	})
	t.Run("ErrExpired", func(t *testing.T) {
		svc, db, clk := newService(t)
		c := mustDynamic(t, svc, db, time.Minute)
		clk.Add(time.Minute - time.Microsecond)
		if _, err := svc.Resolve(ctx, db, c.Token); err != nil {
			t.Fatalf("a microsecond before expiry: %v", err)
		}
		clk.Add(time.Microsecond)
		_, err := svc.Resolve(ctx, db, c.Token)
		wantCode(t, err, qr.CodeExpired, 409)
	})
	t.Run("ErrUsed", func(t *testing.T) {
		c := mustDynamic(t, svc, db, 0)
		if _, err := svc.Consume(ctx, db, c.Token); err != nil {
			t.Fatal(err)
		}
		_, err := svc.Resolve(ctx, db, c.Token)
		wantCode(t, err, qr.CodeUsed, 409)
	})
	t.Run("ErrNotFoundUnknown", func(t *testing.T) {
		token, err := qr.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.Resolve(ctx, db, token)
		wantCode(t, err, qr.CodeNotFound, 404)
	})
	t.Run("ErrNotFoundMalformed", func(t *testing.T) {
		_, err := svc.Resolve(ctx, db, "'; DROP TABLE qr_codes; --")
		wantCode(t, err, qr.CodeNotFound, 404)
	})
}

func TestConsume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OKExactlyOnceUnderConcurrency", func(t *testing.T) {
		t.Parallel()
		svc, db, _ := newService(t)
		c := mustDynamic(t, svc, db, 0)
		const workers = 20
		var wg sync.WaitGroup
		errs := make([]error, workers)
		start := make(chan struct{})
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Each caller consumes inside its own transaction, as the
				// checkout confirmation does.
				errs[i] = database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
					_, err := svc.Consume(ctx, tx, c.Token)
					return err
				})
			}()
		}
		close(start)
		wg.Wait()
		succeeded := 0
		for _, err := range errs {
			switch {
			case err == nil:
				succeeded++
			case qr.HasCode(err, qr.CodeUsed):
			default:
				t.Fatalf("unexpected error: %v", err)
			}
		}
		if succeeded != 1 {
			t.Fatalf("%d consumers succeeded, want exactly 1", succeeded)
		}
	})
	t.Run("OKRolledBackLeavesCodeUsable", func(t *testing.T) {
		t.Parallel()
		svc, db, _ := newService(t)
		c := mustDynamic(t, svc, db, 0)
		failure := errors.New("payment refused")
		err := database.WithTx(ctx, db, nil, func(tx *sqlx.Tx) error {
			if _, err := svc.Consume(ctx, tx, c.Token); err != nil {
				return err
			}
			return failure
		})
		if !errors.Is(err, failure) {
			t.Fatal(err)
		}
		got, err := svc.Consume(ctx, db, c.Token)
		if err != nil || got.ConsumedAt == nil || got.ID != c.ID {
			t.Fatalf("consume after rollback: %+v, %v", got, err)
		}
	})
	t.Run("ErrExpired", func(t *testing.T) {
		t.Parallel()
		svc, db, clk := newService(t)
		c := mustDynamic(t, svc, db, time.Minute)
		clk.Add(time.Minute)
		_, err := svc.Consume(ctx, db, c.Token)
		wantCode(t, err, qr.CodeExpired, 409)
	})
	t.Run("ErrRevoked", func(t *testing.T) {
		t.Parallel()
		svc, db, _ := newService(t)
		c := mustDynamic(t, svc, db, 0)
		if _, err := svc.Revoke(ctx, merchantA, c.ID); err != nil {
			t.Fatal(err)
		}
		_, err := svc.Consume(ctx, db, c.Token)
		wantCode(t, err, qr.CodeRevoked, 409)
	})
	t.Run("ErrNotConsumableStatic", func(t *testing.T) {
		t.Parallel()
		svc, db, _ := newService(t)
		c := mustStatic(t, svc, db, merchantA, "")
		_, err := svc.Consume(ctx, db, c.Token)
		wantCode(t, err, qr.CodeNotConsumable, 409)
		if _, err := svc.Resolve(ctx, db, c.Token); err != nil {
			t.Fatalf("a static code stays usable: %v", err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		svc, db, _ := newService(t)
		token, _ := qr.NewToken()
		_, err := svc.Consume(ctx, db, token)
		wantCode(t, err, qr.CodeNotFound, 404)
	})
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, db, _ := newService(t)
	wantField := func(t *testing.T, err error, field string) {
		t.Helper()
		var p *problem.Error
		if !errors.As(err, &p) || p.Status() != 422 || len(p.Fields) == 0 || p.Fields[0].Field != field {
			t.Fatalf("error %v, want a 422 naming %s", err, field)
		}
	}
	static := func(item, placement string) error {
		_, err := svc.CreateStatic(ctx, db, merchantA, qr.StaticInput{ItemID: item, Placement: placement})
		return err
	}
	dynamic := func(checkout string, amount money.Amount, ttl time.Duration) error {
		_, err := svc.CreateDynamic(ctx, db, merchantA, checkout, amount, ttl)
		return err
	}
	t.Run("ErrItemID", func(t *testing.T) {
		wantField(t, static("", "counter"), "item_id")
		wantField(t, static("item/../x", "counter"), "item_id")
		wantField(t, static(strings.Repeat("i", qr.TargetIDLengthMax+1), "counter"), "item_id")
	})
	t.Run("ErrPlacement", func(t *testing.T) {
		wantField(t, static(itemTea, strings.Repeat("柜", qr.PlacementLengthMax+1)), "placement")
		wantField(t, static(itemTea, "counter\n"), "placement")
		wantField(t, static(itemTea, "\xff"), "placement")
	})
	t.Run("OKPlacementAtLimit", func(t *testing.T) {
		if err := static(itemTea, strings.Repeat("柜", qr.PlacementLengthMax)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrDynamic", func(t *testing.T) {
		wantField(t, dynamic("", money.New(300, cny), 0), "checkout_id")
		wantField(t, dynamic("chk_x", money.New(-1, cny), 0), "amount")
		wantField(t, dynamic("chk_x", money.Amount{Minor: 300}, 0), "amount")
		wantField(t, dynamic("chk_x", money.New(money.MinorMax+1, cny), 0), "amount")
		wantField(t, dynamic("chk_x", money.New(300, cny), qr.DynamicTTLMin-time.Second), "ttl")
		wantField(t, dynamic("chk_x", money.New(300, cny), qr.DynamicTTLMax+time.Second), "ttl")
		wantField(t, dynamic("chk_x", money.New(300, cny), -time.Minute), "ttl")
	})
	t.Run("ErrItemChecker", func(t *testing.T) {
		db := testdb.New(t)
		svc, err := qr.NewService(db, newClock().Now, baseURL, func(ctx context.Context, merchantID, itemID string) error {
			if merchantID == merchantA && itemID == itemTea {
				return nil
			}
			return problem.NotFound("item")
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreateStatic(ctx, db, merchantA, qr.StaticInput{ItemID: itemTea}); err != nil {
			t.Fatal(err)
		}
		_, err = svc.CreateStatic(ctx, db, merchantB, qr.StaticInput{ItemID: itemTea})
		wantField(t, err, "item_id")
	})
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, db, clk := newService(t)
	c := mustStatic(t, svc, db, merchantA, "counter")

	t.Run("ErrNotFoundOtherMerchant", func(t *testing.T) {
		_, err := svc.Revoke(ctx, merchantB, c.ID)
		wantCode(t, err, qr.CodeNotFound, 404)
	})
	t.Run("OKIdempotent", func(t *testing.T) {
		first, err := svc.Revoke(ctx, merchantA, c.ID)
		if err != nil || first.RevokedAt == nil || first.StatusAt(clk.Now()) != qr.StatusRevoked {
			t.Fatalf("revoke: %+v, %v", first, err)
		}
		clk.Add(time.Hour)
		again, err := svc.Revoke(ctx, merchantA, c.ID)
		if err != nil || !again.RevokedAt.Equal(*first.RevokedAt) {
			t.Fatalf("second revoke: %+v, %v", again, err)
		}
	})
	t.Run("ErrUsed", func(t *testing.T) {
		d := mustDynamic(t, svc, db, 0)
		if _, err := svc.Consume(ctx, db, d.Token); err != nil {
			t.Fatal(err)
		}
		_, err := svc.Revoke(ctx, merchantA, d.ID)
		wantCode(t, err, qr.CodeUsed, 409)
	})
	t.Run("ErrNotFoundMalformedID", func(t *testing.T) {
		_, err := svc.Revoke(ctx, merchantA, "../etc/passwd")
		wantCode(t, err, qr.CodeNotFound, 404)
	})
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, db, clk := newService(t)
	var created []string
	for i := range 7 {
		// Pairs share a timestamp so the id tiebreaker is exercised.
		if i%2 == 0 {
			clk.Add(time.Second)
		}
		created = append(created, mustStatic(t, svc, db, merchantA, fmt.Sprintf("spot %d", i)).ID)
	}
	mustDynamic(t, svc, db, 0)
	mustStatic(t, svc, db, merchantB, "elsewhere")
	if err := svc.RecordScan(ctx, db, created[0], qr.Scan{}); err != nil {
		t.Fatal(err)
	}

	var listed []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		page, err := svc.List(ctx, merchantA, qr.ListQuery{Kind: qr.KindStatic, Cursor: cursor, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Codes {
			if c.MerchantID != merchantA || c.Kind != qr.KindStatic {
				t.Fatalf("listed %+v", c)
			}
			if c.ID == created[0] && c.ScanCount != 1 {
				t.Fatalf("scan count %d, want 1", c.ScanCount)
			}
			listed = append(listed, c.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(listed) != len(created) {
		t.Fatalf("listed %d codes, want %d: %v", len(listed), len(created), listed)
	}
	for _, id := range created {
		if !slices.Contains(listed, id) {
			t.Fatalf("code %s missing from the list", id)
		}
	}

	all, err := svc.List(ctx, merchantA, qr.ListQuery{})
	if err != nil || len(all.Codes) != 8 || all.NextCursor != "" {
		t.Fatalf("all kinds: %d codes, cursor %q, %v", len(all.Codes), all.NextCursor, err)
	}
	// Pages joined are the one-page list in the same order.
	var staticInOrder []string
	for _, c := range all.Codes {
		if c.Kind == qr.KindStatic {
			staticInOrder = append(staticInOrder, c.ID)
		}
	}
	if !slices.Equal(listed, staticInOrder) {
		t.Fatalf("paged %v, unpaged %v", listed, staticInOrder)
	}
	for i := 1; i < len(all.Codes); i++ {
		prev, cur := all.Codes[i-1], all.Codes[i]
		if cur.CreatedAt.After(prev.CreatedAt) || (cur.CreatedAt.Equal(prev.CreatedAt) && cur.ID > prev.ID) {
			t.Fatalf("list is not newest first at %d", i)
		}
	}

	for name, q := range map[string]qr.ListQuery{
		"limit":  {Limit: qr.PageSizeMax + 1},
		"kind":   {Kind: "poster"},
		"cursor": {Cursor: "not-a-cursor!"},
	} {
		_, err := svc.List(ctx, merchantA, q)
		var p *problem.Error
		if !errors.As(err, &p) || p.Status() != 422 || p.Fields[0].Field != name {
			t.Fatalf("bad %s: %v", name, err)
		}
	}
}

func TestScansAndFunnel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, db, _ := newService(t)
	counter := mustStatic(t, svc, db, merchantA, "counter")
	window := mustStatic(t, svc, db, merchantA, "window poster")
	mustDynamic(t, svc, db, 0)
	other := mustStatic(t, svc, db, merchantB, "channel post")

	for range 3 {
		if err := svc.RecordScan(ctx, db, counter.ID, qr.Scan{ShopperRef: "shp_1", UserAgent: "TamTam/1.0"}); err != nil {
			t.Fatal(err)
		}
	}
	// A long, broken user agent is cut and cleaned rather than refused.
	if err := svc.RecordScan(ctx, db, window.ID, qr.Scan{UserAgent: strings.Repeat("é", 300) + "\xff\x00"}); err != nil {
		t.Fatal(err)
	}
	if err := svc.RecordScan(ctx, db, other.ID, qr.Scan{}); err != nil {
		t.Fatal(err)
	}
	err := svc.RecordScan(ctx, db, "qr_aaaaaaaaaaaaaaaaaaaaaaaa", qr.Scan{})
	wantCode(t, err, qr.CodeNotFound, 404)
	err = svc.RecordScan(ctx, db, counter.ID, qr.Scan{ShopperRef: strings.Repeat("s", qr.ShopperRefLengthMax+1)})
	wantCode(t, err, "validation_failed", 422)

	var agent string
	if err := db.GetContext(ctx, &agent, `SELECT user_agent FROM qr_scans WHERE qr_id = $1`, window.ID); err != nil {
		t.Fatal(err)
	}
	if len(agent) > qr.UserAgentLengthMax || !strings.HasPrefix(agent, "éé") || strings.ContainsAny(agent, "\x00") {
		t.Fatalf("stored user agent %q", agent)
	}

	rows, err := svc.Funnel(ctx, merchantA)
	if err != nil {
		t.Fatal(err)
	}
	scans := map[string]int64{}
	for _, r := range rows {
		scans[r.QRID] = r.Scans
	}
	if len(rows) != 2 || scans[counter.ID] != 3 || scans[window.ID] != 1 {
		t.Fatalf("funnel without payments: %+v", rows)
	}
}

func TestSchemaRefusesInvalidRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, db, _ := newService(t)
	// The second line of defence: a static code with an amount, or a dynamic
	// one without expiry, never reaches the table even past the Go checks.
	for name, q := range map[string]string{
		"StaticWithAmount": `INSERT INTO qr_codes (id, merchant_id, kind, target_type, target_id, token, amount_minor, currency, created_at)
			VALUES ('qr_aaaaaaaaaaaaaaaaaaaaaaaa', 'm', 'static', 'item', 'i', 'aaaaaaaaaaaaaaaaaaaaaaaaaa', 1, 'CNY', now())`,
		"DynamicWithoutExpiry": `INSERT INTO qr_codes (id, merchant_id, kind, target_type, target_id, token, amount_minor, currency, created_at)
			VALUES ('qr_aaaaaaaaaaaaaaaaaaaaaaaa', 'm', 'dynamic', 'checkout', 'c', 'aaaaaaaaaaaaaaaaaaaaaaaaaa', 1, 'CNY', now())`,
		"BadToken": `INSERT INTO qr_codes (id, merchant_id, kind, target_type, target_id, token, created_at)
			VALUES ('qr_aaaaaaaaaaaaaaaaaaaaaaaa', 'm', 'static', 'item', 'i', 'short', now())`,
	} {
		if _, err := db.ExecContext(ctx, q); database.SQLState(err) != database.CodeCheckViolation {
			t.Fatalf("%s: %v, want a check violation", name, err)
		}
	}
}
