package jobs_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/storage/jobs"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type flakyArgs struct {
	FailTimes int `json:"fail_times"`
}

func (flakyArgs) Kind() string { return "test_flaky" }

type flakyWorker struct {
	river.WorkerDefaults[flakyArgs]
	calls atomic.Int32
	done  chan int64
}

func (w *flakyWorker) Work(ctx context.Context, j *river.Job[flakyArgs]) error {
	w.calls.Add(1)
	if j.Attempt <= j.Args.FailTimes {
		return errors.New("simulated failure")
	}
	w.done <- j.ID
	return nil
}

// fastRetry retries after 50 ms so tests need not wait for real backoff.
type fastRetry struct{}

func (fastRetry) NextRetry(j *rivertype.JobRow) time.Time {
	return time.Now().Add(50 * time.Millisecond)
}

func setup(t *testing.T) *pgtest.DB {
	db := pgtest.Open(t, jobs.Source())
	require.NoError(t, jobs.Migrate(context.Background(), db.OwnerURL, nil))
	return db
}

func newQueue(t *testing.T, db *pgtest.DB, w *flakyWorker, maxAttempts int) *jobs.Queue {
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	q, err := jobs.New(db.App, jobs.Options{Workers: workers, FetchPoll: 50 * time.Millisecond, MaxAttempts: maxAttempts, RetryPolicy: fastRetry{}})
	require.NoError(t, err)
	return q
}

func insert(t *testing.T, db *pgtest.DB, q *jobs.Queue, args flakyArgs, commit bool) int64 {
	ctx := context.Background()
	tx, err := db.App.Begin(ctx)
	require.NoError(t, err)
	id, err := q.InsertTx(ctx, tx, args, nil)
	require.NoError(t, err)
	if commit {
		require.NoError(t, tx.Commit(ctx))
	} else {
		require.NoError(t, tx.Rollback(ctx))
	}
	return id
}

func TestJobRetriesThenSucceeds(t *testing.T) {
	db := setup(t)
	w := &flakyWorker{done: make(chan int64, 1)}
	q := newQueue(t, db, w, 5)
	ctx := context.Background()
	require.NoError(t, q.Start(ctx))
	defer q.Stop(ctx)
	id := insert(t, db, q, flakyArgs{FailTimes: 2}, true)
	select {
	case got := <-w.done:
		require.Equal(t, id, got)
	case <-time.After(20 * time.Second):
		t.Fatal("job never completed")
	}
	require.Eventually(t, func() bool {
		st, err := q.Get(ctx, id)
		return err == nil && st.State == "completed"
	}, 5*time.Second, 20*time.Millisecond)
	st, _ := q.Get(ctx, id)
	require.Len(t, st.Errors, 2, "each failed attempt is recorded")
	require.Contains(t, st.Errors[0], "simulated failure")
}

func TestRolledBackInsertLeavesNoJob(t *testing.T) {
	db := setup(t)
	w := &flakyWorker{done: make(chan int64, 1)}
	q := newQueue(t, db, w, 5)
	id := insert(t, db, q, flakyArgs{}, false)
	_, err := q.Get(context.Background(), id)
	require.Error(t, err)
}

func TestFailuresAreVisibleAndJobsDiscarded(t *testing.T) {
	db := setup(t)
	w := &flakyWorker{done: make(chan int64, 1)}
	q := newQueue(t, db, w, 2)
	ctx := context.Background()
	require.NoError(t, q.Start(ctx))
	defer q.Stop(ctx)
	id := insert(t, db, q, flakyArgs{FailTimes: 99}, true)
	require.Eventually(t, func() bool {
		st, err := q.Get(ctx, id)
		return err == nil && st.State == "discarded"
	}, 20*time.Second, 20*time.Millisecond)
	failed, err := q.Failed(ctx, 10)
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, id, failed[0].ID)
	require.Len(t, failed[0].Errors, 2)
	depth, err := q.Depth(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, depth["discarded"])
}

func TestJobSurvivesRestartAndAnyServerTakesIt(t *testing.T) {
	db := setup(t)
	ctx := context.Background()
	// Server A inserts but is stopped before working (as after a crash).
	wa := &flakyWorker{done: make(chan int64, 1)}
	qa := newQueue(t, db, wa, 5)
	id := insert(t, db, qa, flakyArgs{}, true)
	require.Zero(t, wa.calls.Load())

	// Server B, a different process in real life, takes it.
	wb := &flakyWorker{done: make(chan int64, 1)}
	qb := newQueue(t, db, wb, 5)
	require.NoError(t, qb.Start(ctx))
	defer qb.Stop(ctx)
	select {
	case got := <-wb.done:
		require.Equal(t, id, got)
	case <-time.After(20 * time.Second):
		t.Fatal("job not taken by the second server")
	}
}

func TestRuntimeRoleCannotChangeQueueSchema(t *testing.T) {
	db := setup(t)
	_, err := db.App.Exec(context.Background(), "DROP TABLE river.river_job")
	require.Error(t, err)
	var n int
	require.NoError(t, postgres.InTx(context.Background(), db.App, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM river.river_job").Scan(&n)
	}))
}
