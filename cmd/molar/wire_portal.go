package main

import (
	"context"

	"github.com/go-chi/chi/v5"
	"github.com/riverqueue/river"

	"github.com/molar-health/molar/journal/portal"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// portalPart wires the parent portal (journal/portal). The journal and the
// booking module reach it through portal.Journal and portal.Booking,
// adapted in wire_journal.go and wire_booking.go (s.portalJournal,
// s.portalBooking).
func portalPart(s *server) corePart {
	p := corePart{name: "portal", sources: []postgres.Source{portal.Migrations()}, static: portal.Static()}
	if s == nil {
		return p
	}
	pt := &portal.Portal{Pool: s.db.pool, Log: s.log}
	p.prepare = func(ctx context.Context, _ *river.Workers) error {
		pt.Shell, pt.Auth = s.shell, s.auth
		pt.Journal, pt.Booking = s.portalJournal, s.portalBooking
		s.shell.Catalog.Add(portal.Messages())
		s.shell.AddNav(web.NavItem{Label: "portal.nav", Path: "/portal/", Permission: "portal.use", Order: 10})
		s.shell.AddNav(web.NavItem{Label: "portal.clinic.title", Path: "/portal/clinic/", Permission: "journal.read", Order: 60})
		return s.shell.AddPagesWith(portal.Templates(), "*.html", "*.tmpl")
	}
	p.routes = func(r chi.Router) {
		pt.Auth = s.auth
		pt.Routes(r)
	}
	return p
}
