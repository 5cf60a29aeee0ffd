package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/chatpay/chatpay/webhooks"
)

// runWebhooks is the operator's webhook tool:
// `chatpay webhooks send-waiting --endpoint whe_…` makes every delivery of the
// endpoint that waits for a retry due now (after its receiver was fixed),
// each conversation still in order.
func runWebhooks(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || args[0] != "send-waiting" {
		fmt.Fprintln(env.stderr, "Usage: chatpay webhooks send-waiting --endpoint whe_…")
		return errUsage
	}
	fs := flag.NewFlagSet("webhooks send-waiting", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	endpoint := fs.String("endpoint", "", "the webhook endpoint (whe_…)")
	if err := parseFlags(fs, env, args[1:]); err != nil {
		return err
	}
	if *endpoint == "" {
		return fmt.Errorf("--endpoint is required")
	}
	_, db, closeDB, err := cfg.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeDB()
	n, err := webhooks.NewService(db, webhooks.URLPolicy{}, time.Now).SendWaitingByID(ctx, *endpoint)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%d waiting deliveries of %s are due now; running dispatchers send them at once\n", n, *endpoint)
	return nil
}
