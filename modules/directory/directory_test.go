package directory_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/modules/directory"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
	"github.com/molar-health/molar/viewer/web"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type units map[int64][]directory.Unit

func (u units) Units(_ context.Context, tenant int64) ([]directory.Unit, error) {
	return u[tenant], nil
}

func setup(t *testing.T) (*directory.Module, *pgtest.DB) {
	m := &directory.Module{}
	db := pgtest.Open(t, postgres.Source{Namespace: m.Name(), FS: m.Migrations()})
	m.Pool = db.App
	m.Units = units{
		1: {{ID: 10, Kind: "dental_clinic", Name: "Tandplejen Nord"}, {ID: 11, Kind: "home_care", Name: "Hjemmeplejen"}},
		2: {{ID: 20, Kind: "dental_clinic", Name: "Anden kommune"}},
	}
	return m, db
}

func TestSaveAndListPerTenant(t *testing.T) {
	m, db := setup(t)
	ctx := context.Background()
	require.NoError(t, m.Save(ctx, 1, 10, directory.Info{Phone: "+45 11 22 33 44", OpeningHours: "8–15"}, "admin"))
	require.NoError(t, m.Save(ctx, 2, 20, directory.Info{Phone: "+45 99 88 77 66"}, "admin2"))
	list, err := m.List(ctx, 1)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "+45 11 22 33 44", list[0].Phone)
	require.Empty(t, list[1].Phone, "a unit without details is listed with none")

	// Saving again updates.
	require.NoError(t, m.Save(ctx, 1, 10, directory.Info{Phone: "+45 55 55 55 55"}, "admin"))
	list, _ = m.List(ctx, 1)
	require.Equal(t, "+45 55 55 55 55", list[0].Phone)

	// A unit of another municipality cannot be edited through this one.
	err = m.Save(ctx, 1, 20, directory.Info{Phone: "x"}, "admin")
	require.Equal(t, web.NotFound, web.KindOf(err))

	// Row-level security: tenant 1 sees only its own row.
	var n int
	require.NoError(t, postgres.InTenant(ctx, db.App, 1, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM directory.unit_info").Scan(&n)
	}))
	require.Equal(t, 1, n)
	// The runtime role cannot delete details (history of who changed what stays).
	_, err = db.App.Exec(ctx, "DELETE FROM directory.unit_info")
	require.True(t, postgres.IsInsufficientPrivilege(err), "%v", err)
}

func TestValidation(t *testing.T) {
	m, _ := setup(t)
	for _, info := range []directory.Info{
		{Email: "not an email"},
		{Phone: string(make([]byte, 41))},
		{OpeningHours: string(make([]byte, 1001))},
	} {
		err := m.Save(context.Background(), 1, 10, info, "admin")
		require.Equal(t, web.Invalid, web.KindOf(err), "%+v", info)
	}
}

func TestDemoSeedIsIdempotent(t *testing.T) {
	m, _ := setup(t)
	ctx := context.Background()
	d := modules.Demo{TenantID: 1, ClinicID: 10, HomeCareID: 11}
	require.NoError(t, m.SeedDemo(ctx, d))
	require.NoError(t, m.Save(ctx, 1, 10, directory.Info{Phone: "+45 12 12 12 12"}, "admin"))
	require.NoError(t, m.SeedDemo(ctx, d), "seeding again keeps what staff changed")
	list, _ := m.List(ctx, 1)
	require.Equal(t, "+45 12 12 12 12", list[0].Phone)
	require.NotEmpty(t, list[1].OpeningHours)
}

// Text the database cannot store (a NUL character, bytes that are not
// UTF-8, as a form can send them) is bad input, not an internal error.
func TestValidationRefusesTextPostgreSQLCannotStore(t *testing.T) {
	m, _ := setup(t)
	for _, info := range []directory.Info{
		{Phone: "+45 11\x0022"},
		{Note: "Lukket \xff\xfe"},
		{Address: "Skolevej\x00 1"},
	} {
		err := m.Save(context.Background(), 1, 10, info, "admin")
		require.Equal(t, web.Invalid, web.KindOf(err), "%+q: %v", info, err)
	}
}
