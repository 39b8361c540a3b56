package auth

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestRemoveCustody: when custody ends the former holder loses access to
// the child's record and the child leaves their list; the co-parent with
// shared custody keeps it. Ending a relation that does not exist is
// ErrNotFound, so a caller never audits a removal that did not happen.
func TestRemoveCustody(t *testing.T) {
	e := newEnv(t, nil)
	today := DateIn(e.clock.Now(), Copenhagen)
	child := e.person("Barn", today.AddDate(-10, 0, 0))
	parent := e.person("Forælder", today.AddDate(-40, 0, 0))
	coParent := e.person("Medforælder", today.AddDate(-41, 0, 0))
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		require.NoError(t, AddCustody(ctx, tx, e.tenant.ID, parent.ID, child.ID))
		require.NoError(t, AddCustody(ctx, tx, e.tenant.ID, coParent.ID, child.ID))
		return nil
	})
	parentUser := e.user("forælder", RoleCitizen, goodPassword, parent.ID).Principal(MethodSession)
	coParentUser := e.user("medforælder", RoleCitizen, goodPassword, coParent.ID).Principal(MethodSession)
	basis := func(p *Principal) string {
		var d Decision
		e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
			var err error
			d, err = Access(ctx, tx, p, child.ID)
			return err
		})
		return d.Basis
	}
	require.Equal(t, BasisCustody, basis(parentUser))
	require.Equal(t, BasisCustody, basis(coParentUser))

	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		return RemoveCustody(ctx, tx, parent.ID, child.ID)
	})
	require.Empty(t, basis(parentUser), "custody ended: no access")
	require.Equal(t, BasisCustody, basis(coParentUser), "shared custody: the co-parent keeps it")
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		kids, err := ChildrenInCustody(ctx, tx, parent.ID)
		require.NoError(t, err)
		require.Empty(t, kids)
		holders, err := CustodyHolders(ctx, tx, child.ID)
		require.NoError(t, err)
		require.Equal(t, []int64{coParent.ID}, holders, "who is informed (Health Act §17)")
		require.ErrorIs(t, RemoveCustody(ctx, tx, parent.ID, child.ID), ErrNotFound)
		return nil
	})
}
