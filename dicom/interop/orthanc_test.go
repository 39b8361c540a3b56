package interop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
)

// TestOrthanc: Orthanc C-STOREs to Molar, C-FINDs Molar and C-MOVEs a
// study from Molar to itself; Molar pulls a study from Orthanc (C-MOVE
// with itself as destination).
func TestOrthanc(t *testing.T) {
	m := startMolar(t, false, index.KeepFirst)
	o := dicomtest.StartOrthanc(t, map[string]string{"MOLAR": m.addr})
	m.addAE(t, "ORTHANC", o.DICOMAddr, "store", "find", "move", "get")
	ctx := context.Background()
	dir := t.TempDir()

	// 1. Orthanc sends an instance to Molar.
	sent := dicomtest.Instance{PatientID: "0101154321", PatientName: "Ørsted^Åse", StudyUID: dicomtest.Root + ".400", SeriesUID: dicomtest.Root + ".400.1",
		SOPUID: dicomtest.Root + ".400.1.1", StudyDate: "20240201", InstanceNumber: 1, Teeth: []string{"11"}}
	file := sent.File(t)
	var up struct{ ID string }
	o.Do(t, "POST", "/instances", file, &up)
	o.Do(t, "POST", "/modalities/MOLAR/store", map[string]any{"Resources": []string{up.ID}, "Synchronous": true}, nil)
	row, err := m.instance(t, sent.SOPUID)
	require.NoError(t, err)
	assert.Equal(t, "ORTHANC", row.SourceAE)
	want, ts := dicomtest.DataSetBody(t, file)
	got, gotTS := dicomtest.DataSetBody(t, m.object(t, row.ObjectKey))
	require.Equal(t, ts, gotTS)
	assert.Empty(t, dicomtest.CompareDataSets(want, got, ts))

	// A study only Molar has.
	own := dicomtest.Instance{PatientID: "0202164321", PatientName: "Hansen^Jens", StudyUID: dicomtest.Root + ".401", SeriesUID: dicomtest.Root + ".401.1",
		SOPUID: dicomtest.Root + ".401.1.1", StudyDate: "20240202", InstanceNumber: 1, Modality: "PX"}
	ownPath := filepath.Join(dir, "own.dcm")
	own.Write(t, ownPath)
	m.addAE(t, "PANO1", "127.0.0.1:104", "store")
	storescu(t, m.addr, "PANO1", []string{ownPath})

	// 2. Orthanc queries Molar (C-FIND, study level, wildcard).
	var q struct{ ID string }
	o.Do(t, "POST", "/modalities/MOLAR/query", map[string]any{"Level": "Study", "Query": map[string]string{"PatientName": "Hansen*", "StudyInstanceUID": ""}}, &q)
	var simple []map[string]any
	o.Do(t, "GET", "/queries/"+q.ID+"/answers?expand&simplify", nil, &simple)
	require.Len(t, simple, 1)
	assert.Equal(t, own.StudyUID, simple[0]["StudyInstanceUID"])

	// 3. Orthanc retrieves that study from Molar (C-MOVE to itself).
	o.Do(t, "POST", "/modalities/MOLAR/move", map[string]any{"Level": "Study", "Resources": []map[string]string{{"StudyInstanceUID": own.StudyUID}},
		"TargetAet": "ORTHANC", "Synchronous": true}, nil)
	var found []string
	o.Do(t, "POST", "/tools/find", map[string]any{"Level": "Instance", "Query": map[string]string{"SOPInstanceUID": own.SOPUID}}, &found)
	require.Len(t, found, 1)
	var orthFile []byte
	{
		req := o.HTTP + "/instances/" + found[0] + "/file"
		orthFile = httpGet(t, req)
	}
	ownRaw, err := os.ReadFile(ownPath)
	require.NoError(t, err)
	w, wts := dicomtest.DataSetBody(t, ownRaw)
	g, gts := dicomtest.DataSetBody(t, orthFile)
	require.Equal(t, wts, gts)
	assert.Empty(t, dicomtest.CompareDataSets(w, g, wts))

	// 4. Molar pulls a study from Orthanc: C-MOVE to Orthanc with Molar as
	// the destination.
	pulled := dicomtest.Instance{PatientID: "0303174321", PatientName: "Legacy^Archive", StudyUID: dicomtest.Root + ".402", SeriesUID: dicomtest.Root + ".402.1",
		SOPUID: dicomtest.Root + ".402.1.1", StudyDate: "20190505", InstanceNumber: 1}
	o.Do(t, "POST", "/instances", pulled.File(t), nil)
	a, err := dimse.Dial(ctx, o.DICOMAddr, dimse.DialOptions{CallingAE: "MOLAR", CalledAE: "ORTHANC", Contexts: []dimse.ProposedContext{
		{AbstractSyntax: uid.StudyRootQueryRetrieveMove, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}}}})
	require.NoError(t, err)
	ident := header.NewDataset()
	ident.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	ident.SetString(header.TagStudyInstanceUID, "UI", pulled.StudyUID)
	res, err := a.Move(ctx, uid.StudyRootQueryRetrieveMove, "MOLAR", ident, nil)
	require.NoError(t, err)
	require.NoError(t, a.Release(ctx))
	assert.Equal(t, dimse.StatusSuccess, res.Status, "%+v", res)
	require.Eventually(t, func() bool { _, err := m.instance(t, pulled.SOPUID); return err == nil }, 10*time.Second, 50*time.Millisecond)
	row, err = m.instance(t, pulled.SOPUID)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(row.ObjectKey, "instances/"))
}
