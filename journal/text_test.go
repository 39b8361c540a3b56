package journal_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/journal"
)

// Text with a NUL character or invalid UTF-8 (PostgreSQL stores neither)
// is invalid input (a 400 with a message), not a database error (a 500),
// wherever the journal takes free text; nothing is written.
func TestNULAndInvalidUTF8AreInvalidInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	note := func(text string) journal.NewEntry {
		return journal.NewEntry{Kind: journal.KindNote, CareTime: e.now.Add(-time.Minute), Content: journal.Content{Text: text}}
	}
	orig, err := e.svc.Create(ctx, e.dentistA, e.child, note("ok"))
	require.NoError(t, err)
	_, err = e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindTreatmentPlanned, CareTime: e.now.Add(-time.Minute),
		Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 16, Surfaces: "O", Procedure: "FYLD"}}}})
	require.NoError(t, err)
	pl, err := e.svc.Plan(ctx, e.dentistA, e.child)
	require.NoError(t, err)
	require.NotNil(t, pl)
	before := e.snapshot()
	for _, bad := range []string{"a\x00b", "a\xffb"} {
		_, err := e.svc.Create(ctx, e.dentistA, e.child, note(bad))
		require.ErrorIs(t, err, journal.ErrInvalid, "note %q", bad)
		_, err = e.svc.Create(ctx, e.dentistA, e.child, e.exam(journal.Finding{Tooth: 16, Condition: journal.CondSound, Note: bad}))
		require.ErrorIs(t, err, journal.ErrInvalid, "finding note %q", bad)
		_, err = e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindTreatmentPlanned, CareTime: e.now.Add(-time.Minute),
			Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 26, Surfaces: "O", Procedure: "FYLD", Note: bad}}}})
		require.ErrorIs(t, err, journal.ErrInvalid, "plan item note %q", bad)
		_, err = e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindConsent, CareTime: e.now.Add(-time.Minute),
			Content: journal.Content{Consent: &journal.Consent{Topic: bad, GivenBy: "custody_holder"}}})
		require.ErrorIs(t, err, journal.ErrInvalid, "consent topic %q", bad)
		_, err = e.svc.Correct(ctx, e.dentistA, e.child, orig.ID, note("rettet"), bad)
		require.ErrorIs(t, err, journal.ErrInvalid, "reason %q", bad)
		err = e.svc.SaveProfile(ctx, e.dentistA, e.child, journal.Profile{Allergies: bad})
		require.ErrorIs(t, err, journal.ErrInvalid, "profile %q", bad)
		err = e.svc.SetItemStatus(ctx, e.dentistA, e.child, pl.Items[0].ID, journal.ItemCancelled, bad)
		require.ErrorIs(t, err, journal.ErrInvalid, "item note %q", bad)
		_, err = e.svc.Search(ctx, e.dentistA, "Barn "+bad)
		require.ErrorIs(t, err, journal.ErrInvalid, "search %q", bad)
		_, err = e.svc.ParentInformation(ctx, e.parentP, e.child, "", bad)
		require.ErrorIs(t, err, journal.ErrInvalid, "parent information %q", bad)
	}
	require.Equal(t, before, e.snapshot())
}

// Families see signed entries only: a treatment planned in an unsigned
// draft is neither among the open findings nor counted in the plan's
// progress until it is signed.
func TestFamilyRecordHidesUnsignedPlannedTreatments(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	exam := e.exam(journal.Finding{Tooth: 16, Surfaces: "O", Condition: journal.CondCaries})
	exam.Sign = true
	_, err := e.svc.Create(ctx, e.dentistA, e.child, exam)
	require.NoError(t, err)
	draft, err := e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindTreatmentPlanned, CareTime: e.now.Add(-30 * time.Minute),
		Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 16, Surfaces: "O", Procedure: "FYLD"}, {Tooth: 21, Procedure: "KONTROL"}}}})
	require.NoError(t, err)
	fr, err := e.svc.FamilyRecord(ctx, e.parentP, e.child, "da")
	require.NoError(t, err)
	require.Equal(t, []string{"øverste højre 6-års tand (16): caries på tyggefladen"}, fr.Findings)
	require.Zero(t, fr.PlanTotal)

	_, err = e.svc.Sign(ctx, e.dentistA, e.child, draft.ID)
	require.NoError(t, err)
	fr, err = e.svc.FamilyRecord(ctx, e.parentP, e.child, "da")
	require.NoError(t, err)
	require.Len(t, fr.Findings, 2)
	require.Contains(t, fr.Findings[0], "planlagt: fyldning")
	require.Equal(t, 2, fr.PlanTotal)
}

// Consent follows the Danish Health Act §17 (DOMAIN.md "Custody"): under
// 15 the custody holders consent, from 15 the patient, on the Danish date
// of care.
func TestConsentGivenByTheRightPersonForTheAge(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	consent := func(by string) journal.NewEntry {
		return journal.NewEntry{Kind: journal.KindConsent, CareTime: e.now.Add(-time.Minute),
			Content: journal.Content{Consent: &journal.Consent{Topic: "Røntgen", Given: true, GivenBy: by}}}
	}
	_, err := e.svc.Create(ctx, e.dentistA, e.teen, consent("custody_holder"))
	require.ErrorIs(t, err, journal.ErrInvalid, "a 16-year-old consents herself")
	_, err = e.svc.Create(ctx, e.dentistA, e.teen, consent("patient"))
	require.NoError(t, err)
	_, err = e.svc.Create(ctx, e.dentistA, e.child, consent("patient"))
	require.ErrorIs(t, err, journal.ErrInvalid, "for a 9-year-old the custody holders consent")
	_, err = e.svc.Create(ctx, e.dentistA, e.child, consent("custody_holder"))
	require.NoError(t, err)
	// The new-entry form starts at the one who decides.
	by, err := e.svc.ConsentGiver(ctx, e.dentistA, e.child)
	require.NoError(t, err)
	require.Equal(t, "custody_holder", by)
	by, err = e.svc.ConsentGiver(ctx, e.dentistA, e.teen)
	require.NoError(t, err)
	require.Equal(t, "patient", by)
}

// TestProfileSavedOverAChangedOneIsRefused: a save based on the version the
// form showed is refused when the profile changed meanwhile (a colleague's
// save), instead of putting the old values back; saves without a base are
// not checked (API clients that send none).
func TestProfileSavedOverAChangedOneIsRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	zero := int64(0)
	require.NoError(t, e.svc.SaveProfile(ctx, e.dentistA, e.child, journal.Profile{Allergies: "Penicillin", BasedOn: &zero}))
	ov, err := e.svc.Overview(ctx, e.dentistA, e.child, time.Time{})
	require.NoError(t, err)
	v := ov.Profile.Version
	require.NotZero(t, v)
	err = e.svc.SaveProfile(ctx, e.dentistA, e.child, journal.Profile{Allergies: "x", BasedOn: &zero})
	require.ErrorIs(t, err, journal.ErrConflict, "a form opened before the first save")

	require.NoError(t, e.svc.SaveProfile(ctx, e.dentistA, e.child, journal.Profile{Allergies: "Penicillin, latex", BasedOn: &v}))
	err = e.svc.SaveProfile(ctx, e.dentistA, e.child, journal.Profile{Allergies: "Penicillin", Risk: journal.RiskHigh, BasedOn: &v})
	require.ErrorIs(t, err, journal.ErrConflict, "the colleague's save came first")
	ov, err = e.svc.Overview(ctx, e.dentistA, e.child, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "Penicillin, latex", ov.Profile.Allergies)
	require.NoError(t, e.svc.SaveProfile(ctx, e.dentistA, e.child, journal.Profile{Allergies: "Ingen"}), "no base: not checked")
}

// indexImages stands in for the DICOM index: one person's studies.
type indexImages struct {
	person int64
	images []journal.Image
}

func (ii indexImages) ImagesForPerson(_ context.Context, _, person int64) ([]journal.Image, error) {
	if person != ii.person {
		return nil, nil
	}
	return ii.images, nil
}

func (ii indexImages) ImagesForTooth(context.Context, int64, int64, journal.Tooth) ([]journal.Image, error) {
	return nil, nil
}

// TestXRayWorklistFollowsCorrections: a study of the DICOM index leaves the
// worklist when a description names it, and comes back when that
// description is corrected to name another study.
func TestXRayWorklistFollowsCorrections(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := "1.2.826.0.1.3680043.2.7", "1.2.826.0.1.3680043.2.8"
	e.svc.Images = indexImages{e.child, []journal.Image{{StudyUID: a, Modality: "IO", Taken: e.now.Add(-2 * time.Hour)}, {StudyUID: b, Modality: "PX", Taken: e.now.Add(-time.Hour)}}}
	studiesOf := func() []string {
		wl, err := e.svc.XRayWorklist(ctx, e.dentistA, e.clinicA)
		require.NoError(t, err)
		var out []string
		for _, it := range wl {
			if it.Person.ID == e.child {
				out = append(out, it.Link.StudyUID)
			}
		}
		return out
	}
	require.Equal(t, []string{a, b}, studiesOf())
	d, err := e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindXRay, CareTime: e.now.Add(-time.Minute),
		Content: journal.Content{Text: "Ingen caries.", XRay: &journal.XRay{StudyUID: a}}})
	require.NoError(t, err)
	require.Equal(t, []string{b}, studiesOf())
	_, err = e.svc.Correct(ctx, e.dentistA, e.child, d.ID, journal.NewEntry{Kind: journal.KindXRay, CareTime: e.now.Add(-time.Minute),
		Content: journal.Content{Text: "Ingen caries.", XRay: &journal.XRay{StudyUID: b}}}, "Forkert undersøgelse")
	require.NoError(t, err)
	require.Equal(t, []string{a}, studiesOf(), "the corrected description names the panoramic, not the bitewing")
}
