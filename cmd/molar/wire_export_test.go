package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/media"
	"github.com/molar-health/molar/dicom/transfer"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

func init() {
	for k, v := range map[string]string{
		"GET /dicom/studies/{study}/archive":                 auth.PermDICOMRead,
		"POST /dicom/studies/{study}/send":                   auth.PermDICOMRead,
		"POST /dicom/upload":                                 auth.PermDICOMWrite,
		"DELETE /dicom/studies/{study}":                      transfer.PermDelete,
		"DELETE /dicom/studies/{study}/instances/{instance}": transfer.PermDelete,
	} {
		routePermissions[k] = v
	}
}

// pydicomFileSet loads a DICOMDIR with pydicom's FileSet (which follows the
// record offsets) and loads every referenced instance; one line each.
const pydicomFileSet = `
import sys
from pydicom import dcmread
from pydicom.fileset import FileSet
fs = FileSet(dcmread(sys.argv[1]))
for inst in fs:
    d = inst.load()
    print(inst.PatientID, d.SOPInstanceUID)
`

// checkMedia verifies a PS3.10 folder with DCMTK and pydicom and returns
// pydicom's listing.
func checkMedia(t *testing.T, dir string, want int) string {
	t.Helper()
	dd := filepath.Join(dir, "DICOMDIR")
	out, err := dicomtest.Run(t, time.Minute, "dcmdump", dd)
	require.NoError(t, err, out)
	require.Contains(t, out, "DirectoryRecordSequence")
	out, err = dicomtest.Run(t, time.Minute, "dcmftest", dd)
	require.NoError(t, err, out)
	b, err := exec.Command("/usr/bin/python3", "-c", pydicomFileSet, dd).CombinedOutput()
	require.NoError(t, err, "pydicom (Debian python3-pydicom): %s", b)
	require.Equal(t, want, strings.Count(string(b), "\n"), string(b))
	return string(b)
}

func unzipTo(t *testing.T, data []byte) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	dir := t.TempDir()
	for _, f := range zr.File {
		require.False(t, strings.Contains(f.Name, ".."))
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, b, 0o644))
	}
	return dir
}

// noneOf fails when any file under dir contains one of the strings.
func noneOf(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		for _, s := range secrets {
			require.False(t, bytes.Contains(b, []byte(s)), "%q found in %s", s, p)
		}
		return nil
	}))
}

func samplePictures(t *testing.T, dir string) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 24, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 24; x++ {
			img.Set(x, y, color.NRGBA{uint8(10 * x), uint8(15 * y), 99, 255})
		}
	}
	var p, j bytes.Buffer
	require.NoError(t, png.Encode(&p, img))
	require.NoError(t, jpeg.Encode(&j, img, nil))
	stl := make([]byte, 84+50*2)
	binary.LittleEndian.PutUint32(stl[80:], 2)
	ply := "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n" +
		"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n1 1 0\n3 0 1 2\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "foto.png"), p.Bytes(), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "foto.jpg"), j.Bytes(), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scan.stl"), stl, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scan.ply"), []byte(ply), 0o644))
}

// TestImportZipDICOMDIRAndPicturesTwice: a media folder with a DICOMDIR and
// a ZIP archive import, a second run finds everything present; pictures
// and models are refused without a patient and wrapped with one, twice.
func TestImportZipDICOMDIRAndPicturesTwice(t *testing.T) {
	env, db, ten := tenantEnv(t)
	ctx := context.Background()
	cpr, _ := auth.ParseCPR("0101154321")
	person, err := auth.CreatePerson(ctx, db.Admin, auth.Person{TenantID: ten.ID, CPR: cpr, GivenName: "Åse", FamilyName: "Ørsted"})
	require.NoError(t, err)

	// PS3.10 media: DICOM/… files and a DICOMDIR.
	mediaDir := t.TempDir()
	fs := media.NewFileSet(media.DirSink(mediaDir), nil, "")
	for i := 0; i < 3; i++ {
		in := dicomtest.Instance{PatientID: "X70", StudyUID: dicomtest.Root + ".70", SeriesUID: dicomtest.Root + ".70.1",
			SOPUID: fmt.Sprintf("%s.70.1.%d", dicomtest.Root, i), InstanceNumber: i + 1}
		_, err := fs.Add(bytes.NewReader(in.File(t)))
		require.NoError(t, err)
	}
	require.NoError(t, fs.Close())
	checkMedia(t, mediaDir, 3)
	// A ZIP of two more, in a sub-folder of the archive.
	zipPath := filepath.Join(t.TempDir(), "billeder.zip")
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for i := 0; i < 2; i++ {
		in := dicomtest.Instance{PatientID: "X71", StudyUID: dicomtest.Root + ".71", SeriesUID: dicomtest.Root + ".71.1",
			SOPUID: fmt.Sprintf("%s.71.1.%d", dicomtest.Root, i)}
		w, err := zw.Create(fmt.Sprintf("eksport/IM%d", i))
		require.NoError(t, err)
		_, _ = w.Write(in.File(t))
	}
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(zipPath, zb.Bytes(), 0o644))

	code, out, _ := runCmd(t, env, "import", "--quiet", mediaDir, zipPath)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "5 stored, 0 already present, 0 failed (of 5 files)")
	require.Contains(t, out, "1 skipped (DICOMDIR")
	code, out, _ = runCmd(t, env, "import", "--quiet", mediaDir, zipPath)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "0 stored, 5 already present, 0 failed (of 5 files)")

	pics := t.TempDir()
	samplePictures(t, pics)
	code, out, _ = runCmd(t, env, "import", "--quiet", pics)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "foto.png: not stored: billed- eller modelfil: vælg en patient")
	code, out, _ = runCmd(t, env, "import", "--quiet", "--patient", "999999-9999", pics)
	require.Equal(t, 2, code, out)
	code, out, _ = runCmd(t, env, "import", "--quiet", "--patient", "010115-4321", pics)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "4 stored, 0 already present, 0 failed (of 4 files)")
	require.Contains(t, out, "4 pictures or models wrapped")
	code, out, _ = runCmd(t, env, "import", "--quiet", "--patient", "0101154321", pics)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "0 stored, 4 already present, 0 failed (of 4 files)")
	require.NotContains(t, out, "0101154321", "no CPR numbers in the report")

	require.NoError(t, postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, dicomtest.Root+".70")
		require.NoError(t, err)
		require.Equal(t, 3, st.NumInstances)
		studies, err := index.StudiesOfPerson(ctx, tx, person.ID)
		require.NoError(t, err)
		require.Len(t, studies, 1, "the wrapped files are one study of the person (reconciled by CPR)")
		ins, err := index.InstancesOfStudy(ctx, tx, studies[0].StudyInstanceUID)
		require.NoError(t, err)
		classes := map[string]int{}
		for _, in := range ins {
			classes[in.SOPClassUID]++
			require.Equal(t, "import", in.SourceAE)
		}
		require.Equal(t, map[string]int{"1.2.840.10008.5.1.4.1.1.77.1.4": 2, media.EncapsulatedSTL: 2}, classes)
		return nil
	}))
}

// TestExportCommandFolderZipDeidentified: `molar export` writes PS3.10
// media that DCMTK and pydicom read and that imports again; the
// de-identified export carries no name, CPR or birth date, and new UIDs
// that still make one study.
func TestExportCommandFolderZipDeidentified(t *testing.T) {
	env, db, ten := tenantEnv(t)
	ctx := context.Background()
	cpr, _ := auth.ParseCPR("0101154321")
	person, err := auth.CreatePerson(ctx, db.Admin, auth.Person{TenantID: ten.ID, CPR: cpr, GivenName: "Åse", FamilyName: "Ørsted"})
	require.NoError(t, err)
	src := t.TempDir()
	study := dicomtest.Root + ".80"
	for i := 0; i < 3; i++ {
		in := dicomtest.Instance{PatientID: "0101154321", PatientName: "Ørsted^Åse", BirthDate: "20150101", StudyDate: "20240506",
			StudyUID: study, SeriesUID: fmt.Sprintf("%s.%d", study, 1+i%2), SOPUID: fmt.Sprintf("%s.9.%d", study, i), InstanceNumber: i + 1}
		in.Write(t, filepath.Join(src, fmt.Sprintf("i%d.dcm", i)))
	}
	code, out, _ := runCmd(t, env, "import", "--quiet", src)
	require.Equal(t, 0, code, out)

	code, _, errs := runCmd(t, env, "export", "--study", study)
	require.Equal(t, 2, code, "no --out: usage")
	require.Contains(t, errs, "usage")

	zipPath := filepath.Join(t.TempDir(), "u.zip")
	code, out, errs = runCmd(t, env, "export", "--study", study, "--out", zipPath)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "exported 3 instances of 1 studies")
	zb, err := os.ReadFile(zipPath)
	require.NoError(t, err)
	listing := checkMedia(t, unzipTo(t, zb), 3)
	require.Contains(t, listing, "0101154321")

	folder := filepath.Join(t.TempDir(), "cd")
	code, out, errs = runCmd(t, env, "export", "--patient", "010115-4321", "--out", folder)
	require.Equal(t, 0, code, errs+out)
	checkMedia(t, folder, 3)
	code, out, _ = runCmd(t, env, "import", "--quiet", folder)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "0 stored, 3 already present, 0 failed (of 3 files)", "the export imports again: the same objects")

	anon := filepath.Join(t.TempDir(), "anon")
	code, out, errs = runCmd(t, env, "export", "--study", study, "--out", anon, "--deidentify")
	require.Equal(t, 0, code, errs+out)
	listing = checkMedia(t, anon, 3)
	require.Contains(t, listing, "ANON0001")
	noneOf(t, anon, "0101154321", "Ørsted", "20150101", "20240506", study)
	code, out, _ = runCmd(t, env, "import", "--quiet", anon)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "3 stored, 0 already present", "new UIDs: new objects")
	var studies, series int
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(DISTINCT st.id), count(DISTINCT se.id) FROM dicom.instance i
		JOIN dicom.study st ON st.id = i.study_ref JOIN dicom.series se ON se.id = i.series_ref
		JOIN dicom.patient p ON p.id = st.patient_ref WHERE p.patient_id = 'ANON0001'`).Scan(&studies, &series))
	require.Equal(t, 1, studies, "new UIDs mapped consistently: one study")
	require.Equal(t, 2, series)

	keep := filepath.Join(t.TempDir(), "keep")
	code, _, errs = runCmd(t, env, "export", "--study", study, "--out", keep, "--deidentify", "--keep-dates")
	require.Equal(t, 0, code, errs)
	noneOf(t, keep, "0101154321", "Ørsted", "20150101")
	b, err := exec.Command("/usr/bin/python3", "-c", "import sys,glob\nfrom pydicom import dcmread\nfor f in sorted(glob.glob(sys.argv[1]+'/DICOM/*/*/*/*')):\n  d=dcmread(f); print(d.StudyDate, d.PatientIdentityRemoved, d.DeidentificationMethodCodeSequence[-1].CodeValue)", keep).CombinedOutput()
	require.NoError(t, err, string(b))
	require.Contains(t, string(b), "20240506 YES 113106")

	var n int
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'export' AND person_id = $1 AND username = 'system:export'`, person.ID).Scan(&n))
	require.Equal(t, 4, n, "every export of the person's study is audited")
}

// demoChildStudy ingests instances for a demo child (reconciled by CPR).
func demoChildStudy(t *testing.T, ts *testServer, studyUID string, n int) (auth.Person, []string) {
	t.Helper()
	ctx := context.Background()
	var p auth.Person
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var err error
		p, err = auth.GetPerson(ctx, tx, ts.demo.Children[0].PersonID)
		return err
	}))
	var sops []string
	for i := 0; i < n; i++ {
		in := dicomtest.Instance{PatientID: p.CPR.Digits(), PatientName: p.FamilyName + "^" + p.GivenName, BirthDate: p.BirthDate.Format("20060102"),
			StudyUID: studyUID, SeriesUID: studyUID + ".1", SOPUID: fmt.Sprintf("%s.1.%d", studyUID, i), InstanceNumber: i + 1, StudyDate: "20240506"}
		res := ingestFile(t, ts, in.File(t))
		require.Equal(t, p.ID, res.PersonID, "reconciled to the child")
		sops = append(sops, res.SOPInstanceUID)
	}
	return p, sops
}

func unreconciledStudy(t *testing.T, ts *testServer, studyUID string, n int) []ingestedInstance {
	var out []ingestedInstance
	for i := 0; i < n; i++ {
		in := dicomtest.Instance{PatientID: "UKENDT-1", PatientName: "Ukendt^Patient", StudyUID: studyUID, SeriesUID: studyUID + ".1",
			SOPUID: fmt.Sprintf("%s.1.%d", studyUID, i), InstanceNumber: i + 1}
		res := ingestFile(t, ts, in.File(t))
		out = append(out, ingestedInstance{res.SOPInstanceUID, res.ObjectKey})
	}
	return out
}

type ingestedInstance struct{ sop, key string }

func doForm(t *testing.T, c *http.Client, ts *testServer, method, u, csrf string, body io.Reader, contentType string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u, body)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	req.Header.Set("Origin", ts.URL)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, b
}

// TestExportWebDownloadSendUpload: a dentist downloads a study as a ZIP with
// a DICOMDIR (plain and de-identified), sends it to DCMTK storescp through
// the AE registry, and uploads DICOM, a ZIP, pictures and a model for a
// chosen patient (twice: duplicates the second time); all audited.
func TestExportWebDownloadSendUpload(t *testing.T) {
	ts := newTestServer(t, nil)
	withIngester(t, ts)
	ctx := context.Background()
	study := dicomtest.Root + ".85"
	child, _ := demoChildStudy(t, ts, study, 2)
	c, csrf := ts.login(t, "tandlaege")

	code, body := doForm(t, c, ts, "GET", ts.URL+"/dicom/studies/"+study+"/archive", csrf, nil, "")
	require.Equal(t, http.StatusOK, code, string(body))
	listing := checkMedia(t, unzipTo(t, body), 2)
	require.Contains(t, listing, child.CPR.Digits())
	code, body = doForm(t, c, ts, "GET", ts.URL+"/dicom/studies/"+study+"/archive?deidentify=1", csrf, nil, "")
	require.Equal(t, http.StatusOK, code)
	dir := unzipTo(t, body)
	checkMedia(t, dir, 2)
	noneOf(t, dir, child.CPR.Digits(), child.FamilyName, study)
	code, _ = doForm(t, c, ts, "GET", ts.URL+"/dicom/studies/1.2.3.4/archive", csrf, nil, "")
	require.Equal(t, http.StatusNotFound, code)
	carer, carerCSRF := ts.login(t, "hjemmehjaelper")
	code, _ = doForm(t, carer, ts, "GET", ts.URL+"/dicom/studies/"+study+"/archive", carerCSRF, nil, "")
	require.Equal(t, http.StatusForbidden, code)

	// Send to a registered AE (move permission) running DCMTK storescp.
	recv := t.TempDir()
	addr := dicomtest.StartStorescp(t, recv)
	host, port := dicomtest.HostPort(t, addr)
	var portNo int
	fmt.Sscan(port, &portNo)
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "STORESCP", Host: host, Port: portNo, Permissions: []string{index.PermMove}}, false))
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "NOMOVE", Host: host, Port: portNo, Permissions: []string{index.PermStore}}, false))
	code, body = doForm(t, c, ts, "POST", ts.URL+"/dicom/studies/"+study+"/send", csrf, strings.NewReader("ae=STORESCP"), "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusOK, code, string(body))
	require.JSONEq(t, `{"sent":2,"failed":0}`, string(body))
	files, _ := os.ReadDir(recv)
	require.Len(t, files, 2, "both instances arrived at storescp")
	code, body = doForm(t, c, ts, "POST", ts.URL+"/dicom/studies/"+study+"/send", csrf, strings.NewReader("ae=NOMOVE"), "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusBadRequest, code, string(body))
	require.Contains(t, string(body), "move")

	// Upload: DICOM, a ZIP, pictures and a model for the child.
	pics := t.TempDir()
	samplePictures(t, pics)
	other := dicomtest.Instance{PatientID: "X86", StudyUID: dicomtest.Root + ".86", SeriesUID: dicomtest.Root + ".86.1", SOPUID: dicomtest.Root + ".86.1.1"}
	inZip := dicomtest.Instance{PatientID: "X86", StudyUID: dicomtest.Root + ".86", SeriesUID: dicomtest.Root + ".86.1", SOPUID: dicomtest.Root + ".86.1.2"}
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("DICOM/IM1")
	_, _ = w.Write(inZip.File(t))
	require.NoError(t, zw.Close())
	upload := func(withNote bool) (int, map[string]any) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("person", fmt.Sprint(child.ID)))
		add := func(name string, b []byte) {
			fw, err := mw.CreateFormFile("file", name)
			require.NoError(t, err)
			_, _ = fw.Write(b)
		}
		add("a.dcm", other.File(t))
		add("arkiv.zip", zb.Bytes())
		for _, n := range []string{"foto.png", "foto.jpg", "scan.stl"} {
			b, err := os.ReadFile(filepath.Join(pics, n))
			require.NoError(t, err)
			add(n, b)
		}
		if withNote {
			add("noter.txt", []byte("bare tekst"))
		}
		require.NoError(t, mw.Close())
		code, body := doForm(t, c, ts, "POST", ts.URL+"/dicom/upload", csrf, &buf, mw.FormDataContentType())
		var res map[string]any
		require.NoError(t, json.Unmarshal(body, &res), string(body))
		return code, res
	}
	code, res := upload(false)
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, float64(5), res["stored"], res)
	code, res = upload(true)
	require.Equal(t, http.StatusAccepted, code, res)
	require.Equal(t, float64(0), res["stored"], res)
	require.Equal(t, float64(5), res["duplicates"], res)
	require.Equal(t, float64(1), res["rejected"], res)
	// Without a person, a picture is refused with the reason.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "foto.png")
	b, _ := os.ReadFile(filepath.Join(pics, "foto.png"))
	_, _ = fw.Write(b)
	require.NoError(t, mw.Close())
	code, body = doForm(t, c, ts, "POST", ts.URL+"/dicom/upload", csrf, &buf, mw.FormDataContentType())
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, string(body), "vælg en patient")
	code, _ = doForm(t, carer, ts, "POST", ts.URL+"/dicom/upload", carerCSRF, strings.NewReader(""), "multipart/form-data; boundary=x")
	require.Equal(t, http.StatusForbidden, code)

	var exports, creates int
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'export' AND person_id = $1`, child.ID).Scan(&exports); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'create' AND person_id = $1 AND object LIKE 'dicom.instance/%'`, child.ID).Scan(&creates)
	}))
	require.Equal(t, 3, exports, "two downloads and one send")
	require.Equal(t, 6, creates, "the three wrapped files, uploaded twice (an identical re-upload is audited too; the DICOM uploads name no person of the register)")
}

// TestDeleteStudyAndInstance: deletion needs dicom.delete and a reason, is
// refused while the journal refers to the images (an entry of the person,
// or an image link), removes index rows and objects otherwise, and is
// audited with the reason.
func TestDeleteStudyAndInstance(t *testing.T) {
	ts := newTestServer(t, nil)
	withIngester(t, ts)
	ctx := context.Background()
	matched := dicomtest.Root + ".87"
	child, _ := demoChildStudy(t, ts, matched, 1)
	free := dicomtest.Root + ".88"
	insts := unreconciledStudy(t, ts, free, 2)
	linked := dicomtest.Root + ".89"
	unreconciledStudy(t, ts, linked, 1)
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body)
			VALUES ($1, $2, 'note', 1, 'Test', now(), '{}')`, ts.demo.TenantID, child.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO journal.image_link (tenant_id, person_id, study_uid, linked_by) VALUES ($1, $2, $3, 1)`,
			ts.demo.TenantID, ts.demo.Children[1].PersonID, linked)
		return err
	}))

	dentist, dcsrf := ts.login(t, "tandlaege")
	code, _ := doForm(t, dentist, ts, "DELETE", ts.URL+"/dicom/studies/"+free+"?reason=fejlagtigt+optaget", dcsrf, nil, "")
	require.Equal(t, http.StatusForbidden, code, "a dentist may not delete")
	admin, csrf := ts.login(t, "klinikadmin")
	code, body := doForm(t, admin, ts, "DELETE", ts.URL+"/dicom/studies/"+free, csrf, nil, "")
	require.Equal(t, http.StatusBadRequest, code, "no reason: %s", body)
	require.Contains(t, string(body), "grund")
	code, body = doForm(t, admin, ts, "DELETE", ts.URL+"/dicom/studies/"+matched, csrf, strings.NewReader(`{"reason":"forkert patient"}`), "application/json")
	require.Equal(t, http.StatusConflict, code, string(body))
	require.Contains(t, string(body), "journalen henviser")
	code, body = doForm(t, admin, ts, "DELETE", ts.URL+"/dicom/studies/"+linked+"?reason=forkert+patient", csrf, nil, "")
	require.Equal(t, http.StatusConflict, code, "an image link blocks too: %s", body)

	// Allowed: one instance, then the rest of the study.
	code, body = doForm(t, admin, ts, "DELETE", ts.URL+"/dicom/studies/"+free+"/instances/"+insts[0].sop, csrf, strings.NewReader(`{"reason":"dobbeltoptagelse"}`), "application/json")
	require.Equal(t, http.StatusOK, code, string(body))
	require.JSONEq(t, `{"instances":1,"study_removed":false}`, string(body))
	_, err := ts.store.Stat(ctx, insts[0].key)
	require.ErrorIs(t, err, storage.ErrNotFound, "the object is removed after the index rows")
	code, body = doForm(t, admin, ts, "DELETE", ts.URL+"/dicom/studies/"+free+"?reason=fejlagtigt+optaget", csrf, nil, "")
	require.Equal(t, http.StatusOK, code, string(body))
	require.JSONEq(t, `{"instances":1,"study_removed":true}`, string(body))
	code, _ = doForm(t, admin, ts, "DELETE", ts.URL+"/dicom/studies/"+free+"?reason=fejlagtigt+optaget", csrf, nil, "")
	require.Equal(t, http.StatusNotFound, code)

	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		_, err := index.GetStudy(ctx, tx, free)
		require.ErrorIs(t, err, index.ErrNotFound)
		_, err = index.GetStudy(ctx, tx, matched)
		require.NoError(t, err, "the blocked study is still there")
		var reasons []string
		rows, err := tx.Query(ctx, `SELECT detail->>'reason' FROM audit.event WHERE action = 'delete' AND username = 'klinikadmin' ORDER BY id`)
		require.NoError(t, err)
		reasons, err = pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"dobbeltoptagelse", "fejlagtigt optaget"}, reasons)
		return nil
	}))
}

// TestUploadNotStoredWithoutAudit: a file stored by an upload whose audit
// row cannot be written is reported as not stored, with the reason.
func TestUploadNotStoredWithoutAudit(t *testing.T) {
	ts := newTestServer(t, nil)
	withIngester(t, ts)
	admin := failInstanceAudits(t, ts)
	c, csrf := ts.login(t, "tandlaege")
	in := dicomtest.Instance{PatientID: "LOCAL-9", PatientName: "Test^Upload", StudyUID: dicomtest.Root + ".86", SeriesUID: dicomtest.Root + ".86.1",
		SOPUID: dicomtest.Root + ".86.1.1", InstanceNumber: 1}
	file := in.File(t)
	upload := func() (int, map[string]any, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, err := mw.CreateFormFile("file", "a.dcm")
		require.NoError(t, err)
		_, _ = fw.Write(file)
		require.NoError(t, mw.Close())
		code, body := doForm(t, c, ts, "POST", ts.URL+"/dicom/upload", csrf, &buf, mw.FormDataContentType())
		var res map[string]any
		require.NoError(t, json.Unmarshal(body, &res), string(body))
		return code, res, string(body)
	}
	code, res, body := upload()
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Equal(t, float64(0), res["stored"], res)
	require.Equal(t, float64(1), res["rejected"], res)
	require.Contains(t, body, "revisionsloggen")

	// Sent again once the audit log works: a duplicate, and audited now.
	_, err := admin.Exec(context.Background(), `DROP TRIGGER fail_audit ON audit.event`)
	require.NoError(t, err)
	code, res, body = upload()
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, float64(1), res["duplicates"], res)
	var n int
	require.NoError(t, admin.QueryRow(context.Background(), `SELECT count(*) FROM audit.event WHERE action = 'create' AND object LIKE 'dicom.instance/%'`).Scan(&n))
	require.Equal(t, 1, n)
}

// A de-identified download leaves out what the profile cannot clean and
// says so in the ZIP (UDELADT.TXT), without naming the patient.
func TestDeidentifiedDownloadNamesWhatIsLeftOut(t *testing.T) {
	ts := newTestServer(t, nil)
	withIngester(t, ts)
	study := dicomtest.Root + ".87"
	child, _ := demoChildStudy(t, ts, study, 1)
	in := dicomtest.Instance{PatientID: child.CPR.Digits(), PatientName: child.FamilyName + "^" + child.GivenName, BirthDate: child.BirthDate.Format("20060102"),
		StudyUID: study, SeriesUID: study + ".1", SOPUID: study + ".1.9", InstanceNumber: 9, StudyDate: "20240506"}
	d := in.Dataset()
	d.SetString(header.NewTag(0x0028, 0x0301), "CS", "YES") // Burned In Annotation
	var file bytes.Buffer
	require.NoError(t, header.WriteFileHeader(&file, uid.DigitalIntraOralXRayForPresentation, in.SOPUID, uid.ExplicitVRLittleEndian))
	b, err := d.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	file.Write(b)
	ingestFile(t, ts, file.Bytes())
	c, csrf := ts.login(t, "tandlaege")

	code, body := doForm(t, c, ts, "GET", ts.URL+"/dicom/studies/"+study+"/archive?deidentify=1", csrf, nil, "")
	require.Equal(t, http.StatusOK, code)
	dir := unzipTo(t, body)
	checkMedia(t, dir, 1)
	note, err := os.ReadFile(filepath.Join(dir, "UDELADT.TXT"))
	require.NoError(t, err, "the download says what it lacks")
	require.Contains(t, string(note), "(1)")
	require.Contains(t, string(note), "burned-in annotation")
	noneOf(t, dir, child.CPR.Digits(), child.FamilyName, study)

	code, body = doForm(t, c, ts, "GET", ts.URL+"/dicom/studies/"+study+"/archive", csrf, nil, "")
	require.Equal(t, http.StatusOK, code)
	dir = unzipTo(t, body)
	checkMedia(t, dir, 2)
	_, err = os.Stat(filepath.Join(dir, "UDELADT.TXT"))
	require.ErrorIs(t, err, os.ErrNotExist, "a plain download has everything")
}
