package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The dashboard's QR funnel joins qr's scans with payments' checkouts and
// paid orders per code; neither domain calls the other for it.
func TestDashboardJoinsQRFunnel(t *testing.T) {
	ta := startTestApp(t, storyStart)
	staff := newDashboardClient(t, ta)
	staff.signup("McDonald's", "staff@example.com")
	var merchantID string
	if err := ta.db.Get(&merchantID, `SELECT id FROM merchants`); err != nil {
		t.Fatal(err)
	}
	_, key, err := ta.app.catalog.CreateKey(context.Background(), merchantID, "pos")
	if err != nil {
		t.Fatal(err)
	}
	itemID := ta.call("POST", "/v1/items", key, "", teaCard(10)).JSON(t)["id"].(string)
	codeURL := ta.call("POST", "/v1/qr-codes", key, "", map[string]any{"item_id": itemID, "placement": "counter"}).JSON(t)["url"].(string)
	path := strings.TrimPrefix(codeURL, ta.URL)
	channel := ta.channel()
	buyer, err := ta.app.payments.EnsureShopper(context.Background(), ta.db, channel.Channel.ID, "buyer", "")
	if err != nil {
		t.Fatal(err)
	}
	ta.fund(buyer.ID, 300, "CNY")
	for _, user := range []string{"buyer", "browser"} {
		if page := ta.get(path + "?launch=" + url.QueryEscape(ta.launch(channel, user, ""))); page.Status != http.StatusOK {
			t.Fatalf("checkout page: %d %s", page.Status, page.Body)
		}
	}
	buy := ta.postForm(path+"/buy", url.Values{"launch": {ta.launch(channel, "buyer", "")}, "idempotency_key": {"tap"}})
	if buy.Status != http.StatusSeeOther {
		t.Fatalf("buy: %d %s", buy.Status, buy.Body)
	}
	// A second shopper's refused tap (an empty wallet) leaves no checkout.
	short := ta.postForm(path+"/buy", url.Values{"launch": {ta.launch(channel, "browser", "")}, "idempotency_key": {"tap"}})
	if short.Status == http.StatusSeeOther {
		t.Fatalf("an empty wallet paid: %d", short.Status)
	}

	_, home := staff.get("/dashboard")
	for stage, want := range map[string]string{"Scans": "2", "Checkouts": "1", "Paid": "1"} {
		row := regexp.MustCompile(`<dt>` + stage + `</dt><dd><span class="funnel-track"><span class="funnel-bar" style="[^"]*"></span></span><span class="funnel-value">([^<]*)</span>`)
		if m := row.FindStringSubmatch(home); m == nil || m[1] != want {
			t.Errorf("funnel shows %s %v, want %s", stage, m, want)
		}
	}
}
