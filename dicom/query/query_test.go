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
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestMatcher(t *testing.T) {
	db := pgtest.Open(t, auth.Migrations(), audit.Migrations(), index.Migrations())
	ctx := context.Background()
	ten, err := auth.CreateTenant(ctx, db.Admin, "0101", "T")
	require.NoError(t, err)
	names := []string{"Søren^Ærø", "Sören^Aeroe", "Soren^Aero", "Hansen^Jens Peter", "Aagaard^Åse"}
	for i, n := range names {
		sum := sha256.Sum256([]byte(n))
		rec := &index.Record{TenantID: ten.ID, PatientID: fmt.Sprint("P", i), PatientName: n, StudyInstanceUID: fmt.Sprint("1.", i),
			StudyDate: fmt.Sprintf("2024-01-%02d", i+1), SeriesInstanceUID: fmt.Sprint("1.", i, ".1"), Modality: "IO",
			SOPInstanceUID: fmt.Sprint("1.", i, ".1.1"), SOPClassUID: "1.2.3", TransferSyntax: "1.2.840.10008.1.2.1",
			ObjectKey: fmt.Sprint("k/", i), SHA256: sum[:], Attrs: []byte(`{"00080070":{"vr":"LO","Value":["Vendor ` + fmt.Sprint(i) + `"]}}`)}
		require.NoError(t, postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error { _, err := index.Ingest(ctx, tx, rec, index.KeepFirst); return err }))
	}
	run := func(q *query.Query) []string {
		var out []string
		require.NoError(t, postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error {
			return q.Run(ctx, tx, func(m *query.Match) error { out = append(out, m.Values[header.TagPatientID]); return nil })
		}))
		return out
	}
	study := func(fuzzy bool, keys ...query.Key) *query.Query {
		return &query.Query{Level: query.Study, Fuzzy: fuzzy, Keys: append(keys, query.Key{Tag: header.TagPatientID})}
	}
	pn := func(v string) query.Key { return query.Key{Tag: header.TagPatientName, Value: v} }

	// Case-insensitive, wildcards; Ø is not O.
	require.Equal(t, []string{"P0"}, run(study(false, pn("SØREN*"))))
	require.Equal(t, []string{"P2"}, run(study(false, pn("soren^aer?"))))
	// Fuzzy: ø = oe = ö, å = aa, any word order, prefixes.
	require.Equal(t, []string{"P0", "P1"}, run(study(true, pn("Soeren"))))
	require.Equal(t, []string{"P0", "P1"}, run(study(true, pn("aeroe søren"))))
	require.Equal(t, []string{"P4"}, run(study(true, pn("Åse Aagaard"))))
	require.Equal(t, []string{"P3"}, run(study(true, pn("jens hans"))))
	// Date range, UID list, universal, limit/offset.
	require.Equal(t, []string{"P1", "P2"}, run(study(false, query.Key{Tag: header.TagStudyDate, Value: "20240102-20240103"})))
	require.Equal(t, []string{"P0", "P3"}, run(study(false, query.Key{Tag: header.TagStudyInstanceUID, Value: `1.0\1.3`})))
	q := study(false, pn(""))
	q.Limit, q.Offset = 2, 1
	require.Equal(t, []string{"P1", "P2"}, run(q))
	// Bad values are errors, not empty results.
	err = postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error {
		return study(false, query.Key{Tag: header.TagStudyDate, Value: "2024xx01"}).Run(ctx, tx, func(*query.Match) error { return nil })
	})
	require.ErrorIs(t, err, query.ErrInvalid)
	// Attributes without a column come from the stored attributes.
	var resp *header.Dataset
	require.NoError(t, postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error {
		q := &query.Query{Level: query.Image, Keys: []query.Key{{Tag: header.NewTag(0x0008, 0x0070), Value: "Vendor 3"}, {Tag: header.TagSOPInstanceUID}}}
		return q.Run(ctx, tx, func(m *query.Match) error { resp = q.Response(m, query.UTF8, "MOLAR"); return nil })
	}))
	require.NotNil(t, resp)
	require.Equal(t, "1.3.1.1", resp.UID(header.TagSOPInstanceUID))
	require.Equal(t, "Vendor 3", resp.Get(header.NewTag(0x0008, 0x0070)))
}

// A C-MOVE destination must be an AE of the caller's municipality.
func TestMoveDestinationOfCallersMunicipality(t *testing.T) {
	db := pgtest.Open(t, auth.Migrations(), audit.Migrations(), index.Migrations())
	ctx := context.Background()
	a, err := auth.CreateTenant(ctx, db.Admin, "0101", "A")
	require.NoError(t, err)
	b, err := auth.CreateTenant(ctx, db.Admin, "0202", "B")
	require.NoError(t, err)
	require.NoError(t, index.AddAE(ctx, db.App, index.AE{Title: "VIEW_A", Host: "10.0.0.1", Port: 104, TenantID: a.ID}, false))
	require.NoError(t, index.AddAE(ctx, db.App, index.AE{Title: "VIEW_B", Host: "10.0.0.2", Port: 104, TenantID: b.ID}, false))
	s := &query.Service{DB: db.App, Tenant: func(*dimse.AssociationInfo) (int64, error) { return a.ID, nil }}
	for _, tc := range []struct {
		title string
		addr  string
		err   error
	}{
		{"VIEW_A", "10.0.0.1:104", nil},
		{" VIEW_A ", "10.0.0.1:104", nil},
		{"VIEW_B", "", dimse.ErrUnknownDestination},
		{"NOBODY", "", dimse.ErrUnknownDestination},
	} {
		d, err := s.Destination(ctx, &dimse.QueryRequest{}, tc.title)
		if tc.err != nil {
			require.ErrorIs(t, err, tc.err, tc.title)
			continue
		}
		require.NoError(t, err, tc.title)
		require.Equal(t, tc.addr, d.Addr)
	}
}
