package render

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"image"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel"
	"github.com/molar-health/molar/dicom/pixel/pixeltest"

	"github.com/molar-health/molar/storage/postgres/pgtest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func lutSeq(tag header.Tag, first uint16, bits uint16, data []uint16) *header.Element {
	it := header.NewDataset()
	it.SetUint16(TagLUTDescriptor, uint16(len(data)), first, bits)
	raw := make([]byte, 2*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint16(raw[2*i:], v)
	}
	it.Set(&header.Element{Tag: TagLUTData, VR: "OW", Value: raw})
	return &header.Element{Tag: tag, VR: "SQ", Items: []*header.Dataset{it}}
}

func ramp(n int, f func(i int) uint16) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func palette() []*header.Element {
	var els []*header.Element
	for c, tags := range [3][2]header.Tag{{TagRedPaletteDescriptor, TagRedPaletteData}, {TagGreenPaletteDescriptor, TagGreenPaletteData}, {TagBluePaletteDescriptor, TagBluePaletteData}} {
		d := make([]byte, 6)
		binary.LittleEndian.PutUint16(d, 256)
		binary.LittleEndian.PutUint16(d[4:], 16)
		els = append(els, &header.Element{Tag: tags[0], VR: "US", Value: d})
		raw := make([]byte, 512)
		for i := range 256 {
			v := [3]int{i, 255 - i, (i * 4) % 256}[c]
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(v*257))
		}
		els = append(els, &header.Element{Tag: tags[1], VR: "OW", Value: raw})
	}
	return els
}

type goldenCase struct {
	name string
	spec pixeltest.Spec
	opts Options
}

func goldenCases() []goldenCase {
	io12 := pixeltest.Spec{Rows: 48, Columns: 64, BitsAllocated: 16, BitsStored: 12, Seed: 11}
	ct := pixeltest.Spec{Rows: 40, Columns: 40, BitsAllocated: 16, BitsStored: 12, Signed: true, Modality: "CT", RescaleSlope: 1, RescaleIntercept: -1024, WindowCenter: 40, WindowWidth: 400, Seed: 12}
	withWindow := io12
	withWindow.WindowCenter, withWindow.WindowWidth = 1500, 1000
	multiWindow := io12
	multiWindow.Extra = []*header.Element{
		{Tag: TagWindowCenter, VR: "DS", Value: []byte(`2000\1000`)},
		{Tag: TagWindowWidth, VR: "DS", Value: []byte(`4000\500 `)},
	}
	sigmoid := withWindow
	sigmoid.Extra = []*header.Element{{Tag: TagVOILUTFunction, VR: "CS", Value: []byte("SIGMOID ")}}
	voiLUT := io12
	voiLUT.Extra = []*header.Element{lutSeq(TagVOILUTSequence, 0, 8, ramp(4096, func(i int) uint16 { return uint16(min(255, max(0, (i-800)/8))) }))}
	modLUT := io12
	modLUT.Extra = []*header.Element{lutSeq(TagModalityLUTSequence, 0, 12, ramp(4096, func(i int) uint16 { return uint16(4095 - i) }))}
	mono1 := pixeltest.Spec{Rows: 32, Columns: 48, BitsAllocated: 8, Photometric: "MONOCHROME1", Seed: 13}
	pal := pixeltest.Spec{Rows: 32, Columns: 32, BitsAllocated: 8, Photometric: "PALETTE COLOR", Seed: 14, Extra: palette()}
	rgb := pixeltest.Spec{Rows: 30, Columns: 40, Samples: 3, BitsAllocated: 8, Seed: 15}
	pano := pixeltest.Spec{Rows: 60, Columns: 120, BitsAllocated: 16, BitsStored: 12, Modality: "PX", Seed: 16}
	return []goldenCase{
		{"io12_auto", io12, Options{}},
		{"io12_header_window", withWindow, Options{}},
		{"io12_request_window", withWindow, Options{Window: &Window{Center: 2500, Width: 800}}},
		{"io12_second_window", multiWindow, Options{WindowIndex: 1}},
		{"io12_sigmoid", sigmoid, Options{}},
		{"io12_voi_lut", voiLUT, Options{}},
		{"io12_modality_lut", modLUT, Options{}},
		{"io12_invert", io12, Options{Invert: true}},
		{"ct_rescale_window", ct, Options{}},
		{"mono1", mono1, Options{}},
		{"palette", pal, Options{}},
		{"rgb", rgb, Options{}},
		{"pano_auto_region_fit", pano, Options{Region: image.Rect(20, 10, 100, 50), Width: 40}},
		{"pano_zoom", pano, Options{Region: image.Rect(0, 0, 30, 20), Width: 90, Height: 90}},
	}
}

// TestGolden renders small synthetic images through every stage of the
// pipeline and compares pixels (PNG) and the window used plus the frame
// metadata (JSON) with goldens under testdata/golden (go test -update).
func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			data := c.spec.File()
			in, err := Open(bytes.NewReader(data), int64(len(data)), pixel.Options{})
			if err != nil {
				t.Fatal(err)
			}
			img, w, err := in.Render(context.Background(), 0, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			f, _ := in.Frames.Frame(context.Background(), 0)
			meta, _ := json.MarshalIndent(struct {
				Used *Window   `json:"used"`
				Meta FrameMeta `json:"meta"`
			}{w, Meta(f, in.Pipeline)}, "", "  ")
			golden(t, c.name, img, meta)
		})
	}
}

func golden(t *testing.T, name string, img image.Image, meta []byte) {
	t.Helper()
	pngPath := filepath.Join("testdata", "golden", name+".png")
	jsonPath := filepath.Join("testdata", "golden", name+".json")
	if *update {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(pngPath, buf.Bytes(), 0o644)
		os.WriteFile(jsonPath, append(meta, '\n'), 0o644)
		return
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatalf("golden missing (go test -update): %v", err)
	}
	defer f.Close()
	want, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if !samePixels(img, want) {
		t.Errorf("pixels differ from %s", pngPath)
	}
	wantMeta, _ := os.ReadFile(jsonPath)
	if string(bytes.TrimSpace(wantMeta)) != string(bytes.TrimSpace(meta)) {
		t.Errorf("metadata differs from %s:\n%s", jsonPath, meta)
	}
}

func samePixels(a, b image.Image) bool {
	if a.Bounds().Size() != b.Bounds().Size() {
		return false
	}
	ra := image.NewNRGBA(image.Rectangle{Max: a.Bounds().Size()})
	rb := image.NewNRGBA(ra.Rect)
	draw.Draw(ra, ra.Rect, a, a.Bounds().Min, draw.Src)
	draw.Draw(rb, rb.Rect, b, b.Bounds().Min, draw.Src)
	return bytes.Equal(ra.Pix, rb.Pix)
}

// TestWindowAgainstDCMTK renders pydicom's CT (rescaled, window from the
// request) and MR (first header window) and compares with dcmj2pnm, within
// ±1 grey level.
func TestWindowAgainstDCMTK(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		opts Options
		src  string
	}{
		{"CT_small.dcm", []string{"+Ww", "40", "400"}, Options{Window: &Window{Center: 40, Width: 400}}, "request"},
		{"MR_small.dcm", []string{"+Wi", "1"}, Options{}, "header"},
	} {
		name := c.name
		t.Run(name, func(t *testing.T) {
			src := filepath.Join("/usr/lib/python3/dist-packages/pydicom/data/test_files", name)
			if _, err := os.Stat(src); err != nil {
				pgtest.Unavailable(t, "pydicom test files (python3-pydicom)", err)
			}
			tool, err := exec.LookPath("dcmj2pnm")
			if err != nil {
				pgtest.Unavailable(t, "dcmj2pnm (dcmtk)", err)
			}
			out := filepath.Join(t.TempDir(), "ref.pgm")
			if b, err := exec.Command(tool, append(c.args, "--write-raw-pnm", src, out)...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			pgm, _ := os.ReadFile(out)
			data, _ := os.ReadFile(src)
			in, err := Open(bytes.NewReader(data), int64(len(data)), pixel.Options{})
			if err != nil {
				t.Fatal(err)
			}
			img, w, err := in.Render(context.Background(), 0, c.opts)
			if err != nil || w == nil || w.Source != c.src {
				t.Fatalf("render: %v %+v", err, w)
			}
			g := img.(*image.Gray)
			ref := pgm[len(pgm)-len(g.Pix):]
			bad := 0
			for i := range g.Pix {
				d := int(g.Pix[i]) - int(ref[i])
				if d > 1 || d < -1 {
					bad++
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d pixels differ from dcmj2pnm by more than 1", bad, len(g.Pix))
			}
		})
	}
}

// TestAutoWindowIgnoresBordersAndSaturation: a panoramic-like frame whose
// histogram is dominated by a zero border and saturated pixels gets a
// window around the anatomy, not the full range.
func TestAutoWindowIgnoresBordersAndSaturation(t *testing.T) {
	f := &pixel.Frame{Rows: 100, Columns: 100, Samples: 1, Container: 16, BitsStored: 12, Photometric: "MONOCHROME2", Pix16: make([]uint16, 10000)}
	for i := range f.Pix16 {
		switch {
		case i < 3000:
			f.Pix16[i] = 0 // collimator border
		case i < 3500:
			f.Pix16[i] = 4095 // metal
		default:
			f.Pix16[i] = uint16(1000 + i%1000) // anatomy 1000…1999
		}
	}
	w := AutoWindow(f, &Pipeline{Slope: 1})
	lo, hi := w.Center-w.Width/2, w.Center+w.Width/2
	if lo < 990 || lo > 1020 || hi < 1980 || hi > 2000 {
		t.Fatalf("auto window %+v spans %v…%v, want about 1000…2000", w, lo, hi)
	}
}
