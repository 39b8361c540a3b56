package auth

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

// The test's OpenID Provider is zitadel/oidc's op package with its example
// storage and login UI, extended with the claims a MitID broker and a staff
// directory send (a CPR number; groups) and JWT access tokens.

type opUsers struct{ users map[string]*storage.User }

func (s opUsers) GetUserByID(id string) *storage.User { return s.users[id] }

func (s opUsers) GetUserByUsername(name string) *storage.User {
	for _, u := range s.users {
		if u.Username == name {
			return u
		}
	}
	return nil
}

func (s opUsers) ExampleClientID() string { return "service" }

type opStorage struct {
	*storage.Storage
	mu     sync.Mutex
	claims map[string]map[string]any // extra claims by user id
}

func (s *opStorage) setClaim(userID, name string, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claims[userID] == nil {
		s.claims[userID] = map[string]any{}
	}
	s.claims[userID][name] = v
}

func (s *opStorage) extra(userID string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	for k, v := range s.claims[userID] {
		out[k] = v
	}
	return out
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	for k, v := range s.extra(req.GetSubject()) {
		ui.AppendClaims(k, v)
	}
	return nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, ui *zoidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	for k, v := range s.extra(ui.Subject) {
		ui.AppendClaims(k, v)
	}
	return nil
}

func (s *opStorage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	return s.extra(userID), nil
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

// jwtClient makes the provider issue JWT access tokens to the client.
type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

const (
	opPassword   = "op-password-1"
	clientID     = "molar"
	clientSecret = "molar-client-secret"
	cprClaim     = "dk:gov:cpr"
)

type oidcEnv struct {
	*env
	op     *httptest.Server
	issuer string
	store  *opStorage
}

func newOIDCEnv(t *testing.T, with ...func(*OIDCConfig)) *oidcEnv {
	t.Helper()
	opSrv := httptest.NewUnstartedServer(nil)
	opSrv.Start()
	t.Cleanup(opSrv.Close)
	oe := &oidcEnv{op: opSrv, issuer: opSrv.URL}
	oe.env = newEnvWith(t, func(e *env, c *Config) {
		c.OIDC = []OIDCConfig{{
			Name: "kommune", Label: "Log in with MitID or your work account", TenantID: 0, // set below
			Issuer: oe.issuer, ClientID: clientID, ClientSecret: clientSecret,
			RedirectURL: e.srv.URL + "/auth/oidc/callback",
			Scopes:      []string{oidc.ScopeOpenID, "profile", "email"},
			CPRClaim:    cprClaim,
			RoleClaim:   "groups",
			RoleMap:     map[string]string{"tandplejen-tandlaeger": RoleDentist, "tandplejen-assistenter": RoleDentalAssistant},
			UnitMap:     map[string]string{"tandplejen-tandlaeger": "Tandplejen Nord", "klinik-syd": "tandplejen syd"},
		}}
		// The env's first tenant (checked below), found at sign-in as with
		// the demo (TenantID is the same with a fixed value).
		c.OIDC[0].TenantFunc = func(context.Context) (int64, error) { return 1, nil }
		for _, f := range with {
			f(&c.OIDC[0])
		}
	})
	require.Equal(t, int64(1), oe.tenant.ID)
	user := func(id, username, first, last string) *storage.User {
		return &storage.User{ID: id, Username: username, Password: opPassword, FirstName: first, LastName: last,
			Email: username + "@example.dk", EmailVerified: true}
	}
	users := opUsers{users: map[string]*storage.User{
		"staff-1":   user("staff-1", "anne", "Anne", "Tandlæge"),
		"staff-2":   user("staff-2", "bo", "Bo", "Uden Rolle"),
		"citizen-1": user("citizen-1", "mette", "Mette", "Mor"),
		"citizen-2": user("citizen-2", "niels", "Niels", "Ny"),
	}}
	clients := map[string]*storage.Client{clientID: storage.WebClient(clientID, clientSecret,
		oe.srv.URL+"/auth/oidc/callback", oe.srv.URL+"/test-callback")}
	oe.store = &opStorage{Storage: storage.NewStorageWithClients(users, clients), claims: map[string]map[string]any{}}
	oe.store.setClaim("staff-1", "groups", []any{"alle-ansatte", "tandplejen-tandlaeger"})
	oe.store.setClaim("staff-2", "groups", []any{"alle-ansatte"})
	oe.store.setClaim("citizen-1", cprClaim, "010185-1234") // fails modulus 11: accepted
	oe.store.setClaim("citizen-2", cprClaim, "150690-2345")
	opSrv.Config.Handler = exampleop.SetupServer(oe.issuer, oe.store, nil, false)
	return oe
}

// follow performs req-like GETs and POSTs with the browser's jar, following
// redirects by hand until one of ours answers something other than a
// redirect to the provider; it returns that response and the URLs visited.
func (oe *oidcEnv) follow(b *browser, method, rawURL string, form url.Values) (resp, []string) {
	t := oe.t
	t.Helper()
	var visited []string
	for range 20 {
		visited = append(visited, rawURL)
		var req *http.Request
		var err error
		if form != nil {
			req, err = http.NewRequest(method, rawURL, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req, err = http.NewRequest(method, rawURL, nil)
		}
		require.NoError(t, err)
		req.Header.Set("Accept", "text/html")
		res, err := b.c.Do(req)
		require.NoError(t, err)
		body := new(strings.Builder)
		_, _ = copyAll(body, res)
		r := resp{res.StatusCode, res.Header, body.String()}
		loc := res.Header.Get("Location")
		if res.StatusCode < 300 || res.StatusCode >= 400 || loc == "" {
			return r, visited
		}
		next, err := res.Request.URL.Parse(loc)
		require.NoError(t, err)
		if next.Host != oe.op.Listener.Addr().String() && !strings.HasPrefix(next.Path, "/auth/oidc/callback") {
			return r, visited // a redirect into the app (next): stop here
		}
		rawURL, method, form = next.String(), http.MethodGet, nil
	}
	t.Fatal("too many redirects")
	return resp{}, nil
}

// oidcLogin runs the authorization code flow in b: Molar → provider login
// form → provider → Molar's callback. It returns the callback's answer and
// the callback URL.
func (oe *oidcEnv) oidcLogin(b *browser, username, next string) (resp, string) {
	t := oe.t
	t.Helper()
	start := b.get("/auth/oidc/login?provider=kommune&next="+url.QueryEscape(next), nil)
	require.Equal(t, http.StatusFound, start.Status, start.Body)
	authURL, err := url.Parse(start.Header.Get("Location"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(authURL.String(), oe.issuer), authURL.String())
	q := authURL.Query()
	require.Equal(t, "S256", q.Get("code_challenge_method"), "PKCE")
	require.NotEmpty(t, q.Get("code_challenge"))
	require.NotEmpty(t, q.Get("nonce"))
	require.NotEmpty(t, q.Get("state"))
	require.Equal(t, clientID, q.Get("client_id"))

	page, visited := oe.follow(b, http.MethodGet, authURL.String(), nil)
	require.Equal(t, http.StatusOK, page.Status, page.Body)
	loginURL, err := url.Parse(visited[len(visited)-1])
	require.NoError(t, err)
	authRequestID := loginURL.Query().Get("authRequestID")
	require.NotEmpty(t, authRequestID, "provider login page %s", loginURL)
	loginURL.RawQuery = ""
	final, visited := oe.follow(b, http.MethodPost, loginURL.String(), url.Values{"username": {username}, "password": {opPassword}, "id": {authRequestID}})
	callback := ""
	for _, v := range visited {
		if strings.Contains(v, "/auth/oidc/callback") {
			callback = v
		}
	}
	require.NotEmpty(t, callback, "visited %v", visited)
	return final, callback
}

func TestOIDCStaffLogin(t *testing.T) {
	oe := newOIDCEnv(t)
	ctx := context.Background()

	// The login page offers the provider.
	page := oe.browser().get("/login?next=/journal", nil)
	require.Contains(t, page.Body, `/auth/oidc/login?provider=kommune&amp;next=%2Fjournal`)

	nord, err := CreateOrgUnit(ctx, oe.db.Admin, OrgUnit{TenantID: oe.tenant.ID, Kind: "dental_clinic", Name: "Tandplejen Nord"})
	require.NoError(t, err)
	syd, err := CreateOrgUnit(ctx, oe.db.Admin, OrgUnit{TenantID: oe.tenant.ID, Kind: "dental_clinic", Name: "Tandplejen Syd"})
	require.NoError(t, err)
	home, err := CreateOrgUnit(ctx, oe.db.Admin, OrgUnit{TenantID: oe.tenant.ID, Kind: "home_care", Name: "Hjemmeplejen"})
	require.NoError(t, err)

	b := oe.browser()
	r, callback := oe.oidcLogin(b, "anne", "/journal")
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	require.Equal(t, "/journal", r.Header.Get("Location"))
	status, me := b.me()
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, RoleDentist, me["role"])
	require.Equal(t, "anne", me["username"], "username from preferred_username")
	require.Equal(t, "Anne Tandlæge", me["display_name"])
	require.Equal(t, MethodSession, me["method"])
	firstID := me["user_id"]

	u, err := GetUser(ctx, oe.db.App, int64(firstID.(float64)))
	require.NoError(t, err)
	require.Equal(t, oe.issuer, u.OIDCIssuer)
	require.Equal(t, "staff-1", u.OIDCSubject)
	require.False(t, u.HasPassword)
	// Her groups put her in the mapped unit (and in no other).
	units, err := UserUnits(ctx, oe.db.Admin, u.ID)
	require.NoError(t, err)
	require.Equal(t, []int64{nord.ID}, units)
	// A membership given by hand, of a unit no group maps to, is not the directory's business.
	require.NoError(t, AddUserUnit(ctx, oe.db.Admin, u.ID, home.ID))

	// The callback cannot be replayed (state used), nor forged.
	replay := oe.browser()
	res := replay.get(strings.TrimPrefix(callback, oe.srv.URL), nil)
	require.Equal(t, http.StatusBadRequest, res.Status)
	require.Equal(t, "oidc_failed", errorKey(res.Body))
	res = b.get("/auth/oidc/callback?state=forged&code=forged", nil)
	require.Equal(t, http.StatusBadRequest, res.Status)

	// The directory moves Anne to another group and clinic: her role and
	// units follow at the next login, same account.
	oe.store.setClaim("staff-1", "groups", []any{"tandplejen-assistenter", "klinik-syd"})
	b2 := oe.browser()
	r, _ = oe.oidcLogin(b2, "anne", "/")
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	_, me = b2.me()
	require.Equal(t, RoleDentalAssistant, me["role"])
	require.Equal(t, firstID, me["user_id"])
	units, err = UserUnits(ctx, oe.db.Admin, u.ID)
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{syd.ID, home.ID}, units)
	var grants []string
	rows, err := oe.db.Admin.Query(ctx, `SELECT action || ':' || (detail->>'org_unit_id') FROM audit.event WHERE object = $1 ORDER BY id`,
		fmt.Sprintf("auth.user_unit/%d", u.ID))
	require.NoError(t, err)
	grants, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{fmt.Sprintf("create:%d", nord.ID), fmt.Sprintf("delete:%d", nord.ID), fmt.Sprintf("create:%d", syd.ID)}, grants,
		"every membership the directory gives or takes is in the audit log")

	// No group that maps to a role: refused, and no account is made.
	b3 := oe.browser()
	r, _ = oe.oidcLogin(b3, "bo", "/")
	require.Equal(t, http.StatusForbidden, r.Status)
	require.Equal(t, "no_role", errorKey(r.Body))
	status, _ = b3.me()
	require.Equal(t, http.StatusUnauthorized, status)
	var n int
	require.NoError(t, oe.db.Admin.QueryRow(ctx, `SELECT count(*) FROM auth.users WHERE oidc_subject = 'staff-2'`).Scan(&n))
	require.Zero(t, n)

	// Logins are in the audit log.
	require.NoError(t, oe.db.Admin.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'login' AND user_id = $1`, u.ID).Scan(&n))
	require.Equal(t, 2, n)
}

func TestOIDCCitizenLogin(t *testing.T) {
	oe := newOIDCEnv(t)
	ctx := context.Background()
	cpr, err := ParseCPR("010185-1234")
	require.NoError(t, err)
	var mother, child Person
	oe.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		mother, err = CreatePerson(ctx, tx, Person{TenantID: oe.tenant.ID, CPR: cpr, GivenName: "Mette", FamilyName: "Mor"})
		require.NoError(t, err)
		child, err = CreatePerson(ctx, tx, Person{TenantID: oe.tenant.ID, GivenName: "Lille", BirthDate: DateIn(oe.clock.Now(), Copenhagen).AddDate(-6, 0, 0)})
		require.NoError(t, err)
		return AddCustody(ctx, tx, oe.tenant.ID, mother.ID, child.ID)
	})

	// A known person: mapped by the CPR claim to the register, citizen account made.
	b := oe.browser()
	r, _ := oe.oidcLogin(b, "mette", "/portal")
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	require.Equal(t, "/portal", r.Header.Get("Location"))
	status, me := b.me()
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, RoleCitizen, me["role"])
	require.EqualValues(t, mother.ID, me["person_id"])
	require.True(t, strings.HasPrefix(me["username"].(string), "oidc-"), "never the CPR number as username")
	require.NotContains(t, me["username"], "010185")

	// Citizens get the 15-minute idle timeout.
	var idle int
	require.NoError(t, oe.db.Admin.QueryRow(ctx, `SELECT idle_seconds FROM auth.session s JOIN auth.users u ON u.id = s.user_id WHERE u.person_id = $1`, mother.ID).Scan(&idle))
	require.Equal(t, 15*60, idle)

	// The parent reaches the child in custody through the session.
	p := &Principal{UserID: int64(me["user_id"].(float64)), TenantID: oe.tenant.ID, Role: RoleCitizen, PersonID: mother.ID}
	oe.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		d, err := oe.svc.Access(ctx, tx, p, child.ID)
		require.NoError(t, err)
		require.Equal(t, BasisCustody, d.Basis)
		return nil
	})

	// The second login reuses the account.
	b2 := oe.browser()
	r, _ = oe.oidcLogin(b2, "mette", "/")
	require.Equal(t, http.StatusSeeOther, r.Status)
	_, me2 := b2.me()
	require.Equal(t, me["user_id"], me2["user_id"])

	// An unknown person is added to the register on first login.
	b3 := oe.browser()
	r, _ = oe.oidcLogin(b3, "niels", "/")
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	_, me3 := b3.me()
	require.Equal(t, RoleCitizen, me3["role"])
	oe.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		c, _ := ParseCPR("150690-2345")
		p, err := FindPersonByCPR(ctx, tx, c)
		require.NoError(t, err)
		require.EqualValues(t, p.ID, me3["person_id"])
		require.Equal(t, date(1990, 6, 15), p.BirthDate)
		require.Equal(t, "Niels", p.GivenName)
		return nil
	})

	// An invalid CPR claim is refused.
	oe.store.setClaim("citizen-2", cprClaim, "310290-2345")
	b4 := oe.browser()
	r, _ = oe.oidcLogin(b4, "niels", "/")
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.NotContains(t, r.Body, "310290")
}

// clientTokens runs the code flow as a plain OAuth client (not Molar) and
// returns the provider's tokens, to use as bearer tokens against Molar.
func (oe *oidcEnv) clientTokens(username string) *oauth2.Token {
	t := oe.t
	t.Helper()
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, oe.issuer)
	require.NoError(t, err)
	cfg := oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, Endpoint: prov.Endpoint(),
		RedirectURL: oe.srv.URL + "/test-callback", Scopes: []string{oidc.ScopeOpenID, "profile"}}
	verifier := oauth2.GenerateVerifier()
	b := oe.browser()
	page, visited := oe.follow(b, http.MethodGet, cfg.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(verifier)), nil)
	require.Equal(t, http.StatusOK, page.Status)
	loginURL, _ := url.Parse(visited[len(visited)-1])
	id := loginURL.Query().Get("authRequestID")
	loginURL.RawQuery = ""
	final, _ := oe.follow(b, http.MethodPost, loginURL.String(), url.Values{"username": {username}, "password": {opPassword}, "id": {id}})
	cb, err := url.Parse(final.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "/test-callback", cb.Path, final.Header.Get("Location"))
	tok, err := cfg.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	return tok
}

func TestOIDCBearerToken(t *testing.T) {
	oe := newOIDCEnv(t)
	tok := oe.clientTokens("anne")
	idToken, _ := tok.Extra("id_token").(string)
	require.NotEmpty(t, idToken)
	require.Equal(t, 2, strings.Count(tok.AccessToken, "."), "JWT access token")

	c := oe.browser()
	for name, raw := range map[string]string{"ID token": idToken, "access token": tok.AccessToken} {
		r := c.get("/api/me", map[string]string{"Authorization": "Bearer " + raw, "Accept": "application/json"})
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", name, r.Body)
		require.Contains(t, r.Body, `"method":"bearer"`)
		require.Contains(t, r.Body, `"role":"dentist"`)
		// State-changing bearer requests need no CSRF token.
		r = c.do(http.MethodPost, "/api/notes", nil, map[string]string{"Authorization": "Bearer " + raw})
		require.Equal(t, http.StatusOK, r.Status, name)
	}
	// A tampered or foreign token is refused.
	tampered := idToken[:len(idToken)-4] + flip(idToken[len(idToken)-4:])
	r := c.get("/api/me", map[string]string{"Authorization": "Bearer " + tampered})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	r = c.get("/api/me", map[string]string{"Authorization": "Bearer not.a.jwt"})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	// A staff token whose groups no longer map to a role is refused.
	oe.store.setClaim("staff-1", "groups", []any{"alle-ansatte"})
	tok2 := oe.clientTokens("anne")
	r = c.get("/api/me", map[string]string{"Authorization": "Bearer " + tok2.Extra("id_token").(string)})
	require.Equal(t, http.StatusForbidden, r.Status)
}

func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

// TestOIDCAssuranceLevel: with ACRValues the login asks for them
// (acr_values) and a sign-in whose ID token has another or no acr is
// refused; one at an accepted level signs in.
func TestOIDCAssuranceLevel(t *testing.T) {
	const substantial = "https://data.gov.dk/concept/core/nsis/loa/Substantial"
	oe := newOIDCEnv(t, func(c *OIDCConfig) {
		c.ACRValues = []string{substantial, "https://data.gov.dk/concept/core/nsis/loa/High"}
	})
	b := oe.browser()
	start := b.get("/auth/oidc/login?provider=kommune&next=/", nil)
	authURL, err := url.Parse(start.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, substantial+" https://data.gov.dk/concept/core/nsis/loa/High", authURL.Query().Get("acr_values"))

	r, _ := oe.oidcLogin(oe.browser(), "anne", "/")
	require.Equal(t, http.StatusForbidden, r.Status, "no acr claim")
	require.Equal(t, "assurance", errorKey(r.Body))
	oe.store.setClaim("staff-1", "acr", "https://data.gov.dk/concept/core/nsis/loa/Low")
	r, _ = oe.oidcLogin(oe.browser(), "anne", "/")
	require.Equal(t, http.StatusForbidden, r.Status, "a level below")
	oe.store.setClaim("staff-1", "acr", substantial)
	r, _ = oe.oidcLogin(oe.browser(), "anne", "/")
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)

	// Bearer tokens need an accepted level too: ID token and JWT access token.
	bearer := func() map[string]string {
		tok := oe.clientTokens("anne")
		return map[string]string{"ID token": tok.Extra("id_token").(string), "access token": tok.AccessToken}
	}
	for name, raw := range bearer() {
		r := oe.browser().get("/api/me", map[string]string{"Authorization": "Bearer " + raw, "Accept": "application/json"})
		require.Equal(t, http.StatusOK, r.Status, "%s at an accepted level: %s", name, r.Body)
	}
	oe.store.setClaim("staff-1", "acr", "https://data.gov.dk/concept/core/nsis/loa/Low")
	for name, raw := range bearer() {
		r := oe.browser().get("/api/me", map[string]string{"Authorization": "Bearer " + raw, "Accept": "application/json"})
		require.Equal(t, http.StatusForbidden, r.Status, "%s at a level below: %s", name, r.Body)
	}
}

// TestOIDCFlowCookie: a login in flight lives in a sealed cookie, not in
// the database, so starting logins stores nothing and is not limited; the
// callback takes only its own browser's unaltered, fresh cookie with the
// matching state (a code exchange failing, 401, shows a cookie accepted;
// 400, one refused); behind https the cookie is a __Host- cookie and a
// plain one planted over http is not read.
func TestOIDCFlowCookie(t *testing.T) {
	for _, https := range []bool{false, true} {
		t.Run(fmt.Sprintf("https=%v", https), func(t *testing.T) {
			oe := newOIDCEnv(t, func(c *OIDCConfig) {})
			if https {
				oe.svc.secure = true
			}
			ctx := context.Background()
			name, plain := oidcStateCookie, secureOIDCStateCookie
			if https {
				name, plain = secureOIDCStateCookie, oidcStateCookie
			}
			start := func() (cookie, state string) {
				r := oe.browser().get("/auth/oidc/login?provider=kommune&next=/journal/", nil)
				require.Equal(t, http.StatusFound, r.Status)
				u, err := url.Parse(r.Header.Get("Location"))
				require.NoError(t, err)
				for _, c := range r.Header.Values("Set-Cookie") {
					if v, ok := strings.CutPrefix(c, name+"="); ok {
						cookie, _, _ = strings.Cut(v, ";")
						require.Equal(t, https, strings.Contains(c, "Secure"))
						require.Contains(t, c, "HttpOnly")
						if https {
							require.Contains(t, c, "Path=/;")
						}
					}
				}
				require.NotEmpty(t, cookie, "%v", r.Header.Values("Set-Cookie"))
				return cookie, u.Query().Get("state")
			}
			for range 100 {
				start() // no limit on starting logins
			}
			var rows, keys int
			require.NoError(t, oe.db.App.QueryRow(ctx, `SELECT (SELECT count(*) FROM auth.oidc_flow), (SELECT count(*) FROM auth.secret)`).Scan(&rows, &keys))
			require.Equal(t, 0, rows, "starting logins stores nothing")
			require.Equal(t, 1, keys, "one key, made once")
			callback := func(cookieName, cookie, state string) int {
				return oe.browser().get("/auth/oidc/callback?code=not-a-code&state="+url.QueryEscape(state),
					map[string]string{"Cookie": cookieName + "=" + cookie}).Status
			}
			cookie, state := start()
			require.Equal(t, http.StatusUnauthorized, callback(name, cookie, state), "accepted, then the code is refused")
			require.Equal(t, http.StatusBadRequest, callback(name, cookie, state+"x"), "another state")
			other, _ := start()
			require.Equal(t, http.StatusBadRequest, callback(name, other, state), "another browser's cookie")
			sealed, err := base64.RawURLEncoding.DecodeString(cookie)
			require.NoError(t, err)
			sealed[len(sealed)/2] ^= 1
			require.Equal(t, http.StatusBadRequest, callback(name, base64.RawURLEncoding.EncodeToString(sealed), state), "altered cookie")
			require.Equal(t, http.StatusBadRequest, oe.browser().get("/auth/oidc/callback?code=c&state="+url.QueryEscape(state), nil).Status, "no cookie")
			key := oe.svc.flowKey
			oe.svc.flowKey = randomBytes(32)
			foreign, foreignState := start()
			oe.svc.flowKey = key
			require.Equal(t, http.StatusBadRequest, callback(name, foreign, foreignState), "sealed with another key")
			require.Equal(t, http.StatusBadRequest, callback(plain, cookie, state), "the cookie under the other name")
			oe.clock.Advance(oidcFlowLifetime + time.Second)
			require.Equal(t, http.StatusBadRequest, callback(name, cookie, state), "too old")
			// A whole login still works.
			r, _ := oe.oidcLogin(oe.browser(), "anne", "/")
			if !https { // the test browser does not send Secure cookies over http
				require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
			}
		})
	}
}

// TestOIDCFlowSeal: another server of the installation (same database)
// opens a flow cookie; a flow dated ahead of the clock is refused; a return
// path that would make the cookie too big is replaced by /.
func TestOIDCFlowSeal(t *testing.T) {
	oe := newOIDCEnv(t)
	ctx := context.Background()
	req := httptest.NewRequest(http.MethodGet, "/auth/oidc/login", nil)
	seal := func(f oidcFlow) *http.Cookie {
		w := httptest.NewRecorder()
		require.NoError(t, oe.svc.sealFlow(ctx, w, req, f))
		cs := w.Result().Cookies()
		require.Len(t, cs, 1)
		require.LessOrEqual(t, len(cs[0].Value), maxFlowCookie)
		return cs[0]
	}
	open := func(svc *Service, c *http.Cookie) (oidcFlow, error) {
		r := httptest.NewRequest(http.MethodGet, "/auth/oidc/callback", nil)
		r.AddCookie(c)
		return svc.openFlow(httptest.NewRecorder(), r)
	}
	other, err := New(oe.db.App, Config{Now: oe.clock.Now})
	require.NoError(t, err)
	f, err := open(other, seal(oidcFlow{State: "s1", Provider: "kommune", Next: "/journal/", Created: oe.clock.Now()}))
	require.NoError(t, err, "another server of the installation")
	require.Equal(t, "s1", f.State)
	require.Equal(t, "/journal/", f.Next)

	_, err = open(oe.svc, seal(oidcFlow{State: "s2", Created: oe.clock.Now().Add(2 * time.Minute)}))
	require.ErrorIs(t, err, errFlowExpired, "dated ahead")

	f, err = open(oe.svc, seal(oidcFlow{State: "s3", Next: "/?" + strings.Repeat("\xff", 1000), Created: oe.clock.Now()}))
	require.NoError(t, err)
	require.Equal(t, "/", f.Next, "a return path escaping to too much")
}
