package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// TestBackupAndRestore takes a backup of the demo municipality (database
// and images), restores it into a new embedded installation and checks the
// result with the archive and audit verifications; a backup whose object is
// missing in the store fails and is never restorable, a damaged backup is
// reported object by object, and a restore never touches a database that
// holds data.
func TestBackupAndRestore(t *testing.T) {
	ctx := context.Background()
	env, src := adminEnv(t)
	code, _, errs := runCmd(t, env, "demo")
	require.Equal(t, 0, code, errs)
	var instances int
	var bytes int64
	require.NoError(t, src.Admin.QueryRow(ctx, `SELECT count(*), sum(size) FROM dicom.instance`).Scan(&instances, &bytes))
	require.Greater(t, instances, 10, "the demo has images")
	_, users, _ := runCmd(t, env, "user", "list")
	// Sealed up to now: the head's horizon is a transaction id of this
	// cluster, far above those of the new cluster restored into below.
	for range 1500 {
		_, err := src.Admin.Exec(ctx, `SELECT txid_current()`)
		require.NoError(t, err)
	}
	code, stdout, errs := runCmd(t, env, "audit", "verify")
	require.Equal(t, 0, code, stdout+errs)
	// And one event the backup holds unsealed.
	var tenant int64
	require.NoError(t, src.Admin.QueryRow(ctx, `SELECT min(id) FROM auth.tenant`).Scan(&tenant))
	actx := audit.WithActor(ctx, audit.Actor{Username: "system:test", Role: "system", TenantID: tenant})
	require.NoError(t, postgres.InTenant(actx, src.Admin, tenant, func(tx pgx.Tx) error {
		return audit.Record(actx, tx, audit.Event{Action: audit.ActionExport, Object: "test"})
	}))

	out := filepath.Join(t.TempDir(), "backup")
	code, stdout, errs = runCmd(t, env, "backup", "--out", out, "--quiet")
	require.Equal(t, 0, code, errs)
	require.Contains(t, stdout, fmt.Sprintf("the database and %d instance objects", instances))
	st, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "health data: a private folder")
	n := 0
	require.NoError(t, filepath.WalkDir(filepath.Join(out, "objects"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
			require.NotContains(t, p, ".part")
		}
		return err
	}))
	require.Equal(t, instances, n, "one file per instance object, no thumbnails")
	// Every file private too: a copy of the folder (tar, rsync -a to a
	// backup server) keeps the modes, not the folder around it.
	require.NoError(t, filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		require.NoError(t, err)
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		require.Equal(t, want, info.Mode().Perm(), p)
		return nil
	}))
	var backups int
	require.NoError(t, src.Admin.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'export' AND object = 'backup'`).Scan(&backups))
	require.Equal(t, 1, backups, "the backup is in the municipality's audit log")

	// Never over an earlier backup.
	code, _, errs = runCmd(t, env, "backup", "--out", out, "--quiet")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "not empty")

	// Restore into a new installation: the embedded cluster is created.
	dst := map[string]string{"MOLAR_DATA_DIR": dataDir(t), "MOLAR_LOG_LEVEL": "warn"}
	// An object store that cannot be reached (a wrong endpoint) fails
	// before the database is restored: the restore can be run again.
	noS3 := map[string]string{"MOLAR_S3_ENDPOINT": "127.0.0.1:1", "MOLAR_S3_BUCKET": "molar",
		"MOLAR_S3_ACCESS_KEY": "molar", "MOLAR_S3_SECRET_KEY": "secret-secret"}
	for k, v := range dst {
		noS3[k] = v
	}
	code, _, errs = runCmd(t, noS3, "restore", "--from", out, "--quiet")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "object store")
	code, stdout, errs = runCmd(t, dst, "restore", "--from", out, "--quiet")
	require.Equal(t, 0, code, errs)
	require.Contains(t, stdout, fmt.Sprintf("%d instance objects restored", instances))
	require.Contains(t, stdout, "audit chain: 1 event(s) the backup held unsealed now sealed")
	code, stdout, errs = runCmd(t, dst, "archive", "verify", "--hash", "--quiet")
	require.Equal(t, 0, code, stdout+errs)
	require.Contains(t, stdout, fmt.Sprintf("%d instances checked", instances))
	require.Contains(t, stdout, "no problems")
	code, stdout, errs = runCmd(t, dst, "audit", "verify")
	require.Equal(t, 0, code, stdout+errs)
	_, restoredUsers, _ := runCmd(t, dst, "user", "list")
	require.Equal(t, users, restoredUsers)
	// Events written after the restore (here: a backup's) are sealed and
	// verify: the chain goes on in the new cluster's transaction ids.
	code, _, errs = runCmd(t, dst, "backup", "--out", filepath.Join(t.TempDir(), "again"), "--quiet", "--database-only")
	require.Equal(t, 0, code, errs)
	code, stdout, errs = runCmd(t, dst, "audit", "verify")
	require.Equal(t, 0, code, stdout+errs)
	require.Contains(t, stdout, "0 not yet sealed")

	// A restore that stopped while it put the objects back (here: one
	// object lost) goes on with --objects-only.
	var lost string
	require.NoError(t, src.Admin.QueryRow(ctx, `SELECT object_key FROM dicom.instance ORDER BY id DESC LIMIT 1`).Scan(&lost))
	require.NoError(t, os.Remove(filepath.Join(dst["MOLAR_DATA_DIR"], "objects", filepath.FromSlash(lost))))
	code, stdout, errs = runCmd(t, dst, "restore", "--from", out, "--quiet", "--objects-only")
	require.Equal(t, 0, code, stdout+errs)
	require.Contains(t, stdout, fmt.Sprintf("%d instance objects restored", instances))
	code, stdout, errs = runCmd(t, dst, "archive", "verify", "--hash", "--quiet")
	require.Equal(t, 0, code, stdout+errs)

	// A second restore is refused: the database holds data, and stays whole.
	code, _, errs = runCmd(t, dst, "restore", "--from", out, "--quiet")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "not empty")
	code, stdout, errs = runCmd(t, dst, "archive", "verify", "--quiet")
	require.Equal(t, 0, code, stdout+errs)

	// A damaged backup: every damaged object is named; the rest restores.
	var key string
	require.NoError(t, src.Admin.QueryRow(ctx, `SELECT object_key FROM dicom.instance ORDER BY id LIMIT 1`).Scan(&key))
	copied := filepath.Join(out, "objects", filepath.FromSlash(key))
	b, err := os.ReadFile(copied)
	require.NoError(t, err)
	b[len(b)/2] ^= 0xff
	require.NoError(t, os.WriteFile(copied, b, 0o600))
	env3, _ := adminEnv(t) // an empty external database
	code, stdout, errs = runCmd(t, env3, "restore", "--from", out, "--quiet")
	require.Equal(t, 1, code)
	require.Regexp(t, regexp.MustCompile(`object `+regexp.QuoteMeta(key)+`: SHA-256 differs in the backup`), stdout)
	require.Contains(t, stdout, fmt.Sprintf("%d instance objects restored", instances-1))
	require.Contains(t, errs, "1 object(s) missing or damaged")

	// A damaged dump is found before anything is restored.
	dump := filepath.Join(out, "database.pgdump")
	b, err = os.ReadFile(dump)
	require.NoError(t, err)
	b[len(b)/2] ^= 0xff
	require.NoError(t, os.WriteFile(dump, b, 0o600))
	env4, db4 := adminEnv(t)
	code, _, errs = runCmd(t, env4, "restore", "--from", out, "--quiet")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "database.pgdump in "+out+" is damaged")
	var tables int
	require.NoError(t, db4.Admin.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'molar_migrations')`).Scan(&tables))
	require.Zero(t, tables, "nothing restored")

	// An object missing from the store: the backup fails, writes no
	// manifest, and cannot be restored.
	require.NoError(t, os.Remove(filepath.Join(env["MOLAR_DATA_DIR"], "objects", filepath.FromSlash(key))))
	bad := filepath.Join(t.TempDir(), "bad")
	code, stdout, errs = runCmd(t, env, "backup", "--out", bad, "--quiet")
	require.Equal(t, 1, code)
	require.Contains(t, stdout, key+": not in the object store")
	require.Contains(t, errs, "incomplete")
	_, err = os.Stat(filepath.Join(bad, "molar-backup.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
	code, _, errs = runCmd(t, map[string]string{"MOLAR_DATA_DIR": t.TempDir()}, "restore", "--from", bad)
	require.Equal(t, 1, code)
	require.Contains(t, errs, "not a complete Molar backup")
}

// TestRestoreIntoNewServer restores into an empty database of a new
// PostgreSQL server, as README's external setup has it: a login role
// with CREATEROLE owning the database, and none of Molar's roles yet.
func TestRestoreIntoNewServer(t *testing.T) {
	ctx := context.Background()
	env, _ := adminEnv(t)
	code, _, errs := runCmd(t, env, "demo")
	require.Equal(t, 0, code, errs)
	out := filepath.Join(t.TempDir(), "backup")
	code, _, errs = runCmd(t, env, "backup", "--out", out, "--quiet", "--database-only")
	require.Equal(t, 0, code, errs)
	_, users, _ := runCmd(t, env, "user", "list")

	dir := dataDir(t)
	server := &postgres.Cluster{Dir: filepath.Join(dir, "server")}
	require.NoError(t, server.Start(ctx))
	t.Cleanup(func() { _ = server.Stop(context.Background()) })
	admin, err := pgx.Connect(ctx, server.URL("postgres", postgres.AdminUser))
	require.NoError(t, err)
	for _, q := range []string{`CREATE ROLE molar LOGIN CREATEROLE`, `CREATE DATABASE molar OWNER molar`} {
		_, err := admin.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	require.NoError(t, admin.Close(ctx))
	dst := map[string]string{
		"MOLAR_DATABASE_URL":     server.URL("molar", "molar"),
		"MOLAR_DATABASE_APP_URL": server.URL("molar", postgres.AppRole),
		"MOLAR_DATA_DIR":         filepath.Join(dir, "molar"),
		"MOLAR_LOG_LEVEL":        "warn",
	}
	code, stdout, errs := runCmd(t, dst, "restore", "--from", out, "--quiet", "--database-only")
	require.Equal(t, 0, code, stdout+errs)
	_, restoredUsers, _ := runCmd(t, dst, "user", "list")
	require.Equal(t, users, restoredUsers)
	code, stdout, errs = runCmd(t, dst, "audit", "verify")
	require.Equal(t, 0, code, stdout+errs)
}

// TestWithoutPassword: pg_dump and pg_restore get the database password in
// their environment, never on their command line (ps shows it to every
// user of the machine).
func TestWithoutPassword(t *testing.T) {
	for _, c := range []struct{ in, url, password string }{
		{"postgres://molar:s3cr%40t@db.kommune.local:5432/molar?sslmode=verify-full", "postgres://molar@db.kommune.local:5432/molar?sslmode=verify-full", "s3cr@t"},
		{"postgresql://molar@db/molar?password=s3cret&sslmode=require", "postgresql://molar@db/molar?sslmode=require", "s3cret"},
		{"postgres:///molar?host=/run/pg&user=molar_admin&sslmode=disable", "postgres:///molar?host=/run/pg&user=molar_admin&sslmode=disable", ""},
		{"host=db user=molar password=s3cret dbname=molar", "host=db user=molar dbname=molar", "s3cret"},
		{`host=db password='a b\'c' dbname=molar`, "host=db dbname=molar", "a b'c"},
	} {
		url, password := withoutPassword(c.in)
		require.Equal(t, c.url, strings.Join(strings.Fields(url), " "), c.in)
		require.Equal(t, c.password, password, c.in)
	}
}
