package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/chatpay/chatpay/payments/sandbox"
)

// runProviderSandbox serves the sandbox card provider on a loopback address
// until SIGINT or SIGTERM, for demos and for several chatpay processes that
// must share one provider (serve --provider-url, chatpay reconcile).
func runProviderSandbox(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("provider-sandbox", flag.ContinueOnError)
	listen := fs.String("listen", envOr(env, "CHATPAY_PROVIDER_SANDBOX_LISTEN", "127.0.0.1:8070"),
		"loopback address to listen on (env CHATPAY_PROVIDER_SANDBOX_LISTEN)")
	slow := fs.Duration("slow-delay", sandbox.SlowDelayDefault, "how long the slow test card's answer waits")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay provider-sandbox [flags]\n\nServes the sandbox card payment provider (test cards in payments/sandbox).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	server := sandbox.New(time.Now)
	server.SlowDelay = *slow
	url, stop, err := server.Listen(ctx, *listen)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(env.stdout, "sandbox payment provider listening on %s\n", url)
	<-ctx.Done()
	return nil
}
