package main

import (
	"bytes"
	"context"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/riverqueue/river"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer"
	"github.com/molar-health/molar/viewer/web"
)

// viewerPart wires the dentist's web viewer (viewer/): pages and the JSON
// API under /viewer, its static JavaScript and CSS, the "viewer" schema
// (mount templates, mounts, image state) and the demo children's images.
func viewerPart(s *server) corePart {
	p := corePart{name: "viewer", sources: []postgres.Source{viewer.Migrations()}, static: viewer.Static()}
	if s == nil {
		return p
	}
	// Thumbnails come from DICOMweb (dicom/thumb, rendered on the fly until
	// the thumbnail job has run).
	v := &viewer.Viewer{Pool: s.db.pool, Store: s.store, Log: s.log, AETitle: s.cfg.AETitle, ClientTLS: s.clientTLS, Thumbnails: true}
	p.prepare = func(ctx context.Context, _ *river.Workers) error {
		v.Shell, v.Auth = s.shell, s.auth
		auth.RegisterPermissions(auth.RoleClinicAdmin, viewer.PermTemplates)
		auth.RegisterPermissions(auth.RoleSystemAdmin, viewer.PermTemplates)
		s.shell.Catalog.Add(viewer.Messages())
		s.shell.AddNav(web.NavItem{Label: "viewer.nav", Path: "/viewer/", Permission: auth.PermDICOMRead, Order: 20})
		s.shell.AddNav(web.NavItem{Label: "viewer.templates.title", Path: "/viewer/admin/templates", Permission: viewer.PermTemplates, Order: 80})
		return s.shell.AddPagesWith(viewer.Pages(), "*.html", "*.tmpl")
	}
	p.routes = func(r chi.Router) {
		v.Auth = s.auth
		v.Routes(r)
	}
	p.demo = func(ctx context.Context, d modules.Demo) error {
		in := s.ingester
		if in == nil {
			in = newIngester(s)
		}
		// The oldest children first: they have the permanent teeth of a
		// full-mouth series (the demo's children are listed youngest first).
		children := make([]int64, len(d.Children))
		for i, c := range d.Children {
			children[len(d.Children)-1-i] = c.PersonID
		}
		store := func(ctx context.Context, src ingest.Source, file []byte) (ingest.Result, error) {
			return in.Ingest(ctx, src, bytes.NewReader(file))
		}
		return viewer.SeedDemo(ctx, s.db.pool, d.TenantID, children, store, time.Now())
	}
	return p
}
