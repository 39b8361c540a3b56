package journal_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/journal"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type env struct {
	t                *testing.T
	db               *pgtest.DB
	svc              *journal.Service
	tenant           int64
	clinicA, clinicB int64
	// child (9) and teen (16) are cared for by clinic A; adult (19) too.
	child, teen, adult, parent int64
	dentistA, dentistA2        *auth.Principal
	assistantA, dentistB       *auth.Principal
	parentP                    *auth.Principal
	now                        time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t, audit.Migrations(), auth.Migrations(), journal.Migrations())
	svc, err := journal.New(db.App)
	require.NoError(t, err)
	e := &env{t: t, db: db, svc: svc, now: time.Now()}
	today := auth.DateIn(e.now, auth.Copenhagen)
	tn, err := auth.CreateTenant(ctx, db.App, "0101", "Testby Kommune")
	require.NoError(t, err)
	e.tenant = tn.ID
	user := func(tx pgx.Tx, name, role string, unit, person int64) *auth.Principal {
		u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: e.tenant, Username: name, DisplayName: "Dr " + name, Role: role, PersonID: person}, nil)
		require.NoError(t, err)
		if unit != 0 {
			require.NoError(t, auth.AddUserUnit(ctx, tx, u.ID, unit))
		}
		return &auth.Principal{UserID: u.ID, TenantID: e.tenant, Username: name, DisplayName: "Dr " + name, Role: role, PersonID: person, Method: auth.MethodBasic}
	}
	require.NoError(t, postgres.InTenant(ctx, db.App, e.tenant, func(tx pgx.Tx) error {
		a, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: e.tenant, Kind: "dental_clinic", Name: "Klinik A"})
		require.NoError(t, err)
		b, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: e.tenant, Kind: "dental_clinic", Name: "Klinik B"})
		require.NoError(t, err)
		e.clinicA, e.clinicB = a.ID, b.ID
		mk := func(given string, birth time.Time) int64 {
			p, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: e.tenant, GivenName: given, FamilyName: "Testesen", BirthDate: birth})
			require.NoError(t, err)
			return p.ID
		}
		e.child = mk("Barn", today.AddDate(-9, -2, 0))
		e.teen = mk("Teen", today.AddDate(-16, 0, 0))
		e.adult = mk("Voksen", today.AddDate(-19, 0, 0))
		e.parent = mk("Forælder", today.AddDate(-40, 0, 0))
		for _, p := range []int64{e.child, e.teen, e.adult} {
			_, err := auth.AddCareRelation(ctx, tx, auth.CareRelation{TenantID: e.tenant, OrgUnitID: e.clinicA, PersonID: p, Kind: "dental", ValidFrom: today.AddDate(-1, 0, 0)})
			require.NoError(t, err)
		}
		require.NoError(t, auth.AddCustody(ctx, tx, e.tenant, e.parent, e.child))
		require.NoError(t, auth.AddCustody(ctx, tx, e.tenant, e.parent, e.teen))
		e.dentistA = user(tx, "dentist-a", auth.RoleDentist, e.clinicA, 0)
		e.dentistA2 = user(tx, "dentist-a2", auth.RoleDentist, e.clinicA, 0)
		e.assistantA = user(tx, "assistant-a", auth.RoleDentalAssistant, e.clinicA, 0)
		e.dentistB = user(tx, "dentist-b", auth.RoleDentist, e.clinicB, 0)
		e.parentP = user(tx, "parent", auth.RoleCitizen, 0, e.parent)
		return nil
	}))
	return e
}

func (e *env) exam(findings ...journal.Finding) journal.NewEntry {
	return journal.NewEntry{Kind: journal.KindExamination, CareTime: e.now.Add(-time.Hour), Content: journal.Content{Findings: findings}}
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.Admin.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// snapshot is every journal row as text, to prove that nothing changed.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	for _, tbl := range []string{"entry", "signature", "patient_profile", "plan", "plan_item", "plan_item_event", "image_link"} {
		rows, err := e.db.Admin.Query(context.Background(), "SELECT t::text FROM journal."+tbl+" t ORDER BY 1")
		require.NoError(e.t, err)
		for rows.Next() {
			var s string
			require.NoError(e.t, rows.Scan(&s))
			b.WriteString(tbl + ":" + s + "\n")
		}
		require.NoError(e.t, rows.Err())
	}
	return b.String()
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func keyOf(t *testing.T, err error) string {
	t.Helper()
	var ie *journal.InputError
	require.ErrorAs(t, err, &ie, "%v", err)
	return ie.Key
}

// A signed entry cannot be changed or removed with SQL: not by the
// runtime role (no privilege, and triggers), not by the owner or a
// superuser (triggers), and the rules of versions hold in the database.
func TestEntriesAreAppendOnlyInTheDatabase(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	signed, err := e.svc.Create(ctx, e.dentistA, e.child, func() journal.NewEntry {
		n := e.exam(journal.Finding{Tooth: 16, Surfaces: "O", Condition: journal.CondCaries})
		n.Sign = true
		return n
	}())
	require.NoError(t, err)
	draft, err := e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindNote, CareTime: e.now.Add(-time.Hour), Content: journal.Content{Text: "kladde"}})
	require.NoError(t, err)
	_, err = e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindTreatmentPlanned, CareTime: e.now.Add(-time.Hour),
		Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 16, Surfaces: "O", Procedure: "FYLD"}}}})
	require.NoError(t, err)
	require.NoError(t, e.svc.SaveProfile(ctx, e.dentistA, e.child, journal.Profile{Risk: journal.RiskMedium, Allergies: "Penicillin"}))
	before := e.snapshot()

	const denied, refused, unique = "42501", "P0001", "23505"
	body := `'{"text":"x"}'::jsonb`
	cases := []struct{ name, sql, code string }{
		{"update signed entry", fmt.Sprintf("UPDATE journal.entry SET body = %s WHERE id = %d", body, signed.ID), denied},
		{"update draft", fmt.Sprintf("UPDATE journal.entry SET care_time = now() - interval '1 year' WHERE id = %d", draft.ID), denied},
		{"delete signed entry", fmt.Sprintf("DELETE FROM journal.entry WHERE id = %d", signed.ID), denied},
		{"delete all", "DELETE FROM journal.entry", denied},
		{"truncate", "TRUNCATE journal.entry CASCADE", denied},
		{"unsign", fmt.Sprintf("DELETE FROM journal.signature WHERE entry_id = %d", signed.ID), denied},
		{"move signature", fmt.Sprintf("UPDATE journal.signature SET entry_id = %d", draft.ID), denied},
		{"backdate recording", fmt.Sprintf("INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body, recorded_at) VALUES (%d, %d, 'note', %d, 'x', now(), %s, now() - interval '1 day')", e.tenant, e.child, e.dentistA.UserID, body), denied},
		{"choose id", fmt.Sprintf("INSERT INTO journal.entry (id, tenant_id, person_id, kind, author_id, author_name, care_time, body) OVERRIDING SYSTEM VALUE VALUES (999, %d, %d, 'note', %d, 'x', now(), %s)", e.tenant, e.child, e.dentistA.UserID, body), denied},
		{"future time of care", fmt.Sprintf("INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body) VALUES (%d, %d, 'note', %d, 'x', now() + interval '1 day', %s)", e.tenant, e.child, e.dentistA.UserID, body), "23514"},
		{"correction without reason", fmt.Sprintf("INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body, supersedes) VALUES (%d, %d, 'note', %d, 'x', now(), %s, %d)", e.tenant, e.child, e.dentistA.UserID, body, draft.ID), "23514"},
		{"unsigned correction of a signed entry", fmt.Sprintf("INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body, supersedes, reason) VALUES (%d, %d, 'examination', %d, 'x', now(), %s, %d, 'fejl')", e.tenant, e.child, e.dentistA.UserID, body, signed.ID), refused},
		{"correction of another kind", fmt.Sprintf("INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body, supersedes, reason) VALUES (%d, %d, 'examination', %d, 'x', now(), %s, %d, 'fejl')", e.tenant, e.child, e.dentistA.UserID, body, draft.ID), refused},
		{"correction moved to another person", fmt.Sprintf("INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body, supersedes, reason) VALUES (%d, %d, 'note', %d, 'x', now(), %s, %d, 'fejl')", e.tenant, e.teen, e.dentistA.UserID, body, draft.ID), refused},
		{"sign another author's entry", fmt.Sprintf("INSERT INTO journal.signature (entry_id, tenant_id, signed_by) VALUES (%d, %d, %d)", draft.ID, e.tenant, e.dentistA2.UserID), refused},
		{"sign twice", fmt.Sprintf("INSERT INTO journal.signature (entry_id, tenant_id, signed_by) VALUES (%d, %d, %d)", signed.ID, e.tenant, e.dentistA.UserID), unique},
		{"backdate signature", fmt.Sprintf("INSERT INTO journal.signature (entry_id, tenant_id, signed_by, signed_at) VALUES (%d, %d, %d, now() - interval '1 day')", draft.ID, e.tenant, e.dentistA.UserID), denied},
		{"change plan item", "UPDATE journal.plan_item SET procedure = 'EKST'", denied},
		{"rewrite plan status", "DELETE FROM journal.plan_item_event", denied},
		{"reassign plan", fmt.Sprintf("UPDATE journal.plan SET person_id = %d", e.teen), denied},
		{"disable trigger", "ALTER TABLE journal.entry DISABLE TRIGGER append_only", denied},
		{"drop trigger", "DROP TRIGGER append_only ON journal.entry", denied},
	}
	for _, tc := range cases {
		t.Run("runtime role/"+tc.name, func(t *testing.T) {
			err := postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, tc.sql)
				return err
			})
			require.Error(t, err)
			require.Equal(t, tc.code, sqlState(err), "%v", err)
		})
	}
	// A second correction of the same version is refused: the history is linear.
	require.NoError(t, postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body, supersedes, reason) VALUES (%d, %d, 'note', %d, 'x', now(), %s, %d, 'first')", e.tenant, e.child, e.dentistA.UserID, body, draft.ID))
		return err
	}))
	err = postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, care_time, body, supersedes, reason) VALUES (%d, %d, 'note', %d, 'x', now(), %s, %d, 'second')", e.tenant, e.child, e.dentistA.UserID, body, draft.ID))
		return err
	})
	require.Equal(t, unique, sqlState(err), "%v", err)
	// The replaced draft cannot be signed any more.
	err = postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO journal.signature (entry_id, tenant_id, signed_by) VALUES (%d, %d, %d)", draft.ID, e.tenant, e.dentistA.UserID))
		return err
	})
	require.Equal(t, refused, sqlState(err), "%v", err)
	// Row-level security: another municipality sees nothing.
	require.NoError(t, postgres.InTenant(ctx, e.db.App, e.tenant+1, func(tx pgx.Tx) error {
		var n int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM journal.entry").Scan(&n))
		require.Zero(t, n)
		return nil
	}))

	after := e.snapshot()
	require.Equal(t, strings.Count(before, "\n")+1, strings.Count(after, "\n"), "only the one valid correction was added")
	for _, line := range strings.Split(strings.TrimSpace(before), "\n") {
		require.Contains(t, after, line, "an existing row changed")
	}

	// Owner and superuser are stopped by the triggers.
	for _, role := range []string{"superuser", postgres.OwnerRole} {
		for _, stmt := range []string{
			fmt.Sprintf("UPDATE journal.entry SET body = %s WHERE id = %d", body, signed.ID),
			fmt.Sprintf("DELETE FROM journal.entry WHERE id = %d", signed.ID),
			"TRUNCATE journal.entry CASCADE",
			fmt.Sprintf("DELETE FROM journal.signature WHERE entry_id = %d", signed.ID),
			"UPDATE journal.signature SET signed_at = now() - interval '1 year'",
			"TRUNCATE journal.signature",
			"DELETE FROM journal.plan_item_event",
			"UPDATE journal.patient_profile SET risk = 'low'",
		} {
			t.Run(role+"/"+stmt, func(t *testing.T) {
				err := postgres.InTx(ctx, e.db.Admin, func(tx pgx.Tx) error {
					if role != "superuser" {
						if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+role); err != nil {
							return err
						}
					}
					_, err := tx.Exec(ctx, stmt)
					return err
				})
				require.Error(t, err)
				require.Equal(t, refused, sqlState(err), "%v", err)
				require.Contains(t, err.Error(), "append-only")
			})
		}
	}
	require.Equal(t, after, e.snapshot())
}

func TestCreateSignCorrectAndVersions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n := e.exam(journal.Finding{Tooth: 26, Surfaces: "O", Condition: journal.CondCaries}, journal.Finding{Tooth: 36, Surfaces: "mo", Condition: journal.CondFilling})
	orig, err := e.svc.Create(ctx, e.assistantA, e.child, e.exam(journal.Finding{Tooth: 46, Surfaces: "O", Condition: journal.CondCaries}))
	require.NoError(t, err, "an assistant writes")
	require.False(t, orig.Signed())
	_, err = e.svc.Sign(ctx, e.assistantA, e.child, orig.ID)
	require.ErrorIs(t, err, auth.ErrForbidden, "assistants do not sign")
	_, err = e.svc.Sign(ctx, e.dentistA, e.child, orig.ID)
	require.ErrorIs(t, err, journal.ErrForbidden, "only the author signs")
	require.Equal(t, "sign.author", keyOf(t, err))
	require.WithinDuration(t, time.Now(), orig.RecordedAt, time.Minute)

	mine, err := e.svc.Create(ctx, e.dentistA, e.child, n)
	require.NoError(t, err)
	require.Equal(t, "MO", mine.Findings[1].Surfaces)
	signed, err := e.svc.Sign(ctx, e.dentistA, e.child, mine.ID)
	require.NoError(t, err)
	require.True(t, signed.Signed())
	_, err = e.svc.Sign(ctx, e.dentistA, e.child, mine.ID)
	require.ErrorIs(t, err, journal.ErrLocked)

	// An unsigned correction of a locked entry is refused with a clear message; nothing changes.
	before := e.snapshot()
	fix := e.exam(journal.Finding{Tooth: 26, Surfaces: "O", Condition: journal.CondSound}, journal.Finding{Tooth: 36, Surfaces: "MO", Condition: journal.CondFilling})
	_, err = e.svc.Correct(ctx, e.dentistA, e.child, mine.ID, fix, "forkert tand")
	require.ErrorIs(t, err, journal.ErrLocked)
	require.Equal(t, "correction.unsigned", keyOf(t, err))
	require.Contains(t, journal.MessageOf(err, "da"), "er underskrevet og låst")
	_, err = e.svc.Correct(ctx, e.dentistA, e.child, mine.ID, fix, "  ")
	require.Equal(t, "correction.reason", keyOf(t, err))
	fix.Kind = journal.KindNote
	_, err = e.svc.Correct(ctx, e.dentistA, e.child, mine.ID, fix, "x")
	require.Equal(t, "correction.kind", keyOf(t, err))
	fix.Kind = ""
	fix.Sign = true
	_, err = e.svc.Correct(ctx, e.assistantA, e.child, mine.ID, fix, "forkert tand")
	require.ErrorIs(t, err, auth.ErrForbidden)
	require.Equal(t, before, e.snapshot(), "nothing recorded changed")

	corr, err := e.svc.Correct(ctx, e.dentistA, e.child, mine.ID, fix, "forkert tand")
	require.NoError(t, err)
	require.True(t, corr.Signed())
	require.Equal(t, mine.ID, corr.Supersedes)
	require.Equal(t, "forkert tand", corr.Reason)
	require.Equal(t, mine.CareTime.Unix(), corr.CareTime.Unix(), "time of care kept")

	_, err = e.svc.Correct(ctx, e.dentistA, e.child, mine.ID, fix, "igen")
	require.ErrorIs(t, err, journal.ErrLocked, "only the current version can be corrected")
	require.Equal(t, "correction.superseded", keyOf(t, err))

	versions, err := e.svc.Versions(ctx, e.dentistA, e.child, mine.ID)
	require.NoError(t, err)
	require.Len(t, versions, 2)
	require.Equal(t, []int64{mine.ID, corr.ID}, []int64{versions[0].ID, versions[1].ID})
	require.Equal(t, corr.ID, versions[0].SupersededBy)
	v2, err := e.svc.Versions(ctx, e.dentistA, e.child, corr.ID)
	require.NoError(t, err)
	require.Equal(t, versions, v2)
	_, err = e.svc.Versions(ctx, e.dentistA, e.teen, mine.ID)
	require.ErrorIs(t, err, journal.ErrNotFound, "an entry of another person")

	// The chart uses the current versions: the corrected 26 is sound, the
	// assistant's draft (unsigned entries count on the staff chart) says caries on 46.
	chart, err := e.svc.Chart(ctx, e.dentistA, e.child, time.Time{})
	require.NoError(t, err)
	require.Empty(t, chart.Tooth(26).Surface("O").Caries)
	require.Equal(t, "dentin", chart.Tooth(46).Surface("O").Caries)
	_, err = e.svc.Correct(ctx, e.assistantA, e.child, orig.ID, e.exam(journal.Finding{Tooth: 36, Surfaces: "MO", Condition: journal.CondFilling}), "dobbelt")
	require.NoError(t, err, "a draft is corrected without signing")
	chart, err = e.svc.Chart(ctx, e.dentistA, e.child, time.Time{})
	require.NoError(t, err)
	require.Empty(t, chart.Tooth(46).Surface("O").Caries)
	require.Equal(t, "composite", chart.Tooth(36).Surface("M").Filling)
	require.Equal(t, 2, journal.ComputeIndices(chart).DMFS)

	// Every write and read was audit-logged with the person.
	require.GreaterOrEqual(t, e.count(`SELECT count(*) FROM audit.event WHERE person_id = $1 AND action = 'create' AND object LIKE 'journal.entry/%'`, e.child), 2)
	require.GreaterOrEqual(t, e.count(`SELECT count(*) FROM audit.event WHERE person_id = $1 AND action = 'update' AND object = $2`, e.child, fmt.Sprintf("journal.entry/%d", corr.ID)), 1)
	require.GreaterOrEqual(t, e.count(`SELECT count(*) FROM audit.event WHERE person_id = $1 AND action = 'read' AND object = $2`, e.child, fmt.Sprintf("journal.chart/%d", e.child)), 2)
}

func TestInvalidInputIsRefusedAndNothingChanges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.svc.Create(ctx, e.dentistA, e.child, e.exam(journal.Finding{Tooth: 16, Condition: journal.CondSound}))
	require.NoError(t, err)
	before := e.snapshot()
	cases := []struct {
		name   string
		person int64
		n      journal.NewEntry
		key    string
	}{
		{"tooth that does not exist", e.child, e.exam(journal.Finding{Tooth: 19, Condition: journal.CondSound}), "tooth.invalid"},
		{"incisal on a molar", e.child, e.exam(journal.Finding{Tooth: 46, Surfaces: "I", Condition: journal.CondCaries}), "surface.notontooth"},
		{"future time of care", e.child, journal.NewEntry{Kind: journal.KindNote, CareTime: e.now.Add(48 * time.Hour), Content: journal.Content{Text: "i morgen"}}, "caretime.future"},
		{"unknown procedure", e.child, journal.NewEntry{Kind: journal.KindTreatmentPlanned, CareTime: e.now, Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 16, Procedure: "BE1234"}}}}, "procedure.unknown"},
	}
	for _, c := range cases {
		_, err := e.svc.Create(ctx, e.dentistA, c.person, c.n)
		require.ErrorIs(t, err, journal.ErrInvalid, c.name)
		require.Equal(t, c.key, keyOf(t, err), c.name)
	}
	require.Equal(t, before, e.snapshot())
	// A persistent milk tooth of a 19-year-old is recorded (agenesis of 35).
	_, err = e.svc.Create(ctx, e.dentistA, e.adult, e.exam(journal.Finding{Tooth: 75, Condition: journal.CondSound}, journal.Finding{Tooth: 35, Condition: journal.CondMissing}))
	require.NoError(t, err)
}

func TestAccessBreakTheGlassAndMovingClinic(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n := e.exam(journal.Finding{Tooth: 16, Surfaces: "O", Condition: journal.CondCaries})
	n.Sign = true
	first, err := e.svc.Create(ctx, e.dentistA, e.child, n)
	require.NoError(t, err)

	// A dentist of another clinic is refused, for reads and writes.
	_, err = e.svc.Overview(ctx, e.dentistB, e.child, time.Time{})
	require.ErrorIs(t, err, auth.ErrForbidden)
	_, err = e.svc.Create(ctx, e.dentistB, e.child, n)
	require.ErrorIs(t, err, auth.ErrForbidden)
	_, err = e.svc.Entries(ctx, e.dentistB, e.child)
	require.ErrorIs(t, err, auth.ErrForbidden)
	require.Zero(t, e.count(`SELECT count(*) FROM audit.event WHERE user_id = $1 AND person_id = $2`, e.dentistB.UserID, e.child), "nothing read, nothing logged")

	// A reason too short is refused; a proper one opens the record, flagged.
	require.Error(t, e.svc.BreakGlass(ctx, e.dentistB, e.child, "akut"))
	require.NoError(t, e.svc.BreakGlass(ctx, e.dentistB, e.child, "Akut tandpine, egen klinik lukket"))
	ov, err := e.svc.Overview(ctx, e.dentistB, e.child, time.Time{})
	require.NoError(t, err)
	require.Equal(t, auth.BasisBreakGlass, ov.Access.Basis)
	require.Equal(t, "dentin", ov.Chart.Tooth(16).Surface("O").Caries)
	require.NoError(t, postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		log, err := audit.AccessLog(ctx, tx, e.child, 50)
		require.NoError(t, err)
		var flaggedRead, grant bool
		for _, l := range log {
			if l.Username == "dentist-b" && l.Action == audit.ActionRead && l.Object == fmt.Sprintf("journal.record/%d", e.child) {
				flaggedRead = l.BreakGlass && l.BreakGlassReason == "Akut tandpine, egen klinik lukket"
			}
			if l.Username == "dentist-b" && l.Action == audit.ActionBreakGlass {
				grant = true
			}
		}
		require.True(t, flaggedRead, "the read under break-the-glass is flagged with the reason")
		require.True(t, grant)
		return nil
	}))
	// Other children stay closed to dentist B.
	_, err = e.svc.Overview(ctx, e.dentistB, e.teen, time.Time{})
	require.ErrorIs(t, err, auth.ErrForbidden)

	// The child moves to clinic B: the record goes along.
	today := auth.DateIn(time.Now(), auth.Copenhagen)
	require.NoError(t, postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE auth.care_relation SET valid_to = $2 WHERE person_id = $1`, e.teen, today.AddDate(0, 0, -1))
		if err != nil {
			return err
		}
		_, err = auth.AddCareRelation(ctx, tx, auth.CareRelation{TenantID: e.tenant, OrgUnitID: e.clinicB, PersonID: e.teen, Kind: "dental", ValidFrom: today})
		return err
	}))
	_, err = e.svc.Overview(ctx, e.dentistB, e.teen, time.Time{})
	require.NoError(t, err)
	_, err = e.svc.Overview(ctx, e.dentistA, e.teen, time.Time{})
	require.ErrorIs(t, err, auth.ErrForbidden, "the old clinic no longer reaches the record")
	all, err := e.svc.Entries(ctx, e.dentistA, e.child)
	require.NoError(t, err)
	require.Equal(t, first.ID, all[0].ID)

	// Search shows whether a child is with the user's clinic.
	hits, err := e.svc.Search(ctx, e.dentistB, "testesen")
	require.NoError(t, err)
	inCare := map[int64]bool{}
	for _, h := range hits {
		inCare[h.ID] = h.InCare
	}
	require.Equal(t, map[int64]bool{e.child: false, e.teen: true, e.adult: false}, inCare, "parents (40) are not patients")
	_, err = e.svc.Search(ctx, e.dentistB, "x")
	require.ErrorIs(t, err, journal.ErrInvalid)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit.event WHERE action = 'search' AND user_id = $1`, e.dentistB.UserID))
}

// Search finds everyone under 22 on the Danish date, also on 29 February,
// when "22 years ago" has no day of its own.
func TestSearchUnder22OnLeapDay(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := map[int64]string{}
	require.NoError(t, postgres.InTenant(ctx, e.db.App, e.tenant, func(tx pgx.Tx) error {
		for _, b := range []time.Time{
			time.Date(2006, 2, 28, 0, 0, 0, 0, time.UTC),
			time.Date(2006, 3, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2008, 2, 28, 0, 0, 0, 0, time.UTC),
			time.Date(2008, 2, 29, 0, 0, 0, 0, time.UTC),
		} {
			p, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: e.tenant, GivenName: "Skud", FamilyName: "Dagsen", BirthDate: b})
			require.NoError(t, err)
			ids[p.ID] = b.Format(time.DateOnly)
		}
		return nil
	}))
	cases := []struct {
		name  string
		today time.Time // noon in Copenhagen
		want  []string
	}{
		// 2006-02-28 turned 22 the day before; 2006-03-01 is 21 until tomorrow.
		{"29 February 2028", time.Date(2028, 2, 29, 11, 0, 0, 0, time.UTC), []string{"2006-03-01", "2008-02-28", "2008-02-29"}},
		{"1 March 2028", time.Date(2028, 3, 1, 11, 0, 0, 0, time.UTC), []string{"2008-02-28", "2008-02-29"}},
		// Born on a leap day: 22 on 1 March in a common year.
		{"28 February 2030", time.Date(2030, 2, 28, 11, 0, 0, 0, time.UTC), []string{"2008-02-29"}},
		{"1 March 2030", time.Date(2030, 3, 1, 11, 0, 0, 0, time.UTC), nil},
	}
	for _, c := range cases {
		e.svc.Now = func() time.Time { return c.today }
		hits, err := e.svc.Search(ctx, e.dentistA, "skud dagsen")
		require.NoError(t, err, c.name)
		var got []string
		for _, h := range hits {
			got = append(got, ids[h.ID])
		}
		slices.Sort(got)
		require.Equal(t, c.want, got, c.name)
	}
}

func TestPlanRecallAndPortal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	exam := e.exam(journal.Finding{Tooth: 16, Surfaces: "O", Condition: journal.CondCaries}, journal.Finding{Tooth: 55, Surfaces: "D", Condition: journal.CondCaries})
	exam.Risk, exam.Sign = journal.RiskHigh, true
	ex, err := e.svc.Create(ctx, e.dentistA, e.child, exam)
	require.NoError(t, err)
	_, err = e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindTreatmentPlanned, CareTime: e.now.Add(-30 * time.Minute), Sign: true,
		Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 16, Surfaces: "O", Procedure: "FYLD"}, {Tooth: 55, Surfaces: "D", Procedure: "FYLD"}, {Procedure: "FLUOR"}}}})
	require.NoError(t, err)
	plan, err := e.svc.Plan(ctx, e.dentistA, e.child)
	require.NoError(t, err)
	require.Len(t, plan.Items, 3)
	require.Equal(t, journal.Progress{Done: 0, Total: 3, Percent: 0}, plan.Progress())
	// A second planned entry adds to the same (only) active plan.
	_, err = e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindTreatmentPlanned, CareTime: e.now.Add(-29 * time.Minute),
		Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 26, Surfaces: "O", Procedure: "FORS"}}}})
	require.NoError(t, err)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM journal.plan WHERE person_id = $1`, e.child))

	chart, err := e.svc.Chart(ctx, e.dentistA, e.child, time.Time{})
	require.NoError(t, err)
	require.Len(t, chart.Tooth(16).Planned, 1, "planned vs done on the chart")
	done, err := e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindTreatmentPerformed, CareTime: e.now.Add(-10 * time.Minute), Sign: true,
		Content: journal.Content{Treatments: []journal.Treatment{{Tooth: 16, Surfaces: "O", Procedure: "FYLD", Material: "composite", PlanItemID: plan.Items[0].ID}}}})
	require.NoError(t, err)
	chart, err = e.svc.Chart(ctx, e.dentistA, e.child, time.Time{})
	require.NoError(t, err)
	require.Empty(t, chart.Tooth(16).Planned)
	require.Equal(t, "composite", chart.Tooth(16).Surface("O").Filling)
	require.Equal(t, done.ID, chart.Tooth(16).Done[0].EntryID)

	err = e.svc.SetItemStatus(ctx, e.dentistA, e.child, plan.Items[0].ID, journal.ItemCancelled, "")
	require.ErrorIs(t, err, journal.ErrConflict, "a done item stays done")
	require.NoError(t, e.svc.SetItemStatus(ctx, e.dentistA, e.child, plan.Items[1].ID, journal.ItemReferred, "til specialist"))
	require.NoError(t, e.svc.SetItemStatus(ctx, e.dentistA, e.child, plan.Items[2].ID, journal.ItemCancelled, ""))
	plan, err = e.svc.Plan(ctx, e.dentistA, e.child)
	require.NoError(t, err)
	require.Equal(t, journal.Progress{Done: 2, Total: 3, Percent: 66}, plan.Progress())
	require.Error(t, e.svc.SetItemStatus(ctx, e.dentistA, e.child, 999999, journal.ItemDone, ""))
	last := plan.Items[3]
	require.NoError(t, e.svc.SetItemStatus(ctx, e.dentistA, e.child, last.ID, journal.ItemDone, ""))
	plan, err = e.svc.Plan(ctx, e.dentistA, e.child)
	require.NoError(t, err)
	require.Nil(t, plan, "a finished plan closes")

	// Recall: high risk (from the examination) → 12 months after it; the
	// teen and the adult were never examined and are overdue.
	recalls, err := e.svc.RecallDue(ctx, e.tenant, e.clinicA, e.now.AddDate(1, 1, 0))
	require.NoError(t, err)
	due := map[int64]journal.Recall{}
	for _, r := range recalls {
		due[r.PersonID] = r
	}
	require.Len(t, due, 3)
	wantDue := auth.DateIn(ex.CareTime, auth.Copenhagen).AddDate(1, 0, 0)
	require.Equal(t, wantDue, due[e.child].DueDate)
	require.Equal(t, journal.BasisInterval, due[e.child].Basis)
	require.True(t, due[e.teen].Overdue)
	soon, err := e.svc.RecallDue(ctx, e.tenant, e.clinicA, e.now.AddDate(0, 6, 0))
	require.NoError(t, err)
	require.Len(t, soon, 2, "the examined child is not due within 6 months")
	require.Positive(t, e.count(`SELECT count(*) FROM audit.event WHERE username = 'system:journal' AND object = $1`, fmt.Sprintf("journal.recall/%d", e.clinicA)))
	_, err = e.svc.ClinicRecall(ctx, e.dentistB, e.clinicA, e.now)
	require.ErrorIs(t, err, journal.ErrForbidden, "another clinic's list")

	// The portal: signed entries only, in plain language, for the custody holder of a child under 15.
	_, err = e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindNote, CareTime: e.now.Add(-time.Minute), Content: journal.Content{Text: "kladde om noget"}})
	require.NoError(t, err)
	plain, err := e.svc.SignedEntries(ctx, e.parentP, e.child, "da")
	require.NoError(t, err)
	require.Len(t, plain, 3)
	var text strings.Builder
	for _, p := range plain {
		text.WriteString(p.Title + ": " + strings.Join(p.Lines, "; ") + "\n")
	}
	require.NotContains(t, text.String(), "kladde", "unsigned drafts are not shown")
	require.Contains(t, text.String(), "øverste højre 6-års tand (16): caries i dentinen på tyggefladen")
	require.Contains(t, text.String(), "Fyldning: øverste højre 6-års tand (16), tyggefladen")
	_, err = e.svc.SignedEntries(ctx, e.parentP, e.teen, "da")
	require.ErrorIs(t, err, auth.ErrForbidden, "from 15 the young person has own access")
	_, err = e.svc.Entries(ctx, e.parentP, e.child)
	require.ErrorIs(t, err, auth.ErrForbidden, "citizens never see the staff view")
}

// The family's view lists open findings in plain language: a whole-tooth
// fracture is named, not left as "… (21): ".
func TestFamilyRecordFindings(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	exam := e.exam(journal.Finding{Tooth: 21, Condition: journal.CondFracture}, journal.Finding{Tooth: 16, Surfaces: "O", Condition: journal.CondCaries})
	exam.Sign = true
	_, err := e.svc.Create(ctx, e.dentistA, e.child, exam)
	require.NoError(t, err)
	fr, err := e.svc.FamilyRecord(ctx, e.parentP, e.child, "da")
	require.NoError(t, err)
	require.Equal(t, []string{
		"øverste højre 6-års tand (16): caries på tyggefladen",
		"øverste venstre midterste fortand (21): fraktur",
	}, fr.Findings)
	for _, l := range fr.Findings {
		require.False(t, strings.HasSuffix(strings.TrimSpace(l), ":"), l)
	}
}

func TestClinicReports(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	exam := e.exam(journal.Finding{Tooth: 36, Surfaces: "O", Condition: journal.CondCaries}, journal.Finding{Tooth: 26, Surfaces: "MOD", Condition: journal.CondFilling},
		journal.Finding{Tooth: 55, Surfaces: "MO", Condition: journal.CondCaries})
	exam.Sign = true
	_, err := e.svc.Create(ctx, e.dentistA, e.child, exam)
	require.NoError(t, err)
	teen := e.exam(journal.Finding{Tooth: 16, Condition: journal.CondSound})
	teen.Sign = true
	_, err = e.svc.Create(ctx, e.dentistA, e.teen, teen)
	require.NoError(t, err)

	totals, err := e.svc.ClinicIndices(ctx, e.dentistA, e.clinicA, e.now)
	require.NoError(t, err)
	byLabel := map[string]journal.GroupTotal{}
	for _, g := range totals {
		byLabel[g.Label] = g
	}
	require.Equal(t, 1, byLabel["9–11"].Children)
	require.Equal(t, 1, byLabel["9–11"].Examined)
	require.InDelta(t, 4.0, byLabel["9–11"].MeanDMFS, 1e-9, "36 O decayed + 26 MOD filled")
	require.InDelta(t, 2.0, byLabel["9–11"].MeanDefs, 1e-9, "55 MO decayed")
	require.Equal(t, 1, byLabel["15–17"].CariesFree)
	require.Equal(t, 1, byLabel["18–21"].Children)
	require.Zero(t, byLabel["18–21"].Examined)
	svg := journal.IndicesSVG(totals, "da")
	require.True(t, strings.HasPrefix(svg, "<svg"))
	require.Contains(t, svg, "9–11")

	// SCOR: the 16-year-old reached 15 last year; this year's extract has the 9-year-old? No: 9 is not a SCOR age.
	year := e.now.Year()
	recs, err := e.svc.ScorExtract(ctx, e.dentistA, e.clinicA, year)
	require.NoError(t, err)
	// The register report lists every child's CPR number: dentists only.
	_, err = e.svc.ScorExtract(ctx, e.assistantA, e.clinicA, year)
	require.ErrorIs(t, err, auth.ErrForbidden)
	for _, r := range recs {
		require.Contains(t, journal.ScorAges, r.Age)
	}
	var buf bytes.Buffer
	require.NoError(t, journal.CSVExporter{}.Export(&buf, []journal.ScorRecord{{Year: 2025, ClinicID: 3, PersonID: 1, CPR: "0101151234", BirthDate: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC),
		Sex: "female", Age: 7, Examined: true, ExamDate: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Dentition: journal.DentitionMixed,
		Indices: journal.Indices{DS: 1, DMFS: 1, DMFT: 1, Ds: 2, Fs: 1, DefS: 3, DefT: 2}, Teeth: "36:D:O 55:d:MO 75:f:O"}}))
	rows, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"year", "clinic_id", "cpr", "birth_date", "sex", "age", "examined", "exam_date", "dentition", "D", "M", "F", "DMFS", "DMFT", "d", "e", "f", "defs", "deft", "teeth"}, rows[0])
	require.Equal(t, []string{"2025", "3", "0101151234", "2015-01-01", "female", "7", "true", "2025-03-01", "mixed", "1", "0", "0", "1", "1", "2", "0", "1", "3", "2", "36:D:O 55:d:MO 75:f:O"}, rows[1])

	// The X-ray worklist: a linked study without a description, until one is written.
	link, err := e.svc.LinkImage(ctx, e.dentistA, e.child, journal.ImageLink{StudyUID: "1.2.826.0.1.3680043.2.1", Modality: "IO", Tooth: 36})
	require.NoError(t, err)
	_, err = e.svc.LinkImage(ctx, e.dentistA, e.child, journal.ImageLink{StudyUID: "not-a-uid"})
	require.ErrorIs(t, err, journal.ErrInvalid)
	wl, err := e.svc.XRayWorklist(ctx, e.dentistA, e.clinicA)
	require.NoError(t, err)
	require.Len(t, wl, 1)
	require.Equal(t, link.StudyUID, wl[0].Link.StudyUID)
	_, err = e.svc.Create(ctx, e.dentistA, e.child, journal.NewEntry{Kind: journal.KindXRay, CareTime: e.now.Add(-time.Minute),
		Content: journal.Content{Text: "Caries på 36 okklusalt, ind i dentinen.", XRay: &journal.XRay{StudyUID: link.StudyUID, Teeth: []journal.Tooth{36}, ShowsDisease: true}}})
	require.NoError(t, err)
	wl, err = e.svc.XRayWorklist(ctx, e.dentistA, e.clinicA)
	require.NoError(t, err)
	require.Empty(t, wl)
	tv, err := e.svc.Tooth(ctx, e.dentistA, e.child, 36, time.Time{})
	require.NoError(t, err)
	require.Len(t, tv.Links, 1)
	require.Len(t, tv.History, 2, "the examination and the X-ray description mention 36")
}
