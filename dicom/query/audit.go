package query

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/dimse"
)

// DIMSE reads are audited like the web's (Health Act §42a: every lookup
// of a person's health data): the calling AE of the association is the
// actor (with the account that signed the association in, when one did),
// each study answered (its person) an event, written and committed before
// anything is sent.

// signedIn is what an association's policy value tells of the account that
// signed it in (scp.Caller).
type signedIn interface{ Account() int64 }

// dimseActor puts the association's calling AE (and account), in
// municipality tenant, into ctx as the audit actor.
func dimseActor(ctx context.Context, a *dimse.AssociationInfo, tenant int64) context.Context {
	act := audit.Actor{Username: "dicom:", Role: "dicom", TenantID: tenant}
	if a != nil {
		act.Username += a.CallingAE
		if a.RemoteAddr != nil {
			act.SourceAddr = a.RemoteAddr.String()
		}
		if s, ok := a.Value.(signedIn); ok {
			act.UserID = s.Account()
		}
	}
	return audit.WithActor(ctx, act)
}

// readRefs collects what the audit of a set of matches needs: the studies
// answered with, and the patients of PATIENT level matches (no study).
type readRefs struct {
	n                 int
	studies, patients []int64
	seen              map[int64]bool // study ids, and patient ids negated
}

func (r *readRefs) add(m *Match) {
	if r.seen == nil {
		r.seen = map[int64]bool{}
	}
	r.n++
	switch {
	case m.StudyRef != 0 && !r.seen[m.StudyRef]:
		r.seen[m.StudyRef] = true
		r.studies = append(r.studies, m.StudyRef)
	case m.StudyRef == 0 && m.PatientRef != 0 && !r.seen[-m.PatientRef]:
		r.seen[-m.PatientRef] = true
		r.patients = append(r.patients, m.PatientRef)
	}
}

// auditMatches writes one event per study (per patient for PATIENT level
// matches) of the matches, each with its person, plus one search event for
// a C-FIND (search true).
func auditMatches(ctx context.Context, tx pgx.Tx, refs readRefs, action audit.Action, detail map[string]any, search bool) error {
	studies, patients := refs.studies, refs.patients
	for _, t := range []struct {
		table string
		ids   []int64
	}{{"study", studies}, {"patient", patients}} {
		if len(t.ids) == 0 {
			continue
		}
		rows, err := tx.Query(ctx, `SELECT id, coalesce(person_id, 0) FROM dicom.`+t.table+` WHERE id = ANY($1) ORDER BY id`, t.ids)
		if err != nil {
			return fmt.Errorf("query: audit: %w", err)
		}
		type ref struct{ id, person int64 }
		refs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ref, error) {
			var x ref
			err := r.Scan(&x.id, &x.person)
			return x, err
		})
		if err != nil {
			return fmt.Errorf("query: audit: %w", err)
		}
		for _, x := range refs {
			if err := audit.Record(ctx, tx, audit.Event{Action: action, PersonID: x.person,
				Object: fmt.Sprintf("dicom.%s/%d", t.table, x.id), Detail: detail}); err != nil {
				return err
			}
		}
	}
	if !search {
		return nil
	}
	return audit.Record(ctx, tx, audit.Event{Action: audit.ActionSearch, Object: fmt.Sprintf("dicom.cfind/%d", refs.n), Detail: detail})
}
