package viewer

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
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
