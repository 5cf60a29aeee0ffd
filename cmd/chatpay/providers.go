package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/payments"
	"github.com/chatpay/chatpay/payments/providerconfig"
)

// hostedFlags are the settings of the real payment providers (Stripe, WeChat
// Pay) that merchants configure with `chatpay provider`.
type hostedFlags struct {
	// Keys seal the merchants' provider secrets: "id:base64key,…", the
	// first sealing, all opening (rotation: put the new key first, run
	// `chatpay provider rotate-keys`, then drop the old one).
	Keys         string
	StripeURL    string
	WeChatPayURL string
}

func hostedProviderFlags(fs *flag.FlagSet, env *environment) *hostedFlags {
	hf := &hostedFlags{}
	fs.StringVar(&hf.Keys, "provider-keys", env.getenv("CHATPAY_PROVIDER_KEYS"),
		"keys sealing merchants' Stripe and WeChat Pay secrets: id:base64(32 bytes)[,id:key…], the first one seals (env CHATPAY_PROVIDER_KEYS; make one with: echo k1:$(openssl rand -base64 32))")
	fs.StringVar(&hf.StripeURL, "stripe-api-url", env.getenv("CHATPAY_STRIPE_API_URL"),
		"Stripe API base URL; empty is Stripe's own (env CHATPAY_STRIPE_API_URL; tests use stripe-mock)")
	fs.StringVar(&hf.WeChatPayURL, "wechatpay-api-url", env.getenv("CHATPAY_WECHATPAY_API_URL"),
		"WeChat Pay API base URL; empty is WeChat Pay's own (env CHATPAY_WECHATPAY_API_URL)")
	return hf
}

// store opens the merchants' provider settings. Without keys every merchant
// stays on the sandbox until keys are configured, and setting a provider is
// refused.
func (hf *hostedFlags) store(db *sqlx.DB, now func() time.Time) (*providerconfig.Store, error) {
	var keys providerconfig.Keys
	if hf.Keys != "" {
		var err error
		if keys, err = providerconfig.ParseKeys(hf.Keys); err != nil {
			return nil, fmt.Errorf("--provider-keys: %w", err)
		}
	}
	return providerconfig.New(db, now, keys, providerconfig.URLs{Stripe: hf.StripeURL, WeChatPay: hf.WeChatPayURL}), nil
}

// Background reconciliation of real providers: open payments whose
// notification never came, and refunds the provider has not answered.
const (
	hostedReconcileEvery    = 30 * time.Second
	hostedReconcileBatchMax = 100
)

func (a *app) startProviderWorkers(ctx context.Context, wg *sync.WaitGroup) {
	a.every(ctx, wg, "reconcile provider top-ups", hostedReconcileEvery, func(ctx context.Context) (int64, error) {
		report, err := a.payments.ReconcileHostedTopUps(ctx, hostedReconcileBatchMax)
		return int64(report.Succeeded + report.Failed), err
	})
	a.every(ctx, wg, "retry top-up refunds", hostedReconcileEvery, func(ctx context.Context) (int64, error) {
		n, err := a.payments.ReconcileTopUpRefunds(ctx, hostedReconcileBatchMax)
		return int64(n), err
	})
}

// runProvider configures a merchant's real payment provider:
//
//	chatpay provider stripe --merchant mer_… --secret-key-file sk.txt --webhook-secret-file whsec.txt
//	chatpay provider wechatpay --merchant mer_… --mchid … --appid … --merchant-serial … --merchant-key-file apiclient_key.pem
//	    --apiv3-key-file apiv3.txt --platform-serial PUB_KEY_ID_… --platform-key-file pub_key.pem
//	chatpay provider show|remove --merchant mer_…
//	chatpay provider rotate-keys
//
// Secrets are read from files (never from the command line, which ends up
// in shell history and ps), sealed, and never printed again.
func runProvider(ctx context.Context, env *environment, args []string) error {
	usage := func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay provider stripe|wechatpay|show|remove|rotate-keys [flags]\n\nRun 'chatpay provider <subcommand> -h' for its flags.")
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	sub, rest := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		usage()
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("provider "+sub, flag.ContinueOnError)
	cfg := configFlags(fs, env)
	hf := hostedProviderFlags(fs, env)
	merchant := fs.String("merchant", "", "the merchant's id (mer_…)")
	files := map[string]*string{}
	file := func(name, usage string) { files[name] = fs.String(name, "", usage) }
	text := map[string]*string{}
	value := func(name, usage string) { text[name] = fs.String(name, "", usage) }
	switch sub {
	case "stripe":
		file("secret-key-file", "file holding the Stripe secret key (sk_live_… or a restricted rk_… key)")
		file("webhook-secret-file", "file holding the signing secret (whsec_…) of the webhook endpoint")
	case "wechatpay":
		value("mchid", "商户号 (merchant id)")
		value("appid", "the AppID of the official account or mini program shoppers pay in")
		value("merchant-serial", "serial number of the merchant API certificate")
		value("platform-serial", "WeChat Pay public key id (PUB_KEY_ID_…) or platform certificate serial")
		file("merchant-key-file", "apiclient_key.pem, the merchant API certificate's private key")
		file("apiv3-key-file", "file holding the 32-character APIv3 key")
		file("platform-key-file", "WeChat Pay public key (pub_key.pem) or platform certificate PEM")
	case "show", "remove", "rotate-keys":
	default:
		usage()
		fmt.Fprintf(env.stderr, "\nunknown subcommand %q\n", sub)
		return errUsage
	}
	if err := parseFlags(fs, env, rest); err != nil {
		return err
	}
	if *merchant == "" && sub != "rotate-keys" {
		return errors.New("--merchant is required")
	}
	read := map[string]string{}
	for name, path := range files {
		if *path == "" {
			return fmt.Errorf("--%s is required", name)
		}
		raw, err := os.ReadFile(*path)
		if err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		read[name] = strings.TrimSpace(string(raw))
	}
	_, db, closeDB, err := cfg.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeDB()
	store, err := hf.store(db, time.Now)
	if err != nil {
		return err
	}
	if (sub == "stripe" || sub == "wechatpay" || sub == "rotate-keys") && hf.Keys == "" {
		return errors.New("--provider-keys (or CHATPAY_PROVIDER_KEYS) is required to seal provider secrets")
	}
	return providerCommand(ctx, env, store, sub, *merchant, read, text)
}

func providerCommand(ctx context.Context, env *environment, store *providerconfig.Store, sub, merchant string, files map[string]string, text map[string]*string) error {
	switch sub {
	case "stripe":
		if err := store.SetStripe(ctx, merchant, providerconfig.StripeSecrets{
			SecretKey: files["secret-key-file"], WebhookSecret: files["webhook-secret-file"],
		}); err != nil {
			return err
		}
	case "wechatpay":
		if err := store.SetWeChatPay(ctx, merchant, providerconfig.WeChatPaySettings{
			MchID: *text["mchid"], AppID: *text["appid"], MerchantSerial: *text["merchant-serial"],
			PlatformSerial: *text["platform-serial"], PlatformKeyPEM: files["platform-key-file"],
		}, providerconfig.WeChatPaySecrets{MerchantKeyPEM: files["merchant-key-file"], APIv3Key: files["apiv3-key-file"]}); err != nil {
			return err
		}
	case "remove":
		if err := store.Remove(ctx, merchant); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "merchant %s takes top-ups with the sandbox again\n", merchant)
		return nil
	case "rotate-keys":
		total := 0
		for range 1000 { // bounded: 1000 batches of 100 merchants
			n, err := store.Rotate(ctx, 100)
			if err != nil {
				return err
			}
			if total += n; n == 0 {
				break
			}
		}
		fmt.Fprintf(env.stdout, "re-sealed %d merchants' provider secrets with the current key\n", total)
		return nil
	}
	s, err := store.Get(ctx, merchant)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "merchant %s takes top-ups with %s (settings %s; secrets sealed with key %s, not shown)\nnotification URL: <public URL>/v1/providers/%s/notify/%s\n",
		merchant, s.Provider, s.Settings, s.KeyID, s.Provider, merchant)
	return nil
}

// providerDirectory is what payments asks for a merchant's provider; an
// untyped nil store must stay a nil interface.
func providerDirectory(store *providerconfig.Store) payments.ProviderDirectory {
	if store == nil {
		return nil
	}
	return store
}

// reconcileProviders settles merchants' Stripe and WeChat Pay top-ups and
// refunds once: a payment whose notification never came is credited from the
// provider's record, one abandoned past its window is closed at the provider
// and only then failed.
func reconcileProviders(ctx context.Context, env *environment, cfg *config, hf *hostedFlags, nowText string, batch int) error {
	now, err := clockOf(nowText)
	if err != nil {
		return err
	}
	_, db, closeDB, err := cfg.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeDB()
	store, err := hf.store(db, now)
	if err != nil {
		return err
	}
	graph, err := newServices(db, servicesConfig{Now: now, PublicBaseURL: "http://127.0.0.1", Providers: store})
	if err != nil {
		return err
	}
	svc := graph.payments
	report, err := svc.ReconcileHostedTopUps(ctx, batch)
	fmt.Fprintf(env.stdout, "checked %d provider top-ups: %d succeeded, %d failed, %d still open or unknown\n",
		report.Checked, report.Succeeded, report.Failed, report.Unknown)
	if err != nil {
		return fmt.Errorf("reconcile provider top-ups: %w", err)
	}
	n, err := svc.ReconcileTopUpRefunds(ctx, batch)
	fmt.Fprintf(env.stdout, "asked again about %d top-up refunds\n", n)
	if err != nil {
		return fmt.Errorf("reconcile top-up refunds: %w", err)
	}
	return nil
}

// realProviders is the merchants' provider directory, or nil on a sandbox
// instance: a test instance takes the sandbox provider only, so no test
// top-up can ever reach a merchant's real Stripe or WeChat Pay account.
func realProviders(cfg servicesConfig) payments.ProviderDirectory {
	if cfg.Sandbox {
		return nil
	}
	return cfg.Providers
}
