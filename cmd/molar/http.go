package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/go-chi/chi/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/viewer/web"
)

var registerOnce sync.Once

// loginErrorKeys maps auth's login error keys to catalog keys.
var loginErrorKeys = map[string]string{
	"invalid_credentials": "login.error.invalid",
	"locked":              "login.error.locked",
	"rate_limited":        "login.error.rate",
	"oidc_failed":         "login.error.oidc",
	"assurance":           "login.error.assurance",
	"session_expired":     "login.error.expired",
	"csrf":                "error.csrf",
	"no_role":             "error.forbidden",
	"unavailable":         "error.unavailable",
	"error":               "error.title",
}

// loginView is what templates/login.html reads.
type loginView struct {
	Error     string
	Username  string
	Next      string
	CSRF      string
	Providers []auth.LoginProvider
	Notices   []auth.Notice
}

// mountAuth builds the auth service, puts its middleware first (deny by
// default) and mounts login, logout and OIDC routes.
func (s *server) mountAuth(ctx context.Context, r chi.Router) error {
	cfg := auth.Config{
		PublicURL:          s.cfg.PublicURL,
		IdleTimeout:        s.cfg.SessionIdle,
		CitizenIdleTimeout: s.cfg.CitizenIdle,
		AbsoluteTimeout:    s.cfg.SessionMax,
		MaxFailedLogins:    s.cfg.LockoutAttempts,
		FailureWindow:      s.cfg.LockoutWindow,
		Logger:             s.log,
		LoginPage: func(w http.ResponseWriter, req *http.Request, d auth.LoginPageData) {
			status := d.Status
			if status == 0 {
				status = http.StatusOK
			}
			v := loginView{Username: d.Username, Next: d.Next, CSRF: d.CSRFToken, Notices: d.Notices}
			if d.Error != "" {
				v.Error = loginErrorKeys[d.Error]
				if v.Error == "" {
					v.Error = "error.title"
				}
			}
			if d.OIDCEnabled {
				v.Providers = d.Providers
			}
			s.shell.Render(w, req, status, "login", v)
		},
	}
	for _, m := range s.mods {
		if pp, ok := m.(modules.PublicPather); ok {
			for _, p := range pp.PublicPaths() {
				cfg.PublicPaths = append(cfg.PublicPaths, "/m/"+m.Name()+p)
			}
		}
	}
	if s.cfg.OIDCIssuer != "" {
		tenant, err := s.oidcTenant(ctx)
		var tenantFunc func(context.Context) (int64, error)
		if errors.Is(err, errNoTenant) && s.cfg.Demo {
			// The demo creates the municipality once the server is wired.
			tenant, tenantFunc, err = 0, s.oidcTenant, nil
		}
		if err != nil {
			return err
		}
		roles, _ := parseRoleMap(s.cfg.OIDCRoleMap)
		units, _ := parsePairs(s.cfg.OIDCUnitMap, "group=unit name")
		cfg.OIDC = []auth.OIDCConfig{{
			Name: "oidc", Label: "MitID", TenantID: tenant, TenantFunc: tenantFunc,
			Issuer: s.cfg.OIDCIssuer, ClientID: s.cfg.OIDCClientID, ClientSecret: s.cfg.OIDCSecret,
			RedirectURL: s.cfg.publicURL() + "/auth/oidc/callback",
			CPRClaim:    s.cfg.OIDCCPRClaim, RoleClaim: s.cfg.OIDCRoleClaim, RoleMap: roles, UnitMap: units,
			ACRValues: commaList(s.cfg.OIDCACRValues),
		}}
	}
	svc, err := auth.New(s.db.pool, cfg)
	if err != nil {
		return err
	}
	s.auth = svc
	s.shell.UserOf = func(req *http.Request) *web.User {
		p := auth.PrincipalFrom(req.Context())
		if p == nil {
			return nil
		}
		return &web.User{Name: p.DisplayName, Role: p.Role, Can: p.Can}
	}
	s.shell.CSRFToken = auth.CSRFToken
	r.Use(svc.Middleware)
	svc.Routes(r)
	return nil
}

// oidcTenant is the municipality OIDC users belong to: the only one.
func (s *server) oidcTenant(ctx context.Context) (int64, error) {
	var ids []int64
	rows, err := s.db.pool.Query(ctx, `SELECT id FROM auth.tenant ORDER BY id LIMIT 2`)
	if err != nil {
		return 0, fmt.Errorf("OIDC: %w", err)
	}
	for rows.Next() {
		var id int64
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	switch len(ids) {
	case 0:
		return 0, errNoTenant
	case 1:
		return ids[0], nil
	}
	return 0, fmt.Errorf("%w (there are several)", errOneTenant)
}

var (
	errOneTenant = errors.New("invalid setting MOLAR_OIDC_ISSUER (--oidc-issuer): OpenID Connect needs exactly one municipality in the database (create it with molar user add --tenant CODE --tenant-name NAME)")
	errNoTenant  = fmt.Errorf("%w (there is none yet)", errOneTenant)
)

// mountCore mounts the core's own pages.
func (s *server) mountCore(r chi.Router) {
	r.Get("/", func(w http.ResponseWriter, req *http.Request) {
		s.shell.Render(w, req, http.StatusOK, "home", nil)
	})
}
