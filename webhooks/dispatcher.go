package webhooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/ids"
)

// RetryScheduleDefault is the delay before each attempt: the first at once,
// then after 5 s, 30 s, 2 min, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (about
// 28 h in all). The short early steps find a receiver that was down for a
// moment; once one delivery gets through, the endpoint's whole backlog is
// brought forward (bringForwardSQL), so later steps never hold a recovered
// receiver's messages back.
var RetryScheduleDefault = []time.Duration{
	0, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Dispatcher defaults, units last.
const (
	WorkersDefault            = 32
	PerEndpointWorkersDefault = 32
	PollIntervalDefault       = time.Second
	HTTPTimeoutDefault        = 10 * time.Second
	JitterFractionDefault     = 0.2
	RetryAfterMaxDefault      = time.Hour
	DisableAfterDefault       = 5 * 24 * time.Hour
	listenerReconnectMin      = 100 * time.Millisecond
	listenerReconnectMax      = 10 * time.Second
	finishTimeout             = 15 * time.Second
	errorTextBytesMax         = 1024
	scheduleAttemptsMax       = 32
)

// DispatcherConfig configures a Dispatcher; zero fields take the defaults.
type DispatcherConfig struct {
	DB *sqlx.DB
	// ListenDSN opens the LISTEN connection; empty means polling only.
	ListenDSN string
	Logger    *slog.Logger
	Now       func() time.Time
	// Test marks the dispatcher's own events livemode=false (a sandbox).
	Test   bool
	Policy URLPolicy
	// Workers bounds deliveries in flight in this process.
	Workers int
	// PerEndpointWorkers bounds deliveries in flight to one endpoint in this process.
	PerEndpointWorkers int
	// PollInterval is the fallback when no notification arrives (retries
	// falling due, a lost LISTEN connection).
	PollInterval time.Duration
	HTTPTimeout  time.Duration
	// Lease is how long a claim holds before another dispatcher may take the
	// delivery over; it must exceed HTTPTimeout. Default: 3×HTTPTimeout.
	Lease time.Duration
	// RetrySchedule is the delay before each attempt; its length is the number
	// of attempts. Tests compress it.
	RetrySchedule  []time.Duration
	JitterFraction float64
	// RetryAfterMax caps how far a receiver's Retry-After may push an attempt.
	RetryAfterMax time.Duration
	// DisableAfter disables an endpoint that has failed without a single
	// success for this long.
	DisableAfter time.Duration
}

// Dispatcher delivers pending deliveries. Several dispatchers (in one process
// or many) share the work: each claims due deliveries with FOR UPDATE SKIP
// LOCKED and a lease, so the normal path sends every delivery once.
type Dispatcher struct {
	cfg    DispatcherConfig
	client *http.Client
}

// NewDispatcher checks cfg and fills in its defaults.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	if cfg.DB == nil {
		return nil, errors.New("webhooks: dispatcher needs a database")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	defaultInt(&cfg.Workers, WorkersDefault)
	defaultInt(&cfg.PerEndpointWorkers, PerEndpointWorkersDefault)
	defaultDuration(&cfg.PollInterval, PollIntervalDefault)
	defaultDuration(&cfg.HTTPTimeout, HTTPTimeoutDefault)
	defaultDuration(&cfg.Lease, 3*cfg.HTTPTimeout)
	defaultDuration(&cfg.RetryAfterMax, RetryAfterMaxDefault)
	defaultDuration(&cfg.DisableAfter, DisableAfterDefault)
	if cfg.RetrySchedule == nil {
		cfg.RetrySchedule = RetryScheduleDefault
	}
	if cfg.JitterFraction == 0 {
		cfg.JitterFraction = JitterFractionDefault
	}
	switch {
	case len(cfg.RetrySchedule) == 0 || len(cfg.RetrySchedule) > scheduleAttemptsMax:
		return nil, fmt.Errorf("webhooks: retry schedule needs 1 to %d attempts", scheduleAttemptsMax)
	case cfg.Lease <= cfg.HTTPTimeout:
		return nil, fmt.Errorf("webhooks: lease %s must exceed the HTTP timeout %s", cfg.Lease, cfg.HTTPTimeout)
	case cfg.JitterFraction < 0 || cfg.JitterFraction >= 1:
		return nil, fmt.Errorf("webhooks: jitter fraction %v must be in [0, 1)", cfg.JitterFraction)
	}
	return &Dispatcher{cfg: cfg, client: cfg.Policy.newHTTPClient(cfg.HTTPTimeout, cfg.PerEndpointWorkers)}, nil
}

func defaultInt(v *int, def int) {
	if *v <= 0 {
		*v = def
	}
}

func defaultDuration(v *time.Duration, def time.Duration) {
	if *v <= 0 {
		*v = def
	}
}

// Run delivers until ctx ends, then waits for the sends in flight (each
// bounded by the HTTP timeout) and records their results. It returns nil on
// a normal stop.
func (d *Dispatcher) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	nudge := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	stopListener := d.listen(nudge)
	defer stopListener()

	done := make(chan string, d.cfg.Workers)
	inFlight := 0
	perEndpoint := map[string]int{}
	poll := time.NewTimer(0)
	defer poll.Stop()
	logger := d.cfg.Logger
	for {
		claimedAll := false
		if free := d.cfg.Workers - inFlight; free > 0 && ctx.Err() == nil {
			batch, err := d.claim(ctx, free, busyEndpoints(perEndpoint, d.cfg.PerEndpointWorkers))
			if err != nil && ctx.Err() == nil {
				logger.Error("claim webhook deliveries", "error", err)
			}
			for _, c := range batch {
				inFlight++
				perEndpoint[c.EndpointID]++
				go func() {
					d.deliver(ctx, c)
					done <- c.EndpointID
				}()
			}
			claimedAll = len(batch) == free
		}
		if ctx.Err() != nil && inFlight == 0 {
			return nil
		}
		if claimedAll {
			// Every slot was filled: wait for one to free up.
			d.settle(ctx, done, &inFlight, perEndpoint, true)
			continue
		}
		select {
		case <-ctx.Done():
			if inFlight > 0 {
				d.settle(ctx, done, &inFlight, perEndpoint, true)
			}
		case endpointID := <-done:
			release(&inFlight, perEndpoint, endpointID)
		case <-wake:
		case <-poll.C:
			poll.Reset(d.cfg.PollInterval)
		}
	}
}

// settle waits for one send to finish (when wait is set) and collects every
// other finished one, so the next claim sees successors of a conversation
// whose head was just delivered.
func (d *Dispatcher) settle(ctx context.Context, done chan string, inFlight *int, perEndpoint map[string]int, wait bool) {
	if wait {
		release(inFlight, perEndpoint, <-done)
	}
	for {
		select {
		case endpointID := <-done:
			release(inFlight, perEndpoint, endpointID)
		default:
			return
		}
	}
}

func release(inFlight *int, perEndpoint map[string]int, endpointID string) {
	*inFlight--
	if perEndpoint[endpointID]--; perEndpoint[endpointID] <= 0 {
		delete(perEndpoint, endpointID)
	}
}

func busyEndpoints(perEndpoint map[string]int, limit int) []string {
	var busy []string
	for id, n := range perEndpoint {
		if n >= limit {
			busy = append(busy, id)
		}
	}
	return busy
}

// listen wakes the loop on every notification and after every reconnect (a
// notification may have been missed meanwhile). Without a DSN the dispatcher
// polls only.
func (d *Dispatcher) listen(nudge func()) (stop func()) {
	if d.cfg.ListenDSN == "" {
		d.cfg.Logger.Warn("webhook dispatcher has no LISTEN connection; polling only", "interval", d.cfg.PollInterval)
		return func() {}
	}
	listener := pq.NewListener(d.cfg.ListenDSN, listenerReconnectMin, listenerReconnectMax, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			d.cfg.Logger.Warn("webhook listener", "event", int(ev), "error", err)
		}
	})
	// Listen blocks until the first connection is up; it must not hold up
	// delivery meanwhile, as polling covers the gap.
	go func() {
		if err := listener.Listen(NotifyChannel); err != nil && !errors.Is(err, net.ErrClosed) {
			d.cfg.Logger.Error("webhook listener: LISTEN failed; polling only", "error", err)
		}
	}()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for range listener.NotificationChannel() {
			nudge()
		}
	}()
	return func() {
		_ = listener.Close() // closes the notification channel
		<-finished
	}
}

func (d *Dispatcher) claim(ctx context.Context, limit int, busy []string) ([]claimed, error) {
	now := d.cfg.Now()
	out, err := claimDeliveries(ctx, d.cfg.DB, now, now.Add(d.cfg.Lease), ids.New("clm"), busy, limit)
	if err != nil {
		return nil, err
	}
	// Several deliveries of one endpoint may come in one batch; the surplus
	// over the per-endpoint bound is handed back at once.
	count := map[string]int{}
	kept := out[:0]
	var surplus []int64
	for _, c := range out {
		if count[c.EndpointID]++; count[c.EndpointID] > d.cfg.PerEndpointWorkers {
			surplus = append(surplus, c.ID)
			continue
		}
		kept = append(kept, c)
	}
	if len(surplus) > 0 {
		if err := releaseClaims(ctx, d.cfg.DB, surplus); err != nil {
			d.cfg.Logger.Warn("release surplus webhook claims", "error", err)
		}
	}
	return kept, nil
}

// result is what one attempt found out.
type result struct {
	outcome    string
	statusCode int // 0 when no response
	latency    time.Duration
	errText    string
	excerpt    string
	retryAfter time.Duration
}

func (d *Dispatcher) deliver(ctx context.Context, c claimed) {
	if ctx.Err() != nil {
		// Stopping before the send: hand the claim back so another dispatcher
		// (or this one after a restart) sends it without waiting for the lease.
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		defer cancel()
		if err := releaseClaims(releaseCtx, d.cfg.DB, []int64{c.ID}); err != nil {
			d.cfg.Logger.Warn("release webhook claim", "delivery", c.ID, "error", err)
		}
		return
	}
	// The send is not cut short by a shutdown: it is bounded by the HTTP
	// timeout, and cutting it would only cause a duplicate later.
	sendCtx := context.WithoutCancel(ctx)
	attemptedAt := d.cfg.Now()
	res := d.send(sendCtx, c, attemptedAt)
	finishCtx, cancel := context.WithTimeout(sendCtx, finishTimeout)
	defer cancel()
	if err := d.finish(finishCtx, c, attemptedAt, res); err != nil {
		d.cfg.Logger.Error("record webhook attempt", "delivery", c.ID, "event", c.EventID, "error", err)
	}
}

func (d *Dispatcher) send(ctx context.Context, c claimed, now time.Time) result {
	// The claim returned only the old secrets still valid at its now.
	secrets := append([]string{c.Secret}, c.PreviousSecrets...)
	signature, err := signatureHeader(secrets, c.EventID, now, c.Body)
	if err != nil {
		return result{outcome: "network_error", errText: "signing failed: " + err.Error()}
	}
	var remote netip.Addr
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if ap, err := netip.ParseAddrPort(info.Conn.RemoteAddr().String()); err == nil {
			remote = ap.Addr()
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, c.URL, bytes.NewReader(c.Body))
	if err != nil {
		return result{outcome: "network_error", errText: truncate("bad request: " + err.Error())}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chatpay-webhooks/1")
	req.Header.Set(HeaderID, c.EventID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, signature)

	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		res := result{outcome: "network_error", latency: time.Since(start), errText: truncate(describeSendError(err))}
		if errors.Is(err, ErrRefusedAddress) {
			// Say nothing about what lies behind the refused address.
			res.outcome, res.errText = "refused", "refused: the URL leads to a non-public address"
		}
		return res
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, responseExcerptBytesMax))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, responseReadBytesMax)) // lets the connection be reused
	res := result{statusCode: resp.StatusCode, latency: time.Since(start), outcome: "http_error"}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		res.outcome = "delivered"
	}
	if keepExcerpt(resp.StatusCode, remote) {
		res.excerpt = validUTF8Prefix(head)
	}
	res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	return res
}

// keepExcerpt stores a receiver's answer only for 2xx and 4xx from a public
// address: a 5xx body may be an internal error page, and an answer from a
// private address (allowed in development) must never be readable through
// the delivery log, which would make webhooks a window into the network.
func keepExcerpt(status int, remote netip.Addr) bool {
	if !(status >= 200 && status < 300) && !(status >= 400 && status < 500) {
		return false
	}
	return remote.IsValid() && IsPublic(remote)
}

func describeSendError(err error) string {
	var netErr net.Error
	var tlsErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &tlsErr):
		return "TLS certificate not valid: " + tlsErr.Err.Error()
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	}
	return err.Error()
}

func parseRetryAfter(value string, now time.Time) time.Duration {
	if value == "" {
		return 0
	}
	if seconds, err := strconv.Atoi(strings.TrimSpace(value)); err == nil && seconds > 0 {
		return time.Duration(seconds) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

func truncate(s string) string {
	if len(s) <= errorTextBytesMax {
		return s
	}
	return validUTF8Prefix([]byte(s[:errorTextBytesMax]))
}

// validUTF8Prefix drops a rune cut in half at the end and anything not UTF-8.
func validUTF8Prefix(b []byte) string {
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return string(b)
}

// nextDelay is the jittered delay before attempt number next (1-based),
// stretched by Retry-After up to RetryAfterMax.
func (d *Dispatcher) nextDelay(next int, retryAfter time.Duration) time.Duration {
	base := d.cfg.RetrySchedule[next-1]
	jitter := 1 + d.cfg.JitterFraction*(2*rand.Float64()-1)
	delay := time.Duration(float64(base) * jitter)
	return max(delay, min(retryAfter, d.cfg.RetryAfterMax))
}

// finish records the attempt and the delivery's next state in one
// transaction. The endpoint row is locked before the delivery row, the same
// order disableEndpoint uses, so the two cannot deadlock. The first success
// after failures brings the endpoint's whole backlog forward: a receiver
// that is back gets its waiting messages at once, not at their next retry.
func (d *Dispatcher) finish(ctx context.Context, c claimed, attemptedAt time.Time, res result) error {
	a := d.nextState(c, attemptedAt, res)
	var leaseLost bool
	var drained int
	err := database.WithTx(ctx, d.cfg.DB, nil, func(tx *sqlx.Tx) error {
		// An attempt's record may be lost in a crash without harm: delivery
		// is at least once, and a lost "delivered" only sends the event again
		// when the lease runs out. Not waiting for the WAL flush here keeps
		// the dispatcher up with the sales whose commits do wait for it
		// (docs/performance.md).
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit TO off`); err != nil {
			return fmt.Errorf("relax commit: %w", err)
		}
		recovered, health, err := d.updateEndpointHealth(ctx, tx, c.EndpointID, res.outcome == "delivered", attemptedAt)
		if err != nil {
			return err
		}
		if leaseLost, err = recordAttempt(ctx, tx, c, a); err != nil {
			return err
		}
		if recovered {
			if drained, err = bringForward(ctx, tx, c.EndpointID, attemptedAt); err != nil {
				return err
			}
		}
		if health != nil {
			return d.disable(ctx, tx, c.EndpointID, *health, attemptedAt)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if leaseLost {
		d.cfg.Logger.Warn("webhook attempt recorded after its claim was lost", "delivery", c.ID, "error", errLeaseLost)
	}
	if drained > 0 {
		d.cfg.Logger.Info("webhook endpoint answers again; sending its waiting deliveries now", "endpoint", c.EndpointID, "deliveries", drained)
	}
	return nil
}

// nextState is the attempt's record and where the delivery goes from here.
func (d *Dispatcher) nextState(c claimed, attemptedAt time.Time, res result) attemptRecord {
	a := attemptRecord{
		AttemptedAt: attemptedAt, Outcome: res.outcome, Latency: res.latency, ErrText: res.errText, Excerpt: res.excerpt,
		Status: "pending", AttemptCount: c.AttemptCount + 1, NextAttemptAt: attemptedAt, LastError: res.errText,
	}
	switch {
	case res.outcome == "delivered":
		a.Status, a.FinishedAt = "delivered", &attemptedAt
	case a.AttemptCount >= len(d.cfg.RetrySchedule):
		a.Status, a.FinishedAt = "failed", &attemptedAt
	default:
		a.NextAttemptAt = attemptedAt.Add(d.nextDelay(a.AttemptCount+1, res.retryAfter))
	}
	if res.statusCode != 0 {
		a.StatusCode = &res.statusCode
	}
	if a.LastError == "" && res.outcome == "http_error" {
		a.LastError = "HTTP " + strconv.Itoa(res.statusCode)
	}
	return a
}

// failingEndpoint is an endpoint that has failed for longer than DisableAfter.
type failingEndpoint struct {
	OwnerKind    string    `db:"owner_kind"`
	OwnerID      string    `db:"owner_id"`
	URL          string    `db:"url"`
	Enabled      bool      `db:"enabled"`
	FailingSince time.Time `db:"failing_since"`
}

// updateEndpointHealth ends or extends the endpoint's failure streak. It
// reports an ended streak (recovered), and returns the endpoint when the
// streak has lasted long enough to disable it.
func (d *Dispatcher) updateEndpointHealth(ctx context.Context, tx *sqlx.Tx, endpointID string, succeeded bool, now time.Time) (recovered bool, disable *failingEndpoint, err error) {
	if succeeded {
		recovered, err = markEndpointSucceeded(ctx, tx, endpointID)
		return recovered, nil, err
	}
	ep, ok, err := markEndpointFailed(ctx, tx, endpointID, now)
	if err != nil || !ok { // !ok: deleted meanwhile
		return false, nil, err
	}
	if !ep.Enabled || now.Sub(ep.FailingSince) < d.cfg.DisableAfter {
		return false, nil, nil
	}
	return false, &ep, nil
}

// disable turns the endpoint off and tells the owner's other endpoints; the
// disabled one is skipped by the fan-out since it is no longer enabled.
func (d *Dispatcher) disable(ctx context.Context, tx *sqlx.Tx, endpointID string, ep failingEndpoint, now time.Time) error {
	owner := Owner{Kind: ep.OwnerKind, ID: ep.OwnerID}
	reason := fmt.Sprintf("every delivery failed since %s", ep.FailingSince.UTC().Format(time.RFC3339))
	if err := disableEndpoint(ctx, tx, endpointID, reason, now); err != nil {
		return err
	}
	d.cfg.Logger.Warn("webhook endpoint disabled", "endpoint", endpointID, "owner", owner.String(), "reason", reason)
	_, err := enqueue(ctx, tx, nil, Event{
		Type: TypeEndpointDisabled, CreatedAt: now, Owners: []Owner{owner}, OrderingKey: "owner:" + owner.String(),
		Data: EndpointDisabledData{
			Message:    fmt.Sprintf("Webhook endpoint %s was disabled: %s.", ep.URL, reason),
			EndpointID: endpointID, URL: ep.URL, Reason: reason, FailingSince: ep.FailingSince.UTC(),
		},
		Test: d.cfg.Test,
	}, "")
	return err
}
