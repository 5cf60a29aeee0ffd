package web

import (
	"golang.org/x/text/language"
)

// shopperText is the wording of the shopper pages in one language. Pages
// follow the browser's Accept-Language: a messenger's in-app browser sends
// the phone's language.
type shopperText struct {
	Lang           string // the html lang attribute and catalog.RenderRules' language
	Paying         string // "Paying as %s."
	WalletBalance  string // "Wallet balance: %s"
	BuyNow         string // "Buy now · %s"
	Processing     string
	SoldOut        string
	SoldOutHint    string
	Short          string // "Your wallet is short of the price."
	ShortHint      string // "Top up %s in the chat, then reopen this page."
	Receipt        string
	Paid           string // "Paid %s"
	Order          string
	ShowAtTill     string
	QRRefreshes    string
	RulesHeading   string
	ErrorTitle     string
	WrongTitle     string
	WrongMessage   string
	WrongHint      string
	RevokedTitle   string
	RevokedMessage string
	RevokedHint    string
	ExpiredTitle   string
	ExpiredMessage string
	ExpiredHint    string
	UsedTitle      string
	UsedMessage    string
	UsedHint       string
	NotFoundTitle  string
	NotFoundMsg    string
	NotFoundHint   string
	LaunchTitle    string
	LaunchHint     string
	AlreadyPaid    string
	LimitReached   string
	Unavailable    string
	Insufficient   string
	MissingKey     string
	ViewReceipt    string
	TopUpHeading   string
	CardLabel      string
	CardHint       string
	TopUpButton    string // "Top up %s"
	TopUpDone      string // "Topped up %s."
	TopUpPending   string
	TopUpDeclined  string
	CouponUsed     string
	CouponRefunded string
	CouponExpired  string
}

var shopperEnglish = shopperText{
	Lang: "en", Paying: "Paying as %s.", WalletBalance: "Wallet balance: %s", BuyNow: "Buy now · %s", Processing: "Paying…",
	SoldOut: "Sold out.", SoldOutHint: "This item is not available any more.",
	Short: "Your wallet is short of the price.", ShortHint: "Top up at least %s below.",
	Receipt: "Receipt", Paid: "Paid %s", Order: "order", ShowAtTill: "Show this code at the till.",
	QRRefreshes:  "The code refreshes by itself every half minute; a screenshot will not work.",
	RulesHeading: "When you can use it",
	ErrorTitle:   "Sorry",
	WrongTitle:   "Something went wrong", WrongMessage: "We could not complete this. Nothing was charged.", WrongHint: "Please try again in a moment.",
	RevokedTitle: "This code is no longer valid", RevokedMessage: "The merchant has withdrawn this QR code.", RevokedHint: "Ask the merchant for a current one.",
	ExpiredTitle: "This code has expired", ExpiredMessage: "The payment code was only valid for a few minutes.", ExpiredHint: "Ask the cashier to show a new code.",
	UsedTitle: "This code was already used", UsedMessage: "Someone has already paid with this code.", UsedHint: "Ask the cashier to show a new code.",
	NotFoundTitle: "Not found", NotFoundMsg: "We could not find what this link points to.", NotFoundHint: "Check that you scanned the whole code.",
	LaunchTitle: "Open this page from your chat", LaunchHint: "Scan the code with your messenger, or reopen the link from the chat.",
	AlreadyPaid:    "You have already paid for this.",
	LimitReached:   "You have bought as many of these as one person may.",
	Unavailable:    "This item is not on sale right now.",
	Insufficient:   "Your wallet does not cover the price. Top up in the chat and try again.",
	MissingKey:     "The page was out of date. Reload it and tap again.",
	ViewReceipt:    "View your receipt",
	TopUpHeading:   "Top up your wallet",
	CardLabel:      "Card number",
	CardHint:       "Sandbox: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined.",
	TopUpButton:    "Top up %s",
	TopUpDone:      "Topped up %s.",
	TopUpPending:   "Your bank has not confirmed the payment yet. Reload this page in a moment; you will not be charged twice.",
	TopUpDeclined:  "Your card was declined. Try another card.",
	CouponUsed:     "Used.",
	CouponRefunded: "Refunded to your wallet.",
	CouponExpired:  "Expired.",
}

var shopperChinese = shopperText{
	Lang: "zh", Paying: "付款人：%s。", WalletBalance: "钱包余额：%s", BuyNow: "立即购买 · %s", Processing: "正在付款…",
	SoldOut: "已售罄。", SoldOutHint: "该商品已无库存。",
	Short: "钱包余额不足。", ShortHint: "请在下方至少充值 %s。",
	Receipt: "收据", Paid: "已支付 %s", Order: "订单", ShowAtTill: "请在收银台出示此码。",
	QRRefreshes:  "此码每半分钟自动更新，截图无效。",
	RulesHeading: "使用规则",
	ErrorTitle:   "抱歉",
	WrongTitle:   "出错了", WrongMessage: "操作未能完成，未扣款。", WrongHint: "请稍后再试。",
	RevokedTitle: "此二维码已失效", RevokedMessage: "商家已撤回此二维码。", RevokedHint: "请向商家索取新的二维码。",
	ExpiredTitle: "此二维码已过期", ExpiredMessage: "付款码仅在几分钟内有效。", ExpiredHint: "请让收银员出示新的付款码。",
	UsedTitle: "此二维码已被使用", UsedMessage: "已有人使用此码付款。", UsedHint: "请让收银员出示新的付款码。",
	NotFoundTitle: "未找到", NotFoundMsg: "找不到此链接指向的内容。", NotFoundHint: "请确认扫描了完整的二维码。",
	LaunchTitle: "请从聊天中打开此页面", LaunchHint: "请用聊天应用扫码，或从聊天中重新打开链接。",
	AlreadyPaid:    "您已为此付款。",
	LimitReached:   "您已达到每人限购数量。",
	Unavailable:    "该商品目前不在售。",
	Insufficient:   "钱包余额不足以支付。请在聊天中充值后重试。",
	MissingKey:     "页面已过期，请刷新后再点击。",
	ViewReceipt:    "查看收据",
	TopUpHeading:   "为钱包充值",
	CardLabel:      "银行卡号",
	CardHint:       "测试卡：4242 4242 4242 4242 成功，4000 0000 0000 0002 被拒。",
	TopUpButton:    "充值 %s",
	TopUpDone:      "已充值 %s。",
	TopUpPending:   "银行尚未确认付款。请稍后刷新此页面，不会重复扣款。",
	TopUpDeclined:  "银行卡被拒，请换一张卡。",
	CouponUsed:     "已使用。",
	CouponRefunded: "已退款至钱包。",
	CouponExpired:  "已过期。",
}

var shopperLanguages = language.NewMatcher([]language.Tag{language.English, language.Chinese})

// shopperTextFor picks the wording for an Accept-Language header; English
// when the header names neither language or cannot be read.
func shopperTextFor(acceptLanguage string) *shopperText {
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return &shopperEnglish
	}
	_, index, confidence := shopperLanguages.Match(tags...)
	if confidence == language.No {
		return &shopperEnglish
	}
	if index == 1 {
		return &shopperChinese
	}
	return &shopperEnglish
}
