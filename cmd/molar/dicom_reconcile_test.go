package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/reconcile"
	"github.com/molar-health/molar/storage/postgres"
)

func init() {
	for k, v := range map[string]string{
		"GET /dicom/reconciliation/":                 reconcile.Perm,
		"POST /dicom/reconciliation/{study}/link":    reconcile.Perm,
		"POST /dicom/reconciliation/{study}/correct": reconcile.Perm,
		"POST /dicom/reconciliation/merge":           reconcile.Perm,
	} {
		routePermissions[k] = v
	}
}

// TestReconciliationAPI: an image of a demo child under a local Patient ID
// waits on the list; a dentist links it by CPR number; it leaves the list,
// follows the child, and the link is audit-logged.
func TestReconciliationAPI(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	in := dicomtest.Instance{PatientID: "LOCAL-1", PatientName: "Unknown^Child", StudyUID: dicomtest.Root + ".70", SeriesUID: dicomtest.Root + ".70.1",
		SOPUID: dicomtest.Root + ".70.1.1", InstanceNumber: 1}
	file := in.File(t)
	_, err := ts.ingester.Ingest(ctx, ingest.Source{TenantID: ts.demo.TenantID, AE: "PANO1", Part10: true, Size: int64(len(file))}, bytes.NewReader(file))
	require.NoError(t, err)

	child := ts.demo.Children[0]
	var person auth.Person
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var err error
		person, err = auth.GetPerson(ctx, tx, child.PersonID)
		return err
	}))

	c, csrf := ts.login(t, dentistLogin(t, ts))
	get := func() []reconcile.Item {
		req, _ := http.NewRequest("GET", ts.URL+"/dicom/reconciliation/", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		var items []reconcile.Item
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&items))
		return items
	}
	items := get()
	require.Len(t, items, 1)
	require.Equal(t, "LOCAL-1", items[0].PatientID)
	require.Equal(t, index.ReconUnmatched, items[0].State)

	body, _ := json.Marshal(map[string]string{"cpr": person.CPR.Formatted()})
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/dicom/reconciliation/%d/link", ts.URL, items[0].StudyID), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Empty(t, get())

	// The page renders (empty list).
	req, _ = http.NewRequest("GET", ts.URL+"/dicom/reconciliation/", nil)
	resp, err = c.Do(req)
	require.NoError(t, err)
	var page bytes.Buffer
	_, _ = page.ReadFrom(resp.Body)
	resp.Body.Close()
	require.Contains(t, page.String(), `id="recon-empty"`)

	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		studies, err := index.StudiesOfPerson(ctx, tx, person.ID)
		require.NoError(t, err)
		var linked bool
		for _, s := range studies {
			linked = linked || (s.StudyInstanceUID == in.StudyUID && s.ReconState == index.ReconResolved)
		}
		require.True(t, linked)
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE person_id = $1 AND object = $2`, person.ID,
			fmt.Sprintf("dicom.study/%d", items[0].StudyID)).Scan(&n))
		require.Equal(t, 1, n)
		return nil
	}))
}

// dentistLogin returns a demo dentist's user name.
func dentistLogin(t *testing.T, ts *testServer) string {
	for _, l := range ts.demo.Logins {
		if l.Role == auth.RoleDentist {
			return l.Username
		}
	}
	t.Fatal("no demo dentist")
	return ""
}

// TestReconciliationNeedsAccess: reconciliation moves images between
// records, so it needs access to every person concerned. A dentist must not
// pull the images of a person outside the clinic's care (a parent) into a
// child's record they can open — by linking, correcting or merging — nor
// read them afterwards; nothing of the outsider comes back.
func TestReconciliationNeedsAccess(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	child := ts.demo.Children[0]
	var kid, outsider auth.Person
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var err error
		if kid, err = auth.GetPerson(ctx, tx, child.PersonID); err != nil {
			return err
		}
		outsider, err = auth.GetPerson(ctx, tx, child.Parents[0])
		return err
	}))
	ingestFor := func(p auth.Person, n int) ingest.Result {
		in := dicomtest.Instance{PatientID: p.CPR.Digits(), PatientName: p.FamilyName + "^" + p.GivenName,
			BirthDate: p.BirthDate.Format("20060102"), StudyUID: fmt.Sprintf("%s.71.%d", dicomtest.Root, n),
			SeriesUID: fmt.Sprintf("%s.71.%d.1", dicomtest.Root, n), SOPUID: fmt.Sprintf("%s.71.%d.1.1", dicomtest.Root, n), InstanceNumber: 1}
		file := in.File(t)
		res, err := ts.ingester.Ingest(ctx, ingest.Source{TenantID: ts.demo.TenantID, AE: "PANO1", Part10: true, Size: int64(len(file))}, bytes.NewReader(file))
		require.NoError(t, err)
		require.Equal(t, p.ID, res.PersonID, "matched to the register")
		return res
	}
	theirs := ingestFor(outsider, 1)
	ours := ingestFor(kid, 2)
	var study, theirRef, ourRef int64
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, theirs.StudyInstanceUID)
		if err != nil {
			return err
		}
		study, theirRef = st.ID, st.PatientRef
		st, err = index.GetStudy(ctx, tx, ours.StudyInstanceUID)
		ourRef = st.PatientRef
		return err
	}))

	c, csrf := ts.login(t, dentistLogin(t, ts))
	post := func(path string, body map[string]any) (int, string) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", ts.URL+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-CSRF-Token", csrf)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		return resp.StatusCode, out.String()
	}
	for _, tc := range []struct {
		name, path string
		body       map[string]any
	}{
		{"link", fmt.Sprintf("/dicom/reconciliation/%d/link", study), map[string]any{"cpr": kid.CPR.Formatted()}},
		{"correct", fmt.Sprintf("/dicom/reconciliation/%d/correct", study), map[string]any{"patient_id": kid.CPR.Formatted(),
			"name": kid.FamilyName + "^" + kid.GivenName, "birth_date": kid.BirthDate.Format("2006-01-02")}},
		{"merge", "/dicom/reconciliation/merge", map[string]any{"from": theirRef, "into": ourRef}},
	} {
		status, body := post(tc.path, tc.body)
		require.Equal(t, http.StatusForbidden, status, "%s of an outsider's study: %s", tc.name, body)
		require.NotContains(t, body, outsider.GivenName)
		require.NotContains(t, body, theirs.StudyInstanceUID)
	}
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, theirs.StudyInstanceUID)
		require.NoError(t, err)
		require.Equal(t, outsider.ID, st.PersonID, "the outsider's study stays theirs")
		return nil
	}))
	req, _ := http.NewRequest("GET", ts.URL+"/dicomweb/studies/"+theirs.StudyInstanceUID+"/metadata", nil)
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// After breaking the glass for the outsider it works, flagged in the audit log.
	resp, err = c.Do(func() *http.Request {
		r, _ := http.NewRequest("POST", fmt.Sprintf("%s/journal/patients/%d/break-glass", ts.URL, outsider.ID),
			strings.NewReader(url.Values{"reason": {"images sent under the parent's number"}, "csrf_token": {csrf}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}())
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	status, body := post(fmt.Sprintf("/dicom/reconciliation/%d/link", study), map[string]any{"cpr": kid.CPR.Formatted()})
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE person_id = $1 AND object = $2 AND COALESCE(break_glass_reason, '') <> ''`,
			outsider.ID, fmt.Sprintf("dicom.study/%d", study)).Scan(&n))
		require.Equal(t, 1, n, "moving the images away from the outsider is audited, flagged")
		return nil
	}))
}

// TestUnmatchedStudyOnlyForReconcilers: a study not linked to a person has
// no care relation to check and its Patient ID is often a CPR number, so
// only staff who reconcile studies read it (QIDO, WADO, archive); a dental
// assistant (dicom.read, not reconcile) does not even find it.
func TestUnmatchedStudyOnlyForReconcilers(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	in := dicomtest.Instance{PatientID: "LOCAL-2", PatientName: "Ukendt^Barn", StudyUID: dicomtest.Root + ".71", SeriesUID: dicomtest.Root + ".71.1",
		SOPUID: dicomtest.Root + ".71.1.1", InstanceNumber: 1}
	file := in.File(t)
	_, err := ts.ingester.Ingest(ctx, ingest.Source{TenantID: ts.demo.TenantID, AE: "PANO1", Part10: true, Size: int64(len(file))}, bytes.NewReader(file))
	require.NoError(t, err)

	study := ts.URL + "/dicomweb/studies/" + in.StudyUID
	for _, tc := range []struct {
		login string
		sees  bool
	}{
		{dentistLogin(t, ts), true},
		{"klinikassistent", false},
	} {
		c, _ := ts.login(t, tc.login)
		st, res, _ := qido(t, c, ts.URL+"/dicomweb/studies?PatientID=LOCAL-2")
		require.Equal(t, map[bool]int{true: http.StatusOK, false: http.StatusNoContent}[tc.sees], st, tc.login)
		require.Len(t, res, map[bool]int{true: 1, false: 0}[tc.sees], tc.login)
		want := map[bool]int{true: http.StatusOK, false: http.StatusForbidden}[tc.sees]
		resp, body := doReq(t, c, "GET", study+"/metadata", "application/dicom+json", nil, nil)
		require.Equal(t, want, resp.StatusCode, "%s: metadata", tc.login)
		if !tc.sees {
			require.NotContains(t, string(body), "Ukendt")
		}
		resp, _ = doReq(t, c, "GET", ts.URL+"/dicom/studies/"+in.StudyUID+"/archive", "", nil, nil)
		require.Equal(t, want, resp.StatusCode, "%s: archive", tc.login)
	}
}
