package booking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// Invitation statuses.
const (
	InvitationSent       = "sent"
	InvitationAccepted   = "accepted"
	InvitationChanged    = "changed"
	InvitationCancelled  = "cancelled"
	InvitationUnanswered = "unanswered"
)

// Invitation is a call-in with a proposed appointment.
type Invitation struct {
	ID        int64
	UnitID    int64
	PersonID  int64
	DueDate   time.Time
	Status    string
	Sent      time.Time
	RespondBy time.Time
	Followups int
	// Appointment is the proposed (or, once answered, booked) appointment.
	Appointment Appointment
}

// RecallEntry is a due recall with what the clinic has done about it.
type RecallEntry struct {
	Due
	// GivenName and FamilyName are for the staff list.
	GivenName, FamilyName string
	// Invited: an open invitation or a future appointment exists.
	Invited bool
}

// DueRecalls lists who is due for a call-in at a unit by until, from the
// journal's recall list, marking those already invited or booked. For
// staff with PermInvite; audited as a search.
func (m *Module) DueRecalls(ctx context.Context, p *auth.Principal, unitID int64, until time.Time) ([]RecallEntry, error) {
	if p == nil || p.IsCitizen() || !p.Can(PermInvite) {
		return nil, fmt.Errorf("booking: recalls: %w", ErrForbidden)
	}
	due, err := m.recalls().Due(ctx, p.TenantID, unitID, until)
	if err != nil {
		return nil, fmt.Errorf("booking: recall list: %w", err)
	}
	var out []RecallEntry
	err = postgres.InTenant(ctx, m.Pool, p.TenantID, func(tx pgx.Tx) error {
		now := m.now()
		for _, d := range due {
			d2, err := auth.Access(ctx, tx, p, d.PersonID)
			if err != nil || !d2.Allowed || d2.Basis != auth.BasisCare {
				continue // not in this user's care: not listed
			}
			person, err := auth.GetPerson(ctx, tx, d.PersonID)
			if err != nil {
				continue
			}
			var invited bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM booking.appointment WHERE person_id = $1 AND status <> 'cancelled' AND upper(during) > $2)
				OR EXISTS (SELECT 1 FROM booking.invitation WHERE person_id = $1 AND status IN ('sent', 'unanswered'))`, d.PersonID, now).Scan(&invited); err != nil {
				return fmt.Errorf("booking: recalls: %w", err)
			}
			out = append(out, RecallEntry{Due: d, GivenName: person.GivenName, FamilyName: person.FamilyName, Invited: invited})
		}
		// The list shows each child's recall date, which comes from their
		// journal: each child listed is logged by name, as the journal's
		// own recall list does; an empty list is logged once.
		ev := audit.Event{Action: audit.ActionSearch, Object: "booking.recall", Detail: map[string]any{"unit_id": unitID, "count": len(out)}}
		if len(out) == 0 {
			return audit.Record(ctx, tx, ev)
		}
		for _, e := range out {
			ev.PersonID = e.PersonID
			if err := audit.Record(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// InviteRequest sends one call-in.
type InviteRequest struct {
	PersonID, UnitID, TypeID int64
	DueDate                  time.Time
	// Start is the proposed time; zero: the first free slot from the due
	// date (and not before the notice the citizen needs to answer).
	Start time.Time
}

// Invite sends a call-in invitation: a proposed appointment held in the
// calendar, and a message to the custody holders (or the person) who accept
// or change it. Staff with PermInvite and a care relation.
func (m *Module) Invite(ctx context.Context, p *auth.Principal, req InviteRequest) (Invitation, error) {
	if p == nil || p.IsCitizen() {
		return Invitation{}, fmt.Errorf("booking: invite: %w", ErrForbidden)
	}
	var inv Invitation
	err := postgres.InTenant(ctx, m.Pool, p.TenantID, func(tx pgx.Tx) error {
		d, err := authorize(ctx, tx, p, req.PersonID, PermInvite)
		if err != nil {
			return err
		}
		r, err := rulesOf(ctx, tx, req.UnitID)
		if err != nil {
			return err
		}
		now := m.now()
		respondBy := now.AddDate(0, 0, r.AnswerDays)
		start := req.Start
		if start.IsZero() {
			typ, err := typeByID(ctx, tx, req.TypeID)
			if err != nil || !typ.Active {
				return fmt.Errorf("booking: type %d: %w", req.TypeID, ErrNotFound)
			}
			// The parent gets AnswerDays to answer and must still be able to
			// change the time after that.
			from := respondBy.Add(time.Duration(r.MinNoticeHours) * time.Hour)
			if due := wall(req.DueDate, 0); due.After(from) {
				from = due
			}
			pl, err := loadPlan(ctx, tx, req.UnitID, typ, from, from.AddDate(0, 0, r.HorizonDays), req.PersonID, 0)
			if err != nil {
				return err
			}
			slots := pl.slots(from, from.AddDate(0, 0, r.HorizonDays), 1)
			if len(slots) == 0 {
				return fmt.Errorf("booking: no free time within %d days: %w", r.HorizonDays, ErrSlotTaken)
			}
			start = slots[0].Start
		}
		if err := tx.QueryRow(ctx, `INSERT INTO booking.invitation (tenant_id, unit_id, person_id, due_date, sent, sent_by, respond_by, next_followup)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id`,
			p.TenantID, req.UnitID, req.PersonID, dateOnly(req.DueDate), now, p.Username, respondBy).Scan(&inv.ID); err != nil {
			return fmt.Errorf("booking: invite: %w", err)
		}
		a, err := m.book(ctx, tx, p, d, BookRequest{PersonID: req.PersonID, UnitID: req.UnitID, TypeID: req.TypeID, Start: start},
			StatusProposed, ViaInvitation, inv.ID)
		if err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionCreate, PersonID: req.PersonID,
			Object: fmt.Sprintf("booking.invitation/%d", inv.ID), Detail: map[string]any{"appointment_id": a.ID}}); err != nil {
			return fmt.Errorf("booking: audit: %w", err)
		}
		inv = Invitation{ID: inv.ID, UnitID: req.UnitID, PersonID: req.PersonID, DueDate: dateOnly(req.DueDate), Status: InvitationSent,
			Sent: now, RespondBy: respondBy, Appointment: a}
		return nil
	})
	if err != nil {
		return Invitation{}, err
	}
	return inv, nil
}

// Invitations lists a person's invitations, newest first (open ones for
// the portal, with their proposed appointment).
func (m *Module) Invitations(ctx context.Context, p *auth.Principal, personID int64, openOnly bool) ([]Invitation, error) {
	var out []Invitation
	err := postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		d, err := authorize(ctx, tx, p, personID, PermRead)
		if err != nil {
			return err
		}
		out, err = invitations(ctx, tx, `WHERE i.person_id = $1 AND (NOT $2 OR i.status IN ('sent', 'unanswered'))`, personID, openOnly)
		if err != nil {
			return err
		}
		if err := m.fillProposals(ctx, tx, tenantOf(p), out); err != nil {
			return err
		}
		ev := audit.Event{Action: audit.ActionRead, PersonID: personID, Object: "booking.invitation", Detail: map[string]any{"count": len(out)}}
		if d.Basis == auth.BasisBreakGlass {
			ev.BreakGlassReason = d.Reason
		}
		return audit.Record(ctx, tx, ev)
	})
	return out, err
}

// UnitInvitations lists a unit's invitations in a status (staff follow-up
// list: "unanswered" are to be called), of the persons the user's units
// care for (like DueRecalls: anyone else is left out, whichever unit is asked).
func (m *Module) UnitInvitations(ctx context.Context, p *auth.Principal, unitID int64, status string) ([]Invitation, error) {
	if p == nil || p.IsCitizen() || !p.Can(PermInvite) {
		return nil, fmt.Errorf("booking: invitations: %w", ErrForbidden)
	}
	var out []Invitation
	err := postgres.InTenant(ctx, m.Pool, p.TenantID, func(tx pgx.Tx) error {
		all, err := invitations(ctx, tx, `WHERE i.unit_id = $1 AND i.status = $2`, unitID, status)
		if err != nil {
			return err
		}
		out = nil
		for _, inv := range all {
			d, err := auth.Access(ctx, tx, p, inv.PersonID)
			if err != nil {
				return fmt.Errorf("booking: invitations: %w", err)
			}
			if d.Allowed && d.Basis == auth.BasisCare {
				out = append(out, inv)
			}
		}
		return m.fillProposals(ctx, tx, p.TenantID, out)
	})
	return out, err
}

func invitations(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]Invitation, error) {
	rows, err := tx.Query(ctx, `SELECT i.id, i.unit_id, i.person_id, i.due_date, i.status, i.sent, i.respond_by, i.followups
		FROM booking.invitation i `+where+` ORDER BY i.sent DESC, i.id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("booking: invitations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Invitation, error) {
		var i Invitation
		return i, r.Scan(&i.ID, &i.UnitID, &i.PersonID, &i.DueDate, &i.Status, &i.Sent, &i.RespondBy, &i.Followups)
	})
	if err != nil {
		return nil, fmt.Errorf("booking: invitations: %w", err)
	}
	return out, nil
}

func (m *Module) fillProposals(ctx context.Context, tx pgx.Tx, tenantID int64, invs []Invitation) error {
	if len(invs) == 0 {
		return nil
	}
	ids := make([]int64, len(invs))
	for i, inv := range invs {
		ids[i] = inv.ID
	}
	as, err := queryAppts(ctx, tx, `WHERE a.invitation_id = ANY($1) ORDER BY a.id`, ids)
	if err != nil {
		return err
	}
	if _, err := m.decorate(ctx, tx, tenantID, as); err != nil {
		return err
	}
	for i := range invs {
		if k := slices.IndexFunc(as, func(a Appointment) bool { return a.InvitationID == invs[i].ID }); k >= 0 {
			invs[i].Appointment = as[k]
		}
	}
	return nil
}

// lockInvitation reads an open invitation and its proposed appointment for update.
func lockInvitation(ctx context.Context, tx pgx.Tx, id int64) (Invitation, Appointment, error) {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM booking.invitation WHERE id = $1 FOR UPDATE`, id); err != nil {
		return Invitation{}, Appointment{}, fmt.Errorf("booking: invitation: %w", err)
	}
	invs, err := invitations(ctx, tx, `WHERE i.id = $1`, id)
	if err != nil {
		return Invitation{}, Appointment{}, err
	}
	if len(invs) == 0 {
		return Invitation{}, Appointment{}, fmt.Errorf("booking: invitation %d: %w", id, ErrNotFound)
	}
	var apptID int64
	err = tx.QueryRow(ctx, `SELECT id FROM booking.appointment WHERE invitation_id = $1 ORDER BY id DESC LIMIT 1`, id).Scan(&apptID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Invitation{}, Appointment{}, fmt.Errorf("booking: invitation %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Invitation{}, Appointment{}, fmt.Errorf("booking: invitation: %w", err)
	}
	a, err := lockAppt(ctx, tx, apptID)
	return invs[0], a, err
}

// AcceptInvitation confirms the proposed time: the appointment is booked.
func (m *Module) AcceptInvitation(ctx context.Context, p *auth.Principal, id int64) (Appointment, error) {
	var out Appointment
	err := postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		inv, a, err := lockInvitation(ctx, tx, id)
		if err != nil {
			return err
		}
		d, err := authorize(ctx, tx, p, inv.PersonID, PermBook)
		if err != nil {
			return err
		}
		if a.Status != StatusProposed || (inv.Status != InvitationSent && inv.Status != InvitationUnanswered) {
			return fmt.Errorf("booking: invitation %d is answered: %w", id, ErrStatus)
		}
		now := m.now()
		if !a.Start.After(now) {
			return fmt.Errorf("booking: the proposed time has passed: %w", ErrStatus)
		}
		if _, err := tx.Exec(ctx, `UPDATE booking.appointment SET status = 'booked', version = version + 1, updated = $2 WHERE id = $1`, a.ID, now); err != nil {
			return fmt.Errorf("booking: accept: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE booking.invitation SET status = 'accepted', answered = $2, next_followup = NULL WHERE id = $1`, id, now); err != nil {
			return fmt.Errorf("booking: accept: %w", err)
		}
		if err := record(ctx, tx, d, audit.ActionUpdate, a.PersonID, a.ID, map[string]any{"change": "accept", "invitation_id": id}); err != nil {
			return err
		}
		if err := enqueue(ctx, tx, tenantOf(p), "confirmation", a.ID, now); err != nil {
			return err
		}
		out, err = lockAppt(ctx, tx, a.ID)
		if err != nil {
			return err
		}
		as := []Appointment{out}
		_, err = m.decorate(ctx, tx, tenantOf(p), as)
		out = as[0]
		return err
	})
	return out, err
}

// ChangeInvitation answers an invitation with another time: the proposed
// appointment moves there and is booked (the rules of self-service apply).
func (m *Module) ChangeInvitation(ctx context.Context, p *auth.Principal, id int64, start time.Time) (Appointment, error) {
	var out Appointment
	err := postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		inv, a, err := lockInvitation(ctx, tx, id)
		if err != nil {
			return err
		}
		d, err := authorize(ctx, tx, p, inv.PersonID, PermBook)
		if err != nil {
			return err
		}
		if a.Status != StatusProposed || (inv.Status != InvitationSent && inv.Status != InvitationUnanswered) {
			return fmt.Errorf("booking: invitation %d is answered: %w", id, ErrStatus)
		}
		reason := ""
		if !p.IsCitizen() {
			reason = "changed on behalf of the family"
		}
		out, err = m.move(ctx, tx, p, d, a, MoveRequest{Start: start, Reason: reason}, StatusBooked)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE booking.invitation SET status = 'changed', answered = $2, next_followup = NULL WHERE id = $1`, id, m.now()); err != nil {
			return fmt.Errorf("booking: change: %w", err)
		}
		return nil
	})
	return out, err
}
