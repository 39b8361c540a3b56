package ingest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	fsstore "github.com/molar-health/molar/storage/fs"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// BenchmarkIngest measures the ingest path alone (no DIMSE, no thumbnail
// jobs): a bare data set as C-STORE delivers it, streamed to the
// filesystem store (file and folder fsynced) and indexed (commit flushed),
// on 1 and 4 concurrent callers.
//
//	go test -run '^$' -bench Ingest -benchtime 400x ./dicom/ingest
func BenchmarkIngest(b *testing.B) {
	db := pgtest.Open(b, auth.Migrations(), index.Migrations())
	ten, err := auth.CreateTenant(context.Background(), db.Admin, "0101", "Bench")
	if err != nil {
		b.Fatal(err)
	}
	st, err := fsstore.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	in := &Ingester{DB: db.App, Store: st, Policy: index.KeepFirst}
	var seq atomic.Int64
	for _, sz := range []struct {
		name       string
		rows, cols int
	}{{"small", 128, 152}, {"large", 1280, 1024}} {
		proto := dicomtest.Instance{PatientID: "P1", PatientName: "Bench^Patient", StudyDate: "20240101", Rows: sz.rows, Cols: sz.cols, Teeth: []string{"16"}}
		for _, par := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/%d", sz.name, par), func(b *testing.B) {
				bodies := make([][]byte, b.N)
				srcs := make([]Source, b.N)
				for i := range bodies {
					n := seq.Add(1)
					inst := proto
					inst.StudyUID = fmt.Sprintf("%s.77.%d", dicomtest.Root, n/10)
					inst.SeriesUID = inst.StudyUID + ".1"
					inst.SOPUID = fmt.Sprintf("%s.78.%d", dicomtest.Root, n)
					bodies[i] = inst.DataSet(b, uid.ExplicitVRLittleEndian)
					srcs[i] = Source{TenantID: ten.ID, AE: "BENCH", SOPClassUID: uid.DigitalIntraOralXRayForPresentation,
						SOPInstanceUID: inst.SOPUID, TransferSyntax: uid.ExplicitVRLittleEndian, Size: -1}
				}
				b.SetBytes(int64(len(bodies[0])))
				var next atomic.Int64
				b.ResetTimer()
				done := make(chan error, par)
				for w := 0; w < par; w++ {
					go func() {
						for {
							i := int(next.Add(1)) - 1
							if i >= b.N {
								done <- nil
								return
							}
							if _, err := in.Ingest(context.Background(), srcs[i], bytes.NewReader(bodies[i])); err != nil {
								done <- err
								return
							}
						}
					}()
				}
				for w := 0; w < par; w++ {
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestNewKeysSortByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	prev := ""
	for i := 0; i < 100; i++ {
		k := NewKey(t0.Add(time.Duration(i) * time.Millisecond))
		if !strings.HasPrefix(k, "instances/2026/11/25/") || !strings.HasSuffix(k, ".dcm") || len(k) != len("instances/2026/11/25/")+36+4 {
			t.Fatalf("key %q", k)
		}
		if k <= prev {
			t.Fatalf("%q sorts before %q", k, prev)
		}
		if v := k[len("instances/2026/11/25/")+14]; v != '7' {
			t.Fatalf("version nibble %c in %q", v, k)
		}
		prev = k
	}
	if a, b := NewKey(t0), NewKey(t0); a == b {
		t.Fatal("two keys of one millisecond are equal")
	}
}
