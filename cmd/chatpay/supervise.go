package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/pgcluster"
	"github.com/chatpay/chatpay/webhooks"
)

// superviseConfig is how serve watches over its private PostgreSQL.
type superviseConfig struct {
	RestartsMax int
	DownGrace   time.Duration
}

// pgDownGraceDefault is how long the private cluster may be down (crash
// recovery and a restart or two) before /healthz says serve is not live: a
// liveness probe must not restart serve for a blip it heals itself.
const pgDownGraceDefault = 30 * time.Second

func superviseFlags(fs *flag.FlagSet, env *environment) *superviseConfig {
	sc := &superviseConfig{}
	fs.IntVar(&sc.RestartsMax, "pg-restarts-max", envInt(env, "CHATPAY_PG_RESTARTS_MAX", pgcluster.RestartAttemptsMaxDefault),
		"failed restarts in a row of the private PostgreSQL before serve gives up and exits (env CHATPAY_PG_RESTARTS_MAX)")
	fs.DurationVar(&sc.DownGrace, "pg-down-grace", envDuration(env, "CHATPAY_PG_DOWN_GRACE", pgDownGraceDefault),
		"how long the private PostgreSQL may be down before /healthz answers 503 (env CHATPAY_PG_DOWN_GRACE)")
	return sc
}

// errGaveUp marks serve's context when the supervisor stopped restarting
// the private cluster: serve shuts down and exits non-zero, so that a
// process manager sees the failure.
var errGaveUp = errors.New("private PostgreSQL could not be restarted")

// start supervises the private cluster openDatabase started (nothing with
// --database-url: that server is someone else's to run). It returns serve's
// context, which ends when the supervisor gives up, the liveness check of
// /healthz, and the metrics.
func (sc *superviseConfig) start(ctx context.Context, cfg *config, logger *slog.Logger) (context.Context, httpapi.ReadinessCheck, []prometheus.Collector) {
	cluster := cfg.cluster
	if cluster == nil {
		return ctx, nil, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	cluster.Supervise(pgcluster.RestartPolicy{
		AttemptsMax: sc.RestartsMax,
		OnGiveUp: func(err error) {
			logger.Error("shutting down: the private PostgreSQL is gone for good", "error", err)
			cancel(fmt.Errorf("%w: %w", errGaveUp, err))
		},
	})
	grace := sc.DownGrace
	live := func(context.Context) error {
		h := cluster.Health()
		switch {
		case h.GaveUp:
			return h.Err
		case !h.Up && time.Since(h.DownSince) > grace:
			return fmt.Errorf("the private PostgreSQL has been down for %s (grace %s)", time.Since(h.DownSince).Round(time.Second), grace)
		}
		return nil
	}
	collectors := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chatpay_postgres_up",
			Help: "1 while serve's private PostgreSQL runs, 0 while it is down or being restarted.",
		}, func() float64 {
			if cluster.Health().Up {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chatpay_postgres_restarts_total",
			Help: "Times serve restarted its private PostgreSQL after it exited.",
		}, func() float64 { return float64(cluster.Health().Restarts) }),
	}
	return ctx, live, collectors
}

// gaveUp is serve's exit error: nil after a requested shutdown, the
// supervisor's reason when it gave up.
func gaveUp(ctx context.Context) error {
	if err := context.Cause(ctx); errors.Is(err, errGaveUp) {
		return err
	}
	return nil
}

// backlogScrapeTimeout bounds the query behind the webhook backlog metrics,
// so a slow database cannot hold a scrape.
const backlogScrapeTimeout = 2 * time.Second

// webhookBacklog exports the webhook delivery backlog: a receiver that is
// down shows as a growing pending count and an oldest age that keeps rising.
type webhookBacklog struct {
	svc             *webhooks.Service
	logger          *slog.Logger
	pending, oldest *prometheus.Desc
}

func newWebhookBacklog(svc *webhooks.Service, logger *slog.Logger) *webhookBacklog {
	return &webhookBacklog{svc: svc, logger: logger,
		pending: prometheus.NewDesc("chatpay_webhook_deliveries_pending", "Webhook deliveries not yet delivered or failed, over every endpoint.", nil, nil),
		oldest:  prometheus.NewDesc("chatpay_webhook_oldest_pending_seconds", "Age of the oldest pending webhook delivery (0 when none).", nil, nil),
	}
}

func (b *webhookBacklog) Describe(ch chan<- *prometheus.Desc) { ch <- b.pending; ch <- b.oldest }

func (b *webhookBacklog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), backlogScrapeTimeout)
	defer cancel()
	backlog, err := b.svc.Backlog(ctx)
	if err != nil {
		b.logger.Warn("webhook backlog metrics", "error", err) // the series are absent from this scrape
		return
	}
	ch <- prometheus.MustNewConstMetric(b.pending, prometheus.GaugeValue, float64(backlog.Pending))
	ch <- prometheus.MustNewConstMetric(b.oldest, prometheus.GaugeValue, backlog.OldestAge.Seconds())
}
