package audit_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openDB(t testing.TB) *pgtest.DB {
	t.Helper()
	return pgtest.Open(t, audit.Migrations())
}

func actor(tenant, user int64, name string) audit.Actor {
	return audit.Actor{UserID: user, Username: name, Role: "dentist", TenantID: tenant,
		RequestID: "req-test", SourceAddr: "192.0.2.10:4242"}
}

// record writes one event in its own committed tenant transaction.
func record(t testing.TB, pool *pgxpool.Pool, a audit.Actor, ev audit.Event) {
	t.Helper()
	ctx := audit.WithActor(context.Background(), a)
	require.NoError(t, postgres.InTenant(ctx, pool, a.TenantID, func(tx pgx.Tx) error {
		return audit.Record(ctx, tx, ev)
	}))
}

// beginTenant opens a tenant transaction the test commits or rolls back.
func beginTenant(t testing.TB, pool *pgxpool.Pool, tenant int64) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	_, err = tx.Exec(ctx, "SELECT set_config('molar.tenant', $1, true)", strconv.FormatInt(tenant, 10))
	require.NoError(t, err)
	return tx
}

// sealAll runs the sealer until nothing is left to seal.
func sealAll(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	s := &audit.Sealer{Pool: pool}
	total := 0
	for {
		n, err := s.SealOnce(context.Background())
		require.NoError(t, err)
		if n == 0 {
			return total
		}
		total += n
	}
}

func count(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}
