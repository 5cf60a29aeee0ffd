package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
)

// chat-sim's WhatsApp bot plays the merchant's side of a wa.me QR code
// (docs/messengers.md): the shopper scans https://wa.me/<number>?text=Buy%20<token>,
// WhatsApp opens the chat with that text typed, the shopper sends it, and
// WhatsApp's Cloud API posts the message to the bot's webhook. The bot
// answers with the checkout link, carrying a launch context it signs with the
// channel's launch secret, so chatpay knows the shopper by their WhatsApp
// number and answers in that chat. chat-sim prints the reply (a real bot
// sends it through the Cloud API's /messages) and returns it as JSON.
type whatsAppBot struct {
	channelID string
	secret    string
	publicURL string
	now       func() time.Time
	out       io.Writer
	mu        *sync.Mutex
}

type whatsAppFlags struct {
	channelID, secret, publicURL *string
}

func whatsAppBotFlags(fs *flag.FlagSet, env *environment) whatsAppFlags {
	return whatsAppFlags{
		channelID: fs.String("whatsapp-channel", env.getenv("CHATPAY_WHATSAPP_CHANNEL"),
			"play the WhatsApp bot of this channel (chn_…) on POST /whatsapp (env CHATPAY_WHATSAPP_CHANNEL)"),
		secret: fs.String("launch-secret", env.getenv("CHATPAY_LAUNCH_SECRET"),
			"the WhatsApp channel's launch secret (env CHATPAY_LAUNCH_SECRET)"),
		publicURL: fs.String("public-url", envOr(env, "CHATPAY_PUBLIC_URL", "http://127.0.0.1:8080"),
			"chatpay's public URL, for the checkout links the bot sends (env CHATPAY_PUBLIC_URL)"),
	}
}

// whatsAppToken finds the QR token in the pre-filled text.
var whatsAppToken = regexp.MustCompile(`(?:^|\s)([a-z2-7]{26})(?:\s|$)`)

// whatsAppWebhook is the part of the Cloud API's message notification the bot reads.
type whatsAppWebhook struct {
	Entry []struct {
		Changes []struct {
			Value struct {
				Contacts []struct {
					Profile struct {
						Name string `json:"name"`
					} `json:"profile"`
				} `json:"contacts"`
				Messages []struct {
					From string `json:"from"`
					Type string `json:"type"`
					Text struct {
						Body string `json:"body"`
					} `json:"text"`
				} `json:"messages"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type whatsAppReply struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

func (b *whatsAppBot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, chatSimBodyBytesMax+1))
	if err != nil || len(body) > chatSimBodyBytesMax {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	var hook whatsAppWebhook
	if err := json.Unmarshal(body, &hook); err != nil {
		http.Error(w, "not a WhatsApp webhook", http.StatusBadRequest)
		return
	}
	replies := []whatsAppReply{}
	for _, entry := range hook.Entry {
		for _, change := range entry.Changes {
			name := ""
			if len(change.Value.Contacts) > 0 {
				name = change.Value.Contacts[0].Profile.Name
			}
			for _, m := range change.Value.Messages {
				if reply, ok := b.answer(m.From, name, m.Text.Body); ok {
					replies = append(replies, reply)
				}
			}
		}
	}
	b.mu.Lock()
	for _, reply := range replies {
		fmt.Fprintf(b.out, "[whatsapp %s] %s\n", reply.To, reply.Text)
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"replies": replies})
}

// answer turns "Buy <token>" from a WhatsApp number into the checkout link.
func (b *whatsAppBot) answer(from, name, text string) (whatsAppReply, bool) {
	match := whatsAppToken.FindStringSubmatch(strings.TrimPrefix(text, strings.TrimSpace(qr.WhatsAppTextPrefix)))
	if match == nil || from == "" {
		return whatsAppReply{}, false
	}
	launch := payments.SignLaunch(b.secret, map[string]string{
		"channel_id": b.channelID, "user_id": from, "chat_id": from, "name": name,
		"auth_date": strconv.FormatInt(b.now().Unix(), 10),
	})
	link := strings.TrimRight(b.publicURL, "/") + "/q/" + match[1] + "?launch=" + url.QueryEscape(launch)
	return whatsAppReply{To: from, Text: "Tap to pay: " + link}, true
}
