package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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
