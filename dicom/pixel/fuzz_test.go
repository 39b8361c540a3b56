package pixel

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel/pixeltest"
	"github.com/molar-health/molar/dicom/uid"
)

// encapsulated builds a JPEG lossless Part-10 file of 3 frames whose pixel
// data element holds pix (raw items) as its value.
func encapsulated(t testing.TB, pix []byte) []byte {
	sp := pixeltest.Spec{Rows: 2, Columns: 2, Frames: 3, BitsAllocated: 16, BitsStored: 16}
	ds := sp.Dataset("1.2.3")
	ds.Set(&header.Element{Tag: header.TagPixelData, VR: "OB", Value: pix, UndefinedLength: true})
	var buf bytes.Buffer
	header.WriteFileHeader(&buf, uid.DigitalIntraOralXRayForPresentation, "1.2.3", uid.JPEGLosslessSV1)
	ds.WriteTo(&buf, uid.JPEGLosslessSV1)
	b := buf.Bytes()
	return b[:len(b)-8] // the writer adds a delimiter; keep only what pix says
}

// FuzzRLE: hostile RLE frames give an error, never a panic; output is
// always the frame size the header promises.
func FuzzRLE(f *testing.F) {
	seed := make([]byte, 64+6)
	seed[0] = 1
	seed[4] = 64
	copy(seed[64:], []byte{0x02, 1, 2, 3, 0xFE, 9})
	f.Add(seed, uint8(2), uint8(3), uint8(8), uint8(1))
	f.Add(seed, uint8(200), uint8(255), uint8(16), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, rows, cols, bits, samples uint8) {
		in := Info{TransferSyntax: uid.RLELossless, Rows: int(rows%64) + 1, Columns: int(cols%64) + 1, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Frames: 1}
		if samples%2 == 1 {
			in.SamplesPerPixel = 3
		}
		if bits%2 == 1 {
			in.BitsAllocated, in.BitsStored, in.HighBit = 16, 12, 11
		}
		fr, err := DecodeFrame(context.Background(), in, data, nil)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if fr.Len() != int(in.FrameSamples()) {
			t.Fatalf("frame of %d samples, want %d", fr.Len(), in.FrameSamples())
		}
	})
}

// FuzzJPEGFrame runs the JPEG decoders behind the DICOM frame checks.
func FuzzJPEGFrame(f *testing.F) {
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC3, 0x00, 0x0B, 0x10, 0x00, 0x02, 0x00, 0x02, 0x01, 0x01, 0x11, 0x00, 0xFF, 0xD9}, true)
	f.Fuzz(func(t *testing.T, data []byte, lossless bool) {
		in := Info{TransferSyntax: uid.JPEGBaseline8Bit, Rows: 2, Columns: 2, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Frames: 1}
		if lossless {
			in.TransferSyntax, in.BitsAllocated, in.BitsStored, in.HighBit = uid.JPEGLosslessSV1, 16, 16, 15
		}
		if _, err := DecodeFrame(context.Background(), in, data, nil); err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// FuzzOpen: hostile encapsulated pixel data (item lengths, offset tables)
// never panics in Open/Frame.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{0xFE, 0xFF, 0x00, 0xE0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0, 0x02, 0, 0, 0, 0xFF, 0xD8, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, pix []byte) {
		data := encapsulated(t, pix)
		fs, err := openBytes(t, data)
		if err != nil {
			return
		}
		for i := range min(fs.Len(), 4) {
			_, _ = fs.Frame(context.Background(), i)
		}
	})
}
