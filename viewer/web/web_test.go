package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestCatalogsHaveTheSameKeys(t *testing.T) {
	c, err := NewCatalog()
	require.NoError(t, err)
	require.Empty(t, c.Missing(), "every key in Danish and English")
	require.Equal(t, "Log ind", c.T(Danish, "login.title"))
	require.Equal(t, "Log in", c.T(English, "login.title"))
	require.Equal(t, "Velkommen, Ida", c.T(Danish, "home.welcome", "Ida"))
	require.Equal(t, "no.such.key", c.T(Danish, "no.such.key"), "unknown keys show themselves")
	c.Add(map[string]map[string]string{"da": {"x.only": "kun dansk"}})
	require.Equal(t, "kun dansk", c.T(English, "x.only"), "English falls back to Danish")
}

func TestAssetsAreServedAtContentHashURLs(t *testing.T) {
	a, err := NewAssets("/static", fstest.MapFS{"app.css": {Data: []byte("body{}")}})
	require.NoError(t, err)
	u, err := a.URL("app.css")
	require.NoError(t, err)
	require.Regexp(t, `^/static/[0-9a-f]{12}/app\.css$`, u)
	_, err = a.URL("missing.css")
	require.Error(t, err)

	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, u, nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "body{}", rec.Body.String())
	require.Contains(t, rec.Header().Get("Cache-Control"), "immutable")
	require.Contains(t, rec.Header().Get("Content-Type"), "text/css")

	rec = httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/static/000000000000/app.css", nil))
	require.Equal(t, http.StatusNotFound, rec.Code, "an old hash is gone")

	_, err = NewAssets("/static", fstest.MapFS{"a.css": {}}, fstest.MapFS{"a.css": {}})
	require.Error(t, err, "the same name twice")
}

var errThing = errors.New("thing not found")

func newShell(t *testing.T) *Shell {
	cat, err := NewCatalog()
	require.NoError(t, err)
	assets, err := NewAssets("/static", CoreStatic())
	require.NoError(t, err)
	s := NewShell(cat, assets, slog.New(slog.DiscardHandler))
	require.NoError(t, s.AddPages(CorePages(), "*.html"))
	return s
}

func TestErrorsMapToStatusAndFormat(t *testing.T) {
	s := newShell(t)
	RegisterError(errThing, NotFound)
	for _, tc := range []struct {
		name   string
		err    error
		accept string
		status int
		json   bool
	}{
		{"sentinel html", errThing, "text/html", 404, false},
		{"wrapped sentinel json", errors.Join(errors.New("ctx"), errThing), "application/json", 404, true},
		{"kind", E(Forbidden, "nej"), "application/json", 403, true},
		{"internal", errors.New("db exploded: secret detail"), "text/html", 500, false},
		{"rate limited", E(RateLimited, ""), "application/json", 429, true},
		{"NUL in text", fmt.Errorf("journal: save: %w", &pgconn.PgError{Code: "22021", Message: "invalid byte sequence for encoding \"UTF8\": 0x00"}), "application/json", 400, true},
		{"value too long", fmt.Errorf("save: %w", &pgconn.PgError{Code: "22001"}), "text/html", 400, false},
		{"other database error", fmt.Errorf("save: %w", &pgconn.PgError{Code: "23505", Message: "secret detail"}), "text/html", 500, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header.Set("Accept", tc.accept)
			s.Error(rec, req, tc.err)
			require.Equal(t, tc.status, rec.Code)
			body := rec.Body.String()
			require.NotContains(t, body, "secret detail", "internal details never reach the response")
			if tc.json {
				require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
				var p Problem
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
				require.Equal(t, tc.status, p.Status)
			} else {
				require.Contains(t, rec.Header().Get("Content-Type"), "text/html")
				require.Contains(t, body, `lang="da"`)
			}
			if tc.status == 500 {
				require.Regexp(t, `[0-9a-f]{16}`, body, "an error id to quote to support")
			}
		})
	}
}

func TestReadyzReportsFailingChecksAndDraining(t *testing.T) {
	ok := Check{Name: "database", Fn: func(context.Context) error { return nil }}
	bad := Check{Name: "objectstore", Fn: func(context.Context) error { return errors.New("unreachable") }}
	draining := false
	for _, tc := range []struct {
		checks []Check
		drain  bool
		status int
		want   string
	}{
		{[]Check{ok}, false, 200, `"ready"`},
		{[]Check{ok, bad}, false, 503, `unreachable`},
		{[]Check{ok}, true, 503, `"draining"`},
	} {
		draining = tc.drain
		rec := httptest.NewRecorder()
		Readyz(func() bool { return draining }, tc.checks...)(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		require.Equal(t, tc.status, rec.Code)
		require.Contains(t, rec.Body.String(), tc.want)
	}
}

func TestObserveRecoversPanicsAndLogsNoQueryStrings(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := RequestID(Observe(log, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			panic("boom")
		}
		_, _ = io.WriteString(w, "ok")
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/search?cpr=0101101234", nil))
	require.Equal(t, 200, rec.Code)
	require.NotEmpty(t, rec.Header().Get("X-Request-ID"))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))
	require.Equal(t, 500, rec.Code)
	require.NotContains(t, logs.String(), "0101101234", "query strings may carry CPR numbers")
	require.Contains(t, logs.String(), "panic in handler")
}

func TestLanguageChoice(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept-Language", "en-US")
	require.Equal(t, Danish, Lang(req))
	require.Equal(t, English, Lang(httptest.NewRequest(http.MethodGet, "/?lang=en", nil)))
	req = httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(&http.Cookie{Name: LangCookie, Value: English})
	require.Equal(t, English, Lang(req))
}

// Request ids go into the audit log, which refuses values shaped like a CPR
// number: generated ids never contain a digit run, and a client's id with
// one is replaced.
func TestRequestIDsNeverLookLikeCPRNumbers(t *testing.T) {
	for i := 0; i < 10000; i++ {
		id := newRequestID()
		require.Len(t, id, 16)
		require.False(t, digitRun.MatchString(id), id)
		require.NotRegexp(t, `[0-9]`, id)
	}
	h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, RequestIDFrom(r.Context()))
	}))
	for in, keep := range map[string]bool{"trace-abc-123": true, "req-0101154237": false, "x": false} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Request-ID", in)
		h.ServeHTTP(rec, req)
		require.Equal(t, keep, rec.Body.String() == in, in)
	}
}
