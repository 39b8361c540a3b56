// Package index is Molar's DICOM index on PostgreSQL (schema "dicom"): the
// known application entities, and (with the ingest path) the patient, study,
// series and instance tables that C-FIND and QIDO-RS query.
package index

import (
	"context"
	"crypto/tls"
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
	// TLS: Molar's associations to this AE use DICOM TLS.
	TLS bool
	// RequireUser: the AE's associations must carry a user identity
	// (username and passcode, or a JWT) of an account that may use DICOM;
	// without one they are rejected.
	RequireUser bool
	// TenantID is the municipality the AE belongs to; 0 = the default
	// tenant (DefaultTenant).
	TenantID int64
	Created  time.Time
}

// Can reports whether the AE holds a permission.
func (a AE) Can(perm string) bool { return slices.Contains(a.Permissions, perm) }

// Addr is host:port.
func (a AE) Addr() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// DialTLS is the TLS configuration for associations to the AE: nil without
// TLS; else base (Molar's client certificate and trusted roots), or the
// system's roots when there is no base.
func (a AE) DialTLS(base *tls.Config) *tls.Config {
	switch {
	case !a.TLS:
		return nil
	case base != nil:
		return base
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

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

// The registry is installation-wide: AE titles are unique (the listener
// knows a caller by its title alone). The CLI (`molar ae`, the operator)
// manages all of it with AddAE, ListAEs and RemoveAE; a municipality's
// admin screen and its users see only that municipality's AEs, through the
// ...Of functions.

const aeColumns = `title, host, port, permissions, description, tls, require_user, coalesce(tenant_id, 0), created`

func scanAE(r pgx.Row) (AE, error) {
	var a AE
	err := r.Scan(&a.Title, &a.Host, &a.Port, &a.Permissions, &a.Description, &a.TLS, &a.RequireUser, &a.TenantID, &a.Created)
	return a, err
}

// inTenant is the SQL condition "the row belongs to tenant $1": its own
// tenant, or, without one, the default tenant (the only tenant of a
// single-municipality installation; none when there are several, so a
// tenantless AE is then no municipality's: TenantOf fails for it too).
const inTenant = `coalesce(tenant_id, (SELECT min(id) FROM auth.tenant HAVING count(*) = 1)) = $1`

func checkAE(a AE) (AE, error) {
	if err := ValidTitle(a.Title); err != nil {
		return a, err
	}
	if strings.TrimSpace(a.Host) == "" {
		return a, fmt.Errorf("%w: host is required", ErrInvalid)
	}
	if a.Port < 1 || a.Port > 65535 {
		return a, fmt.Errorf("%w: port must be 1 to 65535", ErrInvalid)
	}
	if a.Permissions == nil {
		a.Permissions = []string{PermEcho}
	}
	return a, nil
}

// AddAE registers an AE, or updates it when replace is true (whichever
// municipality holds it: the operator's call).
func AddAE(ctx context.Context, q Querier, a AE, replace bool) error {
	return addAE(ctx, q, a, replace, "")
}

// AddAEOf registers an AE for a.TenantID (which must be set), or updates it
// when replace is true and it is that municipality's. A title another
// municipality holds is ErrExists, replace or not: no municipality can take
// over or redirect another's devices.
func AddAEOf(ctx context.Context, q Querier, a AE, replace bool) error {
	if a.TenantID == 0 {
		return fmt.Errorf("%w: AE without a municipality", ErrInvalid)
	}
	return addAE(ctx, q, a, replace, ` WHERE `+strings.ReplaceAll(inTenant, "tenant_id", "ae.tenant_id"))
}

func addAE(ctx context.Context, q Querier, a AE, replace bool, onlyIf string) error {
	a, err := checkAE(a)
	if err != nil {
		return err
	}
	sql := `INSERT INTO dicom.ae (title, host, port, permissions, description, tls, require_user, tenant_id) VALUES ($2, $3, $4, $5, $6, $7, $8, NULLIF($1, 0))`
	if replace {
		sql += ` ON CONFLICT (title) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port,
			permissions = EXCLUDED.permissions, description = EXCLUDED.description, tls = EXCLUDED.tls,
			require_user = EXCLUDED.require_user, tenant_id = EXCLUDED.tenant_id, updated = now()` + onlyIf
	}
	tag, err := q.Exec(ctx, sql, a.TenantID, a.Title, a.Host, a.Port, a.Permissions, a.Description, a.TLS, a.RequireUser)
	if postgres.IsUniqueViolation(err) || (err == nil && tag.RowsAffected() == 0) {
		return fmt.Errorf("%w: AE %s is registered already", ErrExists, a.Title)
	}
	if err != nil {
		return fmt.Errorf("dicom: add AE: %w", err)
	}
	return nil
}

// GetAE returns the AE with title, or ErrNotFound.
func GetAE(ctx context.Context, q Querier, title string) (AE, error) {
	return getAE(ctx, q, `SELECT `+aeColumns+` FROM dicom.ae WHERE title = $1`, title)
}

// GetAEOf returns the AE with title if it is tenant's, else ErrNotFound
// (another municipality's AE is not there for this one).
func GetAEOf(ctx context.Context, q Querier, tenant int64, title string) (AE, error) {
	return getAE(ctx, q, `SELECT `+aeColumns+` FROM dicom.ae WHERE `+inTenant+` AND title = $2`, tenant, title)
}

func getAE(ctx context.Context, q Querier, sql string, args ...any) (AE, error) {
	a, err := scanAE(q.QueryRow(ctx, sql, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return AE{}, fmt.Errorf("%w: AE %s", ErrNotFound, args[len(args)-1])
	}
	if err != nil {
		return AE{}, fmt.Errorf("dicom: get AE: %w", err)
	}
	return a, nil
}

// ListAEs lists every AE by title.
func ListAEs(ctx context.Context, q Querier) ([]AE, error) {
	return listAEs(ctx, q, `SELECT `+aeColumns+` FROM dicom.ae ORDER BY title`)
}

// ListAEsOf lists one municipality's AEs by title: what its admins see and
// manage and where its users may send images.
func ListAEsOf(ctx context.Context, q Querier, tenant int64) ([]AE, error) {
	return listAEs(ctx, q, `SELECT `+aeColumns+` FROM dicom.ae WHERE `+inTenant+` ORDER BY title`, tenant)
}

func listAEs(ctx context.Context, q Querier, sql string, args ...any) ([]AE, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("dicom: list AEs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AE, error) { return scanAE(r) })
}

// RemoveAE deletes an AE; ErrNotFound when there is none.
func RemoveAE(ctx context.Context, q Querier, title string) error {
	return removeAE(ctx, q, `DELETE FROM dicom.ae WHERE title = $1`, title)
}

// RemoveAEOf deletes one municipality's AE; ErrNotFound when it has none of
// that title.
func RemoveAEOf(ctx context.Context, q Querier, tenant int64, title string) error {
	return removeAE(ctx, q, `DELETE FROM dicom.ae WHERE `+inTenant+` AND title = $2`, tenant, title)
}

func removeAE(ctx context.Context, q Querier, sql string, args ...any) error {
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("dicom: remove AE: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: AE %s", ErrNotFound, args[len(args)-1])
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
