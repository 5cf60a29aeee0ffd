package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/chatpay/chatpay/webhooks"
)

// chat-sim limits, units last.
const (
	chatSimBodyBytesMax   = 64 << 10
	chatSimSeenIDsMax     = 10000
	chatSimShutdownTimout = 5 * time.Second
)

// runChatSim is a reference messenger backend: it receives chatpay's
// webhooks on loopback, verifies each with webhooks.Verify, drops
// redeliveries (delivery is at least once), and prints the message it would
// post in the chat.
func runChatSim(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("chat-sim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "address to receive webhooks on")
	secret := fs.String("secret", env.getenv("CHATPAY_CHATSIM_SECRET"), "the endpoint's whsec_ secret (env CHATPAY_CHATSIM_SECRET)")
	whatsApp := whatsAppBotFlags(fs, env)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay chat-sim --secret whsec_… [--listen 127.0.0.1:8090]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if !strings.HasPrefix(*secret, "whsec_") || (*whatsApp.channelID != "" && *whatsApp.secret == "") {
		fs.Usage()
		return errUsage
	}
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	sim := &chatSim{secret: *secret, out: env.stdout, errOut: env.stderr, seen: map[string]bool{}}
	if *whatsApp.channelID != "" {
		sim.whatsApp = &whatsAppBot{channelID: *whatsApp.channelID, secret: *whatsApp.secret, publicURL: *whatsApp.publicURL,
			now: time.Now, out: env.stdout, mu: &sim.mu}
	}
	server := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(env.stdout, "chat-sim listening on http://%s\n", listener.Addr())
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	select {
	case err := <-served:
		return fmt.Errorf("chat-sim: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), chatSimShutdownTimout)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("chat-sim shutdown: %w", err)
	}
	return nil
}

type chatSim struct {
	secret      string
	out, errOut io.Writer
	whatsApp    *whatsAppBot // POST /whatsapp, when --whatsapp-channel is set

	mu    sync.Mutex
	seen  map[string]bool
	order []string
}

func (s *chatSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/whatsapp" && s.whatsApp != nil {
		s.whatsApp.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, chatSimBodyBytesMax+1))
	if err != nil || len(body) > chatSimBodyBytesMax {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	if err := webhooks.Verify(s.secret, r.Header, body, webhooks.VerifyToleranceDefault, time.Now()); err != nil {
		s.mu.Lock()
		fmt.Fprintf(s.errOut, "rejected webhook: %v\n", err)
		s.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var env struct {
		Type string `json:"type"`
		Data struct {
			Chat    webhooks.Chat `json:"chat"`
			Message string        `json:"message"`
			Coupon  struct {
				RedeemURL string `json:"redeem_url"`
			} `json:"coupon"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.Header.Get(webhooks.HeaderID)
	if !s.seen[id] {
		s.remember(id)
		where := "chat " + env.Data.Chat.ChatID
		if env.Data.Chat.ChatID == "" {
			where = env.Type // endpoint.disabled, test.ping: for the operator, not a chat
		}
		fmt.Fprintf(s.out, "[%s] %s\n", where, env.Data.Message)
		if link := env.Data.Coupon.RedeemURL; link != "" {
			// A bot posts the coupon's link as the message's button.
			fmt.Fprintf(s.out, "[%s] [Open coupon] %s\n", where, link)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// remember keeps the last chatSimSeenIDsMax ids, enough to drop redeliveries.
func (s *chatSim) remember(id string) {
	s.seen[id] = true
	s.order = append(s.order, id)
	if len(s.order) > chatSimSeenIDsMax {
		delete(s.seen, s.order[0])
		s.order = s.order[1:]
	}
}
