package pixel

import (
	"encoding/binary"
	"fmt"
)

// decodeNative unpacks one native (uncompressed) frame. raw holds the
// frame's bytes; bitOffset is where the frame starts in raw[0] (1-bit data
// only). The result is pixel interleaved, normalised (see Frame).
//
// In explicit VR big endian, OW values are swapped per 16-bit word: 8-bit
// samples in OW come in swapped pairs and 32-bit samples in OW as two
// big endian words, low word first (other VRs hold 32-bit samples whole).
func decodeNative(in Info, raw []byte, bitOffset int, bigEndian bool, vr string) (*Frame, error) {
	if need := (in.NativeFrameBits() + int64(bitOffset) + 7) / 8; int64(len(raw)) < need {
		return nil, fmt.Errorf("%w: frame has %d bytes, needs %d", ErrMalformed, len(raw), need)
	}
	f := newFrame(in, 0)
	ybr422 := in.Photometric == YBRFull422 && in.SamplesPerPixel == 3
	n := f.Len()
	if ybr422 {
		n = in.Rows * in.Columns * 2
	}
	switch in.BitsAllocated {
	case 1:
		for i := range n {
			b := bitOffset + i
			f.Pix8[i] = (raw[b>>3] >> (b & 7)) & 1
		}
	case 8:
		src := raw[:n] // 8-bit OW in big endian is unswapped by Frames
		if ybr422 {
			expand422(f.Pix8, src)
		} else {
			copy(f.Pix8, src)
		}
	case 16:
		var bo binary.ByteOrder = binary.LittleEndian
		if bigEndian {
			bo = binary.BigEndian
		}
		tmp := f.Pix16
		if ybr422 {
			tmp = make([]uint16, n)
		}
		for i := range n {
			tmp[i] = bo.Uint16(raw[2*i:])
		}
		if ybr422 {
			expand422(f.Pix16, tmp)
		}
	case 32:
		var bo binary.ByteOrder = binary.LittleEndian
		if bigEndian {
			bo = binary.BigEndian
		}
		tmp := f.Pix32
		if ybr422 {
			tmp = make([]uint32, n)
		}
		for i := range n {
			if bigEndian && vr == "OW" {
				tmp[i] = uint32(bo.Uint16(raw[4*i+2:]))<<16 | uint32(bo.Uint16(raw[4*i:]))
			} else {
				tmp[i] = bo.Uint32(raw[4*i:])
			}
		}
		if ybr422 {
			expand422(f.Pix32, tmp)
		}
	}
	if ybr422 {
		f.Photometric = YBRFull
	} else if in.SamplesPerPixel == 3 && in.PlanarConfiguration == 1 {
		switch {
		case f.Pix8 != nil:
			f.Pix8 = interleave(f.Pix8)
		case f.Pix16 != nil:
			f.Pix16 = interleave(f.Pix16)
		default:
			f.Pix32 = interleave(f.Pix32)
		}
	}
	if in.BitsAllocated != 1 {
		f.normalise(in.HighBit + 1 - in.BitsStored)
	}
	return f, nil
}

// expand422 turns Y1 Y2 Cb Cr groups (two pixels) into Y Cb Cr per pixel.
func expand422[T uint8 | uint16 | uint32](dst, src []T) {
	for i, j := 0, 0; i+3 < len(src) && j+5 < len(dst); i, j = i+4, j+6 {
		y1, y2, cb, cr := src[i], src[i+1], src[i+2], src[i+3]
		dst[j], dst[j+1], dst[j+2] = y1, cb, cr
		dst[j+3], dst[j+4], dst[j+5] = y2, cb, cr
	}
}

// interleave turns three planes (RRR…GGG…BBB…) into RGBRGB….
func interleave[T uint8 | uint16 | uint32](planes []T) []T {
	n := len(planes) / 3
	out := make([]T, len(planes))
	for i := range n {
		out[3*i] = planes[i]
		out[3*i+1] = planes[n+i]
		out[3*i+2] = planes[2*n+i]
	}
	return out
}
