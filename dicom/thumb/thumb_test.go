package thumb

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/pixel/pixeltest"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/fs"
	"github.com/molar-health/molar/storage/jobs"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(t *testing.T) storage.ObjectStore { return newStoreB(t) }

func newStoreB(t testing.TB) storage.ObjectStore {
	s, err := fs.New(t.TempDir())
	require.NoError(t, err)
	return s
}

func put(t *testing.T, s storage.ObjectStore, key string, data []byte) { putB(t, s, key, data) }

func putB(t testing.TB, s storage.ObjectStore, key string, data []byte) {
	_, err := s.Put(context.Background(), key, bytes.NewReader(data), storage.PutOptions{Size: int64(len(data))})
	require.NoError(t, err)
}

func TestKeys(t *testing.T) {
	require.Equal(t, "thumbs/2026/01/02/abc/128.jpg", Key("instances/2026/01/02/abc.dcm", 128))
	require.Equal(t, "thumbs/2026/01/02/abc/failed.json", FailedKey("instances/2026/01/02/abc.dcm"))
	require.Equal(t, "thumbs/other/x/512.jpg", Key("other/x", 512))
}

// TestMakeAndLookup: thumbnails of a 12-bit intraoral and a multi-frame
// image in both sizes; an undecodable instance gives a recorded reason.
func TestMakeAndLookup(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	w := &Worker{Store: store}
	io := pixeltest.Spec{Rows: 600, Columns: 400, BitsAllocated: 16, BitsStored: 12, Seed: 1}
	ct := pixeltest.Spec{Rows: 64, Columns: 80, Frames: 5, BitsAllocated: 16, BitsStored: 12, Signed: true, Seed: 2}
	for key, sp := range map[string]pixeltest.Spec{"instances/a/io.dcm": io, "instances/a/ct.dcm": ct} {
		put(t, store, key, sp.File())
		st, err := Lookup(ctx, store, key, nil)
		require.NoError(t, err)
		require.True(t, st.Pending())
		require.NoError(t, w.Make(ctx, key))
		st, err = Lookup(ctx, store, key, nil)
		require.NoError(t, err)
		require.Equal(t, []int{128, 512}, st.Ready)
		for _, size := range DefaultSizes {
			rc, _, err := store.Get(ctx, Key(key, size), nil)
			require.NoError(t, err)
			img, err := jpeg.Decode(rc)
			rc.Close()
			require.NoError(t, err)
			b := img.Bounds()
			want := min(size, max(sp.Rows, sp.Columns))
			require.Equal(t, want, max(b.Dx(), b.Dy()), "%s at %d px", key, size)
		}
	}

	// Truncated pixel data: permanent failure, recorded.
	bad := io.File()
	bad = bad[:len(bad)-1000]
	put(t, store, "instances/a/bad.dcm", bad)
	job := &river.Job[Args]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: MaxAttempts}, Args: Args{Key: "instances/a/bad.dcm"}}
	err := w.Work(ctx, job)
	var cancel *rivertype.JobCancelError
	require.True(t, errors.As(err, &cancel), "want JobCancel, got %v", err)
	st, err := Lookup(ctx, store, "instances/a/bad.dcm", nil)
	require.NoError(t, err)
	require.NotNil(t, st.Failed)
	require.Contains(t, st.Failed.Reason, "malformed")
	t.Log(st.Failed.Reason)
}

// TestJobThroughRiver: the job inserted in a transaction runs after commit
// and makes the thumbnails; a job for a broken instance is cancelled with
// its error recorded; a rolled-back insert never runs.
func TestJobThroughRiver(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t, jobs.Source())
	require.NoError(t, jobs.Migrate(ctx, db.OwnerURL, nil))
	store := newStore(t)
	workers := river.NewWorkers()
	river.AddWorker(workers, &Worker{Store: store})
	q, err := jobs.New(db.App, jobs.Options{Workers: workers, FetchPoll: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, q.Start(ctx))
	t.Cleanup(func() { q.Stop(context.Background()) })

	good, bad := "instances/2026/02/03/good.dcm", "instances/2026/02/03/bad.dcm"
	put(t, store, good, pixeltest.Spec{Rows: 300, Columns: 200, BitsAllocated: 16, BitsStored: 12, Seed: 3}.File())
	put(t, store, bad, []byte("not DICOM at all, just text that goes on and on"))
	enqueue := func(key string, commit bool) int64 {
		tx, err := db.App.Begin(ctx)
		require.NoError(t, err)
		id, err := EnqueueThumbnail(ctx, tx, q, key)
		require.NoError(t, err)
		if commit {
			require.NoError(t, tx.Commit(ctx))
		} else {
			require.NoError(t, tx.Rollback(ctx))
		}
		return id
	}
	goodID := enqueue(good, true)
	badID := enqueue(bad, true)
	enqueue("instances/2026/02/03/never.dcm", false)

	require.Eventually(t, func() bool {
		st, err := q.Get(ctx, goodID)
		return err == nil && st.State == "completed"
	}, 20*time.Second, 50*time.Millisecond)
	st, err := Lookup(ctx, store, good, nil)
	require.NoError(t, err)
	require.Equal(t, []int{128, 512}, st.Ready)

	require.Eventually(t, func() bool {
		st, err := q.Get(ctx, badID)
		return err == nil && st.State == "cancelled"
	}, 20*time.Second, 50*time.Millisecond)
	js, err := q.Get(ctx, badID)
	require.NoError(t, err)
	require.NotEmpty(t, js.Errors)
	fs, err := Lookup(ctx, store, bad, nil)
	require.NoError(t, err)
	require.NotNil(t, fs.Failed)
	t.Log(js.Errors, fs.Failed.Reason)
}

func TestBoxShrink(t *testing.T) {
	g := image.NewGray(image.Rect(10, 20, 17, 25)) // 7×5, not at the origin
	for y := 20; y < 25; y++ {
		for x := 10; x < 17; x++ {
			g.SetGray(x, y, color.Gray{Y: uint8(10*(x-10) + (y - 20))})
		}
	}
	m := boxShrink(g, 2)
	require.Equal(t, image.Rect(0, 0, 3, 2), m.Bounds())
	// The 2×2 block at (0,0): 0, 10, 1, 11 → 5.5, rounded to 6.
	require.Equal(t, uint8(6), m.GrayAt(0, 0).Y)
	// The block at (2,1): x 14..15, y 22..23 → 42, 52, 43, 53 → 47.5 → 48.
	require.Equal(t, uint8(48), m.GrayAt(2, 1).Y)
}
