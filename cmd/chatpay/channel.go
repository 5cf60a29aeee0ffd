package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/chatpay/chatpay/payments"
)

// runChannel is the operator's tool for messenger backends:
// `chatpay channel create --name "Tea bot" --kind telegram`.
func runChannel(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(env.stderr, "Usage: chatpay channel create --name NAME --kind telegram|tamtam|wechat|whatsapp|vk|other [--ed25519-public-key BASE64] [messenger flags, see -h]")
		return errUsage
	}
	fs := flag.NewFlagSet("channel create", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	name := fs.String("name", "", "channel name")
	kind := fs.String("kind", "other", "messenger kind")
	publicKey := fs.String("ed25519-public-key", "", "optional Ed25519 public key (base64) the channel signs launch contexts with")
	messenger := messengerFlags(fs, env)
	if err := parseFlags(fs, env, args[1:]); err != nil {
		return err
	}
	var key ed25519.PublicKey
	if *publicKey != "" {
		raw, err := base64.StdEncoding.DecodeString(*publicKey)
		if err != nil {
			return fmt.Errorf("--ed25519-public-key: %w", err)
		}
		key = raw
	}
	_, db, closeDB, err := cfg.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeDB()
	sandbox, err := sandboxDatabase(ctx, db) // ck_test_ keys on a sandbox's database
	if err != nil {
		return err
	}
	svc := payments.NewService(db, time.Now, nil, nil, nil, payments.Config{Sandbox: sandbox})
	created, settings, err := svc.CreateMessengerChannel(ctx, payments.NewChannel{Name: *name, Kind: *kind, LaunchPublicKey: key}, *messenger)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "channel:       %s (%s, %s)\napi key:       %s\nlaunch secret: %s\n\nBoth secrets are shown once; store them in the messenger backend.\n",
		created.Channel.ID, created.Channel.Name, created.Channel.Kind, created.APIKey, created.LaunchSecret)
	printMessenger(env, created.Channel, settings)
	return nil
}

// runSignLaunch prints a signed launch context, for messenger developers'
// tests and the demo: `chatpay sign-launch --channel chn_… --secret ls_… --user-id 42`.
func runSignLaunch(_ context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("sign-launch", flag.ContinueOnError)
	channel := fs.String("channel", "", "channel id (chn_…)")
	secret := fs.String("secret", env.getenv("CHATPAY_LAUNCH_SECRET"), "the channel's launch secret (env CHATPAY_LAUNCH_SECRET)")
	userID := fs.String("user-id", "", "the shopper's user id in the messenger")
	chatID := fs.String("chat-id", "", "the chat to answer in (default: the user's private chat)")
	name := fs.String("name", "", "the shopper's display name")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *channel == "" || *secret == "" || *userID == "" {
		fs.Usage()
		return errUsage
	}
	fields := map[string]string{
		"channel_id": *channel,
		"user_id":    *userID,
		"auth_date":  strconv.FormatInt(time.Now().Unix(), 10),
	}
	if *chatID != "" {
		fields["chat_id"] = *chatID
	}
	if *name != "" {
		fields["name"] = *name
	}
	fmt.Fprintln(env.stdout, payments.SignLaunch(*secret, fields))
	return nil
}
