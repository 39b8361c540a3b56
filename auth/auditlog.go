package auth

import (
	"context"
	"net/netip"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// Audit actions this package records (see package audit).
const (
	actionLogin       = audit.ActionLogin
	actionLoginFailed = audit.ActionLoginFailed
	actionLogout      = audit.ActionLogout
	actionBreakGlass  = audit.ActionBreakGlass
	// Locking and unlocking an account are updates of the account.
	actionLock   = audit.ActionUpdate
	actionUnlock = audit.ActionUpdate
)

type auditActor = audit.Actor

type auditEvent = audit.Event

func withAuditActor(ctx context.Context, a auditActor) context.Context {
	return audit.WithActor(ctx, a)
}

// recordAudit writes ev in tx (a transaction of the actor's tenant).
func recordAudit(ctx context.Context, tx pgx.Tx, ev auditEvent) error {
	return audit.Record(ctx, tx, ev)
}

// ensureActor gives ctx an audit actor for p when it has none (calls from
// outside the HTTP middleware, e.g. jobs and tests).
func ensureActor(ctx context.Context, p *Principal) context.Context {
	if _, ok := audit.ActorFrom(ctx); ok || p == nil {
		return ctx
	}
	return audit.WithActor(ctx, audit.Actor{UserID: p.UserID, Username: p.Username, Role: p.Role, TenantID: p.TenantID,
		RequestID: requestIDFrom(ctx)})
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// audit records an event in its own transaction of the tenant (for events
// that change nothing else, such as logout).
func (s *Service) audit(ctx context.Context, tenantID int64, ev auditEvent) {
	err := postgres.InTenant(ctx, s.pool, tenantID, func(tx pgx.Tx) error { return recordAudit(ctx, tx, ev) })
	if err != nil {
		s.log.ErrorContext(ctx, "recording audit event failed", "action", string(ev.Action), "err", err)
	}
}
