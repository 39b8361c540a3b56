package auth

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/storage/postgres"
)

// This file adapts to package auth/audit, written in parallel. Until it
// lands, the adapter records nothing; switch the bodies to audit.WithActor
// and audit.Record when it does.

// Audit actions this package records.
const (
	actionLogin       = "login"
	actionLoginFailed = "login_failed"
	actionLogout      = "logout"
	actionBreakGlass  = "break_glass"
	actionLock        = "lock"
	actionUnlock      = "unlock"
)

// auditActor is the shape of audit.Actor.
type auditActor struct {
	UserID     int64
	Username   string
	Role       string
	TenantID   int64
	RequestID  string
	SourceAddr string
}

// auditEvent is the shape of audit.Event.
type auditEvent struct {
	Action           string
	PersonID         int64
	Object           string
	BreakGlassReason string
	Detail           map[string]any
}

func withAuditActor(ctx context.Context, a auditActor) context.Context {
	return context.WithValue(ctx, auditActorKey{}, a)
}

type auditActorKey struct{}

func recordAudit(ctx context.Context, tx pgx.Tx, ev auditEvent) error {
	_, _ = ctx.Value(auditActorKey{}).(auditActor)
	_ = tx
	_ = ev
	return nil
}

// audit records an event in its own transaction of the tenant (for events
// that change nothing else, such as logout).
func (s *Service) audit(ctx context.Context, tenantID int64, ev auditEvent) {
	err := postgres.InTenant(ctx, s.pool, tenantID, func(tx pgx.Tx) error { return recordAudit(ctx, tx, ev) })
	if err != nil {
		s.log.ErrorContext(ctx, "recording audit event failed", "action", ev.Action, "err", err)
	}
}
