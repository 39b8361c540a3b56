package render

import (
	"bytes"
	"context"
	"testing"

	"github.com/molar-health/molar/dicom/pixel"
	"github.com/molar-health/molar/dicom/pixel/pixeltest"
)

// BenchmarkRender renders a decoded 1.5-megapixel 12-bit intraoral frame
// (automatic window) to 8 bits at full size and encodes it as JPEG
// (target < 50 ms), and a panoramic to a 512 px viewport.
func BenchmarkRender(b *testing.B) {
	for _, c := range []struct {
		spec pixeltest.Spec
		opts Options
	}{{pixeltest.Intraoral(), Options{}}, {pixeltest.Panoramic(), Options{Width: 512, Height: 512}}} {
		data := c.spec.File()
		in, err := Open(bytes.NewReader(data), int64(len(data)), pixel.Options{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := in.Frames.Frame(context.Background(), 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.spec.Name+"/render", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := Render(f, in.Pipeline, c.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.spec.Name+"/decode+render+jpeg", func(b *testing.B) {
			var buf bytes.Buffer
			for b.Loop() {
				img, _, err := in.Render(context.Background(), 0, c.opts)
				if err != nil {
					b.Fatal(err)
				}
				buf.Reset()
				if err := Encode(&buf, img, JPEG, 90); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
