package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/scp"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// instances is the index size of the scale benchmarks (MOLAR_BENCH_INSTANCES,
// default 1,000,000: 100,000 studies of 10 instances, 20,000 patients).
func instances() int {
	if n, err := strconv.Atoi(os.Getenv("MOLAR_BENCH_INSTANCES")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// fill generates an index of n instances with SQL (FillIndex).
func fill(b *testing.B, db *pgtest.DB, tenant int64, n int) {
	start := time.Now()
	studies, patients, err := FillIndex(context.Background(), db.Admin, tenant, n)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "index of %d instances (%d studies, %d patients) generated in %s\n", n, studies, patients, time.Since(start).Round(time.Second))
}

// BenchmarkLargeIndex builds the large index once, then runs the study
// searches and the ingest against it.
func BenchmarkLargeIndex(b *testing.B) {
	db := pgtest.Open(b, auth.Migrations(), audit.Migrations(), index.Migrations())
	ten, err := auth.CreateTenant(context.Background(), db.Admin, "0101", "Bench")
	if err != nil {
		b.Fatal(err)
	}
	fill(b, db, ten.ID, instances())
	b.Run("find", func(b *testing.B) { findStudy(b, db, ten.ID) })
	b.Run("ingest", func(b *testing.B) { ingestRun(b, db, ten.ID) })
}

// BenchmarkIngestEmptyIndex is the baseline of BenchmarkLargeIndex/ingest.
func BenchmarkIngestEmptyIndex(b *testing.B) {
	db := pgtest.Open(b, auth.Migrations(), audit.Migrations(), index.Migrations())
	ten, err := auth.CreateTenant(context.Background(), db.Admin, "0101", "Bench")
	if err != nil {
		b.Fatal(err)
	}
	ingestRun(b, db, ten.ID)
}

// findStudy runs typical study searches (C-FIND / QIDO) through the query
// service and reports p95.
func findStudy(b *testing.B, db *pgtest.DB, tenant int64) {
	svc := &query.Service{DB: db.App, Tenant: func(*dimse.AssociationInfo) (int64, error) { return tenant, nil }}
	queries := []struct {
		name string
		keys map[header.Tag]string
	}{
		{"patient-id", map[header.Tag]string{header.TagPatientID: "P123"}},
		{"name-prefix", map[header.Tag]string{header.TagPatientName: "family123^given123*"}},
		{"date-range+modality", map[header.Tag]string{header.TagStudyDate: "20200301-20200303", query.TagModalitiesInStudy: "PX"}},
		{"accession", map[header.Tag]string{header.TagAccessionNumber: "A1234"}},
		{"study-uid", map[header.Tag]string{header.TagStudyInstanceUID: "2.25.9.777"}},
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			id := header.NewDataset()
			id.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
			for _, t := range []header.Tag{header.TagPatientName, header.TagPatientID, header.TagStudyDate, header.TagStudyInstanceUID, query.TagNumStudyInstances, query.TagModalitiesInStudy} {
				id.SetString(t, header.DictionaryVR(t), "")
			}
			for t, v := range q.keys {
				id.SetString(t, header.DictionaryVR(t), v)
			}
			raw, err := id.Encode("1.2.840.10008.1.2.1")
			if err != nil {
				b.Fatal(err)
			}
			req := &dimse.QueryRequest{Assoc: &dimse.AssociationInfo{Value: scp.Caller{}}, SOPClassUID: "1.2.840.10008.5.1.4.1.2.2.1",
				TransferSyntax: "1.2.840.10008.1.2.1", Identifier: raw}
			lat := make([]time.Duration, 0, b.N)
			matches := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				st, err := svc.Find(context.Background(), req, func(*header.Dataset) error { matches++; return nil })
				if err != nil || st != dimse.StatusSuccess {
					b.Fatalf("find: %v %v", st, err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(matches)/float64(b.N), "matches/op")
		})
	}
}

// ingestRun indexes new instances the way ingest does (index.IngestInTenant
// in one transaction, object keys from ingest.NewKey, commit flushed),
// DESIGN §5's "ingest with 1M instances indexed" against
// BenchmarkIngestEmptyIndex.
func ingestRun(b *testing.B, db *pgtest.DB, tenant int64) {
	ctx := context.Background()
	sum := sha256.Sum256([]byte("x"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sop := fmt.Sprintf("2.25.8.%d.%d", time.Now().UnixNano(), i)
		rec := &index.Record{TenantID: tenant, PatientID: fmt.Sprintf("NEW%d", i%100), PatientName: "New^Patient", StudyInstanceUID: fmt.Sprintf("2.25.8.%d", i/10),
			SeriesInstanceUID: fmt.Sprintf("2.25.8.%d.1", i/10), SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.1.3",
			TransferSyntax: "1.2.840.10008.1.2.1", ObjectKey: ingest.NewKey(time.Now()), Size: 40000, SHA256: sum[:], SourceAE: "BENCH",
			Attrs: []byte(`{"00080060":{"vr":"CS","Value":["IO"]}}`)}
		if err := postgres.InTx(ctx, db.App, func(tx pgx.Tx) error {
			_, err := index.IngestInTenant(ctx, tx, rec, index.KeepFirst)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}
