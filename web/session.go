package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/internal/problem"
)

// Dashboard sessions and forms. A session is a random 256-bit token in an
// HttpOnly cookie; only its SHA-256 is stored, so reading the table does not
// let anyone sign in. Every form carries a CSRF token: for a signed-in staff
// user it is derived from the session token (an attacker's page can neither
// read the cookie nor compute it); before sign-in it is a random value that
// must match a cookie of its own (double submit), which is enough for the
// sign-up and sign-in forms, whose only effect is on the attacker's account.
const (
	sessionCookieName = "chatpay_session"
	csrfCookieName    = "chatpay_csrf"
	csrfFieldName     = "csrf_token"
	sessionTokenBytes = 32
	// sessionLifetimeMax is how long a sign-in lasts: one working day.
	sessionLifetimeMax = 12 * time.Hour
	// sessionTouchInterval limits the writes that keep last_seen_at current.
	sessionTouchInterval = time.Minute
	// sessionsPurgeBatchMax bounds the expired sessions one sign-in deletes.
	sessionsPurgeBatchMax = 100

	// loginFailuresMax failed sign-ins per (e-mail, address) pair within
	// loginFailureWindow lock the pair out until the window ends.
	loginFailuresMax   = 5
	loginFailureWindow = 15 * time.Minute
	// loginFailuresPerAccountMax counts one account's failures from every
	// address (a botnet guessing one password), and
	// loginFailuresPerAddressMax one address's failures on every account
	// (credential stuffing): both higher than the pair's limit, so a staff
	// member who mistypes is never stopped by a stranger's guesses first.
	loginFailuresPerAccountMax = 20
	loginFailuresPerAddressMax = 20
	// loginFailurePurgeBatchMax bounds the stale counters one failure deletes.
	loginFailurePurgeBatchMax = 100
)

// Session is a signed-in staff user.
type Session struct {
	StaffID    string    `db:"staff_id"`
	MerchantID string    `db:"merchant_id"`
	CSRFToken  string    `db:"-"`
	LastSeenAt time.Time `db:"last_seen_at"`
	ExpiresAt  time.Time `db:"expires_at"`
	tokenHash  []byte
}

// Sessions stores dashboard sessions and login failure counters.
type Sessions struct {
	db  *sqlx.DB
	now func() time.Time
}

// NewSessions returns the session store on db with an injected clock.
func NewSessions(db *sqlx.DB, now func() time.Time) *Sessions {
	return &Sessions{db: db, now: now}
}

func (s *Sessions) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// csrfTokenFor derives the form token of a session. The label keeps it from
// ever equalling any other hash of the session token.
func csrfTokenFor(sessionToken string) string {
	mac := hmac.New(sha256.New, []byte(sessionToken))
	mac.Write([]byte("chatpay dashboard csrf v1"))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func randomToken() string {
	b := make([]byte, sessionTokenBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}

// Create starts a session for staff and returns the cookie value. It also
// deletes a bounded batch of expired sessions, so the table cannot grow
// without limit and no separate worker is needed.
func (s *Sessions) Create(ctx context.Context, staff catalog.Staff) (string, error) {
	token := randomToken()
	now := s.clock()
	const insert = `
		INSERT INTO dashboard_sessions (token_hash, staff_id, merchant_id, created_at, last_seen_at, expires_at)
		VALUES ($1, $2, $3, $4, $4, $5)`
	if _, err := s.db.ExecContext(ctx, insert, hashToken(token), staff.ID, staff.MerchantID, now, now.Add(sessionLifetimeMax)); err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	const purge = `
		DELETE FROM dashboard_sessions WHERE token_hash IN (
			SELECT token_hash FROM dashboard_sessions WHERE expires_at <= $1 LIMIT $2)`
	if _, err := s.db.ExecContext(ctx, purge, now, sessionsPurgeBatchMax); err != nil {
		return "", fmt.Errorf("purge sessions: %w", err)
	}
	return token, nil
}

// Lookup returns the live session of token; found is false for an unknown,
// expired or malformed token.
func (s *Sessions) Lookup(ctx context.Context, token string) (sess Session, found bool, err error) {
	if token == "" || len(token) > 2*sessionTokenBytes {
		return Session{}, false, nil
	}
	now := s.clock()
	hash := hashToken(token)
	const q = `SELECT staff_id, merchant_id, last_seen_at, expires_at FROM dashboard_sessions WHERE token_hash = $1 AND expires_at > $2`
	err = s.db.GetContext(ctx, &sess, q, hash, now)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, fmt.Errorf("read session: %w", err)
	}
	if now.Sub(sess.LastSeenAt) >= sessionTouchInterval {
		if _, err := s.db.ExecContext(ctx, `UPDATE dashboard_sessions SET last_seen_at = $2 WHERE token_hash = $1`, hash, now); err != nil {
			return Session{}, false, fmt.Errorf("touch session: %w", err)
		}
	}
	sess.CSRFToken, sess.tokenHash = csrfTokenFor(token), hash
	return sess, true, nil
}

// Delete ends the session of token (sign-out); an unknown token is no error.
func (s *Sessions) Delete(ctx context.Context, token string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM dashboard_sessions WHERE token_hash = $1`, hashToken(token)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// loginCounter is one failure counter a sign-in is checked against.
type loginCounter struct {
	key         []byte
	failuresMax int
}

// loginCounters are the three counters of a sign-in: the (e-mail, address)
// pair, the account from any address, and the address on any account. The
// keys are hashed, so the table holds no e-mail address.
func loginCounters(email, address string) []loginCounter {
	email = strings.ToLower(strings.TrimSpace(email))
	hash := func(parts ...string) []byte {
		sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
		return sum[:]
	}
	return []loginCounter{
		{hash(email, address), loginFailuresMax}, // the pair: the original key, kept as it was
		{hash("account", email), loginFailuresPerAccountMax},
		{hash("address", address), loginFailuresPerAddressMax},
	}
}

// ErrTooManyLogins is the refusal while a pair is locked out.
func errTooManyLogins(retryAfter time.Duration) error {
	seconds := max(1, int(retryAfter.Round(time.Second)/time.Second))
	return problem.New(problem.KindTooManyRequests, "too_many_login_attempts",
		"too many failed sign-ins; try again in %d minutes", (seconds+59)/60).With("retry_after_seconds", seconds)
}

// LoginAllowed returns errTooManyLogins while any of the sign-in's counters
// has reached its limit in the current window, and nil otherwise.
func (s *Sessions) LoginAllowed(ctx context.Context, email, address string) error {
	now := s.clock()
	for _, counter := range loginCounters(email, address) {
		var row struct {
			Failures    int       `db:"failures"`
			WindowStart time.Time `db:"window_start"`
		}
		err := s.db.GetContext(ctx, &row, `SELECT failures, window_start FROM dashboard_login_failures WHERE key_hash = $1`, counter.key)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read login failures: %w", err)
		}
		windowEnd := row.WindowStart.Add(loginFailureWindow)
		if row.Failures >= counter.failuresMax && now.Before(windowEnd) {
			return errTooManyLogins(windowEnd.Sub(now))
		}
	}
	return nil
}

// LoginFailed counts a failed sign-in of the pair: a window that ended
// starts over. It deletes a bounded batch of counters of ended windows.
func (s *Sessions) LoginFailed(ctx context.Context, email, address string) error {
	now := s.clock()
	const upsert = `
		INSERT INTO dashboard_login_failures (key_hash, failures, window_start) VALUES ($1, 1, $2)
		ON CONFLICT (key_hash) DO UPDATE SET
			failures = CASE WHEN dashboard_login_failures.window_start <= $3 THEN 1 ELSE dashboard_login_failures.failures + 1 END,
			window_start = CASE WHEN dashboard_login_failures.window_start <= $3 THEN $2 ELSE dashboard_login_failures.window_start END`
	for _, counter := range loginCounters(email, address) {
		if _, err := s.db.ExecContext(ctx, upsert, counter.key, now, now.Add(-loginFailureWindow)); err != nil {
			return fmt.Errorf("count login failure: %w", err)
		}
	}
	const purge = `
		DELETE FROM dashboard_login_failures WHERE key_hash IN (
			SELECT key_hash FROM dashboard_login_failures WHERE window_start <= $1 LIMIT $2)`
	if _, err := s.db.ExecContext(ctx, purge, now.Add(-loginFailureWindow), loginFailurePurgeBatchMax); err != nil {
		return fmt.Errorf("purge login failures: %w", err)
	}
	return nil
}

// LoginSucceeded clears the pair's counter. The account's and the
// address's stay: one right password must not wipe out a stuffing run's
// count from that address, nor a botnet's count on that account.
func (s *Sessions) LoginSucceeded(ctx context.Context, email, address string) error {
	pair := loginCounters(email, address)[0]
	if _, err := s.db.ExecContext(ctx, `DELETE FROM dashboard_login_failures WHERE key_hash = $1`, pair.key); err != nil {
		return fmt.Errorf("clear login failures: %w", err)
	}
	return nil
}

// clientAddress is the peer's IP. Forwarded headers are ignored on purpose:
// anyone can send them, and a limiter keyed on them is no limiter.
func clientAddress(c echo.Context) string {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		return c.Request().RemoteAddr
	}
	return host
}

// setCookie writes a dashboard cookie: HttpOnly, SameSite=Lax, and Secure
// when the request came over https (directly or through a proxy saying so).
func setCookie(c echo.Context, name, value string, maxAge time.Duration) {
	cookie := &http.Cookie{
		Name: name, Value: value, Path: "/dashboard", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Scheme() == "https", MaxAge: int(maxAge / time.Second),
	}
	if maxAge < 0 {
		cookie.MaxAge = -1
	}
	c.SetCookie(cookie)
}

func cookieValue(c echo.Context, name string) string {
	cookie, err := c.Cookie(name)
	if err != nil {
		return ""
	}
	return cookie.Value
}

// anonymousCSRF returns the pre-sign-in form token, setting its cookie on
// first sight.
func anonymousCSRF(c echo.Context) string {
	if v := cookieValue(c, csrfCookieName); len(v) >= 32 && len(v) <= 64 {
		return v
	}
	v := randomToken()
	setCookie(c, csrfCookieName, v, sessionLifetimeMax)
	return v
}

// errCSRF is the refusal of a form post without the right token.
var errCSRF = problem.New(problem.KindForbidden, "csrf_token_invalid",
	"the form is missing its security token or it has expired; reload the page and try again")

// checkCSRF compares the posted token with the expected one in constant time.
func checkCSRF(c echo.Context, expected string) error {
	got := c.FormValue(csrfFieldName)
	if got == "" || expected == "" || !hmac.Equal([]byte(got), []byte(expected)) {
		return errCSRF
	}
	return nil
}
