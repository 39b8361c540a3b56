package pixel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/molar-health/molar/dicom/pixel/codec"
	"github.com/molar-health/molar/dicom/uid"
)

// DefaultCodecs returns the process-wide decoder for JPEG-LS and JPEG 2000:
// CharLS and OpenJPEG in worker subprocesses (package codec).
func DefaultCodecs() ExternalDecoder { return PoolDecoder{Pool: codec.Default()} }

// PoolDecoder decodes JPEG-LS and JPEG 2000 frames in a codec.Pool.
type PoolDecoder struct{ Pool *codec.Pool }

// Decode implements ExternalDecoder.
func (d PoolDecoder) Decode(ctx context.Context, ts string, data []byte, in Info) (*Frame, error) {
	op := byte(codec.OpJPEG2000)
	if ts == uid.JPEGLSLossless || ts == uid.JPEGLSNearLossless {
		op = codec.OpJPEGLS
	}
	if in.BitsAllocated != 8 && in.BitsAllocated != 16 {
		return nil, fmt.Errorf("%w: %s with %d bits allocated", ErrUnsupported, uid.Name(ts), in.BitsAllocated)
	}
	res, err := d.Pool.Decode(ctx, codec.Request{Op: op, Rows: in.Rows, Columns: in.Columns, Samples: in.SamplesPerPixel, Container: in.BitsAllocated, Data: data})
	switch {
	case errors.Is(err, codec.ErrDecode), errors.Is(err, codec.ErrCrashed), errors.Is(err, codec.ErrTimeout):
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	case err != nil:
		return nil, err
	}
	if res.Rows != in.Rows || res.Columns != in.Columns || res.Samples != in.SamplesPerPixel || res.Bytes*8 > in.BitsAllocated {
		return nil, fmt.Errorf("%w: codec returned %d×%d×%d", ErrMalformed, res.Columns, res.Rows, res.Samples)
	}
	shift := codedShift(in, res.Precision)
	f := newFrame(in, 0)
	switch {
	case f.Pix8 != nil:
		copy(f.Pix8, res.Data)
	case res.Bytes == 1:
		for i, v := range res.Data {
			f.Pix16[i] = uint16(v)
		}
	default:
		for i := range f.Pix16 {
			f.Pix16[i] = binary.LittleEndian.Uint16(res.Data[2*i:])
		}
		if op == codec.OpJPEG2000 && res.Signed == in.Signed && in.BitsStored < 16 && shift == 0 {
			// Lossy JPEG 2000 can overshoot the sample range: clamp to Bits
			// Stored rather than let the value wrap around.
			lo, hi := int32(0), int32(1)<<in.BitsStored-1
			if in.Signed {
				lo, hi = -(int32(1) << (in.BitsStored - 1)), int32(1)<<(in.BitsStored-1)-1
			}
			for i, u := range f.Pix16 {
				v := int32(u)
				if res.Signed || u >= 0x8000 {
					v = int32(int16(u))
				}
				f.Pix16[i] = uint16(max(lo, min(hi, v)))
			}
		}
	}
	if in.SamplesPerPixel == 3 {
		switch {
		case res.ColorTransformed:
			f.Photometric = RGB
		case f.Photometric == YBRFull422:
			f.Photometric = YBRFull
		}
	}
	f.normalise(shift)
	return f, nil
}
