// Package dicomtest builds test instances and runs the DICOM peers (DCMTK
// tools, Orthanc) for Molar's tests and benchmarks. With CI=true a missing
// peer fails the test; otherwise the test is skipped.
package dicomtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"

	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// Root is the UID root of test instances.
const Root = "2.25.271722841182218180260196051945293747180.77"

// Instance describes a generated intra-oral image.
type Instance struct {
	PatientID, PatientName, BirthDate, Sex string
	StudyUID, SeriesUID, SOPUID            string
	StudyDate, StudyTime, Accession        string
	StudyDescription, Referring            string
	Modality                               string
	SeriesNumber, InstanceNumber           int
	Rows, Cols                             int
	Teeth                                  []string // ISO 3950 numbers
	Latin1                                 bool     // ISO_IR 100 text (else ISO_IR 192)
	SOPClass                               string   // default intra-oral for presentation
}

// Defaults fills empty fields.
func (in *Instance) defaults() {
	if in.SOPClass == "" {
		in.SOPClass = uid.DigitalIntraOralXRayForPresentation
	}
	if in.Modality == "" {
		in.Modality = "IO"
	}
	if in.Rows == 0 {
		in.Rows, in.Cols = 64, 48
	}
	if in.SeriesNumber == 0 {
		in.SeriesNumber = 1
	}
}

// Dataset builds the data set (with pixel data).
func (in Instance) Dataset() *header.Dataset {
	in.defaults()
	d := header.NewDataset()
	text := func(t header.Tag, vr, s string) {
		if in.Latin1 {
			d.Set(&header.Element{Tag: t, VR: vr, Value: header.EncodeLatin1(s)})
		} else {
			d.SetString(t, vr, s)
		}
	}
	if in.Latin1 {
		d.SetString(header.TagSpecificCharacterSet, "CS", "ISO_IR 100")
	} else {
		d.SetString(header.TagSpecificCharacterSet, "CS", "ISO_IR 192")
	}
	d.SetString(header.NewTag(0x0008, 0x0008), "CS", "ORIGINAL", "PRIMARY")
	d.SetString(header.TagSOPClassUID, "UI", in.SOPClass)
	d.SetString(header.TagSOPInstanceUID, "UI", in.SOPUID)
	d.SetString(header.TagStudyDate, "DA", in.StudyDate)
	d.SetString(header.NewTag(0x0008, 0x0030), "TM", in.StudyTime)
	d.SetString(header.TagAccessionNumber, "SH", in.Accession)
	d.SetString(header.TagModality, "CS", in.Modality)
	text(header.NewTag(0x0008, 0x0090), "PN", in.Referring)
	text(header.NewTag(0x0008, 0x1030), "LO", in.StudyDescription)
	text(header.TagPatientName, "PN", in.PatientName)
	d.SetString(header.TagPatientID, "LO", in.PatientID)
	d.SetString(header.TagPatientBirthDate, "DA", in.BirthDate)
	d.SetString(header.NewTag(0x0010, 0x0040), "CS", in.Sex)
	d.SetString(header.TagStudyInstanceUID, "UI", in.StudyUID)
	d.SetString(header.TagSeriesInstanceUID, "UI", in.SeriesUID)
	d.SetString(header.NewTag(0x0020, 0x0010), "SH", "1")
	d.SetString(header.NewTag(0x0020, 0x0011), "IS", fmt.Sprint(in.SeriesNumber))
	d.SetString(header.NewTag(0x0020, 0x0013), "IS", fmt.Sprint(in.InstanceNumber))
	d.SetString(header.NewTag(0x0020, 0x0062), "CS", "R")
	var items []*header.Dataset
	for _, tooth := range in.Teeth {
		it := header.NewDataset()
		it.SetString(header.NewTag(0x0008, 0x0100), "SH", tooth)
		it.SetString(header.NewTag(0x0008, 0x0102), "SH", "ISO3950")
		it.SetString(header.NewTag(0x0008, 0x0104), "LO", "Tooth "+tooth)
		items = append(items, it)
	}
	if len(items) > 0 {
		d.SetSequence(header.TagPrimaryAnatomicStructSeq, items...)
	}
	d.SetUint16(header.NewTag(0x0028, 0x0002), 1)
	d.SetString(header.NewTag(0x0028, 0x0004), "CS", "MONOCHROME2")
	d.SetUint16(header.TagRows, uint16(in.Rows))
	d.SetUint16(header.TagColumns, uint16(in.Cols))
	d.SetUint16(header.NewTag(0x0028, 0x0100), 16)
	d.SetUint16(header.NewTag(0x0028, 0x0101), 12)
	d.SetUint16(header.NewTag(0x0028, 0x0102), 11)
	d.SetUint16(header.NewTag(0x0028, 0x0103), 0)
	px := make([]byte, in.Rows*in.Cols*2)
	seed := len(in.SOPUID)
	for i := 0; i < in.Rows*in.Cols; i++ {
		v := uint16((i*37 + seed*11) % 4096)
		px[2*i], px[2*i+1] = byte(v), byte(v>>8)
	}
	d.Set(&header.Element{Tag: header.TagPixelData, VR: "OW", Value: px})
	return d
}

// DataSet encodes the data set without file meta in a transfer syntax.
func (in Instance) DataSet(t testing.TB, ts string) []byte {
	b, err := in.Dataset().Encode(ts)
	if err != nil {
		t.Fatalf("dicomtest: encode: %v", err)
	}
	return b
}

// File encodes a Part-10 file in explicit VR little endian.
func (in Instance) File(t testing.TB) []byte {
	in.defaults()
	var buf bytes.Buffer
	if err := header.WriteFileHeader(&buf, in.SOPClass, in.SOPUID, uid.ExplicitVRLittleEndian); err != nil {
		t.Fatal(err)
	}
	buf.Write(in.DataSet(t, uid.ExplicitVRLittleEndian))
	return buf.Bytes()
}

// Write writes the Part-10 file to path.
func (in Instance) Write(t testing.TB, path string) {
	if err := os.WriteFile(path, in.File(t), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Tool returns the path of a DCMTK tool (fails under CI=true, else skips).
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		pgtest.Unavailable(t, "DICOM peer tool "+name+" (apt-get install dcmtk orthanc)", err)
	}
	return p
}

// Run runs a DCMTK tool with TCP_NODELAY=1 and returns its combined output.
func Run(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Tool(t, name), args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// HostPort splits an address.
func HostPort(t testing.TB, addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// FreePort returns a free loopback port.
func FreePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Profile writes a storescu association profile (-xf FILE Molar) with one
// presentation context per (SOP class, transfer syntax) of the files.
func Profile(t testing.TB, dir string, files []string) string {
	type pair struct{ class, ts string }
	seen := map[pair]bool{}
	var pairs []pair
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		h, err := header.Read(fh, header.Options{})
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		p := pair{h.Dataset.UID(header.TagSOPClassUID), h.TransferSyntax}
		if !seen[p] {
			seen[p] = true
			pairs = append(pairs, p)
		}
	}
	var b strings.Builder
	b.WriteString("[[TransferSyntaxes]]\n")
	tsIdx := map[string]int{}
	for _, p := range pairs {
		if _, ok := tsIdx[p.ts]; !ok {
			tsIdx[p.ts] = len(tsIdx) + 1
			fmt.Fprintf(&b, "[TS%d]\nTransferSyntax1 = %s\n", tsIdx[p.ts], p.ts)
		}
	}
	b.WriteString("[[PresentationContexts]]\n[MolarContexts]\n")
	for i, p := range pairs {
		fmt.Fprintf(&b, "PresentationContext%d = %s\\TS%d\n", i+1, p.class, tsIdx[p.ts])
	}
	b.WriteString("[[Profiles]]\n[Molar]\nPresentationContexts = MolarContexts\n")
	path := filepath.Join(dir, "profile.cfg")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// DataSetBody returns the data set bytes of a Part-10 file (after the
// meta) and its transfer syntax.
func DataSetBody(t testing.TB, file []byte) ([]byte, string) {
	r := bytes.NewReader(file)
	h, rest, err := header.ReadFileMeta(r, header.Options{})
	if err != nil {
		t.Fatalf("dicomtest: file meta: %v", err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rest); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), h.TransferSyntax
}
