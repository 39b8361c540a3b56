package query_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// fixture is an index of a few studies, one series and instance each.
type fixture struct {
	db     *pgtest.DB
	tenant int64
}

func newFixture(t *testing.T, recs ...index.Record) *fixture {
	t.Helper()
	db := pgtest.Open(t, auth.Migrations(), audit.Migrations(), index.Migrations())
	ctx := context.Background()
	ten, err := auth.CreateTenant(ctx, db.Admin, "0101", "T")
	require.NoError(t, err)
	for i := range recs {
		rec := recs[i]
		rec.TenantID = ten.ID
		if rec.SeriesInstanceUID == "" {
			rec.SeriesInstanceUID = rec.StudyInstanceUID + ".1"
		}
		if rec.SOPInstanceUID == "" {
			rec.SOPInstanceUID = rec.SeriesInstanceUID + ".1"
		}
		if rec.SOPClassUID == "" {
			rec.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.3"
		}
		if rec.Modality == "" {
			rec.Modality = "IO"
		}
		rec.TransferSyntax = "1.2.840.10008.1.2.1"
		rec.ObjectKey = "k/" + rec.SOPInstanceUID
		sum := sha256.Sum256([]byte(rec.SOPInstanceUID))
		rec.SHA256 = sum[:]
		if rec.Attrs == nil {
			rec.Attrs = []byte(`{}`)
		}
		require.NoError(t, postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error {
			_, err := index.Ingest(ctx, tx, &rec, index.KeepFirst)
			return err
		}))
	}
	return &fixture{db: db, tenant: ten.ID}
}

// run returns the values of tag of every match of q.
func (f *fixture) run(t *testing.T, q *query.Query, tag header.Tag) ([]string, error) {
	t.Helper()
	ctx := context.Background()
	var out []string
	err := postgres.InTenant(ctx, f.db.App, f.tenant, func(tx pgx.Tx) error {
		return q.Run(ctx, tx, func(m *query.Match) error { out = append(out, m.Values[tag]); return nil })
	})
	return out, err
}

func studies(n int, fn func(i int, r *index.Record)) []index.Record {
	out := make([]index.Record, n)
	for i := range out {
		out[i] = index.Record{PatientID: fmt.Sprint("P", i), StudyInstanceUID: fmt.Sprint("2.25.", i+1)}
		fn(i, &out[i])
	}
	return out
}

// A comma is part of a text value: only UID (and code string, number,
// date) lists are comma separated (QIDO-RS), text lists use backslashes.
func TestMatchTextWithComma(t *testing.T) {
	descs := []string{"Bitewing, left", "Bitewing", "left", "Panoramic"}
	f := newFixture(t, studies(len(descs), func(i int, r *index.Record) {
		r.StudyDescription = descs[i]
		r.AccessionNumber = fmt.Sprint("A,", i)
	})...)
	tagDesc := header.NewTag(0x0008, 0x1030)
	for _, tc := range []struct {
		tag   header.Tag
		value string
		want  []string
	}{
		{tagDesc, "Bitewing, left", []string{"Bitewing, left"}},
		{tagDesc, "bitewing, *", []string{"Bitewing, left"}},
		{tagDesc, `Bitewing, left\Panoramic`, []string{"Bitewing, left", "Panoramic"}},
		{tagDesc, `left\bitewing`, []string{"Bitewing", "left"}},
		{header.TagAccessionNumber, "A,2", []string{"left"}},
		{header.TagAccessionNumber, `A,1\A,3`, []string{"Bitewing", "Panoramic"}},
		{header.TagStudyInstanceUID, "2.25.1,2.25.4", []string{"Bitewing, left", "Panoramic"}},
	} {
		got, err := f.run(t, &query.Query{Level: query.Study, Keys: []query.Key{{Tag: tc.tag, Value: tc.value}, {Tag: tagDesc}}}, tagDesc)
		require.NoError(t, err, tc.value)
		require.Equal(t, tc.want, got, tc.value)
	}
}

// Keys of a lower level than the query's are ignored at every level
// (PS3.4 C.4.1.2.1), the study's value lists too: at PATIENT level
// Modalities in Study was matched against a table the query did not join.
func TestLowerLevelKeysIgnored(t *testing.T) {
	f := newFixture(t, studies(2, func(i int, r *index.Record) { r.StudyDate = "2024-01-02" })...)
	for _, k := range []query.Key{
		{Tag: query.TagModalitiesInStudy, Value: "IO"},
		{Tag: query.TagModalitiesInStudy, Value: "PX*"},
		{Tag: query.TagSOPClassesInStudy, Value: "1.2.3"},
		{Tag: header.TagStudyDate, Value: "20200101"},
		{Tag: header.TagModality, Value: "PX"},
	} {
		got, err := f.run(t, &query.Query{Level: query.Patient, Keys: []query.Key{k, {Tag: header.TagPatientID}}}, header.TagPatientID)
		require.NoError(t, err, k.Tag.String())
		require.Equal(t, []string{"P0", "P1"}, got, k.Tag.String())
	}
}

// At the IMAGE level attributes without a column are matched in the stored
// attributes with the same rules as columns: wildcards, value lists, any
// value of a multi-valued attribute, person names case-insensitive, date
// ranges. Keys that cannot be matched are flagged with FF01 pendings.
func TestMatchStoredAttributes(t *testing.T) {
	attrs := []string{
		`{"00080070":{"vr":"LO","Value":["Planmeca"]},"00080008":{"vr":"CS","Value":["ORIGINAL","PRIMARY"]},` +
			`"00081050":{"vr":"PN","Value":[{"Alphabetic":"Ørsted^Åse"}]},"00080022":{"vr":"DA","Value":["20240105"]}}`,
		`{"00080070":{"vr":"LO","Value":["Sirona"]},"00080008":{"vr":"CS","Value":["DERIVED","SECONDARY"]},` +
			`"00081050":{"vr":"PN","Value":[{"Alphabetic":"Hansen^Jens"}]},"00080022":{"vr":"DA","Value":["20240301"]}}`,
		`{"00080070":{"vr":"LO","Value":["50%_x"]}}`,
	}
	f := newFixture(t, studies(len(attrs), func(i int, r *index.Record) { r.Attrs = []byte(attrs[i]) })...)
	manufacturer, imageType := header.NewTag(0x0008, 0x0070), header.NewTag(0x0008, 0x0008)
	performing, acqDate := header.NewTag(0x0008, 0x1050), header.NewTag(0x0008, 0x0022)
	for _, tc := range []struct {
		tag   header.Tag
		value string
		want  []string
	}{
		{manufacturer, "Planmeca", []string{"P0"}},
		{manufacturer, "Plan*", []string{"P0"}},
		{manufacturer, "?irona", []string{"P1"}},
		{manufacturer, `Sirona\Planmeca`, []string{"P0", "P1"}},
		{manufacturer, "50%*", []string{"P2"}},
		{manufacturer, "5_*", nil},
		{imageType, "PRIMARY", []string{"P0"}},
		{imageType, `SECONDARY\OTHER`, []string{"P1"}},
		{performing, "ørsted*", []string{"P0"}},
		{performing, "HANSEN^JENS", []string{"P1"}},
		{acqDate, "20240101-20240131", []string{"P0"}},
		{acqDate, "20240201-", []string{"P1"}},
		{acqDate, "20240301", []string{"P1"}},
	} {
		q := &query.Query{Level: query.Image, Keys: []query.Key{{Tag: tc.tag, Value: tc.value}, {Tag: header.TagPatientID}}}
		got, err := f.run(t, q, header.TagPatientID)
		require.NoError(t, err, tc.value)
		require.Equal(t, tc.want, got, tc.value)
	}

	s := &query.Service{DB: f.db.App, Tenant: func(*dimse.AssociationInfo) (int64, error) { return f.tenant, nil }}
	item := header.NewDataset()
	item.SetString(header.NewTag(0x0008, 0x0100), "SH", "T-11170")
	for _, tc := range []struct {
		name    string
		level   string
		set     func(d *header.Dataset)
		matches int
		pending dimse.Status
	}{
		{"stored attribute wildcard", "IMAGE", func(d *header.Dataset) { d.SetString(manufacturer, "LO", "Plan*") }, 1, dimse.StatusPending},
		{"unsupported sequence", "IMAGE", func(d *header.Dataset) { d.SetSequence(header.NewTag(0x0008, 0x2218), item) }, 3, dimse.StatusPendingOptionalKeysMissing},
		{"count", "STUDY", func(d *header.Dataset) { d.SetString(query.TagNumStudyInstances, "IS", "2") }, 3, dimse.StatusPendingOptionalKeysMissing},
		{"unindexed study key", "STUDY", func(d *header.Dataset) { d.SetString(manufacturer, "LO", "Plan*") }, 3, dimse.StatusPendingOptionalKeysMissing},
		{"universal", "STUDY", func(d *header.Dataset) { d.SetString(manufacturer, "LO", "*") }, 3, dimse.StatusPending},
	} {
		id := header.NewDataset()
		id.SetString(header.TagQueryRetrieveLevel, "CS", tc.level)
		id.SetString(header.TagStudyInstanceUID, "UI", "")
		tc.set(id)
		rs, st, pending, err := findPending(t, s, uid.StudyRootQueryRetrieveFind, id)
		require.NoError(t, err, tc.name)
		require.Equal(t, dimse.StatusSuccess, st, tc.name)
		require.Len(t, rs, tc.matches, tc.name)
		require.Equal(t, tc.pending, pending, tc.name)
	}
}
