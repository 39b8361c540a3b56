package pixel

import (
	"bufio"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// DefaultMaxFrameBytes caps the decoded size of one frame (and the stored
// size of one compressed frame): 1 GiB.
const DefaultMaxFrameBytes = 1 << 30

// maxFragments caps the number of fragment items of encapsulated pixel data.
const maxFragments = 1 << 20

// Options configure Open.
type Options struct {
	// MaxFrameBytes caps the decoded size of a frame, checked before
	// allocating. 0 = DefaultMaxFrameBytes.
	MaxFrameBytes int64
	// Codecs decodes the syntaxes this package leaves to C libraries
	// (JPEG-LS, JPEG 2000). nil = the process-wide worker pool (DefaultCodecs).
	Codecs ExternalDecoder
}

// ExternalDecoder decodes one compressed frame of a syntax decoded outside
// Go (JPEG-LS, JPEG 2000). want is the geometry the header promises; the
// decoder must refuse bitstreams that do not match it before allocating.
type ExternalDecoder interface {
	Decode(ctx context.Context, transferSyntax string, data []byte, want Info) (*Frame, error)
}

// Frames gives access to the frames of one data set's pixel data, one at a
// time. It is safe for concurrent use.
type Frames struct {
	Info Info
	r    io.ReaderAt
	size int64
	pd   header.PixelDataInfo
	opts Options
	ts   uid.TransferSyntax

	// encapsulated pixel data
	frags []fragment
	spans []span // per frame: fragments [first, first+count)

	// deflated data sets: an inflating cursor, reset on backward reads
	mu   sync.Mutex
	infl *inflater
	base int64 // DataSetOffset
}

type fragment struct {
	offset int64 // of the value (after the item header)
	length int64
}

type span struct{ first, count int }

// Open prepares frame-by-frame decoding of the pixel data described by h,
// reading from r (the whole stream h was read from, size bytes; offsets in
// h are offsets in r). Only the fragment item headers of encapsulated pixel
// data are read here; frames are read and decoded by Frame.
func Open(r io.ReaderAt, size int64, h *header.Header, opts Options) (*Frames, error) {
	if h == nil || h.PixelData == nil {
		return nil, ErrNoPixelData
	}
	in, err := NewInfo(h)
	if err != nil {
		return nil, err
	}
	if opts.MaxFrameBytes <= 0 {
		opts.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if in.DecodedFrameBytes() > opts.MaxFrameBytes {
		return nil, fmt.Errorf("%w: a %d×%d×%d frame of %d bits needs %d bytes", ErrLimit, in.Columns, in.Rows, in.SamplesPerPixel, in.BitsAllocated, in.DecodedFrameBytes())
	}
	if h.PixelData.Tag != header.TagPixelData {
		return nil, fmt.Errorf("%w: float pixel data %v", ErrUnsupported, h.PixelData.Tag)
	}
	f := &Frames{Info: in, r: r, size: size, pd: *h.PixelData, opts: opts, base: h.DataSetOffset}
	f.ts, _ = uid.LookupTransferSyntax(in.TransferSyntax)
	if f.opts.Codecs == nil {
		f.opts.Codecs = DefaultCodecs()
	}
	if h.PixelData.Encapsulated() {
		if !f.ts.Encapsulated {
			return nil, fmt.Errorf("%w: encapsulated pixel data in %s", ErrMalformed, f.ts.Name)
		}
		if err := f.scanFragments(h.Dataset); err != nil {
			return nil, err
		}
		return f, nil
	}
	if f.ts.Encapsulated {
		return nil, fmt.Errorf("%w: native pixel data in %s", ErrMalformed, f.ts.Name)
	}
	need := (in.NativeFrameBits()*int64(in.Frames) + 7) / 8
	if int64(f.pd.Length) < need {
		// Some writers declare fewer frames than they store, never more.
		return nil, fmt.Errorf("%w: pixel data holds %d bytes, %d frames need %d", ErrMalformed, f.pd.Length, in.Frames, need)
	}
	if !f.ts.Deflated && f.pd.ValueOffset+need > size {
		return nil, fmt.Errorf("%w: pixel data truncated (%d of %d bytes)", ErrMalformed, max(size-f.pd.ValueOffset, 0), need)
	}
	return f, nil
}

// Len is the number of frames.
func (f *Frames) Len() int {
	if f.spans != nil {
		return len(f.spans)
	}
	return f.Info.Frames
}

// Encapsulated reports whether the frames are stored compressed.
func (f *Frames) Encapsulated() bool { return f.spans != nil }

// Raw returns frame i as stored: the native bytes of the frame (byte order
// of the transfer syntax), or the compressed bitstream of an encapsulated
// frame (its fragments concatenated). This is what WADO-RS returns for
// transfer-syntax=*.
func (f *Frames) Raw(i int) ([]byte, error) {
	if i < 0 || i >= f.Len() {
		return nil, fmt.Errorf("%w: %d of %d", ErrFrameIndex, i, f.Len())
	}
	if f.spans != nil {
		return f.encapsulatedFrame(i)
	}
	bits := f.Info.NativeFrameBits()
	start := int64(i) * bits / 8
	end := (int64(i+1)*bits + 7) / 8
	buf := make([]byte, end-start)
	if err := f.readNative(buf, f.pd.ValueOffset+start); err != nil {
		return nil, err
	}
	return buf, nil
}

// Frame decodes frame i (0-based).
func (f *Frames) Frame(ctx context.Context, i int) (fr *Frame, err error) {
	if i < 0 || i >= f.Len() {
		return nil, fmt.Errorf("%w: %d of %d", ErrFrameIndex, i, f.Len())
	}
	defer func() {
		if p := recover(); p != nil { // never crash the server on hostile data
			fr, err = nil, fmt.Errorf("%w: frame %d: internal error: %v", ErrMalformed, i, p)
		}
	}()
	if f.spans == nil {
		return f.nativeFrame(i)
	}
	data, err := f.encapsulatedFrame(i)
	if err != nil {
		return nil, err
	}
	fr, err = DecodeFrame(ctx, f.Info, data, f.opts.Codecs)
	if err != nil {
		return nil, fmt.Errorf("frame %d: %w", i, err)
	}
	fr.Index = i
	return fr, nil
}

// DecodeFrame decodes one compressed frame of the info's transfer syntax
// (data is the frame's bitstream, as returned by Frames.Raw). ext decodes
// JPEG-LS and JPEG 2000; nil = DefaultCodecs().
func DecodeFrame(ctx context.Context, in Info, data []byte, ext ExternalDecoder) (*Frame, error) {
	switch in.TransferSyntax {
	case uid.RLELossless:
		return decodeRLE(in, data)
	case uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1:
		return decodeJPEG(in, data)
	case uid.JPEGLSLossless, uid.JPEGLSNearLossless, uid.JPEG2000Lossless, uid.JPEG2000:
		if ext == nil {
			ext = DefaultCodecs()
		}
		fr, err := ext.Decode(ctx, in.TransferSyntax, data, in)
		if err != nil {
			return nil, err
		}
		if fr.Rows != in.Rows || fr.Columns != in.Columns || fr.Samples != in.SamplesPerPixel || fr.Container != in.Container() {
			return nil, fmt.Errorf("%w: codec returned %v for a %d×%d×%d header", ErrMalformed, fr, in.Columns, in.Rows, in.SamplesPerPixel)
		}
		return fr, nil
	}
	return nil, fmt.Errorf("%w: transfer syntax %s", ErrUnsupported, uid.Name(in.TransferSyntax))
}

// ---- native ----

func (f *Frames) nativeFrame(i int) (*Frame, error) {
	var raw []byte
	var err error
	if f.ts.BigEndian && f.pd.VR == "OW" && f.Info.BitsAllocated <= 8 {
		raw, err = f.swappedBytes(i)
	} else {
		raw, err = f.Raw(i)
	}
	if err != nil {
		return nil, err
	}
	fr, err := decodeNative(f.Info, raw, int(int64(i)*f.Info.NativeFrameBits()%8), f.ts.BigEndian, f.pd.VR)
	if err != nil {
		return nil, err
	}
	fr.Index = i
	return fr, nil
}

// swappedBytes returns the bytes of frame i of 8-bit (or packed 1-bit)
// samples stored as OW in big endian, where every pair of bytes is swapped:
// it reads the word-aligned range around the frame and swaps it back.
func (f *Frames) swappedBytes(i int) ([]byte, error) {
	bits := f.Info.NativeFrameBits()
	start := int64(i) * bits / 8
	end := (int64(i+1)*bits + 7) / 8
	as, ae := start&^1, (end+1)&^1
	ae = min(ae, int64(f.pd.Length))
	buf := make([]byte, ae-as+1)
	if err := f.readNative(buf[:ae-as], f.pd.ValueOffset+as); err != nil {
		return nil, err
	}
	for k := 0; k+1 < len(buf); k += 2 {
		buf[k], buf[k+1] = buf[k+1], buf[k]
	}
	return buf[start-as : start-as+(end-start)], nil
}

func (f *Frames) readNative(buf []byte, off int64) error {
	if !f.ts.Deflated {
		n, err := f.r.ReadAt(buf, off)
		if n == len(buf) {
			return nil
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: reading %d bytes at %d: %w", ErrMalformed, len(buf), off, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Offsets count in the inflated data set, which starts at DataSetOffset.
	if f.infl == nil || f.infl.pos > off {
		f.infl = newInflater(f.r, f.base, f.size)
	}
	if err := f.infl.readAt(buf, off); err != nil {
		f.infl = nil
		return fmt.Errorf("%w: deflated data set: %w", ErrMalformed, err)
	}
	return nil
}

// inflater reads a deflated data set forwards; positions are in inflated
// bytes counted from the start of the stream (as header offsets are).
type inflater struct {
	rd  *bufio.Reader
	pos int64
}

func newInflater(r io.ReaderAt, base, size int64) *inflater {
	sr := io.NewSectionReader(r, base, size-base)
	return &inflater{rd: bufio.NewReaderSize(flate.NewReader(bufio.NewReaderSize(sr, 64<<10)), 64<<10), pos: base}
}

func (d *inflater) readAt(buf []byte, off int64) error {
	if off > d.pos {
		n, err := d.rd.Discard(int(off - d.pos))
		d.pos += int64(n)
		if err != nil {
			return err
		}
	}
	n, err := io.ReadFull(d.rd, buf)
	d.pos += int64(n)
	return err
}

// ---- encapsulated ----

// scanFragments reads the item headers of encapsulated pixel data and maps
// frames to fragments (PS3.5 A.4): by the Extended Offset Table, the Basic
// Offset Table, one fragment per frame, or by the start markers of the
// frames' bitstreams.
func (f *Frames) scanFragments(ds *header.Dataset) error {
	pos := f.pd.ValueOffset
	var hdr [8]byte
	var bot []byte
	first := true
	for {
		if pos+8 > f.size {
			if !first && pos == f.size {
				break // missing sequence delimiter at end of stream: tolerated
			}
			return fmt.Errorf("%w: encapsulated pixel data truncated at %d", ErrMalformed, pos)
		}
		if _, err := f.r.ReadAt(hdr[:], pos); err != nil {
			return fmt.Errorf("%w: reading item at %d: %w", ErrMalformed, pos, err)
		}
		tag := header.Tag(uint32(binary.LittleEndian.Uint16(hdr[:]))<<16 | uint32(binary.LittleEndian.Uint16(hdr[2:])))
		length := int64(binary.LittleEndian.Uint32(hdr[4:]))
		if tag == header.TagSequenceDelimitation {
			break
		}
		if tag != header.TagItem || length == header.UndefinedLength {
			return fmt.Errorf("%w: %v where a fragment item was expected at %d", ErrMalformed, tag, pos)
		}
		pos += 8
		if pos+length > f.size {
			return fmt.Errorf("%w: fragment of %d bytes at %d runs past the end", ErrMalformed, length, pos)
		}
		if first {
			first = false
			if length > 4*int64(f.Info.Frames)+4 || length%4 != 0 {
				return fmt.Errorf("%w: basic offset table of %d bytes for %d frames", ErrMalformed, length, f.Info.Frames)
			}
			bot = make([]byte, length)
			if _, err := f.r.ReadAt(bot, pos); err != nil {
				return fmt.Errorf("%w: reading basic offset table: %w", ErrMalformed, err)
			}
		} else {
			if len(f.frags) >= maxFragments {
				return fmt.Errorf("%w: more than %d fragments", ErrLimit, maxFragments)
			}
			f.frags = append(f.frags, fragment{offset: pos, length: length})
		}
		pos += length
	}
	if len(f.frags) == 0 {
		return fmt.Errorf("%w: encapsulated pixel data without fragments", ErrMalformed)
	}
	var offsets []int64
	if eot, ok := ds.Raw(TagExtendedOffsetTable); ok && len(eot) >= 8 && len(eot)%8 == 0 {
		for i := 0; i+8 <= len(eot); i += 8 {
			if ds.BigEndian {
				offsets = append(offsets, int64(binary.BigEndian.Uint64(eot[i:])))
			} else {
				offsets = append(offsets, int64(binary.LittleEndian.Uint64(eot[i:])))
			}
		}
	} else if len(bot) > 0 {
		for i := 0; i+4 <= len(bot); i += 4 {
			offsets = append(offsets, int64(binary.LittleEndian.Uint32(bot[i:])))
		}
	}
	if offsets != nil {
		spans, err := f.spansFromOffsets(offsets)
		if err == nil {
			f.spans = spans
			return nil
		}
		// A wrong offset table is common enough: fall back to the fragments.
	}
	n := f.Info.Frames
	switch {
	case n == 1:
		f.spans = []span{{0, len(f.frags)}}
		return nil
	case len(f.frags) == n:
		f.spans = make([]span, n)
		for i := range f.spans {
			f.spans[i] = span{i, 1}
		}
		return nil
	}
	spans, err := f.spansFromMarkers()
	if err != nil {
		return err
	}
	if len(spans) != n {
		return fmt.Errorf("%w: %d fragments, %d frame starts, %d frames", ErrMalformed, len(f.frags), len(spans), n)
	}
	f.spans = spans
	return nil
}

// spansFromOffsets maps offset-table entries (relative to the first
// fragment's item tag) to fragments.
func (f *Frames) spansFromOffsets(offsets []int64) ([]span, error) {
	if len(offsets) != f.Info.Frames {
		return nil, fmt.Errorf("%w: offset table has %d entries for %d frames", ErrMalformed, len(offsets), f.Info.Frames)
	}
	origin := f.frags[0].offset - 8
	spans := make([]span, len(offsets))
	j := 0
	for i, off := range offsets {
		for j < len(f.frags) && f.frags[j].offset-8-origin < off {
			j++
		}
		if j == len(f.frags) || f.frags[j].offset-8-origin != off {
			return nil, fmt.Errorf("%w: offset %d of frame %d is not a fragment start", ErrMalformed, off, i)
		}
		spans[i].first = j
		if i > 0 {
			spans[i-1].count = j - spans[i-1].first
			if spans[i-1].count == 0 {
				return nil, fmt.Errorf("%w: frame %d has no fragments", ErrMalformed, i-1)
			}
		}
	}
	spans[len(spans)-1].count = len(f.frags) - spans[len(spans)-1].first
	return spans, nil
}

// spansFromMarkers starts a frame at every fragment that begins with the
// start marker of the syntax's bitstream (JPEG SOI, JPEG 2000 SOC).
func (f *Frames) spansFromMarkers() ([]span, error) {
	var start [2]byte
	switch f.Info.TransferSyntax {
	case uid.JPEG2000, uid.JPEG2000Lossless:
		start = [2]byte{0xFF, 0x4F}
	case uid.RLELossless:
		return nil, fmt.Errorf("%w: RLE frames must be one fragment each", ErrMalformed)
	default:
		start = [2]byte{0xFF, 0xD8}
	}
	var spans []span
	var b [2]byte
	for i, fr := range f.frags {
		isStart := false
		if fr.length >= 2 {
			if _, err := f.r.ReadAt(b[:], fr.offset); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			isStart = b == start
		}
		if isStart || i == 0 {
			spans = append(spans, span{i, 0})
		}
		spans[len(spans)-1].count++
	}
	return spans, nil
}

func (f *Frames) encapsulatedFrame(i int) ([]byte, error) {
	sp := f.spans[i]
	var total int64
	for _, fr := range f.frags[sp.first : sp.first+sp.count] {
		total += fr.length
	}
	if total > f.opts.MaxFrameBytes {
		return nil, fmt.Errorf("%w: compressed frame of %d bytes", ErrLimit, total)
	}
	buf := make([]byte, total)
	pos := 0
	for _, fr := range f.frags[sp.first : sp.first+sp.count] {
		n, err := f.r.ReadAt(buf[pos:pos+int(fr.length)], fr.offset)
		if n != int(fr.length) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%w: reading fragment at %d: %w", ErrMalformed, fr.offset, err)
		}
		pos += n
	}
	return buf, nil
}
