package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/chatpay/chatpay/catalog"
)

// runMerchant is the operator's tool for merchants until the dashboard has
// sign-up:
//
//	chatpay merchant create --name "McDonald's" --time-zone Asia/Shanghai --currency CNY [--email staff@x --password ...]
//	chatpay merchant key --merchant mer_... --name pos
//	chatpay merchant revoke-key --merchant mer_... --key key_...
//
// Secret keys are printed once and never again.
func runMerchant(ctx context.Context, env *environment, args []string) error {
	usage := func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay merchant create|key|revoke-key [flags]\n\nRun 'chatpay merchant <subcommand> -h' for its flags.")
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	switch args[0] {
	case "create":
		return merchantCreate(ctx, env, args[1:])
	case "key":
		return merchantKey(ctx, env, args[1:])
	case "revoke-key":
		return merchantRevokeKey(ctx, env, args[1:])
	case "-h", "--help", "help":
		usage()
		return flag.ErrHelp
	}
	usage()
	fmt.Fprintf(env.stderr, "\nunknown subcommand %q\n", args[0])
	return errUsage
}

// withCatalog opens the database and runs fn with a catalog service on it.
func withCatalog(ctx context.Context, env *environment, cfg *config, fn func(*catalog.Service) error) error {
	_, db, closeDB, err := cfg.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeDB()
	sandbox, err := sandboxDatabase(ctx, db)
	if err != nil {
		return err
	}
	return fn(newCatalog(db, time.Now, sandbox))
}

func merchantCreate(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("merchant create", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	name := fs.String("name", "", "merchant name (required)")
	timeZone := fs.String("time-zone", "", "IANA time zone such as Asia/Shanghai (required)")
	currency := fs.String("currency", "", "default ISO 4217 currency such as CNY (required)")
	email := fs.String("email", "", "e-mail address of a first staff user (optional)")
	password := fs.String("password", "", "that staff user's password (with --email)")
	keyName := fs.String("key-name", "default", "name of the first API key")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *name == "" || *timeZone == "" || *currency == "" || (*email == "") != (*password == "") {
		fmt.Fprintln(env.stderr, "merchant create needs --name, --time-zone and --currency, and --email with --password")
		fs.PrintDefaults()
		return errUsage
	}
	return withCatalog(ctx, env, cfg, func(svc *catalog.Service) error {
		m, err := svc.CreateMerchant(ctx, catalog.MerchantDraft{Name: *name, TimeZone: *timeZone, DefaultCurrency: *currency})
		if err != nil {
			return fmt.Errorf("create merchant: %w", err)
		}
		if *email != "" {
			staff, err := svc.CreateStaff(ctx, m.ID, *email, *password)
			if err != nil {
				return fmt.Errorf("create staff user (merchant %s was created): %w", m.ID, err)
			}
			fmt.Fprintf(env.stdout, "staff user: %s %s\n", staff.ID, staff.Email)
		}
		key, secret, err := svc.CreateKey(ctx, m.ID, *keyName)
		if err != nil {
			return fmt.Errorf("create api key (merchant %s was created): %w", m.ID, err)
		}
		fmt.Fprintf(env.stdout, "merchant: %s\napi key: %s %s\n", m.ID, key.ID, secret)
		fmt.Fprintln(env.stderr, "The secret key is shown only this once; store it now.")
		return nil
	})
}

func merchantKey(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("merchant key", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	merchantID := fs.String("merchant", "", "merchant id (required)")
	name := fs.String("name", "", "key name, such as pos (required)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *merchantID == "" || *name == "" {
		fmt.Fprintln(env.stderr, "merchant key needs --merchant and --name")
		fs.PrintDefaults()
		return errUsage
	}
	return withCatalog(ctx, env, cfg, func(svc *catalog.Service) error {
		key, secret, err := svc.CreateKey(ctx, *merchantID, *name)
		if err != nil {
			return fmt.Errorf("create api key: %w", err)
		}
		fmt.Fprintf(env.stdout, "api key: %s %s\n", key.ID, secret)
		fmt.Fprintln(env.stderr, "The secret key is shown only this once; store it now.")
		return nil
	})
}

func merchantRevokeKey(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("merchant revoke-key", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	merchantID := fs.String("merchant", "", "merchant id (required)")
	keyID := fs.String("key", "", "key id, key_... (required)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *merchantID == "" || *keyID == "" {
		fmt.Fprintln(env.stderr, "merchant revoke-key needs --merchant and --key")
		fs.PrintDefaults()
		return errUsage
	}
	return withCatalog(ctx, env, cfg, func(svc *catalog.Service) error {
		if err := svc.RevokeKey(ctx, *merchantID, *keyID); err != nil {
			return fmt.Errorf("revoke api key: %w", err)
		}
		fmt.Fprintf(env.stdout, "revoked: %s\n", *keyID)
		return nil
	})
}
