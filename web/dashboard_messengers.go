package web

import (
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/qr"
)

// opensChoice is one option of the dashboard's "Opens in" list: a value
// "<opens>" or "<opens>:<channel>" and its label.
type opensChoice struct {
	Value string
	Label string
}

// opensChoices lists what a new code may open: every messenger through the
// chooser page (first, the poster default), chatpay's own page, and each
// messenger the platform's channels can open directly.
func (d *Dashboard) opensChoices(c echo.Context) ([]opensChoice, error) {
	choices := []opensChoice{
		{Value: qr.OpensChooser, Label: "Every messenger (a chooser page)"},
		{Value: qr.OpensWeb, Label: "chatpay's page (WeChat, browsers, other messengers)"},
	}
	links, err := d.deps.Payments.ChooserChannels(c.Request().Context())
	if err != nil {
		return nil, err
	}
	for _, link := range links {
		label := messengerNames[link.Kind]
		switch link.Kind {
		case qr.OpensTelegram:
			label += " @" + link.TelegramBot
		case qr.OpensWhatsApp:
			label += " +" + link.WhatsApp
		case qr.OpensWeChat:
			label += " (sign-in with WeChat)"
		}
		choices = append(choices, opensChoice{Value: link.Kind + ":" + link.ChannelID, Label: label})
	}
	return choices, nil
}

// parseOpensChoice splits an "Opens in" value; an empty form value makes a
// chooser code, the poster default.
func parseOpensChoice(value string) (opens, channelID string) {
	if value == "" {
		return qr.OpensChooser, ""
	}
	opens, channelID, _ = strings.Cut(value, ":")
	return opens, channelID
}

// opensLabel says which messenger a code opens, for lists and posters.
func opensLabel(code qr.Code) string {
	switch code.Opens {
	case qr.OpensChooser:
		return "every messenger (chooser page)"
	case qr.OpensTelegram, qr.OpensWhatsApp, qr.OpensWeChat:
		return strings.TrimSuffix(messengerNames[code.Opens], " 微信")
	}
	return "chatpay's page"
}

// scansByMessengerText words scan counts per messenger, most first.
func scansByMessengerText(counts map[string]int64) string {
	type entry struct {
		name  string
		scans int64
	}
	entries := make([]entry, 0, len(counts))
	for m, n := range counts {
		name := strings.TrimSuffix(messengerNames[m], " 微信")
		if name == "" {
			name = m
		}
		entries = append(entries, entry{name, n})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].scans != entries[j].scans {
			return entries[i].scans > entries[j].scans
		}
		return entries[i].name < entries[j].name
	})
	parts := make([]string, len(entries))
	for i, e := range entries {
		parts[i] = e.name + " " + strconv.FormatInt(e.scans, 10)
	}
	return strings.Join(parts, " · ")
}
