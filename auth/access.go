package auth

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bases of an access decision.
const (
	BasisCare       = "care"        // a unit of the user cares for the person
	BasisCustody    = "custody"     // a citizen's child in their custody, under 15
	BasisSelf       = "self"        // a citizen's own record
	BasisBreakGlass = "break_glass" // a stated reason, flagged in the audit log
)

// CustodyAgeLimit is the age from which a child has own access to the
// record and custody holders no longer see it (Health Act §17).
const CustodyAgeLimit = 15

// DefaultBreakGlassDuration is how long a break-the-glass grant lasts.
const DefaultBreakGlassDuration = 4 * time.Hour

// MinBreakGlassReason is the shortest reason accepted (trimmed, in characters).
const MinBreakGlassReason = 5

// Decision is the answer of Access.
type Decision struct {
	Allowed bool
	// Basis says why access is allowed: BasisCare, BasisCustody, BasisSelf or
	// BasisBreakGlass; empty when refused.
	Basis string
	// Reason is the break-the-glass reason when Basis is BasisBreakGlass;
	// pass it as the audit event's BreakGlassReason so every read under the
	// grant is flagged.
	Reason string
}

// Access decides whether the principal may reach the person's health data.
// Run it in a transaction of the principal's tenant (postgres.InTenant): a
// person of another tenant is not found (ErrNotFound).
//
//   - Staff reach persons whom one of their units cares for today.
//   - Citizens reach themselves, and children in their custody who are under
//     15 (from 15 the child has own access, Health Act §17).
//   - Anyone else needs a break-the-glass grant of this session (BreakGlass).
//
// Access does not record an audit event: the caller records the read or
// write it does, with Decision.Reason as BreakGlassReason.
func Access(ctx context.Context, tx pgx.Tx, p *Principal, personID int64) (Decision, error) {
	return accessAt(ctx, tx, p, personID, time.Now())
}

// RequireAccess is Access returning ErrForbidden when access is refused.
func RequireAccess(ctx context.Context, tx pgx.Tx, p *Principal, personID int64) (Decision, error) {
	d, err := Access(ctx, tx, p, personID)
	if err == nil && !d.Allowed {
		err = fmt.Errorf("auth: access to person %d: %w", personID, ErrForbidden)
	}
	return d, err
}

func accessAt(ctx context.Context, tx pgx.Tx, p *Principal, personID int64, now time.Time) (Decision, error) {
	if p == nil || p.UserID == 0 {
		return Decision{}, fmt.Errorf("auth: access: %w", ErrUnauthenticated)
	}
	today := DateIn(now, Copenhagen)
	var birth *time.Time
	var tenantID int64
	err := tx.QueryRow(ctx, `SELECT tenant_id, birth_date FROM auth.person WHERE id = $1`, personID).Scan(&tenantID, &birth)
	if err != nil {
		return Decision{}, dbErr("access", err)
	}
	if tenantID != p.TenantID {
		// Only reachable when the transaction is not scoped to the principal's tenant.
		return Decision{}, fmt.Errorf("auth: access: %w", ErrNotFound)
	}
	if p.Role == RoleCitizen {
		if p.PersonID != 0 && p.PersonID == personID {
			return Decision{Allowed: true, Basis: BasisSelf}, nil
		}
		if p.PersonID == 0 || birth == nil || AgeAt(*birth, today) >= CustodyAgeLimit {
			return Decision{}, nil
		}
		var custody bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM auth.custody WHERE holder_person_id = $1 AND child_person_id = $2)`,
			p.PersonID, personID).Scan(&custody)
		if err != nil {
			return Decision{}, dbErr("access", err)
		}
		if custody {
			return Decision{Allowed: true, Basis: BasisCustody}, nil
		}
		return Decision{}, nil
	}
	var care bool
	err = tx.QueryRow(ctx, `SELECT EXISTS (
			SELECT 1 FROM auth.user_unit uu JOIN auth.care_relation cr ON cr.org_unit_id = uu.org_unit_id
			WHERE uu.user_id = $1 AND cr.person_id = $2
			  AND cr.valid_from <= $3 AND (cr.valid_to IS NULL OR cr.valid_to >= $3))`,
		p.UserID, personID, today).Scan(&care)
	if err != nil {
		return Decision{}, dbErr("access", err)
	}
	if care {
		return Decision{Allowed: true, Basis: BasisCare}, nil
	}
	var reason string
	err = tx.QueryRow(ctx, `SELECT reason FROM auth.break_glass
		WHERE user_id = $1 AND person_id = $2 AND expires > $3
		  AND (session_hash = $4 OR (session_hash IS NULL AND $4::bytea IS NULL))
		ORDER BY created DESC LIMIT 1`, p.UserID, personID, now, nilIfEmpty(p.sessionHash)).Scan(&reason)
	if err == nil {
		return Decision{Allowed: true, Basis: BasisBreakGlass, Reason: reason}, nil
	}
	if err != pgx.ErrNoRows {
		return Decision{}, dbErr("access", err)
	}
	return Decision{}, nil
}

// BreakGlass grants the principal's session access to a person outside its
// units' care, for DefaultBreakGlassDuration, with a stated reason. The
// grant is recorded in the audit log flagged with the reason, in tx (a
// transaction of the principal's tenant). Citizens cannot break the glass
// (ErrForbidden); an empty or too short reason is ErrInvalidInput.
func BreakGlass(ctx context.Context, tx pgx.Tx, p *Principal, personID int64, reason string) (Decision, error) {
	return breakGlassAt(ctx, tx, p, personID, reason, time.Now(), DefaultBreakGlassDuration)
}

func breakGlassAt(ctx context.Context, tx pgx.Tx, p *Principal, personID int64, reason string, now time.Time, d time.Duration) (Decision, error) {
	if p == nil || p.UserID == 0 {
		return Decision{}, fmt.Errorf("auth: break the glass: %w", ErrUnauthenticated)
	}
	if !p.Can(PermBreakGlass) {
		return Decision{}, fmt.Errorf("auth: break the glass: %w", ErrForbidden)
	}
	reason = strings.TrimSpace(reason)
	if len([]rune(reason)) < MinBreakGlassReason {
		return Decision{}, fmt.Errorf("auth: break the glass: %w: state a reason of at least %d characters", ErrInvalidInput, MinBreakGlassReason)
	}
	if len(reason) > 2000 {
		return Decision{}, fmt.Errorf("auth: break the glass: %w: reason too long", ErrInvalidInput)
	}
	if _, err := GetPerson(ctx, tx, personID); err != nil {
		return Decision{}, err
	}
	_, err := tx.Exec(ctx, `INSERT INTO auth.break_glass (tenant_id, user_id, session_hash, person_id, reason, created, expires)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, p.TenantID, p.UserID, nilIfEmpty(p.sessionHash), personID, reason, now, now.Add(d))
	if err != nil {
		return Decision{}, dbErr("break the glass", err)
	}
	ev := auditEvent{Action: actionBreakGlass, PersonID: personID, Object: fmt.Sprintf("auth.person/%d", personID), BreakGlassReason: reason}
	if err := recordAudit(ensureActor(ctx, p), tx, ev); err != nil {
		return Decision{}, fmt.Errorf("auth: break the glass: %w", err)
	}
	return Decision{Allowed: true, Basis: BasisBreakGlass, Reason: reason}, nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
