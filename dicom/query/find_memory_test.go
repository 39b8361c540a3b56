package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/uid"
)

// A C-FIND is audited before its first response, so its answers are
// collected first; what waits in memory is the answers (the requested
// keys), not every match's stored attributes: 10,000 instances with large
// headers must not be held whole.
func TestFindHoldsAnswersNotStoredAttributes(t *testing.T) {
	attrs := map[string]any{"00181000": map[string]any{"vr": "LO", "Value": []string{"SN-1"}}}
	for i := 0; i < 24; i++ { // a vendor's long texts: ~96 KB of attributes
		attrs[fmt.Sprintf("0009%04X", 0x1000+i)] = map[string]any{"vr": "LT", "Value": []string{strings.Repeat(fmt.Sprint(i%10), 4000)}}
	}
	raw, err := json.Marshal(attrs)
	require.NoError(t, err)
	f := newFixture(t, index.Record{PatientID: "P1", StudyInstanceUID: "2.25.1", Attrs: raw})
	const n = 800
	_, err = f.db.Admin.Exec(context.Background(), `INSERT INTO dicom.instance (tenant_id, series_ref, study_ref, sop_instance_uid, sop_class_uid,
		transfer_syntax, object_key, size, sha256, attrs)
		SELECT tenant_id, series_ref, study_ref, sop_instance_uid || '.' || g, sop_class_uid, transfer_syntax, object_key || '.' || g, size, sha256, attrs
		  FROM dicom.instance, generate_series(1, $1) g`, n-1)
	require.NoError(t, err)

	s := &query.Service{DB: f.db.App, Tenant: func(*dimse.AssociationInfo) (int64, error) { return f.tenant, nil }}
	id := header.NewDataset()
	id.SetString(query.TagQueryRetrieveLevel, "CS", "IMAGE")
	id.SetString(header.TagStudyInstanceUID, "UI", "2.25.1")
	id.SetString(header.TagSeriesInstanceUID, "UI", "")
	id.SetString(header.TagSOPInstanceUID, "UI", "")
	id.SetString(header.NewTag(0x0018, 0x1000), "LO", "") // from the stored attributes
	b, err := id.Encode(uid.ExplicitVRLittleEndian)
	require.NoError(t, err)
	req := &dimse.QueryRequest{Command: dimse.CFindRQ, SOPClassUID: uid.StudyRootQueryRetrieveFind, TransferSyntax: uid.ExplicitVRLittleEndian,
		Identifier: b, PendingStatus: dimse.StatusPending}
	var before, held runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got := 0
	st, err := s.Find(context.Background(), req, func(d *header.Dataset) error {
		if got == 0 {
			runtime.GC()
			runtime.ReadMemStats(&held)
		}
		got++
		require.Equal(t, "SN-1", d.Get(header.NewTag(0x0018, 0x1000)))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	require.Equal(t, n, got)
	grown := int64(held.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap held while answering %d matches: %d KiB", n, grown>>10)
	require.Less(t, grown, int64(16<<20), "the matches' stored attributes (%d × ~96 KB) are not held", n)
}
