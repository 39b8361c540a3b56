package index_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage/postgres"
)

// TestIngestInTenantScopesTheTransaction: IngestInTenant in a plain
// transaction reconciles like Ingest under InTenant, leaves the tenant scope
// set for the rest of the transaction, and writes nothing into a tenant the
// record does not name.
func TestIngestInTenantScopesTheTransaction(t *testing.T) {
	db, ten, pid := setup(t)
	ctx := context.Background()
	var r index.Result
	require.NoError(t, postgres.InTx(ctx, db.App, func(tx pgx.Tx) error {
		var err error
		if r, err = index.IngestInTenant(ctx, tx, record(ten, "1.2.3.1.9", "a"), index.KeepFirst); err != nil {
			return err
		}
		var scope string
		require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('molar.tenant', true)").Scan(&scope))
		require.Equal(t, ten, mustInt(t, scope))
		in, err := index.GetInstance(ctx, tx, "1.2.3.1.9")
		require.NoError(t, err)
		require.Equal(t, r.InstanceID, in.ID)
		return nil
	}))
	require.Equal(t, index.OutcomeStored, r.Outcome)
	require.Equal(t, index.ReconMatched, r.ReconState)
	require.Equal(t, pid, r.PersonID)
	// A second, identical one is recognised as under InTenant.
	r2 := ingest(t, db, ten, record(ten, "1.2.3.1.9", "a"), index.KeepFirst)
	require.Equal(t, index.OutcomeIdentical, r2.Outcome)
	// The record's tenant must be the scope.
	err := postgres.InTx(ctx, db.App, func(tx pgx.Tx) error {
		rec := record(ten, "1.2.3.1.10", "b")
		rec.TenantID = 0
		_, err := index.IngestInTenant(ctx, tx, rec, index.KeepFirst)
		return err
	})
	require.Error(t, err)
}

func mustInt(t *testing.T, s string) int64 {
	var n int64
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', s)
		n = n*10 + int64(c-'0')
	}
	return n
}
