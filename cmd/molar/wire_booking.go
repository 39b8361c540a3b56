package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/worklist"
	"github.com/molar-health/molar/journal/portal"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/viewer/web"
)

// bookingModules remembers each server's booking module, so that the core
// part (worklist feed) and the module list share one instance.
var bookingModules sync.Map // *server → *booking.Module

// bookingModule builds the booking module (modules/booking). With s == nil
// it serves only its name and migrations (molar migrate).
func bookingModule(s *server) modules.Module {
	if s == nil {
		return &booking.Module{}
	}
	if m, ok := bookingModules.Load(s); ok {
		return m.(*booking.Module)
	}
	m := &booking.Module{
		Pool:     s.db.pool,
		Shell:    s.shell,
		Units:    bookingUnits{s},
		Recalls:  journalRecallSource(s),
		Notifier: bookingNotifier(s.cfg),
		BaseURL:  s.cfg.publicURL(),
		Log:      s.log,
	}
	actual, _ := bookingModules.LoadOrStore(s, m)
	return actual.(*booking.Module)
}

// bookingOf returns the server's booking module (the portal and the journal
// read appointments through its methods: Appointments, Book, Move, Cancel,
// Invitations, AcceptInvitation, ChangeInvitation).
func bookingOf(s *server) *booking.Module { return bookingModule(s).(*booking.Module) }

// bookingNotifier sends e-mail over SMTP and SMS through a gateway, as
// configured; nil when neither is (the outbox keeps the messages).
func bookingNotifier(cfg *Config) booking.Notifier {
	var ch booking.Channels
	if cfg.SMTPAddr != "" {
		ch = append(ch, &booking.SMTP{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, Username: cfg.SMTPUser, Password: cfg.SMTPPassword, TLS: cfg.SMTPTLS})
	}
	if cfg.SMSURL != "" {
		ch = append(ch, booking.SMS{Gateway: booking.HTTPGateway{URL: cfg.SMSURL, Token: cfg.SMSToken}})
	}
	if len(ch) == 0 {
		return nil
	}
	return ch
}

// bookingUnits serves the booking module from the core register.
type bookingUnits struct{ s *server }

func (a bookingUnits) Units(ctx context.Context, tenantID int64) ([]booking.Unit, error) {
	units, err := auth.OrgUnits(ctx, a.s.db.pool, tenantID)
	if err != nil {
		return nil, err
	}
	out := make([]booking.Unit, len(units))
	for i, u := range units {
		out[i] = booking.Unit{ID: u.ID, Kind: u.Kind, Name: u.Name}
	}
	return out, nil
}

// bookingPart wires what the core needs from booking: the DICOM Modality
// Worklist is fed from imaging appointments.
func bookingPart(s *server) corePart {
	p := corePart{name: "booking"}
	if s == nil {
		return p
	}
	p.prepare = func(context.Context, *river.Workers) error {
		s.portalBooking = portalBooking{m: bookingOf(s)}
		src := bookingWorklist(s)
		s.dicomHooks = append(s.dicomHooks, func(srv *dimse.Server) {
			if q, ok := srv.Find.(*query.Service); ok {
				q.Worklist = func() worklist.Source { return src }
			}
		})
		return nil
	}
	return p
}

// bookingWorklist is the worklist.Source over the booking module.
func bookingWorklist(s *server) worklist.Source { return bookingOf(s).WorklistSource() }

// portalBooking adapts the booking module to the parent portal. The portal
// passes the signed-in citizen in the request context; the module checks
// custody and age again and audits every read and change.
type portalBooking struct{ m *booking.Module }

var _ portal.Booking = portalBooking{}

// errNoPrincipal: the portal called without a signed-in user.
var errNoPrincipal = fmt.Errorf("booking: %w", auth.ErrUnauthenticated)

func principalIn(ctx context.Context) (*auth.Principal, error) {
	if p := auth.PrincipalFrom(ctx); p != nil {
		return p, nil
	}
	return nil, errNoPrincipal
}

// ref encodes an appointment or invitation id for the portal; the module
// checks that it belongs to the child before acting on it.
func ref(kind string, id int64) string { return kind + strconv.FormatInt(id, 10) }

func parseRef(kind, r string) (int64, error) {
	if !strings.HasPrefix(r, kind) {
		return 0, web.E(web.NotFound, "")
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(r, kind), 10, 64)
	if err != nil || id <= 0 {
		return 0, web.E(web.NotFound, "")
	}
	return id, nil
}

func (a portalBooking) view(ctx context.Context, tenantID int64, ap booking.Appointment, now time.Time) portal.Appointment {
	out := portal.Appointment{Ref: ref("a", ap.ID), Start: ap.Start.In(booking.Loc), End: ap.End.In(booking.Loc), Kind: ap.PublicName, Place: ap.UnitName}
	if out.Kind == "" {
		out.Kind = ap.TypeName
	}
	if ap.Active() && ap.Start.After(now) {
		rules, err := a.m.RulesFor(ctx, tenantID, ap.UnitID)
		if err == nil {
			out.CanMove, out.CanCancel = rules.CitizenMay(ap, now)
		}
	}
	return out
}

func (a portalBooking) Appointments(ctx context.Context, tenantID, personID int64) (upcoming, past []portal.Appointment, err error) {
	p, err := principalIn(ctx)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	all, err := a.m.Appointments(ctx, p, personID, booking.ListFilter{From: now.AddDate(-2, 0, 0)})
	if err != nil {
		return nil, nil, err
	}
	for _, ap := range all {
		if ap.Status == booking.StatusProposed {
			continue // invitations show these
		}
		v := a.view(ctx, tenantID, ap, now)
		if ap.End.After(now) {
			upcoming = append(upcoming, v)
		} else {
			past = append([]portal.Appointment{v}, past...)
		}
	}
	return upcoming, past, nil
}

func (a portalBooking) Invitations(ctx context.Context, tenantID, personID int64) ([]portal.Invitation, error) {
	p, err := principalIn(ctx)
	if err != nil {
		return nil, err
	}
	invs, err := a.m.Invitations(ctx, p, personID, true)
	if err != nil {
		return nil, err
	}
	out := make([]portal.Invitation, 0, len(invs))
	for _, in := range invs {
		kind := in.Appointment.PublicName
		if kind == "" {
			kind = in.Appointment.TypeName
		}
		out = append(out, portal.Invitation{Ref: ref("i", in.ID), Kind: kind, Proposed: in.Appointment.Start.In(booking.Loc), Place: in.Appointment.UnitName})
	}
	return out, nil
}

// target finds the appointment behind a reference (an invitation's
// proposed appointment for "i…" references) for this person.
func (a portalBooking) target(ctx context.Context, p *auth.Principal, personID int64, r string) (booking.Appointment, int64, error) {
	if strings.HasPrefix(r, "i") {
		id, err := parseRef("i", r)
		if err != nil {
			return booking.Appointment{}, 0, err
		}
		invs, err := a.m.Invitations(ctx, p, personID, true)
		if err != nil {
			return booking.Appointment{}, 0, err
		}
		for _, in := range invs {
			if in.ID == id {
				return in.Appointment, id, nil
			}
		}
		return booking.Appointment{}, 0, web.E(web.NotFound, "")
	}
	id, err := parseRef("a", r)
	if err != nil {
		return booking.Appointment{}, 0, err
	}
	ap, err := a.m.Get(ctx, p, id)
	if errors.Is(err, booking.ErrForbidden) {
		// Another family's appointment: as unknown as a made-up id.
		return booking.Appointment{}, 0, web.E(web.NotFound, "")
	}
	if err != nil {
		return booking.Appointment{}, 0, err
	}
	if ap.PersonID != personID {
		return booking.Appointment{}, 0, web.E(web.NotFound, "")
	}
	return ap, 0, nil
}

func (a portalBooking) FreeSlots(ctx context.Context, tenantID, personID int64, r string, from, to time.Time) ([]portal.Slot, error) {
	p, err := principalIn(ctx)
	if err != nil {
		return nil, err
	}
	ap, _, err := a.target(ctx, p, personID, r)
	if err != nil {
		return nil, err
	}
	slots, err := a.m.FreeSlots(ctx, p, booking.SlotQuery{PersonID: personID, UnitID: ap.UnitID, TypeID: ap.TypeID, From: from, To: to, Moving: ap.ID, Limit: 60})
	if err != nil {
		return nil, err
	}
	out := make([]portal.Slot, len(slots))
	for i, sl := range slots {
		out[i] = portal.Slot{Ref: strconv.FormatInt(sl.Start.Unix(), 10), Start: sl.Start.In(booking.Loc), End: sl.End.In(booking.Loc), Place: ap.UnitName}
	}
	return out, nil
}

func slotStart(slotRef string) (time.Time, error) {
	n, err := strconv.ParseInt(slotRef, 10, 64)
	if err != nil {
		return time.Time{}, web.E(web.Invalid, "choose a time")
	}
	return time.Unix(n, 0), nil
}

func (a portalBooking) Rebook(ctx context.Context, p *auth.Principal, tenantID, personID int64, r, slotRef string) error {
	start, err := slotStart(slotRef)
	if err != nil {
		return err
	}
	ap, invID, err := a.target(ctx, p, personID, r)
	if err != nil {
		return err
	}
	if invID != 0 {
		_, err = a.m.ChangeInvitation(ctx, p, invID, start)
		return err
	}
	_, err = a.m.Move(ctx, p, ap.ID, booking.MoveRequest{Start: start, Reason: "flyttet af familien i portalen"})
	return err
}

func (a portalBooking) Cancel(ctx context.Context, p *auth.Principal, tenantID, personID int64, r, reason string) error {
	ap, _, err := a.target(ctx, p, personID, r)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "aflyst af familien i portalen"
	}
	return a.m.Cancel(ctx, p, ap.ID, reason)
}

func (a portalBooking) Accept(ctx context.Context, p *auth.Principal, tenantID, personID int64, r string) error {
	_, invID, err := a.target(ctx, p, personID, r)
	if err != nil {
		return err
	}
	if invID == 0 {
		return web.E(web.NotFound, "")
	}
	_, err = a.m.AcceptInvitation(ctx, p, invID)
	return err
}
