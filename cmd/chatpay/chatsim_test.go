package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatpay/chatpay/webhooks"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestChatSim(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	secret := webhooks.NewSecret()
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"chat-sim", "--listen", addr, "--secret", secret}, &stdout, &stderr, func(string) string { return "" })
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stdout.String(), "listening") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	body := []byte(`{"id":"evt_1","type":"order.paid","timestamp":"2026-01-01T00:00:00Z","data":{"chat":{"channel_id":"chn_1","chat_id":"42"},"message":"Paid 3.00 CNY — Tea card"}}`)
	post := func(signWith string) int {
		now := time.Now()
		sig, err := webhooks.Sign(signWith, "evt_1", now, body)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", "http://"+addr+"/", bytes.NewReader(body))
		req.Header.Set(webhooks.HeaderID, "evt_1")
		req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(webhooks.HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post(webhooks.NewSecret()); s != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", s)
	}
	if s := post(secret); s != http.StatusNoContent {
		t.Fatalf("signed: %d", s)
	}
	if s := post(secret); s != http.StatusNoContent { // a redelivery is acknowledged, not printed
		t.Fatalf("redelivery: %d", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(stdout.String(), "[chat 42] Paid 3.00 CNY — Tea card"); got != 1 {
		t.Fatalf("printed %d times:\n%s", got, stdout.String())
	}
	if !strings.Contains(stderr.String(), "rejected webhook") {
		t.Fatalf("stderr: %s", stderr.String())
	}
}
