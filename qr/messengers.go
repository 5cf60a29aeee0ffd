package qr

import (
	"context"
	"fmt"
	"net/url"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/problem"
)

// Messengers a code can open and a scan can come through (docs/messengers.md).
const (
	OpensWeb      = "web"      // chatpay's own page, for WeChat, "other" and browsers
	OpensTelegram = "telegram" // a channel's Mini App: t.me/<bot>/<app>?startapp=<token>
	OpensWhatsApp = "whatsapp" // a channel's chat: wa.me/<number>?text=<token>
	OpensWeChat   = "wechat"   // chatpay's page through the channel's WeChat sign-in
	OpensChooser  = "chooser"  // a page listing every messenger: the poster default
)

// scanMessengers are the values qr_scans.messenger allows.
var scanMessengers = map[string]bool{
	"web": true, "telegram": true, "whatsapp": true, "wechat": true, "vk": true, "tamtam": true, "other": true, "chooser": true,
}

// scanMessenger maps what the page said to a stored value: "web" when it
// said nothing, "other" for messengers chatpay has no name for.
func scanMessenger(m string) string {
	switch {
	case m == "":
		return "web"
	case scanMessengers[m]:
		return m
	}
	return "other"
}

// ChannelLink is what a QR code needs to know of a channel to open its
// messenger: payments owns channels, and hands this over through the
// ChannelLinker hook so that qr imports no other domain package.
type ChannelLink struct {
	ChannelID   string
	Kind        string // the channel's kind: telegram, whatsapp, wechat…
	TelegramBot string // bot username, without @
	TelegramApp string // Mini App short name; empty opens the bot's main Mini App
	WhatsApp    string // business number, digits only
}

// ChannelLinker returns a channel's link details, or a not_found problem.
type ChannelLinker func(ctx context.Context, channelID string) (ChannelLink, error)

// Option configures a Service at construction.
type Option func(*Service)

// WithChannelLinker gives the service payments' channel lookup for codes
// that open a messenger (payments.ChannelLinker); without it only "web" and
// "chooser" codes can be made.
func WithChannelLinker(link ChannelLinker) Option {
	return func(s *Service) { s.linkChannel = link }
}

// WhatsAppTextPrefix starts the message a wa.me code pre-fills; the
// merchant's WhatsApp bot finds the token after it (docs/messengers.md).
const WhatsAppTextPrefix = "Buy "

func opensOrWeb(opens string) string {
	if opens == "" {
		return OpensWeb
	}
	return opens
}

// checkOpens validates what a new static code opens and the channel that
// serves it. Errors: validation_failed naming opens or channel_id.
func (s *Service) checkOpens(ctx context.Context, in *StaticInput) error {
	in.Opens = opensOrWeb(in.Opens)
	switch in.Opens {
	case OpensWeb, OpensChooser:
		if in.ChannelID != "" {
			return problem.Field("channel_id", "invalid_channel", "channel_id goes with opens telegram, whatsapp or wechat")
		}
		return nil
	case OpensTelegram, OpensWhatsApp, OpensWeChat:
	default:
		return problem.Field("opens", "invalid_opens", "opens must be one of web, chooser, telegram, whatsapp, wechat")
	}
	if !targetIDPattern.MatchString(in.ChannelID) {
		return problem.Field("channel_id", "invalid_channel", "a code that opens %s names the channel (chn_…) that serves it", in.Opens)
	}
	if s.linkChannel == nil {
		return problem.Field("opens", "invalid_opens", "this server cannot make codes that open a messenger")
	}
	link, err := s.linkChannel(ctx, in.ChannelID)
	if p, ok := problem.As(err); ok && p.Kind == problem.KindNotFound {
		return problem.Field("channel_id", "invalid_channel", "no channel %s", in.ChannelID)
	}
	if err != nil {
		return fmt.Errorf("look up channel: %w", err)
	}
	switch {
	case link.Kind != in.Opens:
		return problem.Field("channel_id", "invalid_channel", "channel %s is a %s channel, not %s", in.ChannelID, link.Kind, in.Opens)
	case in.Opens == OpensTelegram && link.TelegramBot == "":
		return problem.Field("channel_id", "invalid_channel", "channel %s registered no telegram_bot_username", in.ChannelID)
	case in.Opens == OpensWhatsApp && link.WhatsApp == "":
		return problem.Field("channel_id", "invalid_channel", "channel %s registered no whatsapp_number", in.ChannelID)
	}
	return nil
}

// CodeURL is what the printed code encodes:
//
//	web      <base>/q/<token>
//	chooser  <base>/o/<token>
//	wechat   <base>/q/<token>?channel=<channel> (signs in with WeChat)
//	telegram https://t.me/<bot>/<app>?startapp=<token> (or t.me/<bot>?startapp=)
//	whatsapp https://wa.me/<number>?text=Buy%20<token>
func (s *Service) CodeURL(ctx context.Context, code Code) (string, error) {
	switch opensOrWeb(code.Opens) {
	case OpensChooser:
		return s.baseURL + "/o/" + code.Token, nil
	case OpensWeChat:
		return s.URL(code.Token) + "?channel=" + url.QueryEscape(code.ChannelID), nil
	case OpensTelegram, OpensWhatsApp:
	default:
		return s.URL(code.Token), nil
	}
	if s.linkChannel == nil {
		return "", fmt.Errorf("qr code %s opens %s but no channel linker is set", code.ID, code.Opens)
	}
	link, err := s.linkChannel(ctx, code.ChannelID)
	if err != nil {
		return "", fmt.Errorf("qr code %s: channel %s: %w", code.ID, code.ChannelID, err)
	}
	return MessengerURL(code.Opens, link, code.Token)
}

// MessengerURL is the deep link that opens a messenger on token.
func MessengerURL(opens string, link ChannelLink, token string) (string, error) {
	switch {
	case opens == OpensTelegram && link.TelegramBot != "" && link.TelegramApp != "":
		return "https://t.me/" + link.TelegramBot + "/" + link.TelegramApp + "?startapp=" + token, nil
	case opens == OpensTelegram && link.TelegramBot != "":
		return "https://t.me/" + link.TelegramBot + "?startapp=" + token, nil
	case opens == OpensWhatsApp && link.WhatsApp != "":
		return "https://wa.me/" + link.WhatsApp + "?text=" + url.QueryEscape(WhatsAppTextPrefix+token), nil
	}
	return "", fmt.Errorf("channel %s cannot open %s", link.ChannelID, opens)
}

// ScansByMessenger counts the merchant's scans per code and messenger, for
// the funnel: qrID → messenger → scans.
func (s *Service) ScansByMessenger(ctx context.Context, merchantID string) (map[string]map[string]int64, error) {
	const q = `
		SELECT s.qr_id, s.messenger, count(*) AS scans
		FROM qr_scans s JOIN qr_codes c ON c.id = s.qr_id
		WHERE c.merchant_id = $1 AND c.kind = 'static'
		GROUP BY s.qr_id, s.messenger
		LIMIT $2`
	var rows []struct {
		QRID      string `db:"qr_id"`
		Messenger string `db:"messenger"`
		Scans     int64  `db:"scans"`
	}
	if err := sqlx.SelectContext(ctx, s.db, &rows, q, merchantID, FunnelCodesMax*len(scanMessengers)); err != nil {
		return nil, fmt.Errorf("count scans per messenger: %w", err)
	}
	out := make(map[string]map[string]int64)
	for _, r := range rows {
		if out[r.QRID] == nil {
			out[r.QRID] = map[string]int64{}
		}
		out[r.QRID][r.Messenger] = r.Scans
	}
	return out, nil
}

// codeURL is CodeURL for a JSON view: a channel that can no longer link
// (its bot username removed) shows chatpay's own address, which still works,
// rather than failing the listing; the image route reports the error.
func (h *HTTP) codeURL(c echo.Context, code Code) string {
	target, err := h.svc.CodeURL(c.Request().Context(), code)
	if err != nil {
		return h.svc.URL(code.Token)
	}
	return target
}
