package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// DemoDentist is the demo account that authors the demo entries.
const DemoDentist = "tandlaege"

// DemoSkip lists the demo children (by index) left without journal
// entries, so that a fresh record can be shown (and tested) too. The first
// child, whose parent is the demo parent login, has a record.
var DemoSkip = map[int]bool{2: true, 4: true, 7: true, 9: true, 12: true, 13: true, 15: true, 18: true}

// SeedDemo gives the demo children (and young people) examinations with
// findings, some signed treatment plans and performed treatments, a
// profile, and an X-ray without a description, so that the chart, the
// plan, the recall list, the worklist and the statistics have something to
// show. Children who already have entries are left alone (idempotent).
// The entries are written by the demo dentist; the audit rows name the
// actor "system:demo".
func (s *Service) SeedDemo(ctx context.Context, tenantID int64, children, youths []int64) error {
	u, err := auth.UserByUsername(ctx, s.Pool, DemoDentist)
	if errors.Is(err, auth.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: demo: %w", err)
	}
	p := &auth.Principal{UserID: u.ID, TenantID: tenantID, Username: u.Username, DisplayName: u.DisplayName, Role: u.Role}
	if _, ok := audit.ActorFrom(ctx); !ok {
		ctx = audit.WithActor(ctx, audit.Actor{Username: "system:demo", Role: "system", TenantID: tenantID})
	}
	now := s.now()
	type person struct {
		id    int64
		index int
		youth bool
	}
	var all []person
	for i, id := range children {
		if !DemoSkip[i] {
			all = append(all, person{id, i, false})
		}
	}
	for i, id := range youths {
		all = append(all, person{id, i, true})
	}
	for _, pp := range all {
		var has bool
		var birth *time.Time
		err := postgres.InTenant(ctx, s.Pool, tenantID, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM journal.entry WHERE person_id = $1)`, pp.id).Scan(&has); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT birth_date FROM auth.person WHERE id = $1`, pp.id).Scan(&birth)
		})
		if err != nil {
			return fmt.Errorf("journal: demo: %w", err)
		}
		if has || birth == nil {
			continue
		}
		if err := s.seedOne(ctx, p, pp.id, pp.index, pp.youth, *birth, now); err != nil {
			return fmt.Errorf("journal: demo person %d: %w", pp.id, err)
		}
	}
	return nil
}

func (s *Service) seedOne(ctx context.Context, p *auth.Principal, id int64, i int, youth bool, birth, now time.Time) error {
	age := ageYears(birth, now)
	// The examination: about 5 to 11 months ago, never before 8 months of age.
	when := now.AddDate(0, -5-i%7, -i).Truncate(time.Hour).Add(9 * time.Hour)
	if min8 := addMonths(birth, 8); when.Before(min8) {
		when = min8.Add(10 * time.Hour)
		if when.After(now) {
			return nil
		}
	}
	ageThen := ageYears(birth, when)
	var findings []Finding
	var plan []Treatment
	risk := RiskLow
	switch {
	case ageThen < 3:
		findings = []Finding{{Tooth: 51, Condition: CondSound}, {Tooth: 61, Condition: CondSound}}
		if ageThen >= 2 {
			findings = append(findings, Finding{Tooth: 54, Condition: CondErupting})
		}
	case ageThen < 6:
		findings = []Finding{{Tooth: 55, Surfaces: "O", Condition: CondSealant}}
		if i%2 == 1 {
			findings = append(findings, Finding{Tooth: 74, Surfaces: "DO", Condition: CondCaries, Depth: "dentin"})
			plan = append(plan, Treatment{Tooth: 74, Surfaces: "DO", Procedure: "FYLD"})
			risk = RiskMedium
		}
	case ageThen < 12:
		findings = []Finding{{Tooth: 16, Surfaces: "O", Condition: CondSealant}, {Tooth: 26, Surfaces: "O", Condition: CondSealant}}
		if i%3 == 0 {
			findings = append(findings, Finding{Tooth: 36, Surfaces: "O", Condition: CondCaries, Depth: "enamel"},
				Finding{Tooth: 85, Surfaces: "MO", Condition: CondFilling, Material: "glass_ionomer"})
			plan = append(plan, Treatment{Tooth: 36, Surfaces: "O", Procedure: "FYLD"}, Treatment{Procedure: "FLUOR"})
			risk = RiskHigh
		}
		if i%4 == 1 {
			findings = append(findings, Finding{Tooth: 11, Surfaces: "I", Condition: CondFracture, Note: "traume"})
		}
	default:
		findings = []Finding{{Tooth: 16, Surfaces: "O", Condition: CondFilling, Material: "composite"}, {Tooth: 46, Surfaces: "O", Condition: CondSealant}}
		if youth && i%2 == 0 {
			findings = append(findings, Finding{Tooth: 14, Condition: CondExtracted, Reason: "orthodontic"},
				Finding{Tooth: 24, Condition: CondExtracted, Reason: "orthodontic"}, Finding{Tooth: 37, Surfaces: "O", Condition: CondCaries, Depth: "dentin"})
			plan = append(plan, Treatment{Tooth: 37, Surfaces: "O", Procedure: "FYLD"})
			risk = RiskMedium
		}
	}
	text := map[bool]string{true: "Almindelig undersøgelse. God mundhygiejne.", false: "Almindelig undersøgelse. Instrueret i tandbørstning."}[i%2 == 0]
	exam := NewEntry{Kind: KindExamination, CareTime: when, Sign: true, Content: Content{Text: text, Findings: findings, Risk: risk}}
	if _, err := s.Create(ctx, p, id, exam); err != nil {
		return err
	}
	if i%3 == 0 && age < 15 {
		if err := s.SaveProfile(ctx, p, id, Profile{Risk: risk, Allergies: "Ingen kendte", Medicines: "", Conditions: map[bool]string{true: "Astma (inhalator)", false: ""}[i%2 == 0]}); err != nil {
			return err
		}
	}
	if len(plan) == 0 {
		return nil
	}
	planned := NewEntry{Kind: KindTreatmentPlanned, CareTime: when.Add(15 * time.Minute), Sign: true, Content: Content{Treatments: plan}}
	if _, err := s.Create(ctx, p, id, planned); err != nil {
		return err
	}
	// Half of the plans have their first item done a few weeks later.
	if i%2 == 0 {
		var items []PlanItem
		err := postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
			pl, err := loadPlan(ctx, tx, id)
			if pl != nil {
				items = pl.Items
			}
			return err
		})
		if err != nil {
			return err
		}
		if len(items) > 0 && items[0].Tooth != 0 {
			it := items[0]
			done := NewEntry{Kind: KindTreatmentPerformed, CareTime: when.AddDate(0, 0, 21), Sign: true,
				Content: Content{Treatments: []Treatment{{Tooth: it.Tooth, Surfaces: it.Surfaces, Procedure: it.Procedure, Material: "composite", PlanItemID: it.ID}}}}
			if done.CareTime.Before(now) {
				if _, err := s.Create(ctx, p, id, done); err != nil {
					return err
				}
			}
		}
	}
	// An X-ray of the carious tooth, not yet described: on the worklist.
	if plan[0].Tooth != 0 {
		uid := fmt.Sprintf("1.2.826.0.1.3680043.10.1093.%d.%d", p.TenantID, id)
		if _, err := s.LinkImage(ctx, p, id, ImageLink{StudyUID: uid, Modality: "IO", Tooth: plan[0].Tooth}); err != nil {
			return err
		}
	}
	return nil
}
