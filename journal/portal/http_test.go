package portal_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/journal/portal"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
	"github.com/molar-health/molar/viewer/web"
)

// family is a portal with one parent and a child of 8 in their custody.
type family struct {
	t      *testing.T
	db     *pgtest.DB
	p      *portal.Portal
	parent *auth.Principal
	child  int64
	ref    string
}

func newFamily(t *testing.T) *family {
	ctx := context.Background()
	db := pgtest.Open(t, audit.Migrations(), auth.Migrations(), portal.Migrations())
	svc, err := auth.New(db.App, auth.Config{})
	require.NoError(t, err)
	cat, err := web.NewCatalog()
	require.NoError(t, err)
	cat.Add(portal.Messages())
	assets, err := web.NewAssets("/static", web.CoreStatic(), portal.Static())
	require.NoError(t, err)
	shell := web.NewShell(cat, assets, slog.New(slog.DiscardHandler))
	require.NoError(t, shell.AddPagesWith(portal.Templates(), "*.html", "*.tmpl"))
	f := &family{t: t, db: db, p: &portal.Portal{Pool: db.App, Auth: svc, Shell: shell}}
	tn, err := auth.CreateTenant(ctx, db.App, "0101", "Testby Kommune")
	require.NoError(t, err)
	var parent int64
	require.NoError(t, postgres.InTenant(ctx, db.App, tn.ID, func(tx pgx.Tx) error {
		pp, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: tn.ID, GivenName: "Mette", FamilyName: "Testesen", BirthDate: day(1985, 1, 1)})
		if err != nil {
			return err
		}
		c, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: tn.ID, GivenName: "Emma", FamilyName: "Testesen", BirthDate: time.Now().AddDate(-8, 0, 0)})
		if err != nil {
			return err
		}
		parent, f.child = pp.ID, c.ID
		if err := auth.AddCustody(ctx, tx, tn.ID, pp.ID, c.ID); err != nil {
			return err
		}
		u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: tn.ID, Username: "mette", DisplayName: "Mette", Role: auth.RoleCitizen, PersonID: pp.ID}, nil)
		f.parent = &auth.Principal{UserID: u.ID, TenantID: tn.ID, Username: "mette", DisplayName: "Mette", Role: auth.RoleCitizen, PersonID: parent}
		return err
	}))
	kids, err := f.p.Children(ctx, f.parent)
	require.NoError(t, err)
	require.Len(t, kids, 1)
	f.ref = kids[0].Ref
	return f
}

func (f *family) post(path string, form url.Values) *httptest.ResponseRecorder {
	r := chi.NewRouter()
	f.p.Routes(r)
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req = req.WithContext(auth.WithPrincipal(req.Context(), f.parent))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func (f *family) count(table string) int {
	var n int
	require.NoError(f.t, f.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM portal.`+table).Scan(&n))
	return n
}

// A message or health update with text PostgreSQL cannot store (NUL, bytes
// that are not UTF-8) is bad input: 400, nothing stored.
func TestPostedTextPostgreSQLCannotStoreIs400(t *testing.T) {
	f := newFamily(t)
	for _, bad := range []string{"Hej\x00 klinik", "Hej \xff"} {
		w := f.post("/portal/c/"+f.ref+"/messages", url.Values{"body": {bad}})
		require.Equal(t, http.StatusBadRequest, w.Code, "message %q: %s", bad, w.Body.String())
		w = f.post("/portal/c/"+f.ref+"/health", url.Values{"kind": {"allergy"}, "body": {bad}})
		require.Equal(t, http.StatusBadRequest, w.Code, "update %q: %s", bad, w.Body.String())
	}
	require.Zero(t, f.count("message"))
	require.Zero(t, f.count("update_request"))
	w := f.post("/portal/c/"+f.ref+"/messages", url.Values{"body": {"Hej klinik"}})
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	require.Equal(t, 1, f.count("message"))
}
