package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/text/language"
)

// shopperText is the wording of the shopper pages in one language. A page
// speaks the language the shopper picked on a page (remembered in a
// cookie), else the messenger's, else the browser's (Accept-Language: a
// messenger's in-app browser sends the phone's language).
//
// Every refusal a shopper can meet is worded here in plain words with what
// to do next; a page never shows a service's English detail, which names
// internal things (launch contexts, hashes, channels, durations).
type shopperText struct {
	Lang          string // the html lang attribute and catalog.RenderRules' language
	LangName      string // the language's own name, for the language switch
	LanguageLabel string // names the language switch for screen readers
	// Switch links to this page in every language; filled per request.
	Switch []langLink

	Paying         string // "Paying as %s."
	WalletBalance  string // "Wallet balance: %s"
	BuyNow         string // "Buy now · %s"
	Processing     string // the pending state of Buy and Top up
	SoldOut        string
	SoldOutHint    string
	Short          string // "Your wallet is short of the price."
	ShortHint      string // "Top up at least %s below."
	Receipt        string
	Paid           string // "Paid %s"
	Order          string
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
	LaunchNone     string // opened with no proof of the shopper at all
	LaunchStale    string // the messenger's proof is older than it may be
	LaunchBad      string // a proof that does not check out, or an unknown messenger
	AlreadyPaid    string
	LimitReached   string
	LimitButton    string // what replaces "Buy now" once the limit is reached
	Unavailable    string
	Insufficient   string
	MissingKey     string
	Busy           string // a second tap while the first is still being paid
	FormChanged    string // the same form sent again with other details
	CodeTimedOut   string // a till's checkout that expired
	CodeCanceled   string // a till's checkout the cashier canceled
	ViewReceipt    string
	TopUpHeading   string
	AmountLabel    string
	CardLabel      string
	CardHint       string // the sandbox's test cards; shown only on a sandbox instance
	TopUpButton    string // "Top up %s"
	TopUpAndPay    string // "Top up and pay"
	TopUpDone      string // "Topped up %s."
	TopUpPending   string
	TopUpDeclined  string
	CardInvalid    string
	AmountInvalid  string
	TopUpOff       string // no payment provider answers
	CardNotTaken   string // a card number sent to a merchant that takes its provider's page
}

// langLink is one entry of the language switch.
type langLink struct {
	Lang    string
	Label   string
	Href    string
	Current bool
}

var shopperEnglish = shopperText{
	Lang: "en", LangName: "English", LanguageLabel: "Language",
	Paying: "Paying as %s.", WalletBalance: "Wallet balance: %s", BuyNow: "Buy now · %s", Processing: "Paying…",
	SoldOut: "Sold out.", SoldOutHint: "This item is not available any more.",
	Short: "Your wallet is short of the price.", ShortHint: "Top up at least %s below.",
	Receipt: "Receipt", Paid: "Paid %s", Order: "order",
	RulesHeading: "When you can use it",
	ErrorTitle:   "Sorry",
	WrongTitle:   "Something went wrong", WrongMessage: "We could not complete this. Nothing was charged.", WrongHint: "Please try again in a moment.",
	RevokedTitle: "This code is no longer valid", RevokedMessage: "The merchant has withdrawn this QR code.", RevokedHint: "Ask the merchant for a current one.",
	ExpiredTitle: "This code has expired", ExpiredMessage: "The payment code was only valid for a few minutes.", ExpiredHint: "Ask the cashier to show a new code.",
	UsedTitle: "This code was already used", UsedMessage: "Someone has already paid with this code.", UsedHint: "Ask the cashier to show a new code.",
	NotFoundTitle: "Not found", NotFoundMsg: "We could not find what this link points to.", NotFoundHint: "Check that you scanned the whole code.",
	LaunchTitle: "Open this page from your chat", LaunchHint: "Scan the code with your messenger, or reopen the link from the chat.",
	LaunchNone:   "This page only works when your messenger opens it, so that we know it is you.",
	LaunchStale:  "For your safety this page works only for a short while after your messenger opens it, and that time is up. Nothing was charged.",
	LaunchBad:    "We could not confirm that your messenger opened this page. Nothing was charged.",
	AlreadyPaid:  "You have already paid for this.",
	LimitReached: "You have bought as many of these as one person may.",
	LimitButton:  "Limit reached",
	Unavailable:  "This item is not on sale right now.",
	Insufficient: "Your wallet does not cover the price. Top up below and try again.",
	MissingKey:   "The page was out of date. Reload it and tap again.",
	Busy:         "We are still working on your first tap. Wait a moment, then reload the page.",
	FormChanged:  "This form was already sent with other details. Reload the page and try again.",
	CodeTimedOut: "This payment code has expired. Ask the cashier for a new one.",
	CodeCanceled: "The cashier canceled this payment. Ask for a new code if you still want to pay.",
	ViewReceipt:  "View your receipt",
	TopUpHeading: "Top up your wallet",
	AmountLabel:  "Amount",
	CardLabel:    "Card number",
	CardHint:     "Test mode: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined.",
	TopUpButton:  "Top up %s",
	TopUpAndPay:  "Top up and pay",
	TopUpDone:    "Topped up %s.",
	TopUpPending: "Your bank has not confirmed the payment yet. Reload this page in a moment; you will not be charged twice.",
	TopUpDeclined: "Your card was declined. Check the number or try another card; " +
		"nothing was charged.",
	CardInvalid:   "That does not look like a card number. Check it and try again.",
	AmountInvalid: "Choose an amount to top up.",
	TopUpOff:      "Topping up is not available right now. Nothing was charged; try again later.",
	CardNotTaken:  "This shop takes payments on its payment provider's page. Use the button below.",
}

var shopperChinese = shopperText{
	Lang: "zh", LangName: "中文", LanguageLabel: "语言",
	Paying: "付款人：%s。", WalletBalance: "钱包余额：%s", BuyNow: "立即购买 · %s", Processing: "正在付款…",
	SoldOut: "已售罄。", SoldOutHint: "该商品已无库存。",
	Short: "钱包余额不足。", ShortHint: "请在下方至少充值 %s。",
	Receipt: "收据", Paid: "已支付 %s", Order: "订单",
	RulesHeading: "使用规则",
	ErrorTitle:   "抱歉",
	WrongTitle:   "出错了", WrongMessage: "操作未能完成，未扣款。", WrongHint: "请稍后再试。",
	RevokedTitle: "此二维码已失效", RevokedMessage: "商家已撤回此二维码。", RevokedHint: "请向商家索取新的二维码。",
	ExpiredTitle: "此二维码已过期", ExpiredMessage: "付款码仅在几分钟内有效。", ExpiredHint: "请让收银员出示新的付款码。",
	UsedTitle: "此二维码已被使用", UsedMessage: "已有人使用此码付款。", UsedHint: "请让收银员出示新的付款码。",
	NotFoundTitle: "未找到", NotFoundMsg: "找不到此链接指向的内容。", NotFoundHint: "请确认扫描了完整的二维码。",
	LaunchTitle: "请从聊天中打开此页面", LaunchHint: "请用聊天应用扫码，或从聊天中重新打开链接。",
	LaunchNone:    "此页面只能由聊天应用打开，以便确认是您本人。",
	LaunchStale:   "为了您的安全，此页面在聊天应用打开后只在短时间内有效，现已超时。未扣款。",
	LaunchBad:     "无法确认此页面是由您的聊天应用打开的。未扣款。",
	AlreadyPaid:   "您已为此付款。",
	LimitReached:  "您已达到每人限购数量。",
	LimitButton:   "已达限购数量",
	Unavailable:   "该商品目前不在售。",
	Insufficient:  "钱包余额不足以支付。请在下方充值后重试。",
	MissingKey:    "页面已过期，请刷新后再点击。",
	Busy:          "您的第一次点击仍在处理中，请稍候再刷新页面。",
	FormChanged:   "此表单已用不同的内容提交过。请刷新页面后重试。",
	CodeTimedOut:  "此付款码已过期，请让收银员出示新的付款码。",
	CodeCanceled:  "收银员已取消此次付款。如仍需付款，请索取新的付款码。",
	ViewReceipt:   "查看收据",
	TopUpHeading:  "为钱包充值",
	AmountLabel:   "金额",
	CardLabel:     "银行卡号",
	CardHint:      "测试模式：4242 4242 4242 4242 成功，4000 0000 0000 0002 被拒。",
	TopUpButton:   "充值 %s",
	TopUpAndPay:   "充值并支付",
	TopUpDone:     "已充值 %s。",
	TopUpPending:  "银行尚未确认付款。请稍后刷新此页面，不会重复扣款。",
	TopUpDeclined: "银行卡被拒。请检查卡号或换一张卡；未扣款。",
	CardInvalid:   "卡号格式不正确，请检查后重试。",
	AmountInvalid: "请选择充值金额。",
	TopUpOff:      "暂时无法充值。未扣款，请稍后再试。",
	CardNotTaken:  "此商家通过其支付服务的页面收款，请使用下方按钮。",
}

var shopperRussian = shopperText{
	Lang: "ru", LangName: "Русский", LanguageLabel: "Язык",
	Paying: "Покупатель: %s.", WalletBalance: "В кошельке: %s", BuyNow: "Купить · %s", Processing: "Оплачиваем…",
	SoldOut: "Распродано.", SoldOutHint: "Этого товара больше нет в наличии.",
	Short: "В кошельке не хватает денег.", ShortHint: "Пополните хотя бы на %s ниже.",
	Receipt: "Чек", Paid: "Оплачено %s", Order: "заказ",
	RulesHeading: "Когда можно использовать",
	ErrorTitle:   "Извините",
	WrongTitle:   "Что-то пошло не так", WrongMessage: "Не получилось завершить. Деньги не списаны.", WrongHint: "Попробуйте ещё раз чуть позже.",
	RevokedTitle: "Этот код больше не действует", RevokedMessage: "Продавец отозвал этот QR-код.", RevokedHint: "Попросите у продавца действующий код.",
	ExpiredTitle: "Срок действия кода истёк", ExpiredMessage: "Код для оплаты действовал всего несколько минут.", ExpiredHint: "Попросите кассира показать новый код.",
	UsedTitle: "Этот код уже использован", UsedMessage: "По этому коду уже заплатили.", UsedHint: "Попросите кассира показать новый код.",
	NotFoundTitle: "Не найдено", NotFoundMsg: "Не удалось найти то, на что ведёт ссылка.", NotFoundHint: "Проверьте, что код отсканирован целиком.",
	LaunchTitle: "Откройте эту страницу из чата", LaunchHint: "Отсканируйте код в мессенджере или снова откройте ссылку из чата.",
	LaunchNone:    "Эта страница работает, только если её открыл ваш мессенджер: так мы знаем, что это вы.",
	LaunchStale:   "Ради вашей безопасности страница работает недолго после того, как её открыл мессенджер, и это время вышло. Деньги не списаны.",
	LaunchBad:     "Не удалось подтвердить, что страницу открыл ваш мессенджер. Деньги не списаны.",
	AlreadyPaid:   "Вы уже оплатили это.",
	LimitReached:  "Вы уже купили столько, сколько можно одному человеку.",
	LimitButton:   "Лимит исчерпан",
	Unavailable:   "Сейчас этот товар не продаётся.",
	Insufficient:  "В кошельке не хватает денег. Пополните его ниже и попробуйте снова.",
	MissingKey:    "Страница устарела. Обновите её и нажмите ещё раз.",
	Busy:          "Мы ещё обрабатываем ваше первое нажатие. Подождите немного и обновите страницу.",
	FormChanged:   "Эта форма уже была отправлена с другими данными. Обновите страницу и попробуйте снова.",
	CodeTimedOut:  "Срок действия кода для оплаты истёк. Попросите у кассира новый.",
	CodeCanceled:  "Кассир отменил эту оплату. Если хотите заплатить, попросите новый код.",
	ViewReceipt:   "Открыть чек",
	TopUpHeading:  "Пополнить кошелёк",
	AmountLabel:   "Сумма",
	CardLabel:     "Номер карты",
	CardHint:      "Тестовый режим: 4242 4242 4242 4242 проходит, 4000 0000 0000 0002 отклоняется.",
	TopUpButton:   "Пополнить на %s",
	TopUpAndPay:   "Пополнить и оплатить",
	TopUpDone:     "Кошелёк пополнен на %s.",
	TopUpPending:  "Банк ещё не подтвердил платёж. Обновите страницу чуть позже; дважды деньги не спишутся.",
	TopUpDeclined: "Карта отклонена. Проверьте номер или попробуйте другую карту; деньги не списаны.",
	CardInvalid:   "Это не похоже на номер карты. Проверьте и попробуйте снова.",
	AmountInvalid: "Выберите сумму пополнения.",
	TopUpOff:      "Сейчас пополнить кошелёк нельзя. Деньги не списаны; попробуйте позже.",
	CardNotTaken:  "Этот магазин принимает оплату на странице своего платёжного сервиса. Нажмите кнопку ниже.",
}

// shopperTextsInOrder are the languages the shopper pages speak, in the
// order of the language switch; the first is the fallback.
var shopperTextsInOrder = []*shopperText{&shopperEnglish, &shopperChinese, &shopperRussian}

var shopperLanguages = language.NewMatcher([]language.Tag{language.English, language.Chinese, language.Russian})

// shopperTextFor picks the wording for an Accept-Language header (or a
// messenger's language code); English when it names none of the pages'
// languages or cannot be read.
func shopperTextFor(acceptLanguage string) *shopperText {
	t, _ := matchShopperText(acceptLanguage)
	return t
}

// matchShopperText is shopperTextFor that also says whether the text named
// one of the pages' languages.
func matchShopperText(acceptLanguage string) (*shopperText, bool) {
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return &shopperEnglish, false
	}
	_, index, confidence := shopperLanguages.Match(tags...)
	if confidence == language.No {
		return &shopperEnglish, false
	}
	return shopperTextsInOrder[index], true
}

// The shopper's own choice of language is remembered for a year.
const (
	langCookie    = "chatpay_lang"
	langCookieAge = 365 * 24 * time.Hour
	langParam     = "lang"
)

// pageText picks the wording of this request's page: ?lang= (a tap on the
// language switch, remembered in a cookie), else the remembered choice,
// else the messenger's language code, else the browser's. The copy it
// returns carries the language switch's links.
func pageText(c echo.Context, messengerLanguage string) *shopperText {
	var picked *shopperText
	if want := c.QueryParam(langParam); want != "" {
		if t := exactShopperText(want); t != nil {
			picked = t
			c.SetCookie(&http.Cookie{Name: langCookie, Value: t.Lang, Path: "/", MaxAge: int(langCookieAge / time.Second),
				HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Scheme() == "https"})
		}
	}
	if picked == nil {
		if cookie, err := c.Cookie(langCookie); err == nil {
			picked = exactShopperText(cookie.Value)
		}
	}
	if picked == nil && messengerLanguage != "" {
		if t, ok := matchShopperText(messengerLanguage); ok {
			picked = t
		}
	}
	if picked == nil {
		picked = shopperTextFor(c.Request().Header.Get("Accept-Language"))
	}
	t := *picked
	t.Switch = languageSwitch(c, t.Lang)
	return &t
}

// exactShopperText is the wording whose Lang is lang, or nil.
func exactShopperText(lang string) *shopperText {
	for _, t := range shopperTextsInOrder {
		if t.Lang == lang {
			return t
		}
	}
	return nil
}

// languageSwitch links to this page in every language. A page answering a
// form (a refused "Buy now") links to the checkout it came from; other
// answers to a form have no switch.
func languageSwitch(c echo.Context, current string) []langLink {
	var base url.URL
	switch {
	case c.Request().Method == http.MethodGet:
		base = url.URL{Path: c.Request().URL.Path, RawQuery: c.Request().URL.RawQuery}
	case c.Param("token") != "" && strings.HasPrefix(c.Request().URL.Path, "/q/"):
		base = url.URL{Path: "/q/" + c.Param("token"), RawQuery: url.Values{"launch": {c.FormValue("launch")}}.Encode()}
	default:
		return nil
	}
	links := make([]langLink, 0, len(shopperTextsInOrder))
	for _, t := range shopperTextsInOrder {
		query := base.Query()
		query.Set(langParam, t.Lang)
		href := url.URL{Path: base.Path, RawQuery: query.Encode()}
		links = append(links, langLink{Lang: t.Lang, Label: t.LangName, Href: href.String(), Current: t.Lang == current})
	}
	return links
}

// unverifiedLanguage reads the language a messenger put in launch data
// that failed verification, only to word the refusal in it: Telegram's
// user.language_code, VK's vk_language, a generic context's language_code.
func unverifiedLanguage(raw string) string {
	fields, err := url.ParseQuery(raw)
	if err != nil {
		return ""
	}
	if inner := fields.Get("launch_data"); inner != "" {
		if innerFields, err := url.ParseQuery(inner); err == nil {
			fields = innerFields
		}
	}
	if lang := fields.Get("language_code"); lang != "" {
		return lang
	}
	if lang := fields.Get("vk_language"); lang != "" {
		return lang
	}
	var user struct {
		LanguageCode string `json:"language_code"`
	}
	if json.Unmarshal([]byte(fields.Get("user")), &user) == nil {
		return user.LanguageCode
	}
	return ""
}
