package audit_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

func TestAccessLogIsTenantScopedNewestFirst(t *testing.T) {
	db := openDB(t)
	const person = 42
	nurse := audit.Actor{UserID: 1, Username: "sygeplejerske.ane", Role: "dental_nurse", TenantID: 1}
	dentist := audit.Actor{UserID: 2, Username: "tandlaege.bo", Role: "dentist", TenantID: 1}
	other := audit.Actor{UserID: 3, Username: "tandlaege.eva", Role: "dentist", TenantID: 1}
	foreign := audit.Actor{UserID: 4, Username: "kbh.dentist", Role: "dentist", TenantID: 2}

	record(t, db.App, nurse, audit.Event{Action: audit.ActionRead, PersonID: person, Object: "journal.entry/1"})
	record(t, db.App, dentist, audit.Event{Action: audit.ActionUpdate, PersonID: person, Object: "journal.entry/2"})
	record(t, db.App, other, audit.Event{Action: audit.ActionBreakGlass, PersonID: person, Object: "journal/42", BreakGlassReason: "acute referral"})
	record(t, db.App, dentist, audit.Event{Action: audit.ActionRead, PersonID: 43, Object: "journal.entry/3"})
	record(t, db.App, foreign, audit.Event{Action: audit.ActionRead, PersonID: person, Object: "journal.entry/9"})
	record(t, db.App, dentist, audit.Event{Action: audit.ActionLogin})

	ctx := context.Background()
	logOf := func(tenant, person int64, limit int) (out []audit.Entry) {
		t.Helper()
		require.NoError(t, postgres.InTenant(ctx, db.App, tenant, func(tx pgx.Tx) error {
			var err error
			out, err = audit.AccessLog(ctx, tx, person, limit)
			return err
		}))
		return out
	}
	type line struct {
		User, Role string
		Action     audit.Action
		Object     string
		BreakGlass bool
		Reason     string
	}
	lines := func(es []audit.Entry) (out []line) {
		for i, e := range es {
			out = append(out, line{e.Username, e.Role, e.Action, e.Object, e.BreakGlass, e.BreakGlassReason})
			require.False(t, e.At.IsZero())
			if i > 0 {
				require.False(t, e.At.After(es[i-1].At), "newest first")
			}
		}
		return out
	}

	cases := []struct {
		name           string
		tenant, person int64
		limit          int
		want           []line
	}{
		{"tenant 1", 1, person, 0, []line{
			{"tandlaege.eva", "dentist", audit.ActionBreakGlass, "journal/42", true, "acute referral"},
			{"tandlaege.bo", "dentist", audit.ActionUpdate, "journal.entry/2", false, ""},
			{"sygeplejerske.ane", "dental_nurse", audit.ActionRead, "journal.entry/1", false, ""},
		}},
		{"limit", 1, person, 2, []line{
			{"tandlaege.eva", "dentist", audit.ActionBreakGlass, "journal/42", true, "acute referral"},
			{"tandlaege.bo", "dentist", audit.ActionUpdate, "journal.entry/2", false, ""},
		}},
		{"tenant 2 sees only its own rows", 2, person, 10, []line{
			{"kbh.dentist", "dentist", audit.ActionRead, "journal.entry/9", false, ""},
		}},
		{"other person", 1, 43, 10, []line{
			{"tandlaege.bo", "dentist", audit.ActionRead, "journal.entry/3", false, ""},
		}},
		{"unknown person", 1, 4711, 10, nil},
		{"tenant without rows", 3, person, 10, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, lines(logOf(tc.tenant, tc.person, tc.limit)))
		})
	}

	// Outside a tenant transaction: an error, not an empty list.
	err := postgres.InTx(ctx, db.App, func(tx pgx.Tx) error {
		_, err := audit.AccessLog(ctx, tx, person, 10)
		return err
	})
	require.ErrorIs(t, err, audit.ErrNoTenant)
	// And row-level security holds for direct reads too.
	require.Zero(t, count(t, db.App, "SELECT count(*) FROM audit.event"))
}
