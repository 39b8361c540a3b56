package booking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/worklist"
	"github.com/molar-health/molar/storage/postgres"
)

// Worklist serves the DICOM Modality Worklist from imaging appointments:
// every proposed or booked appointment of an imaging type is one scheduled
// procedure step; moving it changes the step, cancelling removes it.
type Worklist struct{ M *Module }

// WorklistSource returns the module's worklist.Source.
func (m *Module) WorklistSource() worklist.Source { return Worklist{m} }

// Items implements worklist.Source, across all tenants.
func (w Worklist) Items(ctx context.Context, q worklist.Query) ([]worklist.Item, error) {
	m := w.M
	rows, err := m.Pool.Query(ctx, `SELECT booking.tenants()`)
	if err != nil {
		return nil, fmt.Errorf("booking: worklist: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("booking: worklist: %w", err)
	}
	var out []worklist.Item
	for _, t := range tenants {
		items, err := m.worklistOf(ctx, t, q)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	slices.SortFunc(out, func(a, b worklist.Item) int { return a.ScheduledStart.Compare(b.ScheduledStart) })
	return out, nil
}

func (m *Module) worklistOf(ctx context.Context, tenantID int64, q worklist.Query) ([]worklist.Item, error) {
	var out []worklist.Item
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		personID := int64(0)
		if q.PatientID != "" {
			cpr, err := auth.ParseCPR(q.PatientID)
			if err != nil {
				return nil // not a CPR number: no patient of ours
			}
			p, err := auth.FindPersonByCPR(ctx, tx, cpr)
			if errors.Is(err, auth.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			personID = p.ID
		}
		var from, to any
		if !q.From.IsZero() {
			from = q.From
		}
		if !q.To.IsZero() {
			to = q.To
		}
		as, err := queryAppts(ctx, tx, `WHERE t.imaging AND a.status IN ('proposed', 'booked')
			AND ($1 = '' OR upper(t.station_ae) = upper($1))
			AND ($2 = '' OR t.modality = $2)
			AND ($3::timestamptz IS NULL OR lower(a.during) >= $3)
			AND ($4::timestamptz IS NULL OR lower(a.during) < $4)
			AND ($5 = 0 OR a.person_id = $5)
			AND ($6 = '' OR a.accession_number = $6)
			ORDER BY lower(a.during), a.id`,
			strings.TrimSpace(q.StationAETitle), strings.TrimSpace(q.Modality), from, to, personID, strings.TrimSpace(q.AccessionNumber))
		if err != nil {
			return err
		}
		if len(as) == 0 {
			return nil
		}
		res, err := m.decorate(ctx, tx, tenantID, as)
		if err != nil {
			return err
		}
		typesByID := map[int64]Type{}
		persons := map[int64]auth.Person{}
		for _, a := range as {
			typ, ok := typesByID[a.TypeID]
			if !ok {
				if typ, err = typeByID(ctx, tx, a.TypeID); err != nil {
					return err
				}
				typesByID[a.TypeID] = typ
			}
			p, ok := persons[a.PersonID]
			if !ok {
				if p, err = auth.GetPerson(ctx, tx, a.PersonID); err != nil {
					return err
				}
				persons[a.PersonID] = p
			}
			out = append(out, itemOf(tenantID, a, typ, p, res))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("booking: worklist: %w", err)
	}
	return out, nil
}

func itemOf(tenantID int64, a Appointment, typ Type, p auth.Person, res map[int64]Resource) worklist.Item {
	it := worklist.Item{
		TenantID:                      tenantID,
		PersonID:                      p.ID,
		PatientID:                     p.CPR.Digits(),
		PatientFamily:                 p.FamilyName,
		PatientGiven:                  p.GivenName,
		PatientBirthDate:              p.BirthDate,
		PatientSex:                    dicomSex(p.Sex),
		AccessionNumber:               a.AccessionNumber,
		RequestedProcedureID:          a.AccessionNumber,
		RequestedProcedureDescription: typ.ProcedureDescription,
		StudyInstanceUID:              a.StudyUID,
		ScheduledStepID:               fmt.Sprintf("SPS%d", a.ID),
		ScheduledStationAETitle:       typ.StationAE,
		ScheduledStart:                a.Start.In(Loc),
		Modality:                      typ.Modality,
		ScheduledStepDescription:      typ.ProcedureDescription,
	}
	if it.ScheduledStepDescription == "" {
		it.ScheduledStepDescription = typ.Name
	}
	var rooms []string
	for _, id := range a.ResourceIDs {
		r := res[id]
		switch r.Kind {
		case KindStaff:
			if it.PerformingPhysician == "" {
				it.PerformingPhysician = r.Name
			}
		default:
			rooms = append(rooms, r.Name)
			if r.StationAE != "" && it.ScheduledStationName == "" {
				it.ScheduledStationName = r.Name
			}
		}
	}
	it.Location = strings.Join(rooms, ", ")
	return it
}

func dicomSex(s string) string {
	switch s {
	case auth.SexMale:
		return "M"
	case auth.SexFemale:
		return "F"
	}
	return "O"
}
