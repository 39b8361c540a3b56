package pixel

import (
	"encoding/binary"
	"fmt"
)

// decodeRLE decodes one RLE Lossless frame (PS3.5 Annex G): a 64-byte
// header with the number of segments and their offsets, then one PackBits
// segment per byte of each sample (most significant byte first, sample by
// sample). Output never exceeds the frame size the header promises.
func decodeRLE(in Info, data []byte) (*Frame, error) {
	if in.BitsAllocated == 1 {
		return nil, fmt.Errorf("%w: RLE with 1 bit allocated", ErrUnsupported)
	}
	if len(data) < 64 {
		return nil, fmt.Errorf("%w: RLE header truncated (%d bytes)", ErrMalformed, len(data))
	}
	bytesPer := in.BitsAllocated / 8
	nseg := int(binary.LittleEndian.Uint32(data))
	if nseg != in.SamplesPerPixel*bytesPer {
		return nil, fmt.Errorf("%w: RLE has %d segments, %d samples of %d bits need %d", ErrMalformed, nseg, in.SamplesPerPixel, in.BitsAllocated, in.SamplesPerPixel*bytesPer)
	}
	var offs [16]int
	for i := range nseg {
		offs[i] = int(binary.LittleEndian.Uint32(data[4+4*i:]))
		if offs[i] < 64 || offs[i] > len(data) || (i > 0 && offs[i] < offs[i-1]) {
			return nil, fmt.Errorf("%w: RLE segment %d offset %d", ErrMalformed, i, offs[i])
		}
	}
	offs[nseg] = len(data)
	f := newFrame(in, 0)
	pixels := in.Rows * in.Columns
	seg := make([]byte, pixels)
	for s := range nseg {
		if err := unpackBits(seg, data[offs[s]:offs[s+1]]); err != nil {
			return nil, fmt.Errorf("RLE segment %d: %w", s, err)
		}
		sample := s / bytesPer
		shift := uint(8 * (bytesPer - 1 - s%bytesPer))
		ns := in.SamplesPerPixel
		switch bytesPer {
		case 1:
			for p, b := range seg {
				f.Pix8[p*ns+sample] = b
			}
		case 2:
			for p, b := range seg {
				f.Pix16[p*ns+sample] |= uint16(b) << shift
			}
		case 4:
			for p, b := range seg {
				f.Pix32[p*ns+sample] |= uint32(b) << shift
			}
		}
	}
	f.normalise(in.HighBit + 1 - in.BitsStored)
	return f, nil
}

// unpackBits decodes a PackBits segment into dst, which it must fill
// exactly (a segment may carry one byte of padding beyond).
func unpackBits(dst, src []byte) error {
	o, i := 0, 0
	for o < len(dst) {
		if i >= len(src) {
			return fmt.Errorf("%w: RLE segment ends after %d of %d bytes", ErrMalformed, o, len(dst))
		}
		n := int(int8(src[i]))
		i++
		switch {
		case n >= 0:
			n++
			if i+n > len(src) {
				return fmt.Errorf("%w: RLE literal run past the segment", ErrMalformed)
			}
			if o+n > len(dst) {
				return fmt.Errorf("%w: RLE run past the frame", ErrMalformed)
			}
			copy(dst[o:], src[i:i+n])
			o += n
			i += n
		case n != -128:
			n = 1 - n
			if i >= len(src) {
				return fmt.Errorf("%w: RLE replicate run past the segment", ErrMalformed)
			}
			if o+n > len(dst) {
				return fmt.Errorf("%w: RLE run past the frame", ErrMalformed)
			}
			b := src[i]
			i++
			for k := range n {
				dst[o+k] = b
			}
			o += n
		}
	}
	return nil
}
