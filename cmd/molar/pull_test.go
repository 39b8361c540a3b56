package main

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage/postgres"
)

// TestPullFromOrthanc migrates a study from another PACS (Orthanc) with
// `molar pull`: C-FIND lists it, C-MOVE sends it to the running server.
func TestPullFromOrthanc(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := startDICOM(t, ts)
	o := dicomtest.StartOrthanc(t, map[string]string{"MOLAR": addr})
	in := dicomtest.Instance{PatientID: "LEGACY-1", PatientName: "Gammel^Arkiv", StudyUID: dicomtest.Root + ".50",
		SeriesUID: dicomtest.Root + ".50.1", SOPUID: dicomtest.Root + ".50.1.1", StudyDate: "20190304"}
	o.Do(t, "POST", "/instances", in.File(t), nil)

	ctx := context.Background()
	host, port, _ := net.SplitHostPort(o.DICOMAddr)
	p, _ := strconv.Atoi(port)
	env := map[string]string{"MOLAR_DATABASE_URL": ts.cfg.DatabaseURL, "MOLAR_DATABASE_APP_URL": ts.cfg.DatabaseAppURL,
		"MOLAR_DATA_DIR": ts.cfg.DataDir, "MOLAR_DICOM_ADDR": addr, "MOLAR_LOG_LEVEL": "warn"}

	// Not registered yet: a clear message.
	code, _, errs := runCmd(t, env, "pull", "--from", "ORTHANC", "--dates", "2019-", "--quiet")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "molar ae add")

	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "ORTHANC", Host: host, Port: p, Permissions: []string{"echo", "store"}}, false))
	code, out, errs := runCmd(t, env, "pull", "--from", "ORTHANC", "--dates", "20190101-20191231", "--dry-run")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, dicomtest.Root+".50")
	require.Contains(t, out, "1 studies match")

	code, out, errs = runCmd(t, env, "pull", "--from", "ORTHANC", "--patient-id", "LEGACY-1", "--quiet")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "pulled 1 instances")
	require.Eventually(t, func() bool {
		var found bool
		_ = postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
			_, err := index.GetInstance(ctx, tx, in.SOPUID)
			found = err == nil
			return nil
		})
		return found
	}, 10*time.Second, 50*time.Millisecond, "the instance arrived in Molar")
}
