package pixel

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel/pixeltest"
	"github.com/molar-health/molar/dicom/uid"
)

// synthetic returns the synthetic dental test images.
func synthetic() []pixeltest.Spec {
	return []pixeltest.Spec{
		{Name: "io12", Rows: 67, Columns: 53, BitsAllocated: 16, BitsStored: 12, Seed: 1},
		{Name: "io16", Rows: 64, Columns: 48, BitsAllocated: 16, BitsStored: 16, Seed: 2},
		{Name: "signed16", Rows: 40, Columns: 33, BitsAllocated: 16, BitsStored: 16, Signed: true, Seed: 3},
		{Name: "signed12", Rows: 31, Columns: 45, BitsAllocated: 16, BitsStored: 12, Signed: true, Seed: 4},
		{Name: "mono1_8", Rows: 50, Columns: 61, BitsAllocated: 8, BitsStored: 8, Photometric: "MONOCHROME1", Seed: 5},
		{Name: "rgb8", Rows: 48, Columns: 64, Samples: 3, BitsAllocated: 8, Seed: 6},
		{Name: "rgb8_planar", Rows: 35, Columns: 29, Samples: 3, BitsAllocated: 8, Planar: 1, Seed: 7},
		{Name: "ct_frames", Rows: 32, Columns: 40, Frames: 4, BitsAllocated: 16, BitsStored: 12, Signed: true, Modality: "CT", SOPClass: uid.CTImage, Seed: 8},
	}
}

// writeSynthetic writes the spec to a temporary file.
func writeSynthetic(t testing.TB, sp pixeltest.Spec) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), sp.Name+".dcm")
	if err := sp.Write(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// nativeSources are uncompressed files: pydicom's and the synthetic ones.
func nativeSources(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, n := range []string{"CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "SC_rgb_small_odd.dcm", "SC_ybr_full_422_uncompressed.dcm", "liver_1frame.dcm", "MR_small_padded.dcm", "image_dfl.dcm", "ExplVR_BigEnd.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "rtdose_expb.dcm"} {
		out[n] = pydicom(t, n)
	}
	for _, sp := range synthetic() {
		out[sp.Name] = writeSynthetic(t, sp)
	}
	return out
}

// noOracle lists files suyashkumar/dicom cannot decode or decodes wrongly:
// YBR_FULL_422 and padded pixel data (it refuses), deflate (it fails), 1-bit
// data (it reads bits most significant first; see TestOneBitAgainstDCMTK).
var noOracle = map[string]bool{"SC_ybr_full_422_uncompressed.dcm": true, "MR_small_padded.dcm": true, "image_dfl.dcm": true, "liver_1frame.dcm": true,
	// pydicom's big endian RT dose stores 32-bit samples whole in OW; DCMTK
	// and PS3.5 swap OW per 16-bit word (as we do; the DCMTK variants of
	// rtdose.dcm check that).
	"rtdose_expb.dcm": true}

// TestNativeAgainstOracle decodes the uncompressed files and DCMTK's
// re-encodings of them in every native syntax and compares each sample
// with suyashkumar/dicom's decoding of the source.
func TestNativeAgainstOracle(t *testing.T) {
	for name, src := range nativeSources(t) {
		t.Run(name, func(t *testing.T) {
			ref := decodeAll(t, src)
			if !noOracle[name] {
				fs, _ := openFile(t, src)
				checkOracle(t, ref, oracle(t, src), fs.Info.PlanarConfiguration == 1)
			}
			for _, v := range []struct{ name, opt string }{{"explicit", "+te"}, {"implicit", "+ti"}, {"bigendian", "+tb"}, {"deflated", "+td"}} {
				t.Run(v.name, func(t *testing.T) {
					out := filepath.Join(t.TempDir(), "v.dcm")
					runTool(t, "dcmconv", v.opt, src, out)
					got := decodeAll(t, out)
					compareFrames(t, got, ref, 0)
				})
			}
		})
	}
}

// checkOracle compares frames with the oracle's samples; the oracle keeps
// the stored bits as they are, so both are compared in Bits Stored.
func checkOracle(t *testing.T, got []*Frame, want [][]int64, planar bool) {
	t.Helper()
	if planar { // the oracle keeps the planes as stored
		for i, f := range got {
			n := f.Rows * f.Columns
			w := make([]int64, len(want[i]))
			for p := range n {
				for s := range 3 {
					w[3*p+s] = want[i][s*n+p]
				}
			}
			want[i] = w
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames, oracle has %d", len(got), len(want))
	}
	for i, f := range got {
		if f.Photometric == YBRFull && len(want[i]) != f.Len() {
			continue // the oracle does not expand YBR_FULL_422
		}
		if len(want[i]) != f.Len() {
			t.Fatalf("frame %d: %d samples, oracle %d", i, f.Len(), len(want[i]))
		}
		mask := int64(1)<<f.BitsStored - 1
		bad := 0
		for k := range f.Len() {
			if f.Value(k)&mask != want[i][k]&mask {
				if bad < 3 {
					t.Errorf("frame %d sample %d: %d, oracle %d", i, k, f.Value(k), want[i][k])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("frame %d: %d samples differ from the oracle", i, bad)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	sp := pixeltest.Spec{Name: "x", Rows: 10, Columns: 10, BitsAllocated: 16, BitsStored: 12}
	data := sp.File()
	_, err := openBytes(t, data[:len(data)-20])
	if err == nil {
		t.Fatal("truncated native pixel data accepted")
	}
	if _, err := os.Stat(pydicomFiles); err != nil && os.Getenv("CI") == "true" {
		t.Fatal("pydicom files missing")
	}
}

// TestOneBitAgainstDCMTK checks 1-bit unpacking (least significant bit
// first, PS3.5 D.2) against dcmj2pnm's rendering.
func TestOneBitAgainstDCMTK(t *testing.T) {
	src := pydicom(t, "liver_1frame.dcm")
	out := filepath.Join(t.TempDir(), "liver.pgm")
	runTool(t, "dcmj2pnm", "+ot", "--write-raw-pnm", src, out)
	pgm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f := decodeAll(t, src)[0]
	pgm = pgm[len(pgm)-f.Len():]
	bad := 0
	for i := range f.Len() {
		want := int64(0)
		if pgm[i] != 0 {
			want = 1
		}
		if f.Value(i) != want {
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d pixels differ from dcmj2pnm", bad, f.Len())
	}
}

// TestOneBitOWBigEndian: explicit VR big endian swaps OW values per 16-bit
// word (PS3.5 7.3), packed 1-bit pixels included (DCMTK writes them so);
// they must be swapped back before unpacking, as 8-bit samples in OW are.
func TestOneBitOWBigEndian(t *testing.T) {
	for _, c := range []struct {
		name              string
		rows, columns, nf int
	}{
		{"one frame", 4, 8, 1},
		{"frames not on word boundaries", 3, 5, 3}, // 15 bits per frame
	} {
		t.Run(c.name, func(t *testing.T) {
			sp := pixeltest.Spec{Rows: c.rows, Columns: c.columns, BitsAllocated: 8, Frames: c.nf, SOPClass: uid.SecondaryCaptureImage}
			sop := "1.2.826.0.1.3680043.10.1234.1.1.99"
			ds := sp.Dataset(sop)
			ds.SetUint16(TagBitsAllocated, 1)
			ds.SetUint16(TagBitsStored, 1)
			ds.SetUint16(TagHighBit, 0)
			bits := c.rows * c.columns * c.nf
			pix := make([]byte, ((bits+7)/8+1)&^1)
			want := make([]uint8, bits)
			for i := range bits {
				if (i*7+i/3)%5 < 2 {
					want[i] = 1
					pix[i/8] |= 1 << (i % 8)
				}
			}
			ds.Set(&header.Element{Tag: header.TagPixelData, VR: "OW", Value: pix})
			var buf bytes.Buffer
			if err := header.WriteFileHeader(&buf, sp.SOPClass, sop, uid.ExplicitVRLittleEndian); err != nil {
				t.Fatal(err)
			}
			if err := ds.WriteTo(&buf, uid.ExplicitVRLittleEndian); err != nil {
				t.Fatal(err)
			}
			le := filepath.Join(t.TempDir(), "le.dcm")
			if err := os.WriteFile(le, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			be := filepath.Join(t.TempDir(), "be.dcm")
			runTool(t, "dcmconv", "+tb", le, be)
			for _, path := range []string{le, be} {
				frames := decodeAll(t, path)
				var got []uint8
				for _, f := range frames {
					got = append(got, f.Pix8...)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: pixels\n%v, want\n%v", filepath.Base(path), got, want)
				}
			}
		})
	}
}
