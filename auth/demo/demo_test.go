package demo_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestSeedOnceWithCustodyAndAges(t *testing.T) {
	db := pgtest.Open(t, audit.Migrations(), auth.Migrations())
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	res, err := demo.Seed(ctx, db.App, now)
	require.NoError(t, err)
	require.True(t, res.Created)
	require.Len(t, res.Children, 20)
	require.GreaterOrEqual(t, len(res.Youths), 3)
	for _, c := range res.Children {
		age := auth.AgeAt(c.BirthDate, now)
		require.Less(t, age, 15, c.Name)
		require.Len(t, c.Parents, 2)
	}
	for _, y := range res.Youths {
		require.GreaterOrEqual(t, auth.AgeAt(y.BirthDate, now), 15)
	}
	roles := map[string]bool{}
	for _, l := range res.Logins {
		roles[l.Role] = true
	}
	for _, r := range auth.Roles() {
		require.True(t, roles[r], "a demo login for role %s", r)
	}
	require.NoError(t, postgres.InTenant(ctx, db.App, res.TenantID, func(tx pgx.Tx) error {
		kids, err := auth.ChildrenInCustody(ctx, tx, res.Children[0].Parents[0])
		require.NoError(t, err)
		require.Len(t, kids, 1)
		require.Equal(t, res.Children[0].PersonID, kids[0].ID)
		return nil
	}))

	again, err := demo.Seed(ctx, db.App, now)
	require.NoError(t, err)
	require.False(t, again.Created, "a second seed changes nothing")
	require.Equal(t, res.TenantID, again.TenantID)
}
