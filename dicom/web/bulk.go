package web

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage"
)

// maxBulkValue bounds one bulk value read from an object (the ingest of
// large values, e.g. an intra-oral scan as Encapsulated STL, allows as
// much).
const maxBulkValue = 1 << 30

var pixelDataTag = header.NewTag(0x7FE0, 0x0010)

// bulkStep is one step of a bulk data path: an element, and for all but
// the last step the item of its sequence to go into.
type bulkStep struct {
	tag  header.Tag
	item int
}

// parseBulkPath reads "GGGGEEEE" or "GGGGEEEE/ITEM/GGGGEEEE/…" (the paths
// ingest.ResolveBulk writes).
func parseBulkPath(s string) ([]bulkStep, error) {
	parts := strings.Split(strings.Trim(s, "/"), "/")
	if len(parts)%2 != 1 || len(parts) > 2*header.DefaultMaxDepth+1 {
		return nil, fmt.Errorf("%w: bulk data path %q", errNoMatch, s)
	}
	var out []bulkStep
	for i := 0; i < len(parts); i += 2 {
		t, err := strconv.ParseUint(parts[i], 16, 32)
		if err != nil || len(parts[i]) != 8 {
			return nil, fmt.Errorf("%w: bulk data path %q", errNoMatch, s)
		}
		st := bulkStep{tag: header.Tag(t)}
		if i+1 < len(parts) {
			n, err := strconv.Atoi(parts[i+1])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: bulk data path %q", errNoMatch, s)
			}
			st.item = n
		}
		out = append(out, st)
	}
	return out, nil
}

// bulkElement answers the value of the element at path in instance in, as
// one application/octet-stream part (little endian, as PS3.18 8.7.3 asks
// of uncompressed bulk data).
func (s *Service) bulkElement(w http.ResponseWriter, r *http.Request, in index.Instance, path []bulkStep) {
	ra := storage.NewReaderAt(r.Context(), s.Store, in.ObjectKey, in.Size, 0, 0)
	// Large binary values are located, not loaded: they are streamed from
	// the object below.
	h, err := header.Read(io.NewSectionReader(ra, 0, in.Size), header.Options{MaxValueLength: maxBulkValue, MaxHeaderBytes: 2 * maxBulkValue, SkipBulkOver: 1 << 20})
	if err != nil {
		s.fail(w, r, fmt.Errorf("dicomweb: header of instance %d: %w", in.ID, err))
		return
	}
	if ts, _ := uid.LookupTransferSyntax(h.TransferSyntax); ts.Deflated || ts.BigEndian {
		// Offsets in the inflated stream, or words to swap: read it whole.
		if h, err = header.Read(io.NewSectionReader(ra, 0, in.Size), header.Options{MaxValueLength: maxBulkValue, MaxHeaderBytes: 2 * maxBulkValue}); err != nil {
			s.fail(w, r, fmt.Errorf("dicomweb: header of instance %d: %w", in.ID, err))
			return
		}
	}
	d := h.Dataset
	var e *header.Element
	for i, st := range path {
		if d == nil {
			break
		}
		e = d.Find(st.tag)
		if e == nil || i == len(path)-1 {
			break
		}
		if !e.IsSequence() || st.item >= len(e.Items) {
			e = nil
			break
		}
		d = e.Items[st.item]
	}
	if e == nil || e.IsSequence() {
		s.fail(w, r, fmt.Errorf("%w: no such element in the instance", errNoMatch))
		return
	}
	ctype := "application/octet-stream; transfer-syntax=" + uid.ExplicitVRLittleEndian
	if e.Skipped() {
		s.streamPart(w, r, in, ctype, e.BulkOffset, int64(e.BulkLength))
		return
	}
	value := e.Value
	if d.BigEndian {
		value = header.Swap(e.VR, value)
	}
	done := false
	writeParts(w, ctype, func() ([]byte, bool) {
		if done {
			return nil, false
		}
		done = true
		return value, true
	})
}

// streamPart answers one part of a multipart/related body with length
// bytes of the instance's object from offset, streamed from the store.
func (s *Service) streamPart(w http.ResponseWriter, r *http.Request, in index.Instance, ctype string, offset, length int64) {
	rc, _, err := s.Store.Get(r.Context(), in.ObjectKey, &storage.Range{Offset: offset, Length: length})
	if err != nil {
		s.fail(w, r, fmt.Errorf("dicomweb: bulk data of instance %d: %w", in.ID, err))
		return
	}
	defer rc.Close()
	b := boundary()
	w.Header().Set("Content-Type", fmt.Sprintf(`multipart/related; type="application/octet-stream"; boundary=%s`, b))
	mw := multipart.NewWriter(w)
	_ = mw.SetBoundary(b)
	part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ctype}, "Content-Length": {strconv.FormatInt(length, 10)}})
	if err != nil {
		return
	}
	if _, err := io.Copy(part, rc); err != nil {
		s.Log.WarnContext(r.Context(), "dicomweb: bulk data stream", "instance_id", in.ID, "err", err)
		return // the client sees a body without its closing boundary
	}
	_ = mw.Close()
}
