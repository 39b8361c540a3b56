package auth

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/stretchr/testify/require"
)

const goodPassword = "correct horse battery"

func TestPasswordLoginAndDenyByDefault(t *testing.T) {
	e := newEnv(t, nil)
	u := e.user("tandlaege1", RoleDentist, goodPassword, 0)

	anon := e.browser()
	// Anonymous: APIs get 401, browsers a login redirect, public paths pass.
	r := anon.get("/api/me", map[string]string{"Accept": "application/json"})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.Contains(t, r.Body, "unauthenticated")
	r = anon.get("/dicomweb/studies", map[string]string{"Accept": "application/dicom+json"})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.Contains(t, r.Header.Get("WWW-Authenticate"), "Basic")
	r = anon.get("/journal?tab=2", map[string]string{"Accept": "text/html,application/xhtml+xml"})
	require.Equal(t, http.StatusSeeOther, r.Status)
	require.Equal(t, "/login?next="+url.QueryEscape("/journal?tab=2"), r.Header.Get("Location"))
	require.Equal(t, http.StatusOK, anon.get("/healthz", nil).Status)
	require.Equal(t, http.StatusOK, anon.get("/static/app.js", nil).Status)
	require.Equal(t, http.StatusUnauthorized, anon.get("/static/../api/me", nil).Status, "unclean paths are never public")
	require.Equal(t, http.StatusUnauthorized, anon.get("/login/extra/", nil).Status, "RequireAuth under a public prefix")
	require.Equal(t, http.StatusUnauthorized, anon.do(http.MethodPost, "/logout", nil, nil).Status)

	// Wrong password, unknown user: the same answer.
	r = anon.login("tandlaege1", "wrong password!", "/journal")
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.Equal(t, "invalid_credentials", errorKey(r.Body))
	require.Contains(t, r.Body, `value="tandlaege1"`)
	r = anon.login("nobody", "wrong password!", "/journal")
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.Equal(t, "invalid_credentials", errorKey(r.Body))

	// Success: a session cookie with the right attributes and a redirect to next.
	r = anon.login("TandLaege1", goodPassword, "/journal?tab=2")
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	require.Equal(t, "/journal?tab=2", r.Header.Get("Location"))
	var cookie string
	for _, c := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, sessionCookie+"=") {
			cookie = c
		}
	}
	require.NotEmpty(t, cookie)
	require.Contains(t, cookie, "HttpOnly")
	require.Contains(t, cookie, "SameSite=Lax")
	require.Contains(t, cookie, "Path=/")
	require.NotContains(t, cookie, "Secure", "plain HTTP without an https public URL")
	status, me := anon.me()
	require.Equal(t, http.StatusOK, status)
	require.EqualValues(t, u.ID, me["user_id"])
	require.Equal(t, RoleDentist, me["role"])
	require.Equal(t, MethodSession, me["method"])

	// Only the SHA-256 of the session id is stored.
	id := strings.TrimPrefix(strings.SplitN(cookie, ";", 2)[0], sessionCookie+"=")
	require.GreaterOrEqual(t, len(id), 43, "256-bit id")
	var n int
	require.NoError(t, e.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM auth.session WHERE id_hash = $1`, hashToken(id)).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, e.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM auth.session WHERE encode(id_hash, 'escape') LIKE '%' || $1 || '%'`, id[:20]).Scan(&n))
	require.Zero(t, n)

	// Open redirects are refused.
	b := e.browser()
	r = b.login("tandlaege1", goodPassword, "//evil.example/x")
	require.Equal(t, http.StatusSeeOther, r.Status)
	require.Equal(t, "/", r.Header.Get("Location"))
	b = e.browser()
	r = b.login("tandlaege1", goodPassword, "https://evil.example/")
	require.Equal(t, "/", r.Header.Get("Location"))

	// The login form itself is CSRF-protected (double-submit token + origin).
	b = e.browser()
	r = b.postForm("/login", url.Values{"username": {"tandlaege1"}, "password": {goodPassword}}, nil)
	require.Equal(t, http.StatusForbidden, r.Status)
	require.Equal(t, "csrf", errorKey(r.Body))
	page := b.get("/login", nil)
	tok := csrfFieldRE.FindStringSubmatch(page.Body)[1]
	r = b.postForm("/login", url.Values{"username": {"tandlaege1"}, "password": {goodPassword}, "csrf_token": {tok}},
		map[string]string{"Origin": "https://evil.example"})
	require.Equal(t, http.StatusForbidden, r.Status)
}

func TestSecureCookieBehindHTTPSPublicURL(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PublicURL = "https://molar.example.dk" })
	e.user("sikker", RoleDentist, goodPassword, 0)
	b := e.browser()
	page := b.get("/login", nil)
	tok := csrfFieldRE.FindStringSubmatch(page.Body)[1]
	r := b.postForm("/login", url.Values{"username": {"sikker"}, "password": {goodPassword}, "csrf_token": {tok}},
		map[string]string{"Origin": "https://molar.example.dk"})
	// The jar does not send a Secure cookie over http, so check the header.
	if r.Status == http.StatusForbidden {
		t.Fatalf("login refused: %s", r.Body)
	}
	var found bool
	for _, c := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, secureSessionCookie+"=") {
			found = true
			require.Contains(t, c, "Secure")
			require.Contains(t, c, "HttpOnly")
			require.Contains(t, c, "SameSite=Lax")
		}
	}
	require.True(t, found, "%v", r.Header.Values("Set-Cookie"))
}

func TestLockOutAfterThreeFailuresAndAdminUnlock(t *testing.T) {
	e := newEnv(t, nil)
	victim := e.user("assistent", RoleDentalAssistant, goodPassword, 0)
	e.user("klinikadmin", RoleClinicAdmin, goodPassword, 0)
	b := e.browser()

	// Failures older than 24 hours do not count.
	for range 2 {
		require.Equal(t, http.StatusUnauthorized, b.login("assistent", "wrong password!", "/").Status)
	}
	e.clock.Advance(25 * time.Hour)
	require.Equal(t, http.StatusUnauthorized, b.login("assistent", "wrong password!", "/").Status)
	require.Equal(t, http.StatusSeeOther, b.login("assistent", goodPassword, "/").Status, "only 1 failure within 24 h")

	// A success clears failures; three within 24 hours lock.
	for i := range 3 {
		r := b.login("assistent", "wrong password!", "/")
		require.Equal(t, http.StatusUnauthorized, r.Status, "attempt %d", i+1)
		e.clock.Advance(time.Hour)
	}
	u, err := GetUser(context.Background(), e.db.App, victim.ID)
	require.NoError(t, err)
	require.True(t, u.Locked())

	// Any password now says "locked": the same for the right and a wrong
	// one, so guessing on a locked account cannot tell a hit.
	r := b.login("assistent", goodPassword, "/")
	require.Equal(t, http.StatusForbidden, r.Status)
	require.Equal(t, "locked", errorKey(r.Body))
	r = b.login("assistent", "wrong password!", "/")
	require.Equal(t, http.StatusForbidden, r.Status)
	require.Equal(t, "locked", errorKey(r.Body))
	// HTTP Basic is locked out too.
	basic := e.browser()
	r = basic.do(http.MethodGet, "/api/me", nil, map[string]string{"Authorization": basicAuth("assistent", goodPassword)})
	require.Equal(t, http.StatusForbidden, r.Status)

	// The user was notified once, without the notice carrying names.
	ns := e.notices()
	require.Len(t, ns, 1)
	require.Equal(t, NoticeAccountLocked, ns[0].Notice.Kind)
	require.Equal(t, victim.ID, ns[0].User.ID)

	locked, err := e.svc.LockedUsers(context.Background(), e.tenant.ID)
	require.NoError(t, err)
	require.Len(t, locked, 1)

	// A dentist may not unlock; the clinic admin may (CSRF-checked).
	dentist := e.browser()
	e.user("tandlaege", RoleDentist, goodPassword, 0)
	dentist.mustLogin("tandlaege", goodPassword)
	r = dentist.do(http.MethodPost, "/admin/users/"+itoa(victim.ID)+"/unlock", nil, map[string]string{"X-CSRF-Token": dentist.csrf, "Origin": e.srv.URL})
	require.Equal(t, http.StatusForbidden, r.Status)
	admin := e.browser()
	admin.mustLogin("klinikadmin", goodPassword)
	r = admin.get("/admin/users/locked", map[string]string{"Accept": "application/json"})
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, r.Body, `"username":"assistent"`)
	require.Equal(t, http.StatusForbidden, dentist.get("/admin/users/locked", map[string]string{"Accept": "application/json"}).Status)
	r = admin.do(http.MethodPost, "/admin/users/"+itoa(victim.ID)+"/unlock", nil, map[string]string{"Origin": e.srv.URL})
	require.Equal(t, http.StatusForbidden, r.Status, "no CSRF token")
	r = admin.do(http.MethodPost, "/admin/users/"+itoa(victim.ID)+"/unlock", nil, map[string]string{"X-CSRF-Token": admin.csrf, "Origin": e.srv.URL})
	require.Equal(t, http.StatusNoContent, r.Status, r.Body)
	require.Len(t, e.notices(), 2)
	require.Equal(t, NoticeAccountUnlocked, e.notices()[1].Notice.Kind)

	// The user logs in again and first sees the notices, once.
	r = b.login("assistent", goodPassword, "/journal")
	require.Equal(t, http.StatusSeeOther, r.Status)
	require.Equal(t, "/login/notices?next="+url.QueryEscape("/journal"), r.Header.Get("Location"))
	r = b.get(r.Header.Get("Location"), nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, r.Body, `data-kind="account_locked"`)
	require.Contains(t, r.Body, `data-kind="account_unlocked"`)
	require.Contains(t, r.Body, `href="/journal"`)
	r = b.get("/login/notices?next=/journal", nil)
	require.Equal(t, http.StatusSeeOther, r.Status, "notices are shown once")
	status, _ := b.me()
	require.Equal(t, http.StatusOK, status)
	// Locking an account ends the use of its open sessions.
	_, err = e.db.Admin.Exec(context.Background(), `UPDATE auth.users SET locked_at = now() WHERE id = $1`, victim.ID)
	require.NoError(t, err)
	status, _ = b.me()
	require.Equal(t, http.StatusUnauthorized, status)

	// The audit log holds every attempt on the account, the lock and the unlock.
	rows, err := e.db.Admin.Query(context.Background(), `SELECT action || COALESCE(':' || (detail->>'change'), ''), COALESCE(user_id, 0)
		FROM audit.event WHERE object = $1 ORDER BY id`, "auth.user/"+itoa(victim.ID))
	require.NoError(t, err)
	var actions []string
	for rows.Next() {
		var a string
		var uid int64
		require.NoError(t, rows.Scan(&a, &uid))
		if a == "login_failed" {
			require.Zero(t, uid, "who failed is unknown")
		}
		actions = append(actions, a)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"login_failed", "login_failed", "login_failed", "login", "login_failed", "login_failed", "login_failed",
		"update:locked", "update:unlocked", "login"}, actions)

	// An admin of another municipality cannot unlock (the account does not exist for them).
	other, err := CreateTenant(context.Background(), e.db.App, "0202", "Andenkommune")
	require.NoError(t, err)
	err = e.svc.Unlock(context.Background(), &Principal{UserID: 999, TenantID: other.ID, Role: RoleClinicAdmin}, victim.ID)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestRateLimitPerAddressDoesNotLockAccounts(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.TrustedProxies = loopback(t)
		c.LoginFailureBurst = 2
		c.LoginFailureEvery = time.Minute
	})
	victim := e.user("sygeplejerske", RoleNurse, goodPassword, 0)
	attacker := e.browser()
	attacker.xff = "203.0.113.7"

	require.Equal(t, http.StatusUnauthorized, attacker.login("sygeplejerske", "guess number 1", "/").Status)
	require.Equal(t, http.StatusUnauthorized, attacker.login("sygeplejerske", "guess number 2", "/").Status)
	for range 5 {
		r := attacker.login("sygeplejerske", "guess number 3", "/")
		require.Equal(t, http.StatusTooManyRequests, r.Status)
		require.Equal(t, "rate_limited", errorKey(r.Body))
		require.NotEmpty(t, r.Header.Get("Retry-After"))
	}
	// Even the right password is refused from that address for now …
	require.Equal(t, http.StatusTooManyRequests, attacker.login("sygeplejerske", goodPassword, "/").Status)
	// … and Basic from it too, without counting.
	r := attacker.do(http.MethodGet, "/api/me", nil, map[string]string{"Authorization": basicAuth("sygeplejerske", "guess number 4")})
	require.Equal(t, http.StatusTooManyRequests, r.Status)

	// The account is not locked: only the two checked attempts counted.
	u, err := GetUser(context.Background(), e.db.App, victim.ID)
	require.NoError(t, err)
	require.False(t, u.Locked())
	var failures int
	require.NoError(t, e.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM auth.login_failure WHERE user_id = $1`, victim.ID).Scan(&failures))
	require.Equal(t, 2, failures)

	// The nurse, from the clinic's own address, logs in.
	nurse := e.browser()
	nurse.xff = "198.51.100.20"
	require.Equal(t, http.StatusSeeOther, nurse.login("sygeplejerske", goodPassword, "/").Status)

	// An untrusted peer cannot choose its address with X-Forwarded-For.
	require.Equal(t, "192.0.2.1", clientAddr(&http.Request{RemoteAddr: "192.0.2.1:5555", Header: http.Header{"X-Forwarded-For": {"10.0.0.1"}}}, nil).String())

	// After a minute the attacker's address gets one more attempt.
	e.clock.Advance(time.Minute)
	require.Equal(t, http.StatusUnauthorized, attacker.login("sygeplejerske", "guess number 5", "/").Status)
	require.Equal(t, http.StatusTooManyRequests, attacker.login("sygeplejerske", "guess number 6", "/").Status)
}

// Guessing on a locked account counts against the address like any wrong
// password: the answer is "locked" whatever the password, but each guess
// still costs a password hash, and the address's limit must hold. The
// right password on a locked account is not counted (its owner may retry).
func TestGuessesOnALockedAccountCountAgainstTheAddress(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.TrustedProxies = loopback(t)
		c.LoginFailureBurst = 5
		c.LoginFailureEvery = time.Hour
	})
	e.user("assistent", RoleDentalAssistant, goodPassword, 0)
	owner := e.browser()
	owner.xff = "198.51.100.20"
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, owner.login("assistent", "wrong password!", "/").Status)
	}
	for range 4 {
		require.Equal(t, "locked", errorKey(owner.login("assistent", goodPassword, "/").Body), "the owner's right password")
	}

	attacker := e.browser()
	attacker.xff = "203.0.113.7"
	for i := range 5 {
		r := attacker.login("assistent", "guess number "+strings.Repeat("x", i+1), "/")
		require.Equal(t, "locked", errorKey(r.Body), "guess %d", i)
	}
	r := attacker.login("assistent", "guess number 6", "/")
	require.Equal(t, http.StatusTooManyRequests, r.Status)
	require.Equal(t, "rate_limited", errorKey(r.Body))
}

func TestBasicAuthLockOutAndCSRFExemption(t *testing.T) {
	e := newEnv(t, nil)
	e.user("weasis", RoleDentist, goodPassword, 0)
	c := e.browser()
	good := map[string]string{"Authorization": basicAuth("weasis", goodPassword)}
	r := c.get("/dicomweb/studies", good)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, r.Body, `"method":"basic"`)
	// A state-changing Basic request needs no CSRF token.
	require.Equal(t, http.StatusOK, c.do(http.MethodPost, "/dicomweb/studies", nil, good).Status)
	// Repeated requests are served from the verification cache.
	for range 5 {
		require.Equal(t, http.StatusOK, c.get("/dicomweb/studies", good).Status)
	}
	// Wrong Basic passwords count toward the lock-out.
	for range 3 {
		r := c.get("/dicomweb/studies", map[string]string{"Authorization": basicAuth("weasis", "wrong password!")})
		require.Equal(t, http.StatusUnauthorized, r.Status)
		require.Contains(t, r.Header.Get("WWW-Authenticate"), "Basic")
	}
	require.Equal(t, http.StatusForbidden, c.get("/dicomweb/studies", good).Status, "locked, cache or not")
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, nil)
	e.user("tandlaege", RoleDentist, goodPassword, 0)
	b := e.browser()
	b.mustLogin("tandlaege", goodPassword)
	origin := map[string]string{"Origin": e.srv.URL}

	require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, "/api/notes", nil, origin).Status, "no token")
	require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, "/api/notes", nil, map[string]string{"Origin": e.srv.URL, "X-CSRF-Token": "forged"}).Status)
	require.Equal(t, http.StatusForbidden, b.postForm("/api/notes", url.Values{"csrf_token": {"forged"}}, nil).Status)
	require.Equal(t, http.StatusOK, b.do(http.MethodPost, "/api/notes", nil, map[string]string{"Origin": e.srv.URL, "X-CSRF-Token": b.csrf}).Status)
	require.Equal(t, http.StatusOK, b.postForm("/api/notes", url.Values{"csrf_token": {b.csrf}}, nil).Status)
	require.Equal(t, http.StatusOK, b.do(http.MethodPost, "/api/notes", nil, map[string]string{"X-CSRF-Token": b.csrf}).Status, "no Origin: the token decides")
	// The right token from a foreign origin is refused.
	require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, "/api/notes", nil, map[string]string{"Origin": "https://evil.example", "X-CSRF-Token": b.csrf}).Status)
	require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, "/api/notes", nil, map[string]string{"Referer": "https://evil.example/x", "X-CSRF-Token": b.csrf}).Status)
	require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, "/api/notes", nil, map[string]string{"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": b.csrf}).Status)
	require.Equal(t, http.StatusForbidden, b.do(http.MethodDelete, "/api/notes", nil, origin).Status)
	// Safe methods need none.
	status, _ := b.me()
	require.Equal(t, http.StatusOK, status)

	// A citizen lacks journal.write: 403 even with a valid token.
	parent := e.person("Forælder", date(1985, 3, 3))
	e.user("borger", RoleCitizen, goodPassword, parent.ID)
	c := e.browser()
	c.mustLogin("borger", goodPassword)
	r := c.do(http.MethodPost, "/api/notes", nil, map[string]string{"Origin": e.srv.URL, "X-CSRF-Token": c.csrf})
	require.Equal(t, http.StatusForbidden, r.Status)
	require.Contains(t, r.Body, "forbidden")
}

func TestSessionIdleAndAbsoluteExpiry(t *testing.T) {
	e := newEnv(t, nil)
	e.user("hjemmehjaelper", RoleHomeCarer, goodPassword, 0)
	b := e.browser()
	b.mustLogin("hjemmehjaelper", goodPassword)

	// Idle: 30 minutes for staff, renewed by each request.
	e.clock.Advance(29 * time.Minute)
	status, _ := b.me()
	require.Equal(t, http.StatusOK, status)
	e.clock.Advance(29 * time.Minute)
	status, _ = b.me()
	require.Equal(t, http.StatusOK, status)
	e.clock.Advance(31 * time.Minute)
	r := b.get("/journal", map[string]string{"Accept": "text/html"})
	require.Equal(t, http.StatusSeeOther, r.Status)
	require.Equal(t, "/login?error=session_expired&next=%2Fjournal", r.Header.Get("Location"))
	require.Equal(t, "session_expired", errorKey(b.get(r.Header.Get("Location"), nil).Body))
	status, _ = b.me()
	require.Equal(t, http.StatusUnauthorized, status)
	var n int
	require.NoError(t, e.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM auth.session`).Scan(&n))
	require.Zero(t, n, "expired session deleted")

	// Absolute: 12 hours however active.
	b.mustLogin("hjemmehjaelper", goodPassword)
	for elapsed := time.Duration(0); elapsed < 12*time.Hour-20*time.Minute; elapsed += 20 * time.Minute {
		e.clock.Advance(20 * time.Minute)
		status, _ := b.me()
		require.Equal(t, http.StatusOK, status, "after %s", elapsed+20*time.Minute)
	}
	e.clock.Advance(20 * time.Minute)
	status, _ = b.me()
	require.Equal(t, http.StatusUnauthorized, status)

	// Citizens: 15 minutes idle.
	parent := e.person("Forælder", date(1985, 3, 3))
	e.user("borger", RoleCitizen, goodPassword, parent.ID)
	c := e.browser()
	c.mustLogin("borger", goodPassword)
	e.clock.Advance(14 * time.Minute)
	status, _ = c.me()
	require.Equal(t, http.StatusOK, status)
	e.clock.Advance(16 * time.Minute)
	status, _ = c.me()
	require.Equal(t, http.StatusUnauthorized, status)
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	e.user("terapeut", RoleTherapist, goodPassword, 0)
	b := e.browser()
	b.mustLogin("terapeut", goodPassword)
	u, _ := url.Parse(e.srv.URL)
	old := b.c.Jar.Cookies(u)

	require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, "/logout", nil, map[string]string{"Origin": e.srv.URL}).Status, "logout is CSRF-protected")
	// A form beyond MaxFormBytes is not read for its token (nor held).
	big := url.Values{"padding": {strings.Repeat("x", MaxFormBytes)}, "csrf_token": {b.csrf}}
	require.Equal(t, http.StatusForbidden, b.postForm("/logout", big, nil).Status, "a 1 MiB form")
	r := b.postForm("/logout", url.Values{"csrf_token": {b.csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, r.Status)
	require.Equal(t, "/login", r.Header.Get("Location"))
	status, _ := b.me()
	require.Equal(t, http.StatusUnauthorized, status)
	var n int
	require.NoError(t, e.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM auth.session`).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, e.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM audit.event WHERE action = 'logout' AND username = 'terapeut'`).Scan(&n))
	require.Equal(t, 1, n)

	// Replaying the old cookie does not work.
	replay := e.browser()
	replay.c.Jar.SetCookies(u, old)
	status, _ = replay.me()
	require.Equal(t, http.StatusUnauthorized, status)
}

func TestDefaultArgon2Params(t *testing.T) {
	h, err := HashPassword(goodPassword, nil)
	require.NoError(t, err)
	params, _, _, err := argon2id.DecodeHash(h)
	require.NoError(t, err)
	require.Equal(t, DefaultArgon2Params.Memory, params.Memory)
	ok, err := argon2id.ComparePasswordAndHash(goodPassword, h)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = HashPassword("short", nil)
	require.ErrorIs(t, err, ErrWeakPassword)
}

func TestSetPasswordAndCreateUserValidation(t *testing.T) {
	e := newEnv(t, nil)
	u := e.user("leder", RoleManager, goodPassword, 0)
	ctx := context.Background()
	old := e.browser()
	old.mustLogin("leder", goodPassword)
	require.NoError(t, e.svc.SetPassword(ctx, u.ID, "a new long password"))
	status, _ := old.me()
	require.Equal(t, http.StatusUnauthorized, status, "a new password ends the sessions")
	b := e.browser()
	require.Equal(t, http.StatusUnauthorized, b.login("leder", goodPassword, "/").Status)
	require.Equal(t, http.StatusSeeOther, b.login("leder", "a new long password", "/").Status)
	require.ErrorIs(t, e.svc.SetPassword(ctx, u.ID, "short"), ErrWeakPassword)
	require.ErrorIs(t, e.svc.SetPassword(ctx, 999999, "a long enough one"), ErrNotFound)

	tn, err := EnsureTenant(ctx, e.db.App, "0101", "ignored")
	require.NoError(t, err)
	require.Equal(t, e.tenant.ID, tn.ID)
	_, err = e.svc.CreateUser(ctx, NewUser{TenantID: e.tenant.ID, Username: "LEDER", Role: RoleManager})
	require.ErrorIs(t, err, ErrConflict, "usernames are case-insensitive unique")
	_, err = e.svc.CreateUser(ctx, NewUser{TenantID: e.tenant.ID, Username: "x", Role: "wizard"})
	require.ErrorIs(t, err, ErrInvalidInput)
	_, err = e.svc.CreateUser(ctx, NewUser{TenantID: e.tenant.ID, Username: "with space", Role: RoleNurse})
	require.ErrorIs(t, err, ErrInvalidInput)
	_, err = e.svc.CreateUser(ctx, NewUser{TenantID: e.tenant.ID, Username: "borger", Role: RoleCitizen})
	require.ErrorIs(t, err, ErrInvalidInput, "a citizen account needs its person")
}

func basicAuth(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func itoa(n int64) string { return strconvFormat(n) }

// TestSecureOnlyHostCookie: behind an https public URL only the __Host-
// session cookie authenticates; the same id in the plain cookie (which a
// network attacker can plant over http) does not.
func TestSecureOnlyHostCookie(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PublicURL = "https://molar.example.dk" })
	e.user("sikker2", RoleDentist, goodPassword, 0)
	b := e.browser()
	page := b.get("/login", nil)
	tok := csrfFieldRE.FindStringSubmatch(page.Body)[1]
	r := b.postForm("/login", url.Values{"username": {"sikker2"}, "password": {goodPassword}, "csrf_token": {tok}},
		map[string]string{"Origin": "https://molar.example.dk"})
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	var id string
	for _, c := range r.Header.Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(c, secureSessionCookie+"="); ok {
			id, _, _ = strings.Cut(v, ";")
		}
	}
	require.NotEmpty(t, id)
	me := func(cookie string) int {
		return e.browser().get("/api/me", map[string]string{"Accept": "application/json", "Cookie": cookie}).Status
	}
	require.Equal(t, http.StatusOK, me(secureSessionCookie+"="+id))
	require.Equal(t, http.StatusUnauthorized, me(sessionCookie+"="+id), "the plain cookie is not a session behind https")

	// The login form's double-submit cookie is a __Host- cookie too: a
	// plain one planted over http does not let a forged login through.
	page = e.browser().get("/login", nil)
	var set []string
	for _, c := range page.Header.Values("Set-Cookie") {
		name, _, _ := strings.Cut(c, "=")
		set = append(set, name)
	}
	require.Contains(t, set, secureLoginCSRFCookie)
	require.NotContains(t, set, loginCSRFCookie)
	planted := strings.Repeat("A", 43)
	r = e.browser().postForm("/login", url.Values{"username": {"sikker2"}, "password": {goodPassword}, "csrf_token": {planted}},
		map[string]string{"Origin": "https://molar.example.dk", "Cookie": loginCSRFCookie + "=" + planted})
	require.Equal(t, http.StatusForbidden, r.Status, "planted plain login cookie")
	r = e.browser().postForm("/login", url.Values{"username": {"sikker2"}, "password": {goodPassword}, "csrf_token": {planted}},
		map[string]string{"Origin": "https://molar.example.dk", "Cookie": secureLoginCSRFCookie + "=" + planted})
	require.Equal(t, http.StatusSeeOther, r.Status, "the __Host- cookie and the form agree")
}
