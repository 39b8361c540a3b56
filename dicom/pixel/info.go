package pixel

import (
	"errors"
	"fmt"
	"strings"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// Errors returned by the package; they are wrapped with context.
var (
	// ErrUnsupported: a valid encoding this package does not decode.
	ErrUnsupported = errors.New("pixel: unsupported encoding")
	// ErrMalformed: the pixel data or a compressed bitstream is invalid or
	// does not agree with the header (truncated fragments, bad markers …).
	ErrMalformed = errors.New("pixel: malformed pixel data")
	// ErrLimit: a frame would exceed Options.MaxFrameBytes; nothing was
	// allocated for it.
	ErrLimit = errors.New("pixel: limit exceeded")
	// ErrNoPixelData: the data set has no pixel data element.
	ErrNoPixelData = errors.New("pixel: no pixel data")
	// ErrFrameIndex: a frame number outside 0..Len()-1.
	ErrFrameIndex = errors.New("pixel: no such frame")
)

// Image pixel module tags (PS3.3 C.7.6.3) and friends.
const (
	TagSamplesPerPixel           header.Tag = 0x00280002
	TagPhotometricInterpretation header.Tag = 0x00280004
	TagPlanarConfiguration       header.Tag = 0x00280006
	TagNumberOfFrames            header.Tag = 0x00280008
	TagRows                      header.Tag = 0x00280010
	TagColumns                   header.Tag = 0x00280011
	TagBitsAllocated             header.Tag = 0x00280100
	TagBitsStored                header.Tag = 0x00280101
	TagHighBit                   header.Tag = 0x00280102
	TagPixelRepresentation       header.Tag = 0x00280103
	TagExtendedOffsetTable       header.Tag = 0x7FE00001
	TagExtendedOffsetTableLength header.Tag = 0x7FE00002
)

// Photometric interpretations (PS3.3 C.7.6.3.1.2).
const (
	Monochrome1  = "MONOCHROME1"
	Monochrome2  = "MONOCHROME2"
	RGB          = "RGB"
	PaletteColor = "PALETTE COLOR"
	YBRFull      = "YBR_FULL"
	YBRFull422   = "YBR_FULL_422"
	YBRICT       = "YBR_ICT"
	YBRRCT       = "YBR_RCT"
	YBRPartial   = "YBR_PARTIAL_420"
)

// Info is the image pixel description of a data set, as the header gives it.
type Info struct {
	TransferSyntax string
	Rows, Columns  int
	// SamplesPerPixel is 1 (grey, palette) or 3 (colour).
	SamplesPerPixel int
	Photometric     string
	// PlanarConfiguration 0: samples interleaved per pixel; 1: one plane per sample.
	PlanarConfiguration int
	// Frames is Number of Frames (1 when absent).
	Frames        int
	BitsAllocated int
	BitsStored    int
	HighBit       int
	// Signed is Pixel Representation 1 (two's complement samples).
	Signed bool
}

// NewInfo reads the image pixel module from a header's data set. It checks
// the values for consistency and sanity (never trusting them for allocation
// beyond Options.MaxFrameBytes later).
func NewInfo(h *header.Header) (Info, error) {
	if h == nil || h.Dataset == nil {
		return Info{}, fmt.Errorf("%w: no data set", ErrMalformed)
	}
	ds := h.Dataset
	geti := func(t header.Tag, def int) int {
		if v, ok := ds.Int(t); ok {
			return int(v)
		}
		return def
	}
	in := Info{
		TransferSyntax:      h.TransferSyntax,
		Rows:                geti(TagRows, 0),
		Columns:             geti(TagColumns, 0),
		SamplesPerPixel:     geti(TagSamplesPerPixel, 1),
		Photometric:         strings.ToUpper(strings.TrimSpace(ds.Get(TagPhotometricInterpretation))),
		PlanarConfiguration: geti(TagPlanarConfiguration, 0),
		Frames:              geti(TagNumberOfFrames, 1),
		BitsAllocated:       geti(TagBitsAllocated, 0),
		Signed:              geti(TagPixelRepresentation, 0) == 1,
	}
	in.BitsStored = geti(TagBitsStored, in.BitsAllocated)
	in.HighBit = geti(TagHighBit, in.BitsStored-1)
	if in.Photometric == "" {
		if in.SamplesPerPixel == 3 {
			in.Photometric = RGB
		} else {
			in.Photometric = Monochrome2
		}
	}
	if in.Frames < 1 {
		in.Frames = 1
	}
	return in, in.check()
}

func (in Info) check() error {
	switch {
	case in.Rows <= 0 || in.Columns <= 0 || in.Rows > 0xFFFF || in.Columns > 0xFFFF:
		// Rows and Columns are US: a wider VR must not make the frame size
		// overflow (and slip past Options.MaxFrameBytes).
		return fmt.Errorf("%w: image size %d×%d", ErrMalformed, in.Columns, in.Rows)
	case in.SamplesPerPixel != 1 && in.SamplesPerPixel != 3:
		return fmt.Errorf("%w: %d samples per pixel", ErrUnsupported, in.SamplesPerPixel)
	case in.BitsAllocated != 1 && in.BitsAllocated != 8 && in.BitsAllocated != 16 && in.BitsAllocated != 32:
		return fmt.Errorf("%w: %d bits allocated", ErrUnsupported, in.BitsAllocated)
	case in.BitsStored < 1 || in.BitsStored > in.BitsAllocated:
		return fmt.Errorf("%w: %d bits stored of %d allocated", ErrMalformed, in.BitsStored, in.BitsAllocated)
	case in.HighBit < in.BitsStored-1 || in.HighBit >= in.BitsAllocated:
		return fmt.Errorf("%w: high bit %d with %d bits stored of %d", ErrMalformed, in.HighBit, in.BitsStored, in.BitsAllocated)
	case in.Frames > 1<<20:
		return fmt.Errorf("%w: %d frames", ErrLimit, in.Frames)
	}
	return nil
}

// Syntax returns the transfer syntax properties.
func (in Info) Syntax() uid.TransferSyntax {
	ts, _ := uid.LookupTransferSyntax(in.TransferSyntax)
	return ts
}

// FrameSamples is the number of samples in one frame.
func (in Info) FrameSamples() int64 {
	return int64(in.Rows) * int64(in.Columns) * int64(in.SamplesPerPixel)
}

// NativeFrameBits is the size of one frame in bits in a native encoding
// (frames of 1-bit data need not start on a byte boundary).
func (in Info) NativeFrameBits() int64 {
	if in.Photometric == YBRFull422 && in.SamplesPerPixel == 3 {
		// Two luminance samples share one Cb and one Cr (PS3.3 C.7.6.3.1.2).
		return int64(in.Rows) * int64(in.Columns) * 2 * int64(in.BitsAllocated)
	}
	return in.FrameSamples() * int64(in.BitsAllocated)
}

// Container is the element width in bits of decoded sample buffers: 8, 16 or
// 32 (1-bit data decodes to 8).
func (in Info) Container() int {
	if in.BitsAllocated == 1 {
		return 8
	}
	return in.BitsAllocated
}

// DecodedFrameBytes is the memory one decoded frame takes.
func (in Info) DecodedFrameBytes() int64 {
	return in.FrameSamples() * int64(in.Container()/8)
}
