package audit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// The runtime role may insert and read audit rows, and nothing else.
func TestRuntimeRoleCannotChangeAuditRows(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	record(t, db.App, actor(1, 7, "anna"), audit.Event{Action: audit.ActionRead, PersonID: 42, Object: "journal.entry/1"})
	record(t, db.App, actor(1, 7, "anna"), audit.Event{Action: audit.ActionRead, PersonID: 42, Object: "journal.entry/2"})
	require.Equal(t, 2, sealAll(t, db.App))

	const denied = "42501"  // insufficient_privilege
	const refused = "P0001" // raised by the audit triggers
	cases := []struct {
		name, sql string
		code      string
	}{
		{"update event", "UPDATE audit.event SET action = 'export'", denied},
		{"update event by id", "UPDATE audit.event SET object = 'x/1' WHERE id = 1", denied},
		{"delete event", "DELETE FROM audit.event", denied},
		{"delete event by id", "DELETE FROM audit.event WHERE id = 1", denied},
		{"truncate event", "TRUNCATE audit.event", denied},
		{"insert event with chosen id", "INSERT INTO audit.event (id, tenant_id, action) VALUES (999, 1, 'read')", denied},
		{"insert event with chosen time", "INSERT INTO audit.event (tenant_id, action, at) VALUES (1, 'read', now() - interval '1 year')", denied},
		{"insert event with chosen writer", "INSERT INTO audit.event (tenant_id, action, writer_xid) VALUES (1, 'read', 1)", denied},
		{"reset id sequence", "SELECT setval('audit.event_id_seq', 1)", denied},
		{"update seal", "UPDATE audit.seal SET hash = hash", denied},
		{"delete seal", "DELETE FROM audit.seal", denied},
		{"truncate seal", "TRUNCATE audit.seal", denied},
		{"insert seal with chosen time", "INSERT INTO audit.seal (seq, event_id, prev_hash, hash, sealed_at) SELECT 3, 99, hash, hash, now() FROM audit.seal WHERE seq = 2", denied},
		{"delete head", "DELETE FROM audit.head", denied},
		{"truncate head", "TRUNCATE audit.head", denied},
		{"insert head", "INSERT INTO audit.head (id, seq, hash, horizon_xid) VALUES (2, 0, '\\x00', 0)", denied},
		{"disable trigger", "ALTER TABLE audit.event DISABLE TRIGGER append_only", denied},
		{"drop trigger", "DROP TRIGGER append_only ON audit.event", denied},
		{"disable row security", "ALTER TABLE audit.event DISABLE ROW LEVEL SECURITY", denied},
		// What the runtime role may write is checked by triggers.
		{"move head back", "UPDATE audit.head SET seq = 1, hash = (SELECT hash FROM audit.seal WHERE seq = 1)", refused},
		{"head to a foreign hash", "UPDATE audit.head SET hash = sha256('x'::bytea)", refused},
		{"head past the chain", "UPDATE audit.head SET seq = 3", refused},
		{"seal that does not link", "INSERT INTO audit.seal (seq, event_id, prev_hash, hash) VALUES (3, 99, sha256('x'::bytea), sha256('y'::bytea))", refused},
		{"seal that skips a number", "INSERT INTO audit.seal (seq, event_id, prev_hash, hash) SELECT 4, 99, hash, sha256('y'::bytea) FROM audit.seal WHERE seq = 2", refused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := postgres.InTenant(ctx, db.App, 1, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, tc.sql)
				return err
			})
			require.Error(t, err)
			require.Equal(t, tc.code, sqlState(err), "%v", err)
		})
	}
	// Nothing changed, and the chain still verifies.
	require.EqualValues(t, 2, count(t, db.Admin, "SELECT count(*) FROM audit.event"))
	require.EqualValues(t, 2, count(t, db.Admin, "SELECT count(*) FROM audit.seal"))
	rep, err := audit.Verify(ctx, db.App)
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Problems)

	// Control: the same role can append seals and move the head the way
	// the sealer does, so the refusals above are about the rows, not a
	// missing grant on the tables.
	record(t, db.App, actor(1, 7, "anna"), audit.Event{Action: audit.ActionRead, PersonID: 42, Object: "journal.entry/3"})
	require.Equal(t, 1, sealAll(t, db.App))
}

// Owner and superuser are stopped by the trigger until they remove it.
func TestOwnerCannotChangeRowsWithoutDroppingTrigger(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	record(t, db.App, actor(1, 7, "anna"), audit.Event{Action: audit.ActionRead, PersonID: 42, Object: "journal.entry/1"})
	sealAll(t, db.App)

	for _, role := range []string{"superuser", postgres.OwnerRole} {
		for _, stmt := range []string{
			"UPDATE audit.event SET action = 'export'",
			"DELETE FROM audit.event",
			"TRUNCATE audit.event",
			"UPDATE audit.seal SET hash = sha256('x'::bytea)",
			"DELETE FROM audit.seal",
			"TRUNCATE audit.seal",
			"DELETE FROM audit.head",
		} {
			t.Run(role+"/"+stmt, func(t *testing.T) {
				err := postgres.InTx(ctx, db.Admin, func(tx pgx.Tx) error {
					if role != "superuser" {
						if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+role); err != nil {
							return err
						}
					}
					_, err := tx.Exec(ctx, stmt)
					return err
				})
				require.Error(t, err)
				require.Equal(t, "P0001", sqlState(err), "%v", err)
				require.Contains(t, err.Error(), "append-only")
			})
		}
	}
	// With the trigger disabled the owner can change a row: the trigger is
	// what stopped it (and the chain shows the change, see the verify tests).
	err := postgres.InTx(ctx, db.Admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+postgres.OwnerRole); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE audit.event DISABLE TRIGGER append_only"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "UPDATE audit.event SET action = 'export'")
		if err == nil && tag.RowsAffected() != 1 {
			return errors.New("no row updated")
		}
		if err != nil {
			return err
		}
		return errors.New("roll back")
	})
	require.EqualError(t, err, "roll back")
}
