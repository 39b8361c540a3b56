// Package ingest is Molar's one path for new DICOM instances: C-STORE,
// STOW-RS and `molar import` all call Ingester.Ingest.
//
// The bytes stream from the source into the object store (a Part-10 file
// under a random key, instances/YYYY/MM/DD/<random>.dcm; data sets without
// file meta, as C-STORE sends them, get a generated meta) while the bounded
// header reader parses a copy of the stream up to the pixel data (never the
// pixel data in memory), and SHA-256 is computed on the way. Then one
// database transaction indexes the instance (index.Ingest: duplicate policy,
// patient/study/series, reconciliation with the register, the thumbnail
// queue row). Ingest returns nil only after the
// object is durable and the transaction committed; a failure leaves nothing
// indexed, and an object written but not indexed (a crash in between) is
// removed by Sweep after a grace period.
//
// Errors wrap the sentinels below; Status maps them to DIMSE statuses in
// one place (STOW-RS maps the same sentinels to HTTP).
package ingest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage"
)

// Errors of Ingest.
var (
	// ErrUnparseable: the data set is not DICOM we can read (C000).
	ErrUnparseable = errors.New("ingest: cannot understand the data set")
	// ErrMismatch: the data set does not match the SOP class / instance of
	// the request, or lacks a required UID (A900).
	ErrMismatch = errors.New("ingest: data set does not match SOP class")
	// ErrObjectStore: the object store failed (A700).
	ErrObjectStore = errors.New("ingest: object store unavailable")
	// ErrInconsistent: the instance contradicts the index: its study is
	// another patient's, its series another study's (C409, nothing stored).
	ErrInconsistent = index.ErrInconsistent
	// ErrDatabase: the index failed (A710).
	ErrDatabase = errors.New("ingest: index unavailable")
	// ErrSource: the source failed midway (association lost, read error);
	// nothing was kept.
	ErrSource = errors.New("ingest: incomplete data")
)

// Status maps an Ingest error to the C-STORE status and error comment
// (PS3.4 B.2.3: A7xx out of resources, A900 data set does not match SOP
// class, Cxxx cannot understand).
func Status(err error) (dimse.Status, string) {
	switch {
	case err == nil:
		return dimse.StatusSuccess, ""
	case errors.Is(err, ErrMismatch):
		return dimse.StatusDataSetDoesNotMatchSOP, short(err, ErrMismatch)
	case errors.Is(err, ErrUnparseable):
		return dimse.StatusCannotUnderstand, short(err, ErrUnparseable)
	case errors.Is(err, ErrObjectStore):
		return dimse.StatusOutOfResources, "object store unavailable"
	case errors.Is(err, ErrInconsistent):
		return 0xC409, short(err, ErrInconsistent)
	case errors.Is(err, ErrDatabase):
		return 0xA710, "index unavailable"
	case errors.Is(err, index.ErrNoDefaultTenant):
		return 0xA711, "no tenant for this AE"
	}
	return dimse.StatusProcessingFailure, "processing failure"
}

// skipBulkOver is the size above which a binary value is not read into
// memory by the ingest (header.Options.SkipBulkOver): the index never
// needs such values; DICOMweb reads them from the object (BulkDataURI).
const skipBulkOver = 1 << 20

// short is the Error Comment (0000,0902) of a failure: the reason, without
// what the status code already says (the sentinel's text) and package
// prefixes, in at most 64 characters of the default repertoire.
func short(err, sentinel error) string {
	s := err.Error()
	if i := strings.Index(s, sentinel.Error()+": "); i >= 0 {
		s = s[i+len(sentinel.Error())+2:]
	}
	for _, p := range []string{"header: ", "ingest: "} {
		s = strings.TrimPrefix(s, p)
	}
	b := make([]byte, 0, 64)
	for _, r := range s {
		if len(b) == 64 {
			break
		}
		if r < 0x20 || r > 0x7e || r == '\\' {
			r = ' '
		}
		b = append(b, byte(r))
	}
	return strings.TrimSpace(string(b))
}

// DB lends connections (a pgxpool.Pool): the ingest transaction runs on
// one of them, its BEGIN sent with the index statement in one round trip.
type DB interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// Stored describes an instance that was indexed (passed to hooks).
type Stored struct {
	TenantID          int64
	InstanceID        int64
	PersonID          int64
	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPInstanceUID    string
	SOPClassUID       string
	Modality          string
	TransferSyntax    string
	ObjectKey         string
	Size              int64
	ToothCodes        []string
	ReconState        string
	NewStudy          bool
}

// Ingester stores and indexes instances. The zero value is not usable: set
// DB and Store.
type Ingester struct {
	DB     DB
	Store  storage.ObjectStore
	Policy index.DuplicatePolicy
	Logger *slog.Logger
	// After run after the commit (modules' instance hooks); errors are
	// logged, never fail the ingest.
	After []func(ctx context.Context, s Stored) error
	// MaxHeaderBytes caps the header (0 = 64 MiB); MaxValueLength one value
	// (0 = 16 MiB).
	MaxHeaderBytes int64
	MaxValueLength uint32
	// Now is the clock for object keys (nil = time.Now).
	Now func() time.Time

	// failpoints for crash tests: called after the object is durable and
	// before the commit, and after the commit; beforeCommit gets the
	// connection the COMMIT is about to use.
	afterPut, afterCommit func()
	beforeCommit          func(*pgxpool.Conn)
}

// Source describes where an instance comes from.
type Source struct {
	TenantID int64
	// AE is the calling AE title, or "STOW-RS", "import".
	AE string
	// Part10 says the stream is a Part-10 file (preamble and file meta);
	// it is stored as received. Otherwise the stream is a bare data set in
	// TransferSyntax (C-STORE) and a file meta is generated.
	Part10 bool
	// SOPClassUID and SOPInstanceUID the request named (C-STORE command,
	// STOW-RS meta); the data set must carry the same. Empty: not checked.
	SOPClassUID, SOPInstanceUID string
	// StudyInstanceUID the request named (STOW-RS to /studies/{study});
	// the data set must belong to it. Empty: not checked.
	StudyInstanceUID string
	// TransferSyntax of a bare data set.
	TransferSyntax string
	// Size of the stream when known (-1: unknown).
	Size int64
}

// Result is what Ingest did.
type Result struct {
	Stored
	// Outcome is index.OutcomeStored, OutcomeIdentical, OutcomeKeptFirst or
	// OutcomeOverwritten.
	Outcome string
	SHA256  []byte
}

func (in *Ingester) log() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// NewKey returns a fresh object key for an instance stored at t. The name
// is a UUID in the version 7 layout (48 bits of milliseconds since the
// epoch, then 74 random bits): keys made one after the other sort one after
// the other, so the unique index on instance.object_key grows at its right
// edge instead of touching a random leaf page (and writing its full-page
// image to the WAL) for every instance of a large index.
func NewKey(t time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(t.UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	t = t.UTC()
	return fmt.Sprintf("instances/%04d/%02d/%02d/%s-%s-%s-%s-%s.dcm", t.Year(), t.Month(), t.Day(), h[0:8], h[8:12], h[12:16], h[16:20], h[20:])
}

// countingHash counts and hashes what passes.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

// Ingest stores and indexes one instance read from r (see the package doc).
// ctx bounds the whole operation; a cancelled ctx stores nothing.
func (in *Ingester) Ingest(ctx context.Context, src Source, r io.Reader) (Result, error) {
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	key := NewKey(now())

	// The object store reads from a pipe while we parse a copy of the stream.
	pr, pw := io.Pipe()
	putCtx, cancelPut := context.WithCancel(ctx)
	defer cancelPut()
	type putResult struct {
		info storage.ObjectInfo
		err  error
	}
	putDone := make(chan putResult, 1)
	size := int64(-1)
	if src.Part10 && src.Size >= 0 {
		size = src.Size
	}
	go func() {
		info, err := in.Store.Put(putCtx, key, pr, storage.PutOptions{Size: size, ContentType: "application/dicom"})
		pr.CloseWithError(fmt.Errorf("object store put ended: %w", errOr(err, io.ErrClosedPipe)))
		putDone <- putResult{info, err}
	}()
	// known names the instance as far as it is read, so that a failure
	// can say which one failed (STOW-RS's Failed SOP Sequence).
	known := Result{Stored: Stored{SOPClassUID: src.SOPClassUID, SOPInstanceUID: src.SOPInstanceUID}}
	abort := func(err error) (Result, error) {
		pw.CloseWithError(err)
		cancelPut()
		if res := <-putDone; res.err == nil {
			// The Put completed before the failure was seen: remove it.
			_ = in.Store.Delete(context.WithoutCancel(ctx), key)
		}
		return known, err
	}

	sum := &countingHash{h: sha256.New()}
	sink := &writeRecorder{w: pw}
	bw := bufio.NewWriterSize(io.MultiWriter(sum, sink), 64<<10)
	if !src.Part10 {
		if src.SOPClassUID == "" || src.SOPInstanceUID == "" || src.TransferSyntax == "" {
			return abort(fmt.Errorf("%w: bare data set without SOP class, instance and transfer syntax", ErrMismatch))
		}
		if err := header.WriteFileHeaderMeta(bw, fileMeta(src)); err != nil {
			return abort(fmt.Errorf("%w: %w", ErrObjectStore, err))
		}
	}
	srcErr := &errRecorder{r: r}
	hr := header.NewReader(io.TeeReader(srcErr, bw), header.Options{
		TransferSyntax: src.TransferSyntax, MaxHeaderBytes: in.MaxHeaderBytes, MaxValueLength: in.MaxValueLength,
		// Large binary values (an encapsulated STL or PDF, a vendor's
		// blob) stream to the store like pixel data, never into memory.
		SkipBulkOver: skipBulkOver,
	})
	h, err := hr.ReadHeader()
	if err != nil {
		switch {
		case srcErr.err != nil:
			return abort(fmt.Errorf("%w: %w", ErrSource, srcErr.err))
		case sink.err != nil:
			return abort(fmt.Errorf("%w: %w", ErrObjectStore, sink.err))
		}
		return abort(fmt.Errorf("%w: %w", ErrUnparseable, err))
	}
	d := h.Dataset
	if len(d.Elements) == 0 {
		return abort(fmt.Errorf("%w: empty data set", ErrUnparseable))
	}
	ts := h.TransferSyntax
	if !src.Part10 {
		ts = src.TransferSyntax
	}
	rec := &index.Record{TenantID: src.TenantID, SourceAE: src.AE, TransferSyntax: ts, ObjectKey: key,
		SOPClassUID: d.UID(header.TagSOPClassUID), SOPInstanceUID: d.UID(header.TagSOPInstanceUID)}
	if src.Part10 {
		known.SOPClassUID, known.SOPInstanceUID = rec.SOPClassUID, rec.SOPInstanceUID
	}
	if err := check(src, h, rec); err != nil {
		return abort(err)
	}
	if err := buildRecord(d, rec); err != nil {
		return abort(fmt.Errorf("%w: %w", ErrUnparseable, err))
	}
	// The rest (pixel data): straight from the source to the store.
	if _, err := io.Copy(bw, srcErr); err != nil {
		if srcErr.err != nil {
			return abort(fmt.Errorf("%w: %w", ErrSource, srcErr.err))
		}
		return abort(fmt.Errorf("%w: %w", ErrObjectStore, err))
	}
	if err := bw.Flush(); err != nil {
		return abort(fmt.Errorf("%w: %w", ErrObjectStore, err))
	}
	if err := ctx.Err(); err != nil {
		return abort(fmt.Errorf("%w: %w", ErrSource, err))
	}
	pw.Close()
	rec.Size = sum.n
	rec.SHA256 = sum.h.Sum(nil)
	// The index transaction runs while the store makes the object durable
	// (file fsync, rename, folder fsync); it commits only after the Put
	// returned, so no index row ever points to an object that is not on disk.
	var putErr error
	putWaited := false
	waitPut := func() error {
		if !putWaited {
			putWaited = true
			putErr = (<-putDone).err
			if putErr == nil && in.afterPut != nil {
				in.afterPut()
			}
		}
		return putErr
	}
	return in.index(ctx, rec, waitPut)
}

// indexTx runs the ingest transaction on one connection: BEGIN and the
// index statement (index.QueueIngestInTenant, which also scopes the
// transaction to the tenant) go to the server in one round trip; COMMIT
// only after waitPut said the object is durable.
func (in *Ingester) indexTx(ctx context.Context, rec *index.Record, waitPut func() error) (index.Result, error) {
	conn, err := in.DB.Acquire(ctx)
	if err != nil {
		return index.Result{}, fmt.Errorf("postgres: acquire: %w", err)
	}
	// A connection released inside a transaction (an error below) is
	// closed by the pool, never reused.
	defer conn.Release()
	var ir index.Result
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if err := index.QueueIngestInTenant(b, rec, in.Policy, &ir); err != nil {
		return index.Result{}, err
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		rollback(ctx, conn)
		return index.Result{}, err
	}
	if err := waitPut(); err != nil {
		rollback(ctx, conn)
		return index.Result{}, errPut{err}
	}
	// COMMIT is not cut short by the caller's context: pgx would close the
	// connection and leave us not knowing whether the server committed.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if in.beforeCommit != nil {
		in.beforeCommit(conn)
	}
	tag, err := conn.Exec(cctx, "COMMIT")
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return index.Result{}, fmt.Errorf("postgres: commit: %w", err) // the server refused: not committed
		}
		return index.Result{}, fmt.Errorf("postgres: commit: %w: %w", errCommitUnknown, err)
	}
	if tag.String() != "COMMIT" {
		return index.Result{}, fmt.Errorf("postgres: commit: %w", pgx.ErrTxCommitRollback)
	}
	return ir, nil
}

// commitTimeout bounds a COMMIT (and a ROLLBACK) the caller can no longer
// cancel.
const commitTimeout = 30 * time.Second

// errCommitUnknown: COMMIT failed without an answer from the server (the
// connection broke): the transaction may have committed, so the object
// must stay (the sweep removes it if nothing indexes it).
var errCommitUnknown = errors.New("commit outcome unknown")

// rollback ends a failed ingest transaction; when even that fails the
// connection is closed (the server then rolls back).
func rollback(ctx context.Context, conn *pgxpool.Conn) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(rctx, "ROLLBACK"); err != nil {
		_ = conn.Conn().Close(rctx)
	}
}

// errPut carries the object store's error out of the index transaction.
type errPut struct{ err error }

func (e errPut) Error() string { return e.err.Error() }
func (e errPut) Unwrap() error { return e.err }

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// writeRecorder remembers a write error of the object store side.
type writeRecorder struct {
	w   io.Writer
	err error
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// errRecorder remembers a read error of the source (as opposed to the
// parser's own complaints).
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

func fileMeta(src Source) *header.Dataset {
	m := header.FileMeta(src.SOPClassUID, src.SOPInstanceUID, src.TransferSyntax)
	if ae := strings.TrimSpace(src.AE); ae != "" && len(ae) <= 16 {
		m.SetString(header.TagSourceApplicationEntity, "AE", ae)
	}
	return m
}

// check validates the identity of the data set against the request.
func check(src Source, h *header.Header, rec *index.Record) error {
	d := h.Dataset
	switch {
	case rec.SOPClassUID == "":
		return fmt.Errorf("%w: no SOP Class UID", ErrMismatch)
	case rec.SOPInstanceUID == "":
		return fmt.Errorf("%w: no SOP Instance UID", ErrMismatch)
	case src.SOPClassUID != "" && rec.SOPClassUID != src.SOPClassUID:
		return fmt.Errorf("%w: SOP Class UID differs from the request", ErrMismatch)
	case src.SOPInstanceUID != "" && rec.SOPInstanceUID != src.SOPInstanceUID:
		return fmt.Errorf("%w: SOP Instance UID differs from the request", ErrMismatch)
	case d.UID(header.TagStudyInstanceUID) == "":
		return fmt.Errorf("%w: no Study Instance UID", ErrMismatch)
	case src.StudyInstanceUID != "" && d.UID(header.TagStudyInstanceUID) != src.StudyInstanceUID:
		return fmt.Errorf("%w: the instance belongs to another study than the request names", ErrMismatch)
	case d.UID(header.TagSeriesInstanceUID) == "":
		return fmt.Errorf("%w: no Series Instance UID", ErrMismatch)
	}
	if src.Part10 && h.Meta != nil {
		if ms := h.Meta.UID(header.TagMediaStorageSOPInstance); ms != "" && ms != rec.SOPInstanceUID {
			return fmt.Errorf("%w: file meta names another SOP instance", ErrMismatch)
		}
	}
	if rec.TransferSyntax == "" {
		return fmt.Errorf("%w: no transfer syntax", ErrUnparseable)
	}
	return nil
}

// index runs the ingest transaction and the clean-up after it. waitPut
// waits for the object store (idempotent); the transaction commits only
// after it returned nil.
func (in *Ingester) index(ctx context.Context, rec *index.Record, waitPut func() error) (Result, error) {
	var ir index.Result
	st := Stored{TenantID: rec.TenantID, StudyInstanceUID: rec.StudyInstanceUID, SeriesInstanceUID: rec.SeriesInstanceUID,
		SOPInstanceUID: rec.SOPInstanceUID, SOPClassUID: rec.SOPClassUID, Modality: rec.Modality, TransferSyntax: rec.TransferSyntax,
		ObjectKey: rec.ObjectKey, Size: rec.Size, ToothCodes: rec.ToothCodes}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		ir, err = in.indexTx(ctx, rec, waitPut)
		if !errors.Is(err, index.ErrConflict) {
			break
		}
	}
	st.InstanceID, st.PersonID, st.ReconState, st.NewStudy = ir.InstanceID, ir.PersonID, ir.ReconState, ir.NewStudy
	bg := context.WithoutCancel(ctx)
	failed := Result{Stored: Stored{SOPClassUID: rec.SOPClassUID, SOPInstanceUID: rec.SOPInstanceUID}} // names the instance in a failure
	// Whatever the transaction did, the Put has to be over before we decide
	// about the object.
	if perr := waitPut(); perr != nil {
		// Nothing durable to remove (a Put that failed after its rename
		// leaves the object to the sweep: nothing indexes it).
		return failed, fmt.Errorf("%w: %w", ErrObjectStore, perr)
	}
	if errors.Is(err, errCommitUnknown) {
		in.log().Warn("ingest: commit outcome unknown; the object stays for the orphan sweep to judge", "key", rec.ObjectKey, "err", err)
		return failed, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	if err != nil {
		// Not indexed: the object must go (the sweep would find it too).
		if derr := in.Store.Delete(bg, rec.ObjectKey); derr != nil {
			in.log().Warn("ingest: could not remove unindexed object; the sweep will", "key", rec.ObjectKey, "err", derr)
		}
		if errors.Is(err, index.ErrNoDefaultTenant) || errors.Is(err, index.ErrInconsistent) {
			return failed, err
		}
		return failed, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	if in.afterCommit != nil {
		in.afterCommit()
	}
	res := Result{Stored: st, Outcome: ir.Outcome, SHA256: rec.SHA256}
	switch ir.Outcome {
	case index.OutcomeIdentical, index.OutcomeKeptFirst:
		if ir.Outcome == index.OutcomeKeptFirst {
			in.log().Warn("ingest: different object under a stored SOP Instance UID; kept the stored one",
				"instance_id", ir.InstanceID, "policy", string(in.Policy), "source_ae", rec.SourceAE)
		}
		if err := in.Store.Delete(bg, rec.ObjectKey); err != nil {
			in.log().Warn("ingest: could not remove redundant copy; the sweep will", "key", rec.ObjectKey, "err", err)
		}
		// The result describes the instance as indexed.
		res.ObjectKey = ""
	case index.OutcomeOverwritten:
		in.log().Warn("ingest: different object under a stored SOP Instance UID; replaced it",
			"instance_id", ir.InstanceID, "policy", string(in.Policy), "source_ae", rec.SourceAE)
		if err := in.Store.Delete(bg, ir.OldKey); err != nil {
			in.log().Warn("ingest: could not remove replaced object; the sweep will", "key", ir.OldKey, "err", err)
		}
	}
	if ir.Outcome == index.OutcomeStored || ir.Outcome == index.OutcomeOverwritten {
		for _, fn := range in.After {
			if err := fn(bg, st); err != nil {
				in.log().Warn("ingest: instance hook failed", "instance_id", st.InstanceID, "err", err)
			}
		}
	}
	return res, nil
}
