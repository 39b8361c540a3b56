package journal

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// Hit is one patient found by Search.
type Hit struct {
	Person
	// InCare: one of the user's units cares for the patient today (else
	// opening the record needs break-the-glass).
	InCare bool `json:"in_care"`
}

// Search finds children and young people under 22 of the municipality by
// CPR number (exact) or by name (every word, case-insensitive), at most
// 50. The search itself is audit-logged (without the query: it may be a
// CPR number).
func (s *Service) Search(ctx context.Context, p *auth.Principal, q string) ([]Hit, error) {
	if err := requirePerm(p, auth.PermJournalRead); err != nil {
		return nil, err
	}
	q = strings.TrimSpace(q)
	if !validText(q) {
		return nil, inputErr("text.invalid")
	}
	cpr, cprErr := auth.ParseCPR(q)
	if cprErr != nil && len([]rune(q)) < 2 {
		return nil, inputErr("search.short")
	}
	today := auth.DateIn(s.now(), auth.Copenhagen)
	ctx = auth.WithPrincipal(ctx, p)
	var hits []Hit
	err := postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		// Under 22 on today's date: the same interval arithmetic as
		// clinicChildren. PostgreSQL clamps 29 February minus 22 years to
		// 28 February, where Go's AddDate would roll over to 1 March and
		// drop 21-year-olds born on 1 March.
		where, args := "", []any{p.UserID, today, MaxAge}
		if cprErr == nil {
			where = "p.cpr = $4"
			args = append(args, cpr.Digits())
		} else {
			var conds []string
			for _, w := range strings.Fields(strings.ToLower(q)) {
				w = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(w)
				args = append(args, "%"+w+"%")
				conds = append(conds, fmt.Sprintf("lower(p.given_name || ' ' || p.family_name) LIKE $%d", len(args)))
			}
			where = strings.Join(conds, " AND ")
		}
		rows, err := tx.Query(ctx, `SELECT p.id, p.given_name, p.family_name, p.birth_date, COALESCE(p.cpr, ''), p.sex,
				EXISTS (SELECT 1 FROM auth.care_relation cr JOIN auth.user_unit uu ON uu.org_unit_id = cr.org_unit_id
				        WHERE uu.user_id = $1 AND cr.person_id = p.id AND cr.valid_from <= $2 AND (cr.valid_to IS NULL OR cr.valid_to >= $2))
			FROM auth.person p WHERE p.birth_date > $2::date - make_interval(years => $3::int) AND `+where+`
			ORDER BY p.family_name, p.given_name, p.id LIMIT 50`, args...)
		if err != nil {
			return dbErr("search", err)
		}
		defer rows.Close()
		for rows.Next() {
			var h Hit
			var given, family, digits string
			var birth *time.Time
			if err := rows.Scan(&h.ID, &given, &family, &birth, &digits, &h.Sex, &h.InCare); err != nil {
				return dbErr("search", err)
			}
			h.Name = strings.TrimSpace(given + " " + family)
			if birth != nil {
				h.BirthDate = *birth
			}
			// The CPR number is shown for the user's own patients, and when
			// it was what the user searched for; others are told apart by
			// name and birth date until the user breaks the glass.
			if c, err := auth.ParseCPR(digits); err == nil && (h.InCare || cprErr == nil) {
				h.CPR = c.Formatted()
			}
			hits = append(hits, h)
		}
		if err := rows.Err(); err != nil {
			return dbErr("search", err)
		}
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionSearch, Object: "journal.patient_search", Detail: map[string]any{"results": len(hits)}})
	})
	return hits, err
}

// child is a patient of a clinic as the clinic lists use it.
type child struct {
	Person
	digits string
}

// clinicChildren lists the persons under 22 that the clinic cares for on date.
func clinicChildren(ctx context.Context, tx pgx.Tx, clinicID int64, date time.Time) ([]child, error) {
	rows, err := tx.Query(ctx, `SELECT p.id, p.given_name, p.family_name, p.birth_date, COALESCE(p.cpr, ''), p.sex
		FROM auth.person p
		WHERE p.birth_date IS NOT NULL AND p.birth_date > $2::date - interval '22 years'
		  AND EXISTS (SELECT 1 FROM auth.care_relation cr WHERE cr.person_id = p.id AND cr.org_unit_id = $1
		              AND cr.valid_from <= $2 AND (cr.valid_to IS NULL OR cr.valid_to >= $2))
		ORDER BY p.birth_date, p.id`, clinicID, date)
	if err != nil {
		return nil, dbErr("clinic patients", err)
	}
	defer rows.Close()
	var out []child
	for rows.Next() {
		var c child
		var given, family string
		if err := rows.Scan(&c.ID, &given, &family, &c.BirthDate, &c.digits, &c.Sex); err != nil {
			return nil, dbErr("clinic patients", err)
		}
		c.Name = strings.TrimSpace(given + " " + family)
		if cpr, err := auth.ParseCPR(c.digits); err == nil {
			c.CPR = cpr.Formatted()
		}
		out = append(out, c)
	}
	return out, dbErr("clinic patients", rows.Err())
}

// clinicData loads the children of a clinic with their entries and risks.
type clinicData struct {
	children []child
	entries  map[int64][]Entry
	risk     map[int64]Risk
}

func loadClinic(ctx context.Context, tx pgx.Tx, clinicID int64, date time.Time) (*clinicData, error) {
	kids, err := clinicChildren(ctx, tx, clinicID, date)
	if err != nil {
		return nil, err
	}
	d := &clinicData{children: kids, entries: map[int64][]Entry{}, risk: map[int64]Risk{}}
	if len(kids) == 0 {
		return d, nil
	}
	ids := make([]int64, len(kids))
	for i, k := range kids {
		ids[i] = k.ID
	}
	all, err := loadEntries(ctx, tx, ids...)
	if err != nil {
		return nil, err
	}
	for _, e := range all {
		d.entries[e.PersonID] = append(d.entries[e.PersonID], e)
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT ON (person_id) person_id, COALESCE(risk, '') FROM journal.patient_profile
		WHERE person_id = ANY($1) ORDER BY person_id, recorded_at DESC, id DESC`, ids)
	if err != nil {
		return nil, dbErr("clinic risks", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var r string
		if err := rows.Scan(&id, &r); err != nil {
			return nil, dbErr("clinic risks", err)
		}
		d.risk[id] = Risk(r)
	}
	return d, dbErr("clinic risks", rows.Err())
}

// requireClinic refuses a clinic the user is not a member of.
func requireClinic(ctx context.Context, tx pgx.Tx, p *auth.Principal, clinicID int64) error {
	units, err := auth.UserUnits(ctx, tx, p.UserID)
	if err != nil {
		return err
	}
	if !slices.Contains(units, clinicID) {
		return fmt.Errorf("journal: clinic %d: %w", clinicID, ErrForbidden)
	}
	return nil
}

// Recall is one child due for an examination: what the booking module
// turns into an invitation.
type Recall struct {
	PersonID int64     `json:"person_id"`
	ClinicID int64     `json:"clinic_id"`
	DueDate  time.Time `json:"due_date"`
	LastExam time.Time `json:"last_exam,omitzero"`
	Basis    string    `json:"basis"` // milestone, interval, unassessed or examiner
	Overdue  bool      `json:"overdue"`
	Risk     Risk      `json:"risk,omitempty"`
}

// RecallRow is a Recall with the child's name and birth date for staff.
type RecallRow struct {
	Recall
	Person Person `json:"person"`
}

func (s *Service) recalls(ctx context.Context, tx pgx.Tx, clinicID int64, until time.Time) ([]RecallRow, error) {
	now := s.now()
	today := auth.DateIn(now, auth.Copenhagen)
	d, err := loadClinic(ctx, tx, clinicID, today)
	if err != nil {
		return nil, err
	}
	var out []RecallRow
	for _, c := range d.children {
		ri := s.recallOf(c.BirthDate, d.entries[c.ID], d.risk[c.ID], now)
		if ri.None || ri.Due.After(until) {
			continue
		}
		out = append(out, RecallRow{Recall: Recall{PersonID: c.ID, ClinicID: clinicID, DueDate: ri.Due, LastExam: ri.LastExam,
			Basis: ri.Basis, Overdue: ri.Overdue, Risk: d.risk[c.ID]}, Person: c.Person})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].DueDate.Before(out[j].DueDate) })
	return out, nil
}

// RecallDue lists the children a clinic cares for whose next examination
// is due on or before until (overdue ones included), earliest first. It is
// the Go API the booking module consumes (through its own interface, wired
// by cmd/molar) and runs as the system: the read is audit-logged per child
// under the context's actor, or "system:journal" when there is none.
func (s *Service) RecallDue(ctx context.Context, tenantID, clinicID int64, until time.Time) ([]Recall, error) {
	if _, ok := audit.ActorFrom(ctx); !ok {
		ctx = audit.WithActor(ctx, audit.Actor{Username: "system:journal", Role: "system", TenantID: tenantID})
	}
	var out []Recall
	err := postgres.InTenant(ctx, s.Pool, tenantID, func(tx pgx.Tx) error {
		rows, err := s.recalls(ctx, tx, clinicID, until)
		if err != nil {
			return err
		}
		for _, r := range rows {
			out = append(out, r.Recall)
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: r.PersonID, Object: fmt.Sprintf("journal.recall/%d", clinicID)}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// ClinicRecall is RecallDue for a member of the clinic, with names.
func (s *Service) ClinicRecall(ctx context.Context, p *auth.Principal, clinicID int64, until time.Time) ([]RecallRow, error) {
	if err := requirePerm(p, auth.PermJournalRead); err != nil {
		return nil, err
	}
	ctx = auth.WithPrincipal(ctx, p)
	var out []RecallRow
	err := postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		if err := requireClinic(ctx, tx, p, clinicID); err != nil {
			return err
		}
		var err error
		if out, err = s.recalls(ctx, tx, clinicID, until); err != nil {
			return err
		}
		for _, r := range out {
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: r.PersonID, Object: fmt.Sprintf("journal.recall/%d", clinicID)}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// WorklistItem is an X-ray without a description.
type WorklistItem struct {
	Person Person    `json:"person"`
	Link   ImageLink `json:"link"`
}

// XRayWorklist lists the X-rays of the clinic's patients that no current
// X-ray description covers (the law requires a description when an X-ray
// shows disease), oldest first: linked studies, and studies the DICOM index
// knows of.
func (s *Service) XRayWorklist(ctx context.Context, p *auth.Principal, clinicID int64) ([]WorklistItem, error) {
	if err := requirePerm(p, auth.PermJournalRead); err != nil {
		return nil, err
	}
	ctx = auth.WithPrincipal(ctx, p)
	today := auth.DateIn(s.now(), auth.Copenhagen)
	var out []WorklistItem
	err := postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		if err := requireClinic(ctx, tx, p, clinicID); err != nil {
			return err
		}
		kids, err := clinicChildren(ctx, tx, clinicID, today)
		if err != nil {
			return err
		}
		byID := map[int64]Person{}
		ids := make([]int64, 0, len(kids))
		for _, k := range kids {
			byID[k.ID] = k.Person
			ids = append(ids, k.ID)
		}
		links, err := loadLinks(ctx, tx, ids...)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, l := range links {
			if seen[l.StudyUID] {
				continue
			}
			seen[l.StudyUID] = true
			if !l.Described && xrayModalities[l.Modality] {
				out = append(out, WorklistItem{Person: byID[l.PersonID], Link: l})
			}
		}
		// Studies in the DICOM index without a link or description.
		described := map[string]bool{}
		if len(ids) > 0 {
			// Current versions only, as for links: a description corrected
			// to name another study no longer describes this one.
			rows, err := tx.Query(ctx, `SELECT e.body -> 'xray' ->> 'study_uid' FROM journal.entry e
				WHERE e.person_id = ANY($1) AND e.kind = 'xray_description'
				  AND NOT EXISTS (SELECT 1 FROM journal.entry n WHERE n.supersedes = e.id)`, ids)
			if err != nil {
				return dbErr("worklist", err)
			}
			uids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return dbErr("worklist", err)
			}
			for _, u := range uids {
				described[u] = true
			}
		}
		if _, none := s.images().(NoImages); !none {
			for _, k := range kids {
				imgs, err := s.images().ImagesForPerson(ctx, p.TenantID, k.ID)
				if err != nil {
					return fmt.Errorf("journal: worklist images: %w", err)
				}
				for _, im := range imgs {
					if seen[im.StudyUID] || described[im.StudyUID] || !xrayModalities[im.Modality] {
						continue
					}
					seen[im.StudyUID] = true
					out = append(out, WorklistItem{Person: k.Person, Link: ImageLink{PersonID: k.ID, StudyUID: im.StudyUID, SeriesUID: im.SeriesUID,
						InstanceUID: im.InstanceUID, Modality: im.Modality, LinkedAt: im.Taken}})
				}
			}
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Link.LinkedAt.Before(out[j].Link.LinkedAt) })
		for _, it := range out {
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: it.Person.ID, Object: fmt.Sprintf("journal.xray_worklist/%d", clinicID)}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// AgeGroup is an age range in whole years, inclusive.
type AgeGroup struct{ From, To int }

// Label is "3–5" or "12".
func (g AgeGroup) Label() string {
	if g.From == g.To {
		return fmt.Sprint(g.From)
	}
	return fmt.Sprintf("%d–%d", g.From, g.To)
}

// AgeGroups are the groups of the clinic totals.
var AgeGroups = []AgeGroup{{0, 2}, {3, 5}, {6, 8}, {9, 11}, {12, 14}, {15, 17}, {18, 21}}

// GroupTotal is the caries indices of one age group of a clinic.
type GroupTotal struct {
	Group      AgeGroup `json:"-"`
	Label      string   `json:"age_group"`
	Children   int      `json:"children"`
	Examined   int      `json:"examined"` // with a signed examination on or before the date
	CariesFree int      `json:"caries_free"`
	MeanDMFS   float64  `json:"mean_dmfs"`
	MeanDefs   float64  `json:"mean_defs"`
}

// ClinicIndices totals DMF-S and def-s of a clinic's patients per age
// group from the chart state at date at (signed entries only). Means are
// over the examined children.
func (s *Service) ClinicIndices(ctx context.Context, p *auth.Principal, clinicID int64, at time.Time) ([]GroupTotal, error) {
	if err := requirePerm(p, auth.PermJournalRead); err != nil {
		return nil, err
	}
	ctx = auth.WithPrincipal(ctx, p)
	date := auth.DateIn(at, auth.Copenhagen)
	// The end of that day in Denmark (date is the calendar date as UTC
	// midnight; its own end would run into the next Danish morning).
	end := time.Date(date.Year(), date.Month(), date.Day()+1, 0, 0, 0, 0, auth.Copenhagen).Add(-time.Nanosecond)
	out := make([]GroupTotal, len(AgeGroups))
	for i, g := range AgeGroups {
		out[i] = GroupTotal{Group: g, Label: g.Label()}
	}
	err := postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		if err := requireClinic(ctx, tx, p, clinicID); err != nil {
			return err
		}
		d, err := loadClinic(ctx, tx, clinicID, date)
		if err != nil {
			return err
		}
		sums := make([][2]int, len(out))
		for _, c := range d.children {
			age := ageYears(c.BirthDate, date)
			gi := slices.IndexFunc(AgeGroups, func(g AgeGroup) bool { return age >= g.From && age <= g.To })
			if gi < 0 {
				continue
			}
			out[gi].Children++
			examined := slices.ContainsFunc(d.entries[c.ID], func(e Entry) bool {
				return e.Kind == KindExamination && e.Current() && e.Signed() && !e.CareTime.After(end)
			})
			if !examined {
				continue
			}
			ix := ComputeIndices(BuildChart(c.BirthDate, d.entries[c.ID], nil, s.Catalogue, end, true))
			out[gi].Examined++
			if ix.CariesFree {
				out[gi].CariesFree++
			}
			sums[gi][0] += ix.DMFS
			sums[gi][1] += ix.DefS
		}
		for i := range out {
			if out[i].Examined > 0 {
				out[i].MeanDMFS = float64(sums[i][0]) / float64(out[i].Examined)
				out[i].MeanDefs = float64(sums[i][1]) / float64(out[i].Examined)
			}
		}
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, Object: fmt.Sprintf("journal.clinic_indices/%d", clinicID),
			Detail: map[string]any{"children": len(d.children), "date": date.Format(time.DateOnly)}})
	})
	return out, err
}
