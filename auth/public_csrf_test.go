package auth

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"
)

// A state-changing request to a public path that a handler treats as
// authenticated (RequireAuth under a public prefix) needs the session's
// CSRF token like any other: without it the request is anonymous.
func TestCSRFOnPublicPathWithSession(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PublicPaths = []string{"/pub/"} })
	acted := 0
	e.srv.Config.Handler.(chi.Router).With(e.svc.RequireAuth).Post("/pub/act", func(w http.ResponseWriter, r *http.Request) {
		acted++
		w.WriteHeader(http.StatusNoContent)
	})
	e.user("tandlaege", RoleDentist, goodPassword, 0)
	b := e.browser()
	b.mustLogin("tandlaege", goodPassword)

	// A cross-site form post carries the cookie (a top-level POST to a Lax
	// cookie's site does not, but a same-site attacker or an older browser
	// may) and no token.
	r := b.postForm("/pub/act", url.Values{"x": {"1"}}, map[string]string{"Origin": "https://evil.example"})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	r = b.postForm("/pub/act", url.Values{"x": {"1"}}, nil)
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.Zero(t, acted)

	// With the token it works; a GET needs none.
	r = b.postForm("/pub/act", url.Values{"csrf_token": {b.csrf}}, nil)
	require.Equal(t, http.StatusNoContent, r.Status)
	require.Equal(t, 1, acted)

	// The login form, public, keeps working for a browser with a session.
	require.Equal(t, http.StatusSeeOther, b.login("tandlaege", goodPassword, "/").Status)
}
