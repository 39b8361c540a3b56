package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
)

// Task is one housekeeping chore (purge expired sessions, sweep temporary
// objects …). It must be safe to run on several servers at once.
type Task struct {
	Name string
	Run  func(ctx context.Context) error
}

// HousekeepingArgs is the periodic housekeeping job.
type HousekeepingArgs struct{}

// Kind implements river.JobArgs.
func (HousekeepingArgs) Kind() string { return "housekeeping" }

// Housekeeping runs the tasks; a failing task does not stop the others, and
// the job fails (and is retried) when any did.
type Housekeeping struct {
	river.WorkerDefaults[HousekeepingArgs]
	Tasks  []Task
	Logger *slog.Logger
}

// Work implements river.Worker.
func (h *Housekeeping) Work(ctx context.Context, _ *river.Job[HousekeepingArgs]) error {
	var errs []error
	for _, t := range h.Tasks {
		if err := t.Run(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Timeout bounds one run.
func (h *Housekeeping) Timeout(*river.Job[HousekeepingArgs]) time.Duration { return 5 * time.Minute }

// HousekeepingEvery is how often housekeeping runs (and once at start).
const HousekeepingEvery = 15 * time.Minute

// Periodic returns the periodic job that schedules housekeeping.
func (h *Housekeeping) Periodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(HousekeepingEvery),
		func() (river.JobArgs, *river.InsertOpts) { return HousekeepingArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
