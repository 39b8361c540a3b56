package portal_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/journal/portal"
	"github.com/molar-health/molar/storage/postgres"
)

// The clinic's inbox shows when a family last wrote in Danish time, like
// every other time in the portal, whatever the server's zone.
func TestClinicInboxTimeInDanishTime(t *testing.T) {
	old := time.Local
	time.Local = time.UTC // a server running in UTC
	t.Cleanup(func() { time.Local = old })
	f := newFamily(t)
	ctx := context.Background()
	w := f.post("/portal/c/"+f.ref+"/messages", url.Values{"body": {"Hej klinik"}})
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	var dentist *auth.Principal
	require.NoError(t, postgres.InTenant(ctx, f.db.App, f.parent.TenantID, func(tx pgx.Tx) error {
		unit, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: f.parent.TenantID, Kind: "dental_clinic", Name: "Tandplejen"})
		if err != nil {
			return err
		}
		if _, err := auth.AddCareRelation(ctx, tx, auth.CareRelation{TenantID: f.parent.TenantID, OrgUnitID: unit.ID, PersonID: f.child, Kind: "dental",
			ValidFrom: time.Now().AddDate(-1, 0, 0)}); err != nil {
			return err
		}
		u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: f.parent.TenantID, Username: "tandlaege", DisplayName: "Tove", Role: auth.RoleDentist}, nil)
		if err != nil {
			return err
		}
		dentist = &auth.Principal{UserID: u.ID, TenantID: f.parent.TenantID, Username: u.Username, Role: auth.RoleDentist}
		return auth.AddUserUnit(ctx, tx, u.ID, unit.ID)
	}))
	var created time.Time
	require.NoError(t, f.db.Admin.QueryRow(ctx, `SELECT created FROM portal.message`).Scan(&created))

	r := chi.NewRouter()
	f.p.Routes(r)
	req := httptest.NewRequest(http.MethodGet, "/portal/clinic/", nil)
	req = req.WithContext(auth.WithPrincipal(req.Context(), dentist))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "Emma Testesen")
	require.Contains(t, rec.Body.String(), created.In(portal.Local).Format("02-01-2006 15:04"))
}
