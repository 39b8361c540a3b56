// Package pgtest gives tests a real PostgreSQL: one ephemeral embedded
// cluster per test binary (started lazily, stopped by Main), and a fresh,
// migrated database per Open call. Set MOLAR_TEST_DATABASE_URL to a
// superuser URL to use an existing server instead.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// When the PostgreSQL binaries are missing the tests are skipped, except
// with CI=true, where they fail: in CI nothing is skipped.
package pgtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/storage/postgres"
)

var (
	once     sync.Once
	cluster  *postgres.Cluster
	baseDir  string
	adminURL string
	startErr error
	counter  atomic.Int64
)

// Main runs the tests and then stops the cluster if one was started.
func Main(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_ = cluster.Stop(ctx)
		cancel()
	}
	if baseDir != "" {
		_ = os.RemoveAll(baseDir)
	}
	os.Exit(code)
}

// Cluster starts (once) and returns the embedded test cluster, or nil when
// MOLAR_TEST_DATABASE_URL is used.
func Cluster(t testing.TB) *postgres.Cluster {
	t.Helper()
	AdminURL(t)
	return cluster
}

// AdminURL returns a superuser URL for the test server.
func AdminURL(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if u := os.Getenv("MOLAR_TEST_DATABASE_URL"); u != "" {
			adminURL = u
			return
		}
		if _, err := postgres.FindBinaries(""); err != nil {
			startErr = err
			return
		}
		// Not t.TempDir(): it is mode 0700, which the postgres user (when
		// tests run as root) cannot enter.
		dir, err := os.MkdirTemp("", "molar-pgtest-")
		if err != nil {
			startErr = err
			return
		}
		_ = os.Chmod(dir, 0o755)
		baseDir = dir
		cluster = &postgres.Cluster{Dir: filepath.Join(dir, "pg"), Logger: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := cluster.Start(ctx); err != nil {
			startErr = err
			cluster = nil
			return
		}
		adminURL = cluster.URL("postgres", postgres.AdminUser)
	})
	if startErr != nil {
		Unavailable(t, "PostgreSQL", startErr)
	}
	return adminURL
}

// Unavailable is the one place a test meets a missing dependency
// (PostgreSQL, the S3 server, DCMTK, Orthanc, Chromium, Node.js, pydicom's
// test files): under CI=true — where nothing may be skipped — the test
// fails; elsewhere it is skipped with the way to install it.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI and not available: %v", what, err)
	}
	t.Skipf("%s not available (%v); run `make test` to install it", what, err)
}

// DB is one fresh database.
type DB struct {
	Name string
	// AdminURL connects as superuser, OwnerURL as the migration role's
	// login, AppURL as the runtime role.
	AdminURL, OwnerURL, AppURL string
	// App is a pool logged in as the runtime role (postgres.AppRole).
	App *pgxpool.Pool
	// Admin is a superuser pool, for assertions that must bypass RLS and grants.
	Admin *pgxpool.Pool
}

// Open creates a fresh database, applies the sources' migrations, and
// returns pools for it. Everything is dropped when the test ends.
func Open(t testing.TB, sources ...postgres.Source) *DB {
	t.Helper()
	admin := AdminURL(t)
	ctx := context.Background()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), counter.Add(1))
	if err := postgres.EnsureDatabase(ctx, admin, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	db := &DB{Name: name, AdminURL: withDB(t, admin, name, "")}
	db.OwnerURL = db.AdminURL
	external := os.Getenv("MOLAR_TEST_DATABASE_URL") != ""
	if external {
		db.AppURL = db.AdminURL
	} else {
		db.AppURL = withDB(t, admin, name, postgres.AppRole)
	}
	if _, err := postgres.Migrate(ctx, db.OwnerURL, sources, nil); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	opts := postgres.PoolOptions{MaxConns: 20}
	if external {
		opts.SetRole = postgres.AppRole
	}
	var err error
	if db.App, err = postgres.OpenPool(ctx, db.AppURL, opts); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if db.Admin, err = postgres.OpenPool(ctx, db.AdminURL, postgres.PoolOptions{MaxConns: 5}); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		db.App.Close()
		db.Admin.Close()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return db
}

func withDB(t testing.TB, base, db, user string) string {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: bad URL: %v", err)
	}
	u.Path = "/" + db
	if user != "" {
		q := u.Query()
		if q.Has("user") {
			q.Set("user", user)
			u.RawQuery = q.Encode()
		} else {
			u.User = url.User(user)
		}
	}
	return u.String()
}
