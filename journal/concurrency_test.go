package journal_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/journal"
	"github.com/molar-health/molar/storage/postgres"
)

// waitForLockWait waits until some backend waits for a lock (or a while
// has passed).
func (e *env) waitForLockWait() {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e.count(`SELECT count(*) FROM pg_locks WHERE NOT granted`) > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A treatment planned while the plan's last open item is being marked done
// stays on the active plan: closing the plan waits for the plan's lock and
// then sees the new item, instead of closing the plan under it (which hid
// the newly planned treatment from every list).
func TestPlanItemAddedWhileLastItemIsClosedIsNotLost(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindTreatmentPlanned, CareTime: e.now.Add(-time.Hour),
		Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 16, Surfaces: "O", Procedure: "FYLD"}}}})
	require.NoError(t, err)
	plan, err := e.svc.Plan(ctx, e.dentistA, e.child)
	require.NoError(t, err)
	require.Len(t, plan.Items, 1)

	// Another request adds an item to the plan, as Create does: it holds
	// the plan's row lock until it commits.
	added := make(chan struct{})
	release := make(chan struct{})
	addErr := make(chan error, 1)
	go func() {
		addErr <- postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
			var planID, entryID int64
			if err := tx.QueryRow(ctx, `SELECT id FROM journal.plan WHERE person_id = $1 AND closed_at IS NULL FOR UPDATE`, e.child).Scan(&planID); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body)
				VALUES ($1, $2, 'treatment_planned', $3, 'x', now(), '{"treatments":[{"tooth":26,"surfaces":"O","procedure":"FYLD"}]}') RETURNING id`,
				e.tenant, e.child, e.dentistA2.UserID).Scan(&entryID); err != nil {
				return err
			}
			var itemID int64
			if err := tx.QueryRow(ctx, `INSERT INTO journal.plan_item (tenant_id, plan_id, person_id, tooth, surfaces, procedure, entry_id)
				VALUES ($1, $2, $3, 26, 'O', 'FYLD', $4) RETURNING id`, e.tenant, planID, e.child, entryID).Scan(&itemID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO journal.plan_item_event (tenant_id, item_id, status, by_user) VALUES ($1, $2, 'planned', $3)`,
				e.tenant, itemID, e.dentistA2.UserID); err != nil {
				return err
			}
			close(added)
			<-release
			return nil
		})
	}()
	<-added
	done := make(chan error, 1)
	go func() { done <- e.svc.SetItemStatus(ctx, e.dentistA, e.child, plan.Items[0].ID, journal.ItemDone, "") }()
	e.waitForLockWait()
	close(release)
	require.NoError(t, <-addErr)
	require.NoError(t, <-done)

	plan, err = e.svc.Plan(ctx, e.dentistA, e.child)
	require.NoError(t, err)
	require.NotNil(t, plan, "the plan still has a planned item")
	require.Len(t, plan.Items, 2)
	require.Equal(t, journal.ItemPlanned, plan.Items[1].Status)
}

// Two users marking the same plan item at the same time: one wins, the
// other is told the item is already closed (no second status event).
func TestPlanItemStatusIsSetOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindTreatmentPlanned, CareTime: e.now.Add(-time.Hour),
		Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 16, Surfaces: "O", Procedure: "FYLD"}, {Tooth: 26, Surfaces: "O", Procedure: "FYLD"}}}})
	require.NoError(t, err)
	plan, err := e.svc.Plan(ctx, e.dentistA, e.child)
	require.NoError(t, err)
	item := plan.Items[0].ID

	// Hold the plan's lock so both requests start before either decides.
	locked := make(chan struct{})
	release := make(chan struct{})
	lockErr := make(chan error, 1)
	go func() {
		lockErr <- postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT id FROM journal.plan WHERE person_id = $1 AND closed_at IS NULL FOR UPDATE`, e.child); err != nil {
				return err
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	errs := make(chan error, 2)
	go func() { errs <- e.svc.SetItemStatus(ctx, e.dentistA, e.child, item, journal.ItemDone, "") }()
	go func() { errs <- e.svc.SetItemStatus(ctx, e.dentistA2, e.child, item, journal.ItemCancelled, "") }()
	time.Sleep(200 * time.Millisecond)
	close(release)
	require.NoError(t, <-lockErr)
	err1, err2 := <-errs, <-errs
	require.True(t, (err1 == nil) != (err2 == nil), "exactly one succeeds: %v, %v", err1, err2)
	if err1 == nil {
		err1 = err2
	}
	require.ErrorIs(t, err1, journal.ErrConflict)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM journal.plan_item_event WHERE item_id = $1 AND status <> 'planned'`, item))
}

// A signature and an unsigned correction of the same version in
// concurrent transactions: one of them is refused, so a signed (locked)
// entry is never replaced by an unsigned correction.
func TestSignAndCorrectAtOnceNeverLeaveASignedEntryWithAnUnsignedCorrection(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	draft, err := e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindNote, CareTime: e.now.Add(-time.Hour), Content: journal.Content{Text: "kladde"}})
	require.NoError(t, err)

	// The author signs; the signature is written but not yet committed.
	signed := make(chan struct{})
	release := make(chan struct{})
	signErr := make(chan error, 1)
	go func() {
		signErr <- postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO journal.signature (entry_id, tenant_id, signed_by) VALUES ($1, $2, $3)`,
				draft.ID, e.tenant, e.dentistA.UserID); err != nil {
				close(signed)
				return err
			}
			close(signed)
			<-release
			return nil
		})
	}()
	<-signed
	// Meanwhile a colleague corrects the (still unsigned-looking) draft
	// without signing.
	corrErr := make(chan error, 1)
	go func() {
		_, err := e.svc.Correct(ctx, e.dentistA2, e.child, draft.ID, journal.NewEntry{Kind: journal.KindNote, Content: journal.Content{Text: "rettet"}}, "stavefejl")
		corrErr <- err
	}()
	// Give the correction time to reach its checks (it waits there when
	// the two take turns).
	select {
	case err := <-corrErr:
		corrErr <- err
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	err1, err2 := <-signErr, <-corrErr
	require.True(t, err1 == nil || err2 == nil, "one of them succeeds: %v, %v", err1, err2)
	require.False(t, err1 == nil && err2 == nil, "not both: a signed entry replaced by an unsigned correction")
	require.NoError(t, err1, "the signature came first")
	require.ErrorIs(t, err2, journal.ErrLocked, "the unsigned correction of a now signed entry is refused")
	require.Zero(t, e.count(`SELECT count(*) FROM journal.entry n JOIN journal.signature s ON s.entry_id = n.supersedes
		WHERE NOT EXISTS (SELECT 1 FROM journal.signature s2 WHERE s2.entry_id = n.id)`))
}

// An examination that sets a new risk while a colleague's save of the
// health information is being committed keeps the colleague's allergies:
// the examination reads the profile it builds on only once the saves
// before it are done, instead of putting back the values it read before.
func TestExaminationRiskKeepsAConcurrentProfileSave(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	require.NoError(t, e.svc.SaveProfile(ctx, e.dentistA, e.child, journal.Profile{Risk: journal.RiskLow, Allergies: "Penicillin"}))

	// A colleague's save holds the profile's lock until it commits.
	locked := make(chan struct{})
	release := make(chan struct{})
	saveErr := make(chan error, 1)
	go func() {
		saveErr <- postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('journal.patient_profile/' || $1::bigint, 0))`, e.child); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO journal.patient_profile (tenant_id, person_id, risk, allergies, recorded_by, recorded_name)
				VALUES ($1, $2, 'low', 'Penicillin, latex', $3, 'Dr dentist-a2')`, e.tenant, e.child, e.dentistA2.UserID); err != nil {
				return err
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	exam := e.exam()
	exam.Text, exam.Risk = "Kontrol.", journal.RiskHigh
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Create(ctx, e.dentistA, e.child, exam)
		done <- err
	}()
	e.waitForLockWait()
	close(release)
	require.NoError(t, <-saveErr)
	require.NoError(t, <-done)

	ov, err := e.svc.Overview(ctx, e.dentistA, e.child, time.Time{})
	require.NoError(t, err)
	require.Equal(t, journal.RiskHigh, ov.Profile.Risk)
	require.Equal(t, "Penicillin, latex", ov.Profile.Allergies, "the colleague's save is kept")
}
