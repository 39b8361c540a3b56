package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage"
)

const studyUID = dicomtest.Root + ".100"

// fixtures writes one instance per transfer syntax (each in its own
// series), all in one study of a Danish patient with a Latin-1 name.
func fixtures(t *testing.T, dir string) map[string]string {
	files := map[string]string{} // converter name -> path
	for i, c := range dicomtest.Converters {
		in := dicomtest.Instance{PatientID: "0101154321", PatientName: "Ørsted^Åse Sørine", BirthDate: "20150101", Sex: "F",
			StudyUID: studyUID, SeriesUID: fmt.Sprintf("%s.%d", studyUID, i+1), SOPUID: fmt.Sprintf("%s.%d.1", studyUID, i+1),
			StudyDate: "20240115", StudyTime: "101500", Accession: "A100", StudyDescription: "Bitewings højre", Referring: "Tandlæge^Birgitte",
			SeriesNumber: i + 1, InstanceNumber: 1, Teeth: []string{"16", "46"}, Latin1: true, Rows: 96, Cols: 64}
		files[c.Name] = dicomtest.Convert(t, dir, in, c)
	}
	return files
}

func sortedPaths(files map[string]string) []string {
	var out []string
	for _, f := range files {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// storescu sends files with one presentation context per (class, syntax).
func storescu(t *testing.T, addr, aet string, files []string, extra ...string) string {
	h, p := dicomtest.HostPort(t, addr)
	prof := dicomtest.Profile(t, t.TempDir(), files)
	args := append([]string{"-v", "-nh", "-xf", prof, "Molar", "-aet", aet, "-aec", "MOLAR"}, extra...)
	args = append(append(args, h, p), files...)
	out, err := dicomtest.Run(t, 120*time.Second, "storescu", args...)
	require.NoError(t, err, out)
	return out
}

func testStorescuAllSyntaxes(t *testing.T, s3 bool) {
	m := startMolar(t, s3, index.KeepFirst)
	m.addAE(t, "PANO1", "127.0.0.1:104", "store")
	files := fixtures(t, t.TempDir())
	out := storescu(t, m.addr, "PANO1", sortedPaths(files))
	require.Equal(t, len(files), strings.Count(out, "Received Store Response (Success)"), out)
	require.Equal(t, len(files), m.count(t))

	for name, path := range files {
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		want, ts := dicomtest.DataSetBody(t, raw)
		fh, err := header.Read(bytes.NewReader(raw), header.Options{})
		require.NoError(t, err)
		sop := fh.Dataset.UID(header.TagSOPInstanceUID)
		row, err := m.instance(t, sop)
		require.NoError(t, err, name)
		require.Equal(t, ts, row.TransferSyntax, name)
		obj := m.object(t, row.ObjectKey)
		sum := sha256.Sum256(obj)
		require.Equal(t, sum[:], row.SHA256, name)
		require.Equal(t, int64(len(obj)), row.Size, name)
		require.Equal(t, []string{"16", "46"}, row.ToothCodes, name)
		require.Equal(t, "PANO1", row.SourceAE)
		got, gotTS := dicomtest.DataSetBody(t, obj)
		require.Equal(t, ts, gotTS, name)
		assert.Empty(t, dicomtest.CompareDataSets(want, got, ts), "%s (%s)", name, uid.Name(ts))
	}
	m.inTenant(t, func(tx pgx.Tx) error {
		st, err := index.GetStudy(context.Background(), tx, studyUID)
		require.NoError(t, err)
		require.Equal(t, "Ørsted^Åse Sørine", st.Patient.Name)
		require.Equal(t, "Tandlæge^Birgitte", st.ReferringPhysician)
		require.Equal(t, len(files), st.NumSeries)
		require.Equal(t, []string{"IO"}, st.Modalities)
		return nil
	})
}

// TestStorescuAllSyntaxes: storescu (one context per class and syntax)
// stores every transfer syntax; each object is a Part-10 file whose data
// set equals the sent one, indexed with its SHA-256 and tooth codes.
func TestStorescuAllSyntaxes(t *testing.T) {
	t.Run("filesystem", func(t *testing.T) { testStorescuAllSyntaxes(t, false) })
	t.Run("s3", func(t *testing.T) { testStorescuAllSyntaxes(t, true) })
}

// TestStorescuDuplicates: an identical resend is Success and changes
// nothing; a different object under a stored UID follows the policy.
func TestStorescuDuplicates(t *testing.T) {
	for _, pol := range []index.DuplicatePolicy{index.KeepFirst, index.Overwrite, index.OverwriteSameSource} {
		t.Run(string(pol), func(t *testing.T) {
			m := startMolar(t, false, pol)
			m.addAE(t, "PANO1", "127.0.0.1:104", "store")
			m.addAE(t, "PANO2", "127.0.0.1:105", "store")
			dir := t.TempDir()
			in := dicomtest.Instance{PatientID: "1", StudyUID: dicomtest.Root + ".200", SeriesUID: dicomtest.Root + ".200.1", SOPUID: dicomtest.Root + ".200.1.1"}
			first := filepath.Join(dir, "first.dcm")
			in.Write(t, first)
			in.StudyDescription = "changed"
			second := filepath.Join(dir, "second.dcm")
			in.Write(t, second)

			out := storescu(t, m.addr, "PANO1", []string{first})
			require.Contains(t, out, "Received Store Response (Success)")
			row1, err := m.instance(t, in.SOPUID)
			require.NoError(t, err)
			out = storescu(t, m.addr, "PANO1", []string{first}) // identical
			require.Contains(t, out, "Received Store Response (Success)")
			row, err := m.instance(t, in.SOPUID)
			require.NoError(t, err)
			require.Equal(t, row1.ObjectKey, row.ObjectKey)

			out = storescu(t, m.addr, "PANO2", []string{second}) // different, other source
			require.Contains(t, out, "Received Store Response (Success)")
			row, err = m.instance(t, in.SOPUID)
			require.NoError(t, err)
			if pol == index.Overwrite {
				require.NotEqual(t, row1.SHA256, row.SHA256)
			} else {
				require.Equal(t, row1.SHA256, row.SHA256)
			}
			out = storescu(t, m.addr, "PANO1", []string{second}) // different, same source
			require.Contains(t, out, "Received Store Response (Success)")
			row, err = m.instance(t, in.SOPUID)
			require.NoError(t, err)
			require.Equal(t, pol != index.KeepFirst, !bytes.Equal(row1.SHA256, row.SHA256))
			// Exactly one object is left.
			n := 0
			require.NoError(t, m.store.List(context.Background(), "instances/", func(o storage.ObjectInfo) error { n++; return nil }))
			require.Equal(t, 1, n)
		})
	}
}
