package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/pgcluster"
)

// config is every setting of the binary. Each flag has an environment
// variable; the flag wins when both are given.
type config struct {
	Listen                string
	DatabaseURL           string
	DataDir               string
	LogLevel              string
	LogFormat             string
	NoMigrate             bool
	AllowUnsafeDurability bool
	ShutdownTimeout       time.Duration
	PublicURL             string
	PlatformFee           string

	// dsn is the connection string openDatabase used (DATABASE_URL or the
	// private cluster's), for connections outside the pool such as LISTEN.
	dsn string
	// cluster is the private cluster openDatabase started, if any.
	cluster *pgcluster.Cluster
	// AllowRelocation lets the private cluster live under /var/lib/chatpay
	// when the postgres user cannot enter the data folder.
	AllowRelocation bool
	// runOnce marks a command that is not serve: it uses the private
	// cluster of a serve already running on the data folder instead of
	// starting its own, and brings the schema up to date before it runs.
	runOnce bool
}

// configFlags registers the settings every database-using command shares.
func configFlags(fs *flag.FlagSet, env *environment) *config {
	cfg := &config{}
	fs.StringVar(&cfg.DatabaseURL, "database-url", env.getenv("DATABASE_URL"),
		"PostgreSQL URL; empty starts a private cluster in the data folder (env DATABASE_URL)")
	fs.StringVar(&cfg.DataDir, "data-dir", envOr(env, "CHATPAY_DATA_DIR", ".chatpay"),
		"folder for the private PostgreSQL cluster (env CHATPAY_DATA_DIR)")
	fs.StringVar(&cfg.LogLevel, "log-level", envOr(env, "CHATPAY_LOG_LEVEL", "info"),
		"debug, info, warn or error (env CHATPAY_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", envOr(env, "CHATPAY_LOG_FORMAT", "text"),
		"text or json (env CHATPAY_LOG_FORMAT)")
	fs.BoolVar(&cfg.AllowUnsafeDurability, "dev-allow-unsafe-durability", envBool(env, "CHATPAY_DEV_ALLOW_UNSAFE_DURABILITY"),
		"DEVELOPMENT ONLY: serve even if the database may lose acknowledged commits (env CHATPAY_DEV_ALLOW_UNSAFE_DURABILITY)")
	fs.BoolVar(&cfg.AllowRelocation, "pg-allow-relocation", envBool(env, "CHATPAY_PG_ALLOW_RELOCATION"),
		"when running as root and the postgres user cannot enter the data folder, keep the private cluster under /var/lib/chatpay instead of refusing to start (env CHATPAY_PG_ALLOW_RELOCATION)")
	return cfg
}

func envOr(env *environment, name, fallback string) string {
	if v := env.getenv(name); v != "" {
		return v
	}
	return fallback
}

func envBool(env *environment, name string) bool {
	v, _ := strconv.ParseBool(env.getenv(name))
	return v
}

func envDuration(env *environment, name string, fallback time.Duration) time.Duration {
	if d, err := time.ParseDuration(env.getenv(name)); err == nil {
		return d
	}
	return fallback
}

func envInt(env *environment, name string, fallback int) int {
	if n, err := strconv.Atoi(env.getenv(name)); err == nil {
		return n
	}
	return fallback
}

// parseFlags parses args, printing errors and usage to stderr.
func parseFlags(fs *flag.FlagSet, env *environment, args []string) error {
	fs.SetOutput(env.stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

func (cfg *config) logger(env *environment) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(cfg.LogFormat) {
	case "json":
		return slog.New(slog.NewJSONHandler(env.stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(env.stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", cfg.LogFormat)
}

// connect builds the logger and opens the database for a run-once command:
// what every command that touches the database does first.
func (cfg *config) connect(ctx context.Context, env *environment) (*slog.Logger, *sqlx.DB, func(), error) {
	logger, db, closeDB, err := cfg.connectUnmigrated(ctx, env)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cfg.requireSchema(ctx, db, logger); err != nil {
		closeDB()
		return nil, nil, nil, err
	}
	return logger, db, closeDB, nil
}

// connectUnmigrated is connect without the schema step, for `migrate`.
func (cfg *config) connectUnmigrated(ctx context.Context, env *environment) (*slog.Logger, *sqlx.DB, func(), error) {
	logger, err := cfg.logger(env)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg.runOnce = true
	db, closeDB, err := cfg.openDatabase(ctx, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	return logger, db, closeDB, nil
}

// requireSchema gets a run-once command's database ready for it: on the
// private cluster it applies pending migrations (a new data folder works at
// once); on a DATABASE_URL, which an operator migrates on purpose, it says
// what to run instead of failing on a missing table.
func (cfg *config) requireSchema(ctx context.Context, db *sqlx.DB, logger *slog.Logger) error {
	migrator, err := database.NewMigrator(db.DB)
	if err != nil {
		return err
	}
	pending, err := migrator.Pending(ctx)
	if err != nil || !pending {
		return err
	}
	if cfg.DatabaseURL != "" {
		return errors.New("the database at --database-url has migrations pending: run `chatpay migrate up` with the same --database-url first")
	}
	logger.Info("applying pending migrations to the private cluster")
	return migrator.Up(ctx, logWriter{logger})
}

// openDatabase connects to DATABASE_URL, or starts the private cluster in the
// data folder and connects to it. close stops what it started.
func (cfg *config) openDatabase(ctx context.Context, logger *slog.Logger) (db *sqlx.DB, close func(), err error) {
	dsn := cfg.DatabaseURL
	var cluster *pgcluster.Cluster
	if dsn == "" && cfg.runOnce {
		if running, pid, ok := pgcluster.Running(filepath.Join(cfg.DataDir, "postgres"), ""); ok {
			logger.Info("using the private PostgreSQL of the chatpay serve running on this data folder", "serve_pid", pid)
			dsn = running
		}
	}
	if dsn == "" {
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{
			Dir:             filepath.Join(cfg.DataDir, "postgres"),
			Logger:          logger,
			AllowRelocation: cfg.AllowRelocation,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("private PostgreSQL: %w", err)
		}
		dsn = cluster.URL()
	}
	stopCluster := func() {
		if cluster == nil {
			return
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cluster.Stop(stopCtx); err != nil {
			logger.Error("stop private PostgreSQL", "error", err)
		} else {
			logger.Info("private PostgreSQL stopped")
		}
	}
	cfg.dsn, cfg.cluster = dsn, cluster
	db, err = database.Open(ctx, dsn, database.DefaultPool)
	if err != nil {
		stopCluster()
		return nil, nil, err
	}
	if err := database.CheckDurability(ctx, db); err != nil {
		if !cfg.AllowUnsafeDurability {
			_ = db.Close()
			stopCluster()
			return nil, nil, err
		}
		logger.Warn("serving on a database that may lose acknowledged commits (development flag set)", "error", err)
	}
	return db, func() {
		_ = db.Close()
		stopCluster()
	}, nil
}
