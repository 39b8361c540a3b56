package main

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// TestDICOMwebRetrieveTransferSyntax: WADO-RS and WADO-URI send Explicit VR
// Little Endian unless asked otherwise (PS3.18 8.7.3.4, 8.2.11). Images
// written by DCMTK in each syntax it can write are converted losslessly
// (their pixels come back exactly), lossy ones stay as stored, "*" gives
// every file byte for byte, and DCMTK reads what is sent.
func TestDICOMwebRetrieveTransferSyntax(t *testing.T) {
	dcmdump := dicomtest.Tool(t, "dcmdump")
	ts := newTestServer(t, nil)
	withIngester(t, ts)
	c, _ := ts.login(t, "tandlaege")
	dir := t.TempDir()

	type stored struct {
		conv         string
		file         []byte
		ts, sop, url string
		lossy        bool
		want         []byte // the synthetic pixels
	}
	study := dicomtest.Root + ".72"
	var all []stored
	for i, cv := range dicomtest.Converters {
		in := dicomtest.Instance{PatientID: "TS-1", PatientName: "Test^Syntax", StudyUID: study, SeriesUID: study + ".1",
			SOPUID: study + ".1." + string(rune('1'+i)), InstanceNumber: i + 1, StudyDate: "20260101", Rows: 40, Cols: 30}
		file, err := os.ReadFile(dicomtest.Convert(t, dir, in, cv))
		require.NoError(t, err)
		res := ingestFile(t, ts, file)
		h, err := header.Read(bytes.NewReader(file), header.Options{})
		require.NoError(t, err)
		stx, _ := uid.LookupTransferSyntax(h.TransferSyntax)
		all = append(all, stored{conv: cv.Name, file: file, ts: h.TransferSyntax, sop: res.SOPInstanceUID, lossy: stx.Lossy,
			url:  ts.URL + "/dicomweb/studies/" + study + "/series/" + study + ".1/instances/" + res.SOPInstanceUID,
			want: in.Dataset().Find(header.TagPixelData).Value})
	}

	// part checks one returned Part-10 file: its syntax, its SOP instance,
	// its pixels (native ones exactly the synthetic ones), DCMTK reads it.
	part := func(t *testing.T, s stored, got []byte, wantTS string) {
		t.Helper()
		h, err := header.Read(bytes.NewReader(got), header.Options{})
		require.NoError(t, err, s.conv)
		require.Equal(t, wantTS, h.TransferSyntax, s.conv)
		require.Equal(t, s.sop, h.Dataset.UID(header.TagSOPInstanceUID), s.conv)
		if wantTS == s.ts {
			require.Equal(t, s.file, got, "%s: as stored, byte for byte", s.conv)
		} else if !s.lossy {
			require.NotNil(t, h.PixelData, s.conv)
			require.False(t, h.PixelData.Encapsulated(), s.conv)
			px := got[h.PixelData.ValueOffset : h.PixelData.ValueOffset+int64(h.PixelData.Length)]
			if wantTS == uid.ExplicitVRBigEndian {
				px = bytes.Clone(px)
				for i := 0; i+1 < len(px); i += 2 {
					px[i], px[i+1] = px[i+1], px[i]
				}
			}
			require.Equal(t, s.want, px, "%s → %s: the pixels exactly", s.conv, uid.Name(wantTS))
		}
		f := filepath.Join(dir, "got.dcm")
		require.NoError(t, os.WriteFile(f, got, 0o600))
		out, err := dicomtest.Run(t, 30*time.Second, dcmdump, "-q", "+P", "0002,0010", f)
		require.NoError(t, err, "%s: DCMTK reads the file: %s", s.conv, out)
	}
	get := func(t *testing.T, url, accept string) (*http.Response, [][]byte) {
		t.Helper()
		resp, body := doReq(t, c, "GET", url, accept, nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", accept, body)
		return resp, multipartParts(t, resp, body)
	}

	for _, s := range all {
		t.Run(s.conv, func(t *testing.T) {
			// No transfer-syntax: Explicit VR Little Endian, lossy ones as stored.
			want := uid.ExplicitVRLittleEndian
			if s.lossy {
				want = s.ts
			}
			for _, accept := range []string{`multipart/related; type="application/dicom"`, ""} {
				_, parts := get(t, s.url, accept)
				require.Len(t, parts, 1)
				part(t, s, parts[0], want)
			}
			// "*": as stored.
			_, parts := get(t, s.url, `multipart/related; type="application/dicom"; transfer-syntax=*`)
			part(t, s, parts[0], s.ts)
			// Implicit VR Little Endian: converted, lossy ones too.
			_, parts = get(t, s.url, `multipart/related; type="application/dicom"; transfer-syntax=`+uid.ImplicitVRLittleEndian)
			part(t, s, parts[0], uid.ImplicitVRLittleEndian)
			// Big endian only from native pixels.
			resp, body := doReq(t, c, "GET", s.url, `multipart/related; type="application/dicom"; transfer-syntax=`+uid.ExplicitVRBigEndian, nil, nil)
			if stx, _ := uid.LookupTransferSyntax(s.ts); stx.Encapsulated {
				require.Equal(t, http.StatusNotAcceptable, resp.StatusCode)
			} else {
				require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
				part(t, s, multipartParts(t, resp, body)[0], uid.ExplicitVRBigEndian)
			}

			// WADO-URI: Explicit VR Little Endian (lossy ones too), the
			// stored syntax when asked for.
			uri := ts.URL + "/dicomweb/wado?requestType=WADO&contentType=application/dicom&studyUID=" + study + "&seriesUID=" + study + ".1&objectUID=" + s.sop
			resp, body = doReq(t, c, "GET", uri, "", nil, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			part(t, s, body, uid.ExplicitVRLittleEndian)
			resp, body = doReq(t, c, "GET", uri+"&transferSyntax="+s.ts, "", nil, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			part(t, s, body, s.ts)
		})
	}

	// The study at once: one part per instance, each naming its syntax.
	resp, body := doReq(t, c, "GET", ts.URL+"/dicomweb/studies/"+study, "", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parts := multipartParts(t, resp, body)
	require.Len(t, parts, len(all))
	// A syntax the compressed ones cannot be converted to: 406 for the study.
	resp, body = doReq(t, c, "GET", ts.URL+"/dicomweb/studies/"+study, `multipart/related; type="application/dicom"; transfer-syntax=`+uid.ExplicitVRBigEndian, nil, nil)
	require.Equal(t, http.StatusNotAcceptable, resp.StatusCode)
	require.Contains(t, string(body), "transfer-syntax=*")
}

// TestDICOMwebRetrieveMissingObjectIsNotAComplete: an instance whose object
// cannot be read once the response has begun ends the multipart body
// without its closing delimiter, so the client sees a cut response rather
// than a complete study with an image silently missing.
func TestDICOMwebRetrieveMissingObjectIsNotAComplete(t *testing.T) {
	ts := newTestServer(t, nil)
	withIngester(t, ts)
	c, _ := ts.login(t, "tandlaege")
	study := dicomtest.Root + ".75"
	var keys []string
	for i := 1; i <= 3; i++ {
		in := dicomtest.Instance{PatientID: "CUT-1", PatientName: "Test^Cut", StudyUID: study, SeriesUID: study + ".1",
			SOPUID: study + ".1." + string(rune('0'+i)), InstanceNumber: i, StudyDate: "20260101"}
		keys = append(keys, ingestFile(t, ts, in.File(t)).ObjectKey)
	}
	for _, accept := range []string{"", `multipart/related; type="application/dicom"; transfer-syntax=*`} {
		resp, body := doReq(t, c, "GET", ts.URL+"/dicomweb/studies/"+study, accept, nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Len(t, multipartParts(t, resp, body), 3)
	}
	// The middle one's object is gone: the first part is sent, then the body is cut.
	require.NoError(t, ts.store.Delete(context.Background(), keys[1]))
	for _, accept := range []string{"", `multipart/related; type="application/dicom"; transfer-syntax=*`} {
		resp, body := doReq(t, c, "GET", ts.URL+"/dicomweb/studies/"+study, accept, nil, nil)
		_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		require.NoError(t, err)
		require.False(t, bytes.Contains(body, []byte("--"+params["boundary"]+"--")), "%q: no closing delimiter after a failed instance", accept)
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		n := 0
		for {
			p, err := mr.NextPart()
			if err != nil {
				require.NotErrorIs(t, err, io.EOF, "%q: the body does not end as if complete", accept)
				break
			}
			_, err = io.ReadAll(p)
			if err != nil {
				break
			}
			n++
		}
		require.Less(t, n, 3, accept)
	}
}

// TestDICOMwebBasicCredentialsFromAnotherSite: a browser that answered the
// Basic challenge sends those credentials with any site's form post (no
// preflight), so a STOW from a foreign origin is refused; the same request
// from a client that is not a browser (Orthanc, Weasis, scripts), from this
// site, or from an origin in MOLAR_CORS_ORIGINS is taken.
func TestDICOMwebBasicCredentialsFromAnotherSite(t *testing.T) {
	ts := newTestServer(t, map[string]string{"MOLAR_CORS_ORIGINS": "https://ohif.kommune.example"})
	withIngester(t, ts)
	mr := testFile(t, "MR_small.dcm")
	stow := func(hdr map[string]string) int {
		t.Helper()
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		part, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		_, _ = part.Write(mr)
		_ = mw.Close()
		h := map[string]string{"Content-Type": `multipart/related; type="application/dicom"; boundary=` + mw.Boundary(),
			"Authorization": "Basic " + basicAuth("tandlaege", demo.Password)}
		for k, v := range hdr {
			h[k] = v
		}
		resp, _ := doReq(t, &http.Client{}, "POST", ts.URL+"/dicomweb/studies", "application/dicom+json", &buf, h)
		return resp.StatusCode
	}
	require.Equal(t, http.StatusForbidden, stow(map[string]string{"Origin": "https://evil.example"}))
	require.Equal(t, http.StatusForbidden, stow(map[string]string{"Sec-Fetch-Site": "cross-site"}))
	require.Equal(t, http.StatusOK, stow(nil), "not a browser")
	require.Equal(t, http.StatusOK, stow(map[string]string{"Origin": ts.URL, "Sec-Fetch-Site": "same-origin"}), "this site")
	require.Equal(t, http.StatusOK, stow(map[string]string{"Origin": "https://ohif.kommune.example", "Sec-Fetch-Site": "cross-site"}), "a named CORS origin")
}
