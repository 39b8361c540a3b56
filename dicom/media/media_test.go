package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

var testPatient = Patient{ID: "0101154321", Name: "Ørsted^Åse", BirthDate: "20150101", Sex: "F"}

func testOpts() WrapOptions {
	return WrapOptions{Patient: testPatient, Scope: "tenant/1/person/7", Time: time.Date(2024, 5, 6, 10, 11, 12, 0, time.UTC)}
}

// samplePNG makes an RGB test picture.
func samplePNG(t testing.TB, w, h int) ([]byte, *image.NRGBA) {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x * 7), uint8(y * 13), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes(), img
}

func dcmdump(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := dicomtest.Run(t, time.Minute, "dcmdump", append(args, path)...)
	require.NoError(t, err, out)
	require.NotContains(t, out, "E: ", out)
	return out
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "x.dcm")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

func TestWrapPNGPixelsEqualSource(t *testing.T) {
	src, img := samplePNG(t, 33, 20)
	w, err := Wrap(src, testOpts())
	require.NoError(t, err)
	require.Equal(t, uid.VLPhotographicImage, w.SOPClassUID)
	hr := header.NewReader(bytes.NewReader(w.File), header.Options{})
	h, err := hr.ReadHeader()
	require.NoError(t, err)
	require.Equal(t, "RGB", h.Dataset.Get(tag(0x0028, 0x0004)))
	require.Equal(t, testPatient.ID, h.Dataset.Get(header.TagPatientID))
	require.Equal(t, "Ørsted^Åse", h.Dataset.Get(header.TagPatientName))
	rest, _ := io.ReadAll(hr.Rest())
	px := rest[h.PixelData.ValueOffset-h.PixelData.Offset:]
	want := make([]byte, 0, 33*20*3)
	for y := 0; y < 20; y++ {
		for x := 0; x < 33; x++ {
			c := img.NRGBAAt(x, y)
			want = append(want, c.R, c.G, c.B)
		}
	}
	require.Equal(t, want, px[:len(want)])
	out := dcmdump(t, writeTemp(t, w.File))
	require.Contains(t, out, "VLPhotographicImageStorage")

	// The same file again: the same object (a second import is a duplicate).
	w2, err := Wrap(src, testOpts())
	require.NoError(t, err)
	require.Equal(t, w.File, w2.File)
}

// TestWrapWithoutFileTime: a browser upload has no file time; the object
// gets today's date and no content time, so uploading the same file again
// later that day gives the same object (the upload's time of day made each
// upload a different one, kept as a conflicting duplicate).
func TestWrapWithoutFileTime(t *testing.T) {
	src, _ := samplePNG(t, 8, 8)
	opt := testOpts()
	opt.Time = time.Time{}
	w, err := Wrap(src, opt)
	require.NoError(t, err)
	h, err := header.Read(bytes.NewReader(w.File), header.Options{})
	require.NoError(t, err)
	require.Equal(t, time.Now().In(auth.Copenhagen).Format("20060102"), h.Dataset.Get(tag(0x0008, 0x0023)), "content date: today in Denmark")
	// Half past midnight in Denmark is the previous day in UTC: the Danish day counts.
	opt.Now = func() time.Time { return time.Date(2026, 1, 1, 23, 30, 0, 0, time.UTC) }
	w, err = Wrap(src, opt)
	require.NoError(t, err)
	h, err = header.Read(bytes.NewReader(w.File), header.Options{})
	require.NoError(t, err)
	require.Equal(t, "20260102", h.Dataset.Get(tag(0x0008, 0x0023)))
	require.Equal(t, "20260102", h.Dataset.Get(header.TagStudyDate))
	require.Equal(t, "", h.Dataset.Get(tag(0x0008, 0x0033)), "no content time")
	require.False(t, h.Dataset.Has(tag(0x0008, 0x002A)), "no acquisition date-time")
	// With the file's own time, both are kept.
	w, err = Wrap(src, testOpts())
	require.NoError(t, err)
	h, err = header.Read(bytes.NewReader(w.File), header.Options{})
	require.NoError(t, err)
	require.Equal(t, testOpts().Time.Format("150405"), h.Dataset.Get(tag(0x0008, 0x0033)))
}

func TestWrapJPEGBaselineKept(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, nil))
	w, err := Wrap(buf.Bytes(), testOpts())
	require.NoError(t, err)
	require.Equal(t, uid.JPEGBaseline8Bit, w.TransferSyntax)
	p := writeTemp(t, w.File)
	out := dcmdump(t, p)
	require.Contains(t, out, "YBR_FULL_422")
	require.True(t, bytes.Contains(w.File, buf.Bytes()), "the JPEG bitstream as it was")
	// DCMTK decodes it.
	o, err := dicomtest.Run(t, time.Minute, "dcmdjpeg", p, filepath.Join(t.TempDir(), "y.dcm"))
	require.NoError(t, err, o)
	// A truncated JPEG is refused.
	_, err = Wrap(buf.Bytes()[:buf.Len()/2], testOpts())
	require.ErrorIs(t, err, ErrInvalid)
	_, err = Wrap([]byte("hello"), testOpts())
	require.ErrorIs(t, err, ErrUnsupported)
	hb, err := header.Read(bytes.NewReader(w.File), header.Options{})
	require.NoError(t, err)
	require.Equal(t, "01", hb.Dataset.Get(tag(0x0028, 0x2110)), "Lossy Image Compression")

	// A progressive JPEG is decoded and stored natively: its pixels were
	// still lossy-compressed once (Lossy Image Compression 01, method
	// ISO_10918_1), where a PNG's are not.
	prog, err := os.ReadFile("../pixel/testdata/progressive16.jpg")
	require.NoError(t, err)
	w, err = Wrap(prog, testOpts())
	require.NoError(t, err)
	require.Equal(t, uid.ExplicitVRLittleEndian, w.TransferSyntax)
	h, err := header.Read(bytes.NewReader(w.File), header.Options{})
	require.NoError(t, err)
	require.Equal(t, "01", h.Dataset.Get(tag(0x0028, 0x2110)))
	require.Equal(t, "ISO_10918_1", h.Dataset.Get(tag(0x0028, 0x2114)))
	pngFile, _ := samplePNG(t, 8, 8)
	w, err = Wrap(pngFile, testOpts())
	require.NoError(t, err)
	h, err = header.Read(bytes.NewReader(w.File), header.Options{})
	require.NoError(t, err)
	require.Equal(t, "00", h.Dataset.Get(tag(0x0028, 0x2110)), "a PNG is lossless")
}

func binarySTL(tris int) []byte {
	b := make([]byte, 84+50*tris)
	copy(b, "solid Patient Name In Header")
	binary.LittleEndian.PutUint32(b[80:], uint32(tris))
	return b
}

func TestWrapSTLAndPLY(t *testing.T) {
	stl := binarySTL(3)
	w, err := Wrap(stl, testOpts())
	require.NoError(t, err)
	require.Equal(t, EncapsulatedSTL, w.SOPClassUID)
	out := dcmdump(t, writeTemp(t, w.File))
	require.Contains(t, out, "model/stl")
	require.True(t, bytes.Contains(w.File, stl))

	ply := "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n" +
		"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"
	w, err = Wrap([]byte(ply), testOpts())
	require.NoError(t, err)
	require.Equal(t, KindPLY, w.Kind)
	conv, err := PLYToSTL([]byte(ply))
	require.NoError(t, err)
	require.Len(t, conv, 84+2*50, "a quad is two triangles")
	_, err = Wrap([]byte("ply\nformat ascii 1.0\nelement vertex 99999999\nend_header\n1 2"), testOpts())
	require.ErrorIs(t, err, ErrInvalid)
}

func pydicom(t *testing.T, script string, args ...string) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("python3 with pydicom is needed: %v", err)
	}
	out, err := exec.Command(py, append([]string{"-c", script}, args...)...).CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

// PydicomReadFileSet loads a DICOMDIR with pydicom's FileSet, which follows
// the record offsets, and loads every referenced instance.
const PydicomReadFileSet = `
import sys
from pydicom import dcmread
from pydicom.fileset import FileSet
ds = dcmread(sys.argv[1])
fs = FileSet(ds)
for inst in fs:
    d = inst.load()
    print(inst.PatientID, d.SOPInstanceUID)
`

func TestFileSetDICOMDIRAndDeidentify(t *testing.T) {
	var objs [][]byte
	for i := 0; i < 3; i++ {
		in := dicomtest.Instance{PatientID: "0101154321", PatientName: "Ørsted^Åse", BirthDate: "20150101",
			StudyUID: dicomtest.Root + ".90", SeriesUID: fmt.Sprintf("%s.90.%d", dicomtest.Root, i%2),
			SOPUID: fmt.Sprintf("%s.90.1.%d", dicomtest.Root, i), StudyDate: "20240506", Referring: "Dr^Who", InstanceNumber: i + 1}
		objs = append(objs, in.File(t))
	}
	stl, err := Wrap(binarySTL(2), testOpts())
	require.NoError(t, err)
	objs = append(objs, stl.File)

	for _, deid := range []bool{false, true} {
		dir := t.TempDir()
		var d *Deidentifier
		if deid {
			d = NewDeidentifier(false, false)
		}
		fs := NewFileSet(DirSink(dir), d, "")
		for _, o := range objs {
			a, err := fs.Add(bytes.NewReader(o))
			require.NoError(t, err)
			require.Regexp(t, `^DICOM(/[A-Z0-9_]{1,8}){4}$`, a.Path)
		}
		require.NoError(t, fs.Close())
		out := dcmdump(t, filepath.Join(dir, "DICOMDIR"))
		require.Contains(t, out, "PATIENT")
		require.Contains(t, out, "ENCAP DOC")
		o, err := dicomtest.Run(t, time.Minute, "dcmftest", filepath.Join(dir, "DICOMDIR"), filepath.Join(dir, "DICOM", "PAT00001", "STU00001", "SER00001", "IMG00001"))
		require.NoError(t, err, o)
		listing := pydicom(t, PydicomReadFileSet, filepath.Join(dir, "DICOMDIR"))
		require.Equal(t, 4, strings.Count(listing, "\n"), listing)
		if !deid {
			require.Contains(t, listing, "0101154321")
			continue
		}
		require.NotContains(t, listing, "0101154321")
		// No name, ID or birth date anywhere; UIDs new and consistent.
		var studies = map[string]bool{}
		err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return err
			}
			b, _ := os.ReadFile(p)
			for _, s := range []string{"0101154321", "Ørsted", "20150101", "Dr^Who", dicomtest.Root, "Patient Name In Header", "20240506"} {
				require.False(t, bytes.Contains(b, []byte(s)), "%s in %s", s, p)
			}
			if fi.Name() == "DICOMDIR" {
				return nil
			}
			h, err := header.Read(bytes.NewReader(b), header.Options{})
			require.NoError(t, err)
			require.Equal(t, "YES", h.Dataset.Get(tag(0x0012, 0x0062)))
			require.Equal(t, h.Meta.UID(header.TagMediaStorageSOPInstance), h.Dataset.UID(header.TagSOPInstanceUID))
			if h.Dataset.UID(header.TagSOPClassUID) != EncapsulatedSTL {
				studies[h.Dataset.UID(header.TagStudyInstanceUID)] = true
			}
			return nil
		})
		require.NoError(t, err)
		require.Len(t, studies, 1, "the three images stay one study")
	}
}

// A structured report (a CBCT's dose report, say) gets an SR DOCUMENT
// record with the keys PS3.3 F.5.21 asks for, as DCMTK's dcmmkdir writes
// them, not an IMAGE record; pydicom reads the file-set.
func TestFileSetSRDocumentRecord(t *testing.T) {
	sr, err := os.ReadFile("/usr/lib/python3/dist-packages/pydicom/data/test_files/test-SR.dcm")
	if err != nil {
		pgtest.Unavailable(t, "python3-pydicom test files", err)
	}
	for _, deid := range []bool{false, true} {
		dir := t.TempDir()
		var d *Deidentifier
		if deid {
			d = NewDeidentifier(false, false)
		}
		fs := NewFileSet(DirSink(dir), d, "")
		_, err := fs.Add(bytes.NewReader(sr))
		require.NoError(t, err)
		require.NoError(t, fs.Close())
		out := dcmdump(t, filepath.Join(dir, "DICOMDIR"))
		require.Contains(t, out, "[SR DOCUMENT]")
		require.NotContains(t, out, "[IMAGE]")
		for _, k := range []string{"CompletionFlag", "VerificationFlag", "ContentDate", "ContentTime", "InstanceNumber", "ConceptNameCodeSequence", "[Diagnosis]"} {
			require.Contains(t, out, k, "deidentified %v", deid)
		}
		listing := pydicom(t, PydicomReadFileSet, filepath.Join(dir, "DICOMDIR"))
		require.Equal(t, 1, strings.Count(listing, "\n"), listing)
	}
}
