package postgres_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("MOLAR_TEST_HOLD_CLUSTER"); dir != "" {
		holdCluster(dir) // a helper process, not a test run
	}
	pgtest.Main(m)
}

func TestMigrationsApplyInOrderOnce(t *testing.T) {
	src := postgres.Source{Namespace: "demo", FS: fstest.MapFS{
		"0002_more.sql": {Data: []byte(`INSERT INTO thing (name) VALUES ('second');`)},
		"0001_init.sql": {Data: []byte(`CREATE TABLE thing (id bigserial PRIMARY KEY, name text NOT NULL); INSERT INTO thing (name) VALUES ('first');`)},
		"README.txt":    {Data: []byte(`not a migration`)},
	}}
	db := pgtest.Open(t, src)
	ctx := context.Background()
	rows, err := db.App.Query(ctx, "SELECT name FROM demo.thing ORDER BY id")
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"first", "second"}, names)

	// Second run applies nothing.
	applied, err := postgres.Migrate(ctx, db.OwnerURL, []postgres.Source{src}, nil)
	require.NoError(t, err)
	require.Empty(t, applied)

	// Editing an applied file is refused.
	edited := postgres.Source{Namespace: "demo", FS: fstest.MapFS{
		"0001_init.sql": {Data: []byte(`CREATE TABLE thing (id int);`)},
		"0002_more.sql": src.FS.(fstest.MapFS)["0002_more.sql"],
	}}
	_, err = postgres.Migrate(ctx, db.OwnerURL, []postgres.Source{edited}, nil)
	var me *postgres.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, "0001_init.sql", me.File)

	// An older binary (without 0002) refuses the newer schema and applies
	// nothing; a namespace it does not have at all is not its to judge.
	older := postgres.Source{Namespace: "demo", FS: fstest.MapFS{"0001_init.sql": src.FS.(fstest.MapFS)["0001_init.sql"]}}
	_, err = postgres.Migrate(ctx, db.OwnerURL, []postgres.Source{older, {Namespace: "extra", FS: fstest.MapFS{
		"0001_x.sql": {Data: []byte(`CREATE TABLE x (id int);`)},
	}}}, nil)
	require.ErrorIs(t, err, postgres.ErrSchemaNewer)
	require.Contains(t, err.Error(), "demo/0002_more.sql")
	var n int
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'extra'`).Scan(&n))
	require.Zero(t, n, "nothing applied")
	_, err = postgres.Migrate(ctx, db.OwnerURL, []postgres.Source{{Namespace: "other", FS: fstest.MapFS{}}}, nil)
	require.NoError(t, err)
}

func TestFailingMigrationNamesFileAndRollsBack(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	src := postgres.Source{Namespace: "broken", FS: fstest.MapFS{
		"0001_ok.sql":    {Data: []byte(`CREATE TABLE ok (id int);`)},
		"0002_bad.sql":   {Data: []byte(`CREATE TABLE half (id int); SELEC 1;`)},
		"0003_never.sql": {Data: []byte(`CREATE TABLE never (id int);`)},
	}}
	_, err := postgres.Migrate(ctx, db.OwnerURL, []postgres.Source{src}, nil)
	var me *postgres.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, "broken", me.Namespace)
	require.Equal(t, "0002_bad.sql", me.File)
	require.Contains(t, err.Error(), "0002_bad.sql")
	require.Contains(t, err.Error(), "syntax error")

	var n int
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'broken'`).Scan(&n))
	require.Equal(t, 1, n, "only 0001 should have been applied; 0002 rolled back whole")
}

func TestConcurrentMigratorsDoNotRace(t *testing.T) {
	db := pgtest.Open(t)
	src := postgres.Source{Namespace: "race", FS: fstest.MapFS{
		"0001.sql": {Data: []byte(`CREATE TABLE t (id int); SELECT pg_sleep(0.2);`)},
		"0002.sql": {Data: []byte(`INSERT INTO t VALUES (1);`)},
	}}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = postgres.Migrate(context.Background(), db.OwnerURL, []postgres.Source{src}, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var n int
	require.NoError(t, db.App.QueryRow(context.Background(), "SELECT count(*) FROM race.t").Scan(&n))
	require.Equal(t, 1, n)
}

func TestAppRoleOwnsNothingAndCannotChangeSchema(t *testing.T) {
	src := postgres.Source{Namespace: "core_x", FS: fstest.MapFS{
		"0001.sql": {Data: []byte(`CREATE TABLE item (id int);`)},
	}}
	db := pgtest.Open(t, src)
	ctx := context.Background()
	_, err := db.App.Exec(ctx, "INSERT INTO core_x.item VALUES (1)")
	require.NoError(t, err, "app role gets DML through default privileges")
	for _, stmt := range []string{
		"DROP TABLE core_x.item",
		"ALTER TABLE core_x.item ADD COLUMN x int",
		"CREATE TABLE core_x.other (id int)",
		"CREATE SCHEMA evil",
		"CREATE TABLE public.evil (id int)",
	} {
		_, err := db.App.Exec(ctx, stmt)
		require.Error(t, err, stmt)
		require.True(t, postgres.IsInsufficientPrivilege(err) || isOwnerErr(err), "%s: %v", stmt, err)
	}
	var owned int
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = $1`, postgres.AppRole).Scan(&owned))
	require.Zero(t, owned)
}

func isOwnerErr(err error) bool {
	return err != nil && (contains(err.Error(), "must be owner") || contains(err.Error(), "permission denied"))
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (func() bool { return indexOf(s, sub) >= 0 })()
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestRowLevelSecurityByTenant(t *testing.T) {
	src := postgres.Source{Namespace: "rls", FS: fstest.MapFS{
		"0001.sql": {Data: []byte(`
CREATE TABLE note (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL, body text);
ALTER TABLE note ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON note USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
  WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);`)},
	}}
	db := pgtest.Open(t, src)
	ctx := context.Background()
	for _, tenant := range []int64{1, 2} {
		require.NoError(t, postgres.InTenant(ctx, db.App, tenant, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO rls.note (tenant_id, body) VALUES ($1, 'x')", tenant)
			return err
		}))
	}
	// Writing into another tenant is refused.
	err := postgres.InTenant(ctx, db.App, 1, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO rls.note (tenant_id, body) VALUES (2, 'y')")
		return err
	})
	require.Error(t, err)
	count := func(tenant int64) (n int) {
		require.NoError(t, postgres.InTenant(ctx, db.App, tenant, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM rls.note").Scan(&n)
		}))
		return n
	}
	require.Equal(t, 1, count(1))
	require.Equal(t, 1, count(2))
	// Without a tenant nothing is visible.
	var n int
	require.NoError(t, db.App.QueryRow(ctx, "SELECT count(*) FROM rls.note").Scan(&n))
	require.Zero(t, n)
}

func TestEmbeddedClusterRecoversAfterCrash(t *testing.T) {
	pgtest.AdminURL(t) // skip or fail uniformly when binaries are missing
	dir := clusterParent(t, "molar-crash-")
	ctx := context.Background()
	c := &postgres.Cluster{Dir: filepath.Join(dir, "pg"), Logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, c.Start(ctx))
	require.NoError(t, postgres.EnsureDatabase(ctx, c.URL("postgres", postgres.AdminUser), "molar"))
	conn, err := pgx.Connect(ctx, c.URL("molar", postgres.AdminUser))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before crash')")
	require.NoError(t, err)
	conn.Close(ctx)

	c.Kill() // SIGKILL: stale postmaster.pid and no clean shutdown
	require.FileExists(t, filepath.Join(c.Dir, "postmaster.pid"))

	c2 := &postgres.Cluster{Dir: c.Dir, Logger: slog.New(slog.DiscardHandler)}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, c2.Start(sctx))
	defer c2.Stop(ctx)
	conn, err = pgx.Connect(ctx, c2.URL("molar", postgres.AdminUser))
	require.NoError(t, err)
	var v string
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	require.Equal(t, "before crash", v)
	conn.Close(ctx)

	// No TCP port: the server listens on the Unix socket only.
	var addr *string
	conn, _ = pgx.Connect(ctx, c2.URL("molar", postgres.AdminUser))
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('listen_addresses')").Scan(&addr))
	require.Equal(t, "", *addr)
	conn.Close(ctx)

	require.NoError(t, c2.Stop(ctx))
	require.NoFileExists(t, filepath.Join(c.Dir, "postmaster.pid"))
}

func TestOrphanServerIsTakenOver(t *testing.T) {
	pgtest.AdminURL(t)
	dir := clusterParent(t, "molar-orphan-")
	ctx := context.Background()
	c := &postgres.Cluster{Dir: filepath.Join(dir, "pg")}
	require.NoError(t, c.Start(ctx))
	// While its owner lives, a second start attaches and leaves it running.
	admin := &postgres.Cluster{Dir: c.Dir}
	require.NoError(t, admin.Start(ctx))
	require.True(t, admin.Attached())
	require.NoError(t, admin.Stop(ctx))
	require.True(t, c.Running())
	// The owner gone (as a killed molar whose postmaster still runs), a
	// new start takes the server over.
	c.DropOwnerForTest()
	c2 := &postgres.Cluster{Dir: c.Dir}
	require.NoError(t, c2.Start(ctx))
	require.False(t, c2.Attached())
	require.True(t, c2.Running())
	require.Eventually(t, func() bool { return !c.Running() }, 10*time.Second, 20*time.Millisecond, "the orphan was stopped")
	require.NoError(t, c2.Stop(ctx))
	_ = c.Stop(ctx)
}

// TestNoInitRefusesADirectoryWithoutCluster: an admin command pointed at
// the wrong data directory fails instead of creating an empty database.
func TestNoInitRefusesADirectoryWithoutCluster(t *testing.T) {
	pgtest.AdminURL(t)
	dir := filepath.Join(t.TempDir(), "data", "pg")
	c := &postgres.Cluster{Dir: dir, NoInit: true}
	err := c.Start(context.Background())
	require.ErrorIs(t, err, postgres.ErrNoCluster)
	require.Contains(t, err.Error(), dir)
	require.NoDirExists(t, filepath.Dir(dir), "nothing created")
}

func TestMissingBinariesNameThePackage(t *testing.T) {
	c := &postgres.Cluster{Dir: t.TempDir() + "/pg", BinDir: ""}
	_ = c
	_, err := postgres.FindBinaries("99")
	require.Error(t, err)
	require.True(t, errors.Is(err, postgres.ErrBinariesMissing))
	require.Contains(t, err.Error(), "postgresql-99")
}

// holdCluster runs as a subprocess of
// TestAdminCommandAttachesAndKilledOwnerReleases (the test binary started
// with MOLAR_TEST_HOLD_CLUSTER): it starts a cluster and holds it, as
// `molar serve` does, until it is killed.
func holdCluster(dir string) {
	c := &postgres.Cluster{Dir: dir, Role: os.Getenv("MOLAR_TEST_HOLD_ROLE")}
	if err := c.Start(context.Background()); err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(1)
	}
	if os.Getenv("MOLAR_TEST_HOLD_LEGACY") != "" {
		c.DropOwnerForTest() // as a molar from before the owner file
	}
	os.Stdout.WriteString("ready\n")
	time.Sleep(10 * time.Minute)
}

// startHolder runs exe (this test binary, or a copy) as a holdCluster
// process with the extra environment, and waits until it holds the cluster.
func startHolder(t *testing.T, exe, pgDir string, env ...string) *exec.Cmd {
	owner := exec.Command(exe)
	owner.Env = append(append(os.Environ(), "MOLAR_TEST_HOLD_CLUSTER="+pgDir), env...)
	out, err := owner.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, owner.Start())
	t.Cleanup(func() { _ = owner.Process.Kill(); _ = owner.Wait() })
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	for err == nil && !strings.HasPrefix(line, "ready") && !strings.HasPrefix(line, "error") {
		line, err = rd.ReadString('\n')
	}
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	return owner
}

// A second `molar serve` on a data directory a serve owns fails at once;
// a serve waits (without a bound by default) for an admin command.
func TestServeDoesNotShareItsCluster(t *testing.T) {
	pgtest.AdminURL(t)
	pgDir := filepath.Join(clusterParent(t, "molar-serve2-"), "pg")
	owner := startHolder(t, os.Args[0], pgDir, "MOLAR_TEST_HOLD_ROLE=serve")
	start := time.Now()
	err := (&postgres.Cluster{Dir: pgDir, Exclusive: true, Role: "serve"}).Start(context.Background())
	require.ErrorIs(t, err, postgres.ErrClusterBusy)
	require.Contains(t, err.Error(), fmt.Sprintf("pid %d, serve", owner.Process.Pid))
	require.Less(t, time.Since(start), 10*time.Second, "no wait for another serve")
}

// An upgrade with the old server still running: its postmaster runs
// without the owner lock under a live molar. A new admin command uses that
// server and never stops it; a new serve waits for it to stop, then
// refuses, naming the old one.
func TestOlderMolarsServerIsNotStopped(t *testing.T) {
	pgtest.AdminURL(t)
	dir := clusterParent(t, "molar-legacy-")
	pgDir := filepath.Join(dir, "pg")
	exe := filepath.Join(dir, "molar-old")
	b, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(exe, b, 0o755))
	old := startHolder(t, exe, pgDir, "MOLAR_TEST_HOLD_LEGACY=1")
	ctx := context.Background()

	admin := &postgres.Cluster{Dir: pgDir}
	require.NoError(t, admin.Start(ctx))
	require.True(t, admin.Attached())
	require.NoError(t, admin.Stop(ctx))
	start := time.Now()
	err = (&postgres.Cluster{Dir: pgDir, Exclusive: true, Role: "serve", OwnerWait: 2 * time.Second}).Start(ctx)
	require.ErrorIs(t, err, postgres.ErrClusterBusy)
	require.Contains(t, err.Error(), fmt.Sprintf("pid %d", old.Process.Pid))
	require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "serve waited for the old one to stop")
	conn, err := pgx.Connect(ctx, admin.URL("postgres", postgres.AdminUser))
	require.NoError(t, err, "the old server still runs")
	conn.Close(ctx)
}

func TestAdminCommandAttachesAndKilledOwnerReleases(t *testing.T) {
	pgtest.AdminURL(t)
	dir := clusterParent(t, "molar-attach-")
	pgDir := filepath.Join(dir, "pg")

	owner := startHolder(t, os.Args[0], pgDir)
	ctx := context.Background()
	admin := &postgres.Cluster{Dir: pgDir}
	require.NoError(t, admin.Start(ctx))
	require.True(t, admin.Attached(), "an admin command uses the running server's cluster")
	conn, err := pgx.Connect(ctx, admin.URL("postgres", postgres.AdminUser))
	require.NoError(t, err)
	conn.Close(ctx)
	require.NoError(t, admin.Stop(ctx))
	conn, err = pgx.Connect(ctx, admin.URL("postgres", postgres.AdminUser))
	require.NoError(t, err, "stopping an attached cluster leaves it running")
	conn.Close(ctx)

	// `molar serve` (Exclusive) does not attach: it waits for the owner,
	// then says who runs the cluster.
	serve := &postgres.Cluster{Dir: pgDir, Exclusive: true, OwnerWait: time.Second}
	err = serve.Start(ctx)
	require.ErrorIs(t, err, postgres.ErrClusterBusy)
	require.Contains(t, err.Error(), fmt.Sprintf("pid %d", owner.Process.Pid))

	// A server that does not answer (here: stopped; in life: recovering
	// after a crash, out of connections) is never stopped by an admin
	// command: it fails, and the server runs on.
	pidFile, err := os.ReadFile(filepath.Join(pgDir, "postmaster.pid"))
	require.NoError(t, err)
	postmaster, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(postmaster, syscall.SIGSTOP))
	stuck := &postgres.Cluster{Dir: pgDir, AttachWait: time.Second}
	err = stuck.Start(ctx)
	require.NoError(t, syscall.Kill(postmaster, syscall.SIGCONT))
	require.Error(t, err)
	require.Contains(t, err.Error(), "left running")
	time.Sleep(200 * time.Millisecond)
	conn, err = pgx.Connect(ctx, admin.URL("postgres", postgres.AdminUser))
	require.NoError(t, err, "the owner's server still runs")
	conn.Close(ctx)

	// kill -9 of the owner: the postmaster gets its parent-death signal and
	// a new start takes over and recovers.
	require.NoError(t, owner.Process.Kill())
	_ = owner.Wait()
	next := &postgres.Cluster{Dir: pgDir}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, next.Start(sctx))
	require.False(t, next.Attached())
	require.True(t, next.Running())
	require.NoError(t, next.Stop(ctx))
}

// TestEmbeddedClusterOutlivesEndingThreads: Linux signals a child started
// with Pdeathsig when the thread that started it ends, not the process.
// Here the goroutine that starts the cluster holds its thread and returns,
// which ends the thread; the server must keep running.
func TestEmbeddedClusterOutlivesEndingThreads(t *testing.T) {
	pgtest.AdminURL(t)
	dir := clusterParent(t, "molar-threads-")
	ctx := context.Background()
	c := &postgres.Cluster{Dir: filepath.Join(dir, "pg"), Logger: slog.New(slog.DiscardHandler)}
	result, finished := make(chan error, 1), make(chan struct{})
	launch := func() {
		runtime.LockOSThread() // returning while locked ends the thread
		result <- c.Start(ctx)
		close(finished)
	}
	go func() {
		runtime.LockOSThread()
		if syscall.Gettid() == syscall.Getpid() {
			// Go never ends the main thread: start from another one
			// (this goroutine holds the main thread meanwhile).
			go launch()
			<-finished
			return
		}
		launch()
	}()
	require.NoError(t, <-result)
	<-finished
	defer c.Stop(ctx)

	time.Sleep(300 * time.Millisecond) // a signalled server shuts down at once
	conn, err := pgx.Connect(ctx, c.URL("postgres", postgres.AdminUser))
	require.NoError(t, err, "the server still accepts connections")
	require.NoError(t, conn.Ping(ctx))
	conn.Close(ctx)
}

// clusterParent makes a folder for a test's own cluster that the postgres
// user can enter when the tests run as root (t.TempDir's folders are
// private to their owner), removed after the test.
func clusterParent(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// The README's external set-up: one URL for a role with CREATEROLE that
// owns the database. Migrations create the roles, and the runtime pool
// switches to the app role over the same URL (the role is made a member).
func TestCreateRoleOwnerRunsWithOneURL(t *testing.T) {
	ctx := context.Background()
	admin := pgtest.AdminURL(t)
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	defer conn.Close(ctx)
	role := fmt.Sprintf("creator_%d", os.Getpid())
	name := role + "_db"
	_, err = conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN CREATEROLE", role))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", name, role))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+role)
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + name
	q := u.Query()
	q.Set("user", role)
	u.RawQuery = q.Encode()
	u.User = nil
	src := postgres.Source{Namespace: "core_y", FS: fstest.MapFS{"0001.sql": {Data: []byte(`CREATE TABLE item (id int);`)}}}
	_, err = postgres.Migrate(ctx, u.String(), []postgres.Source{src}, nil)
	require.NoError(t, err)
	pool, err := postgres.OpenPool(ctx, u.String(), postgres.PoolOptions{SetRole: postgres.AppRole})
	require.NoError(t, err, "the runtime pool sets the app role over the owner's URL")
	defer pool.Close()
	_, err = pool.Exec(ctx, "INSERT INTO core_y.item VALUES (1)")
	require.NoError(t, err)
	var who string
	require.NoError(t, pool.QueryRow(ctx, "SELECT current_user").Scan(&who))
	require.Equal(t, postgres.AppRole, who)
}
