package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

type fixture struct {
	db  *pgtest.DB
	ids []int64 // committed event ids in id order
	gap int64   // an id taken by a rolled-back writer
}

// eventAtSeal returns the event id sealed as seal seq.
func (f fixture) eventAtSeal(t *testing.T, seq int64) int64 {
	return count(t, f.db.Admin, "SELECT event_id FROM audit.seal WHERE seq = $1", seq)
}

// sealedFixture writes ten events in two tenants with one rolled-back
// writer in the middle, seals them and checks that the chain verifies.
func sealedFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{db: openDB(t)}
	for i := range 10 {
		tenant := int64(i%2 + 1)
		record(t, f.db.App, actor(tenant, int64(10+i), fmt.Sprintf("user%d", i)), audit.Event{
			Action: audit.ActionRead, PersonID: 100 + int64(i), Object: fmt.Sprintf("journal.entry/%d", i),
			Detail: map[string]any{"n": i},
		})
		if i == 4 {
			// A writer that rolls back leaves an unused id; forged rows take it.
			ctx := audit.WithActor(context.Background(), actor(1, 99, "gone"))
			err := postgres.InTenant(ctx, f.db.App, 1, func(tx pgx.Tx) error {
				if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: 1}); err != nil {
					return err
				}
				if err := tx.QueryRow(ctx, "SELECT currval('audit.event_id_seq')").Scan(&f.gap); err != nil {
					return err
				}
				return errRollback
			})
			require.ErrorIs(t, err, errRollback)
		}
	}
	rows, err := f.db.Admin.Query(context.Background(), "SELECT id FROM audit.event ORDER BY id")
	require.NoError(t, err)
	f.ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Len(t, f.ids, 10)
	require.Equal(t, f.ids[4]+1, f.gap)
	require.Equal(t, f.ids[5]-1, f.gap)
	require.Equal(t, 10, sealAll(t, f.db.App))
	rep, err := audit.Verify(context.Background(), f.db.App)
	require.NoError(t, err)
	require.True(t, rep.OK, "clean chain: %+v", rep.Problems)
	require.EqualValues(t, 10, rep.Sealed)
	return f
}

// superuser runs statements in one transaction as the superuser; "$1" in a
// statement is bound to f.gap.
func superuser(t *testing.T, f fixture, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, postgres.InTx(ctx, f.db.Admin, func(tx pgx.Tx) error {
		for _, s := range stmts {
			var err error
			if strings.Contains(s, "$1") {
				_, err = tx.Exec(ctx, s, f.gap)
			} else {
				_, err = tx.Exec(ctx, s)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}))
}

type finding struct {
	Kind    audit.Kind
	EventID int64
}

func findings(rep audit.Report) []finding {
	var out []finding
	for _, p := range rep.Problems {
		out = append(out, finding{p.Kind, p.EventID})
	}
	slices.SortFunc(out, func(a, b finding) int {
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return int(a.EventID - b.EventID)
	})
	return out
}

func TestVerifyDetectsTampering(t *testing.T) {
	type tc struct {
		name   string
		tamper func(t *testing.T, f fixture)
		// sealAfter runs the sealer after tampering: what it must not hide.
		sealAfter bool
		want      func(t *testing.T, f fixture) []finding
	}
	const (
		offEvent = "ALTER TABLE audit.event DISABLE TRIGGER append_only"
		onEvent  = "ALTER TABLE audit.event ENABLE TRIGGER append_only"
		offSeal  = "ALTER TABLE audit.seal DISABLE TRIGGER append_only"
		offHead  = "ALTER TABLE audit.head DISABLE TRIGGER check_head"
	)
	cases := []tc{
		{
			name: "action of a row changed",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, offEvent, fmt.Sprintf("UPDATE audit.event SET action = 'export' WHERE id = %d", f.ids[3]), onEvent)
			},
			want: func(t *testing.T, f fixture) []finding { return []finding{{audit.KindChanged, f.ids[3]}} },
		},
		{
			name: "person changed with triggers skipped by replication role",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, "SET LOCAL session_replication_role = replica",
					fmt.Sprintf("UPDATE audit.event SET person_id = 1 WHERE id = %d", f.ids[7]))
			},
			want: func(t *testing.T, f fixture) []finding { return []finding{{audit.KindChanged, f.ids[7]}} },
		},
		{
			name: "time moved by one microsecond",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, offEvent, fmt.Sprintf("UPDATE audit.event SET at = at + interval '1 microsecond' WHERE id = %d", f.ids[0]), onEvent)
			},
			want: func(t *testing.T, f fixture) []finding { return []finding{{audit.KindChanged, f.ids[0]}} },
		},
		{
			name: "detail changed",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, offEvent, fmt.Sprintf(`UPDATE audit.event SET detail = '{"n": 99}' WHERE id = %d`, f.ids[9]), onEvent)
			},
			want: func(t *testing.T, f fixture) []finding { return []finding{{audit.KindChanged, f.ids[9]}} },
		},
		{
			name: "row deleted",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, offEvent, fmt.Sprintf("DELETE FROM audit.event WHERE id = %d", f.ids[4]), onEvent)
			},
			sealAfter: true,
			want:      func(t *testing.T, f fixture) []finding { return []finding{{audit.KindRemoved, f.ids[4]}} },
		},
		{
			name: "forged row in the middle with an old time and writer",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, `INSERT INTO audit.event (id, at, tenant_id, user_id, username, role, action, person_id, object, writer_xid)
					SELECT $1, at + interval '1 millisecond', tenant_id, user_id, username, role, 'read', 4711, 'journal.entry/77', writer_xid
					FROM audit.event WHERE id = $1::bigint - 1`)
			},
			sealAfter: true, // the sealer must leave it unsealed
			want:      func(t *testing.T, f fixture) []finding { return []finding{{audit.KindInserted, f.gap}} },
		},
		{
			name: "forged row in the middle with an old time and a fresh writer",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, `INSERT INTO audit.event (id, at, tenant_id, username, role, action, person_id, object)
					VALUES ($1, now() - interval '1 hour', 1, 'nobody', 'dentist', 'read', 4711, 'journal.entry/77')`)
			},
			want: func(t *testing.T, f fixture) []finding { return []finding{{audit.KindInserted, f.gap}} },
		},
		{
			name: "head hash changed",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, offHead, "UPDATE audit.head SET hash = sha256('forged'::bytea)")
			},
			want: func(t *testing.T, f fixture) []finding { return []finding{{audit.KindHead, 0}} },
		},
		{
			name: "head moved back",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, offHead, "UPDATE audit.head SET seq = 9, hash = (SELECT hash FROM audit.seal WHERE seq = 9)")
			},
			want: func(t *testing.T, f fixture) []finding { return []finding{{audit.KindHead, 0}} },
		},
		{
			name: "seal in the middle deleted",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, offSeal, "DELETE FROM audit.seal WHERE seq = 3")
			},
			sealAfter: true,
			want: func(t *testing.T, f fixture) []finding {
				return []finding{{audit.KindInserted, f.ids[2]}, {audit.KindRemoved, 0}}
			},
		},
		{
			name: "last seal deleted",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, offSeal, "DELETE FROM audit.seal WHERE seq = 10")
			},
			want: func(t *testing.T, f fixture) []finding {
				return []finding{{audit.KindHead, 0}, {audit.KindInserted, f.ids[9]}}
			},
		},
		{
			name: "seal hash replaced",
			tamper: func(t *testing.T, f fixture) {
				superuser(t, f, offSeal, "UPDATE audit.seal SET hash = sha256('x'::bytea) WHERE seq = 4")
			},
			want: func(t *testing.T, f fixture) []finding {
				return []finding{{audit.KindChanged, f.eventAtSeal(t, 4)}, {audit.KindLink, f.eventAtSeal(t, 5)}}
			},
		},
		{
			name: "two events swapped in the chain",
			tamper: func(t *testing.T, f fixture) {
				a, b := f.eventAtSeal(t, 2), f.eventAtSeal(t, 3)
				superuser(t, f, offSeal, "UPDATE audit.seal SET event_id = -1 WHERE seq = 2",
					fmt.Sprintf("UPDATE audit.seal SET event_id = %d WHERE seq = 3", a),
					fmt.Sprintf("UPDATE audit.seal SET event_id = %d WHERE seq = 2", b))
			},
			want: func(t *testing.T, f fixture) []finding {
				return []finding{{audit.KindChanged, f.ids[1]}, {audit.KindChanged, f.ids[2]}}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := sealedFixture(t)
			c.tamper(t, f)
			if c.sealAfter {
				sealAll(t, f.db.App)
			}
			want := c.want(t, f)
			slices.SortFunc(want, func(a, b finding) int {
				if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
					return c
				}
				return int(a.EventID - b.EventID)
			})
			for _, pool := range []audit.DB{f.db.App, f.db.Admin} {
				rep, err := audit.Verify(context.Background(), pool)
				require.NoError(t, err)
				require.False(t, rep.OK)
				require.Equal(t, want, findings(rep), "%+v", rep.Problems)
			}
			var out bytes.Buffer
			rep, err := audit.VerifyTo(context.Background(), f.db.App, &out, audit.VerifyOptions{})
			require.NoError(t, err)
			require.False(t, rep.OK)
			require.Contains(t, out.String(), "FAILED")
			require.Contains(t, out.String(), string(want[0].Kind))
		})
	}
}

func TestVerifyAnchors(t *testing.T) {
	f := sealedFixture(t)
	ctx := context.Background()
	rep, err := audit.Verify(ctx, f.db.App)
	require.NoError(t, err)
	good, err := audit.ParseAnchor(rep.Head.String())
	require.NoError(t, err)
	require.Equal(t, rep.Head, good)

	rep, err = audit.VerifyWith(ctx, f.db.App, audit.VerifyOptions{Anchors: []audit.Anchor{good}})
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Problems)

	wrong := audit.Anchor{Seq: 4, Hash: bytes.Repeat([]byte{7}, audit.HashSize)}
	beyond := audit.Anchor{Seq: 40, Hash: good.Hash}
	rep, err = audit.VerifyWith(ctx, f.db.App, audit.VerifyOptions{Anchors: []audit.Anchor{good, wrong, beyond}})
	require.NoError(t, err)
	require.Equal(t, []finding{{audit.KindAnchor, 0}, {audit.KindAnchor, f.eventAtSeal(t, 4)}}, findings(rep))

	for _, bad := range []string{"", "12", "x:00", "3:zz", "3:0011"} {
		_, err := audit.ParseAnchor(bad)
		require.Error(t, err, bad)
	}
}

func TestVerifyToPrintsProgressForLongChains(t *testing.T) {
	db := openDB(t)
	ctx := audit.WithActor(context.Background(), actor(1, 7, "anna"))
	require.NoError(t, postgres.InTenant(ctx, db.App, 1, func(tx pgx.Tx) error {
		for i := range 250 {
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionSearch, Object: fmt.Sprintf("search/%d", i)}); err != nil {
				return err
			}
		}
		return nil
	}))
	sealAll(t, db.App)
	var out bytes.Buffer
	var calls int
	rep, err := audit.VerifyTo(ctx, db.App, &out, audit.VerifyOptions{PageSize: 10, Progress: func(done, total int64) {
		calls++
		require.EqualValues(t, 250, total)
	}})
	require.NoError(t, err)
	require.True(t, rep.OK)
	require.Equal(t, 26, calls)
	text := out.String()
	require.Equal(t, 10, strings.Count(text, "verifying: "), text)
	require.Contains(t, text, "verifying: 250 of 250 seals checked (100%")
	require.Contains(t, text, "audit chain: 250 sealed events, 0 not yet sealed")
	require.Contains(t, text, "result:      OK")

	// Short chains print no progress.
	out.Reset()
	_, err = audit.VerifyTo(ctx, db.App, &out, audit.VerifyOptions{})
	require.NoError(t, err)
	require.NotContains(t, out.String(), "verifying: ")
}

func TestVerifyReportsADatabaseError(t *testing.T) {
	db := openDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := audit.Verify(ctx, db.App)
	require.Error(t, err)
	require.True(t, errors.Is(err, context.Canceled))
	require.True(t, strings.HasPrefix(err.Error(), "audit: "), err.Error())
}
