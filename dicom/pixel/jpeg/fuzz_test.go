package jpeg

import (
	"bytes"
	"errors"
	stdjpeg "image/jpeg"
	"os/exec"
	"testing"
)

// FuzzDecode: hostile bitstreams give an error, never a panic, and never
// more output than the limits allow.
func FuzzDecode(f *testing.F) {
	// Minimal lossless and baseline streams built by hand, plus truncations.
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC3, 0x00, 0x0B, 0x10, 0x00, 0x02, 0x00, 0x02, 0x01, 0x01, 0x11, 0x00,
		0xFF, 0xC4, 0x00, 0x14, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00,
		0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xD9})
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x01, 0x11, 0x00, 0xFF, 0xD9})
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xDD, 0x00, 0x04, 0x00, 0x01, 0xFF, 0xD9})
	// Real 8-bit baseline streams (colour 4:2:0 and grey) from image/jpeg.
	for _, gray := range []bool{false, true} {
		var buf bytes.Buffer
		if err := stdjpeg.Encode(&buf, benchImage(19, 13, gray), &stdjpeg.Options{Quality: 75}); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data, Options{MaxSamples: 1 << 16})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrLimit) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(img.Pix) != img.Width*img.Height*img.Components || len(img.Pix) > 1<<16 {
			t.Fatalf("%d samples for %d×%d×%d", len(img.Pix), img.Width, img.Height, img.Components)
		}
	})
}

var _ = exec.LookPath
