package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

func TestActorContext(t *testing.T) {
	_, ok := audit.ActorFrom(context.Background())
	require.False(t, ok)
	a := actor(3, 9, "bo")
	got, ok := audit.ActorFrom(audit.WithActor(context.Background(), a))
	require.True(t, ok)
	require.Equal(t, a, got)
}

func TestRecordFillsActorFromContext(t *testing.T) {
	db := openDB(t)
	ctx := audit.WithActor(context.Background(), audit.Actor{
		UserID: 17, Username: "tandlaege.hansen", Role: "dentist", TenantID: 851,
		RequestID: "req-8f3a", SourceAddr: "[2001:db8::5]:50123",
	})
	before := time.Now()
	var xid int64
	require.NoError(t, postgres.InTenant(ctx, db.App, 851, func(tx pgx.Tx) error {
		if err := audit.Record(ctx, tx, audit.Event{
			Action: audit.ActionBreakGlass, PersonID: 4711, Object: "journal.entry/123",
			BreakGlassReason: "acute pain, own dentist absent",
			Detail:           map[string]any{"entries": 3, "section": "findings"},
		}); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT txid_current()").Scan(&xid)
	}))

	var (
		at                                          time.Time
		tenant, user, person, writer                *int64
		username, role, action, object, reqID, addr string
		reason, detail                              *string
	)
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT at, tenant_id, user_id, username, role, action, person_id,
		object, request_id, host(source_addr), break_glass_reason, detail::text, writer_xid FROM audit.event`).
		Scan(&at, &tenant, &user, &username, &role, &action, &person, &object, &reqID, &addr, &reason, &detail, &writer))
	require.EqualValues(t, 851, *tenant)
	require.EqualValues(t, 17, *user)
	require.Equal(t, "tandlaege.hansen", username)
	require.Equal(t, "dentist", role)
	require.Equal(t, "break_glass", action)
	require.EqualValues(t, 4711, *person)
	require.Equal(t, "journal.entry/123", object)
	require.Equal(t, "req-8f3a", reqID)
	require.Equal(t, "2001:db8::5", addr, "port dropped")
	require.Equal(t, "acute pain, own dentist absent", *reason)
	var d map[string]any
	require.NoError(t, json.Unmarshal([]byte(*detail), &d))
	require.Equal(t, map[string]any{"entries": 3.0, "section": "findings"}, d)
	require.Equal(t, xid, *writer, "writer_xid is the writing transaction")
	require.WithinRange(t, at, before.Add(-time.Second), time.Now().Add(time.Second))

	// A system actor without user id, and no person: NULLs.
	record(t, db.App, audit.Actor{Username: "system:import", Role: "system", TenantID: 851}, audit.Event{Action: audit.ActionCreate, Object: "dicom.study/1.2.840.10008.99"})
	require.EqualValues(t, 1, count(t, db.Admin, "SELECT count(*) FROM audit.event WHERE user_id IS NULL AND person_id IS NULL AND source_addr IS NULL AND detail IS NULL"))
}

func TestRecordCommitsWithTheRequest(t *testing.T) {
	db := openDB(t)
	ctx := audit.WithActor(context.Background(), actor(1, 7, "anna"))
	err := postgres.InTenant(ctx, db.App, 1, func(tx pgx.Tx) error {
		if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: 1, Object: "journal.entry/1"}); err != nil {
			return err
		}
		return errors.New("handler failed")
	})
	require.EqualError(t, err, "handler failed")
	require.Zero(t, count(t, db.Admin, "SELECT count(*) FROM audit.event"), "rolled back with the request")
}

func TestRecordRefusesBadEvents(t *testing.T) {
	db := openDB(t)
	ok := audit.Event{Action: audit.ActionRead, PersonID: 42, Object: "journal.entry/123"}
	with := func(f func(*audit.Event)) audit.Event { e := ok; f(&e); return e }
	cases := []struct {
		name     string
		noActor  bool
		actor    audit.Actor
		txTenant int64 // -1: no tenant set
		ev       audit.Event
		want     error
	}{
		{name: "valid", ev: ok},
		{name: "valid study uid", ev: with(func(e *audit.Event) { e.Object = "dicom.study/1.2.840.113619.2.55.3.604688119" })},
		{name: "valid no object", ev: with(func(e *audit.Event) { e.Object = ""; e.Action = audit.ActionLogin; e.PersonID = 0 })},
		{name: "no actor", noActor: true, ev: ok, want: audit.ErrNoActor},
		{name: "unknown action", ev: with(func(e *audit.Event) { e.Action = "peek" }), want: audit.ErrInvalidEvent},
		{name: "break glass without reason", ev: with(func(e *audit.Event) { e.Action = audit.ActionBreakGlass }), want: audit.ErrInvalidEvent},
		{name: "name as object id", ev: with(func(e *audit.Event) { e.Object = "patient/Jensen" }), want: audit.ErrPersonalData},
		{name: "free text object", ev: with(func(e *audit.Event) { e.Object = "Journal of Mads Jensen" }), want: audit.ErrPersonalData},
		{name: "cpr in object", ev: with(func(e *audit.Event) { e.Object = "person/0101901234" }), want: audit.ErrPersonalData},
		{name: "cpr with hyphen in reason", ev: with(func(e *audit.Event) { e.BreakGlassReason = "child 010190-1234 in pain" }), want: audit.ErrPersonalData},
		{name: "cpr in detail", ev: with(func(e *audit.Event) { e.Detail = map[string]any{"query": "3112051234"} }), want: audit.ErrPersonalData},
		{name: "cpr nested in detail", ev: with(func(e *audit.Event) { e.Detail = map[string]any{"q": []any{map[string]any{"v": "311205 1234"}}} }), want: audit.ErrPersonalData},
		{name: "bad detail key", ev: with(func(e *audit.Event) { e.Detail = map[string]any{"Patient Name": 1} }), want: audit.ErrInvalidEvent},
		{name: "bad source address", actor: audit.Actor{Username: "a", TenantID: 1, SourceAddr: "evil.example"}, ev: ok, want: audit.ErrInvalidEvent},
		{name: "other tenant than the transaction", actor: actor(2, 7, "anna"), ev: ok, want: audit.ErrWrongTenant},
		{name: "transaction without tenant", txTenant: -1, ev: ok, want: audit.ErrWrongTenant},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			a := tc.actor
			if a.TenantID == 0 {
				a = actor(1, 7, "anna")
			}
			if !tc.noActor {
				ctx = audit.WithActor(ctx, a)
			}
			before := count(t, db.Admin, "SELECT count(*) FROM audit.event")
			tx, err := db.App.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(ctx) //nolint:errcheck
			if tc.txTenant != -1 {
				_, err = tx.Exec(ctx, "SELECT set_config('molar.tenant', '1', true)")
				require.NoError(t, err)
			}
			err = audit.Record(ctx, tx, tc.ev)
			if tc.want == nil {
				require.NoError(t, err)
				require.NoError(t, tx.Commit(ctx))
				require.Equal(t, before+1, count(t, db.Admin, "SELECT count(*) FROM audit.event"))
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), "audit:")
			require.NotContains(t, err.Error(), "1234", "errors never repeat the personal data")
			_ = tx.Rollback(ctx)
			require.Equal(t, before, count(t, db.Admin, "SELECT count(*) FROM audit.event"))
		})
	}
}
