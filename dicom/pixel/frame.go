package pixel

import (
	"encoding/binary"
	"fmt"
)

// Frame is one decoded frame: samples in a compact typed buffer, pixel
// interleaved (R G B R G B … for colour, whatever the stored planar
// configuration), row by row.
//
// Exactly one of Pix8, Pix16 and Pix32 is set, by Container (8, 16 or 32
// bits). Samples are normalised: bits outside Bits Stored are cleared, values
// are shifted down when High Bit is not Bits Stored − 1, and signed samples
// are sign-extended to the container, so int16(Pix16[i]) is the value of a
// signed 16-bit sample. Use Value for any width.
type Frame struct {
	Index         int
	Rows, Columns int
	// Samples per pixel (1 or 3).
	Samples int
	// Container is the width of one sample in the buffer: 8, 16 or 32.
	Container  int
	BitsStored int
	Signed     bool
	// Photometric is the interpretation of the decoded samples. It differs
	// from the header's when decoding converted colour: YBR_FULL_422 is
	// expanded to YBR_FULL, and colour JPEG baseline, JPEG 2000 with a
	// multi-component transform (YBR_ICT/YBR_RCT) and JPEG-LS decode to RGB,
	// as DCMTK and GDCM report after decompression.
	Photometric string

	Pix8  []uint8
	Pix16 []uint16
	Pix32 []uint32
}

// newFrame allocates an empty frame of the info's geometry.
func newFrame(in Info, index int) *Frame {
	f := &Frame{Index: index, Rows: in.Rows, Columns: in.Columns, Samples: in.SamplesPerPixel,
		Container: in.Container(), BitsStored: in.BitsStored, Signed: in.Signed, Photometric: in.Photometric}
	n := int(in.FrameSamples())
	switch f.Container {
	case 8:
		f.Pix8 = make([]uint8, n)
	case 16:
		f.Pix16 = make([]uint16, n)
	default:
		f.Pix32 = make([]uint32, n)
	}
	return f
}

// Len is the number of samples (Rows × Columns × Samples).
func (f *Frame) Len() int { return f.Rows * f.Columns * f.Samples }

// Value returns sample i (interleaved index) as a signed integer.
func (f *Frame) Value(i int) int64 {
	switch {
	case f.Pix8 != nil:
		if f.Signed {
			return int64(int8(f.Pix8[i]))
		}
		return int64(f.Pix8[i])
	case f.Pix16 != nil:
		if f.Signed {
			return int64(int16(f.Pix16[i]))
		}
		return int64(f.Pix16[i])
	default:
		if f.Signed {
			return int64(int32(f.Pix32[i]))
		}
		return int64(f.Pix32[i])
	}
}

// Range returns the smallest and largest sample value (over all samples).
func (f *Frame) Range() (lo, hi int64) {
	n := f.Len()
	if n == 0 {
		return 0, 0
	}
	lo, hi = f.Value(0), f.Value(0)
	switch {
	case f.Pix16 != nil && !f.Signed:
		l, h := f.Pix16[0], f.Pix16[0]
		for _, v := range f.Pix16 {
			l, h = min(l, v), max(h, v)
		}
		return int64(l), int64(h)
	case f.Pix8 != nil && !f.Signed:
		l, h := f.Pix8[0], f.Pix8[0]
		for _, v := range f.Pix8 {
			l, h = min(l, v), max(h, v)
		}
		return int64(l), int64(h)
	}
	for i := 1; i < n; i++ {
		v := f.Value(i)
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// Bytes returns the samples little endian in their container width (8, 16
// or 32 bits), pixel interleaved: the "raw frame" a browser viewer applies
// its own lookup table to. Signed samples are sign-extended two's complement.
func (f *Frame) Bytes() []byte {
	switch {
	case f.Pix8 != nil:
		out := make([]byte, len(f.Pix8))
		copy(out, f.Pix8)
		return out
	case f.Pix16 != nil:
		out := make([]byte, 2*len(f.Pix16))
		for i, v := range f.Pix16 {
			binary.LittleEndian.PutUint16(out[2*i:], v)
		}
		return out
	default:
		out := make([]byte, 4*len(f.Pix32))
		for i, v := range f.Pix32 {
			binary.LittleEndian.PutUint32(out[4*i:], v)
		}
		return out
	}
}

// String describes the frame for logs and test failures.
func (f *Frame) String() string {
	s := "unsigned"
	if f.Signed {
		s = "signed"
	}
	return fmt.Sprintf("frame %d: %d×%d×%d, %d of %d bits %s, %s", f.Index, f.Columns, f.Rows, f.Samples, f.BitsStored, f.Container, s, f.Photometric)
}

// codedShift is the shift that brings decoded samples of a compressed
// frame down to their value when High Bit is above Bits Stored − 1: a
// codestream of at least High Bit + 1 bits carries the stored words whole
// (DCMTK's lossless encoders keep such a header and code the words), one
// of fewer bits carries the values themselves.
func codedShift(in Info, precision int) int {
	if in.HighBit+1 > in.BitsStored && precision >= in.HighBit+1 {
		return in.HighBit + 1 - in.BitsStored
	}
	return 0
}

// normalise clears the bits above BitsStored (after shifting by shift) and
// sign-extends signed samples, in place.
func (f *Frame) normalise(shift int) {
	bits := f.BitsStored
	if bits >= f.Container && shift == 0 {
		return
	}
	mask := uint32(1)<<bits - 1
	sign := uint32(1) << (bits - 1)
	ext := ^mask
	fix := func(v uint32) uint32 {
		v = (v >> shift) & mask
		if f.Signed && v&sign != 0 {
			v |= ext
		}
		return v
	}
	switch {
	case f.Pix8 != nil:
		for i, v := range f.Pix8 {
			f.Pix8[i] = uint8(fix(uint32(v)))
		}
	case f.Pix16 != nil:
		for i, v := range f.Pix16 {
			f.Pix16[i] = uint16(fix(uint32(v)))
		}
	default:
		if bits >= 32 {
			mask, ext = 0xFFFFFFFF, 0
		}
		for i, v := range f.Pix32 {
			f.Pix32[i] = fix(v)
		}
	}
}
