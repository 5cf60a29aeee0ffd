package payments

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/httpapi"
	"github.com/chatpay/chatpay/internal/problem"
)

// TestClockHTTP serves test clocks under /v1/test-clocks (merchant key). cmd
// mounts it on a sandbox only, so a live instance answers 404 there.
type TestClockHTTP struct {
	service *Service
}

// NewTestClockHTTP returns the test-clock handlers.
func NewTestClockHTTP(s *Service) *TestClockHTTP { return &TestClockHTTP{service: s} }

// Register mounts the routes on v1 behind the merchant-key middleware.
func (h *TestClockHTTP) Register(v1 *echo.Group, merchant echo.MiddlewareFunc) {
	v1.POST("/test-clocks", h.create, merchant)
	v1.GET("/test-clocks/:id", h.get, merchant)
	v1.POST("/test-clocks/:id/advance", h.advance, merchant)
}

type testClockJSON struct {
	Object string `json:"object"`
	TestClock
}

func toTestClockJSON(c TestClock) testClockJSON {
	c.FrozenTime, c.CreatedAt, c.UpdatedAt = c.FrozenTime.UTC(), c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return testClockJSON{Object: "test_clock", TestClock: c}
}

func (h *TestClockHTTP) create(c echo.Context) error {
	var in struct {
		FrozenTime *time.Time `json:"frozen_time"`
	}
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return err
	}
	if in.FrozenTime == nil {
		return problem.Field("frozen_time", "required", "frozen_time is an RFC 3339 instant")
	}
	clock, err := h.service.CreateTestClock(c.Request().Context(), merchantOf(c).ID, *in.FrozenTime)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toTestClockJSON(clock))
}

func (h *TestClockHTTP) get(c echo.Context) error {
	clock, err := h.service.TestClock(c.Request().Context(), merchantOf(c).ID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toTestClockJSON(clock))
}

func (h *TestClockHTTP) advance(c echo.Context) error {
	var in struct {
		To *time.Time `json:"to"`
	}
	if _, err := httpapi.BindJSON(c, &in); err != nil {
		return err
	}
	if in.To == nil {
		return problem.Field("to", "required", "to is an RFC 3339 instant")
	}
	report, err := h.service.AdvanceTestClock(c.Request().Context(), merchantOf(c).ID, c.Param("id"), *in.To)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, report)
}
