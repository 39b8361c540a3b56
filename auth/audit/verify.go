package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// Kind classifies a Problem found by Verify.
type Kind string

// Problem kinds.
const (
	// KindChanged: an event's columns no longer produce its seal's hash.
	KindChanged Kind = "changed"
	// KindRemoved: a seal points to a missing event, or seals are missing
	// (a gap in the sequence numbers; EventID is 0 then).
	KindRemoved Kind = "removed"
	// KindInserted: an event has no seal although the sealer would have
	// sealed it already.
	KindInserted Kind = "inserted"
	// KindLink: a seal's prev_hash is not the previous seal's hash.
	KindLink Kind = "link"
	// KindHead: audit.head does not match the last seal.
	KindHead Kind = "head"
	// KindAnchor: a seal no longer has the hash of an external anchor, or
	// the chain ends before it.
	KindAnchor Kind = "anchor"
)

// Problem is one finding of Verify.
type Problem struct {
	Kind    Kind
	EventID int64 // 0 when no single event is concerned
	Seq     int64 // the seal concerned, 0 when none
	Detail  string
}

// Report is the result of Verify.
type Report struct {
	// Sealed is the number of seals checked.
	Sealed int64
	// Pending is the number of events not sealed yet that are not suspect
	// (written recently, or whose writer was still running at the last seal).
	Pending int64
	// Head is what audit.head records; End is the last seal of the chain.
	Head, End Anchor
	// Horizon is the sealing horizon (transaction id) recorded in the head.
	Horizon int64
	// Problems found, at most VerifyOptions.MaxProblems; Omitted counts the rest.
	Problems []Problem
	Omitted  int
	// OK is true when nothing was found.
	OK bool
}

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Grace is how much older than the last seal an unsealed event below the
	// highest sealed id may be before it is reported as inserted (default 5
	// minutes): writers' transactions may take that long.
	Grace time.Duration
	// Anchors are chain points logged earlier by the sealer (ParseAnchor).
	Anchors []Anchor
	// Progress is called after every page with seals checked and the total.
	Progress func(done, total int64)
	// PageSize is the number of rows read per query (default 5000).
	PageSize int
	// MaxProblems caps Report.Problems (default 10000).
	MaxProblems int
}

// DefaultGrace is the default VerifyOptions.Grace.
const DefaultGrace = 5 * time.Minute

// Verify checks the whole chain with default options. See VerifyWith.
func Verify(ctx context.Context, db DB) (Report, error) {
	return VerifyWith(ctx, db, VerifyOptions{})
}

// VerifyWith walks the chain from the first seal inside one read-only
// REPEATABLE READ snapshot (the sealer may keep working meanwhile),
// recomputes every hash and compares the head and the anchors; then it looks
// for events that should have been sealed and were not. The runtime role is
// enough to run it. The returned error is about the check itself (database
// unreachable); what was found is in the Report.
func VerifyWith(ctx context.Context, db DB, opts VerifyOptions) (Report, error) {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 5000
	}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 10000
	}
	var rep Report
	add := func(p Problem) {
		if len(rep.Problems) < opts.MaxProblems {
			rep.Problems = append(rep.Problems, p)
		} else {
			rep.Omitted++
		}
	}

	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return rep, fmt.Errorf("audit: verify: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	if err := tx.QueryRow(ctx, "SELECT seq, hash, horizon_xid FROM audit.head WHERE id = 1").
		Scan(&rep.Head.Seq, &rep.Head.Hash, &rep.Horizon); err != nil {
		if err == pgx.ErrNoRows {
			add(Problem{Kind: KindHead, Detail: "audit.head has no row"})
		} else {
			return rep, fmt.Errorf("audit: verify: read head: %w", err)
		}
	}
	var total int64
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM audit.seal").Scan(&total); err != nil {
		return rep, fmt.Errorf("audit: verify: count seals: %w", err)
	}
	anchors := map[int64][]byte{}
	for _, a := range opts.Anchors {
		anchors[a.Seq] = a.Hash
	}

	// Walk the chain.
	var (
		prev         = zeroHash
		expect       = int64(1)
		lastSealedAt time.Time
		maxSealedID  int64
		buf          []byte
	)
	rep.End = Anchor{Seq: 0, Hash: zeroHash}
	for {
		rows, err := tx.Query(ctx, "SELECT * FROM audit.chain_page($1, $2)", rep.End.Seq, opts.PageSize)
		if err != nil {
			return rep, fmt.Errorf("audit: verify: read chain: %w", err)
		}
		n := 0
		for rows.Next() {
			var (
				seq, eventID   int64
				prevHash, hash []byte
				sealedAt       time.Time
				ev             eventRow
			)
			targets := append([]any{&seq, &eventID, &prevHash, &hash, &sealedAt}, ev.scanTargets()...)
			if err := rows.Scan(targets...); err != nil {
				rows.Close()
				return rep, fmt.Errorf("audit: verify: read chain: %w", err)
			}
			n++
			switch {
			case seq != expect:
				add(Problem{Kind: KindRemoved, Seq: expect, Detail: fmt.Sprintf(
					"seals %d to %d are missing (the chain jumps from seal %d to %d)", expect, seq-1, expect-1, seq)})
			case !bytes.Equal(prevHash, prev):
				add(Problem{Kind: KindLink, EventID: eventID, Seq: seq, Detail: fmt.Sprintf(
					"seal %d does not link to the hash of seal %d (seal rows altered or reordered)", seq, seq-1)})
			}
			if ev.ID == nil {
				add(Problem{Kind: KindRemoved, EventID: eventID, Seq: seq, Detail: fmt.Sprintf(
					"event %d, sealed as seal %d, is missing", eventID, seq)})
			} else {
				var sum []byte
				sum, buf = chainHash(prevHash, &ev, buf)
				if !bytes.Equal(sum, hash) {
					add(Problem{Kind: KindChanged, EventID: eventID, Seq: seq, Detail: fmt.Sprintf(
						"event %d no longer matches seal %d (its columns, or the seal's hash, were changed)", eventID, seq)})
				}
			}
			if want, ok := anchors[seq]; ok {
				if !bytes.Equal(want, hash) {
					add(Problem{Kind: KindAnchor, EventID: eventID, Seq: seq, Detail: fmt.Sprintf(
						"seal %d has hash %x, the anchor says %x (chain rewritten)", seq, hash, want)})
				}
				delete(anchors, seq)
			}
			prev, expect = hash, seq+1
			rep.End = Anchor{Seq: seq, Hash: hash}
			rep.Sealed++
			lastSealedAt = maxTime(lastSealedAt, sealedAt)
			maxSealedID = max(maxSealedID, eventID)
		}
		if err := rows.Err(); err != nil {
			return rep, fmt.Errorf("audit: verify: read chain: %w", err)
		}
		if opts.Progress != nil {
			opts.Progress(rep.Sealed, max(total, rep.Sealed))
		}
		if n < opts.PageSize {
			break
		}
	}
	for seq, want := range anchors {
		add(Problem{Kind: KindAnchor, Seq: seq, Detail: fmt.Sprintf(
			"the chain ends at seal %d, before the anchor at seal %d (%x)", rep.End.Seq, seq, want)})
	}
	if rep.Head.Hash != nil && (rep.Head.Seq != rep.End.Seq || !bytes.Equal(rep.Head.Hash, rep.End.Hash)) {
		add(Problem{Kind: KindHead, Seq: rep.Head.Seq, Detail: fmt.Sprintf(
			"audit.head records seal %d with hash %x, the chain ends at seal %d with hash %x",
			rep.Head.Seq, rep.Head.Hash, rep.End.Seq, rep.End.Hash)})
	}

	// Events without a seal.
	cutoff := lastSealedAt.Add(-opts.Grace)
	var after int64
	for {
		rows, err := tx.Query(ctx, "SELECT * FROM audit.unsealed_page($1, $2)", after, opts.PageSize)
		if err != nil {
			return rep, fmt.Errorf("audit: verify: read unsealed events: %w", err)
		}
		n := 0
		for rows.Next() {
			var (
				id  int64
				at  *time.Time
				xid *int64
			)
			if err := rows.Scan(&id, &at, &xid); err != nil {
				rows.Close()
				return rep, fmt.Errorf("audit: verify: read unsealed events: %w", err)
			}
			n++
			after = id
			switch {
			case xid == nil || *xid < rep.Horizon:
				add(Problem{Kind: KindInserted, EventID: id, Detail: fmt.Sprintf(
					"event %d is not sealed although its writer transaction (%s) is below the sealing horizon (%d): inserted by hand, or its seal was removed",
					id, fmtXID(xid), rep.Horizon)})
			case id < maxSealedID && (at == nil || at.Before(cutoff)):
				add(Problem{Kind: KindInserted, EventID: id, Detail: fmt.Sprintf(
					"event %d is not sealed although its id is below the highest sealed id (%d) and its time (%s) is more than %v before the last seal (%s)",
					id, maxSealedID, fmtTime(at), opts.Grace, lastSealedAt.UTC().Format(time.RFC3339))})
			default:
				rep.Pending++
			}
		}
		if err := rows.Err(); err != nil {
			return rep, fmt.Errorf("audit: verify: read unsealed events: %w", err)
		}
		if n < opts.PageSize {
			break
		}
	}
	rep.OK = len(rep.Problems) == 0 && rep.Omitted == 0
	return rep, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func fmtXID(x *int64) string {
	if x == nil {
		return "none"
	}
	return fmt.Sprint(*x)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
}

// VerifyTo runs VerifyWith for `molar audit verify`: it prints progress
// lines to w for long chains (every 10%, when the chain spans more than ten
// pages), then the human-readable report (WriteReport). The caller exits
// non-zero when the report is not OK.
func VerifyTo(ctx context.Context, db DB, w io.Writer, opts VerifyOptions) (Report, error) {
	pageSize := opts.PageSize
	if pageSize <= 0 {
		pageSize = 5000
	}
	userProgress := opts.Progress
	start := time.Now()
	nextPct := int64(10)
	opts.Progress = func(done, total int64) {
		if userProgress != nil {
			userProgress(done, total)
		}
		if total <= int64(10*pageSize) {
			return
		}
		pct := done * 100 / total
		if pct >= nextPct {
			fmt.Fprintf(w, "verifying: %d of %d seals checked (%d%%, %s)\n", done, total, pct, time.Since(start).Round(time.Second))
			nextPct = (pct/10 + 1) * 10
		}
	}
	rep, err := VerifyWith(ctx, db, opts)
	if err != nil {
		return rep, err
	}
	return rep, WriteReport(w, rep)
}

// WriteReport prints rep for people.
func WriteReport(w io.Writer, rep Report) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "audit chain: %d sealed events, %d not yet sealed\n", rep.Sealed, rep.Pending)
	fmt.Fprintf(&b, "chain end:   %s\n", rep.End)
	fmt.Fprintf(&b, "head:        %s (horizon: transaction %d)\n", rep.Head, rep.Horizon)
	if rep.OK {
		fmt.Fprintf(&b, "result:      OK (every sealed event matches its hash; nothing changed, removed or inserted)\n")
	} else {
		n := len(rep.Problems) + rep.Omitted
		fmt.Fprintf(&b, "result:      FAILED, %d problem(s)\n", n)
		for _, p := range rep.Problems {
			id := "-"
			if p.EventID != 0 {
				id = fmt.Sprint(p.EventID)
			}
			fmt.Fprintf(&b, "  %-9s event %-10s %s\n", p.Kind, id, p.Detail)
		}
		if rep.Omitted > 0 {
			fmt.Fprintf(&b, "  … and %d more\n", rep.Omitted)
		}
	}
	_, err := w.Write(b.Bytes())
	if err != nil {
		return fmt.Errorf("audit: write report: %w", err)
	}
	return nil
}
