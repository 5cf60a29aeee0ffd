package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chatpay/chatpay/internal/problem"
)

// URLPolicy says which endpoint URLs are acceptable. The zero value is the
// production policy: https only, public addresses only.
type URLPolicy struct {
	// AllowHTTP permits plain http:// URLs (local development).
	AllowHTTP bool
	// AllowLoopback permits loopback addresses (127.0.0.0/8, ::1) for local
	// development and tests. It never opens private, link-local or metadata
	// ranges: a development flag left on in production must not let a
	// merchant aim deliveries at the cloud's metadata service or the LAN.
	AllowLoopback bool
	// Allowed are exact addresses accepted whatever the rules above, over
	// plain http too: the demo's own chat-sim, and nothing else.
	Allowed []netip.AddrPort
}

// allows reports whether the policy lets a connection reach ap.
func (p URLPolicy) allows(ap netip.AddrPort) bool {
	addr := ap.Addr().Unmap()
	for _, a := range p.Allowed {
		if a.Addr().Unmap() == addr && a.Port() == ap.Port() {
			return true
		}
	}
	return IsPublic(addr) || (p.AllowLoopback && addr.IsLoopback())
}

// allowedLiteral reports whether u names one of the exact Allowed addresses.
func (p URLPolicy) allowedLiteral(u *url.URL) bool {
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return false
	}
	for _, a := range p.Allowed {
		if a.Addr().Unmap() == ap.Addr().Unmap() && a.Port() == ap.Port() {
			return true
		}
	}
	return false
}

// ErrRefusedAddress is returned when a connection would reach a non-public
// address that the policy forbids.
var ErrRefusedAddress = errors.New("webhooks: refused to connect to a non-public address")

// resolveTimeout bounds the DNS look-up done when an endpoint is saved.
const resolveTimeout = 2 * time.Second

// blockedPrefixes are the special-purpose ranges (RFC 6890 and friends) that
// netip's predicates do not already cover and that no webhook receiver lives in.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"), // reserved and broadcast
	netip.MustParsePrefix("::/96"),       // IPv4-compatible (deprecated), ::, ::1
	netip.MustParsePrefix("100::/64"),    // discard-only
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fec0::/10"), // site-local (deprecated)
}

// embeddedIPv4 are IPv6 ranges that carry an IPv4 address a gateway will
// reach (NAT64 in the last 32 bits, 6to4 in bits 16–48); the embedded address
// must be public too.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// IsPublic reports whether addr is a globally reachable unicast address.
func IsPublic(addr netip.Addr) bool {
	addr = addr.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if !addr.IsValid() || addr.Zone() != "" {
		return false
	}
	if addr.IsLoopback() || addr.IsPrivate() || addr.IsUnspecified() || addr.IsMulticast() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range blockedPrefixes {
		if p.Contains(addr) {
			return false
		}
	}
	if nat64Prefix.Contains(addr) {
		b := addr.As16()
		return IsPublic(netip.AddrFrom4([4]byte(b[12:16])))
	}
	if sixToFour.Contains(addr) {
		b := addr.As16()
		return IsPublic(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return true
}

// parseLegacyIPv4 reads the numeric host forms that inet_aton (and so many
// resolvers and browsers) accept: 1 to 4 parts, each decimal, octal (leading
// 0) or hex (0x), the last part filling the remaining bytes, as in
// "2130706433", "0x7f.1" or "0177.0.0.1". ok is false if host is not such a form.
func parseLegacyIPv4(host string) (addr netip.Addr, ok bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	values := make([]uint64, len(parts))
	for i, p := range parts {
		base, digits := 10, p
		switch {
		case strings.HasPrefix(strings.ToLower(p), "0x"):
			base, digits = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		if digits == "" && base != 16 {
			return netip.Addr{}, false
		}
		if digits == "" {
			digits = "0"
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		values[i] = v
	}
	var n uint64
	for i, v := range values[:len(values)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*uint(i))
	}
	last := values[len(values)-1]
	if last >= 1<<(8*uint(5-len(values))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// CheckURL validates an endpoint URL when it is saved. It returns a
// *problem.Error (422) naming the field "url". The dispatcher checks again at
// connect time, since DNS answers can change.
func (p URLPolicy) CheckURL(ctx context.Context, raw string) error {
	bad := func(code, format string, args ...any) error { return problem.Field("url", code, format, args...) }
	if len(raw) > urlLengthMax {
		return bad("too_long", "at most %d characters", urlLengthMax)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return bad("invalid_url", "must be an absolute URL such as https://bot.example.com/webhooks")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (p.AllowHTTP || p.allowedLiteral(u)):
	default:
		return bad("url_scheme", "must use https")
	}
	if u.User != nil {
		return bad("url_userinfo", "must not contain a user name or password")
	}
	if u.Fragment != "" {
		return bad("invalid_url", "must not contain a fragment")
	}
	host := u.Hostname()
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("invalid_url", "port %q is not valid", port)
		}
	}
	if p.allowedLiteral(u) {
		return nil
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if !IsPublic(addr) && !(p.AllowLoopback && addr.IsLoopback()) {
			return bad("url_private_address", "%s is not a public address", host)
		}
		return nil
	}
	if addr, ok := parseLegacyIPv4(host); ok {
		if !IsPublic(addr) {
			return bad("url_private_address", "%s means %s, which is not a public address", host, addr)
		}
		return bad("url_numeric_host", "write the address as %s", addr)
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if p.AllowLoopback && (lower == "localhost" || strings.HasSuffix(lower, ".localhost")) {
		return nil // the dialer still checks the address it resolves to
	}
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") || !strings.Contains(lower, ".") {
		return bad("url_private_address", "%s is not a public host name", host)
	}
	// A name that resolves now to a non-public address is refused at once; one
	// that does not resolve is accepted, as the receiver may not be live yet.
	resolveCtx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(resolveCtx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if !IsPublic(a) && !(p.AllowLoopback && a.Unmap().IsLoopback()) {
			return bad("url_private_address", "%s resolves to %s, which is not a public address", host, a)
		}
	}
	return nil
}

// dialControl runs after DNS resolution, just before connect(2), with the
// address actually dialled: the one place a re-resolving name cannot dodge.
func (p URLPolicy) dialControl(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("%w: network %s", ErrRefusedAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrRefusedAddress, address)
	}
	if !p.allows(ap) {
		return fmt.Errorf("%w: %s", ErrRefusedAddress, ap.Addr())
	}
	return nil
}

// dialTimeout bounds connection set-up separately from the whole request.
const dialTimeout = 5 * time.Second

// newHTTPClient returns the dispatcher's client: no proxy (a proxy would dial
// on our behalf and bypass the guard), the guard on every connection, and no
// redirects followed — a 3xx is simply a failed attempt, so a redirect can
// never lead to an internal address and the signed body is never replayed
// elsewhere.
func (p URLPolicy) newHTTPClient(timeout time.Duration, connsPerHostMax int) *http.Client {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, Control: p.dialControl}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   connsPerHostMax,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
