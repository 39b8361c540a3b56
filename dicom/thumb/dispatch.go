package thumb

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/jobs"
	"github.com/molar-health/molar/storage/postgres"
)

// DispatchBatch is the most queued instances one Dispatch moves.
const DispatchBatch = 500

// Dispatch moves up to limit instances queued for thumbnails (the table
// dicom.thumbnail_queue, which the ingest transaction fills) into thumbnail
// batch jobs of up to BatchSize instances, in one transaction: a queued row
// becomes part of a job or stays queued, never neither. It returns how many
// rows it took.
func Dispatch(ctx context.Context, db postgres.Beginner, q *jobs.Queue, limit int) (int, error) {
	n := 0
	err := postgres.InTx(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM dicom.thumbnail_queue WHERE id IN (
			SELECT id FROM dicom.thumbnail_queue ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
			RETURNING object_key`, limit)
		if err != nil {
			return err
		}
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		n = len(keys)
		var params []river.InsertManyParams
		var batch []string
		seen := make(map[string]bool, len(keys))
		for _, k := range keys {
			if err := storage.ValidateKey(k); err != nil {
				// Not a key any store accepts: no job could succeed.
				slog.Warn("thumbnail dispatch: queued object key refused; dropped", "err", err)
				continue
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			batch = append(batch, k)
			if len(batch) == BatchSize {
				params = append(params, river.InsertManyParams{Args: BatchArgs{Keys: batch}})
				batch = nil
			}
		}
		if len(batch) > 0 {
			params = append(params, river.InsertManyParams{Args: BatchArgs{Keys: batch}})
		}
		if len(params) == 0 {
			return nil
		}
		_, err = q.Client.InsertManyTx(ctx, tx, params)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("thumb: dispatch: %w", err)
	}
	return n, nil
}

// Dispatcher runs Dispatch when woken (after an ingest committed) and
// every Poll (rows queued by another process, such as `molar import`, or
// left by a crash). A wake waits Gather first, so a stream of C-STOREs
// becomes a few batches instead of a transaction per instance.
type Dispatcher struct {
	DB     postgres.Beginner
	Poll   time.Duration // default 2 s
	Gather time.Duration // default 25 ms
	Logger *slog.Logger
	wake   chan struct{}
}

// NewDispatcher returns a dispatcher over db.
func NewDispatcher(db postgres.Beginner, log *slog.Logger) *Dispatcher {
	return &Dispatcher{DB: db, Logger: log, wake: make(chan struct{}, 1)}
}

// Wake asks for a dispatch soon. It never blocks; a nil Dispatcher ignores it.
func (d *Dispatcher) Wake() {
	if d == nil {
		return
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches into q until ctx ends.
func (d *Dispatcher) Run(ctx context.Context, q *jobs.Queue) error {
	poll, gather := d.Poll, d.Gather
	if poll <= 0 {
		poll = 2 * time.Second
	}
	if gather <= 0 {
		gather = 25 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.wake:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(gather):
			}
		}
		for {
			n, err := Dispatch(ctx, d.DB, q, DispatchBatch)
			if err != nil {
				if ctx.Err() == nil && d.Logger != nil {
					d.Logger.Warn("thumbnail dispatch failed; retrying", "err", err)
				}
				break
			}
			if n < DispatchBatch {
				break
			}
		}
	}
}
