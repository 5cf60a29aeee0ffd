package main

import (
	"flag"
	"fmt"

	"github.com/chatpay/chatpay/payments"
)

// weChatFlags registers where WeChat's web authorization lives. Production
// uses WeChat's own URLs; tests and demos point them at a fake on loopback.
func weChatFlags(fs *flag.FlagSet, env *environment) *payments.WeChatEndpoints {
	cfg := &payments.WeChatEndpoints{}
	fs.StringVar(&cfg.AuthorizeURL, "wechat-authorize-url", envOr(env, "CHATPAY_WECHAT_AUTHORIZE_URL", payments.WeChatAuthorizeURLDefault),
		"WeChat Official Account web authorization URL (env CHATPAY_WECHAT_AUTHORIZE_URL)")
	fs.StringVar(&cfg.TokenURL, "wechat-token-url", envOr(env, "CHATPAY_WECHAT_TOKEN_URL", payments.WeChatTokenURLDefault),
		"WeChat URL that exchanges an authorization code for the openid (env CHATPAY_WECHAT_TOKEN_URL)")
	return cfg
}

// messengerFlags registers `chatpay channel create`'s messenger settings.
// The bot token is best passed in the environment, out of shell history.
func messengerFlags(fs *flag.FlagSet, env *environment) *payments.MessengerInput {
	in := &payments.MessengerInput{}
	fs.StringVar(&in.TelegramBotToken, "telegram-bot-token", env.getenv("CHATPAY_TELEGRAM_BOT_TOKEN"),
		"kind telegram: the bot token from @BotFather; only the key derived from it is stored (env CHATPAY_TELEGRAM_BOT_TOKEN)")
	fs.Int64Var(&in.TelegramBotID, "telegram-bot-id", 0, "kind telegram without a token: the bot id, for Telegram's Ed25519 signature (third-party mode)")
	fs.BoolVar(&in.TelegramTestEnvironment, "telegram-test-environment", false, "verify signatures with Telegram's test-environment key")
	fs.StringVar(&in.TelegramBotUsername, "telegram-bot-username", "", "the bot's username, for QR codes that open t.me/<bot>")
	fs.StringVar(&in.TelegramAppShortName, "telegram-app", "", "the Mini App's short name, for t.me/<bot>/<app>?startapp= codes")
	fs.StringVar(&in.WhatsAppNumber, "whatsapp-number", "", "kind whatsapp: the business number wa.me codes open")
	fs.Int64Var(&in.VKAppID, "vk-app-id", 0, "kind vk: the VK Mini App's id")
	fs.StringVar(&in.VKAppSecret, "vk-app-secret", env.getenv("CHATPAY_VK_APP_SECRET"), "kind vk: the app's protected key (env CHATPAY_VK_APP_SECRET)")
	fs.StringVar(&in.WeChatAppID, "wechat-app-id", "", "kind wechat: the Official Account's AppID")
	fs.StringVar(&in.WeChatAppSecret, "wechat-app-secret", env.getenv("CHATPAY_WECHAT_APP_SECRET"), "kind wechat: the AppSecret (env CHATPAY_WECHAT_APP_SECRET)")
	return in
}

// printMessenger tells the operator where to point the messenger.
func printMessenger(env *environment, ch payments.Channel, m payments.MessengerSettings) {
	switch {
	case ch.Kind == "telegram" && (m.TelegramBotID != nil || m.TelegramSecretKey != nil):
		mode := "bot token (first party)"
		if m.TelegramSecretKey == nil {
			mode = "bot id only (third party, Ed25519)"
		}
		fmt.Fprintf(env.stdout, "telegram:      verifies initData with the %s\nMini App URL:  <public-url>/tg/%s  (set it in @BotFather: /newapp or Bot Settings → Configure Mini App)\n", mode, ch.ID)
	case ch.Kind == "vk":
		fmt.Fprintf(env.stdout, "vk:            app %d\nMini App URL:  <public-url>/q/<token>?channel=%s\n", *m.VKAppID, ch.ID)
	case ch.Kind == "wechat" && m.WeChat():
		fmt.Fprintf(env.stdout, "wechat:        Official Account %s\nOAuth domain:  the host of <public-url> (网页授权域名)\n", *m.WeChatAppID)
	case ch.Kind == "whatsapp" && m.WhatsAppNumber != nil:
		fmt.Fprintf(env.stdout, "whatsapp:      +%s\n", *m.WhatsAppNumber)
	}
}
