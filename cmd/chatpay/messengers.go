package main

import (
	"flag"

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
