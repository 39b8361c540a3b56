package web

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
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
	h, err := header.Read(io.NewSectionReader(ra, 0, in.Size), header.Options{MaxValueLength: maxBulkValue, MaxHeaderBytes: 2 * maxBulkValue})
	if err != nil {
		s.fail(w, r, fmt.Errorf("dicomweb: header of instance %d: %w", in.ID, err))
		return
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
	value := e.Value
	if d.BigEndian {
		value = littleEndian(e.VR, value)
	}
	done := false
	writeParts(w, "application/octet-stream; transfer-syntax="+uid.ExplicitVRLittleEndian, func() ([]byte, bool) {
		if done {
			return nil, false
		}
		done = true
		return value, true
	})
}

// littleEndian swaps the words of a big endian value to little endian.
func littleEndian(vr string, v []byte) []byte {
	size := 0
	switch vr {
	case "OW", "US", "SS":
		size = 2
	case "OL", "OF", "UL", "SL", "FL":
		size = 4
	case "OD", "OV", "FD", "UV", "SV":
		size = 8
	default:
		return v
	}
	out := make([]byte, len(v)-len(v)%size)
	for i := 0; i+size <= len(v); i += size {
		switch size {
		case 2:
			binary.LittleEndian.PutUint16(out[i:], binary.BigEndian.Uint16(v[i:]))
		case 4:
			binary.LittleEndian.PutUint32(out[i:], binary.BigEndian.Uint32(v[i:]))
		case 8:
			binary.LittleEndian.PutUint64(out[i:], binary.BigEndian.Uint64(v[i:]))
		}
	}
	return out
}
