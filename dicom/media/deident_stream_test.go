package media

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// trailingSecret is identifying text that a vendor put after the pixel
// data (private group 7FE1, a digital signature, trailing padding).
const trailingSecret = "Trailing^Secret 0101154321"

// withTrailing adds, after the pixel data, a private block (7FE1), a
// Digital Signatures Sequence (FFFA,FFFA) and Data Set Trailing Padding
// (FFFC,FFFC), each carrying trailingSecret.
func withTrailing(ds *header.Dataset) {
	ds.SetString(tag(0x7FE1, 0x0010), "LO", "ACME 1.0")
	ds.SetString(tag(0x7FE1, 0x1001), "LO", trailingSecret)
	sig := header.NewDataset()
	sig.SetString(tag(0x0400, 0x0100), "UI", "1.2.3.4.5.6")
	sig.Set(&header.Element{Tag: tag(0x0400, 0x0120), VR: "OB", Value: []byte(trailingSecret)})
	ds.SetSequence(tag(0xFFFA, 0xFFFA), sig)
	ds.Set(&header.Element{Tag: tag(0xFFFC, 0xFFFC), VR: "OB", Value: []byte(trailingSecret)})
}

// PydicomPixelsAndTrailing prints the SHA-256 of the pixel data value
// (native, or the encapsulated fragments) and the tags after it.
const PydicomPixelsAndTrailing = `
import sys, hashlib
from pydicom import dcmread
ds = dcmread(sys.argv[1])
print(hashlib.sha256(ds.PixelData).hexdigest())
print(" ".join("%08X" % int(e.tag) for e in ds if e.tag > 0x7FE00010))
`

// TestDeidentifyAfterPixelData: attributes after the pixel data (private
// groups, digital signatures, padding) are de-identified like the rest,
// in every transfer syntax, and the pixel data is copied unchanged.
func TestDeidentifyAfterPixelData(t *testing.T) {
	in := dicomtest.Instance{PatientID: "0101154321", PatientName: "Ørsted^Åse", StudyUID: dicomtest.Root + ".91",
		SeriesUID: dicomtest.Root + ".91.1", SOPUID: dicomtest.Root + ".91.1.1", StudyDate: "20240506", InstanceNumber: 1}
	native := func(ts string) []byte {
		ds := in.Dataset()
		withTrailing(ds)
		var b bytes.Buffer
		require.NoError(t, header.WriteFileHeader(&b, uid.DigitalIntraOralXRayForPresentation, in.SOPUID, ts))
		require.NoError(t, ds.WriteTo(&b, ts))
		return b.Bytes()
	}
	// A wrapped JPEG photograph (encapsulated pixel data), trailing
	// elements appended after its sequence delimitation item.
	jp, err := Wrap(sampleJPEG(t, 40, 30), testOpts())
	require.NoError(t, err)
	require.Equal(t, uid.JPEGBaseline8Bit, jp.TransferSyntax)
	tr := header.NewDataset()
	withTrailing(tr)
	trail, err := tr.Encode(uid.JPEGBaseline8Bit)
	require.NoError(t, err)
	jpegFile := append(append([]byte(nil), jp.File...), trail...)

	for _, c := range []struct {
		name string
		file []byte
	}{
		{"explicit VR little endian", native(uid.ExplicitVRLittleEndian)},
		{"implicit VR little endian", native(uid.ImplicitVRLittleEndian)},
		{"explicit VR big endian", native(uid.ExplicitVRBigEndian)},
		{"deflated", native(uid.DeflatedExplicitVRLittleEndian)},
		{"JPEG baseline, encapsulated", jpegFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "in.dcm")
			require.NoError(t, os.WriteFile(src, c.file, 0o644))
			before := strings.Fields(pydicom(t, PydicomPixelsAndTrailing, src))
			require.Len(t, before, 5, "pixel hash and four trailing tags in the input")

			out := filepath.Join(dir, "out")
			fs := NewFileSet(DirSink(out), NewDeidentifier(false, false), "")
			a, err := fs.Add(bytes.NewReader(c.file))
			require.NoError(t, err)
			require.NoError(t, fs.Close())
			p := filepath.Join(out, filepath.FromSlash(a.Path))
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.False(t, bytes.Contains(b, []byte("Trailing^Secret")), "text after the pixel data leaked")
			require.False(t, bytes.Contains(b, []byte("ACME 1.0")), "private creator after the pixel data leaked")
			after := strings.Fields(pydicom(t, PydicomPixelsAndTrailing, p))
			require.Equal(t, before[:1], after, "pixel data unchanged, nothing after it")
			dcmdump(t, p) // DCMTK reads the file to its end
		})
	}
}

// sampleJPEG is a baseline colour JPEG of w×h pixels.
func sampleJPEG(t testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, nil))
	return buf.Bytes()
}

// TestDeidentifyJPEGMetadata: a photograph kept as its JPEG bitstream
// (wrapped baseline JPEG) carries Exif (dates, GPS, camera serial number),
// comments and data after its end of image (appended pictures) inside the
// pixel data; de-identified they are blanked in place (fragment lengths and
// offsets unchanged), and the image still decodes to the same pixels.
func TestDeidentifyJPEGMetadata(t *testing.T) {
	plain := sampleJPEG(t, 40, 30)
	seg := func(marker byte, payload string) []byte {
		n := len(payload) + 2
		return append([]byte{0xFF, marker, byte(n >> 8), byte(n)}, payload...)
	}
	var j []byte
	j = append(j, plain[:2]...) // SOI
	j = append(j, seg(0xE1, "Exif\x00\x00GPS 55.6761N 12.5683E 2024:05:06 10:11:12 SERIAL-SECRET")...)
	j = append(j, seg(0xFE, "Taken of Ørsted^Åse COMMENT-SECRET")...)
	j = append(j, seg(0xED, "Photoshop 3.0\x00IPTC-SECRET")...)
	j = append(j, plain[2:]...)
	j = append(j, "APPENDED-SECRET picture after the end of image"...)
	w, err := Wrap(j, testOpts())
	require.NoError(t, err)
	require.Equal(t, uid.JPEGBaseline8Bit, w.TransferSyntax)
	require.True(t, bytes.Contains(w.File, []byte("SERIAL-SECRET")))
	ref, err := Wrap(plain, testOpts())
	require.NoError(t, err)

	dir := t.TempDir()
	fs := NewFileSet(DirSink(dir), NewDeidentifier(false, false), "")
	a, err := fs.Add(bytes.NewReader(w.File))
	require.NoError(t, err)
	b, err := fs.Add(bytes.NewReader(ref.File))
	require.NoError(t, err)
	require.NoError(t, fs.Close())
	out, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(a.Path)))
	require.NoError(t, err)
	for _, s := range []string{"SERIAL-SECRET", "GPS", "2024:05:06", "COMMENT-SECRET", "IPTC-SECRET", "APPENDED-SECRET", "Exif"} {
		require.False(t, bytes.Contains(out, []byte(s)), "%s left in the JPEG bitstream", s)
	}
	// DCMTK decodes both; the pixels are those of the plain JPEG.
	hash := func(rel string) string {
		p := filepath.Join(t.TempDir(), "raw.dcm")
		o, err := dicomtest.Run(t, time.Minute, "dcmdjpeg", filepath.Join(dir, filepath.FromSlash(rel)), p)
		require.NoError(t, err, o)
		return pydicom(t, PydicomPixelsAndTrailing, p)
	}
	require.Equal(t, hash(b.Path), hash(a.Path))
}

// TestJPEGScrubChunks: the scrubber gives the same bytes however the
// fragment is cut into reads.
func TestJPEGScrubChunks(t *testing.T) {
	plain := sampleJPEG(t, 16, 16)
	j := append(append(append([]byte(nil), plain[:2]...), 0xFF, 0xE1, 0, 8, 'E', 'x', 'i', 'f', 0, 0), plain[2:]...)
	j = append(j, "tail"...)
	whole := append([]byte(nil), j...)
	var s jpegScrub
	s.fragment(whole)
	s.scrub(whole)
	require.Equal(t, []byte{0xFF, 0xE1, 0, 8, 0, 0, 0, 0, 0, 0}, whole[2:12])
	require.Equal(t, make([]byte, 4), whole[len(whole)-4:])
	require.Equal(t, plain[2:], whole[12:len(whole)-4])
	for _, size := range []int{1, 2, 3, 7, 100} {
		got := append([]byte(nil), j...)
		var s jpegScrub
		s.fragment(got)
		for i := 0; i < len(got); i += size {
			s.scrub(got[i:min(i+size, len(got))])
		}
		require.Equal(t, whole, got, "chunks of %d", size)
	}
	// Not JPEG (JPEG 2000 codestream): untouched.
	j2k := []byte{0xFF, 0x4F, 0xFF, 0x51, 0, 4, 1, 2, 0xFF, 0xD9, 9, 9}
	got := append([]byte(nil), j2k...)
	var s2 jpegScrub
	s2.fragment(got)
	s2.scrub(got)
	require.Equal(t, j2k, got)
}

// TestBlankSTLHeader: the free text of an STL (binary header; ASCII name
// after solid and after endsolid) is blanked, the geometry kept.
func TestBlankSTLHeader(t *testing.T) {
	ascii := "solid Orsted Ase 0101154321\n facet normal 0 0 1\n  outer loop\n   vertex 0 0 0\n   vertex 1 0 0\n   vertex 0 1 0\n  endloop\n endfacet\nendsolid Orsted Ase 0101154321\n"
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"binary", binarySTL(2)},
		{"ascii", []byte(ascii)},
		{"ascii CRLF, no final newline", []byte(strings.ReplaceAll(strings.TrimSuffix(ascii, "\n"), "\n", "\r\n"))},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := blankSTLHeader(c.in)
			require.Len(t, out, len(c.in))
			for _, s := range []string{"Orsted", "0101154321", "Patient Name"} {
				require.False(t, bytes.Contains(out, []byte(s)), "%s left in %q", s, out)
			}
			require.NoError(t, checkSTL(out))
			if c.name != "binary" {
				require.Contains(t, string(out), "vertex 1 0 0")
			} else {
				require.Equal(t, c.in[80:], out[80:])
			}
		})
	}
}

// TestDeidentifyUNEncoded: standard attributes that a system without them
// in its dictionary passed on as UN get the action of their real VR: a
// date outside the table is removed, an instance UID outside the table
// replaced, a sequence that cannot be cleaned (UN of defined length)
// removed.
func TestDeidentifyUNEncoded(t *testing.T) {
	item := header.NewDataset()
	item.SetString(header.TagSeriesInstanceUID, "UI", "1.2.3.4.77.1")
	body, err := item.Encode(uid.ImplicitVRLittleEndian)
	require.NoError(t, err)
	seq := append([]byte{0xFE, 0xFF, 0x00, 0xE0}, byte(len(body)), byte(len(body)>>8), 0, 0)
	seq = append(seq, body...)

	ds := deidSample(IntraOralForPresentation)
	ds.Set(&header.Element{Tag: tag(0x0008, 0x0012), VR: "UN", Value: []byte("20240506")})     // Instance Creation Date
	ds.Set(&header.Element{Tag: tag(0x0020, 0x0242), VR: "UN", Value: []byte("1.2.3.4.77.2")}) // SOP Instance UID of Concatenation Source
	ds.Set(&header.Element{Tag: tag(0x0008, 0x1115), VR: "UN", Value: seq})                    // Referenced Series Sequence
	var b bytes.Buffer
	require.NoError(t, header.WriteFileHeader(&b, IntraOralForPresentation, "1.2.3.4.5", uid.ExplicitVRLittleEndian))
	require.NoError(t, ds.WriteTo(&b, uid.ExplicitVRLittleEndian))
	h, err := header.Read(bytes.NewReader(b.Bytes()), header.Options{})
	require.NoError(t, err)
	require.Equal(t, "UN", h.Dataset.Find(tag(0x0020, 0x0242)).VR)

	d := NewDeidentifier(false, false)
	require.NoError(t, d.Apply(h.Dataset))
	require.Nil(t, h.Dataset.Find(tag(0x0008, 0x0012)), "date outside the table")
	require.Equal(t, d.MapUID("1.2.3.4.77.2"), h.Dataset.UID(tag(0x0020, 0x0242)))
	ref := h.Dataset.Sequence(tag(0x0008, 0x1115))
	require.Len(t, ref, 1, "the UN sequence read and cleaned")
	require.Equal(t, d.MapUID("1.2.3.4.77.1"), ref[0].UID(header.TagSeriesInstanceUID))
	out, err := h.Dataset.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	for _, s := range []string{"20240506", "1.2.3.4.77"} {
		require.False(t, bytes.Contains(out, []byte(s)), "%s left", s)
	}
}
