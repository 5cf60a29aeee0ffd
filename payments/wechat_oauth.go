package payments

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/chatpay/chatpay/internal/ids"
	"github.com/chatpay/chatpay/internal/problem"
	"github.com/chatpay/chatpay/qr"
)

// WeChat has no launch data a page could verify: an Official Account learns
// who opened a page through web authorization (网页授权,
// developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html).
// With scope snsapi_base the shopper sees no consent screen:
//
//  1. the page redirects to
//     <authorize>?appid=…&redirect_uri=…&response_type=code&scope=snsapi_base&state=…#wechat_redirect
//  2. WeChat redirects back to redirect_uri?code=…&state=…
//  3. chatpay exchanges the code, server to server, at
//     <token>?appid=…&secret=…&code=…&grant_type=authorization_code
//     and gets {"openid": …} (or {"errcode": …, "errmsg": …}).
//
// The openid is the shopper. chatpay then signs a generic launch context
// with the channel's own launch secret, so every later page verifies it like
// any other channel's. state is bound to the browser (a cookie's hash) and
// used once, so a code fetched in another browser cannot be replayed here.
//
// github.com/silenceper/wechat/v2 implements the same two calls, but its
// endpoints are unexported constants and its only seam is a package-global
// HTTP client; pointing tests at a fake server would mean rewriting hosts
// for the whole process. The two requests are short enough to own here,
// with their base URLs injected.
const (
	WeChatAuthorizeURLDefault = "https://open.weixin.qq.com/connect/oauth2/authorize"
	WeChatTokenURLDefault     = "https://api.weixin.qq.com/sns/oauth2/access_token"
	// weChatStateTTL bounds how long a shopper may take on WeChat's side.
	weChatStateTTL = 10 * time.Minute
	// weChatTimeoutDefault bounds the server-to-server exchange.
	weChatTimeoutDefault = 10 * time.Second
	// weChatResponseBytesMax bounds the exchange's answer (a few hundred bytes).
	weChatResponseBytesMax = 16 << 10
	// weChatCodeBytesMax bounds the code WeChat hands back (32 characters today).
	weChatCodeBytesMax = 128
	// weChatOpenIDBytesMax bounds an openid (28 characters today).
	weChatOpenIDBytesMax = 64
)

var (
	weChatReturnPattern = regexp.MustCompile(`^/q/[a-z2-7]{26}$`)
	weChatOpenIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// WeChatEndpoints are the web authorization's URLs, configurable so that
// tests run against a fake server on loopback.
type WeChatEndpoints struct {
	AuthorizeURL string
	TokenURL     string
	Timeout      time.Duration
}

// WeChatOAuth runs the Official Account web authorization for wechat channels.
type WeChatOAuth struct {
	service   *Service
	endpoints WeChatEndpoints
	baseURL   string
	client    *http.Client
}

// NewWeChatOAuth returns the sign-in flow; publicBaseURL is where WeChat
// sends the shopper back.
func NewWeChatOAuth(s *Service, endpoints WeChatEndpoints, publicBaseURL string) *WeChatOAuth {
	if endpoints.AuthorizeURL == "" {
		endpoints.AuthorizeURL = WeChatAuthorizeURLDefault
	}
	if endpoints.TokenURL == "" {
		endpoints.TokenURL = WeChatTokenURLDefault
	}
	if endpoints.Timeout <= 0 {
		endpoints.Timeout = weChatTimeoutDefault
	}
	return &WeChatOAuth{service: s, endpoints: endpoints, baseURL: strings.TrimRight(publicBaseURL, "/"),
		client: &http.Client{Timeout: endpoints.Timeout}}
}

// Start records a state for the browser and returns the authorization URL
// to redirect to. browserSecret is the caller's per-browser cookie value.
// It returns invalid_launch_context for a channel that is not a WeChat
// Official Account and validation_failed for a bad return path.
func (w *WeChatOAuth) Start(ctx context.Context, channelID, returnPath, browserSecret string) (string, error) {
	if !weChatReturnPattern.MatchString(returnPath) {
		return "", problem.Field("return", "invalid_return", "the page to return to must be a checkout (/q/<token>)")
	}
	ch, m, err := w.channel(ctx, channelID)
	if err != nil {
		return "", err
	}
	state, err := qr.NewToken() // 26 base32 characters from crypto/rand
	if err != nil {
		return "", err
	}
	now := w.service.now().UTC()
	const q = `
		INSERT INTO wechat_oauth_states (state, channel_id, browser_hash, return_path, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`
	if _, err := w.service.db.ExecContext(ctx, q, state, ch.ID, hashSecret(browserSecret), returnPath, now, now.Add(weChatStateTTL)); err != nil {
		return "", fmt.Errorf("insert wechat state: %w", err)
	}
	// WeChat checks the parameters in this order, and wants the fragment.
	redirect := w.baseURL + "/wx/" + ch.ID + "/callback"
	return w.endpoints.AuthorizeURL + "?appid=" + url.QueryEscape(*m.WeChatAppID) +
		"&redirect_uri=" + url.QueryEscape(redirect) + "&response_type=code&scope=snsapi_base&state=" + state +
		"#wechat_redirect", nil
}

// Finish checks state against the browser, exchanges code for the
// shopper's openid and returns the checkout to go back to with a launch
// context chatpay signed for the channel. Errors: invalid_launch_context
// (unknown, used, expired or other browser's state; a code WeChat refuses),
// provider_unavailable (503) when WeChat cannot be reached.
func (w *WeChatOAuth) Finish(ctx context.Context, channelID, state, code, browserSecret string) (returnPath, launch string, err error) {
	if code == "" || len(code) > weChatCodeBytesMax || strings.ContainsAny(code, "\x00&#") {
		return "", "", launchRefused("WeChat sent no usable authorization code: open the page again")
	}
	ch, m, err := w.channel(ctx, channelID)
	if err != nil {
		return "", "", err
	}
	var stored struct {
		ReturnPath  string `db:"return_path"`
		BrowserHash []byte `db:"browser_hash"`
	}
	// Used once: the UPDATE claims the state, so a replayed callback finds nothing.
	const q = `
		UPDATE wechat_oauth_states SET used_at = $3
		WHERE state = $1 AND channel_id = $2 AND used_at IS NULL AND expires_at > $3
		RETURNING return_path, browser_hash`
	err = w.service.db.GetContext(ctx, &stored, q, state, ch.ID, w.service.now().UTC())
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", launchRefused("this WeChat sign-in is unknown, used or expired: open the page again")
	}
	if err != nil {
		return "", "", fmt.Errorf("claim wechat state: %w", err)
	}
	if subtle.ConstantTimeCompare(stored.BrowserHash, hashSecret(browserSecret)) != 1 {
		return "", "", launchRefused("this WeChat sign-in was started in another browser: open the page again")
	}
	openID, err := w.exchange(ctx, *m.WeChatAppID, *m.WeChatAppSecret, code)
	if err != nil {
		return "", "", err
	}
	launch = SignLaunch(*ch.LaunchSecret, map[string]string{
		"channel_id": ch.ID, "user_id": openID, "auth_date": strconv.FormatInt(w.service.now().Unix(), 10),
	})
	return stored.ReturnPath, launch, nil
}

func (w *WeChatOAuth) channel(ctx context.Context, channelID string) (Channel, MessengerSettings, error) {
	ch, err := w.service.Channel(ctx, channelID)
	if p, ok := problem.As(err); ok && p.Kind == problem.KindNotFound {
		return Channel{}, MessengerSettings{}, ErrUnknownChannel()
	}
	if err != nil {
		return Channel{}, MessengerSettings{}, err
	}
	m, err := w.service.ChannelMessenger(ctx, channelID)
	if err != nil {
		return Channel{}, MessengerSettings{}, err
	}
	if ch.Kind != "wechat" || !m.WeChat() || ch.LaunchSecret == nil {
		return Channel{}, MessengerSettings{}, launchRefused("this channel does not sign shoppers in with WeChat")
	}
	return ch, m, nil
}

// weChatToken is the exchange's answer; errcode is set on failure.
type weChatToken struct {
	OpenID  string `json:"openid"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func (w *WeChatOAuth) exchange(ctx context.Context, appID, secret, code string) (string, error) {
	target := w.endpoints.TokenURL + "?appid=" + url.QueryEscape(appID) + "&secret=" + url.QueryEscape(secret) +
		"&code=" + url.QueryEscape(code) + "&grant_type=authorization_code"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", fmt.Errorf("wechat token request: %w", err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// The URL carries the app secret: say where, not what.
		return "", problem.New(problem.KindUnavailable, "provider_unavailable", "WeChat's authorization server did not answer; try again")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, weChatResponseBytesMax+1))
	if err != nil || len(body) > weChatResponseBytesMax || resp.StatusCode != http.StatusOK {
		return "", problem.New(problem.KindUnavailable, "provider_unavailable", "WeChat's authorization server answered %d; try again", resp.StatusCode)
	}
	var token weChatToken
	if err := json.Unmarshal(body, &token); err != nil {
		return "", problem.New(problem.KindUnavailable, "provider_unavailable", "WeChat's authorization server answered something other than JSON")
	}
	if token.ErrCode != 0 {
		return "", launchRefused("WeChat refused the sign-in (%d %s): open the page again", token.ErrCode, truncateText(token.ErrMsg, 100))
	}
	if !weChatOpenIDPattern.MatchString(token.OpenID) || len(token.OpenID) > weChatOpenIDBytesMax {
		return "", launchRefused("WeChat answered without a usable openid")
	}
	return token.OpenID, nil
}

func truncateText(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "")
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "")
	}
	return s
}

// WeChatBrowserSecret makes the per-browser value a sign-in is bound to.
func WeChatBrowserSecret() string { return ids.Secret("wxb", 24) }
