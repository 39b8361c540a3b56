package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// OIDCConfig configures one OpenID Connect provider: the MitID broker that
// signs citizens in, or the municipality's staff directory.
type OIDCConfig struct {
	// Name identifies the provider in URLs (?provider=); default "oidc", "oidc2" ….
	Name string
	// Label is the button text on the login page (default Name).
	Label string
	// TenantID is the municipality whose users this provider signs in.
	TenantID int64
	// TenantFunc finds it at sign-in instead, when TenantID is 0 (the demo
	// creates the municipality after the server is wired).
	TenantFunc   func(context.Context) (int64, error)
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is this server's callback, e.g. https://molar.kommune.dk/auth/oidc/callback.
	RedirectURL string
	// Scopes to request (default openid, profile).
	Scopes []string
	// CPRClaim names the claim that carries a citizen's CPR number (e.g.
	// "dk:gov:saml:attribute:CprNumberIdentifier" from a MitID broker). A
	// token with it signs in a citizen; empty: the provider has no citizens.
	CPRClaim string
	// RoleClaim names the claim listing the staff user's groups (string or
	// array), RoleMap maps a group to a role. The first group in the claim
	// that maps decides; a staff login that maps to no role is refused.
	RoleClaim string
	RoleMap   map[string]string
	// UnitMap maps a group of RoleClaim to the name of an organisational
	// unit of the tenant: at every staff login the account is made a member
	// of the mapped units its groups name and removed from the mapped units
	// they no longer name. Units no group maps to are left alone (managed
	// with `molar unit member`).
	UnitMap map[string]string
	// UsernameClaim is the claim used as username for new accounts
	// (default "preferred_username"; the subject-derived name when missing
	// or taken).
	UsernameClaim string
	// NameClaim is the display name claim (default "name").
	NameClaim string
	// ACRValues are the assurance levels a sign-in must have (the ID
	// token's acr claim), asked for with acr_values; empty: not checked.
	// A bearer token (ID token or JWT access token) must carry one of them
	// too: an API call is no way around the sign-in's level.
	// Health data needs NSIS Substantial for citizens, e.g.
	// "https://data.gov.dk/concept/core/nsis/loa/Substantial" and
	// ".../High" from a MitID broker.
	ACRValues []string
}

type oidcProvider struct {
	cfg OIDCConfig
	// missingUnits remembers unit names of UnitMap already reported missing.
	missingUnits sync.Map

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

var providerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,30}$`)

func newOIDCProvider(c OIDCConfig, i int) (*oidcProvider, error) {
	if c.Name == "" {
		c.Name = "oidc"
		if i > 0 {
			c.Name = fmt.Sprintf("oidc%d", i+1)
		}
	}
	if !providerNameRE.MatchString(c.Name) {
		return nil, fmt.Errorf("auth: %w: OIDC provider name %q (lower-case letters, digits, - and _)", ErrInvalidInput, c.Name)
	}
	if c.Label == "" {
		c.Label = c.Name
	}
	if c.Issuer == "" || c.ClientID == "" || c.RedirectURL == "" || (c.TenantID == 0 && c.TenantFunc == nil) {
		return nil, fmt.Errorf("auth: %w: OIDC provider %s needs issuer, client id, redirect URL and tenant", ErrInvalidInput, c.Name)
	}
	if c.CPRClaim == "" && c.RoleClaim == "" {
		return nil, fmt.Errorf("auth: %w: OIDC provider %s needs a CPR claim (citizens) or a role claim (staff)", ErrInvalidInput, c.Name)
	}
	for group, role := range c.RoleMap {
		if !ValidRole(role) || role == RoleCitizen {
			return nil, fmt.Errorf("auth: %w: OIDC provider %s maps group %q to unknown or citizen role %q", ErrInvalidInput, c.Name, group, role)
		}
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{oidc.ScopeOpenID, "profile"}
	}
	if c.UsernameClaim == "" {
		c.UsernameClaim = "preferred_username"
	}
	if c.NameClaim == "" {
		c.NameClaim = "name"
	}
	return &oidcProvider{cfg: c}, nil
}

// discover fetches the provider's metadata once (retried on later calls
// after a failure).
func (p *oidcProvider) discover(ctx context.Context, client *http.Client) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(context.WithoutCancel(ctx), client), 15*time.Second)
	defer cancel()
	prov, err := oidc.NewProvider(dctx, p.cfg.Issuer)
	if err != nil {
		return fmt.Errorf("auth: OIDC discovery of %s: %w: %v", p.cfg.Name, ErrUnavailable, err)
	}
	p.provider = prov
	p.verifier = prov.Verifier(&oidc.Config{ClientID: p.cfg.ClientID})
	p.oauth = &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, RedirectURL: p.cfg.RedirectURL,
		Endpoint: prov.Endpoint(), Scopes: p.cfg.Scopes}
	return nil
}

func (s *Service) providerByName(name string) *oidcProvider {
	if name == "" && len(s.oidc) > 0 {
		return s.oidc[0]
	}
	for _, p := range s.oidc {
		if p.cfg.Name == name {
			return p
		}
	}
	return nil
}

func (s *Service) clientCtx(ctx context.Context) context.Context {
	return oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient), s.cfg.HTTPClient)
}

func (s *Service) handleOIDCLogin(w http.ResponseWriter, r *http.Request) {
	next := SafeNext(r.URL.Query().Get("next"))
	p := s.providerByName(r.URL.Query().Get("provider"))
	if p == nil {
		s.renderLogin(w, r, LoginPageData{Status: http.StatusNotFound, Error: "oidc_failed", Next: next})
		return
	}
	if err := p.discover(r.Context(), s.cfg.HTTPClient); err != nil {
		s.log.WarnContext(r.Context(), "OIDC provider unavailable", "provider", p.cfg.Name, "err", err)
		s.renderLogin(w, r, LoginPageData{Status: http.StatusServiceUnavailable, Error: "unavailable", Next: next})
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	// The flow cookie binds the callback to this browser (SameSite=Lax: it
	// comes back on the provider's top-level redirect).
	if err := s.sealFlow(r.Context(), w, r, oidcFlow{State: state, Provider: p.cfg.Name, Nonce: nonce, Verifier: verifier, Next: next, Created: s.now()}); err != nil {
		s.log.ErrorContext(r.Context(), "starting OIDC login failed", "err", err)
		s.renderLogin(w, r, LoginPageData{Status: http.StatusInternalServerError, Error: "error", Next: next})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	if len(p.cfg.ACRValues) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(p.cfg.ACRValues, " ")))
	}
	http.Redirect(w, r, p.oauth.AuthCodeURL(state, opts...), http.StatusFound)
}

func (s *Service) handleOIDCCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fail := func(status int, key, why string, err error) {
		s.log.WarnContext(r.Context(), "OIDC login refused", "reason", why, "err", err)
		s.renderLogin(w, r, LoginPageData{Status: status, Error: key})
	}
	flow, err := s.openFlow(w, r)
	switch {
	case errors.Is(err, errNoFlow), errors.Is(err, errFlowBroken), errors.Is(err, errFlowExpired):
		fail(http.StatusBadRequest, "oidc_failed", err.Error(), nil)
		return
	case err != nil:
		fail(http.StatusServiceUnavailable, "unavailable", "login key unavailable", err)
		return
	}
	state := q.Get("state")
	if state == "" || subtle.ConstantTimeCompare([]byte(flow.State), []byte(state)) != 1 {
		fail(http.StatusBadRequest, "oidc_failed", "state does not match this browser", nil)
		return
	}
	provName, nonce, verifier, next := flow.Provider, flow.Nonce, flow.Verifier, flow.Next
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, "oidc_failed", "provider answered an error", errors.New(truncate(e, 64)))
		return
	}
	p := s.providerByName(provName)
	if p == nil || p.discover(r.Context(), s.cfg.HTTPClient) != nil {
		fail(http.StatusServiceUnavailable, "unavailable", "provider gone", nil)
		return
	}
	ctx := s.clientCtx(r.Context())
	tok, err := p.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		fail(http.StatusUnauthorized, "oidc_failed", "code exchange failed", err)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		fail(http.StatusUnauthorized, "oidc_failed", "no ID token", nil)
		return
	}
	idt, err := p.verifier.Verify(ctx, rawID)
	if err != nil {
		fail(http.StatusUnauthorized, "oidc_failed", "ID token invalid", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		fail(http.StatusUnauthorized, "oidc_failed", "nonce mismatch", nil)
		return
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		fail(http.StatusUnauthorized, "oidc_failed", "ID token claims unreadable", err)
		return
	}
	if acr := claimString(claims, "acr"); len(p.cfg.ACRValues) > 0 && !slices.Contains(p.cfg.ACRValues, acr) {
		fail(http.StatusForbidden, "assurance", "assurance level not accepted", errors.New(truncate(acr, 100)))
		return
	}
	if s.needsUserinfo(p, claims) {
		if ui, err := p.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil && ui.Subject == idt.Subject {
			extra := map[string]any{}
			if ui.Claims(&extra) == nil {
				for k, v := range extra {
					if _, ok := claims[k]; !ok {
						claims[k] = v
					}
				}
			}
		}
	}
	u, err := s.oidcUser(r.Context(), p, idt.Subject, claims, true)
	if err != nil {
		status := StatusOf(err)
		key := messageKey(err)
		if status == http.StatusInternalServerError || key == "error" {
			key = "oidc_failed"
		}
		fail(status, key, "no account for this identity", err)
		return
	}
	if u.Locked() {
		fail(http.StatusForbidden, "locked", "account locked", nil)
		return
	}
	s.audit(withAuditActor(r.Context(), actorOf(r.Context(), u, s.ClientAddr(r))), u.TenantID,
		auditEvent{Action: actionLogin, Object: fmt.Sprintf("auth.user/%d", u.ID), Detail: map[string]any{"method": "oidc", "provider": p.cfg.Name}})
	s.startSession(w, r, u, sessionOIDC, next)
}

// needsUserinfo reports whether claims the mapping needs are missing from
// the ID token (many brokers put them only in the userinfo answer).
func (s *Service) needsUserinfo(p *oidcProvider, claims map[string]any) bool {
	if p.cfg.CPRClaim != "" && claimValue(claims, p.cfg.CPRClaim) == nil && p.cfg.RoleClaim == "" {
		return true
	}
	if p.cfg.RoleClaim != "" && claimValue(claims, p.cfg.RoleClaim) == nil && (p.cfg.CPRClaim == "" || claimValue(claims, p.cfg.CPRClaim) == nil) {
		return true
	}
	return claimValue(claims, p.cfg.NameClaim) == nil
}

// claimValue finds a claim by its full name, or else as a dotted path into
// nested objects ("realm_access.roles").
func claimValue(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	parts := strings.Split(name, ".")
	var cur any = claims
	for _, part := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

func claimString(claims map[string]any, name string) string {
	s, _ := claimValue(claims, name).(string)
	return strings.TrimSpace(s)
}

func claimStrings(claims map[string]any, name string) []string {
	switch v := claimValue(claims, name).(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return v
	}
	return nil
}

// mapRole returns the role of the first group in the claim that RoleMap maps.
func (p *oidcProvider) mapRole(claims map[string]any) string {
	for _, g := range claimStrings(claims, p.cfg.RoleClaim) {
		if role, ok := p.cfg.RoleMap[g]; ok {
			return role
		}
	}
	return ""
}

// oidcUser finds or provisions the account for a verified identity:
// citizens by the CPR claim (person and citizen account made on first
// login), staff by subject with the role the groups map to (updated at each
// login; no role: ErrNoRole).
func (s *Service) oidcUser(ctx context.Context, p *oidcProvider, subject string, claims map[string]any, login bool) (User, error) {
	if subject == "" {
		return User{}, fmt.Errorf("auth: OIDC: %w: no subject", ErrInvalidCredentials)
	}
	issuer := p.cfg.Issuer
	display := claimString(claims, p.cfg.NameClaim)
	given, family := claimString(claims, "given_name"), claimString(claims, "family_name")
	if display == "" {
		display = strings.TrimSpace(given + " " + family)
	}
	tenant := p.cfg.TenantID
	if tenant == 0 {
		var err error
		if tenant, err = p.cfg.TenantFunc(ctx); err != nil {
			return User{}, fmt.Errorf("auth: OIDC: %w", err)
		}
	}
	var u User
	err := postgres.InTenant(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		existing, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM auth.users WHERE tenant_id = $1 AND oidc_issuer = $2 AND oidc_subject = $3`,
			tenant, issuer, subject))
		found := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return dbErr("OIDC user", err)
		}
		if raw := claimString(claims, p.cfg.CPRClaim); p.cfg.CPRClaim != "" && raw != "" {
			cpr, err := ParseCPR(raw)
			if err != nil {
				return fmt.Errorf("auth: OIDC citizen: %w", err)
			}
			person, err := FindPersonByCPR(ctx, tx, cpr)
			if errors.Is(err, ErrNotFound) {
				person, err = CreatePerson(ctx, tx, Person{TenantID: tenant, CPR: cpr, GivenName: given, FamilyName: family,
					Email: claimString(claims, "email")})
			}
			if err != nil {
				return err
			}
			if found {
				if existing.Role != RoleCitizen || existing.PersonID != person.ID {
					// The same subject now carries another CPR number or was staff: refuse rather than guess.
					return fmt.Errorf("auth: OIDC citizen: %w: account does not match the identity", ErrForbidden)
				}
				u = existing
				return nil
			}
			u, err = s.provision(ctx, tx, p, subject, claims, NewUser{TenantID: tenant, DisplayName: display, Role: RoleCitizen,
				PersonID: person.ID, OIDCIssuer: issuer, OIDCSubject: subject})
			return err
		}
		if p.cfg.RoleClaim == "" {
			return fmt.Errorf("auth: OIDC: %w: no CPR claim", ErrNoRole)
		}
		role := p.mapRole(claims)
		if role == "" {
			return fmt.Errorf("auth: OIDC staff: %w", ErrNoRole)
		}
		if found {
			if existing.Role == RoleCitizen {
				return fmt.Errorf("auth: OIDC staff: %w: account is a citizen's", ErrForbidden)
			}
			if existing.Role != role || (display != "" && existing.DisplayName != display) {
				if display == "" {
					display = existing.DisplayName
				}
				if _, err := tx.Exec(ctx, `UPDATE auth.users SET role = $2, display_name = $3 WHERE id = $1`, existing.ID, role, display); err != nil {
					return dbErr("OIDC staff", err)
				}
				existing.Role, existing.DisplayName = role, display
			}
			u = existing
			if !login {
				return nil
			}
			return s.syncUnits(ctx, tx, p, tenant, u.ID, claims)
		}
		u, err = s.provision(ctx, tx, p, subject, claims, NewUser{TenantID: tenant, DisplayName: display, Role: role,
			OIDCIssuer: issuer, OIDCSubject: subject})
		if err != nil {
			return err
		}
		return s.syncUnits(ctx, tx, p, tenant, u.ID, claims)
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// syncUnits brings a staff account's membership of the units UnitMap
// names in line with the groups of this login (see OIDCConfig.UnitMap).
func (s *Service) syncUnits(ctx context.Context, tx pgx.Tx, p *oidcProvider, tenant, userID int64, claims map[string]any) error {
	if len(p.cfg.UnitMap) == 0 {
		return nil
	}
	key := func(name string) string { return strings.ToLower(strings.TrimSpace(name)) }
	managed, want := map[string]bool{}, map[string]bool{}
	for _, name := range p.cfg.UnitMap {
		managed[key(name)] = true
	}
	for _, g := range claimStrings(claims, p.cfg.RoleClaim) {
		if name, ok := p.cfg.UnitMap[g]; ok {
			want[key(name)] = true
		}
	}
	units, err := OrgUnits(ctx, tx, tenant)
	if err != nil {
		return err
	}
	ids, err := UserUnits(ctx, tx, userID)
	if err != nil {
		return err
	}
	found := map[string]bool{}
	for _, u := range units {
		k := key(u.Name)
		if !managed[k] {
			continue
		}
		found[k] = true
		member := slices.Contains(ids, u.ID)
		action := audit.Action("")
		switch {
		case want[k] && !member:
			err, action = AddUserUnit(ctx, tx, userID, u.ID), audit.ActionCreate
		case !want[k] && member:
			err, action = RemoveUserUnit(ctx, tx, userID, u.ID), audit.ActionDelete
		}
		if err != nil {
			return err
		}
		if action != "" {
			// Membership decides whose records the account reaches: logged
			// like any other grant.
			actx := audit.WithActor(ctx, audit.Actor{UserID: userID, Username: "system:oidc-groups", Role: "system", TenantID: tenant})
			if err := audit.Record(actx, tx, audit.Event{Action: action, Object: fmt.Sprintf("auth.user_unit/%d", userID),
				Detail: map[string]any{"org_unit_id": u.ID, "source": "oidc groups"}}); err != nil {
				return err
			}
		}
	}
	for k := range managed {
		if found[k] {
			continue
		}
		if _, warned := p.missingUnits.LoadOrStore(k, true); !warned {
			s.log.WarnContext(ctx, "OIDC unit map names a unit the municipality does not have", "unit", k, "provider", p.cfg.Name)
		}
	}
	return nil
}

// provision creates an OIDC account, with the username claim when it is
// free and a name derived from issuer and subject otherwise. A citizen's
// username never comes from a claim (it could be a CPR number).
func (s *Service) provision(ctx context.Context, tx pgx.Tx, p *oidcProvider, subject string, claims map[string]any, nu NewUser) (User, error) {
	sum := sha256.Sum256([]byte(p.cfg.Issuer + "\x00" + subject))
	derived := "oidc-" + hex.EncodeToString(sum[:8])
	nu.Username = derived
	if nu.Role != RoleCitizen {
		if name := claimString(claims, p.cfg.UsernameClaim); validUsername(name) {
			if _, err := ParseCPR(name); err != nil { // never a CPR number as username
				var taken bool
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM auth.users WHERE lower(username) = lower($1))`, name).Scan(&taken); err != nil {
					return User{}, dbErr("OIDC provision", err)
				}
				if !taken {
					nu.Username = name
				}
			}
		}
	}
	u, err := CreateUser(ctx, tx, nu, nil)
	if err != nil {
		return User{}, err
	}
	s.log.InfoContext(ctx, "account provisioned from OpenID Connect", "user_id", u.ID, "tenant_id", u.TenantID, "role", u.Role, "provider", p.cfg.Name)
	return u, nil
}

// bearerLogin validates a JWT (an ID token or JWT access token issued to our
// client) against the issuer's keys and maps it to an account like a login.
func (s *Service) bearerLogin(ctx context.Context, raw string, source netip.Addr) (*Principal, error) {
	key := limitKey(source)
	now := s.now()
	end, err := s.limiter.Begin(ctx, key, now)
	if errors.Is(err, errLimited) {
		return nil, fmt.Errorf("auth: bearer: %w", ErrRateLimited)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: bearer: %w", err)
	}
	failed := true // also when verifying panics
	defer func() { end(failed) }()
	p, err := s.verifyBearer(ctx, raw)
	failed = errors.Is(err, ErrInvalidCredentials)
	if err != nil {
		if errors.Is(err, ErrInvalidCredentials) {
			s.log.InfoContext(ctx, "bearer token refused", "source", source.String(), "err", err)
		}
		return nil, err
	}
	return p, nil
}

func (s *Service) verifyBearer(ctx context.Context, raw string) (*Principal, error) {
	iss := unverifiedIssuer(raw)
	var prov *oidcProvider
	for _, p := range s.oidc {
		if strings.TrimSuffix(p.cfg.Issuer, "/") == strings.TrimSuffix(iss, "/") {
			prov = p
			break
		}
	}
	if prov == nil {
		return nil, fmt.Errorf("auth: bearer: %w: unknown issuer", ErrInvalidCredentials)
	}
	if err := prov.discover(ctx, s.cfg.HTTPClient); err != nil {
		return nil, err
	}
	tok, err := prov.verifier.Verify(s.clientCtx(ctx), raw)
	if err != nil {
		return nil, fmt.Errorf("auth: bearer: %w: %v", ErrInvalidCredentials, err)
	}
	claims := map[string]any{}
	if err := tok.Claims(&claims); err != nil {
		return nil, fmt.Errorf("auth: bearer: %w: %v", ErrInvalidCredentials, err)
	}
	if acr := claimString(claims, "acr"); len(prov.cfg.ACRValues) > 0 && !slices.Contains(prov.cfg.ACRValues, acr) {
		return nil, fmt.Errorf("auth: bearer: %w: assurance level %q not accepted", ErrForbidden, truncate(acr, 100))
	}
	// An API token maps to the account as at its last interactive login:
	// memberships follow the directory at logins, not at every request.
	u, err := s.oidcUser(ctx, prov, tok.Subject, claims, false)
	if err != nil {
		return nil, err
	}
	if u.Locked() {
		return nil, fmt.Errorf("auth: bearer: %w", ErrLocked)
	}
	return u.Principal(MethodBearer), nil
}

// unverifiedIssuer reads the iss claim of a JWT without verifying it, only
// to pick the provider whose keys then verify it.
func unverifiedIssuer(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Iss
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
