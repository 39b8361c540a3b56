package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/journal"
	"github.com/molar-health/molar/journal/portal"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// journalPart wires the dental journal (journal/): its schema, pages,
// messages and stylesheet, the navigation entry, the HTML pages under
// /journal and the JSON API under /api/journal, its demo data, and its
// seams:
//   - the parent portal gets portal.Journal (s.portalJournal), adapted from
//     (*journal.Service).FamilyRecord and ParentInformation;
//   - booking consumes (*journal.Service).RecallDue(ctx, tenantID, clinicID, until)
//     through an interface of its own, adapted in wire_booking.go;
//   - the DICOM index provides journal.Images (indexImages).
func journalPart(s *server) corePart {
	part := corePart{name: "journal", sources: []postgres.Source{journal.Migrations()}, static: journal.Static()}
	if s == nil {
		return part
	}
	var svc *journal.Service
	var h *journal.Handler
	part.prepare = func(ctx context.Context, workers *river.Workers) error {
		var err error
		if svc, err = journal.New(s.db.pool); err != nil {
			return err
		}
		svc.Logger = s.log
		svc.Images = indexImages{pool: s.db.pool}
		s.shell.Catalog.Add(journal.Messages())
		fsys, pattern := journal.Pages()
		if err := s.shell.AddPages(fsys, pattern); err != nil {
			return fmt.Errorf("journal pages: %w", err)
		}
		s.shell.AddNav(web.NavItem{Label: "journal.nav", Path: "/journal/", Permission: auth.PermJournalRead, Order: 10})
		h = &journal.Handler{Svc: svc, Shell: s.shell}
		s.portalJournal = portalJournal{svc: svc, cat: s.shell.Catalog}
		return nil
	}
	part.routes = func(r chi.Router) { h.Routes(r) }
	part.demo = func(ctx context.Context, d modules.Demo) error {
		if svc == nil {
			return nil
		}
		var kids, youths []int64
		for _, c := range d.Children {
			kids = append(kids, c.PersonID)
		}
		for _, c := range d.Youths {
			youths = append(youths, c.PersonID)
		}
		return svc.SeedDemo(ctx, d.TenantID, kids, youths)
	}
	return part
}

// portalJournal adapts the journal to the parent portal. The portal calls
// it inside a citizen's request: the principal in the context is the
// parent (or young person), and the journal checks custody and age again
// and audit-logs the read.
type portalJournal struct {
	svc *journal.Service
	cat *web.Catalog
}

func (a portalJournal) principal(ctx context.Context, tenantID int64) (*auth.Principal, error) {
	p := auth.PrincipalFrom(ctx)
	if p == nil || p.TenantID != tenantID {
		return nil, fmt.Errorf("journal: portal: %w", auth.ErrForbidden)
	}
	return p, nil
}

func (a portalJournal) Record(ctx context.Context, tenantID, personID int64) (portal.Record, error) {
	p, err := a.principal(ctx, tenantID)
	if err != nil {
		return portal.Record{}, err
	}
	fr, err := a.svc.FamilyRecord(ctx, p, personID, "da")
	if err != nil {
		return portal.Record{}, err
	}
	rec := portal.Record{LastExam: fr.LastExam, NextExam: fr.NextExam, NextCallIn: fr.NextExam, Findings: fr.Findings,
		PlanDone: fr.PlanDone, PlanTotal: fr.PlanTotal, Health: fr.Health}
	for _, e := range fr.Entries {
		author := e.Author
		rec.Entries = append(rec.Entries, portal.Entry{Date: e.Date, Title: e.Title, Text: strings.Join(e.Lines, "\n"), Author: author})
	}
	return rec, nil
}

func (a portalJournal) ParentInformation(ctx context.Context, tenantID, personID int64, byUserID int64, kind, text string) error {
	p, err := a.principal(ctx, tenantID)
	if err != nil {
		return err
	}
	if p.UserID != byUserID {
		return fmt.Errorf("journal: portal: %w", auth.ErrForbidden)
	}
	_, err = a.svc.ParentInformation(ctx, p, personID, kind, text)
	return err
}

var _ portal.Journal = portalJournal{}

// journalRecalls adapts (*journal.Service).RecallDue to the booking
// module's RecallSource. wire_booking.go can set
// booking.Module.Recalls = journalRecallSource(s).
type journalRecalls struct{ svc *journal.Service }

// journalRecallSource returns the journal's recall list for the booking
// module (a service of its own on the server's pool: it holds no state).
func journalRecallSource(s *server) booking.RecallSource {
	svc, err := journal.New(s.db.pool)
	if err != nil {
		s.log.Error("journal recall source", "err", err)
		return booking.NoRecalls{}
	}
	svc.Logger = s.log
	return journalRecalls{svc: svc}
}

func (j journalRecalls) Due(ctx context.Context, tenantID, clinicID int64, until time.Time) ([]booking.Due, error) {
	rs, err := j.svc.RecallDue(ctx, tenantID, clinicID, until)
	if err != nil {
		return nil, err
	}
	out := make([]booking.Due, len(rs))
	for i, r := range rs {
		out[i] = booking.Due{PersonID: r.PersonID, DueDate: r.DueDate, Reason: "recall"}
	}
	return out, nil
}

var _ booking.RecallSource = journalRecalls{}

// indexImages serves journal.Images from the DICOM index: a person's
// reconciled studies and the instances showing a tooth, with thumbnail and
// viewer links. The journal has already checked access and audits the read.
type indexImages struct{ pool *pgxpool.Pool }

var _ journal.Images = indexImages{}

func thumbURL(in index.Instance) string {
	return fmt.Sprintf("/dicomweb/studies/%s/series/%s/instances/%s/thumbnail", in.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID)
}

func (x indexImages) ImagesForPerson(ctx context.Context, tenantID, personID int64) ([]journal.Image, error) {
	var out []journal.Image
	err := postgres.InTenant(ctx, x.pool, tenantID, func(tx pgx.Tx) error {
		studies, err := index.StudiesOfPerson(ctx, tx, personID)
		if err != nil {
			return err
		}
		for _, st := range studies {
			img := journal.Image{StudyUID: st.StudyInstanceUID, Taken: st.StudyDate,
				ViewerURL:    fmt.Sprintf("/viewer/p/%d/studies/%s", personID, st.StudyInstanceUID),
				ThumbnailURL: fmt.Sprintf("/dicomweb/studies/%s/thumbnail", st.StudyInstanceUID)}
			if len(st.Modalities) > 0 {
				img.Modality = st.Modalities[0]
			}
			out = append(out, img)
		}
		return nil
	})
	return out, err
}

var _ journal.ImageChecker = indexImages{}

// CheckImageOf refuses a journal link to a study, series or instance the
// index holds for another person (or unmatched), or a series or instance
// outside the study. UIDs the index does not hold yet pass.
func (x indexImages) CheckImageOf(ctx context.Context, tenantID, personID int64, studyUID, seriesUID, instanceUID string) error {
	mismatch := fmt.Errorf("journal: image of another person or study: %w", journal.ErrNotFound)
	return postgres.InTenant(ctx, x.pool, tenantID, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, studyUID)
		switch {
		case errors.Is(err, index.ErrNotFound):
			st = index.Study{}
		case err != nil:
			return err
		case st.PersonID != personID:
			return mismatch
		}
		if seriesUID != "" {
			se, err := index.GetSeries(ctx, tx, seriesUID)
			switch {
			case errors.Is(err, index.ErrNotFound):
			case err != nil:
				return err
			case se.StudyRef != st.ID:
				return mismatch
			}
		}
		if instanceUID != "" {
			in, err := index.GetInstance(ctx, tx, instanceUID)
			switch {
			case errors.Is(err, index.ErrNotFound):
			case err != nil:
				return err
			case in.StudyInstanceUID != studyUID || seriesUID != "" && in.SeriesInstanceUID != seriesUID || in.PersonID != personID:
				return mismatch
			}
		}
		return nil
	})
}

func (x indexImages) ImagesForTooth(ctx context.Context, tenantID, personID int64, tooth journal.Tooth) ([]journal.Image, error) {
	var out []journal.Image
	err := postgres.InTenant(ctx, x.pool, tenantID, func(tx pgx.Tx) error {
		ins, err := index.InstancesWithTooth(ctx, tx, personID, strconv.Itoa(int(tooth)))
		if err != nil {
			return err
		}
		for _, in := range ins {
			img := journal.Image{StudyUID: in.StudyInstanceUID, SeriesUID: in.SeriesInstanceUID, InstanceUID: in.SOPInstanceUID,
				Taken: in.Created, ThumbnailURL: thumbURL(in),
				ViewerURL: fmt.Sprintf("/viewer/p/%d/studies/%s?i=%s", personID, in.StudyInstanceUID, in.SOPInstanceUID)}
			for _, c := range in.ToothCodes {
				if n, err := strconv.Atoi(c); err == nil {
					img.Teeth = append(img.Teeth, journal.Tooth(n))
				}
			}
			out = append(out, img)
		}
		return nil
	})
	return out, err
}
