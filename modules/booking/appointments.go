package booking

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// Appointment is one booked (or proposed, or cancelled) appointment.
type Appointment struct {
	ID           int64
	UnitID       int64
	PersonID     int64
	TypeID       int64
	Start, End   time.Time
	Status       string // StatusProposed, StatusBooked, StatusCancelled
	BookedVia    string // ViaStaff, ViaSelf, ViaInvitation
	CancelReason string
	InvitationID int64
	// Imaging appointments: the worklist's accession number and the study
	// the images will land in.
	AccessionNumber string
	StudyUID        string
	Version         int
	// From the type.
	TypeName, TypeNameEN, PublicName string
	Video, Imaging, SelfService      bool
	// ResourceIDs are the resources held (none once cancelled).
	ResourceIDs []int64
	// Filled in for display: unit and resource names.
	UnitName      string
	ResourceNames []string
}

// Local returns the start in Europe/Copenhagen.
func (a Appointment) Local() time.Time { return a.Start.In(Loc) }

// Active reports whether the appointment still holds its time.
func (a Appointment) Active() bool { return a.Status != StatusCancelled }

// FamilyChanges reports whether the family (not only the clinic) moves and
// cancels the appointment: a type they may book themselves, or the time of
// a call-in. The self-service rules (notice, cancelling allowed) still apply.
func (a Appointment) FamilyChanges() bool { return a.SelfService || a.BookedVia == ViaInvitation }

// Place is the unit and the rooms (not staff names): what feeds and
// messages say about where.
func (a Appointment) Place(res map[int64]Resource) string {
	parts := []string{a.UnitName}
	for _, id := range a.ResourceIDs {
		if r, ok := res[id]; ok && r.Kind != KindStaff {
			parts = append(parts, r.Name)
		}
	}
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), ", ")
}

const apptColumns = `a.id, a.unit_id, a.person_id, a.type_id, lower(a.during), upper(a.during), a.status, a.booked_via, a.cancel_reason,
	COALESCE(a.invitation_id, 0), a.accession_number, a.study_uid, a.version,
	t.name, t.name_en, t.public_name, t.video, t.imaging, t.self_service,
	ARRAY(SELECT ar.resource_id FROM booking.appointment_resource ar WHERE ar.appointment_id = a.id AND ar.active ORDER BY ar.resource_id)`

const apptFrom = ` FROM booking.appointment a JOIN booking.appointment_type t ON t.id = a.type_id `

func scanAppt(r pgx.Row) (Appointment, error) {
	var a Appointment
	err := r.Scan(&a.ID, &a.UnitID, &a.PersonID, &a.TypeID, &a.Start, &a.End, &a.Status, &a.BookedVia, &a.CancelReason,
		&a.InvitationID, &a.AccessionNumber, &a.StudyUID, &a.Version,
		&a.TypeName, &a.TypeNameEN, &a.PublicName, &a.Video, &a.Imaging, &a.SelfService, &a.ResourceIDs)
	return a, err
}

func queryAppts(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]Appointment, error) {
	rows, err := tx.Query(ctx, `SELECT `+apptColumns+apptFrom+where, args...)
	if err != nil {
		return nil, fmt.Errorf("booking: appointments: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Appointment, error) { return scanAppt(r) })
	if err != nil {
		return nil, fmt.Errorf("booking: appointments: %w", err)
	}
	return out, nil
}

// lockAppt reads an appointment for update.
func lockAppt(ctx context.Context, tx pgx.Tx, id int64) (Appointment, error) {
	a, err := scanAppt(tx.QueryRow(ctx, `SELECT `+apptColumns+apptFrom+` WHERE a.id = $1 FOR UPDATE OF a`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Appointment{}, fmt.Errorf("booking: appointment %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Appointment{}, fmt.Errorf("booking: appointment %d: %w", id, err)
	}
	return a, nil
}

// decorate fills in unit and resource names.
func (m *Module) decorate(ctx context.Context, tx pgx.Tx, tenantID int64, as []Appointment) (map[int64]Resource, error) {
	units, err := m.units(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	rs, err := resources(ctx, tx, 0)
	if err != nil {
		return nil, fmt.Errorf("booking: resources: %w", err)
	}
	byID := map[int64]Resource{}
	for _, r := range rs {
		byID[r.ID] = r
	}
	for i := range as {
		as[i].UnitName = units[as[i].UnitID].Name
		as[i].ResourceNames = nil
		for _, id := range as[i].ResourceIDs {
			as[i].ResourceNames = append(as[i].ResourceNames, byID[id].Name)
		}
	}
	return byID, nil
}

// authorize checks that p may act for personID: staff holding perm with a
// care relation to the person (or a break-the-glass grant); citizens for
// themselves and for children in their custody under 15 (auth.Access,
// Health Act §17). A person p cannot reach is ErrForbidden.
func authorize(ctx context.Context, tx pgx.Tx, p *auth.Principal, personID int64, perm string) (auth.Decision, error) {
	if p == nil || p.UserID == 0 {
		return auth.Decision{}, fmt.Errorf("booking: %w", ErrForbidden)
	}
	if p.IsCitizen() {
		if !p.Can(auth.PermPortalUse) {
			return auth.Decision{}, fmt.Errorf("booking: %w", ErrForbidden)
		}
	} else if !p.Can(perm) {
		return auth.Decision{}, fmt.Errorf("booking: %w", ErrForbidden)
	}
	d, err := auth.Access(ctx, tx, p, personID)
	if errors.Is(err, auth.ErrNotFound) {
		return auth.Decision{}, fmt.Errorf("booking: person %d: %w", personID, ErrNotFound)
	}
	if err != nil {
		return auth.Decision{}, fmt.Errorf("booking: access: %w", err)
	}
	if !d.Allowed || (p.IsCitizen() && d.Basis != auth.BasisSelf && d.Basis != auth.BasisCustody) {
		return auth.Decision{}, fmt.Errorf("booking: person %d: %w", personID, ErrForbidden)
	}
	return d, nil
}

func record(ctx context.Context, tx pgx.Tx, d auth.Decision, action audit.Action, personID, apptID int64, detail map[string]any) error {
	ev := audit.Event{Action: action, PersonID: personID, Object: fmt.Sprintf("booking.appointment/%d", apptID), Detail: detail}
	if d.Basis == auth.BasisBreakGlass {
		ev.BreakGlassReason = d.Reason
	}
	if err := audit.Record(ctx, tx, ev); err != nil {
		return fmt.Errorf("booking: audit: %w", err)
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// selfRules checks a citizen's booking or change against the unit's rules.
// old is the current start when moving or cancelling (zero when booking).
func selfRules(r Rules, now, old, start time.Time, cancel bool) error {
	notice := now.Add(time.Duration(r.MinNoticeHours) * time.Hour)
	if !old.IsZero() && old.Before(notice) {
		return fmt.Errorf("%w: changes must be made at least %d hours before", ErrRule, r.MinNoticeHours)
	}
	if cancel {
		if !r.CancelAllowed {
			return fmt.Errorf("%w: cancelling is not allowed", ErrRule)
		}
		return nil
	}
	if start.Before(notice) {
		return fmt.Errorf("%w: book at least %d hours ahead", ErrRule, r.MinNoticeHours)
	}
	if start.After(now.AddDate(0, 0, r.HorizonDays)) {
		return fmt.Errorf("%w: at most %d days ahead", ErrRule, r.HorizonDays)
	}
	return nil
}

// CitizenMay says whether a citizen may move or cancel a now under rules r:
// the checks Move and Cancel make when they try, for offering the buttons.
// (Moving also needs a free time within the horizon, chosen afterwards.)
func (r Rules) CitizenMay(a Appointment, now time.Time) (move, cancel bool) {
	if !a.Active() || !a.Start.After(now) || !a.FamilyChanges() {
		return false, false
	}
	move = !a.Start.Before(now.Add(time.Duration(r.MinNoticeHours) * time.Hour))
	cancel = selfRules(r, now, a.Start, time.Time{}, true) == nil
	return move, cancel
}

// BookRequest asks for an appointment.
type BookRequest struct {
	PersonID, UnitID, TypeID int64
	Start                    time.Time
	// ResourceIDs (staff only) chooses the resources, one of each kind the
	// type needs; empty: the first free ones.
	ResourceIDs []int64
}

// Book books an appointment: by staff (PermBook, care relation) for any
// type, by a citizen for themselves or a child in their custody under 15,
// for self-service types, within the unit's rules. A time that another
// booking took meanwhile is ErrSlotTaken.
func (m *Module) Book(ctx context.Context, p *auth.Principal, req BookRequest) (Appointment, error) {
	var a Appointment
	err := postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		d, err := authorize(ctx, tx, p, req.PersonID, PermBook)
		if err != nil {
			return err
		}
		via := ViaStaff
		if p.IsCitizen() {
			via = ViaSelf
			if len(req.ResourceIDs) > 0 {
				return fmt.Errorf("%w: citizens do not choose resources", ErrInvalid)
			}
		}
		a, err = m.book(ctx, tx, p, d, req, StatusBooked, via, 0)
		return err
	})
	if err != nil {
		return Appointment{}, err
	}
	return a, nil
}

func (m *Module) book(ctx context.Context, tx pgx.Tx, p *auth.Principal, d auth.Decision, req BookRequest, status, via string, invitationID int64) (Appointment, error) {
	typ, err := typeByID(ctx, tx, req.TypeID)
	if err != nil || !typ.Active {
		return Appointment{}, fmt.Errorf("booking: type %d: %w", req.TypeID, ErrNotFound)
	}
	if err := m.checkUnit(ctx, tenantOf(p), req.UnitID); err != nil {
		return Appointment{}, err
	}
	if via == ViaSelf {
		if !typ.SelfService {
			return Appointment{}, fmt.Errorf("%w: this type is booked by the clinic", ErrRule)
		}
		r, err := rulesOf(ctx, tx, req.UnitID)
		if err != nil {
			return Appointment{}, err
		}
		if err := selfRules(r, m.now(), time.Time{}, req.Start, false); err != nil {
			return Appointment{}, err
		}
	}
	start := req.Start.Truncate(time.Second)
	end := start.Add(typ.Duration())
	pl, err := loadPlan(ctx, tx, req.UnitID, typ, start, end, req.PersonID, 0)
	if err != nil {
		return Appointment{}, err
	}
	if !pl.within(start, typ.Duration()) {
		return Appointment{}, fmt.Errorf("booking: %s: %w", stamp(start), ErrClosed)
	}
	alts, err := chooseAlternatives(pl, typ, req.ResourceIDs, start, end)
	if err != nil {
		return Appointment{}, err
	}
	var id int64
	err = savepoint(ctx, tx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO booking.appointment (tenant_id, unit_id, person_id, type_id, during, status, booked_via, invitation_id, created_by, updated)
			VALUES ($1, $2, $3, $4, tstzrange($5, $6, '[)'), $7, $8, NULLIF($9, 0), $10, $11) RETURNING id`,
			tenantOf(p), req.UnitID, req.PersonID, typ.ID, start, end, status, via, invitationID, actorName(ctx, p), m.now()).Scan(&id)
	})
	if postgres.IsExclusionViolation(err) {
		return Appointment{}, fmt.Errorf("booking: the person has another appointment then: %w", ErrSlotTaken)
	}
	if err != nil {
		return Appointment{}, fmt.Errorf("booking: book: %w", err)
	}
	if err := hold(ctx, tx, tenantOf(p), id, typ, alts, start, end, nil); err != nil {
		return Appointment{}, err
	}
	if typ.Imaging {
		if _, err := tx.Exec(ctx, `UPDATE booking.appointment SET accession_number = $2, study_uid = $3 WHERE id = $1`,
			id, accessionNumber(id), newStudyUID()); err != nil {
			return Appointment{}, fmt.Errorf("booking: book: %w", err)
		}
	}
	if err := record(ctx, tx, d, audit.ActionCreate, req.PersonID, id, map[string]any{
		"type_id": typ.ID, "unit_id": req.UnitID, "start": stamp(start), "via": via, "status": status,
	}); err != nil {
		return Appointment{}, err
	}
	kind := "confirmation"
	if status == StatusProposed {
		kind = "invitation"
	}
	if err := enqueue(ctx, tx, tenantOf(p), kind, id, m.now()); err != nil {
		return Appointment{}, err
	}
	a, err := lockAppt(ctx, tx, id)
	if err != nil {
		return Appointment{}, err
	}
	as := []Appointment{a}
	_, err = m.decorate(ctx, tx, tenantOf(p), as)
	return as[0], err
}

// chooseAlternatives lists, per kind the type needs, the resources to try in
// order: the ones asked for, or every free one.
func chooseAlternatives(pl *plan, typ Type, asked []int64, start, end time.Time) ([][]int64, error) {
	free := pl.alternatives(start, end)
	var out [][]int64
	for _, kind := range typ.Kinds {
		var want []int64
		for _, id := range asked {
			if slices.Contains(pl.candidates[kind], id) {
				want = append(want, id)
			}
		}
		if len(asked) > 0 && len(want) == 0 {
			// Staff chose resources but none of this kind: any free one.
			want = nil
		}
		if len(want) == 0 {
			want = free[kind]
		}
		if len(want) == 0 {
			if len(pl.candidates[kind]) == 0 {
				return nil, fmt.Errorf("booking: the unit has no %s for this type: %w", kind, ErrClosed)
			}
			return nil, fmt.Errorf("booking: no free %s: %w", kind, ErrSlotTaken)
		}
		out = append(out, want)
	}
	for _, id := range asked {
		if !slices.ContainsFunc(out, func(ids []int64) bool { return slices.Contains(ids, id) }) {
			return nil, fmt.Errorf("booking: resource %d does not fit this type: %w", id, ErrInvalid)
		}
	}
	return out, nil
}

// hold takes one resource from each list of alternatives for the
// appointment. The exclusion constraint decides: a resource another
// transaction took is skipped; when every alternative of a kind is taken,
// the booking fails with ErrSlotTaken. old, when moving, are the resources
// held now, replaced in place.
//
// Bookings that may hold the same resource take turns: each first takes a
// transaction-level advisory lock on every resource it may hold, in
// ascending order (so two bookings never wait for each other in a
// circle). Without the turns, PostgreSQL's exclusion check — made after
// inserting the index entry — has transactions inserting conflicting rows
// at the same moment wait for each other, and all but one end in a
// deadlock found only after deadlock_timeout (one second each: fifty
// parents at the slot that opens at eight would wait most of a minute). In
// turn, each sees the rows of those before it committed and gets a plain
// exclusion violation. A deadlock that still happens (with a writer that
// takes no turn) counts as "taken".
func hold(ctx context.Context, tx pgx.Tx, tenantID, apptID int64, typ Type, alts [][]int64, start, end time.Time, old []int64) error {
	var all []int64
	for _, ids := range alts {
		all = append(all, ids...)
	}
	slices.Sort(all)
	for _, rid := range slices.Compact(all) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, ($2::bigint % 2147483647)::int)`, resourceLockClass, rid); err != nil {
			return fmt.Errorf("booking: wait for resource: %w", err)
		}
	}
	for i, ids := range alts {
		taken := false
		for _, rid := range ids {
			err := savepoint(ctx, tx, func(tx pgx.Tx) error {
				if i < len(old) && old[i] != 0 {
					_, err := tx.Exec(ctx, `UPDATE booking.appointment_resource SET resource_id = $3, during = tstzrange($4, $5, '[)')
						WHERE appointment_id = $1 AND resource_id = $2`, apptID, old[i], rid, start, end)
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO booking.appointment_resource (tenant_id, appointment_id, resource_id, during)
					VALUES ($1, $2, $3, tstzrange($4, $5, '[)'))`, tenantID, apptID, rid, start, end)
				return err
			})
			if postgres.IsExclusionViolation(err) || postgres.IsDeadlock(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("booking: hold resource: %w", err)
			}
			taken = true
			break
		}
		if !taken {
			return fmt.Errorf("booking: %s taken meanwhile: %w", typ.Kinds[i], ErrSlotTaken)
		}
	}
	return nil
}

// resourceLockClass is the first key of the advisory locks that make
// bookings of one resource take turns (the second is the resource id).
const resourceLockClass = 0x626f6f6b // "book"

// savepoint runs fn in a nested transaction (a savepoint), so a refused
// statement does not abort the outer transaction.
func savepoint(ctx context.Context, tx pgx.Tx, fn func(pgx.Tx) error) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(sp); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

// MoveRequest asks to move an appointment.
type MoveRequest struct {
	Start time.Time
	// ResourceIDs (staff only) moves it to other resources too.
	ResourceIDs []int64
	// Reason is kept with the change (staff: required).
	Reason string
}

// Move gives an appointment a new time (and, for staff, other resources),
// keeping its resources where they are free. Citizens move their own and
// their children's self-service appointments within the rules.
func (m *Module) Move(ctx context.Context, p *auth.Principal, id int64, req MoveRequest) (Appointment, error) {
	var out Appointment
	err := postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		a, err := lockAppt(ctx, tx, id)
		if err != nil {
			return err
		}
		d, err := authorize(ctx, tx, p, a.PersonID, PermBook)
		if err != nil {
			return err
		}
		out, err = m.move(ctx, tx, p, d, a, req, "")
		return err
	})
	return out, err
}

func (m *Module) move(ctx context.Context, tx pgx.Tx, p *auth.Principal, d auth.Decision, a Appointment, req MoveRequest, newStatus string) (Appointment, error) {
	if !a.Active() {
		return Appointment{}, fmt.Errorf("booking: appointment %d is cancelled: %w", a.ID, ErrStatus)
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if len(req.Reason) > 500 || !storable(req.Reason) {
		return Appointment{}, fmt.Errorf("%w: reason too long or with characters that are not allowed", ErrInvalid)
	}
	typ, err := typeByID(ctx, tx, a.TypeID)
	if err != nil {
		return Appointment{}, fmt.Errorf("booking: type: %w", err)
	}
	if p.IsCitizen() {
		if len(req.ResourceIDs) > 0 {
			return Appointment{}, fmt.Errorf("%w: citizens do not choose resources", ErrInvalid)
		}
		if !typ.SelfService && a.BookedVia != ViaInvitation {
			return Appointment{}, fmt.Errorf("%w: this appointment is changed by the clinic", ErrRule)
		}
		r, err := rulesOf(ctx, tx, a.UnitID)
		if err != nil {
			return Appointment{}, err
		}
		if err := selfRules(r, m.now(), a.Start, req.Start, false); err != nil {
			return Appointment{}, err
		}
	} else if req.Reason == "" {
		return Appointment{}, fmt.Errorf("%w: state a reason for the change", ErrInvalid)
	}
	start := req.Start.Truncate(time.Second)
	end := start.Add(typ.Duration())
	pl, err := loadPlan(ctx, tx, a.UnitID, typ, start, end, a.PersonID, a.ID)
	if err != nil {
		return Appointment{}, err
	}
	if !pl.within(start, typ.Duration()) {
		return Appointment{}, fmt.Errorf("booking: %s: %w", stamp(start), ErrClosed)
	}
	// Keep each held resource when it is free at the new time.
	asked := req.ResourceIDs
	if len(asked) == 0 {
		free := pl.alternatives(start, end)
		for _, rid := range a.ResourceIDs {
			for _, kind := range typ.Kinds {
				if slices.Contains(free[kind], rid) {
					asked = append(asked, rid)
				}
			}
		}
	}
	alts, err := chooseAlternatives(pl, typ, asked, start, end)
	if err != nil {
		return Appointment{}, err
	}
	if len(asked) > 0 && len(req.ResourceIDs) == 0 {
		// Fall back to any free resource of the kind when the kept one is taken meanwhile.
		free := pl.alternatives(start, end)
		for i, kind := range typ.Kinds {
			for _, id := range free[kind] {
				if !slices.Contains(alts[i], id) {
					alts[i] = append(alts[i], id)
				}
			}
		}
	}
	status := a.Status
	if newStatus != "" {
		status = newStatus
	}
	err = savepoint(ctx, tx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE booking.appointment SET during = tstzrange($2, $3, '[)'), status = $4, version = version + 1,
			updated = $5, reminded = NULL WHERE id = $1`, a.ID, start, end, status, m.now())
		return err
	})
	if postgres.IsExclusionViolation(err) {
		return Appointment{}, fmt.Errorf("booking: the person has another appointment then: %w", ErrSlotTaken)
	}
	if err != nil {
		return Appointment{}, fmt.Errorf("booking: move: %w", err)
	}
	// Held resources in the order of the type's kinds.
	old, err := heldByKind(ctx, tx, a.ID, typ)
	if err != nil {
		return Appointment{}, err
	}
	if err := hold(ctx, tx, tenantOf(p), a.ID, typ, alts, start, end, old); err != nil {
		return Appointment{}, err
	}
	detail := map[string]any{"change": "move", "from": stamp(a.Start), "to": stamp(start), "status": status}
	if err := record(ctx, tx, d, audit.ActionUpdate, a.PersonID, a.ID, detail); err != nil {
		return Appointment{}, err
	}
	kind := "moved"
	switch {
	case status == StatusProposed:
		kind = "invitation"
	case a.Status == StatusProposed:
		kind = "confirmation" // an invitation answered with another time
	}
	if err := enqueue(ctx, tx, tenantOf(p), kind, a.ID, m.now()); err != nil {
		return Appointment{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE booking.appointment SET change_reason = $2 WHERE id = $1`, a.ID, req.Reason); err != nil {
		return Appointment{}, fmt.Errorf("booking: move: %w", err)
	}
	n, err := lockAppt(ctx, tx, a.ID)
	if err != nil {
		return Appointment{}, err
	}
	as := []Appointment{n}
	_, err = m.decorate(ctx, tx, tenantOf(p), as)
	return as[0], err
}

// heldByKind lists the resources an appointment holds, in the order of the
// type's kinds (0 where it holds none of a kind).
func heldByKind(ctx context.Context, tx pgx.Tx, apptID int64, typ Type) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT ar.resource_id, r.kind FROM booking.appointment_resource ar
		JOIN booking.resource r ON r.id = ar.resource_id WHERE ar.appointment_id = $1 AND ar.active`, apptID)
	if err != nil {
		return nil, fmt.Errorf("booking: held resources: %w", err)
	}
	byKind := map[string]int64{}
	var rid int64
	var kind string
	if _, err := pgx.ForEachRow(rows, []any{&rid, &kind}, func() error { byKind[kind] = rid; return nil }); err != nil {
		return nil, fmt.Errorf("booking: held resources: %w", err)
	}
	out := make([]int64, len(typ.Kinds))
	for i, k := range typ.Kinds {
		out[i] = byKind[k]
	}
	return out, nil
}

// Cancel cancels an appointment with a reason (staff: required). Its
// resources are freed at once; the row stays, as history.
func (m *Module) Cancel(ctx context.Context, p *auth.Principal, id int64, reason string) error {
	return postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		a, err := lockAppt(ctx, tx, id)
		if err != nil {
			return err
		}
		d, err := authorize(ctx, tx, p, a.PersonID, PermBook)
		if err != nil {
			return err
		}
		return m.cancel(ctx, tx, p, d, a, reason)
	})
}

func (m *Module) cancel(ctx context.Context, tx pgx.Tx, p *auth.Principal, d auth.Decision, a Appointment, reason string) error {
	if !a.Active() {
		return fmt.Errorf("booking: appointment %d is cancelled already: %w", a.ID, ErrStatus)
	}
	reason = strings.TrimSpace(reason)
	if len(reason) > 500 || !storable(reason) {
		return fmt.Errorf("%w: reason too long or with characters that are not allowed", ErrInvalid)
	}
	if p.IsCitizen() {
		if !a.FamilyChanges() {
			return fmt.Errorf("%w: this appointment is cancelled by the clinic", ErrRule)
		}
		r, err := rulesOf(ctx, tx, a.UnitID)
		if err != nil {
			return err
		}
		if err := selfRules(r, m.now(), a.Start, time.Time{}, true); err != nil {
			return err
		}
	} else if reason == "" {
		return fmt.Errorf("%w: state a reason for the cancellation", ErrInvalid)
	}
	if _, err := tx.Exec(ctx, `UPDATE booking.appointment SET status = 'cancelled', cancel_reason = $2, version = version + 1, updated = $3
		WHERE id = $1`, a.ID, reason, m.now()); err != nil {
		return fmt.Errorf("booking: cancel: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE booking.appointment_resource SET active = false WHERE appointment_id = $1`, a.ID); err != nil {
		return fmt.Errorf("booking: cancel: %w", err)
	}
	if a.InvitationID != 0 {
		if _, err := tx.Exec(ctx, `UPDATE booking.invitation SET status = 'cancelled', answered = COALESCE(answered, now()), next_followup = NULL
			WHERE id = $1 AND status IN ('sent', 'unanswered')`, a.InvitationID); err != nil {
			return fmt.Errorf("booking: cancel: %w", err)
		}
	}
	by := "staff"
	if p.IsCitizen() {
		by = "citizen"
	}
	if err := record(ctx, tx, d, audit.ActionUpdate, a.PersonID, a.ID, map[string]any{"change": "cancel", "start": stamp(a.Start), "by": by}); err != nil {
		return err
	}
	return enqueue(ctx, tx, tenantOf(p), "cancelled", a.ID, m.now())
}

// Get returns one appointment the user may see.
func (m *Module) Get(ctx context.Context, p *auth.Principal, id int64) (Appointment, error) {
	var out Appointment
	err := postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		as, err := queryAppts(ctx, tx, `WHERE a.id = $1`, id)
		if err != nil {
			return err
		}
		if len(as) == 0 {
			return fmt.Errorf("booking: appointment %d: %w", id, ErrNotFound)
		}
		d, err := authorize(ctx, tx, p, as[0].PersonID, PermRead)
		if err != nil {
			return err
		}
		if err := record(ctx, tx, d, audit.ActionRead, as[0].PersonID, id, nil); err != nil {
			return err
		}
		if _, err := m.decorate(ctx, tx, tenantOf(p), as); err != nil {
			return err
		}
		out = as[0]
		return nil
	})
	return out, err
}

// ListFilter narrows Appointments.
type ListFilter struct {
	// From lists appointments ending after it (zero: all).
	From time.Time
	// To lists appointments starting before it (zero: no end).
	To time.Time
	// WithCancelled includes cancelled appointments.
	WithCancelled bool
}

// Appointments lists a person's appointments, by start: for the parent
// portal (citizens: themselves and children in custody under 15) and the
// journal (staff with PermRead and a care relation). The read is audited.
func (m *Module) Appointments(ctx context.Context, p *auth.Principal, personID int64, f ListFilter) ([]Appointment, error) {
	var out []Appointment
	err := postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		d, err := authorize(ctx, tx, p, personID, PermRead)
		if err != nil {
			return err
		}
		var to *time.Time
		if !f.To.IsZero() {
			to = &f.To
		}
		out, err = queryAppts(ctx, tx, `WHERE a.person_id = $1 AND upper(a.during) > $2 AND ($3::timestamptz IS NULL OR lower(a.during) < $3)
			AND ($4 OR a.status <> 'cancelled') ORDER BY lower(a.during), a.id`, personID, f.From, to, f.WithCancelled)
		if err != nil {
			return err
		}
		ev := audit.Event{Action: audit.ActionRead, PersonID: personID, Object: "booking.appointment", Detail: map[string]any{"count": len(out)}}
		if d.Basis == auth.BasisBreakGlass {
			ev.BreakGlassReason = d.Reason
		}
		if err := audit.Record(ctx, tx, ev); err != nil {
			return fmt.Errorf("booking: audit: %w", err)
		}
		_, err = m.decorate(ctx, tx, tenantOf(p), out)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SlotQuery asks for free times.
type SlotQuery struct {
	PersonID, UnitID, TypeID int64
	From, To                 time.Time
	// Moving is the appointment being moved (its own time counts as free).
	Moving int64
	// Limit caps the number of slots (0: 200).
	Limit int
}

// FreeSlots lists free times for a type at a unit for a person. Citizens
// see self-service types only (or the type of the appointment they move),
// within the notice and horizon rules.
func (m *Module) FreeSlots(ctx context.Context, p *auth.Principal, q SlotQuery) ([]Slot, error) {
	if q.Limit <= 0 {
		q.Limit = 200
	}
	var out []Slot
	err := postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		if _, err := authorize(ctx, tx, p, q.PersonID, PermBook); err != nil {
			return err
		}
		typ, err := typeByID(ctx, tx, q.TypeID)
		// A retired type takes no new bookings; one booked before can still move.
		if err != nil || (!typ.Active && q.Moving == 0) {
			return fmt.Errorf("booking: type %d: %w", q.TypeID, ErrNotFound)
		}
		if q.Moving != 0 {
			a, err := lockAppt(ctx, tx, q.Moving)
			if err != nil || a.PersonID != q.PersonID || a.TypeID != q.TypeID {
				return fmt.Errorf("booking: appointment %d: %w", q.Moving, ErrNotFound)
			}
			if p.IsCitizen() && !typ.SelfService && a.BookedVia != ViaInvitation {
				return fmt.Errorf("%w: this appointment is changed by the clinic", ErrRule)
			}
		} else if p.IsCitizen() && !typ.SelfService {
			return fmt.Errorf("%w: this type is booked by the clinic", ErrRule)
		}
		now := m.now()
		if q.From.Before(now) {
			q.From = now
		}
		if p.IsCitizen() {
			r, err := rulesOf(ctx, tx, q.UnitID)
			if err != nil {
				return err
			}
			if n := now.Add(time.Duration(r.MinNoticeHours) * time.Hour); q.From.Before(n) {
				q.From = n
			}
			if h := now.AddDate(0, 0, r.HorizonDays); q.To.After(h) {
				q.To = h
			}
		}
		if !q.To.After(q.From) {
			return nil
		}
		pl, err := loadPlan(ctx, tx, q.UnitID, typ, q.From, q.To, q.PersonID, q.Moving)
		if err != nil {
			return err
		}
		out = pl.slots(q.From, q.To, q.Limit)
		return nil
	})
	return out, err
}

func tenantOf(p *auth.Principal) int64 {
	if p == nil {
		return 0
	}
	return p.TenantID
}

func actorName(ctx context.Context, p *auth.Principal) string {
	if p != nil {
		return p.Username
	}
	if a, ok := audit.ActorFrom(ctx); ok {
		return a.Username
	}
	return ""
}

// accessionNumber is unique across tenants (appointment ids are), at most
// 16 characters.
func accessionNumber(id int64) string { return fmt.Sprintf("BK%08d", id) }

// newStudyUID is a UUID-derived UID (PS3.5 B.2: 2.25.<decimal of 128 bits>).
func newStudyUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(b).String()
}

func hasCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
