package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/testdb"
)

// TestDemoKeepsTheWebhookGuard: serve --demo delivers to its own chat-sim on
// loopback, and to nothing else a merchant could name: not the cloud
// metadata address, not another loopback port, not plain http elsewhere.
func TestDemoKeepsTheWebhookGuard(t *testing.T) {
	dir := dataDir(t)
	base, _ := serveInProcess(t, "--demo", "--database-url", testdb.DSN(t), "--data-dir", dir, "--dev-allow-unsafe-durability")
	raw, err := os.ReadFile(filepath.Join(dir, demoStateFile))
	if err != nil {
		t.Fatal(err)
	}
	var state demoState
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatal(err)
	}
	post := func(key, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	for _, url := range []string{"https://169.254.169.254/latest/meta-data", "http://127.0.0.1:9/hook", "https://127.0.0.1:9/hook",
		"http://bot.example.com/hook", "https://10.0.0.1/hook"} {
		if status, body := post(state.MerchantKey, "/v1/webhooks/endpoints", `{"url":"`+url+`"}`); status != http.StatusUnprocessableEntity {
			t.Errorf("the demo merchant registered %s: %d %s", url, status, body)
		}
	}
	// The chat-sim's own endpoint works through the same guard.
	if status, body := post(state.ChannelKey, "/v1/webhooks/endpoints/"+state.WebhookID+"/test", ""); status != http.StatusAccepted {
		t.Fatalf("test event: %d %s", status, body)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest("GET", base+"/v1/webhooks/endpoints/"+state.WebhookID+"/deliveries", nil)
		req.Header.Set("Authorization", "Bearer "+state.ChannelKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(body, []byte(`"status":"delivered"`)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chat-sim never got the test event: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
