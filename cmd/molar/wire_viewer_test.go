package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer"
)

func init() {
	for k, v := range map[string]string{
		"GET /viewer/":                                     auth.PermDICOMRead,
		"GET /viewer/p/{person}/":                          auth.PermDICOMRead,
		"POST /viewer/p/{person}/breakglass":               auth.PermDICOMRead,
		"GET /viewer/p/{person}/studies/{study}":           auth.PermDICOMRead,
		"GET /viewer/p/{person}/tooth/{fdi}":               auth.PermDICOMRead,
		"GET /viewer/p/{person}/compare":                   auth.PermDICOMRead,
		"POST /viewer/p/{person}/mounts":                   auth.PermDICOMRead,
		"GET /viewer/p/{person}/mounts/{mount}":            auth.PermDICOMRead,
		"GET /viewer/api/p/{person}/images/{sop}/state":    auth.PermDICOMRead,
		"PUT /viewer/api/p/{person}/images/{sop}/state":    auth.PermDICOMRead,
		"GET /viewer/api/p/{person}/images/{sop}/tags":     auth.PermDICOMRead,
		"POST /viewer/api/p/{person}/images/{sop}/send":    auth.PermDICOMRead,
		"POST /viewer/api/p/{person}/mounts/{mount}/slots": auth.PermDICOMRead,
		"GET /viewer/admin/templates":                      viewer.PermTemplates,
		"POST /viewer/admin/templates":                     viewer.PermTemplates,
	} {
		routePermissions[k] = v
	}
}

// demoStudies returns the first demo child's studies by key.
func demoStudiesOf(t *testing.T, ts *testServer, person int64) map[string]index.Study {
	t.Helper()
	out := map[string]index.Study{}
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		sts, err := index.StudiesOfPerson(context.Background(), tx, person)
		for _, s := range sts {
			out[strings.ToLower(s.StudyID)] = s
		}
		return err
	}))
	return out
}

// TestViewerDemoImagesAndTimeline: the demo gives the first children
// synthetic images reconciled to them; the dentist's timeline groups them
// by kind and the first child has an FMX mount.
func TestViewerDemoImagesAndTimeline(t *testing.T) {
	start := time.Now()
	ts := newTestServer(t, nil)
	t.Logf("test server with demo images in %v", time.Since(start))
	child := ts.demo.Children[0]
	studies := demoStudiesOf(t, ts, child.PersonID)
	require.Len(t, studies, 5, "fmx, bw, pano, cbct, photo")
	require.Equal(t, 18, studies["fmx"].NumInstances)
	require.Equal(t, 4, studies["bw"].NumInstances)
	require.Len(t, demoStudiesOf(t, ts, ts.demo.Children[1].PersonID), 2)

	c, _ := ts.login(t, "tandlaege")
	st, body := get(t, c, fmt.Sprintf("%s/viewer/p/%d/", ts.URL, child.PersonID))
	require.Equal(t, http.StatusOK, st, body)
	for _, k := range []string{"io", "bw", "pano", "cbct", "photo"} {
		require.Contains(t, body, `data-kind="`+k+`"`)
	}
	require.Contains(t, body, `data-template="fmx"`)
	require.Contains(t, body, child.Name)

	// A second start does not add images again.
	require.NoError(t, viewer.SeedDemo(context.Background(), ts.db.pool, ts.demo.TenantID, []int64{child.PersonID}, nil, time.Now()))
	require.Len(t, demoStudiesOf(t, ts, child.PersonID), 5)
	_ = json.Marshal
}
