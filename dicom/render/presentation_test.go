package render

import (
	"bytes"
	"context"
	"image"
	"testing"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel"
	"github.com/molar-health/molar/dicom/pixel/pixeltest"
)

// TestPresentationLUTShape: MONOCHROME1 is inverted once, whatever the
// Presentation LUT Shape. The DX family (intraoral and panoramic images
// included) requires INVERSE with MONOCHROME1 (PS3.3 C.8.11.3): the shape
// states that inversion, it does not add a second one (dcmj2pnm shows such
// an image as plain MONOCHROME1). INVERSE inverts MONOCHROME2.
func TestPresentationLUTShape(t *testing.T) {
	cases := []struct {
		photometric, shape string
		inverted           bool
	}{
		{"MONOCHROME2", "", false},
		{"MONOCHROME2", "IDENTITY", false},
		{"MONOCHROME2", "INVERSE", true},
		{"MONOCHROME1", "", true},
		{"MONOCHROME1", "INVERSE", true},
		// IDENTITY is "an identity transformation other than to account
		// for the value of Photometric Interpretation" (C.8.11.3).
		{"MONOCHROME1", "IDENTITY", true},
	}
	for _, c := range cases {
		t.Run(c.photometric+"_"+c.shape, func(t *testing.T) {
			sp := pixeltest.Spec{Rows: 8, Columns: 8, BitsAllocated: 8, Photometric: c.photometric, WindowCenter: 127.5, WindowWidth: 256, Seed: 3}
			if c.shape != "" {
				sp.Extra = []*header.Element{{Tag: TagPresentationLUTShape, VR: "CS", Value: []byte(c.shape)}}
			}
			data := sp.File()
			in, err := Open(bytes.NewReader(data), int64(len(data)), pixel.Options{})
			if err != nil {
				t.Fatal(err)
			}
			f, err := in.Frames.Frame(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			img, _, err := Render(f, in.Pipeline, Options{})
			if err != nil {
				t.Fatal(err)
			}
			g := img.(*image.Gray)
			for i, v := range f.Pix8 {
				want := int(v)
				if c.inverted {
					want = 255 - want
				}
				if d := int(g.Pix[i]) - want; d < -1 || d > 1 { // the window rounds
					t.Fatalf("pixel %d: stored %d rendered %d, want %d (inverted: %v)", i, v, g.Pix[i], want, c.inverted)
				}
			}
			if m := Meta(f, in.Pipeline); m.Invert != c.inverted {
				t.Errorf("frame metadata invert %v, want %v", m.Invert, c.inverted)
			}
		})
	}
}
