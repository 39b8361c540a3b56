package web

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

type ctxKey int

const requestIDKey ctxKey = 1

var (
	validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)
	// digitRun finds six digits in a row: a request id goes into the audit
	// log, which refuses anything shaped like a CPR number (DDMMYY…).
	digitRun = regexp.MustCompile(`[0-9]{6}`)
)

// RequestID gives every request an id (from X-Request-ID when well-formed),
// echoes it in the response and puts it in the context for logs and audit.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID.MatchString(id) || digitRun.MatchString(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-ID", id)
		// Stored under chi's key too, so chi's middleware.GetReqID sees it.
		ctx := context.WithValue(r.Context(), middleware.RequestIDKey, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, requestIDKey, id)))
	})
}

// RequestIDFrom returns the request id of ctx ("" when none).
func RequestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// SourceAddr is the client's address (the TCP peer; proxies are not trusted
// unless the wiring rewrites RemoteAddr).
func SourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// HTTPMetrics are the server's Prometheus HTTP metrics.
type HTTPMetrics struct {
	Requests *prometheus.CounterVec
	Duration *prometheus.HistogramVec
	InFlight prometheus.Gauge
}

// NewHTTPMetrics registers the HTTP metrics on reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "molar_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "molar_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "molar_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
	}
	reg.MustRegister(m.Requests, m.Duration, m.InFlight)
	return m
}

// Observe logs every request (no query strings: they may carry CPR numbers),
// records metrics and turns panics into 500s with an error id.
func Observe(log *slog.Logger, m *HTTPMetrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			if m != nil {
				m.InFlight.Inc()
				defer m.InFlight.Dec()
			}
			defer func() {
				if rec := recover(); rec != nil {
					if rec == http.ErrAbortHandler {
						panic(rec)
					}
					id := newID()
					log.ErrorContext(r.Context(), "panic in handler", "error_id", id, "panic", rec, "stack", string(debug.Stack()), "request_id", RequestIDFrom(r.Context()))
					if sw.status == 0 {
						WriteProblem(sw, r, http.StatusInternalServerError, "internal error "+id, id)
					}
				}
				route := "unmatched"
				if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
					route = rc.RoutePattern()
				}
				if sw.status == 0 {
					sw.status = http.StatusOK
				}
				d := time.Since(start)
				if m != nil {
					m.Requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
					m.Duration.WithLabelValues(route, r.Method).Observe(d.Seconds())
				}
				log.LogAttrs(r.Context(), slog.LevelInfo, "http",
					slog.String("request_id", RequestIDFrom(r.Context())),
					slog.String("method", r.Method),
					slog.String("route", route),
					slog.Int("status", sw.status),
					slog.Int64("bytes", sw.bytes),
					slog.Float64("ms", float64(d.Microseconds())/1000),
					slog.String("remote", SourceAddr(r)),
				)
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// SecurityHeaders sets a strict Content-Security-Policy and related headers.
// Pages use no inline scripts or styles.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// NoStore marks responses as not cacheable (health data).
func NoStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// RememberLang stores an explicit ?lang= choice in a cookie.
func RememberLang(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l := r.URL.Query().Get("lang"); l == Danish || l == English {
			http.SetCookie(w, &http.Cookie{Name: LangCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		next.ServeHTTP(w, r)
	})
}
