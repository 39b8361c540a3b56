package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Source is one namespace of migrations: the core packages ("auth",
// "dicom", "journal", …) and each module have their own. The namespace is
// also the PostgreSQL schema the files' objects belong in: the runner creates
// it (owned by OwnerRole, usable by AppRole, with default privileges giving
// AppRole DML on new tables) and puts it first on the search_path while a
// file runs. Files are the *.sql files at the root of FS, applied in lexical
// order, each in its own transaction.
type Source struct {
	Namespace string
	FS        fs.FS
}

var namespaceRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

// migrationLockKey serialises concurrent runners (two servers starting together).
const migrationLockKey = 0x6d6f6c6172 // "molar"

// MigrationError names the failing file and carries the SQL error.
type MigrationError struct {
	Namespace, File string
	Err             error
}

func (e *MigrationError) Error() string {
	msg := e.Err.Error()
	var pgErr *pgconn.PgError
	if errors.As(e.Err, &pgErr) {
		msg = fmt.Sprintf("%s (SQLSTATE %s", pgErr.Message, pgErr.Code)
		if pgErr.Position > 0 {
			msg += fmt.Sprintf(", at character %d", pgErr.Position)
		}
		msg += ")"
	}
	return fmt.Sprintf("migration %s/%s failed: %s", e.Namespace, e.File, msg)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// Applied is one row of the migrations ledger.
type Applied struct {
	Namespace, File, Checksum string
}

// ErrSchemaNewer: the database holds migrations this binary does not know:
// a newer molar migrated it (a rollback to an older binary).
var ErrSchemaNewer = errors.New("the database was migrated by a newer version of molar")

// checkNotNewer refuses a database whose ledger holds a file of one of
// sources' namespaces that the source does not have: running an older
// binary on a newer schema would write data the newer one's constraints or
// triggers were meant to handle. Namespaces not among sources (a module
// not built into this binary) are not judged.
func checkNotNewer(sources []Source, done map[[2]string]string) error {
	known := map[[2]string]bool{}
	namespaces := map[string]bool{}
	for _, src := range sources {
		if src.FS == nil {
			continue
		}
		namespaces[src.Namespace] = true
		files, err := fs.Glob(src.FS, "*.sql")
		if err != nil {
			return fmt.Errorf("postgres: list migrations of %s: %w", src.Namespace, err)
		}
		for _, f := range files {
			known[[2]string{src.Namespace, path.Base(f)}] = true
		}
	}
	var unknown []string
	for k := range done {
		if namespaces[k[0]] && !known[k] {
			unknown = append(unknown, k[0]+"/"+k[1])
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("postgres: %w (it has %s, which this binary does not): run that version or a later one", ErrSchemaNewer, strings.Join(unknown, ", "))
	}
	return nil
}

// Migrate applies every pending migration of sources, in order, on the
// database at url. It holds an advisory lock for the whole run. A file that
// fails rolls back alone and stops the run with a *MigrationError. A file
// already applied whose content changed is reported as an error too: applied
// migrations are never edited, a new file is added instead.
func Migrate(ctx context.Context, url string, sources []Source, log *slog.Logger) (applied []Applied, err error) {
	return MigrateThen(ctx, url, sources, log, nil)
}

// MigrateThen is Migrate, then runs then (other migrations, such as the job
// queue's) while still holding the migration lock, so that runners
// starting together never run those at the same time either.
func MigrateThen(ctx context.Context, url string, sources []Source, log *slog.Logger, then func(context.Context) error) (applied []Applied, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect for migrations: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLockKey)); err != nil {
		return nil, fmt.Errorf("postgres: migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLockKey)) //nolint:errcheck

	owner, err := prepareRoles(ctx, conn)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `
		CREATE SCHEMA IF NOT EXISTS molar_migrations;
		CREATE TABLE IF NOT EXISTS molar_migrations.applied (
			namespace  text NOT NULL,
			file       text NOT NULL,
			checksum   text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (namespace, file)
		);`); err != nil {
		return nil, fmt.Errorf("postgres: migrations ledger: %w", err)
	}
	done := map[[2]string]string{}
	rows, err := conn.Query(ctx, "SELECT namespace, file, checksum FROM molar_migrations.applied")
	if err != nil {
		return nil, fmt.Errorf("postgres: read migrations ledger: %w", err)
	}
	for rows.Next() {
		var ns, f, sum string
		if err := rows.Scan(&ns, &f, &sum); err != nil {
			return nil, err
		}
		done[[2]string{ns, f}] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read migrations ledger: %w", err)
	}

	if err := checkNotNewer(sources, done); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, src := range sources {
		if !namespaceRE.MatchString(src.Namespace) {
			return applied, fmt.Errorf("postgres: invalid migration namespace %q", src.Namespace)
		}
		if seen[src.Namespace] {
			return applied, fmt.Errorf("postgres: migration namespace %q given twice", src.Namespace)
		}
		seen[src.Namespace] = true
		if src.FS == nil {
			continue
		}
		files, err := fs.Glob(src.FS, "*.sql")
		if err != nil {
			return applied, fmt.Errorf("postgres: list migrations of %s: %w", src.Namespace, err)
		}
		sort.Strings(files)
		for _, f := range files {
			body, err := fs.ReadFile(src.FS, f)
			if err != nil {
				return applied, &MigrationError{src.Namespace, f, err}
			}
			sum := checksum(body)
			if prev, ok := done[[2]string{src.Namespace, f}]; ok {
				if prev != sum {
					return applied, &MigrationError{src.Namespace, f, errors.New("already applied with different content; never edit an applied migration, add a new file")}
				}
				continue
			}
			if err := applyOne(ctx, conn, owner, src.Namespace, path.Base(f), string(body), sum); err != nil {
				return applied, err
			}
			log.Info("applied migration", "namespace", src.Namespace, "file", f)
			applied = append(applied, Applied{src.Namespace, f, sum})
		}
	}
	if then != nil {
		if err := then(ctx); err != nil {
			return applied, err
		}
	}
	return applied, nil
}

func checksum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// prepareRoles makes sure OwnerRole and AppRole exist when the connected user
// may create them, and returns the role migrations run as.
func prepareRoles(ctx context.Context, conn *pgx.Conn) (string, error) {
	var super, createRole bool
	var current string
	if err := conn.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, current_user FROM pg_roles WHERE rolname = current_user`).Scan(&super, &createRole, &current); err != nil {
		return "", fmt.Errorf("postgres: inspect current role: %w", err)
	}
	if super || createRole {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`
			DO $$ BEGIN
			  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s') THEN CREATE ROLE %[1]s NOLOGIN; END IF;
			  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[2]s') THEN CREATE ROLE %[2]s LOGIN; END IF;
			END $$;`, OwnerRole, AppRole)); err != nil {
			return "", fmt.Errorf("postgres: create roles: %w", err)
		}
		if !super {
			// Migrations run as the owner role.
			if _, err := conn.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", OwnerRole, pgx.Identifier{current}.Sanitize())); err != nil {
				return "", fmt.Errorf("postgres: grant owner role: %w", err)
			}
			// A server given this one URL (no MOLAR_DATABASE_APP_URL)
			// switches to the app role. Best effort: where a DBA created
			// molar_app under another role (PostgreSQL 16 lets only its
			// admins grant it), the migrations do not need it, and the
			// server's SET ROLE names the problem.
			if _, err := conn.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", AppRole, pgx.Identifier{current}.Sanitize())); err != nil && !IsInsufficientPrivilege(err) {
				return "", fmt.Errorf("postgres: grant app role: %w", err)
			}
		}
		// The ledger and schemas belong to the owner.
		if _, err := conn.Exec(ctx, fmt.Sprintf(`GRANT CREATE ON DATABASE %s TO %s`, pgx.Identifier{dbName(ctx, conn)}.Sanitize(), OwnerRole)); err != nil {
			return "", fmt.Errorf("postgres: grant create: %w", err)
		}
		if _, err := conn.Exec(ctx, "SET ROLE "+OwnerRole); err != nil {
			return "", fmt.Errorf("postgres: set owner role: %w", err)
		}
		return OwnerRole, nil
	}
	var exists bool
	_ = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, AppRole).Scan(&exists)
	if !exists {
		return "", fmt.Errorf("postgres: role %s does not exist and %s may not create it; create it (CREATE ROLE %s LOGIN PASSWORD '…') or connect as a role with CREATEROLE", AppRole, current, AppRole)
	}
	return current, nil
}

func dbName(ctx context.Context, conn *pgx.Conn) string {
	var n string
	_ = conn.QueryRow(ctx, "SELECT current_database()").Scan(&n)
	return n
}

func applyOne(ctx context.Context, conn *pgx.Conn, owner, ns, file, body, sum string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return &MigrationError{ns, file, err}
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	ident := pgx.Identifier{ns}.Sanitize()
	app := pgx.Identifier{AppRole}.Sanitize()
	setup := fmt.Sprintf(`
		CREATE SCHEMA IF NOT EXISTS %[1]s;
		GRANT USAGE ON SCHEMA %[1]s TO %[2]s;
		ALTER DEFAULT PRIVILEGES IN SCHEMA %[1]s GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %[2]s;
		ALTER DEFAULT PRIVILEGES IN SCHEMA %[1]s GRANT USAGE, SELECT ON SEQUENCES TO %[2]s;
		ALTER DEFAULT PRIVILEGES IN SCHEMA %[1]s GRANT EXECUTE ON FUNCTIONS TO %[2]s;
		SET LOCAL search_path TO %[1]s, public;`, ident, app)
	if _, err := tx.Exec(ctx, setup); err != nil {
		return &MigrationError{ns, file, fmt.Errorf("prepare schema: %w", err)}
	}
	// No arguments: the simple protocol runs multi-statement files.
	if _, err := tx.Exec(ctx, body); err != nil {
		return &MigrationError{ns, file, err}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO molar_migrations.applied (namespace, file, checksum) VALUES ($1, $2, $3)`, ns, file, sum); err != nil {
		return &MigrationError{ns, file, err}
	}
	if err := tx.Commit(ctx); err != nil {
		return &MigrationError{ns, file, err}
	}
	return nil
}

// Pending lists migrations not yet applied (for `molar migrate --status`).
func Pending(ctx context.Context, url string, sources []Source) ([]string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(ctx)
	done := map[string]bool{}
	rows, err := conn.Query(ctx, "SELECT namespace || '/' || file FROM molar_migrations.applied")
	if err == nil {
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			done[s] = true
		}
		rows.Close()
	}
	var out []string
	for _, src := range sources {
		if src.FS == nil {
			continue
		}
		files, _ := fs.Glob(src.FS, "*.sql")
		sort.Strings(files)
		for _, f := range files {
			k := src.Namespace + "/" + f
			if !done[k] {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

var _ = strings.TrimSpace
