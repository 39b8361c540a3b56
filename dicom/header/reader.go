package header

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/molar-health/molar/dicom/uid"
)

// Errors returned by the reader; they are wrapped with context.
var (
	// ErrTruncated: the stream ended inside an element, item or sequence.
	ErrTruncated = errors.New("header: truncated data set")
	// ErrLimit: a configured limit (value length, header size, depth,
	// element count) was exceeded; nothing was allocated for it.
	ErrLimit = errors.New("header: limit exceeded")
	// ErrMalformed: the bytes are not a valid DICOM encoding.
	ErrMalformed = errors.New("header: malformed data set")
)

// Default limits.
const (
	DefaultMaxValueLength = 16 << 20
	DefaultMaxHeaderBytes = 64 << 20
	DefaultMaxDepth       = 16
	DefaultMaxElements    = 200_000
)

// Options configure Read.
type Options struct {
	// TransferSyntax is the transfer syntax of the data set when the stream
	// has no Part-10 meta information (C-STORE data, the presentation
	// context's syntax). Ignored when the meta names one. Empty: detect from
	// the first element.
	TransferSyntax string
	// MaxValueLength caps the length of any single value (checked before
	// allocating). 0 = DefaultMaxValueLength.
	MaxValueLength uint32
	// MaxHeaderBytes caps the number of bytes read before the pixel data
	// (inflated bytes for deflated data sets). 0 = DefaultMaxHeaderBytes.
	MaxHeaderBytes int64
	// MaxDepth caps sequence nesting. 0 = DefaultMaxDepth.
	MaxDepth int
	// MaxElements caps the number of elements, all levels. 0 = DefaultMaxElements.
	MaxElements int
	// SkipBulkOver, when > 0, leaves binary values (OB, OW, OD, OF, OL, OV,
	// UN) of defined length longer than this out of memory: the bytes are
	// read past (a tee still sees them) without counting towards
	// MaxHeaderBytes or MaxValueLength, and the element keeps only its
	// length and offset (Element.BulkLength, BulkOffset). An encapsulated
	// document or a vendor's blob then costs no memory, like pixel data.
	SkipBulkOver uint32
}

func (o *Options) defaults() {
	if o.MaxValueLength == 0 {
		o.MaxValueLength = DefaultMaxValueLength
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxElements == 0 {
		o.MaxElements = DefaultMaxElements
	}
}

// Header is the result of reading a data set up to its pixel data.
type Header struct {
	// Preamble is true when the stream started with a 128-byte preamble and "DICM".
	Preamble bool
	// Meta holds the group 0002 file meta elements, nil when there were none.
	Meta *Dataset
	// TransferSyntax is the syntax the data set was decoded with.
	TransferSyntax string
	// DataSetOffset is the offset of the first data set byte (after preamble
	// and meta) in the input stream.
	DataSetOffset int64
	// Dataset holds every element before the pixel data, sequences nested.
	Dataset *Dataset
	// PixelData describes the top-level pixel data element; nil when the data
	// set ended before any.
	PixelData *PixelDataInfo
}

// PixelDataInfo locates the top-level pixel data element (7FE0,0010) (or
// float / double float pixel data). Offsets count bytes from the start of the
// input stream; for the deflated transfer syntax they are DataSetOffset plus
// the offset in the inflated data set.
type PixelDataInfo struct {
	Tag    Tag
	VR     string
	Length uint32 // UndefinedLength for encapsulated (compressed) pixel data
	// Offset is where the element (its tag) starts.
	Offset int64
	// ValueOffset is where its value starts (Offset + 8 or 12).
	ValueOffset int64
}

// Encapsulated reports whether the pixel data is encapsulated in fragments.
func (p *PixelDataInfo) Encapsulated() bool { return p.Length == UndefinedLength }

// Reader reads a data set header from a stream. Use Rest after ReadHeader to
// continue with the bytes from the pixel data element on.
type Reader struct {
	br *bufio.Reader
	// src is the stream under br when it can seek (an io.Seeker, not
	// inflated): values left out of memory are then seeked over.
	src  io.Reader
	pos  int64
	lim  int64
	opts Options
	n    int // elements read
	done bool
}

// NewReader wraps r. When r is a *bufio.Reader it is used directly.
//
// Note on streaming: the reader buffers ahead of what it parses. To copy a
// whole stream while parsing its header, read it through io.TeeReader(src,
// sink) and, after ReadHeader, io.Copy(sink, src): everything the reader
// pulled, including its read-ahead, has already gone to the sink. To process
// the pixel data instead, use Rest.
func NewReader(r io.Reader, opts Options) *Reader {
	opts.defaults()
	br, ok := r.(*bufio.Reader)
	var src io.Reader
	if !ok {
		br = bufio.NewReaderSize(r, 16<<10)
		if _, seeks := r.(io.Seeker); seeks {
			src = r
		}
	}
	return &Reader{br: br, src: src, opts: opts, lim: opts.MaxHeaderBytes}
}

// Read reads the header of a data set from r (see Reader).
func Read(r io.Reader, opts Options) (*Header, error) {
	return NewReader(r, opts).ReadHeader()
}

// Rest returns the remaining stream, starting at the pixel data element's tag
// (PixelDataInfo.Offset), or wherever ReadHeader stopped. For deflated data
// sets it yields inflated bytes.
func (r *Reader) Rest() io.Reader { return r.br }

// Offset returns the current position in the (inflated) stream.
func (r *Reader) Offset() int64 { return r.pos }

// ReadHeader reads preamble, meta and the data set up to the pixel data. It
// never panics and never allocates a length read from the stream beyond the
// configured limits.
func (r *Reader) ReadHeader() (h *Header, err error) {
	if r.done {
		return nil, errors.New("header: ReadHeader called twice")
	}
	r.done = true
	defer func() {
		if p := recover(); p != nil { // belt and braces: never crash the server
			h, err = nil, fmt.Errorf("%w: internal error: %v", ErrMalformed, p)
		}
	}()
	h, err = r.readPreambleAndMeta()
	if err != nil {
		return nil, err
	}
	ts, _ := uid.LookupTransferSyntax(h.TransferSyntax)
	if ts.Deflated {
		// Inflate the rest; offsets continue in the inflated stream.
		r.br = bufio.NewReaderSize(flate.NewReader(r.br), 16<<10)
		r.src = nil
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if ts.BigEndian {
		bo = binary.BigEndian
	}
	ds := &Dataset{BigEndian: ts.BigEndian}
	h.Dataset = ds
	st := state{explicit: ts.ExplicitVR, bo: bo}
	pd, err := r.readItems(ds, -1, 0, st, true)
	if err != nil {
		return nil, err
	}
	h.PixelData = pd
	return h, nil
}

// ReadFileMeta reads only the optional preamble and file meta of a stream
// (e.g. a stored Part-10 object) and returns them (Header.Dataset is nil)
// with the stream positioned at the first data set byte, as sent in C-STORE.
// The data set bytes are returned as stored (not inflated).
func ReadFileMeta(r io.Reader, opts Options) (*Header, io.Reader, error) {
	rd := NewReader(r, opts)
	rd.done = true
	h, err := func() (h *Header, err error) {
		defer func() {
			if p := recover(); p != nil {
				h, err = nil, fmt.Errorf("%w: internal error: %v", ErrMalformed, p)
			}
		}()
		return rd.readPreambleAndMeta()
	}()
	if err != nil {
		return nil, nil, err
	}
	return h, rd.br, nil
}

func (r *Reader) readPreambleAndMeta() (*Header, error) {
	h := &Header{}
	// Preamble.
	b, err := r.peek(132)
	if err != nil {
		return nil, err
	}
	if len(b) == 132 && string(b[128:132]) == "DICM" {
		if err := r.skip(132); err != nil {
			return nil, err
		}
		h.Preamble = true
	}
	// Meta (group 0002), explicit VR LE by definition; some writers omit the
	// preamble but keep the meta.
	if b, err = r.peek(2); err != nil {
		return nil, err
	}
	if len(b) == 2 && binary.LittleEndian.Uint16(b) == 0x0002 {
		meta := &Dataset{}
		if err := r.readMeta(meta); err != nil {
			return nil, err
		}
		h.Meta = meta
		h.TransferSyntax = meta.UID(TagTransferSyntaxUID)
	}
	h.DataSetOffset = r.pos
	if h.TransferSyntax == "" {
		h.TransferSyntax = r.opts.TransferSyntax
	}
	if h.TransferSyntax == "" {
		if h.TransferSyntax, err = r.detect(); err != nil {
			return nil, err
		}
	}
	return h, nil
}

type state struct {
	explicit bool
	bo       binary.ByteOrder
}

// detect guesses the encoding of a data set without meta from its first element.
func (r *Reader) detect() (string, error) {
	b, err := r.peek(6)
	switch {
	case err != nil:
		return "", err
	case len(b) < 6:
		return uid.ImplicitVRLittleEndian, nil
	}
	explicit := isVR(b[4], b[5])
	if b[0] == 0 && b[1] != 0 && explicit { // group stored big endian
		return uid.ExplicitVRBigEndian, nil
	}
	if explicit {
		return uid.ExplicitVRLittleEndian, nil
	}
	return uid.ImplicitVRLittleEndian, nil
}

// peek is the buffered reader's Peek, but a failed read (the store or the
// network) is returned as the error it is: only the end of the stream may
// leave it short without an error, so that a passing fault is never taken
// for a truncated or malformed data set. (bufio reports a read error once,
// to whichever call meets it.)
func (r *Reader) peek(n int) ([]byte, error) {
	b, err := r.br.Peek(n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return b, r.ioErr(err)
	}
	return b, nil
}

func (r *Reader) readMeta(meta *Dataset) error {
	st := state{explicit: true, bo: binary.LittleEndian}
	for {
		b, err := r.peek(6)
		if err != nil {
			return err
		}
		if len(b) < 2 {
			if len(b) == 0 {
				return nil
			}
			return fmt.Errorf("%w: in file meta", ErrTruncated)
		}
		if binary.LittleEndian.Uint16(b) != 0x0002 {
			return nil
		}
		// Tolerate implicit VR meta written by broken tools.
		st.explicit = len(b) == 6 && isVR(b[4], b[5])
		e, _, err := r.readElement(meta, 0, st, false)
		if err != nil {
			return fmt.Errorf("file meta: %w", err)
		}
		meta.Elements = append(meta.Elements, e)
	}
}

// ---- low-level reading ----

func (r *Reader) need(n int64) error {
	if r.pos+n > r.lim {
		return fmt.Errorf("%w: header larger than %d bytes", ErrLimit, r.opts.MaxHeaderBytes)
	}
	return nil
}

// needUnlessSkipping is need for a sequence or item length, which holds
// nothing in memory itself: with SkipBulkOver its large values are read
// past, so only its elements count.
func (r *Reader) needUnlessSkipping(n int64) error {
	if r.opts.SkipBulkOver > 0 {
		return nil
	}
	return r.need(n)
}

func (r *Reader) full(b []byte) error {
	if err := r.need(int64(len(b))); err != nil {
		return err
	}
	n, err := io.ReadFull(r.br, b)
	r.pos += int64(n)
	if err != nil {
		return r.ioErr(err)
	}
	return nil
}

func (r *Reader) skip(n int) error {
	if err := r.need(int64(n)); err != nil {
		return err
	}
	m, err := r.br.Discard(n)
	r.pos += int64(m)
	if err != nil {
		return r.ioErr(err)
	}
	return nil
}

// ioErr classifies a read error: end of stream is ErrTruncated, corrupt
// deflate data is ErrMalformed, anything else (network) is passed on wrapped.
func (r *Reader) ioErr(err error) error {
	var ce flate.CorruptInputError
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w at offset %d", ErrTruncated, r.pos)
	case errors.As(err, &ce):
		return fmt.Errorf("%w: deflate: %w", ErrMalformed, err)
	case errors.Is(err, bufio.ErrNegativeCount) || errors.Is(err, io.ErrNoProgress):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return fmt.Errorf("header: read: %w", err)
}

// value reads n bytes, allocating in steps so that a lying length on a short
// stream costs at most what was actually sent.
func (r *Reader) value(n uint32) ([]byte, error) {
	if n > r.opts.MaxValueLength {
		return nil, fmt.Errorf("%w: value length %d > %d", ErrLimit, n, r.opts.MaxValueLength)
	}
	if err := r.need(int64(n)); err != nil {
		return nil, err
	}
	if n <= 64<<10 {
		b := make([]byte, n)
		return b, r.full(b)
	}
	var buf bytes.Buffer
	buf.Grow(64 << 10)
	m, err := io.CopyN(&buf, r.br, int64(n))
	r.pos += m
	if err != nil {
		return nil, r.ioErr(err)
	}
	return buf.Bytes(), nil
}

func isVR(a, b byte) bool {
	switch string([]byte{a, b}) {
	case "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
		"PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV":
		return true
	}
	return false
}

// hasLongLength reports whether an explicit VR uses the 2 reserved bytes +
// 32-bit length form.
func hasLongLength(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

func isBulkVR(vr string) bool {
	switch vr {
	case "OB", "OW", "OD", "OF", "OL", "OV", "UN":
		return true
	}
	return false
}

// pass reads past n bytes of a value left out of memory (SkipBulkOver):
// they do not count towards MaxHeaderBytes.
func (r *Reader) pass(n int64) error {
	r.lim += n
	if sk, ok := r.src.(io.Seeker); ok && n > int64(r.br.Buffered()) {
		// Seek over it (a stored object: nothing to read).
		buffered := r.br.Buffered()
		if _, err := r.br.Discard(buffered); err != nil {
			return r.ioErr(err)
		}
		at, err := sk.Seek(n-int64(buffered), io.SeekCurrent)
		if err != nil {
			return r.ioErr(err)
		}
		if sz, ok := r.src.(interface{ Size() int64 }); ok && at > sz.Size() {
			return fmt.Errorf("%w: value of %d bytes at offset %d", ErrTruncated, n, r.pos)
		}
		r.br.Reset(r.src)
		r.pos += n
		return nil
	}
	m, err := io.CopyN(io.Discard, r.br, n)
	r.pos += m
	if err != nil {
		return r.ioErr(err)
	}
	return nil
}

func isPixelTag(t Tag) bool {
	return t == TagPixelData || t == TagFloatPixelData || t == TagDoubleFloatPixelData
}

// readItems reads elements into ds until end (absolute offset; -1 = until an
// item delimitation item, or EOF at top level). At top level it stops before
// pixel data and returns its description.
func (r *Reader) readItems(ds *Dataset, end int64, depth int, st state, top bool) (*PixelDataInfo, error) {
	for {
		if end >= 0 {
			if r.pos == end {
				return nil, nil
			}
			if r.pos > end {
				return nil, fmt.Errorf("%w: element overruns its item at offset %d", ErrMalformed, r.pos)
			}
		}
		if top {
			b, err := r.peek(4)
			if err != nil {
				return nil, err
			}
			if len(b) == 0 {
				return nil, nil // data set without pixel data
			}
			if len(b) < 4 {
				return nil, fmt.Errorf("%w at offset %d", ErrTruncated, r.pos)
			}
			t := Tag(uint32(st.bo.Uint16(b))<<16 | uint32(st.bo.Uint16(b[2:])))
			if isPixelTag(t) {
				return r.describePixelData(t, st)
			}
		}
		e, delim, err := r.readElement(ds, depth, st, top)
		if err != nil {
			return nil, err
		}
		if delim {
			if end >= 0 || top {
				return nil, fmt.Errorf("%w: unexpected item delimitation at offset %d", ErrMalformed, r.pos)
			}
			return nil, nil
		}
		ds.Elements = append(ds.Elements, e)
	}
}

func (r *Reader) describePixelData(t Tag, st state) (*PixelDataInfo, error) {
	p := &PixelDataInfo{Tag: t, Offset: r.pos}
	if st.explicit {
		b, err := r.peek(12)
		if err != nil {
			return nil, err
		}
		if len(b) < 8 {
			return nil, fmt.Errorf("%w in pixel data header", ErrTruncated)
		}
		p.VR = string(b[4:6])
		if hasLongLength(p.VR) {
			if len(b) < 12 {
				return nil, fmt.Errorf("%w in pixel data header", ErrTruncated)
			}
			p.Length = st.bo.Uint32(b[8:])
			p.ValueOffset = r.pos + 12
		} else {
			p.Length = uint32(st.bo.Uint16(b[6:]))
			p.ValueOffset = r.pos + 8
		}
	} else {
		b, err := r.peek(8)
		if err != nil {
			return nil, err
		}
		if len(b) < 8 {
			return nil, fmt.Errorf("%w in pixel data header", ErrTruncated)
		}
		p.VR = DictionaryVR(t)
		p.Length = st.bo.Uint32(b[4:])
		p.ValueOffset = r.pos + 8
	}
	return p, nil
}

// readElement reads one element. delim is true when it was an item
// delimitation item (then e is nil).
func (r *Reader) readElement(ds *Dataset, depth int, st state, top bool) (e *Element, delim bool, err error) {
	r.n++
	if r.n > r.opts.MaxElements {
		return nil, false, fmt.Errorf("%w: more than %d elements", ErrLimit, r.opts.MaxElements)
	}
	var hdr [8]byte
	if err := r.full(hdr[:4]); err != nil {
		return nil, false, err
	}
	t := Tag(uint32(st.bo.Uint16(hdr[:]))<<16 | uint32(st.bo.Uint16(hdr[2:])))
	switch t {
	case TagItemDelimitation:
		if err := r.full(hdr[4:8]); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	case TagItem, TagSequenceDelimitation:
		return nil, false, fmt.Errorf("%w: unexpected %v at offset %d", ErrMalformed, t, r.pos-4)
	}
	e = &Element{Tag: t}
	var length uint32
	if st.explicit {
		if err := r.full(hdr[4:6]); err != nil {
			return nil, false, err
		}
		if !isVR(hdr[4], hdr[5]) {
			return nil, false, fmt.Errorf("%w: invalid VR %q for %v at offset %d", ErrMalformed, hdr[4:6], t, r.pos-2)
		}
		e.VR = string(hdr[4:6])
		if hasLongLength(e.VR) {
			var l [6]byte
			if err := r.full(l[:]); err != nil {
				return nil, false, err
			}
			length = st.bo.Uint32(l[2:])
		} else {
			if err := r.full(hdr[6:8]); err != nil {
				return nil, false, err
			}
			length = uint32(st.bo.Uint16(hdr[6:]))
		}
	} else {
		if err := r.full(hdr[4:8]); err != nil {
			return nil, false, err
		}
		length = st.bo.Uint32(hdr[4:])
		e.VR = DictionaryVR(t)
	}

	switch {
	case e.VR == "SQ":
		err = r.readSequence(ds, e, length, depth, st)
	case length == UndefinedLength && (e.VR == "UN" || !st.explicit):
		// PS3.5 6.2.2: an undefined-length UN (or unknown implicit) element
		// is a sequence encoded in implicit VR little endian.
		err = r.readSequence(ds, e, length, depth, state{explicit: false, bo: binary.LittleEndian})
	case length == UndefinedLength:
		// Encapsulated data nested in a sequence (e.g. an icon image): keep
		// the raw fragment items.
		e.UndefinedLength = true
		e.Value, err = r.readFragments(st)
	case r.opts.SkipBulkOver > 0 && length > r.opts.SkipBulkOver && isBulkVR(e.VR):
		e.BulkLength, e.BulkOffset = length, r.pos
		err = r.pass(int64(length))
	default:
		e.Value, err = r.value(length)
	}
	if err != nil {
		return nil, false, err
	}
	if t == TagSpecificCharacterSet {
		ds.charset = splitCharset(e.Value)
	}
	return e, false, nil
}

func splitCharset(v []byte) []string {
	var out []string
	start := 0
	for i := 0; i <= len(v); i++ {
		if i == len(v) || v[i] == '\\' {
			s := string(bytes.Trim(v[start:i], " \x00"))
			out = append(out, s)
			start = i + 1
		}
	}
	return out
}

func (r *Reader) readSequence(parent *Dataset, e *Element, length uint32, depth int, st state) error {
	if depth+1 > r.opts.MaxDepth {
		return fmt.Errorf("%w: sequences nested deeper than %d", ErrLimit, r.opts.MaxDepth)
	}
	e.Items = []*Dataset{}
	end := int64(-1)
	if length != UndefinedLength {
		// With SkipBulkOver the sequence may hold values that never enter
		// memory: its elements are checked one by one instead.
		if err := r.needUnlessSkipping(int64(length)); err != nil {
			return err
		}
		end = r.pos + int64(length)
	} else {
		e.UndefinedLength = true
	}
	for {
		if end >= 0 {
			if r.pos == end {
				return nil
			}
			if r.pos > end {
				return fmt.Errorf("%w: item overruns sequence %v", ErrMalformed, e.Tag)
			}
		}
		var hdr [8]byte
		if err := r.full(hdr[:]); err != nil {
			return err
		}
		t := Tag(uint32(st.bo.Uint16(hdr[:]))<<16 | uint32(st.bo.Uint16(hdr[2:])))
		l := st.bo.Uint32(hdr[4:])
		if t == TagSequenceDelimitation {
			if end >= 0 {
				return fmt.Errorf("%w: sequence delimitation in defined-length sequence %v", ErrMalformed, e.Tag)
			}
			return nil
		}
		if t != TagItem {
			return fmt.Errorf("%w: %v inside sequence %v where an item was expected", ErrMalformed, t, e.Tag)
		}
		r.n++
		if r.n > r.opts.MaxElements {
			return fmt.Errorf("%w: more than %d elements", ErrLimit, r.opts.MaxElements)
		}
		item := &Dataset{BigEndian: st.bo == binary.BigEndian, charset: parent.charset}
		itemEnd := int64(-1)
		if l != UndefinedLength {
			if err := r.needUnlessSkipping(int64(l)); err != nil {
				return err
			}
			itemEnd = r.pos + int64(l)
			if end >= 0 && itemEnd > end {
				return fmt.Errorf("%w: item longer than its sequence %v", ErrMalformed, e.Tag)
			}
		}
		if _, err := r.readItems(item, itemEnd, depth+1, st, false); err != nil {
			return err
		}
		e.Items = append(e.Items, item)
	}
}

// readFragments reads encapsulated fragment items up to the sequence
// delimitation and returns their raw encoding (item headers included,
// delimitation excluded).
func (r *Reader) readFragments(st state) ([]byte, error) {
	var out []byte
	for {
		var hdr [8]byte
		if err := r.full(hdr[:]); err != nil {
			return nil, err
		}
		t := Tag(uint32(st.bo.Uint16(hdr[:]))<<16 | uint32(st.bo.Uint16(hdr[2:])))
		l := st.bo.Uint32(hdr[4:])
		if t == TagSequenceDelimitation {
			return out, nil
		}
		if t != TagItem || l == UndefinedLength {
			return nil, fmt.Errorf("%w: bad fragment item %v", ErrMalformed, t)
		}
		if uint64(len(out))+uint64(l)+8 > uint64(r.opts.MaxValueLength) {
			return nil, fmt.Errorf("%w: encapsulated value longer than %d", ErrLimit, r.opts.MaxValueLength)
		}
		v, err := r.value(l)
		if err != nil {
			return nil, err
		}
		out = append(out, hdr[:]...)
		out = append(out, v...)
	}
}
