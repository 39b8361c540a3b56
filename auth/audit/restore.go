package audit

import (
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
)

// AfterRestore makes a chain restored from a dump (pg_restore into another
// PostgreSQL cluster) sealable again, and returns how many events it sealed
// and the chain's end.
//
// The head's horizon is a transaction id of the cluster the dump was taken
// in. A new cluster numbers its transactions afresh, usually far below it:
// the sealer would seal nothing until this cluster's transactions pass the
// old horizon (xmin <= horizon), and Verify would report every new event as
// inserted by hand (unsealed, writer below the horizon). Events the dump
// holds unsealed carry the old cluster's ids, which mean nothing here.
//
// So AfterRestore seals, in id order, every event still unsealed (a dump
// holds committed rows only), then sets the horizon to this cluster's
// snapshot xmin, taken first: every event of a writer below it is sealed,
// because every event visible is. The horizon may move back, which the
// head's trigger refuses for everyone else: tx must belong to the tables'
// owner (or a superuser), which disables that trigger for its one update.
// Run it on a restored database before anything else writes to it.
func AfterRestore(ctx context.Context, tx pgx.Tx) (sealed int, end Anchor, err error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", SealerLockKey); err != nil {
		return 0, end, fmt.Errorf("audit: after restore: lock: %w", err)
	}
	var xmin, horizon int64
	if err := tx.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").Scan(&xmin); err != nil {
		return 0, end, fmt.Errorf("audit: after restore: snapshot: %w", err)
	}
	if err := tx.QueryRow(ctx, "SELECT seq, hash, horizon_xid FROM audit.head WHERE id = 1 FOR UPDATE").
		Scan(&end.Seq, &end.Hash, &horizon); err != nil {
		return 0, end, fmt.Errorf("audit: after restore: read head: %w", err)
	}
	var buf []byte
	for {
		rows, err := tx.Query(ctx, "SELECT * FROM audit.unsealed_ids($1, $2, $3)", int64(math.MinInt64), int64(math.MaxInt64), DefaultSealBatch)
		if err != nil {
			return sealed, end, fmt.Errorf("audit: after restore: find events: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return sealed, end, fmt.Errorf("audit: after restore: find events: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		var (
			seqs, evs     []int64
			prevs, hashes [][]byte
		)
		rows, err = tx.Query(ctx, "SELECT * FROM audit.seal_candidates($1)", ids)
		if err != nil {
			return sealed, end, fmt.Errorf("audit: after restore: read events: %w", err)
		}
		for rows.Next() {
			var ev eventRow
			if err := rows.Scan(ev.scanTargets()...); err != nil {
				rows.Close()
				return sealed, end, fmt.Errorf("audit: after restore: read events: %w", err)
			}
			var sum []byte
			sum, buf = chainHash(end.Hash, &ev, buf)
			end.Seq++
			seqs, evs, prevs, hashes = append(seqs, end.Seq), append(evs, *ev.ID), append(prevs, end.Hash), append(hashes, sum)
			end.Hash = sum
		}
		if err := rows.Err(); err != nil {
			return sealed, end, fmt.Errorf("audit: after restore: read events: %w", err)
		}
		if len(evs) == 0 {
			return sealed, end, fmt.Errorf("audit: after restore: events %v neither sealed nor readable", ids)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit.seal (seq, event_id, prev_hash, hash)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) ORDER BY 1`,
			seqs, evs, prevs, hashes); err != nil {
			return sealed, end, fmt.Errorf("audit: after restore: write seals: %w", err)
		}
		sealed += len(evs)
	}
	back := xmin < horizon
	if back {
		if _, err := tx.Exec(ctx, "ALTER TABLE audit.head DISABLE TRIGGER check_head"); err != nil {
			return sealed, end, fmt.Errorf("audit: after restore: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE audit.head SET seq = $1, hash = $2, horizon_xid = $3,
		sealed_at = CASE WHEN $4 THEN clock_timestamp() ELSE sealed_at END WHERE id = 1`,
		end.Seq, end.Hash, xmin, sealed > 0); err != nil {
		return sealed, end, fmt.Errorf("audit: after restore: move head: %w", err)
	}
	if back {
		if _, err := tx.Exec(ctx, "ALTER TABLE audit.head ENABLE TRIGGER check_head"); err != nil {
			return sealed, end, fmt.Errorf("audit: after restore: %w", err)
		}
	}
	return sealed, end, nil
}
