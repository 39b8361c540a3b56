package media

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
