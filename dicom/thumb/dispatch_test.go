package thumb

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage/jobs"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// TestDispatchTurnsQueuedInstancesIntoJobs: the ingest transaction queues a
// thumbnail for every new instance and every instance pointed at a new
// object (and for nothing rolled back or left unchanged; a deleted or
// re-pointed instance takes its queued row back); Dispatch turns
// the queue into thumbnail jobs in batches of at most its limit and empties
// it; the dispatcher does so soon after Wake.
func TestDispatchTurnsQueuedInstancesIntoJobs(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t, auth.Migrations(), index.Migrations(), jobs.Source())
	require.NoError(t, jobs.Migrate(ctx, db.OwnerURL, nil))
	q, err := jobs.New(db.App, jobs.Options{})
	require.NoError(t, err)
	ten, err := auth.CreateTenant(ctx, db.Admin, "0101", "Testkommune")
	require.NoError(t, err)

	ingest := func(sop, key, body string, pol index.DuplicatePolicy, commit bool) string {
		sum := sha256.Sum256([]byte(body))
		rec := &index.Record{TenantID: ten.ID, PatientID: "P1", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.1",
			SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1.3", TransferSyntax: "1.2.840.10008.1.2.1",
			ObjectKey: key, Size: int64(len(body)), SHA256: sum[:], SourceAE: "PANO1"}
		var r index.Result
		errRollback := errors.New("roll back")
		err := postgres.InTx(ctx, db.App, func(tx pgx.Tx) error {
			var err error
			if r, err = index.IngestInTenant(ctx, tx, rec, pol); err != nil {
				return err
			}
			if !commit {
				return errRollback
			}
			return nil
		})
		if !commit {
			require.ErrorIs(t, err, errRollback)
			return ""
		}
		require.NoError(t, err)
		return r.Outcome
	}
	queued := func() []string {
		rows, err := db.Admin.Query(ctx, `SELECT object_key FROM dicom.thumbnail_queue ORDER BY id`)
		require.NoError(t, err)
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return keys
	}
	jobKeys := func() []string {
		rows, err := db.Admin.Query(ctx, "SELECT k FROM "+jobs.Schema+".river_job, jsonb_array_elements_text(args->'keys') WITH ORDINALITY AS x(k, n) WHERE kind = $1 ORDER BY id, n", BatchArgs{}.Kind())
		require.NoError(t, err)
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return keys
	}

	a, b, c := "instances/2026/11/25/a.dcm", "instances/2026/11/25/b.dcm", "instances/2026/11/25/c.dcm"
	require.Equal(t, index.OutcomeStored, ingest("1.9.1", a, "a", index.KeepFirst, true))
	require.Equal(t, index.OutcomeStored, ingest("1.9.2", b, "b", index.KeepFirst, true))
	require.Equal(t, []string{a, b}, queued())
	ingest("1.9.3", "instances/2026/11/25/never.dcm", "n", index.KeepFirst, false)
	require.Equal(t, index.OutcomeIdentical, ingest("1.9.1", "instances/2026/11/25/a2.dcm", "a", index.KeepFirst, true))
	require.Equal(t, index.OutcomeKeptFirst, ingest("1.9.1", "instances/2026/11/25/a3.dcm", "other", index.KeepFirst, true))
	require.Equal(t, index.OutcomeOverwritten, ingest("1.9.2", c, "c", index.Overwrite, true))
	// b was still queued when 1.9.2 was pointed at c: only c remains.
	require.Equal(t, []string{a, c}, queued())

	n, err := Dispatch(ctx, db.App, q, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{c}, queued())
	require.Equal(t, []string{a}, jobKeys())
	n, err = Dispatch(ctx, db.App, q, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = Dispatch(ctx, db.App, q, 1)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, queued())
	require.Equal(t, []string{a, c}, jobKeys())

	// A queued instance that is deleted, or pointed at another object,
	// takes its row back.
	require.Equal(t, index.OutcomeStored, ingest("1.9.4", "instances/2026/11/25/gone.dcm", "g", index.KeepFirst, true))
	require.Equal(t, index.OutcomeStored, ingest("1.9.6", "instances/2026/11/25/f1.dcm", "f1", index.KeepFirst, true))
	require.Equal(t, index.OutcomeOverwritten, ingest("1.9.6", "instances/2026/11/25/f2.dcm", "f2", index.Overwrite, true))
	_, err = db.Admin.Exec(ctx, `DELETE FROM dicom.instance WHERE sop_instance_uid = '1.9.4'`)
	require.NoError(t, err)
	require.Equal(t, []string{"instances/2026/11/25/f2.dcm"}, queued())
	n, err = Dispatch(ctx, db.App, q, 5)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	// The dispatcher: a wake moves a new row within its gather time, long
	// before its poll.
	d := NewDispatcher(db.App, nil)
	d.Poll, d.Gather = time.Hour, 10*time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx, q) }()
	t.Cleanup(stop)
	e := "instances/2026/11/25/e.dcm"
	require.Equal(t, index.OutcomeStored, ingest("1.9.5", e, "e", index.KeepFirst, true))
	d.Wake()
	require.Eventually(t, func() bool { return len(queued()) == 0 && len(jobKeys()) == 4 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, e, jobKeys()[3])
	stop()
	<-done

	// A burst: jobs of BatchSize instances each, the rest in one more.
	var burst []string
	for i := range BatchSize + 4 {
		k := fmt.Sprintf("instances/2026/11/25/burst%02d.dcm", i)
		require.Equal(t, index.OutcomeStored, ingest(fmt.Sprintf("1.9.10.%d", i), k, k, index.KeepFirst, true))
		burst = append(burst, k)
	}
	n, err = Dispatch(ctx, db.App, q, DispatchBatch)
	require.NoError(t, err)
	require.Equal(t, BatchSize+4, n)
	require.Equal(t, burst, jobKeys()[4:])
	rows, err := db.Admin.Query(ctx, "SELECT jsonb_array_length(args->'keys') FROM "+jobs.Schema+".river_job WHERE kind = $1 ORDER BY id DESC LIMIT 2", BatchArgs{}.Kind())
	require.NoError(t, err)
	sizes, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, []int{4, BatchSize}, sizes)
}
