package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/deletion"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/transfer"
	"github.com/molar-health/molar/journal"
	"github.com/molar-health/molar/storage/postgres"
)

// exportPart wires import and export on the web (dicom/transfer): study
// download as ZIP, send to a remote AE, upload, and deletion guarded by the
// journal's retention rule. It registers dicom.delete for clinic and
// system administrators.
func exportPart(s *server) corePart {
	p := corePart{name: "export"}
	if s == nil {
		return p
	}
	for _, role := range transfer.DeleteRoles {
		auth.RegisterPermissions(role, transfer.PermDelete)
	}
	p.routes = func(r chi.Router) {
		h := &transfer.Handler{Pool: s.db.pool, Store: s.store, Auth: s.auth, Ingest: largeIngester{s}, CallingAE: s.cfg.AETitle, ClientTLS: s.clientTLS, Log: s.log,
			Deleter: &deletion.Deleter{DB: s.db.pool, Store: s.store, Guard: journalGuard{s}, Log: s.log}}
		h.Routes(r)
	}
	return p
}

// largeIngester is the server's ingester with room for large single values
// (an intraoral scan as Encapsulated STL is often over 16 MiB).
type largeIngester struct{ s *server }

func (l largeIngester) Ingest(ctx context.Context, src ingest.Source, r io.Reader) (ingest.Result, error) {
	if l.s.ingester == nil {
		return ingest.Result{}, errNoIngester
	}
	in := *l.s.ingester
	in.MaxValueLength, in.MaxHeaderBytes = 1<<30, 2<<30
	return in.Ingest(ctx, src, r)
}

// journalGuard adapts the journal's retention rule to the deletion guard:
// a study the journal refers to is kept until 10 years after the last
// journal entry of its person.
type journalGuard struct{ s *server }

func (g journalGuard) Blocked(ctx context.Context, tenantID int64, studyUID string) (string, bool, error) {
	var until time.Time
	var held bool
	err := postgres.InTenant(ctx, g.s.db.pool, tenantID, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, studyUID)
		if errors.Is(err, index.ErrNotFound) {
			return nil // the deletion reports it
		}
		if err != nil {
			return err
		}
		until, held, err = journal.RetentionHold(ctx, tx, st.PersonID, studyUID, time.Now())
		return err
	})
	if err != nil || !held {
		return "", false, err
	}
	return fmt.Sprintf("journalen henviser til billederne; de skal opbevares til %s (%d år efter sidste journalnotat)",
		until.Format("02-01-2006"), journal.RetentionYears), true, nil
}
