package thumb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/pixel"
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
	for in, want := range map[string]string{
		"thumbs/2026/01/02/abc/128.jpg":     "instances/2026/01/02/abc.dcm",
		"thumbs/2026/01/02/abc/failed.json": "instances/2026/01/02/abc.dcm",
		Key("instances/a/b.dcm", 512):       "instances/a/b.dcm",
		"thumbs/x":                          "",
		"thumbs/":                           "",
		"instances/2026/01/02/abc.dcm":      "",
	} {
		got, ok := InstanceKey(in)
		require.Equal(t, want, got, in)
		require.Equal(t, want != "", ok, in)
	}
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

	// A failure note from an earlier attempt gives way to thumbnails made later.
	key := "instances/a/retried.dcm"
	put(t, store, key, pixeltest.Spec{Rows: 60, Columns: 40, BitsAllocated: 8, BitsStored: 8, Seed: 9}.File())
	put(t, store, FailedKey(key), []byte(`{"reason":"store unavailable"}`))
	st, err := Lookup(ctx, store, key, nil)
	require.NoError(t, err)
	require.NotNil(t, st.Failed)
	require.NoError(t, w.Make(ctx, key))
	st, err = Lookup(ctx, store, key, nil)
	require.NoError(t, err)
	require.Equal(t, []int{128, 512}, st.Ready)
	require.Nil(t, st.Failed)

	// Truncated pixel data: permanent failure, recorded.
	bad := io.File()
	bad = bad[:len(bad)-1000]
	put(t, store, "instances/a/bad.dcm", bad)
	job := &river.Job[Args]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: MaxAttempts}, Args: Args{Key: "instances/a/bad.dcm"}}
	err = w.Work(ctx, job)
	var cancel *rivertype.JobCancelError
	require.True(t, errors.As(err, &cancel), "want JobCancel, got %v", err)
	st, err = Lookup(ctx, store, "instances/a/bad.dcm", nil)
	require.NoError(t, err)
	require.NotNil(t, st.Failed)
	require.Contains(t, st.Failed.Reason, "malformed")
	t.Log(st.Failed.Reason)
}

// TestEnsure: a thumbnail the job has not made, or one a crash left empty,
// is rendered on request and stored for the next reader.
func TestEnsure(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	key := "instances/b/io.dcm"
	put(t, store, key, pixeltest.Spec{Rows: 300, Columns: 200, BitsAllocated: 16, BitsStored: 12, Seed: 4}.File())

	read := func() ([]byte, bool) {
		rc, made, err := Ensure(ctx, store, key, 128, pixel.Options{})
		require.NoError(t, err)
		defer rc.Close()
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rc)
		require.NoError(t, err)
		img, err := jpeg.Decode(bytes.NewReader(buf.Bytes()))
		require.NoError(t, err)
		require.Equal(t, 128, img.Bounds().Dy())
		return buf.Bytes(), made
	}
	first, made := read()
	require.True(t, made, "nothing stored yet: rendered")
	st, err := Lookup(ctx, store, key, []int{128})
	require.NoError(t, err)
	require.Equal(t, []int{128}, st.Ready, "and stored")
	again, made := read()
	require.False(t, made, "the stored one is served")
	require.Equal(t, first, again)

	// A crash left the derived object empty: missing, made again.
	put(t, store, Key(key, 128), nil)
	st, err = Lookup(ctx, store, key, []int{128})
	require.NoError(t, err)
	require.True(t, st.Pending(), "an empty thumbnail is not ready")
	healed, made := read()
	require.True(t, made)
	require.Equal(t, first, healed)
	info, err := store.Stat(ctx, Key(key, 128))
	require.NoError(t, err)
	require.Equal(t, int64(len(first)), info.Size)

	// Cut short (not empty): made again as well.
	put(t, store, Key(key, 128), first[:len(first)/2])
	healed, made = read()
	require.True(t, made, "a thumbnail without its JPEG end is not served")
	require.Equal(t, first, healed)

	_, _, err = Ensure(ctx, store, "instances/b/missing.dcm", 128, pixel.Options{})
	require.ErrorIs(t, err, storage.ErrNotFound)

	// A recorded failure and no thumbnail: the reason, nothing rendered.
	put(t, store, FailedKey("instances/b/missing.dcm"), []byte(`{"reason":"pixel data malformed"}`))
	_, _, err = Ensure(ctx, store, "instances/b/missing.dcm", 128, pixel.Options{})
	var failed *FailedError
	require.ErrorAs(t, err, &failed)
	require.Equal(t, "pixel data malformed", failed.Reason)
}

// TestDeletedMeanwhile: an instance deleted while its thumbnails are made
// (the deletion has listed and removed its thumbnails already) keeps no
// thumbnail, and a job for an instance deleted before it ran ends without
// a failure note: nothing of the instance stays behind.
func TestDeletedMeanwhile(t *testing.T) {
	ctx := context.Background()
	base := newStore(t)
	key := "instances/d/io.dcm"
	put(t, base, key, pixeltest.Spec{Rows: 300, Columns: 200, BitsAllocated: 16, BitsStored: 12, Seed: 5}.File())
	store := &deletingStore{ObjectStore: base, victim: key}
	w := &Worker{Store: store}
	job := &river.Job[Args]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: MaxAttempts}, Args: Args{Key: key}}
	require.NoError(t, w.Work(ctx, job))
	require.Empty(t, listAll(t, base, "thumbs/"), "no thumbnail outlives its instance")

	// Deleted before the job ran: done, no failed.json.
	require.NoError(t, w.Work(ctx, job))
	require.Empty(t, listAll(t, base, "thumbs/"))

	// Ensure, the same race.
	put(t, base, key, pixeltest.Spec{Rows: 300, Columns: 200, BitsAllocated: 16, BitsStored: 12, Seed: 5}.File())
	store.done = false
	rc, made, err := Ensure(ctx, store, key, 128, pixel.Options{})
	require.NoError(t, err)
	rc.Close()
	require.True(t, made)
	require.Empty(t, listAll(t, base, "thumbs/"))
}

// deletingStore deletes victim when the first thumbnail is written, as a
// deletion running at that moment would.
type deletingStore struct {
	storage.ObjectStore
	victim string
	done   bool
}

func (s *deletingStore) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if !s.done && strings.HasPrefix(key, "thumbs/") {
		s.done = true
		if err := s.ObjectStore.Delete(ctx, s.victim); err != nil {
			return storage.ObjectInfo{}, err
		}
	}
	return s.ObjectStore.Put(ctx, key, r, opts)
}

func listAll(t *testing.T, s storage.ObjectStore, prefix string) []string {
	var keys []string
	require.NoError(t, s.List(context.Background(), prefix, func(o storage.ObjectInfo) error { keys = append(keys, o.Key); return nil }))
	return keys
}

// TestParallel: however many jobs the queue hands the worker at once, at
// most Parallel thumbnails are made at the same time.
func TestParallel(t *testing.T) {
	ctx := context.Background()
	base := newStore(t)
	var keys []string
	for i := range 6 {
		key := fmt.Sprintf("instances/c/%d.dcm", i)
		put(t, base, key, pixeltest.Spec{Rows: 64, Columns: 64, BitsAllocated: 8, BitsStored: 8, Seed: uint64(i)}.File())
		keys = append(keys, key)
	}
	for _, parallel := range []int{1, 2} {
		store := &slowStore{ObjectStore: base, together: int32(parallel)}
		w := &Worker{Store: store, Parallel: parallel}
		var wg sync.WaitGroup
		errs := make([]error, len(keys))
		for i, key := range keys {
			wg.Go(func() {
				errs[i] = w.Work(ctx, &river.Job[Args]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: MaxAttempts}, Args: Args{Key: key}})
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		require.Equal(t, parallel, int(store.max.Load()), "thumbnails made at once with Parallel %d", parallel)
	}
}

// slowStore holds every Get open until together are open at once (or
// half a second has passed) and records the most that were.
type slowStore struct {
	storage.ObjectStore
	together  int32
	open, max atomic.Int32
}

func (s *slowStore) Get(ctx context.Context, key string, rng *storage.Range) (io.ReadCloser, storage.ObjectInfo, error) {
	n := s.open.Add(1)
	defer s.open.Add(-1)
	for {
		m := s.max.Load()
		if n <= m || s.max.CompareAndSwap(m, n) {
			break
		}
	}
	for deadline := time.Now().Add(500 * time.Millisecond); s.max.Load() < s.together && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond)
	return s.ObjectStore.Get(ctx, key, rng)
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
	q, err := jobs.New(db.App, jobs.Options{Workers: workers, FetchPoll: 50 * time.Millisecond, Queues: map[string]int{Queue: QueueWorkers}})
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

// TestLostObject: a job whose object is missing while its instance row is
// still there (an acknowledged object lost) is logged as an error and noted
// as the thumbnail's failure; for a deleted instance it stays quiet.
func TestLostObject(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	var logs bytes.Buffer
	indexed := map[string]bool{"instances/l/lost.dcm": true}
	w := &Worker{Store: store, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Indexed: func(_ context.Context, key string) (bool, error) { return indexed[key], nil }}
	job := func(key string) *river.Job[Args] {
		return &river.Job[Args]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: MaxAttempts}, Args: Args{Key: key}}
	}
	require.NoError(t, w.Work(ctx, job("instances/l/deleted.dcm")))
	require.Empty(t, listAll(t, store, "thumbs/"))
	require.Empty(t, logs.String())

	require.NoError(t, w.Work(ctx, job("instances/l/lost.dcm")))
	require.Contains(t, logs.String(), "level=ERROR")
	require.Contains(t, logs.String(), "object=instances/l/lost.dcm")
	_, _, err := Ensure(ctx, store, "instances/l/lost.dcm", 128, pixel.Options{})
	var failed *FailedError
	require.ErrorAs(t, err, &failed)
	require.Contains(t, failed.Reason, "missing from the object store")

	// The index cannot be asked: the job is tried again.
	down := errors.New("database down")
	w.Indexed = func(context.Context, string) (bool, error) { return false, down }
	require.ErrorIs(t, w.Work(ctx, job("instances/l/other.dcm")), down)
}

// flakyStore fails the first Get of key, as a store that hiccups does.
type flakyStore struct {
	storage.ObjectStore
	key    string
	failed atomic.Bool
}

func (s *flakyStore) Get(ctx context.Context, key string, rng *storage.Range) (io.ReadCloser, storage.ObjectInfo, error) {
	if key == s.key && s.failed.CompareAndSwap(false, true) {
		return nil, storage.ObjectInfo{}, errors.New("connection reset by peer")
	}
	return s.ObjectStore.Get(ctx, key, rng)
}

// TestBatchThroughRiver: a batch job makes the thumbnails of all its
// instances, notes the failure of a broken one, passes over a deleted one,
// and hands an instance whose attempt failed for a passing reason to a job
// of its own, which makes it.
func TestBatchThroughRiver(t *testing.T) {
	for _, remote := range []bool{false, true} {
		t.Run(fmt.Sprintf("remote=%v", remote), func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.Open(t, jobs.Source())
			require.NoError(t, jobs.Migrate(ctx, db.OwnerURL, nil))
			base := newStore(t)
			good1, good2, bad, gone, flaky := "instances/2026/02/04/g1.dcm", "instances/2026/02/04/g2.dcm",
				"instances/2026/02/04/bad.dcm", "instances/2026/02/04/gone.dcm", "instances/2026/02/04/flaky.dcm"
			store := &flakyStore{ObjectStore: base, key: flaky}
			w := &Worker{Store: store, Parallel: 2, Remote: remote}
			workers := river.NewWorkers()
			river.AddWorker(workers, w)
			river.AddWorker(workers, &BatchWorker{Worker: w})
			q, err := jobs.New(db.App, jobs.Options{Workers: workers, FetchPoll: 50 * time.Millisecond, Queues: map[string]int{Queue: QueueWorkers}})
			require.NoError(t, err)
			require.NoError(t, q.Start(ctx))
			t.Cleanup(func() { q.Stop(context.Background()) })

			for i, k := range []string{good1, good2, flaky} {
				put(t, base, k, pixeltest.Spec{Rows: 300, Columns: 200, BitsAllocated: 16, BitsStored: 12, Seed: uint64(i + 1)}.File())
			}
			put(t, base, bad, []byte("not DICOM at all, just text that goes on and on"))
			tx, err := db.App.Begin(ctx)
			require.NoError(t, err)
			id, err := q.InsertTx(ctx, tx, BatchArgs{Keys: []string{good1, bad, gone, flaky, good2}}, nil)
			require.NoError(t, err)
			require.NoError(t, tx.Commit(ctx))

			require.Eventually(t, func() bool {
				st, err := q.Get(ctx, id)
				return err == nil && st.State == "completed"
			}, 20*time.Second, 50*time.Millisecond)
			for _, k := range []string{good1, good2} {
				st, err := Lookup(ctx, base, k, nil)
				require.NoError(t, err)
				require.Equal(t, []int{128, 512}, st.Ready, k)
			}
			st, err := Lookup(ctx, base, bad, nil)
			require.NoError(t, err)
			require.NotNil(t, st.Failed)
			require.Empty(t, listAll(t, base, "thumbs/2026/02/04/gone/"))
			require.True(t, store.failed.Load())
			// Only the flaky one got a job of its own: the broken one's
			// failure is final, the deleted one has nothing to make.
			var singles []string
			rows, err := db.Admin.Query(ctx, "SELECT args->>'key' FROM "+jobs.Schema+".river_job WHERE kind = $1", Args{}.Kind())
			require.NoError(t, err)
			singles, err = pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Equal(t, []string{flaky}, singles)
			// The flaky one: a job of its own, which makes it.
			var single int64
			require.NoError(t, db.Admin.QueryRow(ctx, "SELECT id FROM "+jobs.Schema+".river_job WHERE kind = $1 AND args->>'key' = $2", Args{}.Kind(), flaky).Scan(&single))
			require.Eventually(t, func() bool {
				st, err := q.Get(ctx, single)
				return err == nil && st.State == "completed"
			}, 20*time.Second, 50*time.Millisecond)
			st, err = Lookup(ctx, base, flaky, nil)
			require.NoError(t, err)
			require.Equal(t, []int{128, 512}, st.Ready)
		})
	}
}

// TestRemoteLargeObject: with a remote store, an object too large to read
// ahead is rendered from ranged reads on the thread, as on a local store.
func TestRemoteLargeObject(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	key := "instances/2026/02/05/big.dcm"
	data := pixeltest.Spec{Rows: 2200, Columns: 2100, BitsAllocated: 16, BitsStored: 12, Seed: 9}.File()
	require.Greater(t, len(data), fetchMax)
	put(t, store, key, data)
	w := &Worker{Store: store, Remote: true}
	require.NoError(t, w.attempt(ctx, key))
	st, err := Lookup(ctx, store, key, nil)
	require.NoError(t, err)
	require.Equal(t, []int{128, 512}, st.Ready)
}

// panickyStore panics when asked about key.
type panickyStore struct {
	storage.ObjectStore
	key string
}

func (s panickyStore) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if key == s.key {
		panic("bug in the store adapter")
	}
	return s.ObjectStore.Stat(ctx, key)
}

// TestBatchPanicStaysInTheJob: a panic while one instance of a batch is
// made does not end the process (its goroutine is not a job runner's): it
// is that instance's error, the others are made.
func TestBatchPanicStaysInTheJob(t *testing.T) {
	ctx := context.Background()
	base := newStore(t)
	good, bad := "instances/2026/02/06/good.dcm", "instances/2026/02/06/panic.dcm"
	for _, k := range []string{good, bad} {
		put(t, base, k, pixeltest.Spec{Rows: 60, Columns: 80, BitsAllocated: 16, BitsStored: 12, Seed: 4}.File())
	}
	for _, remote := range []bool{false, true} {
		w := &Worker{Store: panickyStore{base, bad}, Remote: remote}
		job := &river.Job[BatchArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: MaxAttempts}, Args: BatchArgs{Keys: []string{bad, good}}}
		// No River client in this context: the instance to retry cannot be
		// handed on, so the batch fails (and River would run it again).
		err := (&BatchWorker{Worker: w}).Work(ctx, job)
		require.ErrorContains(t, err, "panic")
		st, err := Lookup(ctx, base, good, nil)
		require.NoError(t, err)
		require.Equal(t, []int{128, 512}, st.Ready)
	}
}
