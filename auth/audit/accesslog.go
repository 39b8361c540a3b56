package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Entry is one line of a person's access log.
type Entry struct {
	EventID  int64
	At       time.Time
	Username string
	Role     string
	Action   Action
	Object   string
	// BreakGlass marks access outside the actor's care relation; Reason is
	// what the actor gave (show it to staff; the portal may show the flag only).
	BreakGlass       bool
	BreakGlassReason string
}

// ErrNoTenant is returned by AccessLog outside a tenant transaction.
var ErrNoTenant = errors.New("audit: the transaction is not scoped to a tenant (use postgres.InTenant)")

// DefaultAccessLogLimit applies when AccessLog gets limit <= 0; MaxAccessLogLimit caps it.
const (
	DefaultAccessLogLimit = 100
	MaxAccessLogLimit     = 10000
)

// AccessLog answers "who accessed person X": the newest limit rows about the
// person in the transaction's tenant (row-level security), newest first.
// Showing the log is itself a use of the person's data: the caller records
// it (ActionRead, Object "audit.access_log/<person>").
func AccessLog(ctx context.Context, tx pgx.Tx, personID int64, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = DefaultAccessLogLimit
	}
	limit = min(limit, MaxAccessLogLimit)
	var tenant *int64
	if err := tx.QueryRow(ctx, "SELECT NULLIF(current_setting('molar.tenant', true), '')::bigint").Scan(&tenant); err != nil {
		return nil, fmt.Errorf("audit: access log: %w", err)
	}
	if tenant == nil {
		return nil, ErrNoTenant
	}
	rows, err := tx.Query(ctx, `
		SELECT id, at, username, role, action, object, coalesce(break_glass_reason, '')
		  FROM audit.event
		 WHERE tenant_id = $1 AND person_id = $2
		 ORDER BY at DESC, id DESC
		 LIMIT $3`, *tenant, personID, limit)
	if err != nil {
		return nil, fmt.Errorf("audit: access log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.EventID, &e.At, &e.Username, &e.Role, &e.Action, &e.Object, &e.BreakGlassReason)
		e.BreakGlass = e.BreakGlassReason != ""
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: access log: %w", err)
	}
	return out, nil
}
