package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// TestKill9DuringStorescuLosesNothingAcknowledged: four storescu streams
// into `molar serve`, kill -9 in the middle; after a restart every instance
// that got Success is retrievable (C-GET) with its data set unchanged, and
// every index row has its object (the whole study retrieves without a
// failed sub-operation).
func TestKill9DuringStorescuLosesNothingAcknowledged(t *testing.T) {
	pgtest.AdminURL(t)
	dicomtest.Tool(t, "storescu")
	data := dataDir(t)
	// The demo municipality is the only tenant: unknown AEs store into it.
	p := startMolar(t, data, "MOLAR_DICOM_ACCEPT_UNKNOWN=true")

	const streams, perStream = 4, 150
	dir := t.TempDir()
	files := make([][]string, streams)
	bodies := map[string][]byte{}
	for s := 0; s < streams; s++ {
		for i := 0; i < perStream; i++ {
			in := dicomtest.Instance{PatientID: "CRASH", StudyUID: dicomtest.Root + ".900", SeriesUID: fmt.Sprintf("%s.900.%d", dicomtest.Root, s),
				SOPUID: fmt.Sprintf("%s.900.%d.%d", dicomtest.Root, s, i), InstanceNumber: i, Rows: 128, Cols: 128}
			f := filepath.Join(dir, fmt.Sprintf("s%d_%03d.dcm", s, i))
			in.Write(t, f)
			files[s] = append(files[s], f)
			body, _ := dicomtest.DataSetBody(t, in.File(t))
			bodies[in.SOPUID] = body
		}
	}
	host, port := dicomtest.HostPort(t, p.dicom)
	var wg sync.WaitGroup
	outs := make([]string, streams)
	started := make(chan struct{}, streams)
	for s := 0; s < streams; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("storescu", append([]string{"-v", "-aet", fmt.Sprintf("MOD%d", s), "-aec", "MOLAR", host, port}, files[s]...)...)
			cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
			var buf bytes.Buffer
			cmd.Stdout, cmd.Stderr = &buf, &buf
			_ = cmd.Start()
			started <- struct{}{}
			_ = cmd.Wait()
			outs[s] = buf.String()
		}()
	}
	for s := 0; s < streams; s++ {
		<-started
	}
	time.Sleep(700 * time.Millisecond)
	require.NoError(t, p.cmd.Process.Kill())
	_ = p.wait(t, time.Minute)
	wg.Wait()

	// The acknowledged instances: storescu sends the files in order, one
	// response each; the first n Success responses are the first n files.
	var acked []string
	for s := 0; s < streams; s++ {
		n := 0
		for _, line := range strings.Split(outs[s], "\n") {
			if strings.Contains(line, "Received Store Response") {
				if !strings.Contains(line, "(Success)") {
					break
				}
				n++
			}
		}
		require.Less(t, n, perStream, "stream %d finished before the kill; the test proves nothing", s)
		for i := 0; i < n; i++ {
			acked = append(acked, fmt.Sprintf("%s.900.%d.%d", dicomtest.Root, s, i))
		}
	}
	require.NotEmpty(t, acked, "nothing was acknowledged before the kill: %s", outs[0])
	t.Logf("%d instances acknowledged before kill -9", len(acked))

	// Restart and retrieve the whole study.
	p = startMolar(t, data)
	out, err := exec.Command(molarBinary(t), "ae", "add", "--data-dir", data, "--title", "CHECKER", "--host", "127.0.0.1", "--port", "104",
		"--permissions", "store,find,get").CombinedOutput()
	require.NoError(t, err, string(out))
	ctx := context.Background()
	ctxs := []dimse.ProposedContext{{AbstractSyntax: uid.StudyRootQueryRetrieveGet, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}},
		{AbstractSyntax: uid.DigitalIntraOralXRayForPresentation, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}, ProposeSCPRole: true}}
	a, err := dimse.Dial(ctx, p.dicom, dimse.DialOptions{CallingAE: "CHECKER", CalledAE: "MOLAR", Contexts: ctxs})
	require.NoError(t, err)
	got := map[string][]byte{}
	var mu sync.Mutex
	id := header.NewDataset()
	id.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	id.SetString(header.TagStudyInstanceUID, "UI", dicomtest.Root+".900")
	res, err := a.Get(ctx, uid.StudyRootQueryRetrieveGet, id, dimse.StoreFunc(func(ctx context.Context, req *dimse.StoreRequest, r io.Reader) (dimse.Status, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return dimse.StatusProcessingFailure, err
		}
		mu.Lock()
		got[req.SOPInstanceUID] = b
		mu.Unlock()
		return dimse.StatusSuccess, nil
	}), nil)
	require.NoError(t, err)
	require.NoError(t, a.Release(ctx))
	require.Equal(t, dimse.StatusSuccess, res.Status, "failed sub-operations mean an index row without its object: %+v", res)
	require.Zero(t, res.Failed)
	for _, sop := range acked {
		b, ok := got[sop]
		require.True(t, ok, "acknowledged instance %s lost", sop)
		require.True(t, bytes.Equal(bodies[sop], b), "instance %s changed", sop)
	}
	t.Logf("%d instances indexed after restart (%d acknowledged)", len(got), len(acked))
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	require.NoError(t, p.wait(t, time.Minute))
}
