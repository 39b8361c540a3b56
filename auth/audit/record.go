package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/storage/postgres"
)

// Action is the type of use that is logged.
type Action string

// The logged actions.
const (
	ActionRead        Action = "read"
	ActionCreate      Action = "create"
	ActionUpdate      Action = "update"
	ActionDelete      Action = "delete" // e.g. a journal entry superseded; data itself is kept
	ActionExport      Action = "export"
	ActionLogin       Action = "login"
	ActionLoginFailed Action = "login_failed"
	ActionLogout      Action = "logout"
	ActionBreakGlass  Action = "break_glass" // access outside the actor's care relation, with a reason
	ActionPrint       Action = "print"
	ActionSearch      Action = "search"
)

var knownActions = map[Action]bool{
	ActionRead: true, ActionCreate: true, ActionUpdate: true, ActionDelete: true,
	ActionExport: true, ActionLogin: true, ActionLoginFailed: true, ActionLogout: true,
	ActionBreakGlass: true, ActionPrint: true, ActionSearch: true,
}

// Valid reports whether a is one of the defined actions.
func (a Action) Valid() bool { return knownActions[a] }

// Event is one audited use. The actor (user, role, tenant, request, address)
// comes from the context.
type Event struct {
	Action Action
	// PersonID is the person whose data was used (0: none, e.g. a login).
	PersonID int64
	// Object identifies what was used, as "type/id", e.g. "journal.entry/123",
	// "dicom.study/1.2.840.1234.5". Never a name or a CPR number: the id
	// part must contain a digit.
	Object string
	// BreakGlassReason is the reason the actor gave for reaching a person
	// outside their care relation. Non-empty marks the row as break-the-glass
	// in the access log. Required for ActionBreakGlass.
	BreakGlassReason string
	// Detail holds further identifiers (counts, ids, filters by kind). Keys
	// are lower_snake_case; no names, no CPR numbers.
	Detail map[string]any
}

// Errors returned by Record (wrapped).
var (
	ErrNoActor      = errors.New("audit: no actor in context")
	ErrInvalidEvent = errors.New("audit: invalid event")
	// ErrPersonalData is returned when a log field looks like it holds a
	// CPR number (or, for Object, is not an identifier).
	ErrPersonalData = errors.New("audit: personal data in a log field")
	// ErrWrongTenant is returned when the transaction is not scoped to the
	// actor's tenant (postgres.InTenant with Actor.TenantID).
	ErrWrongTenant = errors.New("audit: transaction is not scoped to the actor's tenant")
)

// Limits on field sizes.
const (
	maxObject    = 256
	maxReason    = 1000
	maxDetail    = 8 << 10
	maxShortText = 200 // username, role, request id
)

var (
	objectRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(/[A-Za-z0-9._:-]+)*$`)
	detailKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

const insertEvent = `INSERT INTO audit.event
	(tenant_id, user_id, username, role, action, person_id, object, request_id, source_addr, break_glass_reason, detail)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10, $11::jsonb)`

// Record writes ev as one audit row inside tx, so that it commits or rolls
// back with the caller's work. tx must be scoped to the actor's tenant
// (postgres.InTenant). Record never waits on other writers or the sealer.
func Record(ctx context.Context, tx pgx.Tx, ev Event) error {
	a, ok := ActorFrom(ctx)
	if !ok {
		return ErrNoActor
	}
	if err := validate(a, ev); err != nil {
		return err
	}
	addr, err := normalizeAddr(a.SourceAddr)
	if err != nil {
		return err
	}
	var detail []byte
	if len(ev.Detail) > 0 {
		if detail, err = json.Marshal(ev.Detail); err != nil {
			return fmt.Errorf("%w: detail: %v", ErrInvalidEvent, err)
		}
		if len(detail) > maxDetail {
			return fmt.Errorf("%w: detail is %d bytes, at most %d", ErrInvalidEvent, len(detail), maxDetail)
		}
	}
	_, err = tx.Exec(ctx, insertEvent,
		a.TenantID, nullInt(a.UserID), a.Username, a.Role, string(ev.Action), nullInt(ev.PersonID),
		ev.Object, a.RequestID, addr, nullText(ev.BreakGlassReason), detail)
	if postgres.IsInsufficientPrivilege(err) && strings.Contains(err.Error(), "row-level security") {
		return fmt.Errorf("%w (tenant %d): %w", ErrWrongTenant, a.TenantID, err)
	}
	if err != nil {
		return fmt.Errorf("audit: record %s: %w", ev.Action, err)
	}
	return nil
}

func validate(a Actor, ev Event) error {
	if !ev.Action.Valid() {
		return fmt.Errorf("%w: unknown action %q", ErrInvalidEvent, ev.Action)
	}
	if ev.PersonID < 0 || a.UserID < 0 || a.TenantID < 0 {
		return fmt.Errorf("%w: negative id", ErrInvalidEvent)
	}
	if ev.Action == ActionBreakGlass && strings.TrimSpace(ev.BreakGlassReason) == "" {
		return fmt.Errorf("%w: break_glass needs a reason", ErrInvalidEvent)
	}
	for _, f := range []struct{ name, v string }{
		{"username", a.Username}, {"role", a.Role}, {"request id", a.RequestID},
	} {
		if len(f.v) > maxShortText || !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: %s too long or not UTF-8", ErrInvalidEvent, f.name)
		}
	}
	if looksLikeCPR(a.Role) || looksLikeCPR(a.RequestID) {
		return fmt.Errorf("%w: role or request id", ErrPersonalData)
	}
	if len(ev.Object) > maxObject {
		return fmt.Errorf("%w: object longer than %d bytes", ErrInvalidEvent, maxObject)
	}
	if ev.Object != "" && !validObject(ev.Object) {
		return fmt.Errorf("%w: object must be an identifier like \"journal.entry/123\"", ErrPersonalData)
	}
	if looksLikeCPR(ev.Object) {
		return fmt.Errorf("%w: object", ErrPersonalData)
	}
	if len(ev.BreakGlassReason) > maxReason || !utf8.ValidString(ev.BreakGlassReason) {
		return fmt.Errorf("%w: break-the-glass reason too long or not UTF-8", ErrInvalidEvent)
	}
	if looksLikeCPR(ev.BreakGlassReason) {
		return fmt.Errorf("%w: break-the-glass reason", ErrPersonalData)
	}
	for k, v := range ev.Detail {
		if !detailKeyRE.MatchString(k) {
			return fmt.Errorf("%w: detail key %q is not lower_snake_case", ErrInvalidEvent, k)
		}
		if detailHasCPR(v) {
			return fmt.Errorf("%w: detail %q", ErrPersonalData, k)
		}
	}
	return nil
}

// validObject accepts "type" or "type/id[/id…]" where the type is dotted
// lower_snake_case and every id part contains a digit (so a bare name such
// as "journal.entry/Jensen" is refused).
func validObject(s string) bool {
	if !objectRE.MatchString(s) {
		return false
	}
	parts := strings.Split(s, "/")
	for _, p := range parts[1:] {
		if !strings.ContainsAny(p, "0123456789") {
			return false
		}
	}
	return true
}

func detailHasCPR(v any) bool {
	switch v := v.(type) {
	case string:
		return looksLikeCPR(v)
	case json.Number:
		return looksLikeCPR(v.String())
	case int:
		return looksLikeCPR(fmt.Sprint(v))
	case int64:
		return looksLikeCPR(fmt.Sprint(v))
	case uint64:
		return looksLikeCPR(fmt.Sprint(v))
	case float64:
		return looksLikeCPR(fmt.Sprintf("%.0f", v))
	case []any:
		for _, e := range v {
			if detailHasCPR(e) {
				return true
			}
		}
	case []string:
		for _, e := range v {
			if looksLikeCPR(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if looksLikeCPR(k) || detailHasCPR(e) {
				return true
			}
		}
	case nil, bool:
	default:
		// Any other type (map[string]string, []int64, structs, pointers …)
		// is checked as what it is stored as: its JSON text.
		b, err := json.Marshal(v)
		return err == nil && looksLikeCPR(string(b))
	}
	return false
}

// looksLikeCPR reports whether s contains something shaped like a CPR number:
// ten digits not part of a longer digit run, or six digits, a hyphen or
// space and four digits, where the first six form a day (01–31) and month
// (01–12). It errs on the side of refusing.
func looksLikeCPR(s string) bool {
	isDigit := func(i int) bool { return i >= 0 && i < len(s) && s[i] >= '0' && s[i] <= '9' }
	for i := 0; i < len(s); i++ {
		if !isDigit(i) || isDigit(i-1) {
			continue
		}
		j := i
		for isDigit(j) {
			j++
		}
		run := j - i
		switch {
		case run == 10:
			if plausibleDate(s[i : i+6]) {
				return true
			}
		case run == 6 && j+5 <= len(s) && (s[j] == '-' || s[j] == ' ') &&
			isDigit(j+1) && isDigit(j+2) && isDigit(j+3) && isDigit(j+4) && !isDigit(j+5):
			if plausibleDate(s[i:j]) {
				return true
			}
		}
		i = j
	}
	return false
}

func plausibleDate(ddmmyy string) bool {
	d := int(ddmmyy[0]-'0')*10 + int(ddmmyy[1]-'0')
	m := int(ddmmyy[2]-'0')*10 + int(ddmmyy[3]-'0')
	return d >= 1 && d <= 31 && m >= 1 && m <= 12
}

// normalizeAddr turns "IP", "IP:port" or "[IP]:port" into an IP string
// (zone dropped) or nil for an empty address.
func normalizeAddr(s string) (any, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(s); err == nil {
		ip = ap.Addr()
	} else if ip, err = netip.ParseAddr(strings.Trim(s, "[]")); err != nil {
		return nil, fmt.Errorf("%w: source address is not an IP address", ErrInvalidEvent)
	}
	return ip.WithZone("").Unmap().String(), nil
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}
