package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
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

// TestDICOMStoreFindThroughServer: the wired SCP ingests C-STOREs into the
// AE's tenant (the demo municipality, the only one) and answers C-FIND from
// the index, scoped to that tenant.
func TestDICOMStoreFindThroughServer(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := startDICOM(t, ts)
	ctx := context.Background()
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "PANO1", Host: "127.0.0.1", Port: 104, Permissions: []string{"echo", "store", "find"}}, false))

	dir := t.TempDir()
	var files []string
	for i := 0; i < 3; i++ {
		in := dicomtest.Instance{PatientID: "1234567", PatientName: "Sørensen^Jens", StudyUID: dicomtest.Root + ".50", SeriesUID: dicomtest.Root + ".50.1",
			SOPUID: fmt.Sprintf("%s.50.1.%d", dicomtest.Root, i), StudyDate: "20240301", Accession: "ACC1", InstanceNumber: i + 1, Teeth: []string{"36"}}
		f := filepath.Join(dir, fmt.Sprintf("f%d.dcm", i))
		in.Write(t, f)
		files = append(files, f)
	}
	h, p := dicomtest.HostPort(t, addr)
	out, err := dicomtest.Run(t, 60*time.Second, "storescu", append([]string{"-v", "-aet", "PANO1", "-aec", "MOLAR", h, p}, files...)...)
	require.NoError(t, err, out)
	require.Equal(t, 3, strings.Count(out, "Received Store Response (Success)"), out)

	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, dicomtest.Root+".50")
		require.NoError(t, err)
		require.Equal(t, 3, st.NumInstances)
		require.Equal(t, index.ReconUnmatched, st.ReconState)
		return nil
	}))

	a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: "PANO1", CalledAE: "MOLAR", Contexts: []dimse.ProposedContext{
		{AbstractSyntax: uid.StudyRootQueryRetrieveFind, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}}}})
	require.NoError(t, err)
	defer a.Release(ctx)
	q := header.NewDataset()
	q.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	q.SetString(header.TagPatientName, "PN", "sørensen*")
	q.SetString(header.TagStudyInstanceUID, "UI", "")
	q.SetString(header.NewTag(0x0020, 0x1208), "IS", "")
	var got []*header.Dataset
	st, err := a.Find(ctx, uid.StudyRootQueryRetrieveFind, q, func(m *header.Dataset) error { got = append(got, m); return nil })
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	require.Len(t, got, 1)
	require.Equal(t, "Sørensen^Jens", got[0].Get(header.TagPatientName))
	require.Equal(t, "3", got[0].Get(header.NewTag(0x0020, 0x1208)))
}
