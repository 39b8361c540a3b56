package pixel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel/pixeltest"
	"github.com/molar-health/molar/dicom/uid"
)

// uv is an element of VR UV (explicit VR lets a writer choose any integer VR).
func uv(tag header.Tag, v uint64) *header.Element {
	return &header.Element{Tag: tag, VR: "UV", Value: binary.LittleEndian.AppendUint64(nil, v)}
}

// TestImageSizeBounded: Rows and Columns are US (PS3.3 C.7.6.3): a header
// giving them in a wider VR must not overflow the frame size computation
// (which would let the frame through the MaxFrameBytes check with a size
// that has nothing to do with its buffers).
func TestImageSizeBounded(t *testing.T) {
	cases := []struct {
		name       string
		rows, cols uint64
	}{
		{"product wraps to zero", 1 << 32, 1 << 32},
		{"product wraps negative", 1<<32 - 1, 1<<32 - 1},
		{"rows beyond US", 1 << 16, 1},
		{"columns beyond US", 1, 1<<31 + 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sp := pixeltest.Spec{Rows: 2, Columns: 2, BitsAllocated: 8, Seed: 1,
				Extra: []*header.Element{uv(TagRows, c.rows), uv(TagColumns, c.cols)}}
			fs, err := openBytes(t, sp.File())
			if err == nil {
				f, ferr := fs.Frame(context.Background(), 0)
				t.Fatalf("opened a %d×%d image (frame: %v, %v)", c.cols, c.rows, f, ferr)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimit) {
				t.Fatalf("error %v, want ErrMalformed or ErrLimit", err)
			}
		})
	}
}

// TestProgressiveJPEGSizeCheckedFirst: 8-bit progressive JPEG goes to Go's
// image/jpeg, which allocates the whole image (and its coefficients) from
// the SOF marker. The SOF must be checked against the header before.
func TestProgressiveJPEGSizeCheckedFirst(t *testing.T) {
	src, err := os.ReadFile("testdata/progressive16.jpg") // 16×16 grey, made with PIL
	if err != nil {
		t.Fatal(err)
	}
	sof := bytes.Index(src, []byte{0xFF, 0xC2})
	withSize := func(w, h, comps int) []byte {
		d := bytes.Clone(src)
		binary.BigEndian.PutUint16(d[sof+5:], uint16(h))
		binary.BigEndian.PutUint16(d[sof+7:], uint16(w))
		d[sof+9] = byte(comps)
		return d
	}
	info := Info{TransferSyntax: uid.JPEGBaseline8Bit, Rows: 16, Columns: 16, SamplesPerPixel: 1, Photometric: Monochrome2,
		Frames: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7}
	cases := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{"as the header says", withSize(16, 16, 1), nil},
		{"SOF larger than the header", withSize(4000, 4000, 1), ErrMalformed},
		{"SOF wider than the header", withSize(65535, 16, 1), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			f, err := DecodeFrame(context.Background(), info, c.data, nil)
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
				t.Errorf("decoding allocated %d MiB for a 16×16 frame", alloc>>20)
			}
			if c.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if f.Pix8[0] > 8 || f.Pix8[15] < 200 { // the ramp along the first row
					t.Errorf("first row %v", f.Pix8[:16])
				}
				return
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("error %v, want %v", err, c.wantErr)
			}
		})
	}
}
