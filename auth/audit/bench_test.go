package audit_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// BenchmarkRecord measures Record throughput: many concurrent writers, each
// committing one request transaction with one audit row, with and without
// the sealer running. Writers never wait on the chain, so the two should be
// close. Run with: go test ./auth/audit -run '^$' -bench Record
func BenchmarkRecord(b *testing.B) {
	for _, sealer := range []bool{false, true} {
		name := "no_sealer"
		if sealer {
			name = "sealer"
		}
		db := openDB(b)
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			if sealer {
				s := &audit.Sealer{Pool: db.App, Interval: 50 * time.Millisecond}
				wg.Add(1)
				go func() { defer wg.Done(); _ = s.Run(ctx) }()
			}
			var writer atomic.Int64
			b.SetParallelism(8) // 8 writers per CPU
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := writer.Add(1)
				a := audit.Actor{UserID: w, Username: "bench" + strconv.FormatInt(w, 10), Role: "dentist",
					TenantID: w%4 + 1, RequestID: "bench", SourceAddr: "192.0.2.1:1234"}
				actx := audit.WithActor(ctx, a)
				i := 0
				for pb.Next() {
					i++
					err := postgres.InTenant(actx, db.App, a.TenantID, func(tx pgx.Tx) error {
						return audit.Record(actx, tx, audit.Event{Action: audit.ActionRead, PersonID: int64(i%500 + 1),
							Object: "journal.entry/" + strconv.Itoa(i)})
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if sealer {
				// How long the sealer needs to catch up after the burst.
				start := time.Now()
				total := count(b, db.Admin, "SELECT count(*) FROM audit.event")
				require.Eventually(b, func() bool {
					return count(b, db.Admin, "SELECT count(*) FROM audit.seal") == total
				}, time.Minute, 5*time.Millisecond)
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "catch-up-ms")
			}
			cancel()
			wg.Wait()
		})
		if sealer {
			rep, err := audit.Verify(context.Background(), db.App)
			require.NoError(b, err)
			require.True(b, rep.OK, "%+v", rep.Problems)
		}
	}
}

// BenchmarkSealer measures sealing throughput alone (rows per second).
func BenchmarkSealer(b *testing.B) {
	db := openDB(b)
	ctx := audit.WithActor(context.Background(), actor(1, 7, "anna"))
	const perTx = 1000
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		require.NoError(b, postgres.InTenant(ctx, db.App, 1, func(tx pgx.Tx) error {
			for i := range perTx {
				if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: int64(i + 1), Object: "journal.entry/" + strconv.Itoa(i)}); err != nil {
					return err
				}
			}
			return nil
		}))
		b.StartTimer()
		require.Equal(b, perTx, sealAll(b, db.App))
	}
	b.ReportMetric(float64(b.N*perTx)/b.Elapsed().Seconds(), "rows/s")
}
