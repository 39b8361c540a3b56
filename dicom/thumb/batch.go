package thumb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// BatchSize is the most instances one batch job holds.
const BatchSize = 16

// BatchArgs is a thumbnail job for several instances, what Dispatch
// enqueues: each job is rows and statements in the database (insert,
// fetch, completion, clean-up), so a burst of C-STOREs becomes a job per
// BatchSize instances instead of one each.
type BatchArgs struct {
	Keys []string `json:"keys"`
}

// Kind implements river.JobArgs.
func (BatchArgs) Kind() string { return "imaging.thumbnail_batch" }

// InsertOpts puts batch jobs on the thumbnail queue. A batch is tried
// once: the instances whose attempt failed in a way worth retrying go on
// as jobs of their own (Args) with River's retries and backoff.
func (BatchArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: MaxAttempts}
}

// BatchWorker makes the thumbnails of a batch job's instances with its
// Worker, on the Worker's threads (as many at once as it has). Register it
// with river.AddWorker beside the Worker.
type BatchWorker struct {
	river.WorkerDefaults[BatchArgs]
	Worker *Worker
}

// Timeout: none from River, as for Worker (each instance's attempt is
// bounded once it has a thread).
func (b *BatchWorker) Timeout(*river.Job[BatchArgs]) time.Duration { return -1 }

// Work implements river.Worker. It ends well when every instance is done
// or has a job of its own to try again; it fails (and River runs the whole
// batch again, which is harmless: making a thumbnail twice gives the same
// one) only when those jobs cannot be inserted.
func (b *BatchWorker) Work(ctx context.Context, job *river.Job[BatchArgs]) error {
	errs := make([]error, len(job.Args.Keys))
	var wg sync.WaitGroup
	for i, key := range job.Args.Keys {
		wg.Go(func() {
			// A panic here would end the process (no job runner recovers
			// this goroutine): it becomes this instance's error, and the
			// instance's own job meets it again under River's recovery.
			defer func() {
				if v := recover(); v != nil {
					errs[i] = fmt.Errorf("thumb: panic: %v", v)
				}
			}()
			errs[i] = b.Worker.attempt(ctx, key)
		})
	}
	wg.Wait()
	var again []river.InsertManyParams
	var last error
	for i, err := range errs {
		if err == nil || IsPermanent(err) {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err() // shutting down: the batch runs again
		}
		again = append(again, river.InsertManyParams{Args: Args{Key: job.Args.Keys[i]}})
		last = err
	}
	if len(again) == 0 {
		return nil
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return fmt.Errorf("thumb: batch: %d instance(s) to retry (%w), no client: %w", len(again), last, err)
	}
	if _, err := client.InsertMany(ctx, again); err != nil {
		err = errors.Join(fmt.Errorf("thumb: batch: %d instance(s) to retry: %w", len(again), last), err)
		if job.Attempt >= job.MaxAttempts {
			// The batch is given up: its instances get the failure note
			// a job of their own would have left.
			for _, p := range again {
				b.Worker.fail(ctx, p.Args.(Args).Key, err)
			}
		}
		return err
	}
	if b.Worker.Logger != nil {
		b.Worker.Logger.Warn("thumbnails failed for some instances of a batch; retried one by one", "instances", len(again), "err", last)
	}
	return nil
}
