// Package index is Molar's DICOM index on PostgreSQL (schema "dicom"): the
// known application entities, and (with the ingest path) the patient, study,
// series and instance tables that C-FIND and QIDO-RS query.
package index

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/molar-health/molar/storage/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the "dicom" schema.
func Migrations() postgres.Source {
	sub, _ := fs.Sub(migrationFiles, "migrations")
	return postgres.Source{Namespace: "dicom", FS: sub}
}

// Errors of the AE registry.
var (
	ErrNotFound = errors.New("dicom: not found")
	ErrInvalid  = errors.New("dicom: invalid input")
	ErrExists   = errors.New("dicom: already exists")
)

// Permissions an AE can hold.
const (
	PermEcho  = "echo"
	PermStore = "store"
	PermFind  = "find"
	PermMove  = "move"
	PermGet   = "get"
)

var allPerms = []string{PermEcho, PermStore, PermFind, PermMove, PermGet}

// AE is a known remote application entity.
type AE struct {
	Title       string
	Host        string
	Port        int
	Permissions []string
	Description string
	// TenantID is the municipality the AE belongs to; 0 = the default
	// tenant (DefaultTenant).
	TenantID int64
	Created  time.Time
}

// Can reports whether the AE holds a permission.
func (a AE) Can(perm string) bool { return slices.Contains(a.Permissions, perm) }

// Addr is host:port.
func (a AE) Addr() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// ParsePermissions parses "store,find,move" (echo is always implied).
func ParsePermissions(s string) ([]string, error) {
	out := []string{PermEcho}
	for _, p := range strings.Split(s, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" || slices.Contains(out, p) {
			continue
		}
		if !slices.Contains(allPerms, p) {
			return nil, fmt.Errorf("%w: unknown permission %q (want %s)", ErrInvalid, p, strings.Join(allPerms, ","))
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// ValidTitle checks an AE title: 1–16 characters of the default character
// repertoire, no backslash or control characters, no surrounding spaces.
func ValidTitle(t string) error {
	if len(t) == 0 || len(t) > 16 || strings.TrimSpace(t) != t {
		return fmt.Errorf("%w: AE title must have 1 to 16 characters without surrounding spaces", ErrInvalid)
	}
	for _, r := range t {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return fmt.Errorf("%w: AE title may hold only printable ASCII without backslash", ErrInvalid)
		}
	}
	return nil
}

// Querier is a pool, connection or transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// AddAE registers an AE, or updates it when replace is true.
func AddAE(ctx context.Context, q Querier, a AE, replace bool) error {
	if err := ValidTitle(a.Title); err != nil {
		return err
	}
	if strings.TrimSpace(a.Host) == "" {
		return fmt.Errorf("%w: host is required", ErrInvalid)
	}
	if a.Port < 1 || a.Port > 65535 {
		return fmt.Errorf("%w: port must be 1 to 65535", ErrInvalid)
	}
	if a.Permissions == nil {
		a.Permissions = []string{PermEcho}
	}
	sql := `INSERT INTO dicom.ae (title, host, port, permissions, description, tenant_id) VALUES ($1, $2, $3, $4, $5, NULLIF($6, 0))`
	if replace {
		sql += ` ON CONFLICT (title) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port,
			permissions = EXCLUDED.permissions, description = EXCLUDED.description, tenant_id = EXCLUDED.tenant_id, updated = now()`
	}
	_, err := q.Exec(ctx, sql, a.Title, a.Host, a.Port, a.Permissions, a.Description, a.TenantID)
	if postgres.IsUniqueViolation(err) {
		return fmt.Errorf("%w: AE %s is registered already", ErrExists, a.Title)
	}
	if err != nil {
		return fmt.Errorf("dicom: add AE: %w", err)
	}
	return nil
}

// GetAE returns the AE with title, or ErrNotFound.
func GetAE(ctx context.Context, q Querier, title string) (AE, error) {
	var a AE
	err := q.QueryRow(ctx, `SELECT title, host, port, permissions, description, coalesce(tenant_id, 0), created FROM dicom.ae WHERE title = $1`, title).
		Scan(&a.Title, &a.Host, &a.Port, &a.Permissions, &a.Description, &a.TenantID, &a.Created)
	if errors.Is(err, pgx.ErrNoRows) {
		return AE{}, fmt.Errorf("%w: AE %s", ErrNotFound, title)
	}
	if err != nil {
		return AE{}, fmt.Errorf("dicom: get AE: %w", err)
	}
	return a, nil
}

// ListAEs lists every AE by title.
func ListAEs(ctx context.Context, q Querier) ([]AE, error) {
	rows, err := q.Query(ctx, `SELECT title, host, port, permissions, description, coalesce(tenant_id, 0), created FROM dicom.ae ORDER BY title`)
	if err != nil {
		return nil, fmt.Errorf("dicom: list AEs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AE, error) {
		var a AE
		err := r.Scan(&a.Title, &a.Host, &a.Port, &a.Permissions, &a.Description, &a.TenantID, &a.Created)
		return a, err
	})
}

// RemoveAE deletes an AE; ErrNotFound when there is none.
func RemoveAE(ctx context.Context, q Querier, title string) error {
	tag, err := q.Exec(ctx, `DELETE FROM dicom.ae WHERE title = $1`, title)
	if err != nil {
		return fmt.Errorf("dicom: remove AE: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: AE %s", ErrNotFound, title)
	}
	return nil
}

// ErrNoDefaultTenant: an AE without a tenant called, and the installation
// has several tenants (or none), so there is no default.
var ErrNoDefaultTenant = errors.New("dicom: no default tenant (several municipalities: give the AE a tenant)")

// DefaultTenant is the tenant of AEs without one (and of unknown AEs when
// they are accepted): the only tenant of the installation.
func DefaultTenant(ctx context.Context, q Querier) (int64, error) {
	rows, err := q.Query(ctx, `SELECT id FROM auth.tenant ORDER BY id LIMIT 2`)
	if err != nil {
		return 0, fmt.Errorf("dicom: default tenant: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("dicom: default tenant: %w", err)
	}
	if len(ids) != 1 {
		return 0, ErrNoDefaultTenant
	}
	return ids[0], nil
}

// TenantOf returns the tenant an AE's instances and queries belong to.
func TenantOf(ctx context.Context, q Querier, a AE) (int64, error) {
	if a.TenantID != 0 {
		return a.TenantID, nil
	}
	return DefaultTenant(ctx, q)
}
