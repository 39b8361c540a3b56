package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// adminEnv points admin commands at a fresh test database.
func adminEnv(t *testing.T) (map[string]string, *pgtest.DB) {
	db := pgtest.Open(t)
	return map[string]string{
		"MOLAR_DATABASE_URL":     db.AdminURL,
		"MOLAR_DATABASE_APP_URL": db.AppURL,
		"MOLAR_DATA_DIR":         t.TempDir(),
		"MOLAR_LOG_LEVEL":        "warn",
	}, db
}

// tenantEnv is adminEnv migrated, with one municipality (0101).
func tenantEnv(t *testing.T) (map[string]string, *pgtest.DB, auth.Tenant) {
	env, db := adminEnv(t)
	code, _, errs := runCmd(t, env, "migrate")
	require.Equal(t, 0, code, errs)
	ten, err := auth.CreateTenant(context.Background(), db.Admin, "0101", "Testkommune")
	require.NoError(t, err)
	return env, db, ten
}

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, envOf(env), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAdminCommands(t *testing.T) {
	env, _ := adminEnv(t)
	code, out, errs := runCmd(t, env, "migrate")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "up to date")

	// No municipality yet: a clear message.
	pw := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pw, []byte("en-lang-adgangskode\n"), 0o600))
	code, _, errs = runCmd(t, env, "user", "add", "--username", "kim", "--role", "dentist", "--password-file", pw)
	require.Equal(t, 1, code)
	require.Contains(t, errs, "no municipality yet")

	code, out, errs = runCmd(t, env, "user", "add", "--username", "kim", "--role", "dentist", "--password-file", pw, "--tenant", "0751", "--tenant-name", "Aarhus Kommune")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "created user kim")
	code, _, errs = runCmd(t, env, "user", "add", "--username", "kim", "--role", "dentist", "--password-file", pw)
	require.Equal(t, 1, code, "duplicate username")
	require.NotEmpty(t, errs)
	code, _, errs = runCmd(t, env, "user", "add", "--username", "x", "--role", "wizard", "--password-file", pw)
	require.Equal(t, 1, code)
	require.Contains(t, errs, "unknown role")

	code, out, _ = runCmd(t, env, "user", "list")
	require.Equal(t, 0, code)
	require.Contains(t, out, "kim")

	code, _, errs = runCmd(t, env, "ae", "add", "--title", "CBCT2", "--host", "10.1.2.4", "--tenant", "9999")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "9999")
	code, out, errs = runCmd(t, env, "ae", "add", "--title", "CBCT1", "--host", "10.1.2.3", "--port", "104", "--permissions", "store,find", "--tenant", "0751")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "added AE CBCT1")
	code, out, _ = runCmd(t, env, "ae", "list")
	require.Equal(t, 0, code)
	require.Contains(t, out, "CBCT1")
	require.Contains(t, out, "10.1.2.3:104")
	require.Regexp(t, `CBCT1\s+10\.1\.2\.3:104\s+-\s+-\s`, out, "no TLS, no sign-in")
	code, out, errs = runCmd(t, env, "ae", "add", "--title", "CBCT1", "--host", "10.1.2.3", "--port", "2762", "--tls", "--replace")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "over TLS")
	_, out, _ = runCmd(t, env, "ae", "list")
	require.Regexp(t, `CBCT1\s+10\.1\.2\.3:2762\s+yes\s+-\s+echo,find,store\s`, out, "permissions kept")
	// An update names only what changes: the rest (TLS, permissions, port,
	// municipality) keeps its value; --tls=false turns TLS off.
	code, out, errs = runCmd(t, env, "ae", "add", "--title", "CBCT1", "--host", "10.1.2.9", "--replace")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "updated AE CBCT1 at 10.1.2.9:2762 (echo,find,store, over TLS)")
	code, out, errs = runCmd(t, env, "ae", "add", "--title", "CBCT1", "--tls=false", "--permissions", "store", "--require-user", "--replace")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "updated AE CBCT1 at 10.1.2.9:2762 (echo,store, signed in)")
	_, out, _ = runCmd(t, env, "ae", "list")
	require.Regexp(t, `CBCT1\s+10\.1\.2\.9:2762\s+-\s+required\s+echo,store\s`, out)
	code, _, errs = runCmd(t, env, "ae", "add", "--title", "NEWAE", "--replace")
	require.Equal(t, 2, code, "a new AE needs its host")
	require.Contains(t, errs, "--host")
	code, _, errs = runCmd(t, env, "ae", "add", "--title", "BAD\\AE", "--host", "h")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "AE title")
	code, _, _ = runCmd(t, env, "ae", "remove", "--title", "CBCT1")
	require.Equal(t, 0, code)

	code, _, errs = runCmd(t, env, "user", "frob")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "usage")
}

func TestAuditVerifyCommandDetectsTampering(t *testing.T) {
	env, db := adminEnv(t)
	code, out, errs := runCmd(t, env, "demo")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "tandlaege")

	// Some audited activity: a login through the real server.
	ts := newTestServer(t, map[string]string{"MOLAR_DATABASE_URL": db.AdminURL, "MOLAR_DATABASE_APP_URL": db.AppURL})
	_ = ts
	ctx := context.Background()
	require.NoError(t, postgres.InTenant(ctx, db.App, 1, func(tx pgx.Tx) error {
		ctx := audit.WithActor(ctx, audit.Actor{UserID: 1, Username: "tandlaege", Role: "dentist", TenantID: 1, RequestID: "req-test-1", SourceAddr: "127.0.0.1"})
		for i := 0; i < 5; i++ {
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: 1, Object: "journal.entry/1"}); err != nil {
				return err
			}
		}
		return nil
	}))

	code, out, errs = runCmd(t, env, "audit", "verify")
	require.Equal(t, 0, code, out+errs)
	require.Contains(t, out, "OK")

	// A superuser changes a sealed row behind the trigger's back.
	_, err := db.Admin.Exec(ctx, `ALTER TABLE audit.event DISABLE TRIGGER USER;
		UPDATE audit.event SET action = 'create' WHERE id = (SELECT max(id) FROM audit.event WHERE action = 'read');
		ALTER TABLE audit.event ENABLE TRIGGER USER;`)
	require.NoError(t, err)
	code, out, errs = runCmd(t, env, "audit", "verify")
	require.Equal(t, 1, code, "tampering is an error exit")
	require.Contains(t, out, "changed")
	require.Contains(t, errs, "problem")
}
