package ingest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/deletion"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	fsstore "github.com/molar-health/molar/storage/fs"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// TestDeletionDoesNotTakeAnInstanceArrivingMeanwhile: deleting the last
// instance of a study while another instance of that study is being
// stored (its row written, its COMMIT waiting for the object) must leave
// the newcomer, which its sender is told is stored, and its study. The
// study row is locked first, so the deletion waits for the ingest and
// then sees the newcomer.
func TestDeletionDoesNotTakeAnInstanceArrivingMeanwhile(t *testing.T) {
	db := pgtest.Open(t, audit.Migrations(), auth.Migrations(), index.Migrations())
	ctx := context.Background()
	ten, err := auth.CreateTenant(ctx, db.Admin, "0101", "Test")
	require.NoError(t, err)
	st, err := fsstore.New(t.TempDir())
	require.NoError(t, err)
	in := &Ingester{DB: db.App, Store: st, Policy: index.KeepFirst}
	put := func(in *Ingester, inst dicomtest.Instance) (Result, error) {
		return in.Ingest(ctx, cstore(inst, ten.ID, uid.ExplicitVRLittleEndian), bytes.NewReader(inst.DataSet(t, uid.ExplicitVRLittleEndian)))
	}
	a, b := sample(dicomtest.Root+".30.1"), sample(dicomtest.Root+".30.2")
	a.StudyUID, b.StudyUID = dicomtest.Root+".30", dicomtest.Root+".30"
	_, err = put(in, a)
	require.NoError(t, err)

	del := &deletion.Deleter{DB: db.App, Store: st}
	actx := audit.WithActor(ctx, audit.Actor{Username: "test", Role: auth.RoleClinicAdmin, TenantID: ten.ID})
	reached, done := make(chan struct{}), make(chan struct{})
	var res deletion.Result
	var delErr error
	go func() {
		<-reached
		res, delErr = del.Delete(actx, deletion.Request{TenantID: ten.ID, StudyUID: a.StudyUID, SOPInstanceUID: a.SOPUID, Reason: "fejlindlæst billede"})
		close(done)
	}()
	slow := *in
	slow.beforeCommit = func(*pgxpool.Conn) {
		close(reached)
		time.Sleep(500 * time.Millisecond) // the deletion runs into the newcomer's locks
	}
	rb, err := put(&slow, b)
	require.NoError(t, err)
	require.Equal(t, index.OutcomeStored, rb.Outcome)
	<-done
	require.NoError(t, delErr)
	require.Equal(t, 1, res.Instances)
	require.False(t, res.StudyGone, "the study holds the newcomer")

	e := &env{db: db, store: st, tenant: ten.ID, in: in}
	got, err := e.instance(t, b.SOPUID)
	require.NoError(t, err, "the newcomer acknowledged as stored is still indexed")
	require.Equal(t, rb.ObjectKey, got.ObjectKey)
	_, err = e.instance(t, a.SOPUID)
	require.Error(t, err, "the deleted one is gone")
}
