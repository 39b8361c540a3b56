package audit

import "context"

// Actor is who performs a request. The auth middleware sets it once per
// request (WithActor); Record copies it into every audit row.
//
// For a failed login, UserID is 0 and Username the name that was tried. Work
// done by the system itself (jobs, imports) uses a descriptive Username such
// as "system:import" and Role "system".
type Actor struct {
	UserID   int64 // 0 when unknown (stored as NULL)
	Username string
	Role     string
	// TenantID is the municipality; the row is written to this tenant, and
	// the transaction passed to Record must be scoped to it. Use 0 for events
	// outside any municipality (a failed login of an unknown user), written
	// in postgres.InTenant(ctx, pool, 0, …).
	TenantID int64
	// RequestID ties the row to the request log.
	RequestID string
	// SourceAddr is the client address, "IP" or "IP:port" (r.RemoteAddr, or
	// the address a trusted proxy reported).
	SourceAddr string
}

type actorKey struct{}

// WithActor returns a context carrying a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor set by WithActor.
func ActorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}
