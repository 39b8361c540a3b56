package media

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
)

// Ingester is dicom/ingest's one path.
type Ingester interface {
	Ingest(ctx context.Context, src ingest.Source, r io.Reader) (ingest.Result, error)
}

// Outcome of one imported file.
type Outcome string

// Outcomes.
const (
	Stored    Outcome = "stored"
	Duplicate Outcome = "duplicate"
	Rejected  Outcome = "rejected"
	Skipped   Outcome = "skipped"
)

// Entry is one file to import: a file on disk, a ZIP entry, an upload.
type Entry struct {
	Name    string
	Size    int64 // -1 when unknown
	ModTime time.Time
	// Open may be called more than once (the kind is sniffed first).
	Open func() (io.ReadCloser, error)
}

// FileEntry is a file on disk.
func FileEntry(p string) (Entry, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Name: p, Size: fi.Size(), ModTime: fi.ModTime(), Open: func() (io.ReadCloser, error) { return os.Open(p) }}, nil
}

// FileResult is what happened to one file.
type FileResult struct {
	Name    string
	Outcome Outcome
	Reason  string // why it was rejected, skipped or is a duplicate
	Kind    Kind   // non-DICOM kind that was wrapped
	Result  ingest.Result
}

// Importer imports files through the one ingest path: DICOM Part-10 files
// and bare data sets as they are, ZIP archives entry by entry (streamed),
// DICOMDIR files skipped (a media folder is imported by walking it: the
// DICOMDIR is only an index of the files beside it), and JPEG/PNG/TIFF/
// STL/PLY wrapped in DICOM for the chosen patient (Wrap). Running it twice
// on the same files stores nothing new: DICOM objects keep their UIDs and
// wrapped ones get UIDs derived from the patient, the day and the content.
type Importer struct {
	Ingest   Ingester
	TenantID int64
	AE       string // source AE recorded on the instances ("import", "upload")
	// Patient for non-DICOM files; nil rejects them.
	Patient *Patient
	// Scope of derived UIDs (see WrapOptions.Scope).
	Scope string
	// MaxWrapBytes caps a file read into memory to be wrapped (0: 1 GiB).
	MaxWrapBytes int64
}

// Rejection reasons shown to users (Danish by default, as the UI).
const (
	reasonNotDICOM    = "ikke en DICOM-fil og ikke et billede (JPEG, PNG, TIFF) eller en 3D-model (STL, PLY)"
	reasonNeedPatient = "billed- eller modelfil: vælg en patient (--patient CPR) for at indlæse den"
	reasonDICOMDIR    = "DICOMDIR (indeks over mediet; filerne importeres fra mappen)"
	reasonKeptFirst   = "findes allerede med andet indhold under samme UID; den gemte beholdes"
	reasonIdentical   = "findes allerede"
	reasonZipBomb     = "ZIP-posten pakker sig ud til %d MiB fra %d KiB; afvist som mulig ZIP-bombe (pak arkivet ud og importér filerne)"
)

// Import imports one entry (a ZIP gives one result per entry inside) and
// calls emit for each file.
func (im *Importer) Import(ctx context.Context, e Entry, emit func(FileResult)) {
	im.importDepth(ctx, e, emit, 0)
}

func (im *Importer) importDepth(ctx context.Context, e Entry, emit func(FileResult), depth int) {
	reject := func(reason string) { emit(FileResult{Name: e.Name, Outcome: Rejected, Reason: reason}) }
	if strings.EqualFold(path.Base(strings.ReplaceAll(e.Name, "\\", "/")), "DICOMDIR") {
		emit(FileResult{Name: e.Name, Outcome: Skipped, Reason: reasonDICOMDIR})
		return
	}
	head, err := sniff(e)
	if err != nil {
		reject(err.Error())
		return
	}
	switch {
	case len(head) >= 132 && string(head[128:132]) == "DICM":
		im.ingest(ctx, e, emit, ingest.Source{Part10: true, Size: e.Size})
		return
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		if depth > 1 {
			reject("ZIP i ZIP i ZIP: pak arkivet ud først")
			return
		}
		if err := im.importZip(ctx, e, emit, depth); err != nil {
			reject(err.Error())
		}
		return
	}
	if k := Detect(head, e.Size); k != KindUnknown {
		im.wrap(ctx, e, k, emit)
		return
	}
	// A bare data set (no preamble): learn its identity, then stream it.
	rc, err := e.Open()
	if err != nil {
		reject(err.Error())
		return
	}
	h, err := header.Read(rc, header.Options{})
	rc.Close()
	if err != nil || h.Dataset == nil || len(h.Dataset.Elements) == 0 {
		reject(reasonNotDICOM)
		return
	}
	if h.Meta != nil { // meta without preamble: store as it is
		im.ingest(ctx, e, emit, ingest.Source{Part10: true, Size: e.Size})
		return
	}
	src := ingest.Source{SOPClassUID: h.Dataset.UID(header.TagSOPClassUID), SOPInstanceUID: h.Dataset.UID(header.TagSOPInstanceUID),
		TransferSyntax: h.TransferSyntax, Size: -1}
	if strings.TrimSpace(src.SOPInstanceUID) == "" {
		reject("ingen SOP Instance UID")
		return
	}
	im.ingest(ctx, e, emit, src)
}

func sniff(e Entry) ([]byte, error) {
	rc, err := e.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	head := make([]byte, 1024)
	n, err := io.ReadFull(rc, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return head[:n], nil
}

func (im *Importer) ingest(ctx context.Context, e Entry, emit func(FileResult), src ingest.Source) {
	rc, err := e.Open()
	if err != nil {
		emit(FileResult{Name: e.Name, Outcome: Rejected, Reason: err.Error()})
		return
	}
	defer rc.Close()
	src.TenantID, src.AE = im.TenantID, im.AE
	res, err := im.Ingest.Ingest(ctx, src, rc)
	emit(resultOf(e.Name, res, err))
}

func resultOf(name string, res ingest.Result, err error) FileResult {
	fr := FileResult{Name: name, Result: res}
	switch {
	case err != nil:
		fr.Outcome, fr.Reason = Rejected, err.Error()
	case res.Outcome == index.OutcomeStored || res.Outcome == index.OutcomeOverwritten:
		fr.Outcome = Stored
	case res.Outcome == index.OutcomeKeptFirst:
		fr.Outcome, fr.Reason = Duplicate, reasonKeptFirst
	default:
		fr.Outcome, fr.Reason = Duplicate, reasonIdentical
	}
	return fr
}

func (im *Importer) wrap(ctx context.Context, e Entry, k Kind, emit func(FileResult)) {
	if im.Patient == nil {
		emit(FileResult{Name: e.Name, Outcome: Rejected, Reason: reasonNeedPatient, Kind: k})
		return
	}
	limit := im.MaxWrapBytes
	if limit <= 0 {
		limit = 1 << 30
	}
	rc, err := e.Open()
	if err != nil {
		emit(FileResult{Name: e.Name, Outcome: Rejected, Reason: err.Error(), Kind: k})
		return
	}
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	rc.Close()
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("filen er større end %d MiB", limit>>20)
	}
	if err != nil {
		emit(FileResult{Name: e.Name, Outcome: Rejected, Reason: err.Error(), Kind: k})
		return
	}
	w, err := Wrap(data, WrapOptions{Patient: *im.Patient, Scope: im.Scope, Time: e.ModTime})
	if err != nil {
		emit(FileResult{Name: e.Name, Outcome: Rejected, Reason: err.Error(), Kind: k})
		return
	}
	res, err := im.Ingest.Ingest(ctx, ingest.Source{TenantID: im.TenantID, AE: im.AE, Part10: true, Size: int64(len(w.File))}, bytes.NewReader(w.File))
	fr := resultOf(e.Name, res, err)
	fr.Kind = k
	emit(fr)
}

// importZip imports every file of a ZIP archive, streaming each entry.
func (im *Importer) importZip(ctx context.Context, e Entry, emit func(FileResult), depth int) error {
	rc, err := e.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	ra, ok := rc.(interface {
		io.ReaderAt
		Stat() (os.FileInfo, error)
	})
	var size int64
	if ok {
		fi, err := ra.Stat()
		if err != nil {
			return err
		}
		size = fi.Size()
	} else { // not a file: spool it to one (zip needs random access)
		tmp, err := os.CreateTemp("", "molar-import-*.zip")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if size, err = io.Copy(tmp, rc); err != nil {
			return err
		}
		ra = tmp
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return fmt.Errorf("ZIP-arkivet kan ikke læses: %w", err)
	}
	for _, zf := range zr.File {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if zf.FileInfo().IsDir() {
			continue
		}
		zf := zf
		if zipBomb(zf.UncompressedSize64, zf.CompressedSize64) {
			emit(FileResult{Name: e.Name + "!" + zf.Name, Outcome: Rejected, Reason: fmt.Sprintf(reasonZipBomb,
				zf.UncompressedSize64>>20, zf.CompressedSize64>>10)})
			continue
		}
		im.importDepth(ctx, Entry{Name: e.Name + "!" + zf.Name, Size: int64(zf.UncompressedSize64), ModTime: zf.Modified,
			Open: func() (io.ReadCloser, error) { return zf.Open() }}, emit, depth+1)
	}
	return nil
}

// A ZIP entry that inflates more than maxZipRatio times (and to more than
// zipRatioFloor bytes) is refused as a ZIP bomb before it is read: DICOM
// objects, pictures and models deflate a few times, rarely tens of times;
// deflate reaches about 1000 times only on repeated bytes. archive/zip
// refuses an entry that inflates beyond its declared size, so the check of
// the declared sizes holds.
const (
	maxZipRatio   = 100
	zipRatioFloor = 16 << 20
)

func zipBomb(uncompressed, compressed uint64) bool {
	return uncompressed > zipRatioFloor && uncompressed/max(compressed, 1) > maxZipRatio
}

// PatientOf gives the DICOM patient attributes of a person of the register.
func PatientOf(p auth.Person) Patient {
	pt := Patient{ID: p.CPR.Digits(), Name: p.FamilyName + "^" + p.GivenName}
	if pt.ID == "" {
		pt.ID = fmt.Sprintf("MOLAR%d", p.ID)
	}
	if !p.BirthDate.IsZero() {
		pt.BirthDate = p.BirthDate.Format("20060102")
	}
	switch p.Sex {
	case auth.SexMale:
		pt.Sex = "M"
	case auth.SexFemale:
		pt.Sex = "F"
	}
	return pt
}

// Scope is the derived-UID scope of a person of a tenant.
func Scope(tenantID, personID int64) string {
	return fmt.Sprintf("tenant/%d/person/%d", tenantID, personID)
}
