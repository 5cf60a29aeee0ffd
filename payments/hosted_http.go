package payments

import (
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/idempotency"
	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/internal/problem"
)

// registerHosted mounts the providers' notification endpoint (no key: the
// provider's signature is the authentication) and the channel routes of
// hosted top-ups and their refunds.
func (h *HTTP) registerHosted(v1 *echo.Group, channel echo.MiddlewareFunc) {
	v1.POST("/providers/:provider/notify/:merchant", h.providerNotification)
	v1.POST("/channel/shoppers/:id/topups/:topup/refunds", h.refundTopUp, channel)
}

// providerNotification answers 204 to every notification it verified
// (acted on, or a duplicate), so the provider stops resending; a forged one
// is 400 and nothing is written.
func (h *HTTP) providerNotification(c echo.Context) error {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, notificationBytesMax+1))
	if err != nil {
		return problem.New(problem.KindBadRequest, CodeInvalidNotification, "unreadable notification body")
	}
	_, err = h.service.HandleNotification(c.Request().Context(), c.Param("provider"), c.Param("merchant"), c.Request().Header, body)
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type hostedTopUpJSON struct {
	topUpJSON
	Method     string       `json:"method"`
	MerchantID string       `json:"merchant_id,omitempty"`
	Page       *PaymentPage `json:"payment_page,omitempty"`
	Refunded   money.Amount `json:"refunded"`
}

func toHostedTopUpJSON(t HostedTopUp) hostedTopUpJSON {
	out := hostedTopUpJSON{topUpJSON: toTopUpJSON(t.TopUp), Method: t.Method, MerchantID: t.MerchantID.String,
		Refunded: amount(t.RefundedMinor, t.Currency)}
	if page := t.Page(); page.PaymentID != "" && (t.Status == TopUpPending || t.Status == TopUpUnknown) {
		out.Page = &page
	}
	return out
}

// hostedTopUp starts a top-up at the merchant's provider: 202 with the
// payment page (redirect_url, qr_content or jsapi parameters); the wallet is
// credited when the provider confirms (poll GET …/topups/{id}).
func (h *HTTP) hostedTopUp(c echo.Context, in topUpRequest) error {
	sh, err := h.shopperParam(c)
	if err != nil {
		return err
	}
	key, err := idempotency.KeyOf(c.Request())
	if err != nil {
		return err
	}
	t, err := h.service.StartHostedTopUp(c.Request().Context(), sh, HostedStart{
		MerchantID: in.MerchantID, Amount: in.Amount, Method: in.Method, ReturnURL: in.ReturnURL, Key: key,
	})
	if err != nil {
		return err
	}
	return c.JSON(topUpStatus(t.TopUp), toHostedTopUpJSON(t))
}

type topUpRefundJSON struct {
	ID               string       `json:"id"`
	TopUpID          string       `json:"top_up_id"`
	ShopperID        string       `json:"shopper_id"`
	Status           string       `json:"status"`
	Amount           money.Amount `json:"amount"`
	ProviderRefundID string       `json:"provider_refund_id,omitempty"`
	Failure          string       `json:"failure_code,omitempty"`
}

// refundTopUp gives a hosted top-up back to its payment method: 201 when
// the provider took it, 202 while it is being retried.
func (h *HTTP) refundTopUp(c echo.Context) error {
	var in struct {
		Amount money.Amount `json:"amount"`
	}
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return money.FieldProblem("amount", err)
	}
	sh, err := h.shopperParam(c)
	if err != nil {
		return err
	}
	key, err := idempotency.KeyOf(c.Request())
	if err != nil {
		return err
	}
	r, err := h.service.RefundTopUp(c.Request().Context(), sh.ID, c.Param("topup"), in.Amount, key)
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if r.Status == TopUpRefundSucceeded {
		status = http.StatusCreated
	}
	return c.JSON(status, topUpRefundJSON{
		ID: r.ID, TopUpID: r.TopUpID, ShopperID: sh.ID, Status: r.Status, Amount: amount(r.AmountMinor, r.Currency),
		ProviderRefundID: r.ProviderRefundID.String, Failure: r.FailureCode.String,
	})
}
