package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

type principalKey struct{}

// PrincipalFrom returns the request's authenticated principal, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// WithPrincipal returns ctx carrying p, and an audit actor for p when ctx
// has none. Middleware does this; tests and background jobs acting for a
// user may too.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return ensureActor(context.WithValue(ctx, principalKey{}, p), p)
}

// CSRFToken returns the token that forms of the request's session must send
// back (field csrf_token, or header X-CSRF-Token from scripts).
func CSRFToken(r *http.Request) string {
	if p := PrincipalFrom(r.Context()); p != nil {
		return p.CSRFToken
	}
	return ""
}

func requestIDFrom(ctx context.Context) string { return middleware.GetReqID(ctx) }

// ClientAddr returns the request's source address as the service sees it
// (X-Forwarded-For honoured only from trusted proxies).
func (s *Service) ClientAddr(r *http.Request) netip.Addr { return clientAddr(r, s.cfg.TrustedProxies) }

// Middleware authenticates every request (Authorization: Basic or Bearer,
// else the session cookie), puts the Principal and the audit actor in the
// context, enforces CSRF protection on state-changing requests authenticated
// by cookie, and denies by default: a request without a principal reaches
// only the public paths; others get 401 or, from a browser, a redirect to
// the login page. Mount it first, before every route.
func (s *Service) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		public := s.isPublic(r)
		source := s.ClientAddr(r)
		var p *Principal
		var err error
		expired := false
		if authz := r.Header.Get("Authorization"); authz != "" && !public {
			p, err = s.authenticateHeader(r.Context(), authz, source)
			if err != nil {
				s.refuseHeader(w, r, err)
				return
			}
		} else if id := s.sessionID(r); id != "" {
			p, err = s.loadSession(r.Context(), id)
			if err != nil {
				if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrSessionExpired) && !errors.Is(err, ErrLocked) {
					s.log.ErrorContext(r.Context(), "loading session failed", "err", err)
					http.Error(w, "internal error", http.StatusInternalServerError)
					return
				}
				s.clearSessionCookie(w, r)
				expired = errors.Is(err, ErrSessionExpired)
				p = nil
			}
			if p != nil {
				if err := s.checkCSRF(r, p); err != nil {
					if public {
						// A public path serves anonymous requests; one
						// that fails the check must not act for the
						// session (e.g. RequireAuth under a public prefix).
						p = nil
					} else {
						s.log.WarnContext(r.Context(), "request refused", "reason", err.Error(), "user_id", p.UserID, "method", r.Method, "path", r.URL.Path)
						writeError(w, r, http.StatusForbidden, "csrf")
						return
					}
				}
			}
		}
		ctx := r.Context()
		if p != nil {
			ctx = context.WithValue(ctx, principalKey{}, p)
			ctx = withAuditActor(ctx, auditActor{UserID: p.UserID, Username: p.Username, Role: p.Role, TenantID: p.TenantID,
				RequestID: requestIDFrom(ctx), SourceAddr: addrString(source)})
		} else if !public {
			if expired && wantsHTML(r) {
				http.Redirect(w, r, "/login?error=session_expired&next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.deny(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticateHeader checks an Authorization header (Basic or Bearer).
func (s *Service) authenticateHeader(ctx context.Context, authz string, source netip.Addr) (*Principal, error) {
	scheme, cred, _ := strings.Cut(authz, " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "basic":
		r := &http.Request{Header: http.Header{"Authorization": {authz}}}
		username, password, ok := r.BasicAuth()
		if !ok {
			return nil, ErrInvalidCredentials
		}
		u, err := s.basicLogin(ctx, username, password, source)
		if err != nil {
			return nil, err
		}
		return u.Principal(MethodBasic), nil
	case "bearer":
		return s.bearerLogin(ctx, cred, source)
	}
	return nil, ErrInvalidCredentials
}

// Principal is the account acting, authenticated by method (MethodSession,
// MethodBasic, MethodBearer): for requests, and for the work of an account
// signed in elsewhere (a DICOM association).
func (u User) Principal(method string) *Principal {
	return &Principal{UserID: u.ID, TenantID: u.TenantID, Username: u.Username, DisplayName: u.DisplayName,
		Role: u.Role, PersonID: u.PersonID, Method: method}
}

func (s *Service) refuseHeader(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusOf(err)
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.LoginFailureEvery.Seconds()+0.5)))
		writeError(w, r, status, "rate_limited")
	case http.StatusUnauthorized:
		s.challenge(w, r)
		writeError(w, r, status, "invalid_credentials")
	case http.StatusForbidden:
		writeError(w, r, status, messageKey(err))
	case http.StatusServiceUnavailable:
		writeError(w, r, status, "unavailable")
	default:
		if status >= 500 {
			s.log.ErrorContext(r.Context(), "authentication failed", "err", err)
			writeError(w, r, http.StatusInternalServerError, "error")
			return
		}
		writeError(w, r, status, messageKey(err))
	}
}

func (s *Service) challenge(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/dicomweb") || strings.HasPrefix(r.URL.Path, "/wado") {
		w.Header().Set("WWW-Authenticate", `Basic realm="Molar", charset="UTF-8"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="Molar"`)
	}
}

// isPublic reports whether r's path is reachable without authentication.
// Paths that are not in clean form are never public.
func (s *Service) isPublic(r *http.Request) bool {
	p := r.URL.Path
	if p == "" || p[0] != '/' || path.Clean(p) != p && path.Clean(p)+"/" != p || strings.Contains(r.URL.RawPath, "%2") {
		return false
	}
	for _, pub := range s.public {
		if strings.HasSuffix(pub, "/") {
			if strings.HasPrefix(p, pub) {
				return true
			}
		} else if p == pub {
			return true
		}
	}
	return false
}

// wantsHTML reports whether the request comes from a browser navigating
// (it gets a login redirect rather than 401).
func wantsHTML(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	if strings.HasPrefix(p, "/dicomweb") || strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/wado") {
		return false
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// deny answers an unauthenticated request: 401 for APIs, JSON and DICOMweb,
// a redirect to /login?next=… for browsers.
func (s *Service) deny(w http.ResponseWriter, r *http.Request) {
	if wantsHTML(r) {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	s.challenge(w, r)
	writeError(w, r, http.StatusUnauthorized, "unauthenticated")
}

// RequirePermission is middleware for screens outside this package: a
// request whose principal lacks perm gets deny (a Forbidden page of the
// screen's shell), any other goes on.
func RequirePermission(perm string, deny func(http.ResponseWriter, *http.Request)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := PrincipalFrom(r.Context()); p == nil || !p.Can(perm) {
				deny(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequireAuth denies requests without a principal (Middleware already does
// for non-public paths; use it on routes under a public prefix).
func (s *Service) RequireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if PrincipalFrom(r.Context()) == nil {
			s.deny(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Require returns middleware that lets through only principals whose role
// has perm: 401 (or a login redirect) without a principal, 403 without the
// permission.
func (s *Service) Require(perm string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := PrincipalFrom(r.Context())
			if p == nil {
				s.deny(w, r)
				return
			}
			if !p.Can(perm) {
				writeError(w, r, http.StatusForbidden, "forbidden")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// writeError answers with a small JSON or text body naming a message key.
func writeError(w http.ResponseWriter, r *http.Request, status int, key string) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "json") || strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": key})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(key + "\n"))
}

// messageKey names an error for the login page and JSON answers.
func messageKey(err error) string {
	switch {
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, ErrLocked):
		return "locked"
	case errors.Is(err, ErrInvalidCredentials):
		return "invalid_credentials"
	case errors.Is(err, ErrNoRole):
		return "no_role"
	case errors.Is(err, ErrCSRF):
		return "csrf"
	case errors.Is(err, ErrSessionExpired):
		return "session_expired"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	}
	return "error"
}

// SafeNext returns next when it is a local path ("/…", not "//…" nor
// "/\…", no scheme or host), else "/". It prevents open redirects.
func SafeNext(next string) string {
	if next == "" || len(next) > 2000 || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	return next
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }

// LoginPageData is what the login page shows.
type LoginPageData struct {
	// Status is the HTTP status the page is sent with (200, 401, 403, 429 …).
	Status int
	// Error is a message key: "", "invalid_credentials", "locked",
	// "rate_limited", "csrf", "no_role", "oidc_failed", "unavailable",
	// "session_expired", "error".
	Error    string
	Username string
	// Next is the local path to return to after login (already made safe).
	Next string
	// CSRFToken goes into the form's csrf_token field.
	CSRFToken string
	// OIDCEnabled tells whether to show the OpenID Connect buttons (Providers).
	OIDCEnabled bool
	Providers   []LoginProvider
	// Notices are shown after a login (account was locked, unlocked …),
	// with a link to Next.
	Notices []Notice
}

// LoginProvider is one OpenID Connect button.
type LoginProvider struct {
	Name, Label string
	// URL starts the login (GET), carrying next.
	URL string
}

var defaultLoginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Molar – log in</title></head>
<body><main>
{{if .Notices}}<h1>Notices</h1><ul>{{range .Notices}}<li class="notice" data-kind="{{.Kind}}">{{.Kind}} {{.Created.Format "2006-01-02 15:04"}}</li>{{end}}</ul><p><a href="{{.Next}}">Continue</a></p>
{{else}}<h1>Log in</h1>
{{if .Error}}<p role="alert" class="error" data-error="{{.Error}}">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{{.CSRFToken}}"><input type="hidden" name="next" value="{{.Next}}">
<label>Username <input name="username" value="{{.Username}}" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button></form>
{{if .OIDCEnabled}}{{range .Providers}}<p><a class="oidc" href="{{.URL}}">{{.Label}}</a></p>{{end}}{{end}}
{{end}}</main></body></html>`))

// DefaultLoginPage is a minimal login page (the web shell supplies the real one).
func DefaultLoginPage(w http.ResponseWriter, r *http.Request, data LoginPageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if data.Status != 0 {
		w.WriteHeader(data.Status)
	}
	_ = defaultLoginTemplate.Execute(w, data)
}

// statusWriter makes the login page go out with the status chosen here,
// whatever the renderer writes.
type statusWriter struct {
	http.ResponseWriter
	status  int
	written bool
}

func (sw *statusWriter) WriteHeader(int) {
	if !sw.written {
		sw.written = true
		sw.ResponseWriter.WriteHeader(sw.status)
	}
}

func (sw *statusWriter) Write(b []byte) (int, error) {
	sw.WriteHeader(0)
	return sw.ResponseWriter.Write(b)
}

func (s *Service) renderLogin(w http.ResponseWriter, r *http.Request, data LoginPageData) {
	if data.Status == 0 {
		data.Status = http.StatusOK
	}
	data.Next = SafeNext(data.Next)
	if data.CSRFToken == "" {
		data.CSRFToken = s.loginCSRF(w, r)
	}
	for _, p := range s.oidc {
		data.OIDCEnabled = true
		data.Providers = append(data.Providers, LoginProvider{Name: p.cfg.Name, Label: p.cfg.Label,
			URL: "/auth/oidc/login?provider=" + url.QueryEscape(p.cfg.Name) + "&next=" + url.QueryEscape(data.Next)})
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	if w.Header().Get("Content-Security-Policy") == "" { // keep the shell's stricter policy
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	}
	s.cfg.LoginPage(&statusWriter{ResponseWriter: w, status: data.Status}, r, data)
}

// loginCSRF returns the login form's token (double-submit cookie),
// setting the cookie when the browser has none.
func (s *Service) loginCSRF(w http.ResponseWriter, r *http.Request) string {
	name := s.cookieName(r, loginCSRFCookie)
	if c, err := r.Cookie(name); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: name, Value: tok, Path: "/", HttpOnly: true,
		Secure: s.secureRequest(r), SameSite: http.SameSiteStrictMode})
	return tok
}

func (s *Service) loginCSRFOK(r *http.Request) bool {
	c, err := r.Cookie(s.cookieName(r, loginCSRFCookie))
	if err != nil || c.Value == "" {
		return false
	}
	form := r.PostFormValue("csrf_token")
	return s.sameOrigin(r) && subtle.ConstantTimeCompare([]byte(form), []byte(c.Value)) == 1
}

// Routes mounts the login, logout, OpenID Connect and admin unlock handlers:
//
//	GET  /login                     login page (LoginPage)
//	POST /login                     password login (form: username, password, next, csrf_token)
//	GET  /login/notices             notices after login, then a link to next
//	POST /logout                    ends the session (CSRF-checked)
//	GET  /auth/oidc/login           starts OpenID Connect (?provider=&next=)
//	GET  /auth/oidc/callback        the redirect URL registered at the provider
//	POST /admin/users/{id}/unlock   unlocks an account (admin.users)
//	GET  /admin/users/locked        the municipality's locked accounts, JSON (admin.users)
//
// Mount Middleware on the router first.
func (s *Service) Routes(r chi.Router) {
	r.Get("/login", s.handleLoginPage)
	r.Post("/login", s.handleLogin)
	r.Get("/login/notices", s.handleNotices)
	r.Post("/logout", s.handleLogout)
	r.Get("/auth/oidc/login", s.handleOIDCLogin)
	r.Get("/auth/oidc/callback", s.handleOIDCCallback)
	r.With(s.Require(PermAdminUsers)).Post("/admin/users/{id}/unlock", s.handleUnlock)
	r.With(s.Require(PermAdminUsers)).Get("/admin/users/locked", s.handleLocked)
}

// handleLocked lists the admin's municipality's locked accounts (JSON).
func (s *Service) handleLocked(w http.ResponseWriter, r *http.Request) {
	p := PrincipalFrom(r.Context())
	users, err := s.LockedUsers(r.Context(), p.TenantID)
	if err != nil {
		s.log.ErrorContext(r.Context(), "listing locked accounts failed", "err", err)
		writeError(w, r, http.StatusInternalServerError, "error")
		return
	}
	type item struct {
		ID          int64     `json:"id"`
		Username    string    `json:"username"`
		DisplayName string    `json:"display_name"`
		Role        string    `json:"role"`
		LockedAt    time.Time `json:"locked_at"`
	}
	out := make([]item, 0, len(users))
	for _, u := range users {
		out = append(out, item{u.ID, u.Username, u.DisplayName, u.Role, u.LockedAt})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Service) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	data := LoginPageData{Next: r.URL.Query().Get("next")}
	if e := r.URL.Query().Get("error"); e == "session_expired" {
		data.Error = e
	}
	s.renderLogin(w, r, data)
}

func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, r, LoginPageData{Status: http.StatusBadRequest, Error: "error"})
		return
	}
	username := strings.TrimSpace(r.PostFormValue("username"))
	data := LoginPageData{Username: username, Next: r.PostFormValue("next")}
	if !s.loginCSRFOK(r) {
		data.Status, data.Error = http.StatusForbidden, "csrf"
		s.renderLogin(w, r, data)
		return
	}
	source := s.ClientAddr(r)
	u, err := s.PasswordLogin(r.Context(), username, r.PostFormValue("password"), source)
	if err != nil {
		data.Status, data.Error = StatusOf(err), messageKey(err)
		if data.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.LoginFailureEvery.Seconds()+0.5)))
		}
		if data.Status >= 500 {
			s.log.ErrorContext(r.Context(), "login failed", "err", err)
		}
		s.renderLogin(w, r, data)
		return
	}
	s.startSession(w, r, u, sessionPassword, data.Next)
}

// startSession replaces any session of the browser with a new one for u and
// redirects to next (via the notices page when the user has notices).
func (s *Service) startSession(w http.ResponseWriter, r *http.Request, u User, method, next string) {
	if old := s.sessionID(r); old != "" {
		_ = s.deleteSession(r.Context(), hashToken(old))
	}
	id, err := s.createSession(r.Context(), u, method, s.ClientAddr(r))
	if err != nil {
		s.log.ErrorContext(r.Context(), "creating session failed", "err", err)
		s.renderLogin(w, r, LoginPageData{Status: http.StatusInternalServerError, Error: "error"})
		return
	}
	s.setSessionCookie(w, r, id)
	next = SafeNext(next)
	var pending int
	_ = s.pool.QueryRow(r.Context(), `SELECT count(*) FROM auth.notice WHERE user_id = $1 AND shown_at IS NULL`, u.ID).Scan(&pending)
	if pending > 0 {
		next = "/login/notices?next=" + url.QueryEscape(next)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Service) handleNotices(w http.ResponseWriter, r *http.Request) {
	p := PrincipalFrom(r.Context())
	if p == nil {
		s.deny(w, r)
		return
	}
	notices, err := s.TakeNotices(r.Context(), p.UserID)
	if err != nil {
		s.log.ErrorContext(r.Context(), "reading notices failed", "err", err)
	}
	next := SafeNext(r.URL.Query().Get("next"))
	if len(notices) == 0 {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, LoginPageData{Next: next, Notices: notices, Username: p.Username})
}

func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) {
	p := PrincipalFrom(r.Context())
	if p != nil && len(p.sessionHash) > 0 {
		if err := s.deleteSession(r.Context(), p.sessionHash); err != nil {
			s.log.ErrorContext(r.Context(), "logout failed", "err", err)
			writeError(w, r, http.StatusInternalServerError, "error")
			return
		}
		s.audit(r.Context(), p.TenantID, auditEvent{Action: actionLogout, Object: "auth.user/" + strconv.FormatInt(p.UserID, 10)})
	}
	s.clearSessionCookie(w, r)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Clear-Site-Data", `"cache", "storage"`)
	if strings.Contains(r.Header.Get("Accept"), "json") {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Service) handleUnlock(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, r, http.StatusBadRequest, "error")
		return
	}
	if err := s.Unlock(r.Context(), PrincipalFrom(r.Context()), id); err != nil {
		status := StatusOf(err)
		if status >= 500 {
			s.log.ErrorContext(r.Context(), "unlock failed", "err", err)
		}
		writeError(w, r, status, messageKey(err))
		return
	}
	if next := r.PostFormValue("next"); next != "" {
		http.Redirect(w, r, SafeNext(next), http.StatusSeeOther)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
