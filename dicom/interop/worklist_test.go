package interop

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/worklist"
)

type fakeSource struct {
	items []worklist.Item
	got   []worklist.Query
}

func (f *fakeSource) Items(ctx context.Context, q worklist.Query) ([]worklist.Item, error) {
	f.got = append(f.got, q)
	var out []worklist.Item
	for _, it := range f.items {
		if (q.StationAETitle == "" || q.StationAETitle == it.ScheduledStationAETitle) && (q.From.IsZero() || !it.ScheduledStart.Before(q.From)) &&
			(q.To.IsZero() || it.ScheduledStart.Before(q.To)) {
			out = append(out, it)
		}
	}
	return out, nil
}

// TestFindscuWorklist: findscu -W gets the scheduled steps of its station
// and day from the worklist source, in the AE's tenant only.
func TestFindscuWorklist(t *testing.T) {
	m := startMolar(t, false, index.KeepFirst)
	m.addAE(t, "FINDSCU", "127.0.0.1:104", "find")
	cph, _ := time.LoadLocation("Europe/Copenhagen")
	src := &fakeSource{items: []worklist.Item{
		{TenantID: m.tenant, PatientID: "0101154321", PatientFamily: "Ørsted", PatientGiven: "Åse", PatientBirthDate: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC),
			PatientSex: "F", AccessionNumber: "ACC-1", StudyInstanceUID: "2.25.1", ScheduledStepID: "SPS1", ScheduledStationAETitle: "FINDSCU",
			ScheduledStart: time.Date(2024, 5, 2, 9, 30, 0, 0, cph), Modality: "IO", ScheduledStepDescription: "Bitewings"},
		{TenantID: m.tenant, PatientID: "0202164321", PatientFamily: "Hansen", PatientGiven: "Jens", AccessionNumber: "ACC-2",
			ScheduledStationAETitle: "PANO", ScheduledStart: time.Date(2024, 5, 2, 10, 0, 0, 0, cph), Modality: "PX"},
		{TenantID: m.tenant + 1000, PatientID: "0303174321", PatientFamily: "Other", AccessionNumber: "ACC-3",
			ScheduledStationAETitle: "FINDSCU", ScheduledStart: time.Date(2024, 5, 2, 11, 0, 0, 0, cph), Modality: "IO"},
	}}
	m.srv.Find.(*query.Service).Worklist = func() worklist.Source { return src }

	rs := findscu(t, m.addr, "-W", "-k", "PatientName", "-k", "PatientID", "-k", "AccessionNumber", "-k", "StudyInstanceUID",
		"-k", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=FINDSCU",
		"-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240502",
		"-k", "ScheduledProcedureStepSequence[0].Modality", "-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime")
	require.Len(t, rs, 1)
	assert.Equal(t, "ACC-1", rs[0].Get(header.TagAccessionNumber))
	assert.Equal(t, "Ørsted^Åse", rs[0].Get(header.TagPatientName))
	sps := rs[0].Sequence(header.NewTag(0x0040, 0x0100))
	require.Len(t, sps, 1)
	assert.Equal(t, "IO", sps[0].Get(header.TagModality))
	assert.Equal(t, "093000", sps[0].Get(header.NewTag(0x0040, 0x0003)))
	require.NotEmpty(t, src.got)
	assert.Equal(t, "FINDSCU", src.got[0].StationAETitle)
	assert.Equal(t, time.Date(2024, 5, 2, 0, 0, 0, 0, cph), src.got[0].From)
}
