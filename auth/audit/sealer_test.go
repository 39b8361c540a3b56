package audit_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// sealedOrder returns the event ids in chain order.
func sealedOrder(t *testing.T, pool *pgxpool.Pool) []int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT event_id FROM audit.seal ORDER BY seq")
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return ids
}

// A writer whose transaction is still open holds sealing back; a late
// commit with a lower id is sealed in a later batch.
func TestSealerSealsOnlyFinishedWritersInOrder(t *testing.T) {
	db := openDB(t)
	ctx := audit.WithActor(context.Background(), actor(1, 7, "anna"))
	s := &audit.Sealer{Pool: db.App}
	read := func(obj string) audit.Event {
		return audit.Event{Action: audit.ActionRead, PersonID: 42, Object: obj}
	}

	// B takes its transaction id first, A takes the lower event id.
	txB := beginTenant(t, db.App, 1)
	_, err := txB.Exec(ctx, "SELECT txid_current()")
	require.NoError(t, err)
	txA := beginTenant(t, db.App, 1)
	require.NoError(t, audit.Record(ctx, txA, read("journal.entry/1"))) // event 1, newer xid
	require.NoError(t, audit.Record(ctx, txB, read("journal.entry/2"))) // event 2, older xid
	require.NoError(t, txB.Commit(ctx))

	n, err := s.SealOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "event 2 is sealed: its writer finished and is older than every open writer")
	require.Equal(t, []int64{2}, sealedOrder(t, db.Admin))

	record(t, db.App, actor(1, 7, "anna"), read("journal.entry/3")) // event 3, commits while A is open
	n, err = s.SealOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "event 3's writer is newer than the open writer A: wait")

	rep, err := audit.Verify(ctx, db.App)
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 1, rep.Pending)

	require.NoError(t, txA.Commit(ctx))
	n, err = s.SealOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, []int64{2, 1, 3}, sealedOrder(t, db.Admin), "chain order is seal order")

	rep, err = audit.Verify(ctx, db.App)
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 3, rep.Sealed)
	require.Zero(t, rep.Pending)
	require.Equal(t, rep.End, rep.Head)
}

// Only one sealer works at a time: while the lock is held elsewhere a
// sealer skips its round.
func TestSealerSkipsWhileAnotherHoldsTheLock(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	for i := range 3 {
		record(t, db.App, actor(1, 7, "anna"), audit.Event{Action: audit.ActionRead, PersonID: 42, Object: fmt.Sprintf("journal.entry/%d", i+1)})
	}
	conn, err := db.Admin.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1)", audit.SealerLockKey)
	require.NoError(t, err)

	s := &audit.Sealer{Pool: db.App}
	n, err := s.SealOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Zero(t, count(t, db.Admin, "SELECT count(*) FROM audit.seal"))

	_, err = conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", audit.SealerLockKey)
	require.NoError(t, err)
	n, err = s.SealOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
}

// Many writers with interleaved transactions, some held open while later
// ones commit, some rolled back, two sealers (two "servers") running all the
// time: every committed row ends up sealed exactly once and the chain verifies.
func TestConcurrentWritersAreSealedExactlyOnce(t *testing.T) {
	db := openDB(t)
	const writers, rowsPerWriter = 20, 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Two sealers on their own pools, as on two servers; one with small
	// batches so that passes span several batches.
	var sealers sync.WaitGroup
	for i, batch := range []int{0, 37} {
		pool, err := postgres.OpenPool(ctx, db.AppURL, postgres.PoolOptions{MaxConns: 2})
		require.NoError(t, err)
		defer pool.Close()
		s := &audit.Sealer{Pool: pool, Interval: time.Duration(3+i*4) * time.Millisecond, BatchSize: batch}
		sealers.Add(1)
		go func() { defer sealers.Done(); _ = s.Run(ctx) }()
	}

	// A verifier runs all the time too: concurrent writing and sealing must
	// never look like tampering.
	verifyErrs := make(chan string, 1)
	var verifier sync.WaitGroup
	verifier.Add(1)
	verifies := 0
	go func() {
		defer verifier.Done()
		for ctx.Err() == nil {
			rep, err := audit.Verify(ctx, db.Admin)
			if ctx.Err() != nil {
				return
			}
			verifies++
			if err != nil || !rep.OK {
				verifyErrs <- fmt.Sprintf("verify during writes: %v %+v", err, rep.Problems)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	writerPool, err := postgres.OpenPool(ctx, db.AppURL, postgres.PoolOptions{MaxConns: writers + 2})
	require.NoError(t, err)
	defer writerPool.Close()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			a := actor(int64(w%3+1), int64(w+1), fmt.Sprintf("user%d", w))
			actx := audit.WithActor(ctx, a)
			written := 0
			for written < rowsPerWriter {
				perTx := min(1+rng.IntN(3), rowsPerWriter-written)
				rollback := rng.IntN(10) == 0
				hold := rng.IntN(6) == 0
				err := postgres.InTenant(actx, writerPool, a.TenantID, func(tx pgx.Tx) error {
					for i := range perTx {
						if err := audit.Record(actx, tx, audit.Event{
							Action: audit.ActionRead, PersonID: int64(rng.IntN(100) + 1),
							Object: fmt.Sprintf("journal.entry/%d", written+i),
						}); err != nil {
							return err
						}
						if hold {
							// Held open while other writers commit and sealers run.
							time.Sleep(time.Duration(5+rng.IntN(25)) * time.Millisecond)
						}
					}
					if rollback {
						return errRollback
					}
					return nil
				})
				switch {
				case err == errRollback:
				case err != nil:
					errs <- err
					return
				default:
					written += perTx
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Let the running sealers catch up, then stop them.
	require.Eventually(t, func() bool {
		return count(t, db.Admin, "SELECT count(*) FROM audit.seal") == writers*rowsPerWriter
	}, 30*time.Second, 20*time.Millisecond)
	cancel()
	sealers.Wait()
	verifier.Wait()
	select {
	case msg := <-verifyErrs:
		t.Fatal(msg)
	default:
	}
	require.Positive(t, verifies)
	require.Zero(t, sealAll(t, db.App))

	require.EqualValues(t, writers*rowsPerWriter, count(t, db.Admin, "SELECT count(*) FROM audit.event"))
	require.EqualValues(t, writers*rowsPerWriter, count(t, db.Admin, "SELECT count(DISTINCT event_id) FROM audit.seal"))
	require.Zero(t, count(t, db.Admin, "SELECT count(*) FROM audit.event e WHERE NOT EXISTS (SELECT 1 FROM audit.seal s WHERE s.event_id = e.id)"))
	require.Zero(t, count(t, db.Admin, "SELECT count(*) FROM audit.seal s WHERE NOT EXISTS (SELECT 1 FROM audit.event e WHERE e.id = s.event_id)"))
	require.EqualValues(t, writers*rowsPerWriter, count(t, db.Admin, "SELECT max(seq) FROM audit.seal"), "sequence numbers without gaps")
	gaps := count(t, db.Admin, "SELECT max(id) - count(*) FROM audit.event")
	require.Positive(t, gaps, "rolled-back writers left id gaps (the test exercises them)")
	outOfOrder := count(t, db.Admin, `SELECT count(*) FROM (SELECT event_id < lag(event_id) OVER (ORDER BY seq) AS back FROM audit.seal) s WHERE back`)
	t.Logf("%d id gaps, %d seals out of id order, %d verifications during the run", gaps, outOfOrder, verifies)

	rep, err := audit.Verify(context.Background(), db.App)
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, writers*rowsPerWriter, rep.Sealed)
	require.Equal(t, rep.Head, rep.End)
}

var errRollback = fmt.Errorf("test: roll back")

// Run returns when its context ends.
func TestSealerRunStopsWithContext(t *testing.T) {
	db := openDB(t)
	record(t, db.App, actor(1, 7, "anna"), audit.Event{Action: audit.ActionLogin})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&audit.Sealer{Pool: db.App, Interval: 5 * time.Millisecond}).Run(ctx) }()
	require.Eventually(t, func() bool { return count(t, db.Admin, "SELECT count(*) FROM audit.seal") == 1 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
