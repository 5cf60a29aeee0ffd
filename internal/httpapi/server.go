// Package httpapi builds chatpay's HTTP server: the echo instance with its
// middleware (request id, access log, metrics, panic recovery, body limit),
// the RFC 9457 error handler, health and readiness probes, and JSON decoding
// that names the offending field. Domain packages register their routes on it.
package httpapi

import (
	"context"
	_ "embed" // the OpenAPI document is part of the binary
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/problem"
)

// BodyLimitBytes bounds every request body; chatpay's largest request (an item
// with its coupon rules) is a few kilobytes.
const BodyLimitBytes = 256 << 10

// OpenAPI is the OpenAPI 3 document of chatpay's HTTP API, served at
// /openapi.yaml. Each domain package adds its paths to openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// ReadinessCheck returns nil when the service can take traffic.
type ReadinessCheck func(ctx context.Context) error

// Options configure New.
type Options struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry // /metrics serves it; request metrics are added to it
	Ready    ReadinessCheck
	// Live answers /healthz: an error means the process cannot recover by
	// itself and should be restarted (nil: always live).
	Live ReadinessCheck
	// Locations gives 201 (and 202) answers their Location header.
	Locations Locations
}

// New returns an echo instance with chatpay's middleware, error handler,
// /healthz, /readyz and /metrics.
func New(opts Options) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	logger := opts.Logger
	writes := newWriteHealth(logger, opts.Registry)
	e.HTTPErrorHandler = errorHandler(logger, writes)

	metrics := newRequestMetrics(opts.Registry)
	e.Use(middleware.RequestID())
	e.Use(observe(logger, metrics, writes))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll:   true,
		DisablePrintStack: true, // observe logs the error with the request id
	}))
	e.Use(middleware.BodyLimit(strconv.Itoa(BodyLimitBytes/1024) + "K"))
	e.Use(TextHygiene())
	e.Use(locate(opts.Locations))

	e.GET("/healthz", func(c echo.Context) error {
		if opts.Live != nil {
			if err := opts.Live(c.Request().Context()); err != nil {
				return problem.New(problem.KindUnavailable, "not_live", "%v", err)
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if reason := writes.failing(); reason != "" {
			return problem.New(problem.KindUnavailable, "not_ready", "the database refuses writes (%s)", reason)
		}
		if opts.Ready != nil {
			if err := opts.Ready(ctx); err != nil {
				return problem.New(problem.KindUnavailable, "not_ready", "%v", err)
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
	})
	if opts.Registry != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})))
	}
	return e
}

type requestMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRequestMetrics(reg *prometheus.Registry) *requestMetrics {
	m := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatpay_http_requests_total",
			Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chatpay_http_request_duration_seconds",
			Help:    "HTTP request latency by route, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// observe writes the access log line and the request metrics. It renders
// errors itself so the status it records is the one the client got.
func observe(logger *slog.Logger, m *requestMetrics, writes *writeHealth) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			elapsed := time.Since(start)
			route := c.Path()
			if route == "" || c.Get(routeUnmatched) != nil {
				route = "unmatched" // keeps label cardinality bounded
			}
			status := c.Response().Status
			if method := c.Request().Method; status >= 200 && status < 300 && method != http.MethodGet && method != http.MethodHead {
				writes.wrote() // a change went through
			}
			statusLabel := strconv.Itoa(status)
			m.requests.WithLabelValues(route, c.Request().Method, statusLabel).Inc()
			m.duration.WithLabelValues(route, c.Request().Method, statusLabel).Observe(elapsed.Seconds())

			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", c.Request().Method),
				slog.String("path", c.Request().URL.Path),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
				slog.Int64("bytes_out", c.Response().Size),
				slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
			}
			if err != nil && status >= 500 {
				attrs = append(attrs, slog.String("error", err.Error()))
			}
			logger.LogAttrs(c.Request().Context(), level, "http request", attrs...)
			return nil
		}
	}
}

const routeUnmatched = "httpapi.unmatched"

// errorHandler renders every error as a problem document.
func errorHandler(logger *slog.Logger, writes *writeHealth) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		err = translateEchoError(c, err)
		if _, ok := problem.As(err); !ok {
			if reason := database.Refusal(err); reason != "" {
				logger.WarnContext(c.Request().Context(), "database refused the request", "reason", reason,
					"error", err.Error(), "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
				err = writes.refused(reason, err)
			}
		}
		if _, ok := problem.As(err); !ok && database.IsUnavailable(err) {
			// An outage, not a bug: say so, so that clients retry (with the
			// same Idempotency-Key: the change may have committed).
			logger.WarnContext(c.Request().Context(), "database unavailable",
				"error", err.Error(), "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
			err = problem.New(problem.KindUnavailable, "database_unavailable",
				"the database is unavailable for a moment; retry with the same Idempotency-Key").
				With("retry_after_seconds", 1)
		}
		if _, ok := problem.As(err); !ok {
			logger.ErrorContext(c.Request().Context(), "unhandled error",
				"error", err.Error(), "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		}
		WriteProblem(c, err)
	}
}

// WriteProblem writes err as application/problem+json.
func WriteProblem(c echo.Context, err error) {
	status, body := problem.Render(err, c.Request().URL.Path)
	if p, ok := problem.As(err); ok {
		if retry, ok := p.Extensions["retry_after_seconds"].(int); ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(retry))
		}
		if p.Kind == problem.KindUnauthorized {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="chatpay"`)
		}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.Blob(status, problem.ContentType, body)
}

// translateEchoError maps echo's own errors (routing, body limit, binding,
// recovered panics) to problems with stable codes.
func translateEchoError(c echo.Context, err error) error {
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		return err
	}
	switch he.Code {
	case http.StatusNotFound:
		c.Set(routeUnmatched, true)
		return problem.New(problem.KindNotFound, "route_not_found", "no route for %s %s", c.Request().Method, c.Request().URL.Path)
	case http.StatusMethodNotAllowed:
		return problem.New(problem.KindMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s", c.Request().Method, c.Request().URL.Path)
	case http.StatusRequestEntityTooLarge:
		return problem.New(problem.KindTooLarge, "request_too_large", "the request body exceeds %d bytes", BodyLimitBytes)
	case http.StatusBadRequest:
		return problem.New(problem.KindBadRequest, "bad_request", "%v", he.Message)
	case http.StatusUnauthorized:
		return problem.New(problem.KindUnauthorized, "unauthorized", "%v", he.Message)
	case http.StatusServiceUnavailable:
		return problem.New(problem.KindUnavailable, "unavailable", "%v", he.Message)
	}
	if he.Code >= 500 {
		return fmt.Errorf("echo error %d: %v (internal: %w)", he.Code, he.Message, he.Internal)
	}
	return &problem.Error{Kind: problem.KindBadRequest, Code: "bad_request", Detail: fmt.Sprint(he.Message)}
}
