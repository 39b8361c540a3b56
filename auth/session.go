package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cookie names. With Secure cookies the session, login-form and OpenID
// login cookies carry the __Host- prefix (cookieName), which browsers
// accept only from a secure origin, on path /, for no other domain (no
// cookie planted over http or from a sibling domain can pose as them).
const (
	hostPrefix            = "__Host-"
	sessionCookie         = "molar_session"
	secureSessionCookie   = hostPrefix + sessionCookie
	loginCSRFCookie       = "molar_login_csrf"
	secureLoginCSRFCookie = hostPrefix + loginCSRFCookie
	oidcStateCookie       = "molar_oidc_state"
	secureOIDCStateCookie = hostPrefix + oidcStateCookie
)

// Session authentication methods.
const (
	sessionPassword = "password"
	sessionOIDC     = "oidc"
)

// touchEvery limits writes of a session's last use to one per interval.
const touchEvery = 15 * time.Second

// createSession stores a new session for u and returns its id (the cookie
// value; only its SHA-256 is stored).
func (s *Service) createSession(ctx context.Context, u User, method string, source netip.Addr) (string, error) {
	id := randomToken()
	now := s.now()
	idle := s.cfg.IdleTimeout
	if u.Role == RoleCitizen {
		idle = s.cfg.CitizenIdleTimeout
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO auth.session (id_hash, user_id, csrf_token, method, created, last_seen, idle_seconds, expires, source)
		VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)`,
		hashToken(id), u.ID, randomToken(), method, now, int(idle/time.Second), now.Add(s.cfg.AbsoluteTimeout), source.String())
	if err != nil {
		return "", dbErr("create session", err)
	}
	// Housekeeping: drop sessions past their absolute expiry.
	_, _ = s.pool.Exec(ctx, `DELETE FROM auth.session WHERE expires < $1`, now)
	return id, nil
}

// loadSession returns the principal of a session id, or ErrSessionExpired /
// ErrUnauthenticated / ErrLocked.
func (s *Service) loadSession(ctx context.Context, id string) (*Principal, error) {
	if len(id) < 40 || len(id) > 64 {
		return nil, fmt.Errorf("auth: session: %w", ErrUnauthenticated)
	}
	h := hashToken(id)
	var p Principal
	var lastSeen, expires time.Time
	var idle int
	var locked *time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT s.csrf_token, s.last_seen, s.idle_seconds, s.expires,
		       u.id, u.tenant_id, u.username, u.display_name, u.role, COALESCE(u.person_id, 0), u.locked_at
		FROM auth.session s JOIN auth.users u ON u.id = s.user_id WHERE s.id_hash = $1`, h).
		Scan(&p.CSRFToken, &lastSeen, &idle, &expires, &p.UserID, &p.TenantID, &p.Username, &p.DisplayName, &p.Role, &p.PersonID, &locked)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("auth: session: %w", ErrUnauthenticated)
	}
	if err != nil {
		return nil, dbErr("session", err)
	}
	now := s.now()
	if !now.Before(expires) || now.Sub(lastSeen) >= time.Duration(idle)*time.Second {
		_, _ = s.pool.Exec(ctx, `DELETE FROM auth.session WHERE id_hash = $1`, h)
		return nil, fmt.Errorf("auth: session: %w", ErrSessionExpired)
	}
	if locked != nil {
		return nil, fmt.Errorf("auth: session: %w", ErrLocked)
	}
	if now.Sub(lastSeen) >= touchEvery {
		if _, err := s.pool.Exec(ctx, `UPDATE auth.session SET last_seen = $2 WHERE id_hash = $1 AND last_seen < $2`, h, now); err != nil {
			return nil, dbErr("session", err)
		}
	}
	p.Method = MethodSession
	p.sessionHash = h
	return &p, nil
}

func (s *Service) deleteSession(ctx context.Context, h []byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM auth.session WHERE id_hash = $1`, h)
	return dbErr("delete session", err)
}

// DeleteUserSessions ends every session of a user (password change, role
// change, disabling an account).
func (s *Service) DeleteUserSessions(ctx context.Context, userID int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM auth.session WHERE user_id = $1`, userID)
	s.basic.forgetUser(userID)
	return dbErr("delete sessions", err)
}

// secureRequest reports whether cookies for r must be Secure.
func (s *Service) secureRequest(r *http.Request) bool { return s.secure || r.TLS != nil }

// cookieName is the name a cookie is set and read under for r: over TLS
// (or behind an https public URL) only with the __Host- prefix.
func (s *Service) cookieName(r *http.Request, name string) string {
	if s.secureRequest(r) {
		return hostPrefix + name
	}
	return name
}

// sessionID reads the session cookie of r. Over TLS (or behind an https
// public URL) only the __Host- cookie counts: the plain one can be planted
// by anyone who can answer for the host over http (cookies ignore the
// scheme), which would sign the browser into the planter's session.
func (s *Service) sessionID(r *http.Request) string {
	names := []string{secureSessionCookie, sessionCookie}
	if s.secureRequest(r) {
		names = names[:1]
	}
	for _, name := range names {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

func (s *Service) setSessionCookie(w http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r, sessionCookie), Value: id, Path: "/",
		HttpOnly: true, Secure: s.secureRequest(r), SameSite: http.SameSiteLaxMode})
}

func (s *Service) clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	for _, name := range []string{secureSessionCookie, sessionCookie} {
		if _, err := r.Cookie(name); err == nil {
			http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
				HttpOnly: true, Secure: name == secureSessionCookie || s.secureRequest(r), SameSite: http.SameSiteLaxMode})
		}
	}
}

// safeMethod reports whether a method does not change state.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// checkCSRF protects a state-changing request authenticated by the session
// cookie: the session's token must come back in the X-CSRF-Token header or
// (for url-encoded forms) the csrf_token field, and the request must come
// from our own origin.
func (s *Service) checkCSRF(r *http.Request, p *Principal) error {
	if safeMethod(r.Method) {
		return nil
	}
	if !s.sameOrigin(r) {
		return fmt.Errorf("auth: %w: foreign origin", ErrCSRF)
	}
	token := r.Header.Get("X-CSRF-Token")
	if token == "" && isURLEncodedForm(r) {
		// The form is parsed here, before any handler sets its own limit:
		// no form of Molar's comes near 1 MiB (journal text is 20,000
		// characters); larger ones are refused rather than held.
		r.Body = http.MaxBytesReader(nil, r.Body, MaxFormBytes)
		token = r.PostFormValue("csrf_token")
	}
	if token == "" || p.CSRFToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(p.CSRFToken)) != 1 {
		return fmt.Errorf("auth: %w: missing or wrong CSRF token", ErrCSRF)
	}
	return nil
}

// MaxFormBytes bounds a URL-encoded form read for its CSRF token.
const MaxFormBytes = 1 << 20

func isURLEncodedForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	for i := 0; i < len(ct); i++ {
		if ct[i] == ';' {
			ct = ct[:i]
			break
		}
	}
	return ct == "application/x-www-form-urlencoded"
}

// expectedOrigin is the origin state-changing requests must come from.
func (s *Service) expectedOrigin(r *http.Request) string {
	if s.origin != "" {
		return s.origin
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// SameOrigin reports whether a browser sent r from Molar's own origin (the
// check state-changing session requests pass); requests from clients that
// are not browsers (no Sec-Fetch-Site, Origin or Referer) pass too.
func (s *Service) SameOrigin(r *http.Request) bool { return s.sameOrigin(r) }

// sameOrigin checks Sec-Fetch-Site, Origin and Referer when the browser sends
// them. Requests without any of them (older clients, scripts) rely on the token.
func (s *Service) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return false
	}
	want := s.expectedOrigin(r)
	if o := r.Header.Get("Origin"); o != "" {
		return o == want
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return originOf(ref) == want
	}
	return true
}

func originOf(raw string) string {
	u, err := parseURL(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
