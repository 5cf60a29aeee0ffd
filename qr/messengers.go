package qr

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
