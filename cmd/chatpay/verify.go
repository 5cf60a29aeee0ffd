package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/chatpay/chatpay/ledger"
)

// runVerify audits the ledger (and, as other packages add theirs, the
// business records that must match it), prints the report and fails on any
// violation, so that scripts and operators can rely on the exit status.
func runVerify(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay verify [flags]\n\nAudits the ledger and exits non-zero on any violation.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	// The audit only reads, so a server that may lose commits cannot make
	// it lose anything; refusing it would only hide what the audit finds.
	cfg.AllowUnsafeDurability = true
	_, db, closeDB, err := cfg.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeDB()
	report, err := ledger.RunAudit(ctx, db, append(ledger.Checks(), crossChecks()...)...)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if err := report.Write(env.stdout); err != nil {
		return fmt.Errorf("verify: write report: %w", err)
	}
	return report.Err()
}
