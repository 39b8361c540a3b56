package auth

import (
	"slices"
	"sort"
	"sync"
)

// Roles, one per profession (issue 2). A user has exactly one role.
const (
	RoleDentist         = "dentist"
	RoleDentalAssistant = "dental_assistant"
	RoleClinicAdmin     = "clinic_admin"
	RoleHomeCarer       = "home_carer"
	RoleNurse           = "nurse"
	RoleTherapist       = "therapist"
	RoleHealthVisitor   = "health_visitor"
	RoleCaseWorker      = "case_worker"
	RoleManager         = "manager"
	RoleSystemAdmin     = "system_admin"
	RoleCitizen         = "citizen"
)

// Core permissions. Modules declare their own ("<module>.<verb>") with
// RegisterPermissions when cmd/molar wires them.
const (
	PermDICOMRead    = "dicom.read"
	PermDICOMWrite   = "dicom.write"
	PermJournalRead  = "journal.read"
	PermJournalWrite = "journal.write"
	PermJournalSign  = "journal.sign"
	// PermJournalReport exports the clinic's register report (SCOR): every
	// 5-, 7-, 12- and 15-year-old's CPR number and findings in one file.
	// Dentists only; an assistant reads the patients she is working with.
	PermJournalReport = "journal.report"
	PermAdminUsers    = "admin.users"
	PermAdminAE       = "admin.ae"
	PermAdminSystem   = "admin.system"
	PermAuditRead     = "audit.read"
	PermPortalUse     = "portal.use"
	PermPersonRead    = "person.read"
	PermPersonWrite   = "person.write"
	// PermBreakGlass lets a user state a reason and reach a person outside
	// their units' care (flagged in the audit log). Citizens never have it.
	PermBreakGlass = "access.break_glass"
)

var (
	permMu sync.RWMutex
	perms  = map[string]map[string]bool{}
)

func init() {
	clinical := []string{PermPersonRead, PermBreakGlass}
	RegisterPermissions(RoleDentist, slices.Concat(clinical, []string{PermDICOMRead, PermDICOMWrite, PermJournalRead, PermJournalWrite, PermJournalSign, PermJournalReport})...)
	RegisterPermissions(RoleDentalAssistant, slices.Concat(clinical, []string{PermDICOMRead, PermDICOMWrite, PermJournalRead, PermJournalWrite})...)
	RegisterPermissions(RoleClinicAdmin, PermPersonRead, PermPersonWrite, PermAdminUsers, PermAdminAE, PermAuditRead)
	RegisterPermissions(RoleHomeCarer, clinical...)
	RegisterPermissions(RoleNurse, clinical...)
	RegisterPermissions(RoleTherapist, clinical...)
	RegisterPermissions(RoleHealthVisitor, clinical...)
	RegisterPermissions(RoleCaseWorker, clinical...)
	RegisterPermissions(RoleManager, PermAuditRead)
	RegisterPermissions(RoleSystemAdmin, PermAdminUsers, PermAdminAE, PermAdminSystem, PermAuditRead)
	RegisterPermissions(RoleCitizen, PermPortalUse)
}

// RegisterPermissions grants perms to role. Modules call it at wiring time
// to declare theirs (e.g. RegisterPermissions(RoleDentist, "booking.write")).
// Registering a role not in Roles() adds it.
func RegisterPermissions(role string, perms ...string) {
	permMu.Lock()
	defer permMu.Unlock()
	set := permsFor(role)
	for _, p := range perms {
		set[p] = true
	}
}

func permsFor(role string) map[string]bool {
	set, ok := perms[role]
	if !ok {
		set = map[string]bool{}
		perms[role] = set
	}
	return set
}

// RoleHas reports whether role has perm.
func RoleHas(role, perm string) bool {
	permMu.RLock()
	defer permMu.RUnlock()
	return perms[role][perm]
}

// RolePermissions lists role's permissions, sorted.
func RolePermissions(role string) []string {
	permMu.RLock()
	defer permMu.RUnlock()
	out := make([]string, 0, len(perms[role]))
	for p := range perms[role] {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Roles lists every known role, sorted.
func Roles() []string {
	permMu.RLock()
	defer permMu.RUnlock()
	out := make([]string, 0, len(perms))
	for r := range perms {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// ValidRole reports whether role is known.
func ValidRole(role string) bool {
	permMu.RLock()
	defer permMu.RUnlock()
	_, ok := perms[role]
	return ok
}

// Authentication methods of a Principal.
const (
	MethodSession = "session"
	MethodBasic   = "basic"
	MethodBearer  = "bearer"
)

// Principal is the authenticated user of a request.
type Principal struct {
	UserID      int64
	TenantID    int64
	Username    string
	DisplayName string
	Role        string
	// PersonID is the user's own person in the register (citizens); 0 if none.
	PersonID int64
	// Method is how the request authenticated (MethodSession, MethodBasic, MethodBearer).
	Method string
	// CSRFToken is the session's token that forms and scripts send back
	// (form field csrf_token or header X-CSRF-Token); empty without a session.
	CSRFToken string

	sessionHash []byte
}

// Can reports whether the principal's role has perm.
func (p *Principal) Can(perm string) bool {
	if p == nil {
		return false
	}
	return RoleHas(p.Role, perm)
}

// IsCitizen reports whether the principal is a citizen (portal user).
func (p *Principal) IsCitizen() bool { return p != nil && p.Role == RoleCitizen }

// Permissions lists the principal's permissions.
func (p *Principal) Permissions() []string {
	if p == nil {
		return nil
	}
	return RolePermissions(p.Role)
}

// HasAny reports whether the principal has at least one of perms.
func (p *Principal) HasAny(perms ...string) bool {
	return slices.ContainsFunc(perms, p.Can)
}
