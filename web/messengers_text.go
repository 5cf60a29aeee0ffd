package web

// messengerText is the wording of the messenger pages (the Telegram
// bootstrap and the chooser), kept apart from shopperText so that each
// language's table stays in one place per feature.
type messengerText struct {
	Opening         string
	ScanHint        string // a Mini App opened without a code
	ChooserTitle    string
	ChooserHint     string
	OpenIn          string // "Open in %s"
	ContinueBrowser string
	LastChoice      string // "Last time you chose %s."
}

var messengerTexts = map[string]messengerText{
	"en": {
		Opening: "Opening…", ScanHint: "Scan a shop's QR code with your phone's camera to buy here.",
		ChooserTitle: "Where do you want to pay?", ChooserHint: "Pick the messenger you use; the shop answers you there.",
		OpenIn: "Open in %s", ContinueBrowser: "Continue in the browser", LastChoice: "Last time you chose %s.",
	},
	"zh": {
		Opening: "正在打开…", ScanHint: "请用手机相机扫描商家的二维码购买。",
		ChooserTitle: "您想在哪里付款？", ChooserHint: "请选择您使用的聊天应用，商家会在那里回复您。",
		OpenIn: "在%s中打开", ContinueBrowser: "在浏览器中继续", LastChoice: "上次您选择了%s。",
	},
	"ru": {
		Opening: "Открываем…", ScanHint: "Чтобы купить здесь, отсканируйте QR-код магазина камерой телефона.",
		ChooserTitle: "Где вы хотите заплатить?", ChooserHint: "Выберите мессенджер, которым пользуетесь; магазин ответит вам там.",
		OpenIn: "Открыть в %s", ContinueBrowser: "Продолжить в браузере", LastChoice: "В прошлый раз вы выбрали %s.",
	},
}

func messengerTextFor(t *shopperText) messengerText {
	if m, ok := messengerTexts[t.Lang]; ok {
		return m
	}
	return messengerTexts["en"]
}
