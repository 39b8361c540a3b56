package viewer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
	"github.com/molar-health/molar/viewer/web"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// storeEnv is a database with the viewer's schema, one municipality and
// one person.
type storeEnv struct {
	db             *pgtest.DB
	tenant, person int64
}

func newStoreEnv(t *testing.T) storeEnv {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t, audit.Migrations(), auth.Migrations(), Migrations())
	tn, err := auth.CreateTenant(ctx, db.App, "0101", "Testby Kommune")
	require.NoError(t, err)
	e := storeEnv{db: db, tenant: tn.ID}
	require.NoError(t, postgres.InTenant(ctx, db.App, e.tenant, func(tx pgx.Tx) error {
		p, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: e.tenant, GivenName: "Barn", FamilyName: "Testesen", BirthDate: time.Date(2015, 3, 1, 0, 0, 0, 0, time.UTC)})
		e.person = p.ID
		return err
	}))
	return e
}

// whenBlocked closes release once a backend of the database waits for a
// lock (or after 10 s, so that a test that never blocks does not hang).
func whenBlocked(t *testing.T, admin *pgxpool.Pool, release chan struct{}) {
	t.Helper()
	go func() {
		defer close(release)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			var n int
			if admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n) == nil && n > 0 {
				return
			}
		}
	}()
}

// TestSaveStateRefusesNull: "null" is no state object; it is invalid input
// (a 400), not a database error.
func TestSaveStateRefusesNull(t *testing.T) {
	e := newStoreEnv(t)
	ctx := context.Background()
	err := postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		_, err := SaveState(ctx, tx, e.tenant, e.person, 1, "1.2.3", 0, json.RawMessage("null"))
		return err
	})
	require.ErrorIs(t, err, ErrInvalid)
}

// TestSaveStateConcurrentConflict: two dentists save from the same version
// at the same time. The second waits for the first and gets ErrConflict
// with the state now stored, and its transaction stays usable (so the
// handler answers 409, not 500).
func TestSaveStateConcurrentConflict(t *testing.T) {
	e := newStoreEnv(t)
	ctx := context.Background()
	const sop = "1.2.826.0.1.1"
	inserted, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
			_, err := SaveState(ctx, tx, e.tenant, e.person, 1, sop, 0, json.RawMessage(`{"by":"first"}`))
			close(inserted)
			<-release
			return err
		})
	}()
	<-inserted
	whenBlocked(t, e.db.Admin, release)
	var got State
	var saveErr error
	err := postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		got, saveErr = SaveState(ctx, tx, e.tenant, e.person, 2, sop, 0, json.RawMessage(`{"by":"second"}`))
		if !errors.Is(saveErr, ErrConflict) {
			return saveErr
		}
		_, err := tx.Exec(ctx, "SELECT 1")
		return err
	})
	require.NoError(t, <-first)
	require.ErrorIs(t, saveErr, ErrConflict)
	require.NoError(t, err, "the transaction is usable after a conflict")
	require.Equal(t, 1, got.Version, "the conflict answers the stored state")
	require.JSONEq(t, `{"by":"first"}`, string(got.State))
}

// TestMoveImageConcurrent: two moves in one mount at the same time. The
// second was started from the placements before the first; it must swap
// with the image now in its target slot, not the one it saw, and lose no
// image.
func TestMoveImageConcurrent(t *testing.T) {
	e := newStoreEnv(t)
	ctx := context.Background()
	var m Mount
	require.NoError(t, postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		tpl, err := TemplateByCode(ctx, tx, "bw4")
		if err != nil {
			return err
		}
		if m, err = CreateMount(ctx, tx, e.tenant, e.person, 1, tpl, "1.2.3"); err != nil {
			return err
		}
		if err := SavePlacements(ctx, tx, e.tenant, m.ID, []Placement{{Slot: 1, SOP: "1.1"}, {Slot: 2, SOP: "1.2"}, {Slot: 3, SOP: "1.3"}, {Slot: 4, SOP: "1.4"}}); err != nil {
			return err
		}
		m, err = GetMount(ctx, tx, e.person, m.ID)
		return err
	}))
	moved, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
			// 1.1 from slot 1 to slot 2: 1.2 takes slot 1.
			err := MoveImage(ctx, tx, e.tenant, 1, m, 2, "1.1", 0, false)
			close(moved)
			<-release
			return err
		})
	}()
	<-moved
	whenBlocked(t, e.db.Admin, release)
	// 1.3 from slot 3 to slot 2, by someone who still sees 1.2 in slot 2.
	err := postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		return MoveImage(ctx, tx, e.tenant, 2, m, 2, "1.3", 0, false)
	})
	require.NoError(t, <-first)
	require.NoError(t, err)
	require.NoError(t, postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		var err error
		m, err = GetMount(ctx, tx, e.person, m.ID)
		return err
	}))
	got := map[int]string{}
	for _, p := range m.Placements {
		got[p.Slot] = p.SOP
	}
	require.Equal(t, map[int]string{1: "1.2", 2: "1.3", 3: "1.1", 4: "1.4"}, got)
}

// TestFormsAreBounded: the viewer's forms are small; a large body (here a
// file part of a multipart form, which would otherwise be read into memory
// or spooled to disk) is refused with a 400 before anything else.
func TestFormsAreBounded(t *testing.T) {
	e := newStoreEnv(t)
	cat, err := web.NewCatalog()
	require.NoError(t, err)
	a, err := auth.New(e.db.App, auth.Config{})
	require.NoError(t, err)
	auth.RegisterPermissions(auth.RoleClinicAdmin, PermTemplates)
	v := &Viewer{Pool: e.db.App, Auth: a, Shell: web.NewShell(cat, nil, slog.New(slog.DiscardHandler)), Log: slog.New(slog.DiscardHandler)}
	for _, c := range []struct{ role, path string }{
		{auth.RoleDentist, fmt.Sprintf("/viewer/p/%d/mounts", e.person)},
		{auth.RoleDentist, fmt.Sprintf("/viewer/p/%d/breakglass", e.person)},
		{auth.RoleClinicAdmin, "/viewer/admin/templates"},
	} {
		r := chi.NewRouter()
		r.Use(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				p := &auth.Principal{UserID: 1, TenantID: e.tenant, Role: c.role}
				next.ServeHTTP(w, req.WithContext(auth.WithPrincipal(req.Context(), p)))
			})
		})
		v.Routes(r)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		for k, val := range map[string]string{"template": "bw4", "study": "1.2.3", "reason": "Akut tandpine på vagten"} {
			require.NoError(t, mw.WriteField(k, val))
		}
		f, err := mw.CreateFormFile("junk", "junk.bin")
		require.NoError(t, err)
		_, err = f.Write(bytes.Repeat([]byte("x"), 4<<20))
		require.NoError(t, err)
		require.NoError(t, mw.Close())
		req := httptest.NewRequest(http.MethodPost, c.path, &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Accept", "application/json")
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		require.Equal(t, http.StatusBadRequest, rec.Code, "%s: %s", c.path, rec.Body.String())
	}
}
