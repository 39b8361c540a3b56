package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnsureDatabase creates database name (owned by OwnerRole) on the cluster at
// adminURL when it does not exist, creating the roles first.
func EnsureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("postgres: connect as admin: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`
		DO $$ BEGIN
		  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s') THEN CREATE ROLE %[1]s NOLOGIN; END IF;
		  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[2]s') THEN CREATE ROLE %[2]s LOGIN; END IF;
		END $$;`, OwnerRole, AppRole)); err != nil {
		return fmt.Errorf("postgres: create roles: %w", err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: look up database: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8'", pgx.Identifier{name}.Sanitize(), OwnerRole))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another server
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: create database %s: %w", name, err)
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{name}.Sanitize(), AppRole))
	if err != nil {
		return fmt.Errorf("postgres: grant connect: %w", err)
	}
	return nil
}

// PoolOptions tunes OpenPool.
type PoolOptions struct {
	MaxConns int32
	// SetRole, when set, switches every new connection to that role (for an
	// external database reached with a single URL). Prefer a URL that logs in
	// as AppRole directly.
	SetRole string
}

// OpenPool opens a connection pool and checks that the database answers.
func OpenPool(ctx context.Context, url string, opts PoolOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid database URL: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "molar"
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if opts.SetRole != "" {
		role := pgx.Identifier{opts.SetRole}.Sanitize()
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "SET ROLE "+role)
			return err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: database unreachable: %w", err)
	}
	return pool, nil
}

// TenantSetting is the session setting that row-level security policies read:
//
//	USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
//
// Outside InTenant the setting is unset, so policies match no rows.
const TenantSetting = "molar.tenant"

// Beginner is what InTenant and InTx need (a pool or a connection).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// InTx runs fn in a transaction, committing when fn returns nil.
func InTx(ctx context.Context, db Beginner, fn func(pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// InTenant runs fn in a transaction scoped to one tenant (municipality):
// row-level security lets it see and write only that tenant's rows.
func InTenant(ctx context.Context, db Beginner, tenant int64, fn func(pgx.Tx) error) error {
	return InTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config($1, $2, true)", TenantSetting, strconv.FormatInt(tenant, 10)); err != nil {
			return fmt.Errorf("postgres: set tenant: %w", err)
		}
		return fn(tx)
	})
}

// IsUniqueViolation reports whether err is a unique constraint violation.
func IsUniqueViolation(err error) bool { return hasCode(err, "23505") }

// IsExclusionViolation reports whether err is an exclusion constraint violation.
func IsExclusionViolation(err error) bool { return hasCode(err, "23P01") }

// IsDeadlock reports whether err is PostgreSQL's deadlock verdict (40P01):
// the statement was chosen to break a cycle of waits and may be retried.
func IsDeadlock(err error) bool { return hasCode(err, "40P01") }

// IsInsufficientPrivilege reports whether err is a permission error (42501).
func IsInsufficientPrivilege(err error) bool { return hasCode(err, "42501") }

func hasCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
