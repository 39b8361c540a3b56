package dimse

// Interoperability tests against the DCMTK command line tools (Debian
// package dcmtk). With CI=true a missing tool fails the test; otherwise the
// test is skipped.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

const pydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

func TestDCMTKEchoscu(t *testing.T) {
	dicomtest.Tool(t, "echoscu")
	s := &Server{AETitle: "MOLAR", Policy: func(ctx context.Context, req *AssociationRequest) Decision {
		if req.CallingAE == "BADGUY" {
			return RejectCallingAE()
		}
		return Accept(ServiceEcho)
	}}
	addr := startServer(t, s)
	h, p := dicomtest.HostPort(t, addr)
	out, err := dicomtest.Run(t, 20*time.Second, "echoscu", "-v", "-aet", "ECHOSCU", "-aec", "MOLAR", h, p)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Received Echo Response (Success)")

	// Several echoes in one association.
	out, err = dicomtest.Run(t, 20*time.Second, "echoscu", "-v", "-aet", "ECHOSCU", "-aec", "MOLAR", "--repeat", "3", h, p)
	require.NoError(t, err, out)
	assert.Equal(t, 3, strings.Count(out, "Received Echo Response (Success)"), out)

	out, err = dicomtest.Run(t, 20*time.Second, "echoscu", "-v", "-aet", "BADGUY", "-aec", "MOLAR", h, p)
	require.Error(t, err, out)
	assert.Contains(t, out, "Calling AE Title Not Recognized", out)

	out, err = dicomtest.Run(t, 20*time.Second, "echoscu", "-v", "-aet", "ECHOSCU", "-aec", "WRONG", h, p)
	require.Error(t, err, out)
	assert.Contains(t, out, "Called AE Title Not Recognized", out)
}

// fixture is a test file with its identity.
type fixture struct {
	path           string
	sopClass       string
	sopInstance    string
	transferSyntax string
}

func readFixture(t testing.TB, path string) fixture {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h, err := header.Read(f, header.Options{})
	require.NoError(t, err, path)
	return fixture{path: path, sopClass: h.Dataset.UID(header.TagSOPClassUID), sopInstance: h.Dataset.UID(header.TagSOPInstanceUID), transferSyntax: h.TransferSyntax}
}

// writeDentalIO writes a 16-bit intra-oral image with Latin-1 patient name and
// tooth codes, explicit VR little endian.
func writeDentalIO(t testing.TB, path, sopInstance string, rows, cols int) {
	d := header.NewDataset()
	d.SetString(header.TagSpecificCharacterSet, "CS", "ISO_IR 100")
	d.SetString(header.NewTag(0x0008, 0x0008), "CS", "ORIGINAL", "PRIMARY")
	d.SetString(header.TagSOPClassUID, "UI", uid.DigitalIntraOralXRayForPresentation)
	d.SetString(header.TagSOPInstanceUID, "UI", sopInstance)
	d.SetString(header.TagStudyDate, "DA", "20240115")
	d.SetString(header.TagModality, "CS", "IO")
	d.Set(&header.Element{Tag: header.TagPatientName, VR: "PN", Value: header.EncodeLatin1("Ørsted^Åse Sørine")})
	d.SetString(header.TagPatientID, "LO", "0101151234")
	d.SetString(header.TagStudyInstanceUID, "UI", "2.25.271722841182218180260196051945293747180.9.1")
	d.SetString(header.TagSeriesInstanceUID, "UI", "2.25.271722841182218180260196051945293747180.9.2")
	d.SetString(header.NewTag(0x0020, 0x0062), "CS", "R")
	tooth := header.NewDataset()
	tooth.SetString(header.NewTag(0x0008, 0x0100), "SH", "T-54260")
	tooth.SetString(header.NewTag(0x0008, 0x0102), "SH", "SRT")
	tooth.SetString(header.NewTag(0x0008, 0x0104), "LO", "Tooth 16")
	d.SetSequence(header.TagPrimaryAnatomicStructSeq, tooth)
	d.SetUint16(header.NewTag(0x0028, 0x0002), 1)
	d.SetString(header.NewTag(0x0028, 0x0004), "CS", "MONOCHROME2")
	d.SetUint16(header.TagRows, uint16(rows))
	d.SetUint16(header.TagColumns, uint16(cols))
	d.SetUint16(header.NewTag(0x0028, 0x0100), 16)
	d.SetUint16(header.NewTag(0x0028, 0x0101), 12)
	d.SetUint16(header.NewTag(0x0028, 0x0102), 11)
	d.SetUint16(header.NewTag(0x0028, 0x0103), 0)
	px := make([]byte, rows*cols*2)
	for y := 0; y < rows; y++ {
		for x := 0; x < cols; x++ {
			v := uint16((x*37 + y*11) % 4096)
			px[2*(y*cols+x)] = byte(v)
			px[2*(y*cols+x)+1] = byte(v >> 8)
		}
	}
	d.Set(&header.Element{Tag: header.TagPixelData, VR: "OW", Value: px})
	var buf bytes.Buffer
	require.NoError(t, header.WriteFileHeader(&buf, uid.DigitalIntraOralXRayForPresentation, sopInstance, uid.ExplicitVRLittleEndian))
	require.NoError(t, d.WriteTo(&buf, uid.ExplicitVRLittleEndian))
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

// makeFixtures builds files in many transfer syntaxes with DCMTK converters
// and adds pydicom's test files.
func makeFixtures(t *testing.T) []fixture {
	dir := t.TempDir()
	io := filepath.Join(dir, "io_ele.dcm")
	writeDentalIO(t, io, "2.25.271722841182218180260196051945293747180.9.3.1", 96, 64)
	// DCMTK must read what we wrote.
	out, err := dicomtest.Run(t, 20*time.Second, "dcmdump", "-q", io)
	require.NoError(t, err, out)
	require.Contains(t, out, "Tooth 16")
	conv := []struct {
		tool string
		args []string
		name string
	}{
		{"dcmconv", []string{"+ti"}, "io_ile.dcm"},
		{"dcmconv", []string{"+tb"}, "io_ebe.dcm"},
		{"dcmconv", []string{"+td"}, "io_dfl.dcm"},
		{"dcmcjpeg", []string{"+e1"}, "io_jpll70.dcm"},
		{"dcmcjpeg", []string{"+el"}, "io_jpll57.dcm"},
		{"dcmcjpeg", []string{"+ee"}, "io_jpext51.dcm"},
		{"dcmcrle", nil, "io_rle.dcm"},
		{"dcmcjpls", []string{"+el"}, "io_jls80.dcm"},
		{"dcmcjpls", []string{"+en"}, "io_jls81.dcm"},
	}
	var files []string
	files = append(files, io)
	for i, c := range conv {
		dst := filepath.Join(dir, c.name)
		// Give each variant its own SOP instance UID (stored keyed by UID).
		inst := fmt.Sprintf("2.25.271722841182218180260196051945293747180.9.3.%d", i+2)
		src := filepath.Join(dir, "src_"+c.name)
		writeDentalIO(t, src, inst, 96, 64)
		args := append(append([]string{}, c.args...), src, dst)
		out, err := dicomtest.Run(t, 60*time.Second, c.tool, args...)
		require.NoError(t, err, "%s %v: %s", c.tool, args, out)
		require.NoError(t, os.Remove(src))
		files = append(files, dst)
	}
	// An intra-oral camera photo: JPEG baseline VL Photographic via img2dcm.
	img := image.NewRGBA(image.Rect(0, 0, 80, 60))
	for y := 0; y < 60; y++ {
		for x := 0; x < 80; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 3), uint8(y * 4), 120, 255})
		}
	}
	var jb bytes.Buffer
	require.NoError(t, jpeg.Encode(&jb, img, &jpeg.Options{Quality: 90}))
	jpg := filepath.Join(dir, "photo.jpg")
	require.NoError(t, os.WriteFile(jpg, jb.Bytes(), 0o644))
	vlp := filepath.Join(dir, "photo_vlp.dcm")
	out, err = dicomtest.Run(t, 30*time.Second, "img2dcm", "-vlp", "-k", "PatientName=Test^Photo", jpg, vlp)
	require.NoError(t, err, out)
	require.NoError(t, os.Remove(jpg))
	files = append(files, vlp)
	for _, name := range []string{"CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "JPEG2000.dcm",
		"MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPGExtended.dcm", "MR_small_jpeg_ls_lossless.dcm"} {
		b, err := os.ReadFile(filepath.Join(pydicomFiles, name))
		if err != nil {
			t.Logf("pydicom file %s not available: %v", name, err)
			continue
		}
		dst := filepath.Join(dir, "py_"+name)
		require.NoError(t, os.WriteFile(dst, b, 0o644))
		files = append(files, dst)
	}
	var fx []fixture
	for _, f := range files {
		fx = append(fx, readFixture(t, f))
	}
	return fx
}

// writeProfile writes a storescu association profile proposing one context
// per (SOP class, transfer syntax) pair.
func writeProfile(t *testing.T, dir string, fx []fixture) string {
	type pair struct{ class, ts string }
	seen := map[pair]bool{}
	var pairs []pair
	for _, f := range fx {
		p := pair{f.sopClass, f.transferSyntax}
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
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

// datasetBody returns the data set bytes of a Part-10 file (after the meta),
// inflated for the deflated syntax.
func datasetBody(t testing.TB, path string) (*header.Header, []byte) {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	h, err := header.Read(bytes.NewReader(raw), header.Options{})
	require.NoError(t, err)
	return h, raw[h.DataSetOffset:]
}

// compareDatasets compares two data sets element by element (group lengths
// and trailing padding ignored) and their pixel data bytes.
func compareDatasets(t *testing.T, name string, wantBody, gotBody []byte, ts string) {
	t.Helper()
	rw := header.NewReader(bytes.NewReader(wantBody), header.Options{TransferSyntax: ts})
	hw, err := rw.ReadHeader()
	require.NoError(t, err, name)
	rg := header.NewReader(bytes.NewReader(gotBody), header.Options{TransferSyntax: ts})
	hg, err := rg.ReadHeader()
	require.NoError(t, err, name)
	flatten := func(d *header.Dataset) []string {
		var out []string
		d.Walk(func(depth int, e *header.Element) bool {
			if e.Tag.Element() == 0 || e.Tag == 0xFFFCFFFC {
				return true
			}
			out = append(out, fmt.Sprintf("%d %v %s %x", depth, e.Tag, e.VR, e.Value))
			return true
		})
		return out
	}
	assert.Equal(t, flatten(hw.Dataset), flatten(hg.Dataset), "%s: data set differs", name)
	require.Equal(t, hw.PixelData != nil, hg.PixelData != nil, name)
	if hw.PixelData != nil {
		pw, err := io.ReadAll(rw.Rest())
		require.NoError(t, err)
		pg, err := io.ReadAll(rg.Rest())
		require.NoError(t, err)
		// Compare the pixel data value (DCMTK corrects OW to OB for
		// encapsulated data), without trailing padding elements.
		pw = pixelElementOnly(pw, hw.PixelData)[hw.PixelData.ValueOffset-hw.PixelData.Offset:]
		pg = pixelElementOnly(pg, hg.PixelData)[hg.PixelData.ValueOffset-hg.PixelData.Offset:]
		if !assert.True(t, bytes.Equal(pw, pg), "%s: pixel data differs (%d vs %d bytes)", name, len(pw), len(pg)) && os.Getenv("DIMSE_DUMP") != "" {
			_ = os.WriteFile("/tmp/want_"+name, pw, 0o644)
			_ = os.WriteFile("/tmp/got_"+name, pg, 0o644)
		}
	}
}

func pixelElementOnly(rest []byte, p *header.PixelDataInfo) []byte {
	if p.Encapsulated() {
		// Items up to and including the sequence delimitation item.
		i := p.ValueOffset - p.Offset
		for i+8 <= int64(len(rest)) {
			tag := uint32(binary.LittleEndian.Uint16(rest[i:]))<<16 | uint32(binary.LittleEndian.Uint16(rest[i+2:]))
			n := int64(binary.LittleEndian.Uint32(rest[i+4:]))
			if tag == 0xFFFEE0DD {
				return rest[:i+8]
			}
			i += 8 + n
		}
		return rest
	}
	end := p.ValueOffset - p.Offset + int64(p.Length)
	if end <= int64(len(rest)) {
		return rest[:end]
	}
	return rest
}

// recordingStore keeps every received instance keyed by (UID, syntax).
type recordingStore struct {
	mu    sync.Mutex
	items map[string][]byte
	reqs  map[string]StoreRequest
}

func (r *recordingStore) Store(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error) {
	b, err := io.ReadAll(data)
	if err != nil {
		return StatusProcessingFailure, err
	}
	// Check the header reader copes with what arrived (as ingest will).
	if _, err := header.Read(bytes.NewReader(b), header.Options{TransferSyntax: req.TransferSyntax}); err != nil {
		return StatusCannotUnderstand, Fail(StatusCannotUnderstand, "unreadable data set", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.items == nil {
		r.items, r.reqs = map[string][]byte{}, map[string]StoreRequest{}
	}
	k := req.SOPInstanceUID + "|" + req.TransferSyntax
	r.items[k] = b
	r.reqs[k] = *req
	return StatusSuccess, nil
}

func TestDCMTKStorescuAllSyntaxes(t *testing.T) {
	dicomtest.Tool(t, "storescu")
	fx := makeFixtures(t)
	require.GreaterOrEqual(t, len(fx), 11)
	dir := t.TempDir()
	for i, f := range fx {
		b, err := os.ReadFile(f.path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.dcm", i)), b, 0o644))
	}
	profile := writeProfile(t, t.TempDir(), fx)
	rec := &recordingStore{}
	addr := startServer(t, &Server{AETitle: "MOLAR", Store: rec})
	h, p := dicomtest.HostPort(t, addr)
	out, err := dicomtest.Run(t, 120*time.Second, "storescu", "-v", "-aet", "STORESCU", "-aec", "MOLAR", "-xf", profile, "Molar", "-nh", "+sd", "+r", h, p, dir)
	require.NoError(t, err, out)
	assert.Equal(t, len(fx), strings.Count(out, "Received Store Response (Success)"), out)

	syntaxes := map[string]bool{}
	for _, f := range fx {
		k := f.sopInstance + "|" + f.transferSyntax
		rec.mu.Lock()
		got, ok := rec.items[k]
		rec.mu.Unlock()
		if !assert.True(t, ok, "%s (%s) not stored", filepath.Base(f.path), uid.Name(f.transferSyntax)) {
			continue
		}
		syntaxes[f.transferSyntax] = true
		hw, want := datasetBody(t, f.path)
		ts, _ := uid.LookupTransferSyntax(f.transferSyntax)
		if ts.Deflated {
			// Compare inflated content: both sides parse to the same elements.
			hg, err := header.Read(bytes.NewReader(got), header.Options{TransferSyntax: f.transferSyntax})
			require.NoError(t, err)
			assert.Equal(t, hw.Dataset.Get(header.TagPatientName), hg.Dataset.Get(header.TagPatientName))
			assert.Equal(t, hw.Dataset.UID(header.TagSOPInstanceUID), hg.Dataset.UID(header.TagSOPInstanceUID))
			continue
		}
		compareDatasets(t, filepath.Base(f.path), want, got, f.transferSyntax)
	}
	for _, ts := range []string{uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian,
		uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1, uid.JPEGLSLossless, uid.JPEGLSNearLossless, uid.JPEG2000Lossless, uid.RLELossless} {
		assert.True(t, syntaxes[ts], "no file stored in %s", uid.Name(ts))
	}
	// The dental file: Latin-1 name decoded, tooth code present.
	rec.mu.Lock()
	io := rec.items["2.25.271722841182218180260196051945293747180.9.3.1|"+uid.ExplicitVRLittleEndian]
	rec.mu.Unlock()
	hd, err := header.Read(bytes.NewReader(io), header.Options{TransferSyntax: uid.ExplicitVRLittleEndian})
	require.NoError(t, err)
	assert.Equal(t, "Ørsted^Åse Sørine", hd.Dataset.Get(header.TagPatientName))
	require.Len(t, hd.Dataset.Sequence(header.TagPrimaryAnatomicStructSeq), 1)
	assert.Equal(t, "T-54260", hd.Dataset.Sequence(header.TagPrimaryAnatomicStructSeq)[0].Get(header.NewTag(0x0008, 0x0100)))
}

func TestDCMTKStorescuManyAssociations(t *testing.T) {
	dicomtest.Tool(t, "storescu")
	dir := t.TempDir()
	for i := 0; i < 20; i++ {
		writeDentalIO(t, filepath.Join(dir, fmt.Sprintf("io%02d.dcm", i)), fmt.Sprintf("2.25.271722841182218180260196051945293747180.9.7.%d", i), 128, 128)
	}
	rec := &recordingStore{}
	var mu sync.Mutex
	reasons := map[string]int{}
	users := map[string]string{}
	addr := startServer(t, &Server{AETitle: "MOLAR", Store: rec,
		Policy: func(ctx context.Context, req *AssociationRequest) Decision {
			mu.Lock()
			defer mu.Unlock()
			if req.UserIdentity != nil {
				users[req.CallingAE] = req.UserIdentity.Username() + ":" + string(req.UserIdentity.Secondary)
			}
			return Accept(ServiceEcho | ServiceStore)
		},
		Hooks: Hooks{AssociationClosed: func(_ *AssociationInfo, r string, _ AssociationStats) {
			mu.Lock()
			reasons[r]++
			mu.Unlock()
		}}})
	h, p := dicomtest.HostPort(t, addr)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	outs := make([]string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = dicomtest.Run(t, 120*time.Second, "storescu", "-v", "-aet", fmt.Sprintf("SCU%d", i), "-aec", "MOLAR",
				"--user", fmt.Sprintf("user%d", i), "--password", "pw", "+sd", h, p, dir)
		}()
	}
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i], outs[i])
		assert.Equal(t, 20, strings.Count(outs[i], "Received Store Response (Success)"))
	}
	rec.mu.Lock()
	assert.Len(t, rec.items, 20)
	rec.mu.Unlock()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return reasons["released"] == 4 }, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	assert.Equal(t, map[string]string{"SCU0": "user0:pw", "SCU1": "user1:pw", "SCU2": "user2:pw", "SCU3": "user3:pw"}, users)
	mu.Unlock()
}

// startStorescp runs DCMTK's storescp (+xa: all transfer syntaxes) writing to dir.
func startStorescp(t *testing.T, dir string, extra ...string) string {
	bin := dicomtest.Tool(t, "storescp")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port := dicomtest.HostPort(t, ln.Addr().String())
	ln.Close()
	args := append([]string{"-aet", "STORESCP", "+xa", "-od", dir}, extra...)
	args = append(args, port)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("storescp output:\n%s", out.String())
		}
	})
	addr := "127.0.0.1:" + port
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	return addr
}

func TestSCUToDCMTKStorescp(t *testing.T) {
	dicomtest.Tool(t, "storescp")
	fx := makeFixtures(t)
	outDir := t.TempDir()
	addr := startStorescp(t, outDir, "+uf") // unique file names: fixtures share SOP instance UIDs
	// Propose every (class, syntax) pair of the fixtures plus verification.
	type pair struct{ class, ts string }
	seen := map[pair]bool{}
	ctxs := []ProposedContext{VerificationContext()}
	for _, f := range fx {
		p := pair{f.sopClass, f.transferSyntax}
		if !seen[p] {
			seen[p] = true
			ctxs = append(ctxs, ProposedContext{AbstractSyntax: f.sopClass, TransferSyntaxes: []string{f.transferSyntax}})
		}
	}
	a := dialTest(t, addr, DialOptions{CallingAE: "MOLAR", CalledAE: "STORESCP", Contexts: ctxs, MaxPDULength: 16384})
	ctx := context.Background()
	st, err := a.Echo(ctx)
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)
	var sent []fixture
	for _, f := range fx {
		if _, err := a.FindContext(f.sopClass, f.transferSyntax); err != nil {
			t.Logf("storescp does not accept %s: %v", filepath.Base(f.path), err)
			continue
		}
		raw, err := os.ReadFile(f.path)
		require.NoError(t, err)
		hh, err := header.Read(bytes.NewReader(raw), header.Options{})
		require.NoError(t, err)
		st, err := a.Store(ctx, StoreParams{SOPClassUID: f.sopClass, SOPInstanceUID: f.sopInstance, TransferSyntax: f.transferSyntax},
			bytes.NewReader(raw[hh.DataSetOffset:]))
		require.NoError(t, err, f.path)
		assert.Equal(t, StatusSuccess, st, "%s: %v", f.path, st)
		sent = append(sent, f)
	}
	require.GreaterOrEqual(t, len(sent), len(fx)-2, "storescp +xa refused too many syntaxes")
	fx = sent
	require.NoError(t, a.Release(ctx))
	// Index what storescp wrote by (SOP instance UID, transfer syntax).
	entries, err := os.ReadDir(outDir)
	require.NoError(t, err)
	written := map[string]string{}
	for _, e := range entries {
		p := filepath.Join(outDir, e.Name())
		w := readFixture(t, p)
		written[w.sopInstance+"|"+w.transferSyntax] = p
	}
	checked := 0
	for _, f := range fx {
		match := written[f.sopInstance+"|"+f.transferSyntax]
		if !assert.NotEmpty(t, match, "storescp did not write %s in %s", f.sopInstance, uid.Name(f.transferSyntax)) {
			continue
		}
		ts, _ := uid.LookupTransferSyntax(f.transferSyntax)
		if ts.Deflated {
			checked++
			continue
		}
		_, want := datasetBody(t, f.path)
		_, got := datasetBody(t, match)
		compareDatasets(t, filepath.Base(f.path), want, got, f.transferSyntax)
		checked++
	}
	assert.Equal(t, len(fx), checked)
}

// storescp with a small maximum PDU: we must fragment to it.
func TestSCUToDCMTKStorescpSmallPDU(t *testing.T) {
	dicomtest.Tool(t, "storescp")
	outDir := t.TempDir()
	addr := startStorescp(t, outDir, "--max-pdu", "4096")
	src := filepath.Join(t.TempDir(), "io.dcm")
	writeDentalIO(t, src, "2.25.271722841182218180260196051945293747180.9.9.1", 256, 256)
	f := readFixture(t, src)
	a := dialTest(t, addr, DialOptions{CallingAE: "MOLAR", CalledAE: "STORESCP", MaxPDULength: 4096,
		Contexts: StorageContexts([]string{f.sopClass}, []string{f.transferSyntax})})
	assert.Equal(t, uint32(4096), a.PeerMaxPDULength())
	h, body := datasetBody(t, src)
	_ = h
	st, err := a.Store(context.Background(), StoreParams{SOPClassUID: f.sopClass, SOPInstanceUID: f.sopInstance}, bytes.NewReader(body))
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)
	require.NoError(t, a.Release(context.Background()))
	matches, _ := filepath.Glob(filepath.Join(outDir, "*"+f.sopInstance))
	require.Len(t, matches, 1)
	_, got := datasetBody(t, matches[0])
	compareDatasets(t, "small-pdu", body, got, f.transferSyntax)
}

// storescu with a small maximum PDU to a server advertising a small one.
func TestDCMTKStorescuSmallPDU(t *testing.T) {
	dicomtest.Tool(t, "storescu")
	src := filepath.Join(t.TempDir(), "io.dcm")
	writeDentalIO(t, src, "2.25.271722841182218180260196051945293747180.9.9.2", 256, 256)
	rec := &recordingStore{}
	addr := startServer(t, &Server{Store: rec, MaxPDULength: 4096})
	h, p := dicomtest.HostPort(t, addr)
	out, err := dicomtest.Run(t, 60*time.Second, "storescu", "-v", "--max-pdu", "4096", "-aec", "MOLAR", h, p, src)
	require.NoError(t, err, out)
	_, body := datasetBody(t, src)
	rec.mu.Lock()
	got := rec.items["2.25.271722841182218180260196051945293747180.9.9.2|"+uid.ExplicitVRLittleEndian]
	rec.mu.Unlock()
	require.NotNil(t, got, out)
	compareDatasets(t, "storescu-small-pdu", body, got, uid.ExplicitVRLittleEndian)
}

func TestSCUToDCMTKStorescpRejectsUnknownCalledAE(t *testing.T) {
	dicomtest.Tool(t, "storescp")
	addr := startStorescp(t, t.TempDir(), "--refuse")
	_, err := Dial(context.Background(), addr, DialOptions{CallingAE: "MOLAR", CalledAE: "STORESCP", Contexts: []ProposedContext{VerificationContext()}})
	var rj *RejectedError
	require.ErrorAs(t, err, &rj)
}
