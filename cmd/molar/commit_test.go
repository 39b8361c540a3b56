package main

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
)

// TestStorageCommitmentWithOrthanc: Orthanc, as a modality would, stores an
// image to Molar and asks for storage commitment (its SCU); Molar answers
// the N-ACTION and reports on an association of its own. An instance Molar
// does not hold is reported as failed (No Such Object Instance), one of
// another SOP class than stored as a class-instance conflict.
func TestStorageCommitmentWithOrthanc(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := startDICOM(t, ts)
	ctx := context.Background()
	o := dicomtest.StartOrthanc(t, map[string]string{"MOLAR": addr})
	host, port, _ := net.SplitHostPort(o.DICOMAddr)
	p, _ := strconv.Atoi(port)
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "ORTHANC", Host: host, Port: p, Permissions: []string{"echo", "store"}}, false))

	in := dicomtest.Instance{PatientID: "COMMIT-1", PatientName: "Test^Commit", StudyUID: dicomtest.Root + ".74",
		SeriesUID: dicomtest.Root + ".74.1", SOPUID: dicomtest.Root + ".74.1.1", StudyDate: "20260101"}
	var up map[string]any
	o.Do(t, "POST", "/instances", in.File(t), &up)
	o.Do(t, "POST", "/modalities/MOLAR/store", map[string]any{"Resources": []string{up["ID"].(string)}, "Synchronous": true}, nil)

	commitReport := func(refs ...map[string]string) map[string]any {
		t.Helper()
		var job map[string]any
		o.Do(t, "POST", "/modalities/MOLAR/storage-commitment", map[string]any{"DicomInstances": refs}, &job)
		var rep map[string]any
		require.Eventually(t, func() bool {
			o.Do(t, "GET", "/storage-commitment/"+job["ID"].(string), nil, &rep)
			return rep["Status"] != "Pending"
		}, 30*time.Second, 100*time.Millisecond, "Orthanc got the report")
		t.Logf("report: %v", rep)
		return rep
	}
	stored := map[string]string{"SOPClassUID": uid.DigitalIntraOralXRayForPresentation, "SOPInstanceUID": in.SOPUID}

	// The report is a durable job, written before the N-ACTION is answered:
	// with the job queue stopped (a restart) it waits, and goes out when
	// the queue runs.
	var job map[string]any
	o.Do(t, "POST", "/modalities/MOLAR/storage-commitment", map[string]any{"DicomInstances": []map[string]string{stored}}, &job)
	var rep map[string]any
	time.Sleep(500 * time.Millisecond)
	o.Do(t, "GET", "/storage-commitment/"+job["ID"].(string), nil, &rep)
	require.Equal(t, "Pending", rep["Status"])
	require.NoError(t, ts.queue.Start(ctx))
	t.Cleanup(func() { _ = ts.queue.Stop(context.Background()) })
	require.Eventually(t, func() bool {
		o.Do(t, "GET", "/storage-commitment/"+job["ID"].(string), nil, &rep)
		return rep["Status"] == "Success"
	}, 30*time.Second, 100*time.Millisecond, "the queued report reached Orthanc")

	rep = commitReport(stored)
	require.Equal(t, "Success", rep["Status"])
	require.Len(t, rep["Success"], 1)

	rep = commitReport(stored,
		map[string]string{"SOPClassUID": uid.DigitalIntraOralXRayForPresentation, "SOPInstanceUID": dicomtest.Root + ".74.1.99"},
		map[string]string{"SOPClassUID": uid.DigitalXRayForPresentation, "SOPInstanceUID": in.SOPUID})
	require.Equal(t, "Failure", rep["Status"])
	require.Len(t, rep["Success"], 1)
	failures := map[string]float64{}
	for _, f := range rep["Failures"].([]any) {
		m := f.(map[string]any)
		failures[m["SOPClassUID"].(string)+" "+m["SOPInstanceUID"].(string)] = m["FailureReason"].(float64)
	}
	require.Equal(t, map[string]float64{
		uid.DigitalIntraOralXRayForPresentation + " " + dicomtest.Root + ".74.1.99": 0x0112,
		uid.DigitalXRayForPresentation + " " + in.SOPUID:                            0x0119,
	}, failures)
}
