package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/thumb"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage"
	fsstore "github.com/molar-health/molar/storage/fs"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type env struct {
	db     *pgtest.DB
	store  *fsstore.Store
	tenant int64
	in     *Ingester
}

func newEnv(t *testing.T) *env {
	db := pgtest.Open(t, auth.Migrations(), index.Migrations())
	ten, err := auth.CreateTenant(context.Background(), db.Admin, "0101", "Test")
	require.NoError(t, err)
	st, err := fsstore.New(t.TempDir())
	require.NoError(t, err)
	return &env{db: db, store: st, tenant: ten.ID, in: &Ingester{DB: db.App, Store: st, Policy: index.KeepFirst}}
}

func (e *env) objects(t *testing.T) []string {
	var keys []string
	require.NoError(t, e.store.List(context.Background(), "instances/", func(o storage.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}))
	return keys
}

func (e *env) get(t *testing.T, key string) []byte {
	rc, _, err := e.store.Get(context.Background(), key, nil)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func (e *env) instance(t *testing.T, sop string) (index.Instance, error) {
	var in index.Instance
	err := postgres.InTenant(context.Background(), e.db.App, e.tenant, func(tx pgx.Tx) error {
		var err error
		in, err = index.GetInstance(context.Background(), tx, sop)
		return err
	})
	return in, err
}

func sample(sop string) dicomtest.Instance {
	return dicomtest.Instance{PatientID: "1234", PatientName: "Ørsted^Åse", StudyUID: dicomtest.Root + ".1", SeriesUID: dicomtest.Root + ".1.1",
		SOPUID: sop, StudyDate: "20240115", StudyTime: "101112", Teeth: []string{"16", "46"}, Latin1: true, InstanceNumber: 1}
}

func cstore(in dicomtest.Instance, tenant int64, ts string) Source {
	return Source{TenantID: tenant, AE: "PANO1", SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: in.SOPUID, TransferSyntax: ts, Size: -1}
}

func TestIngestBareDataSetAllUncompressedSyntaxes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i, ts := range []string{uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian} {
		inst := sample(dicomtest.Root + ".1.1." + string(rune('1'+i)))
		body := inst.DataSet(t, ts)
		res, err := e.in.Ingest(ctx, cstore(inst, e.tenant, ts), bytes.NewReader(body))
		require.NoError(t, err, ts)
		require.Equal(t, index.OutcomeStored, res.Outcome)
		stored := e.get(t, res.ObjectKey)
		// A Part-10 file whose data set is exactly what was sent.
		got, gotTS := dicomtest.DataSetBody(t, stored)
		require.Equal(t, ts, gotTS)
		require.True(t, bytes.Equal(body, got), ts)
		sum := sha256.Sum256(stored)
		row, err := e.instance(t, inst.SOPUID)
		require.NoError(t, err)
		require.Equal(t, sum[:], row.SHA256)
		require.Equal(t, int64(len(stored)), row.Size)
		require.Equal(t, ts, row.TransferSyntax)
		require.Equal(t, []string{"16", "46"}, row.ToothCodes)
		require.Equal(t, "PANO1", row.SourceAE)
	}
	require.Len(t, e.objects(t), 4)
}

func TestIngestPart10StoredAsIs(t *testing.T) {
	e := newEnv(t)
	inst := sample(dicomtest.Root + ".2.1")
	file := inst.File(t)
	res, err := e.in.Ingest(context.Background(), Source{TenantID: e.tenant, AE: "import", Part10: true, Size: int64(len(file))}, bytes.NewReader(file))
	require.NoError(t, err)
	require.Equal(t, file, e.get(t, res.ObjectKey))
	require.Equal(t, index.ReconUnmatched, res.ReconState)
}

func TestIngestDuplicates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	inst := sample(dicomtest.Root + ".3.1")
	body := inst.DataSet(t, uid.ExplicitVRLittleEndian)
	first, err := e.in.Ingest(ctx, cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(body))
	require.NoError(t, err)
	// Identical resend: success, the copy is removed.
	res, err := e.in.Ingest(ctx, cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(body))
	require.NoError(t, err)
	require.Equal(t, index.OutcomeIdentical, res.Outcome)
	require.Equal(t, []string{first.ObjectKey}, e.objects(t))
	// Different content, keep-first: success, the stored object stays.
	inst2 := inst
	inst2.StudyDescription = "changed"
	body2 := inst2.DataSet(t, uid.ExplicitVRLittleEndian)
	res, err = e.in.Ingest(ctx, cstore(inst2, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(body2))
	require.NoError(t, err)
	require.Equal(t, index.OutcomeKeptFirst, res.Outcome)
	require.Equal(t, []string{first.ObjectKey}, e.objects(t))
	// Overwrite: the new object replaces the old one.
	e.in.Policy = index.Overwrite
	res, err = e.in.Ingest(ctx, cstore(inst2, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(body2))
	require.NoError(t, err)
	require.Equal(t, index.OutcomeOverwritten, res.Outcome)
	require.Equal(t, []string{res.ObjectKey}, e.objects(t))
	row, err := e.instance(t, inst.SOPUID)
	require.NoError(t, err)
	require.Equal(t, res.ObjectKey, row.ObjectKey)
}

type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

type brokenStore struct {
	storage.ObjectStore
	putErr error
}

func (b *brokenStore) Put(ctx context.Context, key string, r io.Reader, o storage.PutOptions) (storage.ObjectInfo, error) {
	_, _ = io.CopyN(io.Discard, r, 100)
	return storage.ObjectInfo{}, b.putErr
}

type brokenDB struct{}

func (brokenDB) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	return nil, errors.New("connection refused")
}

func TestIngestFailuresStoreNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	inst := sample(dicomtest.Root + ".4.1")
	inst.Rows, inst.Cols = 512, 512
	body := inst.DataSet(t, uid.ExplicitVRLittleEndian)
	src := cstore(inst, e.tenant, uid.ExplicitVRLittleEndian)

	for _, tc := range []struct {
		name   string
		src    Source
		r      io.Reader
		in     *Ingester
		want   error
		status uint16
	}{
		{"not DICOM", src, bytes.NewReader(bytes.Repeat([]byte("garbage!"), 1000)), nil, ErrUnparseable, 0xC000},
		{"empty", src, bytes.NewReader(nil), nil, ErrUnparseable, 0xC000},
		{"SOP class differs", func() Source { s := src; s.SOPClassUID = uid.CTImage; return s }(), bytes.NewReader(body), nil, ErrMismatch, 0xA900},
		{"SOP instance differs", func() Source { s := src; s.SOPInstanceUID = "1.2.3"; return s }(), bytes.NewReader(body), nil, ErrMismatch, 0xA900},
		{"truncated header", src, bytes.NewReader(body[:300]), nil, ErrUnparseable, 0xC000},
		{"connection lost in pixel data", src, &failingReader{r: bytes.NewReader(body), n: len(body) - 1000, err: errors.New("connection reset")}, nil, ErrSource, 0x0110},
		{"object store down", src, bytes.NewReader(body), &Ingester{DB: e.db.App, Store: &brokenStore{e.store, errors.New("s3: connection refused")}}, ErrObjectStore, 0xA700},
		{"database down", src, bytes.NewReader(body), &Ingester{DB: brokenDB{}, Store: e.store}, ErrDatabase, 0xA710},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in == nil {
				in = e.in
			}
			_, err := in.Ingest(ctx, tc.src, tc.r)
			require.ErrorIs(t, err, tc.want)
			st, _ := Status(err)
			require.Equal(t, tc.status, uint16(st))
			require.Empty(t, e.objects(t))
			_, err = e.instance(t, inst.SOPUID)
			require.ErrorIs(t, err, index.ErrNotFound)
		})
	}
	// Missing Study Instance UID.
	bad := inst.Dataset()
	bad.Remove(header.TagStudyInstanceUID)
	b, err := bad.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	_, err = e.in.Ingest(ctx, src, bytes.NewReader(b))
	require.ErrorIs(t, err, ErrMismatch)
	require.Empty(t, e.objects(t))
}

// TestCrashBeforeCommitIsSwept: an object made durable but never indexed
// (the process died between the two) is removed by the sweep after the
// grace period, indexed ones never.
func TestCrashBeforeCommitIsSwept(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ok := sample(dicomtest.Root + ".5.1")
	_, err := e.in.Ingest(ctx, cstore(ok, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(ok.DataSet(t, uid.ExplicitVRLittleEndian)))
	require.NoError(t, err)

	crash := sample(dicomtest.Root + ".5.2")
	in := *e.in
	in.afterPut = func() { panic("crash") }
	func() {
		defer func() { require.Equal(t, "crash", recover()) }()
		_, _ = in.Ingest(ctx, cstore(crash, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(crash.DataSet(t, uid.ExplicitVRLittleEndian)))
	}()
	require.Len(t, e.objects(t), 2)
	// Thumbnails beside both: the unindexed one's go with it.
	objects := e.objects(t)
	for _, k := range objects {
		for _, name := range []string{thumb.Key(k, 128), thumb.Key(k, 512), thumb.FailedKey(k)} {
			_, err := e.store.Put(ctx, name, bytes.NewReader([]byte("x")), storage.PutOptions{Size: 1, Derived: true})
			require.NoError(t, err)
		}
	}
	// Within the grace period nothing goes.
	n, err := Sweep(ctx, e.db.App, e.store, time.Now(), time.Hour, 1)
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = Sweep(ctx, e.db.App, e.store, time.Now().Add(2*time.Hour), time.Hour, 1)
	require.NoError(t, err)
	require.Equal(t, 4, n, "the unindexed object and its three thumbnail objects")
	keys := e.objects(t)
	require.Len(t, keys, 1)
	row, err := e.instance(t, ok.SOPUID)
	require.NoError(t, err)
	require.Equal(t, row.ObjectKey, keys[0])
	var thumbs []string
	require.NoError(t, e.store.List(ctx, "thumbs/", func(o storage.ObjectInfo) error { thumbs = append(thumbs, o.Key); return nil }))
	require.ElementsMatch(t, []string{thumb.Key(row.ObjectKey, 128), thumb.Key(row.ObjectKey, 512), thumb.FailedKey(row.ObjectKey)}, thumbs,
		"the indexed instance keeps its thumbnails")
}

type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// TestIngestStreamsLargeInstance: a 256 MiB instance passes with a small,
// constant heap (the pixel data is never held).
func TestIngestStreamsLargeInstance(t *testing.T) {
	e := newEnv(t)
	inst := sample(dicomtest.Root + ".6.1")
	d := inst.Dataset()
	d.Remove(header.TagPixelData)
	var px int64 = 256 << 20
	head, err := d.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	// Pixel data element header (OW, 32-bit length), then zeros.
	pxHeader := []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W', 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(pxHeader[8:], uint32(px))
	r := io.MultiReader(bytes.NewReader(head), bytes.NewReader(pxHeader), &zeros{n: px})
	runtime.GC()
	var before, peak runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.HeapInuse {
					peak = m
				}
			}
		}
	}()
	res, err := e.in.Ingest(context.Background(), cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), r)
	close(stop)
	<-done
	require.NoError(t, err)
	row, err := e.instance(t, inst.SOPUID)
	require.NoError(t, err)
	require.Greater(t, row.Size, px)
	require.Equal(t, res.ObjectKey, row.ObjectKey)
	growth := int64(peak.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap growth %d KiB for a %d MiB instance", growth>>10, px>>20)
	require.Less(t, growth, int64(16<<20))
}

// TestConcurrentResendsOfOneInstance: a modality resending one instance on
// several associations at once gets Success on every one; one object and
// one index row remain (the losers of the unique-key race retry and find
// the winner's identical row), and the pool's connections stay usable.
func TestConcurrentResendsOfOneInstance(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	inst := sample(dicomtest.Root + ".9.1")
	body := inst.DataSet(t, uid.ExplicitVRLittleEndian)
	const n = 8
	outcomes := make(chan string, n)
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		go func() {
			<-start
			res, err := e.in.Ingest(ctx, cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(body))
			errs <- err
			outcomes <- res.Outcome
		}()
	}
	close(start)
	count := map[string]int{}
	for i := 0; i < n; i++ {
		require.NoError(t, <-errs)
		count[<-outcomes]++
	}
	require.Equal(t, map[string]int{index.OutcomeStored: 1, index.OutcomeIdentical: n - 1}, count)
	stored, err := e.instance(t, inst.SOPUID)
	require.NoError(t, err)
	require.Equal(t, []string{stored.ObjectKey}, e.objects(t))
	require.Equal(t, body, e.get(t, stored.ObjectKey)[len(e.get(t, stored.ObjectKey))-len(body):])

	// Every connection is still good for the next ingests.
	for i := 0; i < 2*n; i++ {
		other := sample(fmt.Sprintf("%s.9.2.%d", dicomtest.Root, i))
		_, err := e.in.Ingest(ctx, cstore(other, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(other.DataSet(t, uid.ExplicitVRLittleEndian)))
		require.NoError(t, err)
	}
	require.Len(t, e.objects(t), 1+2*n)
}

// TestCommitWithoutAnswerKeepsTheObject: when the connection breaks as
// COMMIT is sent, Molar cannot know whether the server committed: the
// ingest fails (A710, the sender resends), the object stays (a committed
// row would point to it), and the orphan sweep removes it once it is sure
// nothing indexes it.
func TestCommitWithoutAnswerKeepsTheObject(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	inst := sample(dicomtest.Root + ".10.1")
	in := *e.in
	in.beforeCommit = func(c *pgxpool.Conn) { _ = c.Conn().PgConn().Conn().Close() }
	_, err := in.Ingest(ctx, cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(inst.DataSet(t, uid.ExplicitVRLittleEndian)))
	require.ErrorIs(t, err, ErrDatabase)
	require.ErrorIs(t, err, errCommitUnknown)
	st, _ := Status(err)
	require.Equal(t, dimse.Status(0xA710), st)
	require.Len(t, e.objects(t), 1, "the object stays")
	_, err = e.instance(t, inst.SOPUID)
	require.Error(t, err, "the COMMIT never reached the server: nothing is indexed")
	n, err := Sweep(ctx, e.db.App, e.store, time.Now().Add(2*time.Hour), time.Hour, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Empty(t, e.objects(t))
	// The resend is stored, on a healthy connection.
	_, err = e.in.Ingest(ctx, cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(inst.DataSet(t, uid.ExplicitVRLittleEndian)))
	require.NoError(t, err)
	require.Len(t, e.objects(t), 1)
}

// An object of an older instance whose row is gone (a deletion whose
// object removal failed) is outside the recent day folders: the
// month-by-month sweep of the older archive removes it, and keeps the
// indexed ones.
func TestSweepMonthRemovesOlderOrphans(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	old := now.AddDate(0, -2, 0)
	in := *e.in
	in.Now = func() time.Time { return old }
	kept, gone := sample(dicomtest.Root+".40.1"), sample(dicomtest.Root+".40.2")
	for _, inst := range []dicomtest.Instance{kept, gone} {
		_, err := in.Ingest(ctx, cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(inst.DataSet(t, uid.ExplicitVRLittleEndian)))
		require.NoError(t, err)
	}
	row, err := e.instance(t, gone.SOPUID)
	require.NoError(t, err)
	_, err = e.db.Admin.Exec(ctx, `DELETE FROM dicom.instance WHERE id = $1`, row.ID) // deleted, its object left behind
	require.NoError(t, err)
	// The store's modification times are now, so sweep as if a day later.
	later := now.Add(24 * time.Hour)
	n, err := Sweep(ctx, e.db.App, e.store, later, time.Hour, 2)
	require.NoError(t, err)
	require.Zero(t, n, "the recent day folders do not hold it")
	for back := 0; back <= 3; back++ {
		m, err := SweepMonth(ctx, e.db.App, e.store, later, time.Hour, back)
		require.NoError(t, err)
		n += m
	}
	require.Equal(t, 1, n)
	keys := e.objects(t)
	require.Len(t, keys, 1)
	k, err := e.instance(t, kept.SOPUID)
	require.NoError(t, err)
	require.Equal(t, k.ObjectKey, keys[0])
}

// Pointed at the wrong database (here: one whose rows are gone), the sweep
// finds most objects unknown and removes nothing.
func TestSweepBrakeOnAForeignIndex(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range brakeMin {
		inst := sample(fmt.Sprintf("%s.50.%d", dicomtest.Root, i+1))
		_, err := e.in.Ingest(ctx, cstore(inst, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(inst.DataSet(t, uid.ExplicitVRLittleEndian)))
		require.NoError(t, err)
	}
	_, err := e.db.Admin.Exec(ctx, `DELETE FROM dicom.instance`) // an empty (restored, staging …) index
	require.NoError(t, err)
	n, err := Sweep(ctx, e.db.App, e.store, time.Now().Add(2*time.Hour), time.Hour, 1)
	require.ErrorIs(t, err, ErrSweepBrake)
	require.Zero(t, n)
	require.Len(t, e.objects(t), brakeMin, "nothing removed")
}

// An instance is never filed under another patient's study or another
// study's series: it is refused (C409, with the reason), nothing of it is
// kept, and what is stored does not change.
func TestIngestRefusesWrongPatientAndForeignSeries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := sample(dicomtest.Root + ".7.1.1")
	first.StudyUID, first.SeriesUID = dicomtest.Root+".7", dicomtest.Root+".7.1"
	_, err := e.in.Ingest(ctx, cstore(first, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(first.DataSet(t, uid.ExplicitVRLittleEndian)))
	require.NoError(t, err)
	before := e.objects(t)

	for _, c := range []struct {
		name   string
		change func(*dicomtest.Instance)
		reason string
	}{
		{"another patient's study", func(in *dicomtest.Instance) { in.PatientID, in.PatientName = "5678", "Hansen^Jens" },
			"the study belongs to another patient (its Patient ID differs)"},
		{"another study's series", func(in *dicomtest.Instance) { in.StudyUID = dicomtest.Root + ".8" },
			"the series belongs to another study (Series UID in use)"},
	} {
		in := first
		in.SOPUID = dicomtest.Root + ".7.1.2"
		c.change(&in)
		_, err := e.in.Ingest(ctx, cstore(in, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(in.DataSet(t, uid.ExplicitVRLittleEndian)))
		require.ErrorIs(t, err, ErrInconsistent, c.name)
		st, comment := Status(err)
		require.Equal(t, dimse.Status(0xC409), st, c.name)
		require.Equal(t, c.reason, comment, c.name)
		_, err = e.instance(t, in.SOPUID)
		require.ErrorIs(t, err, index.ErrNotFound, "%s: not indexed", c.name)
		require.Equal(t, before, e.objects(t), "%s: no object kept", c.name)
	}
	// The same patient's next image of the study is stored as before.
	next := first
	next.SOPUID = dicomtest.Root + ".7.1.3"
	_, err = e.in.Ingest(ctx, cstore(next, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(next.DataSet(t, uid.ExplicitVRLittleEndian)))
	require.NoError(t, err)
	var patients int
	require.NoError(t, e.db.Admin.QueryRow(ctx, `SELECT count(*) FROM dicom.patient`).Scan(&patients))
	require.Equal(t, 1, patients, "no patient row left by the refused instance")

	// A study staff have merged into the right patient takes the
	// modality's resend with the old, wrong Patient ID.
	wrong := first
	wrong.PatientID, wrong.PatientName = "5678", "Hansen^Jens"
	wrong.StudyUID, wrong.SeriesUID, wrong.SOPUID = dicomtest.Root+".9", dicomtest.Root+".9.1", dicomtest.Root+".9.1.1"
	_, err = e.in.Ingest(ctx, cstore(wrong, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(wrong.DataSet(t, uid.ExplicitVRLittleEndian)))
	require.NoError(t, err)
	require.NoError(t, postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		var from, into int64
		if err := tx.QueryRow(ctx, `SELECT id FROM dicom.patient WHERE patient_id = '5678'`).Scan(&from); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT id FROM dicom.patient WHERE patient_id = '1234'`).Scan(&into); err != nil {
			return err
		}
		_, err := index.Merge(ctx, tx, from, into, "test")
		return err
	}))
	resend := wrong
	resend.SOPUID = dicomtest.Root + ".9.1.2"
	_, err = e.in.Ingest(ctx, cstore(resend, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(resend.DataSet(t, uid.ExplicitVRLittleEndian)))
	require.NoError(t, err, "a reconciled study takes the resend")
}

// A study staff have reconciled takes a resend with the Patient ID its
// instances were sent with, not any other: linking a study to a person (its
// Patient ID stays) or correcting it must not open it to a third patient's
// images under the same Study Instance UID.
func TestIngestReconciledStudyStillRefusesAnotherPatient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ingestOne := func(in dicomtest.Instance) error {
		_, err := e.in.Ingest(ctx, cstore(in, e.tenant, uid.ExplicitVRLittleEndian), bytes.NewReader(in.DataSet(t, uid.ExplicitVRLittleEndian)))
		return err
	}
	first := sample(dicomtest.Root + ".7.1.1")
	first.StudyUID, first.SeriesUID = dicomtest.Root+".7", dicomtest.Root+".7.1"
	require.NoError(t, ingestOne(first))
	second := sample(dicomtest.Root + ".8.1.1")
	second.PatientID, second.PatientName = "4321", "Hansen^Jens"
	second.StudyUID, second.SeriesUID = dicomtest.Root+".8", dicomtest.Root+".8.1"
	require.NoError(t, ingestOne(second))
	require.NoError(t, postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		p, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: e.tenant, GivenName: "Åse", FamilyName: "Ørsted",
			BirthDate: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			return err
		}
		var st1, st2 int64
		if err := tx.QueryRow(ctx, `SELECT id FROM dicom.study WHERE study_uid = $1`, first.StudyUID).Scan(&st1); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT id FROM dicom.study WHERE study_uid = $1`, second.StudyUID).Scan(&st2); err != nil {
			return err
		}
		if _, err := index.Link(ctx, tx, st1, p.ID, "test"); err != nil {
			return err
		}
		_, err = index.Correct(ctx, tx, st2, index.Correction{PatientID: "1234"}, "test")
		return err
	}))
	for i, c := range []struct {
		name      string
		study     dicomtest.Instance
		patientID string
		ok        bool
	}{
		{"linked study, another patient", first, "5678", false},
		{"linked study, its own Patient ID", first, "1234", true},
		{"corrected study, a third patient", second, "5678", false},
		{"corrected study, the old Patient ID", second, "4321", true},
		{"corrected study, the corrected Patient ID", second, "1234", true},
	} {
		in := c.study
		in.SOPUID = fmt.Sprintf("%s.%d", in.SeriesUID, 10+i)
		in.PatientID = c.patientID
		err := ingestOne(in)
		if c.ok {
			require.NoError(t, err, c.name)
			continue
		}
		require.ErrorIs(t, err, ErrInconsistent, c.name)
		_, err = e.instance(t, in.SOPUID)
		require.ErrorIs(t, err, index.ErrNotFound, "%s: not indexed", c.name)
	}
}
