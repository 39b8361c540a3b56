package pixel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel/jpeg"
	"github.com/molar-health/molar/dicom/pixel/pixeltest"
	"github.com/molar-health/molar/dicom/uid"
)

// codecCase makes a compressed variant of a source with a tool and names
// the tool that decodes it back to the reference.
type codecCase struct {
	name    string
	encode  []string // tool and options; "IN" and "OUT" are replaced
	decode  []string
	lossy   bool
	applies func(sp srcInfo) bool
}

type srcInfo struct {
	bitsStored, bitsAllocated, samples int
	signed                             bool
	frames, rows, columns              int
}

func grey(s srcInfo) bool      { return s.samples == 1 }
func notTiny(s srcInfo) bool   { return s.rows >= 8 && s.columns >= 8 }
func upTo8(s srcInfo) bool     { return s.bitsAllocated == 8 }
func upTo12(s srcInfo) bool    { return s.bitsStored <= 12 && s.bitsAllocated <= 16 }
func upTo16(s srcInfo) bool    { return s.bitsAllocated <= 16 }
func always(srcInfo) bool      { return true }
func unsigned8(s srcInfo) bool { return upTo8(s) && !s.signed }
func colour8(s srcInfo) bool   { return unsigned8(s) && s.samples == 3 }

var dcmtkJPEG = []string{"dcmdjpeg", "IN", "OUT"}

var codecCases = []codecCase{
	{name: "rle", encode: []string{"dcmcrle", "IN", "OUT"}, decode: []string{"dcmdrle", "IN", "OUT"}, applies: always},
	{name: "rle-gdcm", encode: []string{"gdcmconv", "--rle", "IN", "OUT"}, decode: []string{"dcmdrle", "IN", "OUT"}, applies: func(s srcInfo) bool { return grey(s) && upTo16(s) }}, // GDCM 3.0.21 aborts on odd-sized colour
	{name: "jpeg-sv1", encode: []string{"dcmcjpeg", "+e1", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16},
	{name: "jpeg-sv1-fragments-nobot", encode: []string{"dcmcjpeg", "+e1", "+fs", "1", "-ot", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16},
	{name: "jpeg-p14-sv2", encode: []string{"dcmcjpeg", "+el", "+sv", "2", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16},
	{name: "jpeg-p14-sv3", encode: []string{"dcmcjpeg", "+el", "+sv", "3", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16},
	{name: "jpeg-p14-sv4", encode: []string{"dcmcjpeg", "+el", "+sv", "4", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16},
	{name: "jpeg-p14-sv5", encode: []string{"dcmcjpeg", "+el", "+sv", "5", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16},
	{name: "jpeg-p14-sv6", encode: []string{"dcmcjpeg", "+el", "+sv", "6", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16},
	{name: "jpeg-p14-sv7", encode: []string{"dcmcjpeg", "+el", "+sv", "7", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16},
	{name: "jpeg-p14-pt2", encode: []string{"dcmcjpeg", "+el", "+sv", "1", "+pt", "2", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16, lossy: true},
	{name: "jpeg-lossless-gdcm", encode: []string{"gdcmconv", "--jpeg", "IN", "OUT"}, decode: dcmtkJPEG, applies: upTo16},
	{name: "jpeg-baseline", encode: []string{"dcmcjpeg", "+eb", "IN", "OUT"}, decode: dcmtkJPEG, applies: unsigned8, lossy: true},
	{name: "jpeg-baseline-q50-fragments", encode: []string{"dcmcjpeg", "+eb", "+q", "50", "+fs", "1", "IN", "OUT"}, decode: dcmtkJPEG, applies: unsigned8, lossy: true},
	{name: "jpeg-baseline-444", encode: []string{"dcmcjpeg", "+eb", "+s4", "IN", "OUT"}, decode: dcmtkJPEG, applies: colour8, lossy: true}, // no subsampling
	{name: "jpeg-baseline-420", encode: []string{"dcmcjpeg", "+eb", "+n1", "IN", "OUT"}, decode: dcmtkJPEG, applies: colour8, lossy: true}, // DCMTK's "4:1:1" is 2×2 (h2v2)
	{name: "jpeg-extended", encode: []string{"dcmcjpeg", "+ee", "IN", "OUT"}, decode: dcmtkJPEG, applies: func(s srcInfo) bool { return upTo12(s) && !s.signed }, lossy: true},
	{name: "jpeg-baseline-gdcm", encode: []string{"gdcmconv", "--jpeg", "--lossy", "-q", "85", "IN", "OUT"}, decode: dcmtkJPEG, applies: func(s srcInfo) bool { return unsigned8(s) && notTiny(s) }, lossy: true},
	{name: "jpegls", encode: []string{"dcmcjpls", "IN", "OUT"}, decode: []string{"dcmdjpls", "IN", "OUT"}, applies: upTo16},
	{name: "jpegls-sample-interleaved", encode: []string{"dcmcjpls", "+is", "IN", "OUT"}, decode: []string{"dcmdjpls", "IN", "OUT"}, applies: func(s srcInfo) bool { return upTo16(s) && s.samples == 3 }},
	{name: "jpegls-none-interleaved", encode: []string{"dcmcjpls", "+in", "IN", "OUT"}, decode: []string{"dcmdjpls", "IN", "OUT"}, applies: func(s srcInfo) bool { return upTo16(s) && s.samples == 3 }},
	{name: "jpegls-near", encode: []string{"dcmcjpls", "+en", "IN", "OUT"}, decode: []string{"dcmdjpls", "IN", "OUT"}, applies: func(s srcInfo) bool { return upTo16(s) && !s.signed && notTiny(s) }, lossy: true}, // DCMTK: unsigned only
	{name: "jpegls-gdcm", encode: []string{"gdcmconv", "--jpegls", "IN", "OUT"}, decode: []string{"dcmdjpls", "IN", "OUT"}, applies: upTo16},
	{name: "j2k", encode: []string{"gdcmconv", "--j2k", "IN", "OUT"}, decode: []string{"gdcmconv", "--raw", "IN", "OUT"}, applies: func(s srcInfo) bool { return upTo16(s) && notTiny(s) }}, // GDCM 3.0.21 crashes on 3×3
	{name: "j2k-lossy", encode: []string{"gdcmconv", "--j2k", "--lossy", "-q", "40", "IN", "OUT"}, decode: []string{"gdcmconv", "--raw", "IN", "OUT"}, applies: func(s srcInfo) bool { return upTo16(s) && notTiny(s) }, lossy: true},
}

// TestCompressedAgainstTools encodes every uncompressed source with DCMTK
// and GDCM in every compressed syntax, and compares our decoding of each
// variant with the tools' decoding (lossless: bit-exact and equal to the
// source; lossy: within ±1 of the tool).
func TestCompressedAgainstTools(t *testing.T) {
	sources := map[string]string{}
	for _, n := range []string{"CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm", "ExplVR_BigEnd.dcm"} {
		sources[n] = pydicom(t, n)
	}
	for _, sp := range synthetic() {
		sources[sp.Name] = writeSynthetic(t, sp)
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			// Every tool reads explicit little endian.
			base := filepath.Join(t.TempDir(), "src.dcm")
			runTool(t, "dcmconv", "+te", src, base)
			fs, err := openFile(t, base)
			if err != nil {
				t.Fatal(err)
			}
			in := fs.Info
			si := srcInfo{bitsStored: in.BitsStored, bitsAllocated: in.BitsAllocated, samples: in.SamplesPerPixel, signed: in.Signed, frames: in.Frames, rows: in.Rows, columns: in.Columns}
			orig := decodeAll(t, base)
			for _, c := range codecCases {
				if !c.applies(si) {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					checkCodec(t, c, base, orig)
				})
			}
		})
	}
}

func checkCodec(t *testing.T, c codecCase, src string, orig []*Frame) {
	dir := t.TempDir()
	enc, ref := filepath.Join(dir, "enc.dcm"), filepath.Join(dir, "ref.dcm")
	runTool(t, c.encode[0], subst(c.encode[1:], src, enc)...)
	runTool(t, c.decode[0], subst(c.decode[1:], enc, ref)...)
	got := decodeAll(t, enc)
	want := decodeAll(t, ref)
	if c.lossy {
		// Lossy codecs may overshoot the sample range; we clamp to Bits
		// Stored, GDCM widens Bits Stored instead.
		for _, f := range want {
			clampFrame(f, orig[0].BitsStored, orig[0].Signed)
		}
		if got[0].Samples == 3 && strings.HasPrefix(c.name, "jpeg-") {
			// 8-bit colour: the IDCT, chroma upsampling and YCbCr→RGB
			// conversion compute what the IJG library in dcmdjpeg computes,
			// so RGB and the decoded YCbCr are both within ±1 (in practice
			// identical; a float IDCT's ±1 in Y, Cb and Cr became ±3 in RGB).
			checkYCbCr(t, enc)
		}
		compareFrames(t, got, want, 1)
		return
	}
	compareFrames(t, got, want, 0)
	if t.Failed() {
		return
	}
	// Lossless: the source's samples too (colour of lossless JPEG stays as stored).
	for i := range got {
		got[i].Photometric = orig[i].Photometric
	}
	compareFrames(t, got, orig, 0)
}

func subst(args []string, in, out string) []string {
	r := make([]string, len(args))
	for i, a := range args {
		r[i] = strings.NewReplacer("IN", in, "OUT", out).Replace(a)
	}
	return r
}

// TestPydicomCompressed decodes pydicom's compressed files and compares
// with DCMTK's or GDCM's decoding.
func TestPydicomCompressed(t *testing.T) {
	cases := []struct {
		file   string
		decode []string
		tol    int64
	}{
		{"MR_small_RLE.dcm", []string{"dcmdrle", "IN", "OUT"}, 0},
		{"SC_rgb_rle.dcm", []string{"dcmdrle", "IN", "OUT"}, 0},
		{"SC_rgb_rle_16bit.dcm", []string{"dcmdrle", "IN", "OUT"}, 0},
		{"SC_rgb_rle_2frame.dcm", []string{"dcmdrle", "IN", "OUT"}, 0},
		{"SC_rgb_rle_32bit_2frame.dcm", []string{"dcmdrle", "IN", "OUT"}, 0},
		{"rtdose_rle.dcm", []string{"dcmdrle", "IN", "OUT"}, 0},
		{"JPGExtended.dcm", dcmtkJPEG, 1},
		{"JPEG-lossy.dcm", dcmtkJPEG, 1},
		{"SC_rgb_jpeg_dcmtk.dcm", dcmtkJPEG, 1},
		{"SC_rgb_jpeg_gdcm.dcm", dcmtkJPEG, 1},
		{"SC_rgb_jpeg_lossy_gdcm.dcm", dcmtkJPEG, 1},
		{"SC_rgb_dcmtk_+eb+cy+n1.dcm", dcmtkJPEG, 1},
		{"SC_rgb_dcmtk_+eb+cy+n2.dcm", dcmtkJPEG, 1},
		{"SC_rgb_dcmtk_+eb+cy+s2.dcm", dcmtkJPEG, 1},
		{"SC_rgb_dcmtk_+eb+cy+s4.dcm", dcmtkJPEG, 1},
		{"SC_rgb_dcmtk_+eb+cr.dcm", dcmtkJPEG, 1},
		{"SC_rgb_small_odd_jpeg.dcm", dcmtkJPEG, 1},
		{"SC_jpeg_no_color_transform.dcm", dcmtkJPEG, 1},
		{"SC_jpeg_no_color_transform_2.dcm", dcmtkJPEG, 1},
		{"MR_small_jpeg_ls_lossless.dcm", []string{"dcmdjpls", "IN", "OUT"}, 0},
		{"MR_small_jp2klossless.dcm", []string{"gdcmconv", "--raw", "IN", "OUT"}, 0},
		{"JPEG2000.dcm", []string{"gdcmconv", "--raw", "IN", "OUT"}, 1},
		{"GDCMJ2K_TextGBR.dcm", []string{"gdcmconv", "--raw", "IN", "OUT"}, 1},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			src := pydicom(t, c.file)
			ref := filepath.Join(t.TempDir(), "ref.dcm")
			runTool(t, c.decode[0], subst(c.decode[1:], src, ref)...)
			compareFrames(t, decodeAll(t, src), decodeAll(t, ref), c.tol)
		})
	}
}

// checkYCbCr compares our decoding of colour JPEG without colour
// conversion with dcmdjpeg +cn (never convert), within ±1.
func checkYCbCr(t *testing.T, enc string) {
	t.Helper()
	ref := filepath.Join(t.TempDir(), "ycbcr.dcm")
	runTool(t, "dcmdjpeg", "+cn", enc, ref)
	want := decodeAll(t, ref)
	fs, err := openFile(t, enc)
	if err != nil {
		t.Fatal(err)
	}
	var got []*Frame
	for i := range fs.Len() {
		raw, err := fs.Raw(i)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(raw, jpeg.Options{Color: jpeg.ColorRGB})
		if err != nil {
			t.Fatal(err)
		}
		f := newFrame(fs.Info, i)
		for k, v := range img.Pix {
			f.Pix8[k] = uint8(v)
		}
		f.Photometric = want[i].Photometric
		got = append(got, f)
	}
	compareFrames(t, got, want, 1)
}

func clampFrame(f *Frame, bits int, signed bool) {
	lo, hi := int64(0), int64(1)<<bits-1
	if signed {
		lo, hi = -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1
	}
	for i := range f.Len() {
		v := max(lo, min(hi, f.Value(i)))
		switch {
		case f.Pix8 != nil:
			f.Pix8[i] = uint8(v)
		case f.Pix16 != nil:
			f.Pix16[i] = uint16(v)
		default:
			f.Pix32[i] = uint32(v)
		}
	}
}

var _ = fmt.Sprint

// TestHighBitAboveBitsStored: 12 bits stored with High Bit 15 (the value
// in the top bits of each word). DCMTK's lossless encoders keep the header
// and code the whole stored words (16-bit JPEG, JPEG-LS): the decoded
// samples must be shifted down like native and RLE ones.
func TestHighBitAboveBitsStored(t *testing.T) {
	sp := pixeltest.Spec{Rows: 19, Columns: 23, BitsAllocated: 16, BitsStored: 12, Seed: 9}
	sop := "1.2.826.0.1.3680043.10.1234.1.1.98"
	ds := sp.Dataset(sop)
	ds.SetUint16(TagHighBit, 15)
	pix := sp.Pixels()
	want := make([]uint16, len(pix)/2)
	for i := range want {
		v := binary.LittleEndian.Uint16(pix[2*i:])
		want[i] = v
		binary.LittleEndian.PutUint16(pix[2*i:], v<<4)
	}
	ds.Set(&header.Element{Tag: header.TagPixelData, VR: "OW", Value: pix})
	var buf bytes.Buffer
	if err := header.WriteFileHeader(&buf, uid.DigitalIntraOralXRayForPresentation, sop, uid.ExplicitVRLittleEndian); err != nil {
		t.Fatal(err)
	}
	if err := ds.WriteTo(&buf, uid.ExplicitVRLittleEndian); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "hb15.dcm")
	if err := os.WriteFile(src, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tool []string
	}{
		{"native", nil},
		{"rle", []string{"dcmcrle"}},
		{"jpeg-sv1", []string{"dcmcjpeg", "+e1"}},
		{"jpeg-p14-sv7", []string{"dcmcjpeg", "+el", "+sv", "7"}},
		{"jpegls", []string{"dcmcjpls"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := src
			if c.tool != nil {
				path = filepath.Join(dir, c.name+".dcm")
				runTool(t, c.tool[0], append(c.tool[1:], src, path)...)
			}
			f := decodeAll(t, path)[0]
			if f.BitsStored != 12 || len(f.Pix16) != len(want) {
				t.Fatalf("decoded %v", f)
			}
			bad := 0
			for i, v := range f.Pix16 {
				if v != want[i] {
					if bad < 3 {
						t.Errorf("sample %d: %d, want %d", i, v, want[i])
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d samples differ", bad, len(want))
			}
		})
	}
}
