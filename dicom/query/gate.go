package query

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/dicom/dimse"
)

// Gate decides which persons' images an association may see. It returns
// nil when the association sees every match of its municipality (an AE,
// identified by title and address), else a function that tells, per person
// (0: a study not yet matched to anyone), whether the account that signed
// the association in may reach them: matches of others are left out of
// C-FIND answers and C-MOVE/C-GET sub-operations, as QIDO-RS leaves them
// out for a web user (their existence is not revealed).
type Gate func(ctx context.Context, tx pgx.Tx, a *dimse.AssociationInfo) (func(personID int64) (bool, error), error)

// matchRef is what gating a match needs.
type matchRef struct{ patient, study int64 }

func refOf(m *Match) matchRef { return matchRef{patient: m.PatientRef, study: m.StudyRef} }

// gate returns which of refs the association may see (nil: all).
func (s *Service) gate(ctx context.Context, tx pgx.Tx, a *dimse.AssociationInfo, refs []matchRef) ([]bool, error) {
	if s.Gate == nil || len(refs) == 0 {
		return nil, nil
	}
	allow, err := s.Gate(ctx, tx, a)
	if err != nil || allow == nil {
		return nil, err
	}
	// The persons of the studies (and, for PATIENT level matches, of the
	// patients) matched, one query per table.
	persons := map[matchRef]int64{}
	var studies, patients []int64
	for _, r := range refs {
		if r.study != 0 {
			studies = append(studies, r.study)
		} else if r.patient != 0 {
			patients = append(patients, r.patient)
		}
	}
	for _, t := range []struct {
		table string
		ids   []int64
		ref   func(id int64) matchRef
	}{
		{"study", studies, func(id int64) matchRef { return matchRef{study: id} }},
		{"patient", patients, func(id int64) matchRef { return matchRef{patient: id} }},
	} {
		if len(t.ids) == 0 {
			continue
		}
		rows, err := tx.Query(ctx, `SELECT id, coalesce(person_id, 0) FROM dicom.`+t.table+` WHERE id = ANY($1)`, t.ids)
		if err != nil {
			return nil, fmt.Errorf("query: gate: %w", err)
		}
		var id, person int64
		_, err = pgx.ForEachRow(rows, []any{&id, &person}, func() error {
			persons[t.ref(id)] = person
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("query: gate: %w", err)
		}
	}
	decided := map[int64]bool{}
	keep := make([]bool, len(refs))
	for i, r := range refs {
		key := matchRef{study: r.study}
		if r.study == 0 {
			key = matchRef{patient: r.patient}
		}
		person := persons[key]
		ok, seen := decided[person]
		if !seen {
			if ok, err = allow(person); err != nil {
				return nil, err
			}
			decided[person] = ok
		}
		keep[i] = ok
	}
	return keep, nil
}

// visible returns the indices of the matches the association may see (in
// order) and adds them to refs, the audit's list of what was read.
func (s *Service) visible(ctx context.Context, tx pgx.Tx, a *dimse.AssociationInfo, matched []matchRef, refs *readRefs) ([]int, error) {
	keep, err := s.gate(ctx, tx, a, matched)
	if err != nil {
		return nil, err
	}
	var out []int
	for i, m := range matched {
		if keep == nil || keep[i] {
			out = append(out, i)
			refs.add(&Match{PatientRef: m.patient, StudyRef: m.study})
		}
	}
	return out, nil
}

// pick keeps the elements of v at the indices idx (ascending), in place.
func pick[T any](v []T, idx []int) []T {
	out := v[:0]
	for _, i := range idx {
		out = append(out, v[i])
	}
	return out
}
