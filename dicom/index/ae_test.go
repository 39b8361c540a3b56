package index_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestAERegistry(t *testing.T) {
	db := pgtest.Open(t, auth.Migrations(), index.Migrations())
	ctx := context.Background()
	perms, err := index.ParsePermissions("store, find,move")
	require.NoError(t, err)
	require.Equal(t, []string{"echo", "find", "move", "store"}, perms)

	require.NoError(t, index.AddAE(ctx, db.App, index.AE{Title: "PANO1", Host: "10.0.0.5", Port: 104, Permissions: perms}, false))
	require.ErrorIs(t, index.AddAE(ctx, db.App, index.AE{Title: "PANO1", Host: "h", Port: 1}, false), index.ErrExists)
	require.NoError(t, index.AddAE(ctx, db.App, index.AE{Title: "PANO1", Host: "10.0.0.6", Port: 11112, Permissions: perms}, true))
	a, err := index.GetAE(ctx, db.App, "PANO1")
	require.NoError(t, err)
	require.Equal(t, "10.0.0.6:11112", a.Addr())
	require.True(t, a.Can("move"))
	require.False(t, a.Can("get"))

	list, err := index.ListAEs(ctx, db.App)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NoError(t, index.RemoveAE(ctx, db.App, "PANO1"))
	require.ErrorIs(t, index.RemoveAE(ctx, db.App, "PANO1"), index.ErrNotFound)
	_, err = index.GetAE(ctx, db.App, "PANO1")
	require.ErrorIs(t, err, index.ErrNotFound)
}

func TestAEValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		ae   index.AE
	}{
		{"empty title", index.AE{Title: "", Host: "h", Port: 104}},
		{"too long", index.AE{Title: "ABCDEFGHIJKLMNOPQ", Host: "h", Port: 104}},
		{"backslash", index.AE{Title: `A\B`, Host: "h", Port: 104}},
		{"spaces around", index.AE{Title: " A", Host: "h", Port: 104}},
		{"no host", index.AE{Title: "A", Port: 104}},
		{"bad port", index.AE{Title: "A", Host: "h", Port: 70000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, index.AddAE(context.Background(), nil, tc.ae, false), index.ErrInvalid)
		})
	}
	_, err := index.ParsePermissions("store,delete")
	require.ErrorIs(t, err, index.ErrInvalid)
}
