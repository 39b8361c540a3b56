package main

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// TestConcurrentFirstMigrations: several servers starting together on a
// new database migrate it once, the job queue's tables included, and none
// of them fails.
func TestConcurrentFirstMigrations(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = migrateAll(ctx, db.AdminURL, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "runner %d", i)
	}
	var n int
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = 'river_job'`).Scan(&n))
	require.Equal(t, 1, n)
}
