package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/qr"
	"github.com/chatpay/chatpay/webhooks"
)

// The demo seeds the tea card of DESIGN.md so that a new user can buy one in
// a browser a minute after `make run`, and watch the purchase arrive "in the
// chat" through an in-process chat-sim that verifies every webhook.
const (
	demoStateFile     = "demo.json"
	demoStaffEmail    = "demo@chatpay.example"
	demoStaffPassword = "tea-card-demo"
	demoShopperUserID = "demo-shopper"
	demoWalletMinor   = 100_00
)

// demoState is what the demo created, kept in the data folder so a restart
// reuses it instead of seeding again.
type demoState struct {
	MerchantID     string `json:"merchant_id"`
	MerchantKey    string `json:"merchant_api_key"`
	ItemID         string `json:"item_id"`
	QRToken        string `json:"qr_token"`
	ChannelID      string `json:"channel_id"`
	ChannelKey     string `json:"channel_api_key"`
	LaunchSecret   string `json:"launch_secret"`
	WebhookID      string `json:"webhook_endpoint_id"`
	WebhookSecret  string `json:"webhook_secret"`
	ShopperID      string `json:"shopper_id"`
	FundedAtUnixMs int64  `json:"funded_at_unix_ms"`
}

// startDemo seeds (or reuses) the demo, starts the chat-sim receiver on a
// loopback port, mounts /demo/shop, and prints how to try it. The returned
// function stops the chat-sim.
func (a *app) startDemo(ctx context.Context, dataDir string, listener net.Listener, out io.Writer) (stop func(), err error) {
	statePath := filepath.Join(dataDir, demoStateFile)
	state, err := a.loadDemo(ctx, statePath)
	if err != nil {
		return nil, err
	}
	if state == nil {
		if state, err = a.seedDemo(ctx); err != nil {
			return nil, fmt.Errorf("seed demo: %w", err)
		}
	}

	// The chat-sim gets a fresh loopback port each start; its endpoint follows.
	owner := webhooks.Owner{Kind: webhooks.OwnerChannel, ID: state.ChannelID}
	if state.WebhookID != "" {
		_ = a.webhooks.DeleteEndpoint(ctx, owner, state.WebhookID) // gone already is fine
	}
	endpoint, secret, err := a.webhooks.CreateEndpoint(ctx, owner, webhooks.EndpointInput{
		URL: "http://" + listener.Addr().String() + "/webhooks", Description: "demo chat-sim",
	})
	if err != nil {
		_ = listener.Close()
		return nil, fmt.Errorf("demo webhook endpoint: %w", err)
	}
	state.WebhookID, state.WebhookSecret = endpoint.ID, secret.Secret
	if err := saveDemo(statePath, state); err != nil {
		_ = listener.Close()
		return nil, err
	}
	sim := &chatSim{secret: state.WebhookSecret, out: out, errOut: out, seen: map[string]bool{}}
	simServer := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = simServer.Serve(listener) }()

	a.mountDemo(state)

	itemURL := a.qr.URL(state.QRToken)
	terminal, err := qr.Terminal(itemURL, false)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n%s\nTea card QR (%s)\n\n", terminal, itemURL)
	fmt.Fprintf(out, "Buy it as the demo shopper (a fresh signed launch context each time):\n  %s/demo/shop\n\n", a.cfg.PublicBaseURL)
	fmt.Fprintf(out, "Merchant API key: %s\nChannel API key:  %s\nDashboard login:  %s / %s\n", state.MerchantKey, state.ChannelKey, demoStaffEmail, demoStaffPassword)
	fmt.Fprintf(out, "Chat messages from webhooks appear below as [chat …] lines.\n\n")
	return func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), chatSimShutdownTimout)
		defer cancel()
		_ = simServer.Shutdown(shutdownCtx)
	}, nil
}

func (a *app) loadDemo(ctx context.Context, path string) (*demoState, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read demo state: %w", err)
	}
	var state demoState
	if err := json.Unmarshal(raw, &state); err != nil {
		return nil, fmt.Errorf("demo state %s: %w", path, err)
	}
	// A data folder pointed at another database: seed that database afresh.
	if _, err := a.catalog.Merchant(ctx, state.MerchantID); err != nil {
		return nil, nil
	}
	return &state, nil
}

func saveDemo(path string, state *demoState) error {
	raw, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// The file holds API keys: readable by its owner only.
	return os.WriteFile(path, raw, 0o600)
}

func (a *app) seedDemo(ctx context.Context) (*demoState, error) {
	m, err := a.catalog.CreateMerchant(ctx, catalog.MerchantDraft{Name: "McDonald's", TimeZone: "Asia/Shanghai", DefaultCurrency: "CNY"})
	if err != nil {
		return nil, err
	}
	state := &demoState{MerchantID: m.ID}
	if _, err := a.catalog.CreateStaff(ctx, m.ID, demoStaffEmail, demoStaffPassword); err != nil {
		return nil, err
	}
	if _, state.MerchantKey, err = a.catalog.CreateKey(ctx, m.ID, "demo"); err != nil {
		return nil, err
	}
	rules, fieldErrs := catalog.ParseRules(catalog.RulesJSON{
		Kind: catalog.KindVoucher, ValidFor: "P3M",
		Windows:           []catalog.WindowJSON{{From: "14:00", To: "17:00"}},
		ExcludeCategories: []string{"coffee"},
	}, "rules")
	if len(fieldErrs) > 0 {
		return nil, fmt.Errorf("demo rules: %v", fieldErrs)
	}
	stock, limit := int64(500), 2
	item, err := a.catalog.CreateItem(ctx, m.ID, catalog.ItemDraft{
		SKU: "TEA-CARD", Title: "Tea card", Description: "A pot of tea with a snack, any afternoon.",
		Category: "tea", Price: money.New(300, money.MustCurrency("CNY")), Kind: catalog.KindVoucher,
		Stock: &stock, PerShopperLimit: &limit, Active: true, Rules: &rules,
	})
	if err != nil {
		return nil, err
	}
	state.ItemID = item.ID
	code, err := a.qr.CreateStatic(ctx, a.db, m.ID, qr.StaticInput{ItemID: item.ID, Placement: "counter"})
	if err != nil {
		return nil, err
	}
	state.QRToken = code.Token
	channel, err := a.payments.CreateChannel(ctx, payments.NewChannel{Name: "Demo messenger", Kind: "other"})
	if err != nil {
		return nil, err
	}
	state.ChannelID, state.ChannelKey, state.LaunchSecret = channel.Channel.ID, channel.APIKey, channel.LaunchSecret
	err = database.WithTx(ctx, a.db, nil, func(tx *sqlx.Tx) error {
		shopper, err := a.payments.EnsureShopper(ctx, tx, channel.Channel.ID, demoShopperUserID, "Demo Shopper")
		if err != nil {
			return err
		}
		state.ShopperID = shopper.ID
		return a.payments.FundWallets(ctx, tx, payments.Funding{ShopperID: shopper.ID,
			Amount: money.New(demoWalletMinor, money.MustCurrency("CNY")), Source: "demo",
			Key: "demo:" + shopper.ID, Description: "demo wallet funding"})
	})
	if err != nil {
		return nil, err
	}
	state.FundedAtUnixMs = a.cfg.Now().UnixMilli()
	return state, nil
}
