package main

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/molar-health/molar/auth"
	staffadmin "github.com/molar-health/molar/auth/admin"
	"github.com/molar-health/molar/viewer/web"
)

// staffPart wires the staff administration screen (auth/admin): the
// municipality's units and who works in them, changed by clinic
// administrators for their own units and by system administrators for
// all, every change audited.
func staffPart(s *server) corePart {
	p := corePart{name: "staff"}
	if s == nil {
		return p
	}
	h := &staffadmin.Handler{Pool: s.db.pool}
	if s.cfg.OIDCIssuer != "" {
		units, _ := parsePairs(s.cfg.OIDCUnitMap, "group=unit name")
		for _, name := range units {
			h.DirectoryUnits = append(h.DirectoryUnits, name)
		}
	}
	p.prepare = func(ctx context.Context, workers *river.Workers) error {
		h.Shell = s.shell
		s.shell.Catalog.Add(staffadmin.Messages())
		s.shell.AddNav(web.NavItem{Label: "staffadmin.nav", Path: "/admin/staff/", Permission: auth.PermAdminUsers, Order: 94})
		return s.shell.AddPages(staffadmin.Pages(), "*.html")
	}
	p.routes = h.Routes
	return p
}
