package booking_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// clinicAdmin adds a clinic administrator of the fixture's clinic.
func (f *fixture) clinicAdmin() *auth.Principal {
	ctx := context.Background()
	var p *auth.Principal
	require.NoError(f.t, postgres.InTenant(ctx, f.db.App, f.tenant, func(tx pgx.Tx) error {
		u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: f.tenant, Username: "klinikadmin", DisplayName: "klinikadmin", Role: auth.RoleClinicAdmin}, nil)
		if err != nil {
			return err
		}
		p = &auth.Principal{UserID: u.ID, TenantID: f.tenant, Username: u.Username, Role: auth.RoleClinicAdmin}
		return auth.AddUserUnit(ctx, tx, u.ID, f.clinic)
	}))
	return p
}

// serve runs the module's routes for p and answers one request (as an API
// client: problem documents).
func (f *fixture) serve(p *auth.Principal, method, path string, form url.Values) *httptest.ResponseRecorder {
	if f.m.Shell == nil {
		cat, err := web.NewCatalog()
		require.NoError(f.t, err)
		assets, err := web.NewAssets("/static", web.CoreStatic())
		require.NoError(f.t, err)
		f.m.Shell = web.NewShell(cat, assets, slog.New(slog.DiscardHandler))
		fsys, pattern := f.m.Pages()
		require.NoError(f.t, f.m.Shell.AddPages(fsys, pattern))
	}
	r := chi.NewRouter()
	f.m.Routes(r)
	req := httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req = req.WithContext(auth.WithPrincipal(req.Context(), p))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func problemOf(t *testing.T, w *httptest.ResponseRecorder) web.Problem {
	t.Helper()
	require.Equal(t, "application/problem+json", w.Header().Get("Content-Type"), w.Body.String())
	var p web.Problem
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
	return p
}

// Rules typed in as something other than a number are refused with a 400,
// and the stored rules stay as they were (not silently 0: no notice, no
// reminders, no follow-ups).
func TestAdminRulesRefuseNonNumbers(t *testing.T) {
	f := newFixture(t)
	admin := f.clinicAdmin()
	valid := url.Values{"unit": {itoa(f.clinic)}, "min_notice_hours": {"24"}, "horizon_days": {"90"}, "cancel_allowed": {"on"},
		"reminder_hours": {"48"}, "answer_days": {"7"}, "followup_days": {"3"}, "max_followups": {"2"}}
	w := f.serve(admin, http.MethodPost, "/admin/rules", valid)
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	for _, field := range []string{"min_notice_hours", "reminder_hours", "max_followups"} {
		for _, bad := range []string{"", "24 timer", "abc"} {
			form := url.Values{}
			for k, v := range valid {
				form[k] = v
			}
			form.Set(field, bad)
			w := f.serve(admin, http.MethodPost, "/admin/rules", form)
			require.Equal(t, http.StatusBadRequest, w.Code, "%s=%q", field, bad)
			require.Equal(t, http.StatusBadRequest, problemOf(t, w).Status)
		}
	}
	r, err := f.m.RulesFor(context.Background(), f.tenant, f.clinic)
	require.NoError(t, err)
	require.Equal(t, booking.DefaultRules, r, "the stored rules are unchanged")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
