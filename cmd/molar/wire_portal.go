package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/pixel"
	"github.com/molar-health/molar/dicom/thumb"

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
	pt := &portal.Portal{Pool: s.db.pool, Log: s.log, Images: portalImages{s}, ShowImages: s.cfg.PortalXRays}
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

// portalImages serves the portal's X-ray thumbnails from the DICOM index
// and the thumbnail store. A reference is an instance id that must belong
// to the child: any other id is not found.
type portalImages struct{ s *server }

var _ portal.Images = portalImages{}

func (x portalImages) Images(ctx context.Context, tenantID, personID int64) ([]portal.Image, error) {
	var out []portal.Image
	err := postgres.InTenant(ctx, x.s.db.pool, tenantID, func(tx pgx.Tx) error {
		studies, err := index.StudiesOfPerson(ctx, tx, personID)
		if err != nil {
			return err
		}
		for _, st := range studies {
			ins, err := index.InstancesOfStudy(ctx, tx, st.StudyInstanceUID)
			if err != nil {
				return err
			}
			for _, in := range ins {
				if in.Rows == 0 || in.PersonID != personID {
					continue
				}
				kind := "OT"
				if len(st.Modalities) > 0 {
					kind = st.Modalities[0]
				}
				taken := st.StudyDate
				if taken.IsZero() {
					taken = in.Created
				}
				out = append(out, portal.Image{Ref: strconv.FormatInt(in.ID, 10), Taken: taken, Kind: kind})
			}
		}
		return nil
	})
	return out, err
}

func (x portalImages) Thumbnail(ctx context.Context, tenantID, personID int64, ref string, w io.Writer) error {
	id, err := strconv.ParseInt(ref, 10, 64)
	if err != nil {
		return portal.ErrNoChild
	}
	var in index.Instance
	err = postgres.InTenant(ctx, x.s.db.pool, tenantID, func(tx pgx.Tx) error {
		ins, err := index.InstancesByIDs(ctx, tx, []int64{id})
		if err != nil {
			return err
		}
		if len(ins) != 1 || ins[0].PersonID != personID || ins[0].Rows == 0 {
			return portal.ErrNoChild
		}
		in = ins[0]
		return nil
	})
	if err != nil {
		return err
	}
	rc, _, err := thumb.Ensure(ctx, x.s.store, in.ObjectKey, 512, pixel.Options{})
	var failed *thumb.FailedError
	switch {
	case errors.As(err, &failed):
		// Not decoded again on every view: the portal has no image for it.
		return portal.ErrNoChild
	case err != nil:
		return fmt.Errorf("portal: thumbnail: %w", err)
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}
