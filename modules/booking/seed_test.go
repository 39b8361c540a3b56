package booking_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/viewer/web"
)

func TestDemoSeedIsIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// A fresh tenant's clinic (the fixture's has types already: nothing happens).
	_, err := f.db.Admin.Exec(ctx, `DELETE FROM booking.type_resource; DELETE FROM booking.appointment_type`)
	require.NoError(t, err)
	d := modules.Demo{TenantID: f.tenant, ClinicID: f.clinic, Children: []modules.DemoPerson{{PersonID: f.child}, {PersonID: f.otherChild}, {PersonID: f.teen15}}}
	require.NoError(t, f.m.SeedDemo(ctx, d))
	var n, resources int
	require.NoError(t, f.db.Admin.QueryRow(ctx, `SELECT count(*) FROM booking.appointment`).Scan(&n))
	require.Equal(t, 3, n)
	require.NoError(t, f.db.Admin.QueryRow(ctx, `SELECT count(*) FROM booking.resource`).Scan(&resources))
	require.NoError(t, f.m.SeedDemo(ctx, d), "seeding again changes nothing")
	var n2, resources2 int
	require.NoError(t, f.db.Admin.QueryRow(ctx, `SELECT count(*) FROM booking.appointment`).Scan(&n2))
	require.NoError(t, f.db.Admin.QueryRow(ctx, `SELECT count(*) FROM booking.resource`).Scan(&resources2))
	require.Equal(t, n, n2)
	require.Equal(t, resources, resources2)
	var unsent int
	require.NoError(t, f.db.Admin.QueryRow(ctx, `SELECT count(*) FROM booking.outbox WHERE sent IS NULL`).Scan(&unsent))
	require.Zero(t, unsent, "demo bookings send no mail")
}

// The pages parse in the shell's layout and every message exists in both languages.
func TestPagesAndMessages(t *testing.T) {
	f := newFixture(t)
	cat, err := web.NewCatalog()
	require.NoError(t, err)
	assets, err := web.NewAssets("/static", web.CoreStatic())
	require.NoError(t, err)
	shell := web.NewShell(cat, assets, slog.New(slog.DiscardHandler))
	fsys, pattern := f.m.Pages()
	require.NoError(t, shell.AddPages(fsys, pattern))
	require.Contains(t, shell.Pages(), "booking_calendar")
	msgs := f.m.Messages()
	for k := range msgs["da"] {
		require.Contains(t, msgs["en"], k)
	}
	for k := range msgs["en"] {
		require.Contains(t, msgs["da"], k)
	}
}
