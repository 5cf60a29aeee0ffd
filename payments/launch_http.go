package payments

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/problem"
)

// launchJSON is what a verified launch tells a Mini App's own code.
type launchJSON struct {
	ShopperID    string `json:"shopper_id"`
	ChannelID    string `json:"channel_id"`
	Messenger    string `json:"messenger"`
	UserID       string `json:"user_id"`
	ChatID       string `json:"chat_id"`
	Name         string `json:"name,omitempty"`
	Username     string `json:"username,omitempty"`
	Language     string `json:"language,omitempty"`
	StartParam   string `json:"start_param,omitempty"`
	QueryID      string `json:"query_id,omitempty"`
	ChatType     string `json:"chat_type,omitempty"`
	ChatInstance string `json:"chat_instance,omitempty"`
}

// registerLaunch mounts GET /v1/channels/:channel/launch, which a Mini App's
// page calls with Telegram's convention, `Authorization: tma <initData>`
// (or `Authorization: vk <launch params>`), to learn whom chatpay sees: the
// shopper, the chat it answers in, the language and the start parameter.
// It needs no channel key: the messenger's signature is the credential.
func (h *HTTP) registerLaunch(v1 *echo.Group) {
	v1.GET("/channels/:channel/launch", h.launch)
}

func (h *HTTP) launch(c echo.Context) error {
	scheme, data, _ := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
	if (scheme != "tma" && scheme != "vk") || data == "" {
		return problem.New(problem.KindUnauthorized, "invalid_launch_context",
			"send the Mini App's launch data as Authorization: tma <initData> (Telegram) or vk <launch params> (VK)")
	}
	channelID := c.Param("channel")
	sh, l, err := h.service.ShopperFromLaunch(c.Request().Context(), channelID, LaunchEnvelope(channelID, data))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, launchJSON{
		ShopperID: sh.ID, ChannelID: sh.ChannelID, Messenger: l.Messenger, UserID: l.UserID, ChatID: l.ChatID,
		Name: l.Name, Username: l.Username, Language: l.Language, StartParam: l.StartParam, QueryID: l.QueryID,
		ChatType: l.ChatType, ChatInstance: l.ChatInstance,
	})
}
