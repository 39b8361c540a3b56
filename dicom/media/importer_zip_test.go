package media

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
)

// countingIngester reads what it is given and counts the bytes.
type countingIngester struct{ bytes int64 }

func (c *countingIngester) Ingest(_ context.Context, _ ingest.Source, r io.Reader) (ingest.Result, error) {
	n, err := io.Copy(io.Discard, r)
	c.bytes += n
	return ingest.Result{Outcome: index.OutcomeStored}, err
}

// TestImportZipBomb: an archive entry that inflates far beyond what DICOM
// compresses to (a ZIP bomb) is refused before it is read, so is a nested
// archive; ordinary entries of the same archive are imported.
func TestImportZipBomb(t *testing.T) {
	obj := dicomtest.Instance{PatientID: "X1", StudyUID: dicomtest.Root + ".95", SeriesUID: dicomtest.Root + ".95.1", SOPUID: dicomtest.Root + ".95.1.1"}.File(t)
	bomb := append(append([]byte(nil), obj...), make([]byte, 64<<20)...) // a Part-10 start, then 64 MiB of zeros

	inner := func() []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, err := zw.Create("bomb.dcm")
		require.NoError(t, err)
		_, _ = w.Write(bomb)
		require.NoError(t, zw.Close())
		return b.Bytes()
	}()
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for name, data := range map[string][]byte{"ok.dcm": obj, "bomb.dcm": bomb} {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, _ = w.Write(data)
	}
	// A stored (not deflated) inner archive of a bomb: the outer entry is
	// small, spooling the inner one is not.
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "inner.zip", Method: zip.Deflate})
	require.NoError(t, err)
	_, _ = w.Write(inner)
	require.NoError(t, zw.Close())
	p := filepath.Join(t.TempDir(), "a.zip")
	require.NoError(t, os.WriteFile(p, zb.Bytes(), 0o644))
	require.Less(t, zb.Len(), 1<<20, "the archive is small")

	ing := &countingIngester{}
	im := &Importer{Ingest: ing, TenantID: 1, AE: "test"}
	e, err := FileEntry(p)
	require.NoError(t, err)
	got := map[string]FileResult{}
	im.Import(context.Background(), e, func(fr FileResult) { got[filepath.Base(fr.Name)] = fr })
	require.Equal(t, Stored, got["a.zip!ok.dcm"].Outcome, "%+v", got)
	require.Equal(t, Rejected, got["a.zip!bomb.dcm"].Outcome, "%+v", got)
	require.Contains(t, got["a.zip!bomb.dcm"].Reason, "ZIP")
	require.Equal(t, Rejected, got["a.zip!inner.zip!bomb.dcm"].Outcome, "%+v", got)
	require.Less(t, ing.bytes, int64(1<<20), "the bomb was not inflated into the ingest")
}
