package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
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

// TestCStoreEncapsulatedSTL: an intra-oral scanner sends its model as
// Encapsulated STL by C-STORE (DCMTK storescu), larger than the 16 MiB a
// value may take in memory: it is stored (streamed, not held), and the
// model comes back byte for byte from its DICOMweb BulkDataURI.
func TestCStoreEncapsulatedSTL(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := startDICOM(t, ts)
	ctx := context.Background()
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "TRIOS", Host: "127.0.0.1", Port: 104, Permissions: []string{"echo", "store"}}, false))
	var p auth.Person
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var err error
		p, err = auth.GetPerson(ctx, tx, ts.demo.Children[0].PersonID)
		return err
	}))
	stl := make([]byte, 20<<20) // a binary STL: 80-byte header, count, triangles
	for i := range stl {
		stl[i] = byte(i * 31)
	}
	d := header.NewDataset()
	d.SetString(header.TagSpecificCharacterSet, "CS", "ISO_IR 192")
	d.SetString(header.TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.104.3")
	d.SetString(header.TagSOPInstanceUID, "UI", dicomtest.Root+".60.1.1")
	d.SetString(header.TagStudyDate, "DA", "20261120")
	d.SetString(header.TagModality, "CS", "M3D")
	d.SetString(header.TagPatientName, "PN", p.FamilyName+"^"+p.GivenName)
	d.SetString(header.TagPatientID, "LO", p.CPR.Digits())
	d.SetString(header.TagPatientBirthDate, "DA", p.BirthDate.Format("20060102"))
	d.SetString(header.TagStudyInstanceUID, "UI", dicomtest.Root+".60")
	d.SetString(header.TagSeriesInstanceUID, "UI", dicomtest.Root+".60.1")
	d.SetString(header.NewTag(0x0042, 0x0012), "LO", "model/stl")
	d.Set(&header.Element{Tag: header.NewTag(0x0042, 0x0011), VR: "OB", Value: stl})
	var file bytes.Buffer
	require.NoError(t, header.WriteFileHeader(&file, "1.2.840.10008.5.1.4.1.1.104.3", dicomtest.Root+".60.1.1", uid.ExplicitVRLittleEndian))
	body, err := d.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	file.Write(body)
	f := filepath.Join(t.TempDir(), "scan.dcm")
	require.NoError(t, os.WriteFile(f, file.Bytes(), 0o600))

	h, port := dicomtest.HostPort(t, addr)
	out, err := dicomtest.Run(t, 120*time.Second, "storescu", "-v", "-R", "-aet", "TRIOS", "-aec", "MOLAR", h, port, f)
	require.NoError(t, err, out)
	require.Contains(t, out, "Received Store Response (Success)", out)

	c, _ := ts.login(t, "tandlaege")
	inst := ts.URL + "/dicomweb/studies/" + dicomtest.Root + ".60/series/" + dicomtest.Root + ".60.1/instances/" + dicomtest.Root + ".60.1.1"
	resp, b := doReq(t, c, "GET", inst+"/metadata", "application/dicom+json", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var meta []map[string]map[string]any
	require.NoError(t, json.Unmarshal(b, &meta))
	require.Equal(t, []any{"model/stl"}, meta[0]["00420012"]["Value"])
	uri, _ := meta[0]["00420011"]["BulkDataURI"].(string)
	require.True(t, strings.HasPrefix(uri, inst+"/bulkdata/"), "the model by BulkDataURI: %v", meta[0]["00420011"])
	resp, b = doReq(t, c, "GET", uri, `multipart/related; type="application/octet-stream"`, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parts := multipartParts(t, resp, b)
	require.Len(t, parts, 1)
	require.True(t, bytes.Equal(stl, parts[0]), "the model byte for byte")
}
