package web

import "strings"

// couponText is the wording of the coupon pages (coupon link, My coupons,
// the coupon cards of the receipt). It follows the language the shopper
// pages chose (shopperText.Lang), so both read alike on one screen.
type couponText struct {
	CouponTitle       string
	MyCoupons         string
	MyCouponsIntro    string // "Coupons from %s that you can still use."
	OpenCoupon        string
	AllMyCoupons      string
	ShowAtTill        string
	WorksOffline      string
	Offline           string
	QRLabel           string
	NoScript          string
	ShowTypedCode     string
	TypedCodeHint     string
	UsesLeft          string // "%d uses left"
	StatusUsed        string
	StatusRefunded    string
	StatusExpired     string
	StatusHint        string
	LinkNotFoundTitle string
	LinkNotFoundMsg   string
	LinkNotFoundHint  string
	CouponGoneTitle   string
	CouponGoneMsg     string
}

var couponEnglish = couponText{
	CouponTitle:       "Coupon",
	MyCoupons:         "My coupons",
	MyCouponsIntro:    "Coupons from %s that you can still use.",
	OpenCoupon:        "Open this coupon (works offline)",
	AllMyCoupons:      "All my coupons from this shop",
	ShowAtTill:        "Show this code at the till. It changes every 30 seconds, so a screenshot will not work.",
	WorksOffline:      "Once opened, this page also works without a connection. Keep the link from your chat.",
	Offline:           "You are offline. The code still works: show it at the till.",
	QRLabel:           "Coupon code for the till, changes every 30 seconds",
	NoScript:          "This code is valid for about a minute. Reopen the link from your chat for a new one.",
	ShowTypedCode:     "Till cannot scan? Show the code to type in",
	TypedCodeHint:     "Only for the cashier to type in. Do not share it.",
	UsesLeft:          "%d uses left",
	StatusUsed:        "You have used this coupon.",
	StatusRefunded:    "This coupon was refunded: the money is back in your wallet. It cannot be used any more.",
	StatusExpired:     "This coupon has expired and cannot be used any more.",
	StatusHint:        "Your other coupons are in the chat, in each purchase message.",
	LinkNotFoundTitle: "This coupon link does not work",
	LinkNotFoundMsg:   "The link may be incomplete: some chats cut long links.",
	LinkNotFoundHint:  "Open the coupon again from the purchase message in your chat.",
	CouponGoneTitle:   "Coupon not found",
	CouponGoneMsg:     "This coupon is not among your coupons from this shop.",
}

var couponChinese = couponText{
	CouponTitle:       "优惠券",
	MyCoupons:         "我的券",
	MyCouponsIntro:    "%s 的可用券。",
	OpenCoupon:        "打开此券（无网络也能用）",
	AllMyCoupons:      "我在本店的全部券",
	ShowAtTill:        "请在收银台出示此码。此码每 30 秒更新一次，截图无效。",
	WorksOffline:      "打开过一次后，此页面无网络也能使用。请保留聊天中的链接。",
	Offline:           "当前无网络。此码仍然有效，请在收银台出示。",
	QRLabel:           "收银台使用的券码，每 30 秒更新",
	NoScript:          "此码约一分钟内有效。请从聊天中重新打开链接获取新码。",
	ShowTypedCode:     "收银台无法扫码？显示手动输入码",
	TypedCodeHint:     "仅供收银员输入，请勿分享。",
	UsesLeft:          "剩余 %d 次",
	StatusUsed:        "此券已使用。",
	StatusRefunded:    "此券已退款，款项已退回钱包，不能再使用。",
	StatusExpired:     "此券已过期，不能再使用。",
	StatusHint:        "您的其他券在聊天中各自的购买消息里。",
	LinkNotFoundTitle: "此券链接无效",
	LinkNotFoundMsg:   "链接可能不完整：部分聊天应用会截断长链接。",
	LinkNotFoundHint:  "请从聊天中的购买消息重新打开此券。",
	CouponGoneTitle:   "未找到此券",
	CouponGoneMsg:     "您在本店的券中没有这张券。",
}

var couponRussian = couponText{
	CouponTitle:       "Купон",
	MyCoupons:         "Мои купоны",
	MyCouponsIntro:    "Купоны %s, которыми ещё можно воспользоваться.",
	OpenCoupon:        "Открыть купон (работает без связи)",
	AllMyCoupons:      "Все мои купоны этого магазина",
	ShowAtTill:        "Покажите этот код на кассе. Он меняется каждые 30 секунд, поэтому снимок экрана не подойдёт.",
	WorksOffline:      "Открытая однажды, эта страница работает и без связи. Сохраните ссылку из чата.",
	Offline:           "Нет связи. Код всё равно действует: покажите его на кассе.",
	QRLabel:           "Код купона для кассы, меняется каждые 30 секунд",
	NoScript:          "Этот код действует около минуты. Чтобы получить новый, откройте ссылку из чата ещё раз.",
	ShowTypedCode:     "Касса не сканирует? Показать код для ввода",
	TypedCodeHint:     "Только для ввода кассиром. Никому его не пересылайте.",
	UsesLeft:          "Осталось использований: %d",
	StatusUsed:        "Вы уже воспользовались этим купоном.",
	StatusRefunded:    "Деньги за этот купон вернулись в ваш кошелёк. Им больше нельзя воспользоваться.",
	StatusExpired:     "Срок действия купона истёк, им больше нельзя воспользоваться.",
	StatusHint:        "Другие ваши купоны — в чате, в сообщениях о покупках.",
	LinkNotFoundTitle: "Ссылка на купон не работает",
	LinkNotFoundMsg:   "Возможно, ссылка неполная: некоторые чаты обрезают длинные ссылки.",
	LinkNotFoundHint:  "Откройте купон ещё раз из сообщения о покупке в чате.",
	CouponGoneTitle:   "Купон не найден",
	CouponGoneMsg:     "Среди ваших купонов этого магазина такого нет.",
}

// couponTextFor is the coupon wording for the language the shopper pages
// picked; English for a language without coupon wording.
func couponTextFor(t *shopperText) *couponText {
	base, _, _ := strings.Cut(strings.ToLower(t.Lang), "-")
	switch base {
	case "zh":
		return &couponChinese
	case "ru":
		return &couponRussian
	}
	return &couponEnglish
}
