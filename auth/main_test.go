package auth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testArgon2 keeps tests fast; one test checks the default parameters.
var testArgon2 = &argon2id.Params{Memory: 8 * 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type recordedNotice struct {
	User   User
	Notice Notice
}

type env struct {
	t      *testing.T
	db     *pgtest.DB
	svc    *Service
	clock  *fakeClock
	srv    *httptest.Server
	tenant Tenant

	mu       sync.Mutex
	notified []recordedNotice
}

// newEnv gives a migrated database, a tenant, a Service on a fake clock and
// an HTTP server with the auth routes and a few protected test routes.
func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, func(_ *env, c *Config) {
		if mutate != nil {
			mutate(c)
		}
	})
}

// newEnvWith is newEnv with a mutator that sees the env (its server URL).
func newEnvWith(t *testing.T, mutate func(*env, *Config)) *env {
	t.Helper()
	db := pgtest.Open(t, Migrations(), audit.Migrations())
	e := &env{t: t, db: db, clock: &fakeClock{t: time.Now()}}
	e.srv = httptest.NewUnstartedServer(nil)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	cfg := Config{
		Now:    e.clock.Now,
		Argon2: testArgon2,
		Notifier: NotifierFunc(func(ctx context.Context, u User, n Notice) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.notified = append(e.notified, recordedNotice{u, n})
			return nil
		}),
	}
	if mutate != nil {
		mutate(e, &cfg)
	}
	svc, err := New(db.App, cfg)
	require.NoError(t, err)
	e.svc = svc
	ctx := context.Background()
	e.tenant, err = CreateTenant(ctx, db.App, "0101", "Testkommune")
	require.NoError(t, err)

	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Use(svc.Middleware)
	svc.Routes(r)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	r.Get("/static/app.js", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("js")) })
	me := func(w http.ResponseWriter, r *http.Request) {
		p := PrincipalFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user_id": p.UserID, "username": p.Username, "role": p.Role,
			"person_id": p.PersonID, "tenant_id": p.TenantID, "method": p.Method, "display_name": p.DisplayName})
	}
	r.Get("/api/me", me)
	r.Get("/journal", me)
	r.Get("/dicomweb/studies", me)
	r.With(svc.Require(PermJournalWrite)).Post("/api/notes", me)
	r.With(svc.Require(PermDICOMWrite)).Post("/dicomweb/studies", me)
	r.Route("/login/extra", func(r chi.Router) {
		r.Use(svc.RequireAuth)
		r.Get("/", me)
	})
	e.srv.Config.Handler = r
	return e
}

func (e *env) notices() []recordedNotice {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]recordedNotice(nil), e.notified...)
}

// inTenant runs fn in a transaction of the env's tenant.
func (e *env) inTenant(fn func(ctx context.Context, tx pgx.Tx) error) {
	e.t.Helper()
	ctx := context.Background()
	require.NoError(e.t, postgres.InTenant(ctx, e.db.App, e.tenant.ID, func(tx pgx.Tx) error { return fn(ctx, tx) }))
}

func (e *env) person(given string, birth time.Time) Person {
	e.t.Helper()
	var p Person
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		p, err = CreatePerson(ctx, tx, Person{TenantID: e.tenant.ID, GivenName: given, FamilyName: "Testesen", BirthDate: birth})
		return err
	})
	return p
}

func (e *env) user(username, role, password string, personID int64) User {
	e.t.Helper()
	u, err := e.svc.CreateUser(context.Background(), NewUser{TenantID: e.tenant.ID, Username: username, DisplayName: "Display " + username,
		Role: role, Password: password, PersonID: personID})
	require.NoError(e.t, err)
	return u
}

// browser is an HTTP client with a cookie jar that does not follow redirects.
type browser struct {
	t    *testing.T
	e    *env
	c    *http.Client
	xff  string // X-Forwarded-For to send (tests with trusted proxies)
	csrf string // the session's CSRF token, once logged in
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type resp struct {
	Status int
	Header http.Header
	Body   string
}

func (b *browser) do(method, path string, body io.Reader, hdr map[string]string) resp {
	b.t.Helper()
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	require.NoError(b.t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if b.xff != "" {
		req.Header.Set("X-Forwarded-For", b.xff)
	}
	res, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(b.t, err)
	return resp{res.StatusCode, res.Header, string(data)}
}

func (b *browser) get(path string, hdr map[string]string) resp {
	return b.do(http.MethodGet, path, nil, hdr)
}

func (b *browser) postForm(path string, form url.Values, hdr map[string]string) resp {
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": b.e.srv.URL}
	for k, v := range hdr {
		h[k] = v
	}
	return b.do(http.MethodPost, path, strings.NewReader(form.Encode()), h)
}

var csrfFieldRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
var errorKeyRE = regexp.MustCompile(`data-error="([^"]+)"`)

func errorKey(body string) string {
	if m := errorKeyRE.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}

// login fills in the login form; it returns the POST's response.
func (b *browser) login(username, password, next string) resp {
	b.t.Helper()
	page := b.get("/login?next="+url.QueryEscape(next), nil)
	require.Equal(b.t, http.StatusOK, page.Status)
	m := csrfFieldRE.FindStringSubmatch(page.Body)
	require.NotNil(b.t, m, page.Body)
	return b.postForm("/login", url.Values{"username": {username}, "password": {password}, "next": {next}, "csrf_token": {m[1]}}, nil)
}

// mustLogin logs in and remembers the session's CSRF token.
func (b *browser) mustLogin(username, password string) {
	b.t.Helper()
	r := b.login(username, password, "/")
	require.Equal(b.t, http.StatusSeeOther, r.Status, "login of %s: %s", username, r.Body)
	b.loadCSRF()
}

func (b *browser) loadCSRF() {
	b.t.Helper()
	// The session's token as the web shell gets it (CSRFToken(r)); read it
	// from the database through the cookie's hash.
	u, _ := url.Parse(b.e.srv.URL)
	var id string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			id = c.Value
		}
	}
	require.NotEmpty(b.t, id, "no session cookie")
	require.NoError(b.t, b.e.db.Admin.QueryRow(context.Background(), `SELECT csrf_token FROM auth.session WHERE id_hash = $1`, hashToken(id)).Scan(&b.csrf))
}

func (b *browser) me() (int, map[string]any) {
	b.t.Helper()
	r := b.get("/api/me", map[string]string{"Accept": "application/json"})
	var m map[string]any
	if r.Status == http.StatusOK {
		require.NoError(b.t, json.Unmarshal([]byte(r.Body), &m))
	}
	return r.Status, m
}

func loopback(t *testing.T) []netip.Prefix {
	t.Helper()
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

func strconvFormat(n int64) string { return strconv.FormatInt(n, 10) }

func copyAll(w io.Writer, res *http.Response) (int64, error) {
	defer res.Body.Close()
	return io.Copy(w, res.Body)
}
