// Command chatpay is the one binary of chatpay: the HTTP service, migrations,
// the ledger audit and the operator tools. main only wires signals and exit
// codes; run does the work, so end-to-end tests drive the same code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "chatpay:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// The collector's defaults for a service whose live heap is small (12–17 MB
// in `chatpay bench`) and whose CPU is shared with PostgreSQL: a heap may
// grow to five times the live one (GOGC=400) but never past a soft 64 MiB
// (GOMEMLIMIT). Measured (docs/performance.md): GC and scheduler CPU per
// one-call purchase 0.17 → 0.11 ms at 78 MB process RSS; GOGC=400 alone
// reached 124 MB. GOGC and GOMEMLIMIT in the environment win, as for any Go
// program: raise GOMEMLIMIT for a server whose live heap nears 64 MiB.
const (
	gcPercentDefault   = 400
	memoryLimitDefault = 64 << 20
)

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercentDefault)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimitDefault)
	}
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the HTTP service (and its private PostgreSQL unless DATABASE_URL is set)", runServe},
		{"migrate", "apply migrations (migrate up) or list them (migrate status)", runMigrate},
		{"dispatch", "deliver webhooks (alone; serve also runs a dispatcher)", runDispatch},
		{"webhooks", "operator: send an endpoint's waiting deliveries now (webhooks send-waiting)", runWebhooks},
		{"chat-sim", "a reference messenger backend that verifies webhooks and prints chat messages", runChatSim},
		{"merchant", "create merchants and API keys (merchant create|key|revoke-key)", runMerchant},
		{"verify", "audit the ledger; exits non-zero on any violation", runVerify},
		{"channel", "register a messenger backend (channel create)", runChannel},
		{"sign-launch", "print a signed launch context for a channel's shopper (tests, demos)", runSignLaunch},
		{"provider-sandbox", "serve the sandbox card payment provider on a loopback port", runProviderSandbox},
		{"provider", "configure a merchant's Stripe or WeChat Pay account (provider stripe|wechatpay|show|remove|rotate-keys)", runProvider},
		{"reconcile", "settle pending and unknown top-ups once by asking the payment provider", runReconcile},
		{"expire", "expire coupons past their validity once (breakage, coupon.expired)", runExpire},
		{"bench", "measure purchase throughput against the same rows written lean and pgbench (spread, onecall, hot, flash, webhooks, redeem)", runBench},
	}
}

// environment is what a command may touch of the outside world.
type environment struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	env := &environment{stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return errUsage
		}
		return flag.ErrHelp
	}
	for _, cmd := range commands() {
		if cmd.name == args[0] {
			return cmd.run(ctx, env, args[1:])
		}
	}
	usage(stderr)
	fmt.Fprintf(stderr, "\nunknown command %q\n", args[0])
	return errUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "chatpay — in-chat payments and mini-commerce\n\nUsage: chatpay <command> [flags]\n\nCommands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-17s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w, "\nRun 'chatpay <command> -h' for its flags.")
}
