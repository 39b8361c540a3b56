package journal_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/journal"
)

// The clinic totals "at" a date count examinations up to the end of that
// Danish day, not of the UTC day: an examination at 00:30 the next morning
// in Copenhagen (22:30 UTC the same day) is not yet counted.
func TestClinicIndicesEndAtTheDanishMidnight(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	day := auth.DateIn(e.now, auth.Copenhagen).AddDate(0, 0, -10)
	y, m, d := day.Date()
	next := time.Date(y, m, d+1, 0, 30, 0, 0, auth.Copenhagen)
	exam := journal.NewEntry{Kind: journal.KindExamination, CareTime: next, Sign: true,
		Content: journal.Content{Findings: []journal.Finding{{Tooth: 36, Surfaces: "O", Condition: journal.CondCaries}}}}
	_, err := e.svc.Create(ctx, e.dentistA, e.child, exam)
	require.NoError(t, err)
	examined := func(at time.Time) int {
		totals, err := e.svc.ClinicIndices(ctx, e.dentistA, e.clinicA, at)
		require.NoError(t, err)
		for _, g := range totals {
			if g.Label == "9–11" {
				return g.Examined
			}
		}
		t.Fatal("no group 9–11")
		return 0
	}
	require.Zero(t, examined(time.Date(y, m, d, 12, 0, 0, 0, auth.Copenhagen)), "the examination was the next Danish day")
	require.Equal(t, 1, examined(time.Date(y, m, d+1, 12, 0, 0, 0, auth.Copenhagen)))
}
