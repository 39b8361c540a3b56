package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/modules/directory"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testServer is an in-process Molar on a fresh database with the demo data.
type testServer struct {
	*server
	URL string
}

func newTestServer(t *testing.T, extraEnv map[string]string) *testServer {
	t.Helper()
	return newTestServerLog(t, extraEnv, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// newTestServerLog is newTestServer logging to log.
func newTestServerLog(t *testing.T, extraEnv map[string]string, log *slog.Logger) *testServer {
	t.Helper()
	db := pgtest.Open(t)
	env := map[string]string{
		"MOLAR_DATABASE_URL":     db.AdminURL,
		"MOLAR_DATABASE_APP_URL": db.AppURL,
		"MOLAR_DATA_DIR":         t.TempDir(),
		"MOLAR_DEMO":             "true",
		"MOLAR_LOG_LEVEL":        "warn",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	cfg, _, err := parseConfig("serve", nil, envOf(env), io.Discard, nil)
	require.NoError(t, err)
	ctx := context.Background()
	s, err := newServer(ctx, cfg, log)
	require.NoError(t, err)
	ts := httptest.NewServer(s.router)
	t.Cleanup(func() {
		ts.Close()
		s.close(ctx)
	})
	return &testServer{server: s, URL: ts.URL}
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects.
func (ts *testServer) client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// login signs in with a local account and returns the client and the
// session's CSRF token.
func (ts *testServer) login(t *testing.T, username string) (*http.Client, string) {
	t.Helper()
	c := ts.client(t)
	resp, err := c.Get(ts.URL + "/login")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindStringSubmatch(string(body))
	require.NotNil(t, m, "login form has a CSRF token")
	form := url.Values{"username": {username}, "password": {demo.Password}, "csrf_token": {m[1]}, "next": {"/"}}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", ts.URL)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "login of %s", username)
	// The home page carries the session's CSRF token in the logout form.
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/", nil)
	req.Header.Set("Accept", "text/html")
	resp, err = c.Do(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	m = csrfField.FindStringSubmatch(string(body))
	require.NotNil(t, m)
	return c, m[1]
}

// publicRoutes are reachable without login. Every other route must be in
// routePermissions: a new route without a declared permission fails
// TestEveryRouteDeniesAnonymous, so nobody adds an unguarded route by accident.
var publicRoutes = map[string]bool{
	"GET /login":              true,
	"POST /login":             true,
	"GET /login/notices":      true, // shows notices of the just-created session only
	"GET /auth/oidc/login":    true,
	"GET /auth/oidc/callback": true,
	"GET /healthz":            true,
	"GET /readyz":             true,
	"GET /metrics":            true,
	"GET /static/*":           true,
}

// routePermissions is the permission each non-public route needs ("" = any
// signed-in user).
var routePermissions = map[string]string{
	"GET /":                         "",
	"POST /logout":                  "",
	"POST /admin/users/{id}/unlock": auth.PermAdminUsers,
	"GET /admin/users/locked":       auth.PermAdminUsers,
	"GET /m/directory/":             "",
	"GET /m/directory/{unit}/edit":  directory.PermEdit,
	"POST /m/directory/{unit}/edit": directory.PermEdit,
}

type route struct{ method, pattern string }

func walkRoutes(t *testing.T, r chi.Router) []route {
	var out []route
	require.NoError(t, chi.Walk(r, func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		pattern = strings.ReplaceAll(pattern, "/*/", "/")
		out = append(out, route{method, pattern})
		return nil
	}))
	sort.Slice(out, func(i, j int) bool { return out[i].pattern+out[i].method < out[j].pattern+out[j].method })
	return out
}

var paramRE = regexp.MustCompile(`\{([^}]+)\}`)

// concrete fills a route pattern's parameters: values[name] when given,
// else "1".
func concrete(pattern string, values ...map[string]string) string {
	p := paramRE.ReplaceAllStringFunc(pattern, func(m string) string {
		name := m[1 : len(m)-1]
		for _, v := range values {
			if x, ok := v[name]; ok {
				return x
			}
		}
		return "1"
	})
	return strings.ReplaceAll(p, "*", "x")
}

func TestEveryRouteDeniesAnonymous(t *testing.T) {
	ts := newTestServer(t, nil)
	routes := walkRoutes(t, ts.router)
	require.NotEmpty(t, routes)
	for _, rt := range routes {
		key := rt.method + " " + rt.pattern
		t.Run(key, func(t *testing.T) {
			if publicRoutes[key] {
				return
			}
			_, declared := routePermissions[key]
			require.True(t, declared, "route %s has no declared permission: add it to routePermissions (or publicRoutes)", key)
			for _, accept := range []string{"application/json", "text/html"} {
				req, _ := http.NewRequest(rt.method, ts.URL+concrete(rt.pattern), nil)
				req.Header.Set("Accept", accept)
				resp, err := ts.client(t).Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusUnauthorized:
				case http.StatusSeeOther, http.StatusFound:
					require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/login"), "redirect to login, got %s", resp.Header.Get("Location"))
				default:
					t.Fatalf("anonymous %s (Accept %s) got %d, want 401 or a login redirect", key, accept, resp.StatusCode)
				}
			}
		})
	}
}

func TestRoleRouteMatrix(t *testing.T) {
	ts := newTestServer(t, nil)
	routes := walkRoutes(t, ts.router)
	// Person-level parameters name a demo child of the demo clinic, so a
	// refusal can only come from the route's permission.
	params := map[string]string{
		"person": fmt.Sprint(ts.demo.Children[0].PersonID),
		"unit":   fmt.Sprint(ts.demo.ClinicID),
		// No such account: ending "user 1's" membership of the clinic would
		// take the demo dentist out of it for the roles tested after.
		"user": "0",
	}
	for _, role := range auth.Roles() {
		username := ""
		for _, l := range ts.demo.Logins {
			if l.Role == role {
				username = l.Username
				break
			}
		}
		require.NotEmpty(t, username, "demo login for %s", role)
		t.Run(role, func(t *testing.T) {
			c, csrf := ts.login(t, username)
			for _, rt := range routes {
				key := rt.method + " " + rt.pattern
				perm, guarded := routePermissions[key]
				if !guarded || key == "POST /logout" {
					continue
				}
				req, _ := http.NewRequest(rt.method, ts.URL+concrete(rt.pattern, params), nil)
				req.Header.Set("Accept", "application/json")
				req.Header.Set("X-CSRF-Token", csrf)
				req.Header.Set("Origin", ts.URL)
				resp, err := c.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				allowed := perm == "" || auth.RoleHas(role, perm)
				if allowed {
					require.NotContains(t, []int{401, 403}, resp.StatusCode, "%s may reach %s", role, key)
				} else {
					require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s must not reach %s", role, key)
				}
			}
		})
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, c := range [][2]string{{"/healthz", `"ok"`}, {"/readyz", `"ready"`}, {"/metrics", "molar_http_requests_total"}} {
		path, want := c[0], c[1]
		resp, err := http.Get(ts.URL + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, string(b), want, path)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(b), `molar_jobs{state="available"}`, "job queue depth is exported")
	// Draining (shutdown began) makes /readyz fail so balancers stop sending.
	ts.draining.Store(true)
	resp, err = http.Get(ts.URL + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestLoginLogoutAndCSRF(t *testing.T) {
	ts := newTestServer(t, nil)
	c, csrf := ts.login(t, "tandlaege")
	// Logout without the token is refused; with it the session ends.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/logout", nil)
	req.Header.Set("Origin", ts.URL)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "state change without CSRF token")
	req, _ = http.NewRequest(http.MethodPost, ts.URL+"/logout", strings.NewReader(url.Values{"csrf_token": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", ts.URL)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 400)
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/", nil)
	req.Header.Set("Accept", "application/json")
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "session ended")
}

func TestPagesAreDanishByDefaultAndEnglishOnRequest(t *testing.T) {
	ts := newTestServer(t, nil)
	get := func(path string, hdr map[string]string) string {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	require.Contains(t, get("/login", nil), "Adgangskode")
	require.Contains(t, get("/login?lang=en", nil), "Password")
	require.Contains(t, get("/login", map[string]string{"Accept-Language": "en-GB,en;q=0.9"}), "Adgangskode", "Danish unless English is chosen")
	require.Contains(t, get("/login", map[string]string{"Cookie": "molar_lang=en"}), "Password", "the choice is remembered")
	require.Contains(t, get("/login", map[string]string{"Accept-Language": "da-DK"}), "Adgangskode")
}

func TestSecurityHeaders(t *testing.T) {
	ts := newTestServer(t, nil)
	resp, err := http.Get(ts.URL + "/login")
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.NotEmpty(t, resp.Header.Get("X-Request-ID"))
}

var _ = fmt.Sprintf

// TestDirectoryEditOnlyOwnUnits: a clinic administrator edits her own
// clinic's details, not another unit's; a system administrator any unit's.
func TestDirectoryEditOnlyOwnUnits(t *testing.T) {
	ts := newTestServer(t, nil)
	c, csrf := ts.login(t, "klinikadmin")
	own := fmt.Sprintf("%s/m/directory/%d/edit", ts.URL, ts.demo.ClinicID)
	other := fmt.Sprintf("%s/m/directory/%d/edit", ts.URL, ts.demo.HomeCareID)
	form := url.Values{"phone": {"+45 11 11 11 11"}}
	st, _ := post(t, c, ts.URL, own, csrf, form)
	require.Equal(t, http.StatusSeeOther, st)
	st, _ = post(t, c, ts.URL, other, csrf, form)
	require.Equal(t, http.StatusForbidden, st)
	st, _ = get(t, c, other)
	require.Equal(t, http.StatusForbidden, st)
	a, acsrf := ts.login(t, "admin")
	st, _ = post(t, a, ts.URL, other, acsrf, form)
	require.Equal(t, http.StatusSeeOther, st)
}
