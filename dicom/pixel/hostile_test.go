package pixel

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel/pixeltest"
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
