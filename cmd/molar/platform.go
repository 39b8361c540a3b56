package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/storage"
	fsstore "github.com/molar-health/molar/storage/fs"
	"github.com/molar-health/molar/storage/postgres"
	s3store "github.com/molar-health/molar/storage/s3"
)

// database is an open Molar database: migration URL, runtime pool and,
// when embedded, the cluster that serves it.
type database struct {
	cluster  *postgres.Cluster
	ownerURL string
	pool     *pgxpool.Pool
}

const embeddedDB = "molar"

// serveOwnerWait bounds how long `molar serve` waits for another molar
// process that runs the embedded cluster (its ports are bound meanwhile;
// then it fails and its supervisor restarts it).
const serveOwnerWait = 10 * time.Minute

// dbMode says how a command may use the embedded cluster.
type dbMode int

const (
	// dbExisting: an admin command; attaches to a running server's
	// cluster or starts the existing one, never creates one (a wrong data
	// directory is an error, not a new empty database).
	dbExisting dbMode = iota
	// dbCreate: `molar migrate` and `molar demo` may create the cluster.
	dbCreate
	// dbServe: `molar serve` creates the cluster if needed and must own
	// it (it notices when its database stops); another molar process
	// running it is waited for, then an error.
	dbServe
	// dbRestore: `molar restore` creates the cluster and the (empty)
	// database if needed, like dbCreate; its hook fills the database
	// before the migrations run.
	dbRestore
)

// openDatabase starts (or attaches to) the embedded cluster when no URL is
// configured, applies migrations, and opens the runtime pool. beforeMigrate
// hooks run once the database exists, before the migrations.
func openDatabase(ctx context.Context, cfg *Config, log *slog.Logger, mode dbMode, beforeMigrate ...func(context.Context, *database) error) (*database, error) {
	db := &database{}
	appURL := cfg.DatabaseAppURL
	setRole := ""
	if cfg.DatabaseURL == "" {
		dataDir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		if mode != dbExisting {
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				return nil, fmt.Errorf("create data dir %s (MOLAR_DATA_DIR): %w", dataDir, err)
			}
		}
		if err := checkDataDirOwner(dataDir); err != nil {
			return nil, err
		}
		db.cluster = &postgres.Cluster{Dir: filepath.Join(dataDir, "pg"), BinDir: cfg.PostgresBinDir, Logger: log,
			NoInit: mode == dbExisting, Exclusive: mode == dbServe, Role: "admin command"}
		limit := 3 * time.Minute
		if mode == dbServe {
			// serve waits up to serveOwnerWait for an admin command (or,
			// during an upgrade, an older molar) that runs the cluster,
			// logged every minute; the cluster's own start-up is bounded
			// inside Start.
			db.cluster.Role, db.cluster.OwnerWait, limit = "serve", serveOwnerWait, 0
		}
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if limit > 0 {
			sctx, cancel = context.WithTimeout(ctx, limit)
		}
		err = db.cluster.Start(sctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("embedded database: %w", err)
		}
		if err := postgres.EnsureDatabase(ctx, db.cluster.URL("postgres", postgres.AdminUser), embeddedDB); err != nil {
			db.close(ctx)
			return nil, err
		}
		db.ownerURL = db.cluster.URL(embeddedDB, postgres.AdminUser)
		appURL = db.cluster.URL(embeddedDB, postgres.AppRole)
	} else {
		db.ownerURL = cfg.DatabaseURL
		if appURL == "" {
			appURL = cfg.DatabaseURL
			setRole = postgres.AppRole
		}
	}
	for _, hook := range beforeMigrate {
		if err := hook(ctx, db); err != nil {
			db.close(ctx)
			return nil, err
		}
	}
	if err := migrateAll(ctx, db.ownerURL, log); err != nil {
		db.close(ctx)
		if cfg.DatabaseURL != "" {
			var me *postgres.MigrationError
			if !errors.As(err, &me) {
				return nil, fmt.Errorf("database (MOLAR_DATABASE_URL): %w", err)
			}
		}
		return nil, err
	}
	pool, err := postgres.OpenPool(ctx, appURL, postgres.PoolOptions{SetRole: setRole, MaxConns: 40})
	if err != nil {
		db.close(ctx)
		return nil, fmt.Errorf("database (MOLAR_DATABASE_URL): %w", err)
	}
	db.pool = pool
	return db, nil
}

// exited is closed when the embedded PostgreSQL this process started stops;
// nil (never closed) for an external database or another molar's cluster.
func (db *database) exited() <-chan struct{} {
	if db.cluster == nil {
		return nil
	}
	return db.cluster.Exited()
}

// close closes the pool and stops the embedded cluster (if this process owns it).
func (db *database) close(ctx context.Context) {
	if db.pool != nil {
		db.pool.Close()
	}
	if db.cluster != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = db.cluster.Stop(sctx)
	}
}

// openObjectStore opens S3 when an endpoint is configured, else the
// filesystem store under the data dir.
func openObjectStore(ctx context.Context, cfg *Config, log *slog.Logger) (storage.ObjectStore, error) {
	if cfg.S3Endpoint != "" {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		s, err := s3store.New(cctx, s3store.Config{
			Endpoint: cfg.S3Endpoint, Bucket: cfg.S3Bucket, AccessKey: cfg.S3AccessKey,
			SecretKey: cfg.S3SecretKey, UseTLS: cfg.S3TLS, Region: cfg.S3Region,
		})
		if err != nil {
			return nil, fmt.Errorf("object store (MOLAR_S3_ENDPOINT %s): %w", cfg.S3Endpoint, err)
		}
		return s, nil
	}
	if err := checkDataDirOwner(cfg.DataDir); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "objects")
	s, err := fsstore.New(dir)
	if err != nil {
		return nil, fmt.Errorf("object store (%s): %w", dir, err)
	}
	if n, err := s.SweepTemp(time.Hour); err == nil && n > 0 {
		log.Info("removed stale temporary objects", "count", n)
	}
	return s, nil
}

// checkDataDirOwner refuses a data directory that belongs to another user
// than this process's: objects written by another user (root running an
// admin command beside a server run as its service user, or the reverse)
// would be unreadable or unwritable to the server (the store makes folders
// 0750 and files 0640). One exception: root with a data directory of the
// "postgres" user, which molar up to 2026-11 made when run as root (it
// handed the folder to the user running the embedded cluster). A missing
// directory is fine.
func checkDataDirOwner(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || int(sys.Uid) == os.Geteuid() {
		return nil
	}
	owner := strconv.Itoa(int(sys.Uid))
	if u, err := user.LookupId(owner); err == nil {
		if u.Username == "postgres" && os.Geteuid() == 0 {
			return nil
		}
		owner = u.Username
	}
	return fmt.Errorf("data dir %s (MOLAR_DATA_DIR) belongs to user %s: run molar as that user (e.g. sudo -u %s molar …), files it writes otherwise may be unreadable to the server", dir, owner, owner)
}

func newLogger(cfg *Config, w *os.File) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
