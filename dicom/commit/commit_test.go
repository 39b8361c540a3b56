package commit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/commit"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestReportNotSentToAnotherMunicipality: a report checked in the
// requester's municipality is not delivered to the AE title once it
// belongs to another one (removed and registered again by another
// municipality, or moved with --replace --tenant): the job is cancelled,
// nothing is dialled.
func TestReportNotSentToAnotherMunicipality(t *testing.T) {
	db := pgtest.Open(t, auth.Migrations(), audit.Migrations(), index.Migrations())
	ctx := context.Background()
	a, err := auth.CreateTenant(ctx, db.Admin, "0101", "A")
	require.NoError(t, err)
	b, err := auth.CreateTenant(ctx, db.Admin, "0202", "B")
	require.NoError(t, err)
	require.NoError(t, index.AddAE(ctx, db.Admin, index.AE{Title: "MODALITY", Host: "127.0.0.1", Port: 1, Permissions: []string{"echo", "store"}, TenantID: b.ID}, false))

	w := &commit.Worker{DB: db.App, AETitle: "MOLAR"}
	job := &river.Job[commit.ReportArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: commit.MaxAttempts},
		Args: commit.ReportArgs{TenantID: a.ID, AETitle: "MODALITY", TransactionUID: "2.25.1",
			Refs: []dimse.SOPRef{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.1.3", SOPInstanceUID: "2.25.2"}}}}
	err = w.Work(ctx, job)
	var cancel *rivertype.JobCancelError
	require.True(t, errors.As(err, &cancel), "cancelled, not retried (nor sent): %v", err)
}
