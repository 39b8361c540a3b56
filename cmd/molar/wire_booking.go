package main

import (
	"context"
	"sync"

	"github.com/riverqueue/river"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/worklist"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/modules/booking"
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
		Recalls:  nil, // the journal's recall list, once journal/ provides RecallDue
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
