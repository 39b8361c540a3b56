package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DB is what the sealer and Verify need: a *pgxpool.Pool or a *pgx.Conn.
// The runtime role (molar_app) is enough; see the package documentation.
type DB interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// SealerLockKey is the PostgreSQL advisory lock (pg_try_advisory_xact_lock)
// that keeps the sealer single across servers. Operators may hold it
// (pg_advisory_lock) to pause sealing.
const SealerLockKey int64 = 0x6d6f6c6172_6153

// Defaults for Sealer.
const (
	DefaultSealInterval = time.Second
	DefaultSealBatch    = 1000
	maxBatchesPerPass   = 100
)

// Anchor is a point of the chain: a seal's sequence number and hash. The
// sealer logs one after each batch; Verify can check the chain against them.
type Anchor struct {
	Seq  int64
	Hash []byte
}

// String formats the anchor as "SEQ:HEXHASH" (what ParseAnchor reads).
func (a Anchor) String() string {
	return strconv.FormatInt(a.Seq, 10) + ":" + hex.EncodeToString(a.Hash)
}

// ParseAnchor reads "SEQ:HEXHASH" as logged by the sealer.
func ParseAnchor(s string) (Anchor, error) {
	seqS, hashS, ok := strings.Cut(strings.TrimSpace(s), ":")
	seq, err := strconv.ParseInt(seqS, 10, 64)
	if !ok || err != nil || seq < 0 {
		return Anchor{}, fmt.Errorf("audit: anchor %q: want SEQ:HEXHASH", s)
	}
	h, err := hex.DecodeString(hashS)
	if err != nil || len(h) != HashSize {
		return Anchor{}, fmt.Errorf("audit: anchor %q: hash must be %d hex bytes", s, HashSize)
	}
	return Anchor{Seq: seq, Hash: h}, nil
}

// Sealer chains committed audit rows into audit.seal. Run one per server;
// only one of them works at any moment (advisory lock), the others skip.
//
// Wiring in `molar serve`:
//
//	s := &audit.Sealer{Pool: appPool, Logger: log}
//	go s.Run(ctx) // returns when ctx is cancelled
type Sealer struct {
	// Pool connects as the runtime role (or any role with its privileges).
	Pool   DB
	Logger *slog.Logger
	// Interval between sealing rounds (default 1s).
	Interval time.Duration
	// BatchSize is the most rows sealed per transaction (default 1000).
	BatchSize int
}

// Run seals until ctx is cancelled, then returns nil. Errors are logged and
// retried with backoff; they never stop the loop.
func (s *Sealer) Run(ctx context.Context) error {
	log := s.logger()
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultSealInterval
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		n, err := s.SealOnce(ctx)
		wait := interval
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			wait = min(interval<<min(failures, 6), time.Minute)
			log.Error("audit: sealing failed", "err", err, "failures", failures, "retry_in", wait)
		default:
			failures = 0
			if n >= maxBatchesPerPass*s.batchSize() {
				wait = 0 // behind: go on at once
			}
		}
		timer.Reset(wait)
	}
}

// SealOnce seals every row whose writer has finished (up to 100 batches) and
// returns how many it sealed. It returns 0 and no error when another sealer
// holds the lock.
func (s *Sealer) SealOnce(ctx context.Context) (int, error) {
	if s.Pool == nil {
		return 0, errors.New("audit: sealer has no pool")
	}
	total := 0
	p := pass{}
	for range maxBatchesPerPass {
		n, more, err := s.sealBatch(ctx, &p)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
	return total, nil
}

// pass is the state of one SealOnce. Its first batch takes the snapshot
// xmin and the ids of all rows to seal below it (an index range on
// writer_xid); the batches then seal those ids in order. With xmin fixed the
// set is fixed: every writer below it has finished.
type pass struct {
	started  bool
	xmin     int64
	ids      []int64 // still to seal, in id order
	complete bool    // ids held every unsealed row below xmin
	buf      []byte
}

func (s *Sealer) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Sealer) batchSize() int {
	if s.BatchSize <= 0 {
		return DefaultSealBatch
	}
	return s.BatchSize
}

// sealBatch seals up to one batch of the pass in its own transaction. more
// reports that ids of the pass are left.
func (s *Sealer) sealBatch(ctx context.Context, p *pass) (n int, more bool, err error) {
	tx, err := s.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, false, fmt.Errorf("audit: sealer: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	var locked bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", SealerLockKey).Scan(&locked); err != nil {
		return 0, false, fmt.Errorf("audit: sealer: lock: %w", err)
	}
	if !locked {
		s.logger().Debug("audit: another sealer is working; skipping this round")
		return 0, false, nil
	}
	if !p.started {
		p.started = true
		// Taken before this transaction writes anything: every writer
		// below xmin has committed or aborted, so all its rows are visible
		// to the statements that follow, in this and later transactions.
		if err := tx.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").Scan(&p.xmin); err != nil {
			return 0, false, fmt.Errorf("audit: sealer: snapshot: %w", err)
		}
	}
	var head Anchor
	var horizon int64
	if err := tx.QueryRow(ctx, "SELECT seq, hash, horizon_xid FROM audit.head WHERE id = 1").Scan(&head.Seq, &head.Hash, &horizon); err != nil {
		return 0, false, fmt.Errorf("audit: sealer: read head: %w", err)
	}
	xmin := p.xmin
	if xmin <= horizon {
		return 0, false, nil // nothing finished since the last pass (or another sealer did it)
	}
	limit := s.batchSize()
	if p.ids == nil {
		maxIDs := maxBatchesPerPass * limit
		rows, err := tx.Query(ctx, "SELECT * FROM audit.unsealed_ids($1, $2, $3)", horizon, xmin, maxIDs)
		if err != nil {
			return 0, false, fmt.Errorf("audit: sealer: find events: %w", err)
		}
		if p.ids, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return 0, false, fmt.Errorf("audit: sealer: find events: %w", err)
		}
		p.complete = len(p.ids) < maxIDs
	}
	chunk := p.ids[:min(limit, len(p.ids))]
	var (
		seqs, ids     []int64
		prevs, hashes [][]byte
	)
	prev, seq := head.Hash, head.Seq
	if len(chunk) > 0 {
		rows, err := tx.Query(ctx, "SELECT * FROM audit.seal_candidates($1)", chunk)
		if err != nil {
			return 0, false, fmt.Errorf("audit: sealer: read events: %w", err)
		}
		for rows.Next() {
			var ev eventRow
			if err := rows.Scan(ev.scanTargets()...); err != nil {
				rows.Close()
				return 0, false, fmt.Errorf("audit: sealer: read events: %w", err)
			}
			var sum []byte
			sum, p.buf = chainHash(prev, &ev, p.buf)
			seq++
			seqs, ids, prevs, hashes = append(seqs, seq), append(ids, *ev.ID), append(prevs, prev), append(hashes, sum)
			prev = sum
		}
		if err := rows.Err(); err != nil {
			return 0, false, fmt.Errorf("audit: sealer: read events: %w", err)
		}
	}
	n = len(ids)
	p.ids = p.ids[len(chunk):]
	more = len(p.ids) > 0
	newHorizon := horizon
	if !more && p.complete {
		newHorizon = xmin // every finished writer below xmin is now sealed
	}
	if n > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO audit.seal (seq, event_id, prev_hash, hash)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) ORDER BY 1`,
			seqs, ids, prevs, hashes); err != nil {
			return 0, false, fmt.Errorf("audit: sealer: write seals: %w", err)
		}
	}
	if n > 0 || newHorizon != horizon {
		if _, err := tx.Exec(ctx, `UPDATE audit.head SET seq = $1, hash = $2, horizon_xid = greatest(horizon_xid, $3),
			sealed_at = CASE WHEN $4 THEN clock_timestamp() ELSE sealed_at END WHERE id = 1`,
			seq, prev, newHorizon, n > 0); err != nil {
			return 0, false, fmt.Errorf("audit: sealer: move head: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("audit: sealer: commit: %w", err)
	}
	if n > 0 {
		// The anchor goes to the external log: seq and hash only, no personal data.
		s.logger().Info("audit chain sealed", "events", n, "seq", seq,
			"anchor", Anchor{Seq: seq, Hash: prev}.String())
	}
	return n, more, nil
}
