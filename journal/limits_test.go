package journal

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The lists and short texts of an entry are bounded like its text: an
// X-ray description naming thousands of instances (each checked against
// the DICOM index) or a megabyte consent topic is refused.
func TestEntryListsAndShortTextsAreBounded(t *testing.T) {
	sks, err := LoadSKS()
	require.NoError(t, err)
	now := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	p := Patient{PersonID: 1, BirthDate: day(2016, 2, 1)}
	uids := make([]string, MaxItems+1)
	for i := range uids {
		uids[i] = "1.2.3." + strings.Repeat("1", 1+i%50)
	}
	x := NewEntry{Kind: KindXRay, CareTime: now.Add(-time.Hour), Content: Content{Text: "ok", XRay: &XRay{StudyUID: "1.2.3", InstanceUIDs: uids}}}
	require.ErrorIs(t, x.Validate(p, now, DefaultCatalogue(), sks), ErrInvalid)
	x.XRay.InstanceUIDs = uids[:3]
	require.NoError(t, x.Validate(p, now, DefaultCatalogue(), sks))

	c := NewEntry{Kind: KindConsent, CareTime: now.Add(-time.Hour), Content: Content{Consent: &Consent{Topic: strings.Repeat("x", MaxShortText+1), GivenBy: "custody_holder"}}}
	require.ErrorIs(t, c.Validate(p, now, DefaultCatalogue(), sks), ErrInvalid)
	f := NewEntry{Kind: KindExamination, CareTime: now.Add(-time.Hour), Content: Content{Findings: []Finding{{Tooth: 16, Condition: CondSound, Note: strings.Repeat("x", MaxShortText+1)}}}}
	require.ErrorIs(t, f.Validate(p, now, DefaultCatalogue(), sks), ErrInvalid)
	tr := NewEntry{Kind: KindTreatmentPlanned, CareTime: now.Add(-time.Hour), Content: Content{Treatments: []Treatment{{Tooth: 16, Surfaces: "O", Procedure: "FYLD", Note: strings.Repeat("x", MaxShortText+1)}}}}
	require.ErrorIs(t, tr.Validate(p, now, DefaultCatalogue(), sks), ErrInvalid)
}
