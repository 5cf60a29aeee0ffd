package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/chatpay/chatpay/internal/database"
)

func runMigrate(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	cfg := configFlags(fs, env)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: chatpay migrate [flags] up|status")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "up" && fs.Arg(0) != "status") {
		fs.Usage()
		return errUsage
	}
	_, db, closeDB, err := cfg.connectUnmigrated(ctx, env)
	if err != nil {
		return err
	}
	defer closeDB()
	migrator, err := database.NewMigrator(db.DB)
	if err != nil {
		return err
	}
	if fs.Arg(0) == "up" {
		if err := migrator.Up(ctx, env.stdout); err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, "migrations are current")
		return nil
	}
	return migrator.Status(ctx, env.stdout)
}
