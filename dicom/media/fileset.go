package media

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// MediaStorageDirectory is the SOP class of a DICOMDIR.
const MediaStorageDirectory = "1.2.840.10008.1.3.10"

// Sink receives the files of a file-set (names use "/").
type Sink interface {
	Create(name string) (io.WriteCloser, error)
	Close() error
}

// DirSink writes the file-set into a folder (created if needed).
func DirSink(root string) Sink { return dirSink{root} }

type dirSink struct{ root string }

func (s dirSink) Create(name string) (io.WriteCloser, error) {
	p := filepath.Join(s.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	return f, nil
}

func (dirSink) Close() error { return nil }

// ZipSink writes the file-set as a ZIP archive to w (streamed: nothing is
// held but the entry being written).
func ZipSink(w io.Writer) Sink { return &zipSink{zw: zip.NewWriter(w), now: time.Now()} }

type zipSink struct {
	zw  *zip.Writer
	now time.Time
}

func (s *zipSink) Create(name string) (io.WriteCloser, error) {
	w, err := s.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: s.now})
	if err != nil {
		return nil, fmt.Errorf("media: zip: %w", err)
	}
	return nopCloser{w}, nil
}

func (s *zipSink) Close() error { return s.zw.Close() }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// FileSet writes PS3.10 media: every object under DICOM/PATnnnnn/STUnnnnn/
// SERnnnnn/IMGnnnnn (8-character upper-case components) and, at Close, the
// DICOMDIR with patient, study, series and image (or encapsulated
// document) records, linked by byte offsets.
type FileSet struct {
	sink     Sink
	deid     *Deidentifier
	id       string
	root     []*node
	byKey    map[string]*node
	NumFiles int
}

// node is one directory record and what hangs below it.
type node struct {
	kind     string // PATIENT, STUDY, SERIES, IMAGE, ENCAP DOC
	keys     *header.Dataset
	children []*node
	fileID   []string
}

// NewFileSet starts a file-set on sink. deid, when not nil, de-identifies
// every object; fileSetID (at most 16 characters) names the media.
func NewFileSet(sink Sink, deid *Deidentifier, fileSetID string) *FileSet {
	if fileSetID == "" {
		fileSetID = "MOLAR"
	}
	return &FileSet{sink: sink, deid: deid, id: fileSetID, byKey: map[string]*node{}}
}

var readOpts = header.Options{MaxValueLength: 1 << 30, MaxHeaderBytes: 2 << 30}

// Added describes an object written into the file-set.
type Added struct {
	Path           string // e.g. DICOM/PAT00001/STU00001/SER00001/IMG00001
	SOPInstanceUID string // as written (new when de-identified)
}

// Add writes one Part-10 object read from r: as it is, or de-identified
// (then re-encoded; a deflated data set is written inflated, in explicit
// VR little endian). The pixel data streams through.
func (f *FileSet) Add(r io.Reader) (Added, error) {
	var head bytes.Buffer
	var hr *header.Reader
	if f.deid == nil {
		hr = header.NewReader(io.TeeReader(r, &head), readOpts)
	} else {
		hr = header.NewReader(r, readOpts)
	}
	h, err := hr.ReadHeader()
	if err != nil {
		return Added{}, fmt.Errorf("media: read object: %w", err)
	}
	if h.Meta == nil {
		return Added{}, errors.New("media: not a Part-10 object")
	}
	ds, ts := h.Dataset, h.TransferSyntax
	var wk *walk
	if f.deid != nil {
		if wk, err = f.deid.apply(ds); err != nil {
			return Added{}, err
		}
		if t, _ := uid.LookupTransferSyntax(ts); t.Deflated {
			ts = uid.ExplicitVRLittleEndian
		}
	}
	class, inst := ds.UID(header.TagSOPClassUID), ds.UID(header.TagSOPInstanceUID)
	if class == "" || inst == "" {
		return Added{}, errors.New("media: object without SOP class or instance")
	}
	path := f.place(ds, class, inst, ts)
	w, err := f.sink.Create(path)
	if err != nil {
		return Added{}, err
	}
	if f.deid == nil {
		if _, err = w.Write(head.Bytes()); err == nil {
			_, err = io.Copy(w, r)
		}
	} else {
		meta := header.FileMeta(class, inst, ts)
		if err = header.WriteFileHeaderMeta(w, meta); err == nil {
			if err = ds.WriteTo(w, ts); err == nil {
				err = writeRest(w, hr.Rest(), h.PixelData, ts, wk)
			}
		}
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Added{}, fmt.Errorf("media: write %s: %w", path, err)
	}
	f.NumFiles++
	return Added{Path: path, SOPInstanceUID: inst}, nil
}

// writeRest writes what follows the data set header of a de-identified
// object: the pixel data element as it is (streamed) and, de-identified by
// wk, the elements after it. Vendors put private groups (7FE1,…), digital
// signatures (FFFA,FFFA) and padding (FFFC,FFFC) there; copied as they are
// they would carry identifying values past the profile. ts is the syntax
// the rest is encoded in (a deflated stream is read inflated, in explicit
// VR little endian) and is written in.
func writeRest(w io.Writer, rest io.Reader, pd *header.PixelDataInfo, ts string, wk *walk) error {
	t, _ := uid.LookupTransferSyntax(ts)
	var bo binary.ByteOrder = binary.LittleEndian
	if t.BigEndian {
		bo = binary.BigEndian
	}
	opts := readOpts
	opts.TransferSyntax = ts
	for pd != nil {
		if err := copyPixelData(w, rest, pd, bo); err != nil {
			return err
		}
		tr := header.NewReader(rest, opts)
		th, err := tr.ReadHeader()
		if err != nil {
			return fmt.Errorf("media: after the pixel data: %w", err)
		}
		wk.applyRest(th.Dataset)
		if err := th.Dataset.WriteTo(w, ts); err != nil {
			return err
		}
		rest, pd = tr.Rest(), th.PixelData
	}
	return nil
}

// copyPixelData copies the top-level pixel data element described by pd
// from r (positioned at its tag) to w: a native value, or the items of
// encapsulated fragments up to the sequence delimitation item, JPEG
// metadata in the fragments blanked (jpegScrub).
func copyPixelData(w io.Writer, r io.Reader, pd *header.PixelDataInfo, bo binary.ByteOrder) error {
	hdr := make([]byte, pd.ValueOffset-pd.Offset)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return fmt.Errorf("media: pixel data: %w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if !pd.Encapsulated() {
		if _, err := io.CopyN(w, r, int64(pd.Length)); err != nil {
			return fmt.Errorf("media: pixel data: %w", err)
		}
		return nil
	}
	var item [8]byte
	var js jpegScrub
	buf := make([]byte, 64<<10)
	for first := true; ; first = false {
		if _, err := io.ReadFull(r, item[:]); err != nil {
			return fmt.Errorf("media: pixel data fragments: %w", err)
		}
		if _, err := w.Write(item[:]); err != nil {
			return err
		}
		t := header.NewTag(bo.Uint16(item[:]), bo.Uint16(item[2:]))
		n := bo.Uint32(item[4:])
		switch {
		case t == header.TagSequenceDelimitation:
			return nil
		case t != header.TagItem || n == header.UndefinedLength:
			return fmt.Errorf("media: pixel data fragments: %w: %v", header.ErrMalformed, t)
		}
		if first { // the Basic Offset Table
			if _, err := io.CopyN(w, r, int64(n)); err != nil {
				return fmt.Errorf("media: pixel data fragments: %w", err)
			}
			continue
		}
		for start := true; n > 0 || start; start = false {
			b := buf[:min(int(n), len(buf))]
			if _, err := io.ReadFull(r, b); err != nil {
				return fmt.Errorf("media: pixel data fragments: %w", err)
			}
			if start {
				js.fragment(b)
			}
			js.scrub(b)
			if _, err := w.Write(b); err != nil {
				return err
			}
			n -= uint32(len(b))
		}
	}
}

// place finds or makes the records of an object and returns its path.
func (f *FileSet) place(ds *header.Dataset, class, inst, ts string) string {
	cs := ds.Find(header.TagSpecificCharacterSet)
	keys := func(tags ...header.Tag) *header.Dataset {
		k := header.NewDataset()
		if cs != nil {
			k.Set(cs)
		}
		for _, t := range tags {
			if e := ds.Find(t); e != nil && e.Items == nil {
				k.Set(&header.Element{Tag: t, VR: e.VR, Value: e.Value})
			} else {
				k.SetString(t, header.DictionaryVR(t), "")
			}
		}
		return k
	}
	level := func(list *[]*node, key, kind, prefix string, mk func() *header.Dataset) (*node, string) {
		if n, ok := f.byKey[key]; ok {
			return n, n.fileID[len(n.fileID)-1]
		}
		n := &node{kind: kind, keys: mk()}
		name := fmt.Sprintf("%s%05d", prefix, len(*list)+1)
		n.fileID = []string{name}
		*list = append(*list, n)
		f.byKey[key] = n
		return n, name
	}
	pk := "P\x00" + ds.Get(header.TagPatientID) + "\x00" + ds.Get(header.TagPatientName)
	pat, pname := level(&f.root, pk, "PATIENT", "PAT", func() *header.Dataset {
		return keys(header.TagPatientName, header.TagPatientID, header.TagPatientBirthDate, tag(0x0010, 0x0040))
	})
	study, sname := level(&pat.children, "S\x00"+pk+"\x00"+ds.UID(header.TagStudyInstanceUID), "STUDY", "STU", func() *header.Dataset {
		return keys(header.TagStudyDate, tag(0x0008, 0x0030), header.TagAccessionNumber, tag(0x0008, 0x1030),
			header.TagStudyInstanceUID, tag(0x0020, 0x0010))
	})
	series, rname := level(&study.children, "R\x00"+ds.UID(header.TagSeriesInstanceUID), "SERIES", "SER", func() *header.Dataset {
		return keys(header.TagModality, header.TagSeriesInstanceUID, tag(0x0020, 0x0011))
	})
	var leaf *node
	conceptName := func(n *node) { // Concept Name Code Sequence, as the object has it (type 1 in SR and KO records)
		n.keys.SetSequence(tag(0x0040, 0xA043), ds.Sequence(tag(0x0040, 0xA043))...)
	}
	switch {
	case strings.HasPrefix(class, "1.2.840.10008.5.1.4.1.1.104."):
		leaf = &node{kind: "ENCAP DOC", keys: keys(tag(0x0008, 0x0023), tag(0x0008, 0x0033), tag(0x0020, 0x0013),
			tag(0x0042, 0x0010), tag(0x0042, 0x0012))}
		leaf.keys.SetSequence(tag(0x0040, 0xA043))
	case class == "1.2.840.10008.5.1.4.1.1.88.59": // Key Object Selection (PS3.3 F.5.31)
		leaf = &node{kind: "KEY OBJECT DOC", keys: keys(tag(0x0008, 0x0023), tag(0x0008, 0x0033), tag(0x0020, 0x0013))}
		conceptName(leaf)
	case strings.HasPrefix(class, "1.2.840.10008.5.1.4.1.1.88."): // SR, a CBCT's dose report among them (F.5.21)
		k := []header.Tag{tag(0x0008, 0x0023), tag(0x0008, 0x0033), tag(0x0020, 0x0013), tag(0x0040, 0xA491), tag(0x0040, 0xA493)}
		if strings.TrimSpace(ds.Get(tag(0x0040, 0xA493))) == "VERIFIED" {
			k = append(k, tag(0x0040, 0xA030)) // Verification DateTime (1C)
		}
		leaf = &node{kind: "SR DOCUMENT", keys: keys(k...)}
		conceptName(leaf)
	case strings.HasPrefix(class, "1.2.840.10008.5.1.4.1.1.11."): // presentation states (F.5.23)
		leaf = &node{kind: "PRESENTATION", keys: keys(tag(0x0020, 0x0013), tag(0x0070, 0x0080), tag(0x0070, 0x0081),
			tag(0x0070, 0x0082), tag(0x0070, 0x0083), tag(0x0070, 0x0084))}
		if refs := ds.Sequence(tag(0x0008, 0x1115)); len(refs) > 0 {
			leaf.keys.SetSequence(tag(0x0008, 0x1115), refs...) // Referenced Series Sequence (1C)
		}
	default:
		leaf = &node{kind: "IMAGE", keys: keys(tag(0x0020, 0x0013))}
	}
	iname := fmt.Sprintf("IMG%05d", len(series.children)+1)
	leaf.fileID = []string{"DICOM", pname, sname, rname, iname}
	leaf.keys.SetString(tag(0x0004, 0x1510), "UI", class)
	leaf.keys.SetString(tag(0x0004, 0x1511), "UI", inst)
	leaf.keys.SetString(tag(0x0004, 0x1512), "UI", ts)
	leaf.keys.SetString(tag(0x0004, 0x1500), "CS", leaf.fileID...)
	series.children = append(series.children, leaf)
	return strings.Join(leaf.fileID, "/")
}

// Close writes the DICOMDIR and closes the sink.
func (f *FileSet) Close() error {
	b, err := f.dicomdir()
	if err != nil {
		return err
	}
	w, err := f.sink.Create("DICOMDIR")
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return fmt.Errorf("media: write DICOMDIR: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("media: write DICOMDIR: %w", err)
	}
	return f.sink.Close()
}

var (
	tagOffsetFirst  = tag(0x0004, 0x1200)
	tagOffsetLast   = tag(0x0004, 0x1202)
	tagRecordSeq    = tag(0x0004, 0x1220)
	tagOffsetNext   = tag(0x0004, 0x1400)
	tagInUse        = tag(0x0004, 0x1410)
	tagOffsetLower  = tag(0x0004, 0x1420)
	tagRecordType   = tag(0x0004, 0x1430)
	tagFileSetID    = tag(0x0004, 0x1130)
	tagConsistency  = tag(0x0004, 0x1212)
	explicitLE      = uid.ExplicitVRLittleEndian
	itemOverhead    = 16 // item tag + length, item delimitation tag + length
	sequenceHeader  = 12 // explicit VR SQ: tag, VR, reserved, 4-byte length
	recordOffsetTag = []byte{0xFE, 0xFF, 0x00, 0xE0}
)

// dicomdir encodes the Basic Directory (PS3.3 F.3): records in depth-first
// order, each with the byte offset (from the start of the file) of its next
// sibling and of its first child.
func (f *FileSet) dicomdir() ([]byte, error) {
	var flat []*node
	var walk func(ns []*node)
	walk = func(ns []*node) {
		for _, n := range ns {
			flat = append(flat, n)
			walk(n.children)
		}
	}
	walk(f.root)
	recs := make(map[*node]*header.Dataset, len(flat))
	for _, n := range flat {
		r := &header.Dataset{Elements: append([]*header.Element(nil), n.keys.Elements...)}
		r.SetUint32(tagOffsetNext, 0)
		r.SetUint16(tagInUse, 0xFFFF)
		r.SetUint32(tagOffsetLower, 0)
		r.SetString(tagRecordType, "CS", n.kind)
		recs[n] = r
	}
	var meta bytes.Buffer
	if err := header.WriteFileHeader(&meta, MediaStorageDirectory, NewUID(), explicitLE); err != nil {
		return nil, err
	}
	root := header.NewDataset()
	root.SetString(tagFileSetID, "CS", f.id)
	root.SetUint32(tagOffsetFirst, 0)
	root.SetUint32(tagOffsetLast, 0)
	root.SetUint16(tagConsistency, 0)
	pre, err := root.Encode(explicitLE)
	if err != nil {
		return nil, err
	}
	offsets := make(map[*node]uint32, len(flat))
	pos := meta.Len() + len(pre) + sequenceHeader
	for _, n := range flat {
		b, err := recs[n].Encode(explicitLE)
		if err != nil {
			return nil, fmt.Errorf("media: DICOMDIR record: %w", err)
		}
		offsets[n] = uint32(pos)
		pos += itemOverhead + len(b)
	}
	var link func(ns []*node)
	link = func(ns []*node) {
		for i, n := range ns {
			if i+1 < len(ns) {
				recs[n].SetUint32(tagOffsetNext, offsets[ns[i+1]])
			}
			if len(n.children) > 0 {
				recs[n].SetUint32(tagOffsetLower, offsets[n.children[0]])
			}
			link(n.children)
		}
	}
	link(f.root)
	if len(f.root) > 0 {
		root.SetUint32(tagOffsetFirst, offsets[f.root[0]])
		root.SetUint32(tagOffsetLast, offsets[f.root[len(f.root)-1]])
	}
	items := make([]*header.Dataset, len(flat))
	for i, n := range flat {
		items[i] = recs[n]
	}
	root.SetSequence(tagRecordSeq, items...)
	if err := root.WriteTo(&meta, explicitLE); err != nil {
		return nil, fmt.Errorf("media: DICOMDIR: %w", err)
	}
	out := meta.Bytes()
	for _, n := range flat { // the offsets must land on the items
		o := offsets[n]
		if int(o)+4 > len(out) || !bytes.Equal(out[o:o+4], recordOffsetTag) {
			return nil, errors.New("media: DICOMDIR offsets do not match the encoding")
		}
	}
	return out, nil
}
