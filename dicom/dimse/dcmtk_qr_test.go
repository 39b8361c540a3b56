package dimse

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// fileInstance serves a Part-10 file's data set as a sub-operation instance.
func fileInstance(t testing.TB, path string) Instance {
	f := readFixture(t, path)
	return Instance{SOPClassUID: f.sopClass, SOPInstanceUID: f.sopInstance, TransferSyntax: f.transferSyntax,
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			raw, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			h, err := header.Read(bytes.NewReader(raw), header.Options{})
			if err != nil {
				return nil, err
			}
			return io.NopCloser(bytes.NewReader(raw[h.DataSetOffset:])), nil
		}}
}

type qrArchive struct {
	insts    []Instance
	destAddr string
	mu       sync.Mutex
	queries  []*header.Dataset
}

func (q *qrArchive) Find(ctx context.Context, req *QueryRequest, emit func(*header.Dataset) error) (Status, error) {
	id, err := req.Dataset()
	if err != nil {
		return StatusCannotUnderstand, Fail(StatusCannotUnderstand, "bad identifier", err)
	}
	q.mu.Lock()
	q.queries = append(q.queries, id)
	q.mu.Unlock()
	for i := 0; i < 5; i++ {
		r := header.NewDataset()
		r.SetString(header.TagSpecificCharacterSet, "CS", "ISO_IR 192")
		r.SetString(header.TagQueryRetrieveLevel, "CS", id.Get(header.TagQueryRetrieveLevel))
		r.SetString(header.TagPatientName, "PN", fmt.Sprintf("Sørensen^Æble%d", i))
		r.SetString(header.TagStudyInstanceUID, "UI", fmt.Sprintf("2.25.271722841182218180260196051945293747180.8.%d", i))
		if err := emit(r); err != nil {
			return StatusCancel, err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return StatusSuccess, nil
}

func (q *qrArchive) Retrieve(ctx context.Context, req *QueryRequest) ([]Instance, error) {
	return q.insts, nil
}

func (q *qrArchive) Destination(ctx context.Context, req *QueryRequest, ae string) (Destination, error) {
	if ae != "STORESCP" {
		return Destination{}, ErrUnknownDestination
	}
	return Destination{Addr: q.destAddr}, nil
}

func qrFixtures(t *testing.T, n int) []Instance {
	dir := t.TempDir()
	var out []Instance
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("io%d.dcm", i))
		writeDentalIO(t, p, fmt.Sprintf("2.25.271722841182218180260196051945293747180.9.8.%d", i), 64, 64)
		out = append(out, fileInstance(t, p))
	}
	return out
}

func TestDCMTKFindscu(t *testing.T) {
	dicomtest.Tool(t, "findscu")
	ar := &qrArchive{}
	addr := startServer(t, &Server{AETitle: "MOLAR", Find: ar})
	h, p := dicomtest.HostPort(t, addr)
	outDir := t.TempDir()
	out, err := dicomtest.Run(t, 30*time.Second, "findscu", "-v", "-S", "-aet", "FINDSCU", "-aec", "MOLAR", "-X", "-od", outDir,
		"-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=Hansen*", "-k", "StudyInstanceUID", h, p)
	require.NoError(t, err, out)
	rsp, _ := filepath.Glob(filepath.Join(outDir, "rsp*.dcm"))
	assert.Len(t, rsp, 5, out)
	if len(rsp) > 0 {
		dump, err := dicomtest.Run(t, 10*time.Second, "dcmdump", rsp[0])
		require.NoError(t, err)
		assert.Contains(t, dump, "Sørensen^Æble0")
	}
	ar.mu.Lock()
	require.Len(t, ar.queries, 1)
	assert.Equal(t, "Hansen*", ar.queries[0].Get(header.TagPatientName))
	assert.Equal(t, "STUDY", ar.queries[0].Get(header.TagQueryRetrieveLevel))
	ar.mu.Unlock()

	// Patient root, cancel after two responses.
	out, err = dicomtest.Run(t, 30*time.Second, "findscu", "-v", "-P", "-aet", "FINDSCU", "-aec", "MOLAR", "--cancel", "2",
		"-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientName", h, p)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Received Final Find Response (Cancel", out)
}

func TestDCMTKMovescuToStorescp(t *testing.T) {
	dicomtest.Tool(t, "movescu")
	outDir := t.TempDir()
	storeAddr := startStorescp(t, outDir)
	ar := &qrArchive{insts: qrFixtures(t, 3), destAddr: storeAddr}
	addr := startServer(t, &Server{AETitle: "MOLAR", Move: ar})
	h, p := dicomtest.HostPort(t, addr)
	out, err := dicomtest.Run(t, 60*time.Second, "movescu", "-v", "-S", "-aet", "MOVESCU", "-aec", "MOLAR", "-aem", "STORESCP",
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=2.25.271722841182218180260196051945293747180.9.1", h, p)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Received Final Move Response (Success)", out)
	files, _ := os.ReadDir(outDir)
	assert.Len(t, files, 3)
	for _, in := range ar.insts {
		_, err := os.Stat(filepath.Join(outDir, "XA."+in.SOPInstanceUID))
		if err != nil {
			matches, _ := filepath.Glob(filepath.Join(outDir, "*"+in.SOPInstanceUID))
			assert.Len(t, matches, 1, "instance %s not received by storescp", in.SOPInstanceUID)
		}
	}
	// Unknown destination.
	out, err = dicomtest.Run(t, 30*time.Second, "movescu", "-v", "-S", "-aet", "MOVESCU", "-aec", "MOLAR", "-aem", "NOWHERE",
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=1.2", h, p)
	assert.Contains(t, out, "Received Final Move Response (Refused: MoveDestinationUnknown)", out)
	_ = err
}

func TestDCMTKGetscu(t *testing.T) {
	dicomtest.Tool(t, "getscu")
	ar := &qrArchive{insts: qrFixtures(t, 3)}
	addr := startServer(t, &Server{AETitle: "MOLAR", Get: ar})
	h, p := dicomtest.HostPort(t, addr)
	outDir := t.TempDir()
	out, err := dicomtest.Run(t, 60*time.Second, "getscu", "-v", "-S", "-aet", "GETSCU", "-aec", "MOLAR", "-od", outDir,
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=2.25.271722841182218180260196051945293747180.9.1", h, p)
	require.NoError(t, err, out)
	files, _ := os.ReadDir(outDir)
	require.Len(t, files, 3, out)
	for _, f := range files {
		got := readFixture(t, filepath.Join(outDir, f.Name()))
		assert.Equal(t, uid.DigitalIntraOralXRayForPresentation, got.sopClass)
	}
	// Compare one received file with its source.
	for _, in := range ar.insts {
		matches, _ := filepath.Glob(filepath.Join(outDir, "*"+in.SOPInstanceUID))
		require.Len(t, matches, 1)
		rc, err := in.Open(context.Background())
		require.NoError(t, err)
		want, _ := io.ReadAll(rc)
		_, got := datasetBody(t, matches[0])
		compareDatasets(t, in.SOPInstanceUID, want, got, uid.ExplicitVRLittleEndian)
	}
}
