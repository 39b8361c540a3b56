package index_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func ptr[T any](v T) *T { return &v }

func record(tenant int64, sop string, body string) *index.Record {
	sum := sha256.Sum256([]byte(body))
	return &index.Record{
		TenantID: tenant, PatientID: "0101154321", CPR: "0101154321", PatientName: "Ørsted^Åse Sørine", BirthDate: "2015-01-01", Sex: "F",
		StudyInstanceUID: "1.2.3", StudyDate: "2024-01-15", StudyTime: "10:11:12", AccessionNumber: "A1", StudyDescription: "Bitewings",
		SeriesInstanceUID: "1.2.3.1", Modality: "IO", SeriesNumber: ptr(1),
		SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1.3", InstanceNumber: ptr(1),
		TransferSyntax: "1.2.840.10008.1.2.1", ObjectKey: "instances/" + sop + "/" + body, Size: int64(len(body)), SHA256: sum[:],
		SourceAE: "PANO1", ToothCodes: []string{"16", "17"}, Attrs: []byte(`{"00080060":{"vr":"CS","Value":["IO"]}}`),
	}
}

func setup(t *testing.T) (*pgtest.DB, int64, int64) {
	db := pgtest.Open(t, auth.Migrations(), index.Migrations())
	ctx := context.Background()
	ten, err := auth.CreateTenant(ctx, db.Admin, "0101", "Testkommune")
	require.NoError(t, err)
	cpr, err := auth.ParseCPR("010115-4321")
	require.NoError(t, err)
	var pid int64
	require.NoError(t, postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error {
		p, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: ten.ID, CPR: cpr, GivenName: "Aase Sørine", FamilyName: "Ørsted"})
		pid = p.ID
		return err
	}))
	return db, ten.ID, pid
}

func ingest(t *testing.T, db *pgtest.DB, tenant int64, rec *index.Record, pol index.DuplicatePolicy) index.Result {
	var r index.Result
	require.NoError(t, postgres.InTenant(context.Background(), db.App, tenant, func(tx pgx.Tx) error {
		var err error
		r, err = index.Ingest(context.Background(), tx, rec, pol)
		return err
	}))
	return r
}

func TestIngestReconcilesAndDeduplicates(t *testing.T) {
	db, ten, pid := setup(t)
	ctx := context.Background()

	// "Åse" in the image and "Aase" in the register agree (å = aa).
	r := ingest(t, db, ten, record(ten, "1.2.3.1.1", "a"), index.KeepFirst)
	require.Equal(t, index.OutcomeStored, r.Outcome)
	require.Equal(t, index.ReconMatched, r.ReconState)
	require.Equal(t, pid, r.PersonID)
	require.True(t, r.NewStudy)

	// Identical resend: nothing changes.
	r = ingest(t, db, ten, record(ten, "1.2.3.1.1", "a"), index.KeepFirst)
	require.Equal(t, index.OutcomeIdentical, r.Outcome)
	// Different bytes, keep-first: the first stays.
	r = ingest(t, db, ten, record(ten, "1.2.3.1.1", "b"), index.KeepFirst)
	require.Equal(t, index.OutcomeKeptFirst, r.Outcome)
	// overwrite-same-source from another AE: kept.
	other := record(ten, "1.2.3.1.1", "c")
	other.SourceAE = "OTHER"
	require.Equal(t, index.OutcomeKeptFirst, ingest(t, db, ten, other, index.OverwriteSameSource).Outcome)
	// overwrite-same-source from the same AE: replaced.
	r = ingest(t, db, ten, record(ten, "1.2.3.1.1", "d"), index.OverwriteSameSource)
	require.Equal(t, index.OutcomeOverwritten, r.Outcome)
	require.Equal(t, "instances/1.2.3.1.1/a", r.OldKey)
	r = ingest(t, db, ten, other, index.Overwrite)
	require.Equal(t, index.OutcomeOverwritten, r.Outcome)
	require.Equal(t, "instances/1.2.3.1.1/d", r.OldKey)
	// Another study or series under the same SOP Instance UID is a UID
	// collision, not a corrected image: never overwritten.
	for _, moved := range []func(*index.Record){
		func(r *index.Record) { r.StudyInstanceUID, r.SeriesInstanceUID = "1.2.9", "1.2.9.1" },
		func(r *index.Record) { r.SeriesInstanceUID = "1.2.3.9" },
	} {
		rec := record(ten, "1.2.3.1.1", "f")
		moved(rec)
		r = ingest(t, db, ten, rec, index.Overwrite)
		require.Equal(t, index.OutcomeKeptFirst, r.Outcome)
	}
	require.NoError(t, postgres.InTenant(ctx, db.App, ten, func(tx pgx.Tx) error {
		in, err := index.GetInstance(ctx, tx, "1.2.3.1.1")
		require.NoError(t, err)
		require.Equal(t, "instances/1.2.3.1.1/c", in.ObjectKey, "the stored object stays")
		require.Equal(t, "1.2.3", in.StudyInstanceUID)
		return nil
	}))

	// A second instance in a new series of the same study, another modality.
	rec2 := record(ten, "1.2.3.2.1", "e")
	rec2.SeriesInstanceUID, rec2.Modality = "1.2.3.2", "PX"
	r = ingest(t, db, ten, rec2, index.KeepFirst)
	require.False(t, r.NewStudy)
	require.Equal(t, pid, r.PersonID)

	require.NoError(t, postgres.InTenant(ctx, db.App, ten, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, "1.2.3")
		require.NoError(t, err)
		require.Equal(t, []string{"IO", "PX"}, st.Modalities)
		require.Equal(t, 2, st.NumSeries)
		require.Equal(t, 2, st.NumInstances)
		require.Equal(t, "10:11:12", st.StudyTime)
		require.Equal(t, time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC), st.StudyDate)
		require.Equal(t, "0101154321", st.Patient.PatientID)
		in, err := index.GetInstance(ctx, tx, "1.2.3.1.1")
		require.NoError(t, err)
		require.Equal(t, "instances/1.2.3.1.1/c", in.ObjectKey)
		require.Equal(t, "OTHER", in.SourceAE)
		require.Equal(t, []string{"16", "17"}, in.ToothCodes)
		require.Equal(t, pid, in.PersonID)
		studies, err := index.StudiesOfPerson(ctx, tx, pid)
		require.NoError(t, err)
		require.Len(t, studies, 1)
		teeth, err := index.InstancesWithTooth(ctx, tx, pid, "16")
		require.NoError(t, err)
		require.Len(t, teeth, 2)
		attrs, err := index.InstanceAttrs(ctx, tx, "1.2.3.1.1")
		require.NoError(t, err)
		require.JSONEq(t, `{"00080060":{"vr":"CS","Value":["IO"]}}`, string(attrs))
		list, err := index.InstancesOfStudy(ctx, tx, "1.2.3")
		require.NoError(t, err)
		require.Len(t, list, 2)
		return nil
	}))

	// The sweep sees keys across tenants without a tenant set.
	known, err := index.KnownObjectKeys(ctx, db.App, []string{"instances/1.2.3.1.1/c", "instances/1.2.3.1.1/a", "instances/1.2.3.2.1/e"})
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"instances/1.2.3.1.1/c": true, "instances/1.2.3.2.1/e": true}, known)
}

func TestIngestReconciliationStates(t *testing.T) {
	db, ten, _ := setup(t)
	for i, tc := range []struct {
		id, cpr, name, birth string
		want, note           string
	}{
		{"12345", "", "Ørsted^Åse", "", index.ReconUnmatched, "patient id is not a cpr number"},
		{"0202154321", "0202154321", "Ørsted^Åse", "", index.ReconUnmatched, "no person with this cpr number"},
		{"0101154321", "0101154321", "Orsted^Ase", "", index.ReconConflict, "name differs"}, // Ø is not O
		{"0101154321", "0101154321", "Ørsted^Åse", "2015-01-02", index.ReconConflict, "birth date differs"},
		{"010115-4321", "0101154321", "ØRSTED^AASE", "2015-01-01", index.ReconMatched, ""},
	} {
		rec := record(ten, fmt.Sprintf("9.%d.1.1", i), "x")
		rec.StudyInstanceUID, rec.SeriesInstanceUID = fmt.Sprintf("9.%d", i), fmt.Sprintf("9.%d.1", i)
		rec.PatientID, rec.CPR, rec.PatientName, rec.BirthDate = tc.id, tc.cpr, tc.name, tc.birth
		r := ingest(t, db, ten, rec, index.KeepFirst)
		require.Equal(t, tc.want, r.ReconState, "case %d", i)
		if tc.want != index.ReconMatched {
			require.Zero(t, r.PersonID)
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	db, ten, _ := setup(t)
	ctx := context.Background()
	other, err := auth.CreateTenant(ctx, db.Admin, "0202", "Anden kommune")
	require.NoError(t, err)
	ingest(t, db, ten, record(ten, "1.2.3.1.1", "a"), index.KeepFirst)
	// The same UIDs may exist in another tenant; neither sees the other.
	rec := record(other.ID, "1.2.3.1.1", "z")
	r := ingest(t, db, other.ID, rec, index.KeepFirst)
	require.Equal(t, index.OutcomeStored, r.Outcome)
	require.Equal(t, index.ReconUnmatched, r.ReconState) // the person is in the other tenant
	require.NoError(t, postgres.InTenant(ctx, db.App, other.ID, func(tx pgx.Tx) error {
		in, err := index.GetInstance(ctx, tx, "1.2.3.1.1")
		require.NoError(t, err)
		require.Equal(t, "instances/1.2.3.1.1/z", in.ObjectKey)
		return nil
	}))
	// Without a tenant nothing is visible, and writing into another tenant fails.
	_, err = index.GetStudy(ctx, db.App, "1.2.3")
	require.ErrorIs(t, err, index.ErrNotFound)
	err = postgres.InTenant(ctx, db.App, ten, func(tx pgx.Tx) error {
		_, err := index.Ingest(ctx, tx, record(other.ID, "5.5.5", "q"), index.KeepFirst)
		return err
	})
	require.Error(t, err)
}

func TestFuzzyKeyGoAndSQLAgree(t *testing.T) {
	db := pgtest.Open(t, auth.Migrations(), index.Migrations())
	for _, tc := range []struct{ in, want string }{
		{"Ørsted^Åse Sørine", "oersted aase soerine"},
		{"SØRENSEN^BØRGE", "soerensen boerge"},
		{"Sören", "soeren"},
		{"Ærø-Hansen^Jens  Peter^^^", "aeroe hansen jens peter"},
		{"Orsted", "orsted"},
		{"José María^Núñez", "jose maria nunez"},
		{"  ", ""},
		{"Ğ^Straße", "stra e"},
	} {
		require.Equal(t, tc.want, index.FuzzyKey(tc.in), tc.in)
		var got string
		require.NoError(t, db.App.QueryRow(context.Background(), `SELECT dicom.fuzzy_key($1)`, tc.in).Scan(&got))
		require.Equal(t, tc.want, got, "SQL %q", tc.in)
	}
	require.Equal(t, "Hansen^Jens", index.NormalizeName(" Hansen^Jens^^^ "))
}

func TestAETenant(t *testing.T) {
	db, ten, _ := setup(t)
	ctx := context.Background()
	require.NoError(t, index.AddAE(ctx, db.App, index.AE{Title: "PANO1", Host: "h", Port: 104}, false))
	a, err := index.GetAE(ctx, db.App, "PANO1")
	require.NoError(t, err)
	got, err := index.TenantOf(ctx, db.App, a)
	require.NoError(t, err)
	require.Equal(t, ten, got)
	other, err := auth.CreateTenant(ctx, db.Admin, "0202", "Anden")
	require.NoError(t, err)
	_, err = index.TenantOf(ctx, db.App, a)
	require.ErrorIs(t, err, index.ErrNoDefaultTenant)
	require.NoError(t, index.AddAE(ctx, db.App, index.AE{Title: "PANO1", Host: "h", Port: 104, TenantID: other.ID}, true))
	a, err = index.GetAE(ctx, db.App, "PANO1")
	require.NoError(t, err)
	got, err = index.TenantOf(ctx, db.App, a)
	require.NoError(t, err)
	require.Equal(t, other.ID, got)
}

func TestReconciliationLinkCorrectMerge(t *testing.T) {
	db, ten, pid := setup(t)
	ctx := context.Background()
	// An image under a non-CPR Patient ID, and one with a wrong birth date.
	a := record(ten, "7.1.1.1", "a")
	a.StudyInstanceUID, a.SeriesInstanceUID, a.PatientID, a.CPR = "7.1", "7.1.1", "LOCAL-17", ""
	b := record(ten, "7.2.1.1", "b")
	b.StudyInstanceUID, b.SeriesInstanceUID, b.BirthDate = "7.2", "7.2.1", "2015-02-02"
	c := record(ten, "7.3.1.1", "c")
	c.StudyInstanceUID, c.SeriesInstanceUID, c.PatientID, c.CPR = "7.3", "7.3.1", "LOCAL-18", ""
	ingest(t, db, ten, a, index.KeepFirst)
	ingest(t, db, ten, b, index.KeepFirst)
	ingest(t, db, ten, c, index.KeepFirst)
	require.NoError(t, postgres.InTenant(ctx, db.App, ten, func(tx pgx.Tx) error {
		list, err := index.ReconciliationList(ctx, tx, 0)
		require.NoError(t, err)
		require.Len(t, list, 3)
		byUID := map[string]index.Study{}
		for _, s := range list {
			byUID[s.StudyInstanceUID] = s
		}
		require.Equal(t, index.ReconConflict, byUID["7.2"].ReconState)
		require.Equal(t, "birth date differs", byUID["7.2"].ReconNote)

		// Link the conflicting study: it and its instances follow the person.
		st, err := index.Link(ctx, tx, byUID["7.2"].ID, pid, "user/1")
		require.NoError(t, err)
		require.Equal(t, index.ReconResolved, st.ReconState)
		require.Equal(t, pid, st.PersonID)
		in, err := index.GetInstance(ctx, tx, "7.2.1.1")
		require.NoError(t, err)
		require.Equal(t, pid, in.PersonID)

		// Correct the local Patient ID to the CPR number: matched again.
		st, err = index.Correct(ctx, tx, byUID["7.1"].ID, index.Correction{PatientID: "0101154321", CPR: "0101154321", BirthDate: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)}, "user/1")
		require.NoError(t, err)
		require.Equal(t, index.ReconResolved, st.ReconState)
		require.Equal(t, pid, st.PersonID)
		require.Equal(t, "0101154321", st.Patient.PatientID)

		// Merge the other local record into the CPR patient.
		n, err := index.Merge(ctx, tx, byUID["7.3"].PatientRef, st.PatientRef, "user/1")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		merged, err := index.GetStudy(ctx, tx, "7.3")
		require.NoError(t, err)
		require.Equal(t, pid, merged.PersonID)
		list, err = index.ReconciliationList(ctx, tx, 0)
		require.NoError(t, err)
		require.Empty(t, list)
		studies, err := index.StudiesOfPerson(ctx, tx, pid)
		require.NoError(t, err)
		require.Len(t, studies, 3)
		var logged int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM dicom.reconciliation WHERE actor = 'user/1'`).Scan(&logged))
		require.Equal(t, 3, logged)
		return nil
	}))
	// The history is append-only for the runtime role.
	_, err := db.App.Exec(ctx, `DELETE FROM dicom.reconciliation`)
	require.Error(t, err)
}

// A municipality's screens see and change only its own AEs and association
// log; a tenantless AE or log line is the default tenant's while there is
// one municipality, and nobody's once there are several.
func TestAEsOfOneMunicipality(t *testing.T) {
	db, ten, _ := setup(t)
	ctx := context.Background()
	titles := func(tenant int64) []string {
		list, err := index.ListAEsOf(ctx, db.App, tenant)
		require.NoError(t, err)
		var out []string
		for _, a := range list {
			out = append(out, a.Title)
		}
		return out
	}
	logged := func(tenant int64) []string {
		list, err := index.AssociationsOf(ctx, db.App, tenant, 10)
		require.NoError(t, err)
		var out []string
		for _, a := range list {
			out = append(out, a.Association)
		}
		return out
	}
	now := time.Now()
	require.NoError(t, index.AddAE(ctx, db.App, index.AE{Title: "SHARED", Host: "h", Port: 104}, false))
	require.NoError(t, index.LogAssociation(ctx, db.App, index.Association{Association: "rejected", CallingAE: "X", CalledAE: "MOLAR", Opened: now, Outcome: "rejected"}))
	require.Equal(t, []string{"SHARED"}, titles(ten))
	require.Equal(t, []string{"rejected"}, logged(ten))

	other, err := auth.CreateTenant(ctx, db.Admin, "0303", "Anden")
	require.NoError(t, err)
	require.Empty(t, titles(ten), "a tenantless AE is nobody's with two municipalities")
	require.Empty(t, logged(ten))
	_, err = index.GetAEOf(ctx, db.App, ten, "SHARED")
	require.ErrorIs(t, err, index.ErrNotFound)

	require.NoError(t, index.AddAEOf(ctx, db.App, index.AE{Title: "PANO_A", Host: "a", Port: 104, TenantID: ten}, false))
	require.NoError(t, index.AddAEOf(ctx, db.App, index.AE{Title: "PANO_B", Host: "b", Port: 104, TenantID: other.ID}, false))
	require.NoError(t, index.LogAssociation(ctx, db.App, index.Association{Association: "a1", CallingAE: "PANO_A", CalledAE: "MOLAR", Opened: now, Outcome: "released", TenantID: ten}))
	require.NoError(t, index.LogAssociation(ctx, db.App, index.Association{Association: "b1", CallingAE: "PANO_B", CalledAE: "MOLAR", Opened: now, Outcome: "released", TenantID: other.ID}))
	require.Equal(t, []string{"PANO_A"}, titles(ten))
	require.Equal(t, []string{"PANO_B"}, titles(other.ID))
	require.Equal(t, []string{"a1"}, logged(ten))
	require.Equal(t, []string{"b1"}, logged(other.ID))

	// A cannot take over, redirect or remove B's AE, with or without replace.
	for _, replace := range []bool{false, true} {
		err := index.AddAEOf(ctx, db.App, index.AE{Title: "PANO_B", Host: "attacker", Port: 104, Permissions: []string{"echo", "store"}, TenantID: ten}, replace)
		require.ErrorIs(t, err, index.ErrExists, "replace=%v", replace)
	}
	require.ErrorIs(t, index.RemoveAEOf(ctx, db.App, ten, "PANO_B"), index.ErrNotFound)
	_, err = index.GetAEOf(ctx, db.App, ten, "PANO_B")
	require.ErrorIs(t, err, index.ErrNotFound)
	b, err := index.GetAE(ctx, db.App, "PANO_B")
	require.NoError(t, err)
	require.Equal(t, other.ID, b.TenantID)
	require.Equal(t, "b", b.Host)

	// Its own AE it may change and remove.
	require.NoError(t, index.AddAEOf(ctx, db.App, index.AE{Title: "PANO_A", Host: "a2", Port: 105, TenantID: ten}, true))
	a, err := index.GetAEOf(ctx, db.App, ten, "PANO_A")
	require.NoError(t, err)
	require.Equal(t, "a2:105", a.Addr())
	require.NoError(t, index.RemoveAEOf(ctx, db.App, ten, "PANO_A"))
	require.ErrorIs(t, index.AddAEOf(ctx, db.App, index.AE{Title: "X", Host: "h", Port: 1}, false), index.ErrInvalid, "no municipality")
}
