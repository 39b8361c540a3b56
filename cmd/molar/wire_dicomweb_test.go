package main

import (
	"bytes"
	"context"
	b64 "encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func init() {
	for k, v := range map[string]string{
		"GET /dicomweb/studies/{study}":                                                      auth.PermDICOMRead,
		"GET /dicomweb/studies/{study}/metadata":                                             auth.PermDICOMRead,
		"GET /dicomweb/studies/{study}/series/{series}":                                      auth.PermDICOMRead,
		"GET /dicomweb/studies/{study}/series/{series}/metadata":                             auth.PermDICOMRead,
		"GET /dicomweb/studies/{study}/series/{series}/instances/{instance}":                 auth.PermDICOMRead,
		"GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata":        auth.PermDICOMRead,
		"GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}": auth.PermDICOMRead,
		"GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/*":      auth.PermDICOMRead,
		"GET /dicomweb/wado":             auth.PermDICOMRead,
		"POST /dicomweb/studies":         auth.PermDICOMWrite,
		"POST /dicomweb/studies/{study}": auth.PermDICOMWrite,
	} {
		routePermissions[k] = v
	}
}

const pydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files/"

// testFile reads one of pydicom's test files (Debian python3-pydicom).
func testFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(pydicomFiles + name)
	if err != nil {
		pgtest.Unavailable(t, "python3-pydicom test files", err)
	}
	return b
}

// withIngester gives the test server an ingester when the DICOM part has
// not built one.
func withIngester(t *testing.T, ts *testServer) {
	if ts.ingester == nil {
		ts.ingester = newIngester(ts.server)
	}
}

func ingestFile(t *testing.T, ts *testServer, data []byte) ingest.Result {
	t.Helper()
	withIngester(t, ts)
	res, err := ts.ingester.Ingest(context.Background(), ingest.Source{TenantID: ts.demo.TenantID, AE: "TEST", Part10: true, Size: int64(len(data))}, bytes.NewReader(data))
	require.NoError(t, err)
	return res
}

func doReq(t *testing.T, c *http.Client, method, url, accept string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

func multipartParts(t *testing.T, resp *http.Response, body []byte) [][]byte {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/related", mt)
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var out [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		b, err := io.ReadAll(p)
		require.NoError(t, err)
		out = append(out, b)
	}
}

func TestDICOMwebRetrieveMetadataFramesAndSTOW(t *testing.T) {
	ts := newTestServer(t, nil)
	ct := testFile(t, "CT_small.dcm")
	res := ingestFile(t, ts, ct)
	c, _ := ts.login(t, "tandlaege")
	base := ts.URL + "/dicomweb/studies/" + res.StudyInstanceUID
	inst := base + "/series/" + res.SeriesInstanceUID + "/instances/" + res.SOPInstanceUID

	// Metadata: DICOM JSON with the pixel data as a BulkDataURI.
	resp, body := doReq(t, c, "GET", base+"/metadata", "application/dicom+json", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var meta []map[string]map[string]any
	require.NoError(t, json.Unmarshal(body, &meta))
	require.Len(t, meta, 1)
	require.Equal(t, []any{res.SOPInstanceUID}, meta[0]["00080018"]["Value"])
	require.Equal(t, []any{float64(128)}, meta[0]["00280010"]["Value"], "Rows")
	require.Contains(t, meta[0]["7FE00010"]["BulkDataURI"], "/bulkdata/7FE00010")

	// Instance retrieval: the stored Part-10 file, byte for byte.
	resp, body = doReq(t, c, "GET", inst, `multipart/related; type="application/dicom"; transfer-syntax=*`, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parts := multipartParts(t, resp, body)
	require.Len(t, parts, 1)
	require.Equal(t, ct, parts[0])
	// Study level gives the same.
	resp, body = doReq(t, c, "GET", base, "", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, multipartParts(t, resp, body), 1)
	// A transcoding request we cannot honour is 406, not a wrong answer.
	resp, _ = doReq(t, c, "GET", inst, `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50`, nil, nil)
	require.Equal(t, http.StatusNotAcceptable, resp.StatusCode)
	// … unless the client offers an alternative we can, or leaves it out.
	resp, _ = doReq(t, c, "GET", inst, `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50, multipart/related; type="application/dicom"; transfer-syntax=*`, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = doReq(t, c, "GET", inst, `multipart/related; type="application/dicom"; transfer-syntax=*; q=0`, nil, nil)
	require.Equal(t, http.StatusNotAcceptable, resp.StatusCode, "q=0 refuses")
	// OHIF with omitQuotationForMultipartRequest sends type= unquoted.
	resp, body = doReq(t, c, "GET", inst, `multipart/related; type=application/dicom; transfer-syntax=*`, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, ct, multipartParts(t, resp, body)[0])
	resp, body = doReq(t, c, "GET", inst+"/frames/1", `multipart/related; type=application/octet-stream; transfer-syntax=*`, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Len(t, multipartParts(t, resp, body)[0], 128*128*2)
	// A compressed type for a native instance is not acceptable.
	resp, _ = doReq(t, c, "GET", inst+"/frames/1", `multipart/related; type="image/jpeg"`, nil, nil)
	require.Equal(t, http.StatusNotAcceptable, resp.StatusCode)

	// Frames: native 16-bit samples, 128×128.
	resp, body = doReq(t, c, "GET", inst+"/frames/1", `multipart/related; type="application/octet-stream"`, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	frames := multipartParts(t, resp, body)
	require.Len(t, frames, 1)
	require.Len(t, frames[0], 128*128*2)
	resp, _ = doReq(t, c, "GET", inst+"/frames/2", `multipart/related; type="application/octet-stream"`, nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "CT_small has one frame")

	// WADO-URI.
	resp, body = doReq(t, c, "GET", ts.URL+"/dicomweb/wado?requestType=WADO&studyUID="+res.StudyInstanceUID+"&seriesUID="+res.SeriesInstanceUID+"&objectUID="+res.SOPInstanceUID+"&contentType=application/dicom", "", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, ct, body)

	// STOW-RS of an RLE instance, then its frame decodes.
	rle := testFile(t, "MR_small_RLE.dcm")
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	part, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
	_, _ = part.Write(rle)
	part, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
	_, _ = part.Write([]byte("not dicom at all"))
	_ = mw.Close()
	resp, body = doReq(t, c, "POST", ts.URL+"/dicomweb/studies", "application/dicom+json", &buf, map[string]string{
		"Content-Type": `multipart/related; type=application/dicom; boundary=` + mw.Boundary(), // unquoted, as OHIF may send it
		"X-CSRF-Token": csrfOf(t, ts, c), "Origin": ts.URL,
	})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "one stored, one failed: %s", body)
	var stow map[string]map[string]any
	require.NoError(t, json.Unmarshal(body, &stow))
	require.Len(t, stow["00081199"]["Value"], 1)
	require.Len(t, stow["00081198"]["Value"], 1)
	retrieveURL := stow["00081199"]["Value"].([]any)[0].(map[string]any)["00081190"].(map[string]any)["Value"].([]any)[0].(string)

	// STOW-RS to a study: an instance of another study fails (A900).
	stowTo := func(path string) (int, map[string]map[string]any) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		part, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		_, _ = part.Write(testFile(t, "MR_small.dcm"))
		_ = mw.Close()
		resp, body := doReq(t, c, "POST", ts.URL+path, "application/dicom+json", &buf, map[string]string{
			"Content-Type": `multipart/related; type="application/dicom"; boundary=` + mw.Boundary(),
			"X-CSRF-Token": csrfOf(t, ts, c), "Origin": ts.URL,
		})
		var out map[string]map[string]any
		require.NoError(t, json.Unmarshal(body, &out), string(body))
		return resp.StatusCode, out
	}
	code, out := stowTo("/dicomweb/studies/1.2.3.4.5")
	require.Equal(t, http.StatusConflict, code)
	failedItem := out["00081198"]["Value"].([]any)[0].(map[string]any)
	require.EqualValues(t, 0xA900, failedItem["00081197"].(map[string]any)["Value"].([]any)[0])
	// The failure names the instance (Referenced SOP Class and Instance
	// UID) and says why.
	require.Equal(t, []any{"1.2.840.10008.5.1.4.1.1.4"}, failedItem["00081150"].(map[string]any)["Value"])
	require.Equal(t, []any{"1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"}, failedItem["00081155"].(map[string]any)["Value"])
	require.Equal(t, []any{"the instance belongs to another study than the request names"}, failedItem["00000902"].(map[string]any)["Value"])
	mrStudy := "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457" // pydicom's MR_small
	code, _ = stowTo("/dicomweb/studies/" + mrStudy)
	require.Equal(t, http.StatusOK, code)

	// No HEAD (it would audit reads of data never sent).
	resp, _ = doReq(t, c, "HEAD", base+"/metadata", "application/dicom+json", nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	resp, body = doReq(t, c, "GET", retrieveURL+"/frames/1", "", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Len(t, multipartParts(t, resp, body)[0], 64*64*2)
	resp, body = doReq(t, c, "GET", retrieveURL+"/frames/1", `multipart/related; type="application/octet-stream"; transfer-syntax=*`, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "image/dicom-rle")
	require.NotEmpty(t, multipartParts(t, resp, body)[0], "the RLE bitstream as stored")

	// HTTP Basic, as Weasis and Orthanc's DICOMweb client send it.
	basic := &http.Client{}
	resp, _ = doReq(t, basic, "GET", base+"/metadata", "", nil, map[string]string{"Authorization": "Basic " + basicAuth("tandlaege", demo.Password)})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// A home carer has no dicom.read; anonymous gets 401.
	carer, _ := ts.login(t, "hjemmehjaelper")
	resp, _ = doReq(t, carer, "GET", base+"/metadata", "", nil, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = doReq(t, &http.Client{}, "GET", base+"/metadata", "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	// Unknown study: 404.
	resp, _ = doReq(t, c, "GET", ts.URL+"/dicomweb/studies/1.2.3.4/metadata", "", nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// Reads are audit-logged.
	var n int
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM audit.event WHERE object LIKE 'dicom.%'`).Scan(&n)
	}))
	require.GreaterOrEqual(t, n, 8)
	_ = strings.TrimSpace
}

// csrfOf reads the session's CSRF token from the home page.
func csrfOf(t *testing.T, ts *testServer, c *http.Client) string {
	_, body := get(t, c, ts.URL+"/")
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(t, m)
	return m[1]
}

func basicAuth(u, p string) string {
	return base64Std(u + ":" + p)
}

func base64Std(s string) string { return b64.StdEncoding.EncodeToString([]byte(s)) }

func TestDICOMwebRenderedAndThumbnails(t *testing.T) {
	ts := newTestServer(t, nil)
	res := ingestFile(t, ts, testFile(t, "CT_small.dcm"))
	sr := ingestFile(t, ts, testFile(t, "reportsi.dcm")) // a structured report: no pixels
	c, _ := ts.login(t, "tandlaege")
	inst := ts.URL + "/dicomweb/studies/" + res.StudyInstanceUID + "/series/" + res.SeriesInstanceUID + "/instances/" + res.SOPInstanceUID

	decode := func(body []byte) image.Image {
		img, _, err := image.Decode(bytes.NewReader(body))
		require.NoError(t, err)
		return img
	}
	// Rendered JPEG at full size with the header's window.
	resp, body := doReq(t, c, "GET", inst+"/rendered", "image/jpeg", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
	img := decode(body)
	require.Equal(t, image.Rect(0, 0, 128, 128), img.Bounds())
	// A different window gives a different picture; PNG and viewport work.
	_, narrow := doReq(t, c, "GET", inst+"/rendered?window=40,10&quality=95", "image/png", nil, nil)
	_, wide := doReq(t, c, "GET", inst+"/rendered?window=40,4000&quality=95", "image/png", nil, nil)
	require.NotEqual(t, narrow, wide)
	resp, body = doReq(t, c, "GET", inst+"/frames/1/rendered?viewport=64,64", "image/png", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, image.Rect(0, 0, 64, 64), decode(body).Bounds())
	resp, _ = doReq(t, c, "GET", inst+"/rendered?window=1", "image/png", nil, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = doReq(t, c, "GET", inst+"/rendered", "application/pdf", nil, nil)
	require.Equal(t, http.StatusNotAcceptable, resp.StatusCode)
	// WADO-URI rendered.
	resp, body = doReq(t, c, "GET", ts.URL+"/dicomweb/wado?requestType=WADO&studyUID="+res.StudyInstanceUID+"&seriesUID="+res.SeriesInstanceUID+"&objectUID="+res.SOPInstanceUID+"&contentType=image/jpeg&columns=32", "", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, 32, decode(body).Bounds().Dx())
	// Without contentType a single-frame image comes as image/jpeg (PS3.18 9.2).
	resp, body = doReq(t, c, "GET", ts.URL+"/dicomweb/wado?requestType=WADO&studyUID="+res.StudyInstanceUID+"&seriesUID="+res.SeriesInstanceUID+"&objectUID="+res.SOPInstanceUID, "", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
	require.Positive(t, decode(body).Bounds().Dx())

	// Frame meta for a browser's own window/level.
	resp, body = doReq(t, c, "GET", inst+"/frames/1/meta", "", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var meta map[string]any
	require.NoError(t, json.Unmarshal(body, &meta))
	require.NotEmpty(t, meta)

	// Thumbnails at every level; before the job ran they are rendered now.
	for _, u := range []string{inst + "/thumbnail", ts.URL + "/dicomweb/studies/" + res.StudyInstanceUID + "/thumbnail"} {
		resp, body = doReq(t, c, "GET", u, "image/jpeg", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
		require.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
		require.LessOrEqual(t, decode(body).Bounds().Dx(), 128)
	}
	// A study without pixels gets a placeholder image with the reason, not an error.
	resp, body = doReq(t, c, "GET", ts.URL+"/dicomweb/studies/"+sr.StudyInstanceUID+"/thumbnail", "image/jpeg", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "image/png", resp.Header.Get("Content-Type"))
	require.Contains(t, resp.Header.Get("X-Molar-Thumbnail"), "failed")
	decode(body)
}

func init() {
	for _, p := range []string{"/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances", "/dicomweb/studies/{study}/series",
		"/dicomweb/studies/{study}/instances", "/dicomweb/studies/{study}/series/{series}/instances"} {
		routePermissions["GET "+p] = auth.PermDICOMRead
	}
	// Rendered images, frame meta and thumbnails (dicom/web/rendered.go).
	inst := "/dicomweb/studies/{study}/series/{series}/instances/{instance}"
	for _, p := range []string{inst + "/rendered", inst + "/frames/{frames}/rendered", inst + "/frames/{frames}/meta",
		inst + "/thumbnail", inst + "/frames/{frames}/thumbnail", "/dicomweb/studies/{study}/series/{series}/thumbnail",
		"/dicomweb/studies/{study}/thumbnail"} {
		routePermissions["GET "+p] = auth.PermDICOMRead
	}
}

func qido(t *testing.T, c *http.Client, u string) (int, []map[string]map[string]any, http.Header) {
	t.Helper()
	resp, body := doReq(t, c, "GET", u, "application/dicom+json", nil, nil)
	var out []map[string]map[string]any
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &out), string(body))
	}
	return resp.StatusCode, out, resp.Header
}

func TestQIDO(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	child := ts.demo.Children[0]
	var cpr string
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		p, err := auth.GetPerson(ctx, tx, child.PersonID)
		cpr = p.CPR.Digits()
		return err
	}))
	c, _ := ts.login(t, "tandlaege")
	q := ts.URL + "/dicomweb"
	_, before, _ := qido(t, c, q+"/studies")
	// Two studies of the demo child (matched to the register by CPR), one
	// of an unknown patient, and the pydicom CT.
	parts := strings.Fields(child.Name)
	name := parts[len(parts)-1] + "^" + strings.Join(parts[:len(parts)-1], " ")
	for i, st := range []dicomtest.Instance{
		{PatientID: cpr, PatientName: name, StudyUID: dicomtest.Root + ".1", SeriesUID: dicomtest.Root + ".1.1", SOPUID: dicomtest.Root + ".1.1.1", StudyDate: "20260301", Accession: "A1", Teeth: []string{"36"}},
		{PatientID: cpr, PatientName: name, StudyUID: dicomtest.Root + ".2", SeriesUID: dicomtest.Root + ".2.1", SOPUID: dicomtest.Root + ".2.1.1", StudyDate: "20261101", Accession: "A2", Modality: "PX"},
		{PatientID: "UKENDT-7", PatientName: "Ærø^Åse", StudyUID: dicomtest.Root + ".3", SeriesUID: dicomtest.Root + ".3.1", SOPUID: dicomtest.Root + ".3.1.1", StudyDate: "20261102", Accession: "A3"},
	} {
		st.BirthDate = ""
		_ = i
		ingestFile(t, ts, st.File(t))
	}
	ingestFile(t, ts, testFile(t, "CT_small.dcm"))

	st, res, _ := qido(t, c, q+"/studies")
	require.Equal(t, 200, st)
	require.Len(t, res, len(before)+4)
	require.Contains(t, res[0], "00100010", "default attributes: PatientName")
	require.Contains(t, res[0], "00201206", "default attributes: number of series")
	st, res, _ = qido(t, c, q+"/studies?PatientID="+cpr+"&AccessionNumber=A*")
	require.Equal(t, 200, st)
	require.Len(t, res, 2)
	require.Contains(t, res[0]["00081190"]["Value"].([]any)[0], "/dicomweb/studies/")
	st, res, _ = qido(t, c, q+"/studies?StudyDate=20261101-20261102&AccessionNumber=A*&includefield=StudyDescription")
	require.Equal(t, 200, st)
	require.Len(t, res, 2, "date range")
	st, res, _ = qido(t, c, q+"/studies?00080050=A?")
	require.Equal(t, 200, st)
	require.Len(t, res, 3, "wildcard on accession by hex tag")
	st, res, _ = qido(t, c, q+"/studies?PatientName=aero*&fuzzymatching=true")
	require.Equal(t, 200, st)
	require.Len(t, res, 1, "Danish-aware fuzzy match: æ~ae")
	require.Equal(t, map[string]any{"Alphabetic": "Ærø^Åse"}, res[0]["00100010"]["Value"].([]any)[0], "UTF-8 person name")
	st, res, _ = qido(t, c, q+"/studies?limit=1&offset=1")
	require.Equal(t, 200, st)
	require.Len(t, res, 1)
	st, res, _ = qido(t, c, q+"/studies/"+dicomtest.Root+".1/series")
	require.Equal(t, 200, st)
	require.Len(t, res, 1)
	require.Equal(t, []any{"IO"}, res[0]["00080060"]["Value"])
	st, res, _ = qido(t, c, q+"/instances?SOPInstanceUID="+dicomtest.Root+".2.1.1&includefield=all")
	require.Equal(t, 200, st)
	require.Len(t, res, 1)
	// Attributes that are no index column come from the stored ones.
	const ctSmall = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322" // pydicom's CT_small
	st, res, _ = qido(t, c, q+"/instances?SOPInstanceUID="+ctSmall+"&includefield=00080070,SliceThickness,00080056")
	require.Equal(t, 200, st)
	require.Len(t, res, 1)
	require.Equal(t, []any{"GE MEDICAL SYSTEMS"}, res[0]["00080070"]["Value"], "Manufacturer")
	require.Equal(t, "DS", res[0]["00180050"]["vr"], "SliceThickness")
	require.Equal(t, []any{"ONLINE"}, res[0]["00080056"]["Value"], "InstanceAvailability")
	st, res, _ = qido(t, c, q+"/instances?SOPInstanceUID="+ctSmall+"&includefield=all")
	require.Equal(t, 200, st)
	require.Contains(t, res[0], "00180050", "all: every stored attribute")
	require.Contains(t, res[0], "00080070")
	st, res, _ = qido(t, c, q+"/studies?StudyInstanceUID=1.3.6.1.4.1.5962.1.2.1.20040119072730.12322&includefield=00080070")
	require.Equal(t, 200, st)
	require.Len(t, res, 1)
	require.Equal(t, []any{"GE MEDICAL SYSTEMS"}, res[0]["00080070"]["Value"], "at study level from its first instance")
	st, res, _ = qido(t, c, q+"/studies?StudyInstanceUID=1.3.6.1.4.1.5962.1.2.1.20040119072730.12322&includefield=SeriesInstanceUID,SOPInstanceUID,Manufacturer")
	require.Equal(t, 200, st)
	require.NotContains(t, res[0], "0020000E", "no series UID as a study attribute")
	require.NotContains(t, res[0], "00080018", "no instance UID as a study attribute")
	st, _, _ = qido(t, c, q+"/studies?PatientID=nobody")
	require.Equal(t, http.StatusNoContent, st)
	st, _, _ = qido(t, c, q+"/studies?NoSuchKeyword=1")
	require.Equal(t, http.StatusBadRequest, st)
	st, _, _ = qido(t, c, q+"/studies?offset=100001")
	require.Equal(t, http.StatusBadRequest, st, "offset bounded")

	// A dentist of another clinic does not see the child's studies at all.
	require.NoError(t, postgres.InTx(ctx, ts.db.pool, func(tx pgx.Tx) error {
		other, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: ts.demo.TenantID, Kind: "dental_clinic", Name: "Anden klinik"})
		if err != nil {
			return err
		}
		u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: ts.demo.TenantID, Username: "andentandlaege", DisplayName: "Anden Tandlæge", Role: auth.RoleDentist, Password: demo.Password}, nil)
		if err != nil {
			return err
		}
		return auth.AddUserUnit(ctx, tx, u.ID, other.ID)
	}))
	oc, _ := ts.login(t, "andentandlaege")
	st, res, _ = qido(t, oc, q+"/studies")
	require.Equal(t, 200, st)
	for _, r := range res {
		require.NotEqual(t, []any{cpr}, r["00100020"]["Value"])
	}
	// Pages count what this user may see, although the studies they may
	// not see come first in the index.
	visible := len(res)
	require.GreaterOrEqual(t, visible, 2)
	st, res, hdr := qido(t, oc, q+"/studies?limit=1")
	require.Equal(t, 200, st)
	require.Len(t, res, 1)
	require.NotEmpty(t, hdr.Get("Warning"), "more results")
	st, res, hdr = qido(t, oc, fmt.Sprintf("%s/studies?limit=1&offset=%d", q, visible-1))
	require.Equal(t, 200, st)
	require.Len(t, res, 1, "the last one")
	require.Empty(t, hdr.Get("Warning"), "no more results")
	st, _, _ = qido(t, oc, fmt.Sprintf("%s/studies?offset=%d", q, visible))
	require.Equal(t, http.StatusNoContent, st)
	resp, _ := doReq(t, oc, "GET", q+"/studies/"+dicomtest.Root+".1/metadata", "", nil, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "retrieval is refused too")
}

func TestDICOMwebCORS(t *testing.T) {
	ts := newTestServer(t, map[string]string{"MOLAR_CORS_ORIGINS": "https://ohif.example"})
	res := ingestFile(t, ts, testFile(t, "CT_small.dcm"))
	u := ts.URL + "/dicomweb/studies/" + res.StudyInstanceUID + "/metadata"
	// The browser's preflight carries no credentials.
	resp, _ := doReq(t, &http.Client{}, "OPTIONS", u, "", nil, map[string]string{
		"Origin": "https://ohif.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "https://ohif.example", resp.Header.Get("Access-Control-Allow-Origin"))
	// The real request, with Basic credentials.
	resp, _ = doReq(t, &http.Client{}, "GET", u, "", nil, map[string]string{"Origin": "https://ohif.example",
		"Authorization": "Basic " + basicAuth("tandlaege", demo.Password)})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "https://ohif.example", resp.Header.Get("Access-Control-Allow-Origin"))
	// Too large a viewport is refused.
	resp, _ = doReq(t, &http.Client{}, "GET", ts.URL+"/dicomweb/studies/"+res.StudyInstanceUID+"/series/"+res.SeriesInstanceUID+"/instances/"+res.SOPInstanceUID+"/rendered?viewport=8192,8192", "image/png", nil,
		map[string]string{"Authorization": "Basic " + basicAuth("tandlaege", demo.Password)})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	// Other origins get no CORS headers.
	resp, _ = doReq(t, &http.Client{}, "OPTIONS", u, "", nil, map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

func TestDICOMwebCORSAnyOriginWithoutCredentials(t *testing.T) {
	ts := newTestServer(t, map[string]string{"MOLAR_CORS_ORIGINS": "*"})
	res := ingestFile(t, ts, testFile(t, "CT_small.dcm"))
	resp, _ := doReq(t, &http.Client{}, "GET", ts.URL+"/dicomweb/studies/"+res.StudyInstanceUID+"/metadata", "", nil, map[string]string{"Origin": "https://any.example",
		"Authorization": "Basic " + basicAuth("tandlaege", demo.Password)})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"), "a wildcard never lets the browser send credentials")
}

// TestSTOWNotStoredWithoutAudit: an instance whose audit row cannot be
// written is not reported as stored (the client sends it again); the
// resend, once the audit log works, is stored and audited.
func TestSTOWNotStoredWithoutAudit(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	admin := failInstanceAudits(t, ts)

	c, _ := ts.login(t, "tandlaege")
	file := testFile(t, "MR_small_RLE.dcm")
	stow := func() (int, map[string]map[string]any) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		part, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		_, _ = part.Write(file)
		_ = mw.Close()
		resp, body := doReq(t, c, "POST", ts.URL+"/dicomweb/studies", "application/dicom+json", &buf, map[string]string{
			"Content-Type": `multipart/related; type="application/dicom"; boundary=` + mw.Boundary(),
			"X-CSRF-Token": csrfOf(t, ts, c), "Origin": ts.URL,
		})
		var out map[string]map[string]any
		require.NoError(t, json.Unmarshal(body, &out), string(body))
		return resp.StatusCode, out
	}
	st, out := stow()
	require.Equal(t, http.StatusConflict, st)
	require.Nil(t, out["00081199"], "nothing reported stored")
	reason := out["00081198"]["Value"].([]any)[0].(map[string]any)["00081197"].(map[string]any)["Value"].([]any)[0]
	require.EqualValues(t, 0x0110, reason)

	_, err := admin.Exec(ctx, `DROP TRIGGER fail_audit ON audit.event`)
	require.NoError(t, err)
	st, out = stow()
	require.Equal(t, http.StatusOK, st)
	require.Len(t, out["00081199"]["Value"], 1)
	var n int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'create' AND object LIKE 'dicom.instance/%'`).Scan(&n))
	require.Equal(t, 1, n)
}

// failInstanceAudits makes every audit row of a stored instance fail to
// insert (a trigger, dropped by the caller through the returned superuser
// connection to let them through again).
func failInstanceAudits(t *testing.T, ts *testServer) *pgx.Conn {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, ts.cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close(ctx) })
	_, err = admin.Exec(ctx, `CREATE FUNCTION public.fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit log unavailable (test)'; END $$;
		CREATE TRIGGER fail_audit BEFORE INSERT ON audit.event FOR EACH ROW
		WHEN (NEW.action = 'create' AND NEW.object LIKE 'dicom.instance/%') EXECUTE FUNCTION public.fail_audit()`)
	require.NoError(t, err)
	return admin
}

// Elements kept in the object only (an ICC profile, a LUT in a sequence, a
// vendor's private blob) are in the WADO-RS metadata with a BulkDataURI
// that answers their value; QIDO leaves them out; AT values are given.
func TestDICOMwebBulkDataOfOtherElements(t *testing.T) {
	ts := newTestServer(t, nil)
	in := dicomtest.Instance{PatientID: "BULK-1", PatientName: "Bulk^Test", StudyUID: dicomtest.Root + ".9", SeriesUID: dicomtest.Root + ".9.1", SOPUID: dicomtest.Root + ".9.1.1", StudyDate: "20261120"}
	d := in.Dataset()
	icc := make([]byte, 3000)
	for i := range icc {
		icc[i] = byte(i * 7)
	}
	d.Set(&header.Element{Tag: header.NewTag(0x0028, 0x2000), VR: "OB", Value: icc}) // ICC Profile
	lut := make([]uint16, 100)
	for i := range lut {
		lut[i] = uint16(i * 40)
	}
	item := header.NewDataset()
	item.SetUint16(header.NewTag(0x0028, 0x3002), 100, 0, 12) // LUT Descriptor
	item.SetUint16(header.NewTag(0x0028, 0x3006), lut...)     // LUT Data
	d.SetSequence(header.NewTag(0x0028, 0x3010), item)        // VOI LUT Sequence
	d.Set(&header.Element{Tag: header.NewTag(0x0009, 0x1010), VR: "OB", Value: []byte("vendor")})
	d.Set(&header.Element{Tag: header.NewTag(0x0028, 0x0009), VR: "AT", Value: []byte{0x18, 0x00, 0x63, 0x10}}) // Frame Increment Pointer (0018,1063)
	var file bytes.Buffer
	require.NoError(t, header.WriteFileHeader(&file, uid.DigitalIntraOralXRayForPresentation, in.SOPUID, uid.ExplicitVRLittleEndian))
	body, err := d.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	file.Write(body)
	res := ingestFile(t, ts, file.Bytes())
	c, _ := ts.login(t, "tandlaege")
	inst := ts.URL + "/dicomweb/studies/" + res.StudyInstanceUID + "/series/" + res.SeriesInstanceUID + "/instances/" + res.SOPInstanceUID

	resp, b := doReq(t, c, "GET", inst+"/metadata", "application/dicom+json", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.NotContains(t, string(b), ingest.BulkDataMarker)
	var meta []map[string]map[string]any
	require.NoError(t, json.Unmarshal(b, &meta))
	require.Equal(t, []any{"00181063"}, meta[0]["00280009"]["Value"], "AT as GGGGEEEE")
	bulk := func(uri any, want []byte) {
		t.Helper()
		s, _ := uri.(string)
		require.True(t, strings.HasPrefix(s, inst+"/bulkdata/"), "a BulkDataURI: %v", uri)
		resp, b := doReq(t, c, "GET", s, `multipart/related; type="application/octet-stream"`, nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		parts := multipartParts(t, resp, b)
		require.Len(t, parts, 1)
		require.Equal(t, want, parts[0])
	}
	bulk(meta[0]["00282000"]["BulkDataURI"], icc)
	seq := meta[0]["00283010"]["Value"].([]any)[0].(map[string]any)
	le := make([]byte, 200)
	for i, v := range lut {
		le[2*i], le[2*i+1] = byte(v), byte(v>>8)
	}
	bulk(seq["00283006"].(map[string]any)["BulkDataURI"], le)
	bulk(meta[0]["00091010"]["BulkDataURI"], []byte("vendor"))
	bulk(meta[0]["7FE00010"]["BulkDataURI"], d.Find(header.TagPixelData).Value)
	resp, _ = doReq(t, c, "GET", inst+"/bulkdata/00100010x", "", nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = doReq(t, c, "GET", inst+"/bulkdata/00283010/5/00283006", "", nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "no such item")

	st, found, _ := qido(t, c, ts.URL+"/dicomweb/instances?SOPInstanceUID="+in.SOPUID+"&includefield=all")
	require.Equal(t, 200, st)
	require.Len(t, found, 1)
	require.NotContains(t, found[0], "00282000", "a search answer carries no bulk data")
	require.Contains(t, found[0], "00280009")
}
