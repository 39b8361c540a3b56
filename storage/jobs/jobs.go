// Package jobs is Molar's durable background job queue: River
// (github.com/riverqueue/river) on PostgreSQL. Jobs are inserted in the same
// transaction as the data they concern, survive restarts, are retried with
// exponential backoff, record each failure, and are taken by any server
// (FOR UPDATE SKIP LOCKED inside River).
package jobs

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/molar-health/molar/storage/postgres"
)

// Schema holds River's tables.
const Schema = "river"

//go:embed migrations/*.sql
var migrations embed.FS

// Source creates the schema River's tables live in; apply it before Migrate.
func Source() postgres.Source {
	sub, _ := fs.Sub(migrations, "migrations")
	return postgres.Source{Namespace: Schema, FS: sub}
}

// Migrate brings River's tables up to date. ownerURL logs in as the schema
// owner (or a superuser, who then acts as postgres.OwnerRole).
func Migrate(ctx context.Context, ownerURL string, log *slog.Logger) error {
	opts := postgres.PoolOptions{MaxConns: 2}
	if asOwner(ctx, ownerURL) {
		opts.SetRole = postgres.OwnerRole
	}
	pool, err := postgres.OpenPool(ctx, ownerURL, opts)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	defer pool.Close()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: Schema, Logger: log})
	if err != nil {
		return fmt.Errorf("jobs: migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate queue tables: %w", err)
	}
	return nil
}

// asOwner reports whether the URL's user may act as the owner role.
func asOwner(ctx context.Context, url string) bool {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	var ok bool
	_ = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AND pg_has_role(current_user, $1, 'MEMBER')`, postgres.OwnerRole).Scan(&ok)
	return ok
}

// Queue runs workers and inserts jobs.
type Queue struct {
	Client *river.Client[pgx.Tx]
	pool   *pgxpool.Pool
	log    *slog.Logger
}

// Options configures New.
type Options struct {
	// Workers holds the registered workers (river.AddWorker). With none,
	// the queue only inserts (as admin commands do).
	Workers *river.Workers
	// Concurrency of the default queue (default 4).
	Concurrency int
	// Queues are further queues and their number of workers (a job picks
	// its queue in its InsertOpts), so one kind of work can have more jobs
	// in hand than the default queue without taking its workers.
	Queues map[string]int
	Logger *slog.Logger
	// FetchPoll is how often idle workers look for jobs besides
	// notifications (default 1 s; tests use less).
	FetchPoll time.Duration
	// MaxAttempts before a job is discarded (default 10).
	MaxAttempts int
	// RetryPolicy overrides River's default backoff (attempt^4 seconds with jitter).
	RetryPolicy river.ClientRetryPolicy
	// Periodic jobs (housekeeping …); River's leader election makes only
	// one server insert them.
	Periodic []*river.PeriodicJob
}

// New builds a queue on the runtime pool.
func New(pool *pgxpool.Pool, opts Options) (*Queue, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := &river.Config{
		Schema: Schema,
		// River reports routine counts at info level every few seconds.
		Logger:      slog.New(warnOnly{opts.Logger.Handler()}),
		MaxAttempts: opts.MaxAttempts,
		RetryPolicy: opts.RetryPolicy,
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 10
	}
	if opts.Workers != nil {
		conc := opts.Concurrency
		if conc <= 0 {
			conc = 4
		}
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: conc}}
		for name, n := range opts.Queues {
			cfg.Queues[name] = river.QueueConfig{MaxWorkers: max(n, 1)}
		}
		cfg.Workers = opts.Workers
		cfg.PeriodicJobs = opts.Periodic
		if opts.FetchPoll > 0 {
			cfg.FetchPollInterval = opts.FetchPoll
			cfg.FetchCooldown = min(opts.FetchPoll, 100*time.Millisecond)
		} else {
			cfg.FetchCooldown = 20 * time.Millisecond
		}
	}
	c, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: new client: %w", err)
	}
	return &Queue{Client: c, pool: pool, log: opts.Logger}, nil
}

// Start starts the workers (no-op without workers).
func (q *Queue) Start(ctx context.Context) error {
	if err := q.Client.Start(ctx); err != nil && !errors.Is(err, river.ErrNotFound) {
		return fmt.Errorf("jobs: start: %w", err)
	}
	return nil
}

// Stop lets running jobs finish until ctx expires, then cancels them (they
// are retried later: nothing is lost).
func (q *Queue) Stop(ctx context.Context) error {
	err := q.Client.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = q.Client.StopAndCancel(cctx)
	}
	if err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// InsertTx enqueues a job in the caller's transaction: it exists exactly
// when the transaction commits.
func (q *Queue) InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (int64, error) {
	res, err := q.Client.InsertTx(ctx, tx, args, opts)
	if err != nil {
		return 0, fmt.Errorf("jobs: insert %s: %w", args.Kind(), err)
	}
	return res.Job.ID, nil
}

// Status is a job's visible state for the UI and tests.
type Status struct {
	ID        int64
	Kind      string
	State     string
	Attempt   int
	Max       int
	Errors    []string // one per failed attempt, oldest first
	Scheduled time.Time
	Finalized *time.Time
}

// Get returns the status of a job.
func (q *Queue) Get(ctx context.Context, id int64) (Status, error) {
	j, err := q.Client.JobGet(ctx, id)
	if err != nil {
		return Status{}, fmt.Errorf("jobs: get %d: %w", id, err)
	}
	return statusOf(j), nil
}

func statusOf(j *rivertype.JobRow) Status {
	s := Status{ID: j.ID, Kind: j.Kind, State: string(j.State), Attempt: j.Attempt, Max: j.MaxAttempts, Scheduled: j.ScheduledAt, Finalized: j.FinalizedAt}
	for _, e := range j.Errors {
		s.Errors = append(s.Errors, e.Error)
	}
	return s
}

// Failed lists jobs that failed at least once, newest first: retrying ones
// and discarded ones.
func (q *Queue) Failed(ctx context.Context, limit int) ([]Status, error) {
	params := river.NewJobListParams().States(rivertype.JobStateRetryable, rivertype.JobStateDiscarded).First(limit)
	res, err := q.Client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("jobs: list failed: %w", err)
	}
	var out []Status
	for _, j := range res.Jobs {
		out = append(out, statusOf(j))
	}
	return out, nil
}

// Depth counts jobs by state.
func (q *Queue) Depth(ctx context.Context) (map[string]int, error) {
	rows, err := q.pool.Query(ctx, `SELECT state::text, count(*) FROM river.river_job GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("jobs: depth: %w", err)
	}
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// Collector exports the queue depth by state as molar_jobs{state=…}.
func (q *Queue) Collector() prometheus.Collector { return &depthCollector{q: q} }

type depthCollector struct{ q *Queue }

var depthDesc = prometheus.NewDesc("molar_jobs", "Background jobs by state (queue depth: available + scheduled + retryable).", []string{"state"}, nil)

func (d *depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- depthDesc }

func (d *depthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := d.q.Depth(ctx)
	if err != nil {
		return
	}
	for _, s := range []string{"available", "scheduled", "running", "retryable", "completed", "discarded", "cancelled", "pending"} {
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(m[s]), s)
	}
}

// warnOnly passes warnings and errors through.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}
