// Package auth is Molar's identity and access core: the citizen register
// shared by the whole system (municipalities, organisational units, persons,
// custody and care relations), users and roles with per-module permissions,
// access decisions with break-the-glass, local password accounts with
// lock-out and a per-address rate limit, server-side sessions with CSRF
// protection, OpenID Connect login, and the HTTP middleware that denies
// every request by default.
//
// Its tables live in the PostgreSQL schema "auth" (see Migrations). Tables
// holding person data carry tenant_id and are protected by row-level
// security for the runtime role: run queries on them inside
// postgres.InTenant.
//
// CPR numbers and names never go into logs: the CPR type masks itself when
// formatted, and this package logs only ids.
//
// Wiring (cmd/molar):
//
//	// migrations: auth.Migrations() (and audit.Migrations())
//	svc, err := auth.New(appPool, auth.Config{
//		PublicURL: cfg.PublicURL,          // https → Secure cookies, origin check
//		TrustedProxies: cfg.TrustedProxies, // who may set X-Forwarded-For
//		OIDC: []auth.OIDCConfig{…},        // MitID broker, staff directory
//		Notifier: mailer,                  // lock-out / unlock notices
//		LoginPage: shell.LoginPage,        // the web shell's renderer
//		Logger: logger,
//	})
//	r := chi.NewRouter()
//	r.Use(middleware.RequestID) // request id for logs and the audit actor
//	r.Use(svc.Middleware)       // authenticate, CSRF, deny by default
//	svc.Routes(r)               // /login, /logout, /auth/oidc/…, /admin/users/…
//	r.With(svc.Require(auth.PermJournalRead)).Get("/journal/…", h)
//
// Handlers get the user with PrincipalFrom(r.Context()), the form token with
// CSRFToken(r), and decide access to a person's data with Access inside
// postgres.InTenant(ctx, pool, principal.TenantID, …), recording the read
// with audit.Record (BreakGlassReason: decision.Reason).
package auth

import (
	"errors"
	"net/http"
)

// Sentinel errors. Every error this package returns wraps at most one of
// them; StatusOf maps them to HTTP status codes in one place.
var (
	ErrNotFound           = errors.New("auth: not found")
	ErrInvalidCredentials = errors.New("auth: invalid username or password")
	ErrLocked             = errors.New("auth: account locked")
	ErrRateLimited        = errors.New("auth: too many login attempts from this address")
	ErrUnauthenticated    = errors.New("auth: not authenticated")
	ErrForbidden          = errors.New("auth: forbidden")
	ErrCSRF               = errors.New("auth: cross-site request refused")
	ErrConflict           = errors.New("auth: already exists")
	ErrInvalidInput       = errors.New("auth: invalid input")
	ErrInvalidCPR         = errors.New("auth: invalid CPR number")
	ErrWeakPassword       = errors.New("auth: password too short")
	ErrNoRole             = errors.New("auth: no role for this identity")
	ErrSessionExpired     = errors.New("auth: session expired")
	ErrUnavailable        = errors.New("auth: identity provider unavailable")
)

// StatusOf maps an error of this package to an HTTP status code.
func StatusOf(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalidCredentials), errors.Is(err, ErrUnauthenticated), errors.Is(err, ErrSessionExpired):
		return http.StatusUnauthorized
	case errors.Is(err, ErrLocked), errors.Is(err, ErrForbidden), errors.Is(err, ErrCSRF), errors.Is(err, ErrNoRole):
		return http.StatusForbidden
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInvalidInput), errors.Is(err, ErrInvalidCPR), errors.Is(err, ErrWeakPassword):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
