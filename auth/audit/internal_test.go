package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func ptr[T any](v T) *T { return &v }

// The canonical encoding is part of the stored chain: changing it would make
// every existing chain fail verification. This pins it (the value was
// computed independently from the format described at appendCanonical).
func TestCanonicalEncodingIsStable(t *testing.T) {
	e := eventRow{
		ID: ptr[int64](7), At: ptr(time.Date(2026, 3, 1, 9, 30, 0, 123456000, time.UTC)),
		TenantID: ptr[int64](851), UserID: ptr[int64](17), Username: ptr("anna"), Role: ptr("dentist"),
		Action: ptr("read"), PersonID: ptr[int64](4711), Object: ptr("journal.entry/123"),
		RequestID: ptr("req-1"), SourceAddr: ptr("192.0.2.1"), Detail: ptr(`{"n": 1}`), WriterXID: ptr[int64](900),
	}
	sum, _ := chainHash(zeroHash, &e, nil)
	require.Equal(t, "ecee1c8bbcd0c198e5055c04ec7dbe270f046082d41634b607a00bccda50d385", hex.EncodeToString(sum))
}

func TestCanonicalEncodingIsInjective(t *testing.T) {
	base := func() eventRow {
		return eventRow{ID: ptr[int64](1), At: ptr(time.Unix(0, 0)), TenantID: ptr[int64](1),
			Username: ptr("ab"), Role: ptr("c"), Action: ptr("read"), Object: ptr(""), WriterXID: ptr[int64](5)}
	}
	variants := map[string]func(*eventRow){
		"base":               func(*eventRow) {},
		"boundary moved":     func(e *eventRow) { e.Username, e.Role = ptr("a"), ptr("bc") },
		"null vs empty":      func(e *eventRow) { e.Object = nil },
		"null vs zero":       func(e *eventRow) { e.UserID = ptr[int64](0) },
		"fields swapped":     func(e *eventRow) { e.Username, e.Role = ptr("c"), ptr("ab") },
		"one microsecond":    func(e *eventRow) { e.At = ptr(time.Unix(0, 1000)) },
		"person vs user":     func(e *eventRow) { e.PersonID = ptr[int64](3) },
		"user vs person":     func(e *eventRow) { e.UserID = ptr[int64](3) },
		"detail":             func(e *eventRow) { e.Detail = ptr("{}") },
		"reason":             func(e *eventRow) { e.BreakGlassReason = ptr("") },
		"writer":             func(e *eventRow) { e.WriterXID = ptr[int64](6) },
		"request into addr":  func(e *eventRow) { e.SourceAddr = ptr("") },
		"request id present": func(e *eventRow) { e.RequestID = ptr("") },
	}
	seen := map[string]string{}
	for name, f := range variants {
		e := base()
		f(&e)
		enc := string(appendCanonical(nil, &e))
		if other, dup := seen[enc]; dup {
			t.Fatalf("%q and %q encode alike", name, other)
		}
		seen[enc] = name
	}
}

func TestLooksLikeCPR(t *testing.T) {
	cases := []struct {
		s    string
		want bool
	}{
		{"0101901234", true},
		{"010190-1234", true},
		{"010190 1234", true},
		{"person/3112051234", true},
		{"x0101901234y", true},
		{"", false},
		{"journal.entry/123", false},
		{"01019012345", false},         // eleven digits
		{"1700000000", false},          // a Unix time: month 00
		{"4101901234", false},          // day 41
		{"0113901234", false},          // month 13
		{"1.2.840.10008.5.1.4", false}, // a UID
		{"010190-12345", false},
		{"010190-123", false},
	}
	for _, c := range cases {
		require.Equal(t, c.want, looksLikeCPR(c.s), c.s)
	}
}

// A superuser who rewrites and re-hashes the chain after changing a row
// passes the internal checks; anchors taken from the sealer's log catch it.
func TestAnchorsFromTheLogCatchARewrittenChain(t *testing.T) {
	db := pgtest.Open(t, Migrations())
	ctx := WithActor(context.Background(), Actor{UserID: 1, Username: "anna", Role: "dentist", TenantID: 1})
	for i := range 5 {
		require.NoError(t, postgres.InTenant(ctx, db.App, 1, func(tx pgx.Tx) error {
			return Record(ctx, tx, Event{Action: ActionRead, PersonID: int64(40 + i), Object: "journal.entry/1"})
		}))
	}
	var logBuf bytes.Buffer
	s := &Sealer{Pool: db.App, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}
	n, err := s.SealOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	m := regexp.MustCompile(`level=INFO msg="audit chain sealed" events=5 seq=5 anchor=(\S+)`).FindStringSubmatch(logBuf.String())
	require.NotNil(t, m, logBuf.String())
	anchor, err := ParseAnchor(m[1])
	require.NoError(t, err)
	require.NotContains(t, logBuf.String(), "anna", "no personal data in the log")

	// Rewrite: change event 3 and re-hash seals 3..5 and the head.
	require.NoError(t, postgres.InTx(ctx, db.Admin, func(tx pgx.Tx) error {
		for _, q := range []string{
			"SET LOCAL session_replication_role = replica",
			"UPDATE audit.event SET person_id = 99 WHERE id = 3",
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, "SELECT * FROM audit.chain_page(0, 100)")
		if err != nil {
			return err
		}
		type seal struct {
			seq  int64
			hash []byte
		}
		var seals []seal
		prev := zeroHash
		for rows.Next() {
			var (
				seq, eventID   int64
				prevHash, hash []byte
				sealedAt       time.Time
				ev             eventRow
			)
			if err := rows.Scan(append([]any{&seq, &eventID, &prevHash, &hash, &sealedAt}, ev.scanTargets()...)...); err != nil {
				return err
			}
			sum, _ := chainHash(prev, &ev, nil)
			seals = append(seals, seal{seq, sum})
			prev = sum
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i, s := range seals {
			p := zeroHash
			if i > 0 {
				p = seals[i-1].hash
			}
			if _, err := tx.Exec(ctx, "UPDATE audit.seal SET prev_hash = $1, hash = $2 WHERE seq = $3", p, s.hash, s.seq); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, "UPDATE audit.head SET hash = $1", prev)
		return err
	}))

	rep, err := Verify(ctx, db.App)
	require.NoError(t, err)
	require.True(t, rep.OK, "without anchors a full rewrite is consistent: %+v", rep.Problems)

	rep, err = VerifyWith(ctx, db.App, VerifyOptions{Anchors: []Anchor{anchor}})
	require.NoError(t, err)
	require.False(t, rep.OK)
	require.Len(t, rep.Problems, 1)
	require.Equal(t, KindAnchor, rep.Problems[0].Kind)
	require.EqualValues(t, 5, rep.Problems[0].Seq)
}

// A CPR number in a detail value is refused whatever Go type carries it.
func TestDetailWithCPRRefusedInAnyType(t *testing.T) {
	a := Actor{UserID: 1, Username: "u", Role: "dentist", TenantID: 1}
	type ref struct{ Patient string }
	for name, v := range map[string]any{
		"string":             "010190-1234",
		"map[string]string":  map[string]string{"patient": "0101901234"},
		"[]int64":            []int64{1501901234},
		"int32 slice in any": []any{[]int32{1}, []string{"x"}, map[string]int64{"n": 1501901234}},
		"struct":             ref{Patient: "0101901234"},
		"pointer":            ptr("0101901234"),
		"uint32":             uint32(1501901234),
	} {
		err := validate(a, Event{Action: ActionRead, Object: "journal.entry/1", Detail: map[string]any{"v": v}})
		require.ErrorIs(t, err, ErrPersonalData, name)
	}
	require.NoError(t, validate(a, Event{Action: ActionRead, Object: "journal.entry/1",
		Detail: map[string]any{"ids": []int64{12, 13}, "m": map[string]string{"kind": "bitewing"}, "n": int32(3)}}))
}
