package httpapi

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chatpay/chatpay/internal/problem"
)

// QueryLimit reads ?limit: absent is 0 (the service's default page size);
// anything but a whole number from 1 to max is refused, never clamped, so a
// client learns its mistake instead of getting a page it did not ask for.
func QueryLimit(c echo.Context, max int) (int, error) {
	text := c.QueryParam("limit")
	if text == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < 1 || n > max {
		return 0, problem.Field("limit", "out_of_range", "limit must be a whole number from 1 to %d", max)
	}
	return n, nil
}

// Seconds turns an optional duration field given in whole seconds into a
// duration: absent is 0 (the service's default); a value outside [min, max]
// is refused naming field, never replaced by the default.
func Seconds(field string, seconds *int64, min, max time.Duration) (time.Duration, error) {
	if seconds == nil {
		return 0, nil
	}
	if *seconds < int64(min/time.Second) || *seconds > int64(max/time.Second) {
		return 0, problem.Field(field, "out_of_range", "%s must be from %d to %d seconds", field, int64(min/time.Second), int64(max/time.Second))
	}
	return time.Duration(*seconds) * time.Second, nil
}

// Page is the one shape of every list: the items and the cursor of the next
// page, null on the last.
type Page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// NewPage builds a Page; an empty next means the last page.
func NewPage[T any](data []T, next string) Page[T] {
	p := Page[T]{Data: data}
	if p.Data == nil {
		p.Data = []T{}
	}
	if next != "" {
		p.NextCursor = &next
	}
	return p
}
