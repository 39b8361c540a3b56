package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// TestOrthancDICOMwebClient proves DICOMweb interoperability with Orthanc's
// DICOMweb plugin as the client, authenticating with HTTP Basic as a local
// account: Orthanc searches Molar (QIDO-RS), pulls a study from it
// (WADO-RS), and pushes one to it (STOW-RS).
func TestOrthancDICOMwebClient(t *testing.T) {
	ts := newTestServer(t, nil)
	withIngester(t, ts)
	ct := ingestFile(t, ts, testFile(t, "CT_small.dcm"))

	o := dicomtest.StartOrthancWith(t, nil, map[string]any{
		"Plugins": []string{"/usr/share/orthanc/plugins/libOrthancDicomWeb.so"},
		"DicomWeb": map[string]any{
			"Enable": true, "Root": "/dicom-web/",
			"Servers": map[string]any{
				"molar": map[string]any{"Url": ts.URL + "/dicomweb/", "Username": "tandlaege", "Password": demo.Password},
			},
		},
	})

	// QIDO-RS through Orthanc.
	var found []map[string]map[string]any
	o.Do(t, "POST", "/dicom-web/servers/molar/get", map[string]any{"Uri": "/studies", "Arguments": map[string]string{"StudyInstanceUID": ct.StudyInstanceUID}}, &found)
	require.Len(t, found, 1)
	require.Equal(t, []any{ct.StudyInstanceUID}, found[0]["0020000D"]["Value"])

	// WADO-RS: Orthanc retrieves the study into its own store.
	o.Do(t, "POST", "/dicom-web/servers/molar/retrieve", map[string]any{
		"Resources": []map[string]string{{"Study": ct.StudyInstanceUID}}}, nil)
	var instances []string
	require.Eventually(t, func() bool {
		o.Do(t, "GET", "/instances", nil, &instances)
		return len(instances) == 1
	}, 30*time.Second, 100*time.Millisecond)
	var tags map[string]any
	o.Do(t, "GET", "/instances/"+instances[0]+"/simplified-tags", nil, &tags)
	require.Equal(t, ct.SOPInstanceUID, tags["SOPInstanceUID"])

	// Orthanc's client asks for any transfer syntax (transfer-syntax=*): a
	// JPEG-LS instance reaches it as stored, not decoded.
	jls := ingestFile(t, ts, testFile(t, "MR_small_jpeg_ls_lossless.dcm"))
	o.Do(t, "POST", "/dicom-web/servers/molar/retrieve", map[string]any{
		"Resources": []map[string]string{{"Study": jls.StudyInstanceUID}}}, nil)
	require.Eventually(t, func() bool {
		o.Do(t, "GET", "/instances", nil, &instances)
		return len(instances) == 2
	}, 30*time.Second, 100*time.Millisecond)
	syntaxes := map[string]bool{}
	for _, id := range instances {
		var meta map[string]any
		o.Do(t, "GET", "/instances/"+id+"/metadata?expand", nil, &meta)
		syntaxes[meta["TransferSyntax"].(string)] = true
	}
	require.Equal(t, map[string]bool{uid.ExplicitVRLittleEndian: true, uid.JPEGLSLossless: true}, syntaxes)

	// STOW-RS: Orthanc pushes an instance of its own to Molar.
	mr := testFile(t, "MR_small.dcm")
	var up map[string]any
	o.Do(t, "POST", "/instances", mr, &up)
	o.Do(t, "POST", "/dicom-web/servers/molar/stow", map[string]any{"Resources": []string{up["ID"].(string)}}, nil)
	c, _ := ts.login(t, "tandlaege")
	require.Eventually(t, func() bool {
		st, res, _ := qido(t, c, ts.URL+"/dicomweb/instances?SOPInstanceUID="+sopOf(t, mr))
		return st == 200 && len(res) == 1
	}, 30*time.Second, 100*time.Millisecond, "the STOW-RS from Orthanc arrived")
}

// sopOf reads the SOP Instance UID of a Part-10 file.
func sopOf(t *testing.T, file []byte) string {
	t.Helper()
	h := readHeader(t, file)
	return h
}

func readHeader(t *testing.T, file []byte) string {
	h, err := header.Read(bytes.NewReader(file), header.Options{})
	require.NoError(t, err)
	return h.Dataset.UID(header.TagSOPInstanceUID)
}
