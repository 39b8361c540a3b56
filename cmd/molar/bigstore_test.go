package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres"
)

// patternReader yields n bytes of a pattern without holding them.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		b[i] = byte((p.off + int64(i)) * 7)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func rssKB(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestLargeInstanceStreamsWithBoundedMemory sends a 512 MiB multi-frame
// instance by C-STORE through the real ingest path into the filesystem
// store and checks that the process's resident memory grows by less than
// 100 MB: the data set streams from the socket to the object store.
func TestLargeInstanceStreamsWithBoundedMemory(t *testing.T) {
	ts := newTestServer(t, map[string]string{"MOLAR_DICOM_ACCEPT_UNKNOWN": "true"})
	addr := startDICOM(t, ts)
	ctx := context.Background()

	const rows, cols, frames = 1024, 1024, 256 // 2 MiB per frame, 512 MiB in all
	in := dicomtest.Instance{PatientID: "BIG-1", PatientName: "Test^Big", StudyUID: dicomtest.Root + ".60", SeriesUID: dicomtest.Root + ".60.1",
		SOPUID: dicomtest.Root + ".60.1.1", Rows: 1, Cols: 1, SOPClass: uid.CTImage, Modality: "CT"}
	d := in.Dataset()
	d.Remove(header.TagPixelData)
	d.SetUint16(header.TagRows, rows)
	d.SetUint16(header.TagColumns, cols)
	d.SetString(header.NewTag(0x0028, 0x0008), "IS", strconv.Itoa(frames))
	head, err := d.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	pixels := int64(rows * cols * 2 * frames)
	var el bytes.Buffer
	el.Write([]byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W', 0, 0})
	_ = binary.Write(&el, binary.LittleEndian, uint32(pixels))
	data := io.MultiReader(bytes.NewReader(head), &el, &patternReader{n: pixels})

	before := rssKB(t)
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
				if r := rssKB(t); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: "CBCT", CalledAE: "MOLAR",
		Contexts: dimse.StorageContexts([]string{uid.CTImage}, []string{uid.ExplicitVRLittleEndian})})
	require.NoError(t, err)
	start := time.Now()
	st, err := a.Store(ctx, dimse.StoreParams{SOPClassUID: uid.CTImage, SOPInstanceUID: in.SOPUID, TransferSyntax: uid.ExplicitVRLittleEndian}, data)
	close(done)
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	require.NoError(t, a.Release(ctx))
	growthMB := float64(peak.Load()-before) / 1024
	t.Logf("512 MiB instance stored in %s; RSS %d MB before, peak growth %.1f MB", time.Since(start).Round(time.Millisecond), before/1024, growthMB)
	require.Less(t, growthMB, 100.0, "resident memory growth while receiving 512 MiB")

	res, err := ts.store.Stat(ctx, instanceKey(t, ts, in.SOPUID))
	require.NoError(t, err)
	require.Greater(t, res.Size, pixels, "the whole instance is stored")
}

func instanceKey(t *testing.T, ts *testServer, sop string) string {
	var key string
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		in, err := index.GetInstance(context.Background(), tx, sop)
		key = in.ObjectKey
		return err
	}))
	return key
}
