// Package thumb makes thumbnails of stored instances in a durable
// background job (River, storage/jobs), at least two sizes, with
// disintegration/imaging.
//
// Keys: the thumbnails of the instance stored under
// instances/<path>.dcm are stored beside it as thumbs/<path>/<size>.jpg
// (JPEG, longest side <size> px; 128 and 512 by default); a key that does
// not follow the instances/…dcm pattern maps to thumbs/<key>/<size>.jpg.
// A thumbnail that cannot be made (undecodable or unsupported pixel data,
// no pixel data, attempts exhausted) leaves thumbs/<path>/failed.json with
// the reason, so the UI shows a placeholder with it; Lookup reports which.
//
// The job: the transaction that indexes an instance also queues it for
// thumbnails (a trigger fills dicom.thumbnail_queue, no extra round trip on
// the ingest path), so the work exists exactly when the instance does; the
// server's Dispatcher turns queued rows into batch jobs of up to BatchSize
// instances soon after the commit (EnqueueThumbnail enqueues a job for one
// instance directly; an instance of a batch whose attempt failed for a
// passing reason goes on as such a job). The worker reads the header and only the frame it needs through ranged reads
// (the middle frame of a multi-frame image), renders it with the header's
// window or the automatic one, and writes every size. Storage errors are
// retried with River's backoff (MaxAttempts); errors in the data are final
// at once (river.JobCancel), recorded on the job and in failed.json.
package thumb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/disintegration/imaging"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel"
	"github.com/molar-health/molar/dicom/render"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/jobs"
)

// DefaultSizes are the thumbnail sizes (longest side, px).
var DefaultSizes = []int{128, 512}

// DefaultQuality is the JPEG quality of thumbnails.
const DefaultQuality = 85

// MaxAttempts of a thumbnail job before it is given up.
const MaxAttempts = 8

// Args is the thumbnail job: the object key of the instance.
type Args struct {
	Key string `json:"key"`
}

// Kind implements river.JobArgs.
func (Args) Kind() string { return "imaging.thumbnail" }

// Queue is the River queue of thumbnail jobs. It gets more workers than
// the cores it may use (Worker.Parallel): River fetches jobs in rounds
// spaced by its fetch cooldown, as many per round as it has free workers,
// so one worker would make thumbnails at ≈ 50 instances/s however idle
// the CPUs, and a burst of 1,000 instances would wait 20 s for them.
const Queue = "thumbnails"

// QueueWorkers is the number of jobs the thumbnail queue holds at once:
// with batch jobs (BatchSize instances each) 64 instances in hand, enough
// for the threads, few enough that the last of them gets a thread well
// within River's rescue of jobs that run for an hour.
const QueueWorkers = 4

// InsertOpts makes repeated enqueues of one instance a single job.
func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// EnqueueThumbnail inserts the thumbnail job for the instance stored under
// key in the caller's transaction (ingest's index insert).
func EnqueueThumbnail(ctx context.Context, tx pgx.Tx, q *jobs.Queue, key string) (int64, error) {
	if err := storage.ValidateKey(key); err != nil {
		return 0, fmt.Errorf("thumb: %w", err)
	}
	return q.InsertTx(ctx, tx, Args{Key: key}, nil)
}

// Key returns the object key of the size px thumbnail of an instance.
func Key(instanceKey string, size int) string {
	return fmt.Sprintf("%s/%d.jpg", base(instanceKey), size)
}

// FailedKey returns the key of the failure note of an instance.
func FailedKey(instanceKey string) string { return base(instanceKey) + "/failed.json" }

func base(key string) string {
	k := strings.TrimSuffix(strings.TrimPrefix(key, "instances/"), ".dcm")
	return "thumbs/" + k
}

// InstanceKey returns the key of the instance that a thumbnail or failure
// note belongs to (thumbs/<path>/<file> → instances/<path>.dcm), for the
// sweep of thumbnails whose instance is gone.
func InstanceKey(thumbObject string) (string, bool) {
	rest, ok := strings.CutPrefix(thumbObject, "thumbs/")
	i := strings.LastIndexByte(rest, '/')
	if !ok || i <= 0 {
		return "", false
	}
	return "instances/" + rest[:i] + ".dcm", true
}

// Failure is the content of failed.json.
type Failure struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Status of an instance's thumbnails.
type Status struct {
	// Ready lists the sizes that exist.
	Ready []int `json:"ready,omitempty"`
	// Failed is set when the thumbnail could not be made.
	Failed *Failure `json:"failed,omitempty"`
}

// Pending reports that the job has not finished yet.
func (s Status) Pending() bool { return len(s.Ready) == 0 && s.Failed == nil }

// Lookup reports which thumbnails of an instance exist, or why they could
// not be made. It never fails for a missing instance: that is Pending.
func Lookup(ctx context.Context, store storage.ObjectStore, instanceKey string, sizes []int) (Status, error) {
	if sizes == nil {
		sizes = DefaultSizes
	}
	var st Status
	for _, s := range sizes {
		info, err := store.Stat(ctx, Key(instanceKey, s))
		switch {
		case err == nil && info.Size == 0:
			// Cut short by a crash (thumbnails are derived objects,
			// written without fsync): missing, Ensure makes it again.
		case err == nil:
			st.Ready = append(st.Ready, s)
		case !errors.Is(err, storage.ErrNotFound):
			return st, fmt.Errorf("thumb: %w", err)
		}
	}
	if len(st.Ready) > 0 {
		return st, nil
	}
	f, err := readFailure(ctx, store, instanceKey)
	st.Failed = f
	return st, err
}

// readFailure reads an instance's failure note; nil when there is none.
func readFailure(ctx context.Context, store storage.ObjectStore, instanceKey string) (*Failure, error) {
	rc, _, err := store.Get(ctx, FailedKey(instanceKey), nil)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("thumb: %w", err)
	}
	defer rc.Close()
	var f Failure
	if err := json.NewDecoder(rc).Decode(&f); err != nil {
		f.Reason = "thumbnail failed"
	}
	return &f, nil
}

// FailedError is Ensure's answer for an instance whose thumbnails could
// not be made (its failure note).
type FailedError struct{ Failure }

func (e *FailedError) Error() string { return "thumb: could not be made: " + e.Reason }

// Worker makes thumbnails; register it with river.AddWorker.
type Worker struct {
	river.WorkerDefaults[Args]
	Store   storage.ObjectStore
	Sizes   []int // default DefaultSizes
	Quality int   // JPEG quality (default DefaultQuality)
	Pixel   pixel.Options
	// Parallel bounds the thumbnails made at once (CPU: decoding, resizing,
	// encoding), default 1, whatever the queue's workers: arriving
	// instances keep the other cores.
	Parallel int
	// Nice is the scheduling priority the thumbnails are made at (Linux
	// nice value, 0–19; 0 leaves it): with 10, arriving instances get
	// about nine tenths of a busy core and thumbnails the rest, and all
	// of an idle one.
	Nice int

	// Indexed tells whether an instance row points to key (optional): a
	// job whose object is missing checks it to tell a deleted instance
	// from a lost object.
	Indexed func(ctx context.Context, key string) (bool, error)
	Logger  *slog.Logger // optional
	// Remote says the store is reached over the network (S3): reading an
	// object and storing its thumbnails then wait on round trips, so they
	// run outside the pool's threads, many instances at once, and only the
	// rendering takes a thread. On a local store everything runs on the
	// thread, at its lower priority (creating files costs CPU too).
	Remote bool

	once    sync.Once
	threads *pool
	remote  chan struct{} // turns of attemptRemote
}

// attemptTimeout bounds one attempt once it has a thread.
const attemptTimeout = 2 * time.Minute

// Timeout: none from River. A job may wait for one of the pool's threads
// while instances arrive (the queue holds more jobs than there are
// threads); only its work is bounded (attemptTimeout), so that waiting
// never uses up attempts.
func (w *Worker) Timeout(*river.Job[Args]) time.Duration { return -1 }

// Work implements river.Worker.
func (w *Worker) Work(ctx context.Context, job *river.Job[Args]) error {
	err := w.attempt(ctx, job.Args.Key)
	switch {
	case err == nil:
		return nil
	case IsPermanent(err):
		return river.JobCancel(err) // noted by attempt
	case job.Attempt >= job.MaxAttempts:
		w.fail(ctx, job.Args.Key, err)
	}
	return err
}

// attempt makes one instance's thumbnails, the CPU work on one of the
// pool's threads. It returns nil when there is nothing more to do (made;
// the instance deleted meanwhile; its object lost, which it reports), the
// error itself when the data cannot give a thumbnail (IsPermanent: the
// failure noted), and any other error when trying again may help.
func (w *Worker) attempt(ctx context.Context, key string) error {
	w.once.Do(func() {
		w.threads = newPool(w.Parallel, w.Nice)
		w.remote = make(chan struct{}, remoteAtOnce)
	})
	var err error
	if w.Remote {
		err = w.attemptRemote(ctx, key)
	} else {
		err = w.threads.run(ctx, func() error {
			ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
			defer cancel()
			return w.Make(ctx, key)
		})
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrNotFound):
		return w.lost(ctx, key)
	case IsPermanent(err):
		w.fail(ctx, key, err)
	}
	return err
}

// On a remote store (Worker.Remote) at most remoteAtOnce instances are
// between their read and their stored thumbnails at once: enough round
// trips in flight to keep up with ingest (≈ 3 ms of waiting per
// instance), few enough not to crowd a store that shares the cores
// (bench/dicomperf: with 32 at once, versitygw on the same two cores took
// S3 ingest of small instances on four associations from 1.0 to 0.44 of
// the filesystem's). Objects up to fetchMax are read whole before a thread
// is taken (so at most remoteAtOnce × fetchMax bytes are held); larger
// ones are read as the rendering needs them, on the thread.
const (
	remoteAtOnce = 4
	fetchMax     = 8 << 20
)

// attemptRemote is Make for a store reached over the network: the object
// is read, and the thumbnails stored, outside the pool's threads, so
// instances wait on the store's round trips together while the threads
// render. Waiting for a turn or a thread is not bounded (as for the local
// store); each step's work is.
func (w *Worker) attemptRemote(ctx context.Context, key string) error {
	select {
	case w.remote <- struct{}{}:
		defer func() { <-w.remote }()
	case <-ctx.Done():
		return ctx.Err()
	}
	var src io.ReaderAt
	var size int64
	err := func() error {
		ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		var err error
		src, size, err = readObject(ctx, w.Store, key)
		return err
	}()
	if err != nil {
		return err
	}
	if src == nil { // too large to hold: read as the rendering needs it
		src = storage.NewReaderAt(ctx, w.Store, key, size, 0, 0)
	}
	var jpegs [][]byte
	err = w.threads.run(ctx, func() error {
		ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		var err error
		jpegs, err = w.encode(ctx, key, src, size)
		return err
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	return w.put(ctx, key, jpegs)
}

// readObject reads an object whole in one request when it is at most
// fetchMax long; a larger one it leaves unread (nil) and reports its size.
func readObject(ctx context.Context, store storage.ObjectStore, key string) (io.ReaderAt, int64, error) {
	rc, info, err := store.Get(ctx, key, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("thumb: %w", err)
	}
	defer rc.Close()
	if info.Size > fetchMax {
		return nil, info.Size, nil
	}
	b := make([]byte, info.Size)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, 0, fmt.Errorf("thumb: read %s: %w", key, err)
	}
	return bytes.NewReader(b), info.Size, nil
}

// lost handles an instance object that is not in the store. Usually the
// instance was deleted before its thumbnails were made: nothing to do. If
// its row is still there, an acknowledged object has been lost (a restore
// from an incomplete backup, a hand-deleted file): that is logged as an
// error for the operators and noted as the thumbnail's failure, so viewers
// say why there is no image.
func (w *Worker) lost(ctx context.Context, key string) error {
	if w.Indexed == nil {
		return nil
	}
	indexed, err := w.Indexed(ctx, key)
	if err != nil {
		return fmt.Errorf("thumb: is %s indexed: %w", key, err)
	}
	if !indexed {
		return nil
	}
	if w.Logger != nil {
		w.Logger.Error("the object of an indexed instance is missing from the object store; run molar archive verify", "object", key)
	}
	w.fail(ctx, key, errors.New("the image's object is missing from the object store"))
	return nil
}

// IsPermanent reports errors in the data (retrying cannot help).
func IsPermanent(err error) bool {
	for _, e := range []error{pixel.ErrMalformed, pixel.ErrUnsupported, pixel.ErrNoPixelData, pixel.ErrLimit,
		render.ErrUnsupported, header.ErrMalformed, header.ErrTruncated, header.ErrLimit, storage.ErrNotFound, storage.ErrInvalidKey} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (w *Worker) fail(ctx context.Context, key string, cause error) {
	// Also when the attempt's time ran out: the note must still be written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	b, _ := json.Marshal(Failure{Reason: cause.Error(), At: time.Now().UTC()})
	_, _ = w.Store.Put(ctx, FailedKey(key), bytes.NewReader(b), storage.PutOptions{Size: int64(len(b)), ContentType: "application/json", Derived: true})
}

// Make renders and stores the thumbnails of one instance now (the job's
// work, also usable without the queue).
func (w *Worker) Make(ctx context.Context, key string) error {
	info, err := w.Store.Stat(ctx, key)
	if err != nil {
		return fmt.Errorf("thumb: %w", err)
	}
	jpegs, err := w.encode(ctx, key, storage.NewReaderAt(ctx, w.Store, key, info.Size, 0, 0), info.Size)
	if err != nil {
		return err
	}
	return w.put(ctx, key, jpegs)
}

// encode renders an instance's thumbnails from the object's bytes (src,
// size long) and encodes them as JPEG, one per size: the CPU part of Make.
func (w *Worker) encode(ctx context.Context, key string, src io.ReaderAt, size int64) ([][]byte, error) {
	imgs, err := renderFrom(ctx, src, size, key, w.sizes(), w.Pixel)
	if err != nil {
		return nil, err
	}
	q := w.Quality
	if q <= 0 {
		q = DefaultQuality
	}
	out := make([][]byte, len(imgs))
	for i, img := range imgs {
		var buf bytes.Buffer
		if err := render.Encode(&buf, img, render.JPEG, q); err != nil {
			return nil, err
		}
		out[i] = buf.Bytes()
	}
	return out, nil
}

// put stores the encoded thumbnails of an instance: the storage part of
// Make after the rendering.
func (w *Worker) put(ctx context.Context, key string, jpegs [][]byte) error {
	for i, s := range w.sizes() {
		if _, err := w.Store.Put(ctx, Key(key, s), bytes.NewReader(jpegs[i]), storage.PutOptions{Size: int64(len(jpegs[i])), ContentType: "image/jpeg", Derived: true}); err != nil {
			return fmt.Errorf("thumb: store %d px: %w", s, err)
		}
	}
	// A failure note of an earlier attempt may stay: Lookup prefers the
	// thumbnails, and deleting the instance removes both. (Not deleting it
	// here saves a request to the store per instance.)
	dropOrphans(ctx, w.Store, key, w.sizes())
	return nil
}

// Ensure returns the size px thumbnail of an instance: the stored one;
// when there is none and a failure is recorded, a *FailedError with its
// reason; else (the job has not run yet, or a crash lost the thumbnail or
// cut it short) one rendered now, which it also stores for the next reader
// (best effort: a read-only store still gets its image). made reports the
// rendering. A stored thumbnail costs one read of the store.
func Ensure(ctx context.Context, store storage.ObjectStore, instanceKey string, size int, opts pixel.Options) (jpeg io.ReadCloser, made bool, err error) {
	rc, _, err := store.Get(ctx, Key(instanceKey, size), nil)
	switch {
	case err == nil:
		b, err := io.ReadAll(io.LimitReader(rc, maxThumbnailBytes))
		rc.Close()
		if err != nil {
			return nil, false, fmt.Errorf("thumb: %w", err)
		}
		if wholeJPEG(b) {
			return io.NopCloser(bytes.NewReader(b)), false, nil
		}
		// Empty or cut short by a crash (derived objects are written
		// without fsync): made again below.
	case !errors.Is(err, storage.ErrNotFound):
		return nil, false, fmt.Errorf("thumb: %w", err)
	}
	switch f, err := readFailure(ctx, store, instanceKey); {
	case err != nil:
		return nil, false, err
	case f != nil:
		return nil, false, &FailedError{*f}
	}
	imgs, err := Render(ctx, store, instanceKey, []int{size}, opts)
	if err != nil {
		return nil, false, err
	}
	var buf bytes.Buffer
	if err := render.Encode(&buf, imgs[0], render.JPEG, DefaultQuality); err != nil {
		return nil, false, err
	}
	b := buf.Bytes()
	if _, err := store.Put(ctx, Key(instanceKey, size), bytes.NewReader(b), storage.PutOptions{Size: int64(len(b)), ContentType: "image/jpeg", Derived: true}); err == nil {
		dropOrphans(ctx, store, instanceKey, []int{size})
	}
	return io.NopCloser(bytes.NewReader(b)), true, nil
}

// maxThumbnailBytes bounds what Ensure reads of a stored thumbnail.
const maxThumbnailBytes = 8 << 20

// wholeJPEG reports whether b starts and ends like a JPEG file (SOI, EOI):
// a thumbnail cut short by a crash does not.
func wholeJPEG(b []byte) bool {
	return len(b) >= 4 && b[0] == 0xFF && b[1] == 0xD8 && b[len(b)-2] == 0xFF && b[len(b)-1] == 0xD9
}

// dropOrphans removes the thumbnails just written for an instance whose
// object has been deleted meanwhile (deletion removes the object first,
// then lists and removes its thumbnails: a thumbnail written after that
// listing is seen here, as the object is gone by then).
func dropOrphans(ctx context.Context, store storage.ObjectStore, instanceKey string, sizes []int) {
	if _, err := store.Stat(ctx, instanceKey); !errors.Is(err, storage.ErrNotFound) {
		return
	}
	for _, s := range sizes {
		_ = store.Delete(ctx, Key(instanceKey, s))
	}
}

func (w *Worker) sizes() []int {
	if len(w.Sizes) > 0 {
		return w.Sizes
	}
	return DefaultSizes
}

// Render reads an instance from the store and returns its thumbnails, one
// per size (largest side), without storing them.
func Render(ctx context.Context, store storage.ObjectStore, key string, sizes []int, opts pixel.Options) ([]image.Image, error) {
	info, err := store.Stat(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("thumb: %w", err)
	}
	return renderFrom(ctx, storage.NewReaderAt(ctx, store, key, info.Size, 0, 0), info.Size, key, sizes, opts)
}

// renderFrom is Render from the object's bytes (ra, size long).
func renderFrom(ctx context.Context, ra io.ReaderAt, size int64, key string, sizes []int, opts pixel.Options) ([]image.Image, error) {
	in, err := render.Open(ra, size, opts)
	if err != nil {
		return nil, fmt.Errorf("thumb: %s: %w", key, err)
	}
	full, _, err := in.Render(ctx, in.Frames.Len()/2, render.Options{})
	if err != nil {
		return nil, fmt.Errorf("thumb: %s: %w", key, err)
	}
	return Resize(full, sizes), nil
}

// Resize fits a rendering into each size (largest first, each step from
// the previous one), keeping grey pictures grey.
func Resize(full image.Image, sizes []int) []image.Image {
	out := make([]image.Image, len(sizes))
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	// largest first
	for i := 0; i < len(order); i++ {
		for j := i + 1; j < len(order); j++ {
			if sizes[order[j]] > sizes[order[i]] {
				order[i], order[j] = order[j], order[i]
			}
		}
	}
	src := full
	for _, i := range order {
		b := src.Bounds()
		w, h := render.FitSize(b.Dx(), b.Dy(), sizes[i], sizes[i])
		var m image.Image = src
		if w < b.Dx() || h < b.Dy() {
			// A grey picture at least twice the size is first averaged
			// over k×k blocks (a box filter, which also keeps the final
			// linear filter from aliasing): a quarter or less of the
			// pixels to resample.
			if g, ok := src.(*image.Gray); ok {
				if k := min(b.Dx()/w, b.Dy()/h); k >= 2 {
					src = boxShrink(g, k)
				}
			}
			m = imaging.Resize(src, w, h, imaging.Linear)
			if _, grey := full.(*image.Gray); grey {
				m = toGray(m.(*image.NRGBA))
			}
		}
		out[i] = m
		src = m
	}
	return out
}

// boxShrink averages g over k×k blocks (a partial block at the right or
// bottom edge is dropped: less than k pixels of a picture k×size wide).
func boxShrink(g *image.Gray, k int) *image.Gray {
	b := g.Bounds()
	w, h := b.Dx()/k, b.Dy()/k
	out := image.NewGray(image.Rect(0, 0, w, h))
	sums := make([]int, w)
	n := k * k
	for y := 0; y < h; y++ {
		clear(sums)
		for dy := 0; dy < k; dy++ {
			off := g.PixOffset(b.Min.X, b.Min.Y+y*k+dy)
			row := g.Pix[off : off+w*k]
			for x := 0; x < w; x++ {
				s := 0
				for _, v := range row[x*k : x*k+k] {
					s += int(v)
				}
				sums[x] += s
			}
		}
		o := out.Pix[y*out.Stride : y*out.Stride+w]
		for x := range o {
			o[x] = uint8((sums[x] + n/2) / n)
		}
	}
	return out
}

func toGray(m *image.NRGBA) *image.Gray {
	g := image.NewGray(m.Rect)
	for i := range g.Pix {
		g.Pix[i] = m.Pix[4*i]
	}
	return g
}
