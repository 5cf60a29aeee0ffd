package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/testdb"
)

// TestServeConnectionAndHeaderLimits: headers over --max-header-bytes get 431
// without reaching a handler, and clients past --max-connections wait to be
// accepted instead of each holding a goroutine and its buffers.
func TestServeConnectionAndHeaderLimits(t *testing.T) {
	base, _ := serveInProcess(t, "--database-url", testdb.DSN(t), "--data-dir", dataDir(t), "--dev-allow-unsafe-durability",
		"--max-header-bytes", "8192", "--max-connections", "3")
	addr := strings.TrimPrefix(base, "http://")

	t.Run("ErrHeaderTooLarge", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 20<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
	})

	t.Run("OKConnectionsQueueAtTheCap", func(t *testing.T) {
		// Three clients hold connections open with an unfinished request.
		var held []net.Conn
		for range 3 {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
				t.Fatal(err)
			}
			held = append(held, conn)
		}
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		time.Sleep(200 * time.Millisecond)   // let serve accept them
		fourth, err := net.Dial("tcp", addr) // the kernel's backlog still takes it
		if err != nil {
			t.Fatal(err)
		}
		defer fourth.Close()
		if _, err := fourth.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = fourth.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := bufio.NewReader(fourth).ReadString('\n'); err == nil {
			t.Fatal("a fourth connection was served while three were open at a cap of 3")
		}
		held[0].Close()
		held = held[1:]
		_ = fourth.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(fourth).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("after one closed, the waiting client got %q, %v", line, err)
		}
	})
}
