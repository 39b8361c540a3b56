package journal

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
)

// PlainEntry is a signed journal entry in plain language, for the parent
// portal (issue 8) and the young person's own access.
type PlainEntry struct {
	ID       int64     `json:"id"`
	Date     time.Time `json:"date"`
	Kind     Kind      `json:"kind"`
	Title    string    `json:"title"`
	Lines    []string  `json:"lines"`
	Author   string    `json:"author"`
	Replaces int64     `json:"replaces,omitempty"` // a correction of an earlier entry
}

// SignedEntries returns a person's signed, current entries in plain
// language (lang "da" or "en"), newest first. Citizens (portal.use) reach
// their own record and, under 15, their children's (auth.Access decides);
// staff need journal.read. Unsigned drafts and replaced versions are never
// shown. The read is audit-logged, so it appears in the person's access log.
func (s *Service) SignedEntries(ctx context.Context, p *auth.Principal, personID int64, lang string) ([]PlainEntry, error) {
	perm := auth.PermJournalRead
	if p.IsCitizen() {
		perm = auth.PermPortalUse
	}
	var out []PlainEntry
	err := s.access(ctx, p, perm, personID, audit.ActionRead, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		entries, err := loadEntries(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		for _, e := range entries {
			if !e.Signed() || !e.Current() {
				continue
			}
			out = append(out, s.Plain(e, lang))
		}
		return fmt.Sprintf("journal.signed_entries/%d", personID), map[string]any{"count": len(out)}, nil
	})
	return out, err
}

// Plain writes an entry in plain language.
func (s *Service) Plain(e Entry, lang string) PlainEntry {
	if lang != "en" {
		lang = "da"
	}
	m := messages[lang]
	pe := PlainEntry{ID: e.ID, Date: e.CareTime, Kind: e.Kind, Title: m["journal.kind."+string(e.Kind)], Author: e.AuthorName, Replaces: e.Supersedes}
	if e.Text != "" {
		pe.Lines = append(pe.Lines, e.Text)
	}
	for _, f := range e.Findings {
		pe.Lines = append(pe.Lines, plainFinding(f, lang))
	}
	for _, d := range e.Diagnoses {
		line := d.Text
		if d.Tooth != 0 {
			line += ": " + ToothName(d.Tooth, lang)
		}
		pe.Lines = append(pe.Lines, line)
	}
	for _, tr := range e.Treatments {
		name := tr.Procedure
		if p, ok := s.Catalogue.Get(tr.Procedure); ok {
			name = p.Name(lang)
		}
		line := name
		if tr.Tooth != 0 {
			line += ": " + ToothName(tr.Tooth, lang)
			if tr.Surfaces != "" {
				line += ", " + plainSurfaces(tr.Surfaces, lang)
			}
		}
		pe.Lines = append(pe.Lines, line)
	}
	if e.Consent != nil {
		given := map[string]map[bool]string{"da": {true: "givet", false: "ikke givet"}, "en": {true: "given", false: "not given"}}[lang][e.Consent.Given]
		pe.Lines = append(pe.Lines, fmt.Sprintf("%s: %s", e.Consent.Topic, given))
	}
	if e.RecallMonths > 0 {
		if lang == "da" {
			pe.Lines = append(pe.Lines, fmt.Sprintf("Næste undersøgelse om %d måneder.", e.RecallMonths))
		} else {
			pe.Lines = append(pe.Lines, fmt.Sprintf("Next examination in %d months.", e.RecallMonths))
		}
	}
	return pe
}

var plainSurfaceNames = map[string]map[byte]string{
	"da": {'M': "fladen mod midten", 'O': "tyggefladen", 'I': "skærekanten", 'D': "fladen væk fra midten", 'B': "fladen mod kind eller læbe", 'L': "fladen mod tunge eller gane"},
	"en": {'M': "the side towards the middle", 'O': "the biting surface", 'I': "the biting edge", 'D': "the side away from the middle", 'B': "the cheek or lip side", 'L': "the tongue or palate side"},
}

func plainSurfaces(surfaces, lang string) string {
	var parts []string
	for i := 0; i < len(surfaces); i++ {
		parts = append(parts, plainSurfaceNames[lang][surfaces[i]])
	}
	and := map[string]string{"da": " og ", "en": " and "}[lang]
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + and + parts[len(parts)-1]
}

func plainFinding(f Finding, lang string) string {
	m := messages[lang]
	line := ToothName(f.Tooth, lang) + ": " + strings.ToLower(m["journal.cond."+string(f.Condition)])
	switch {
	case f.Depth != "":
		line += " " + m["journal.depth."+f.Depth]
	case f.Reason != "":
		line += " " + m["journal.reason."+f.Reason]
	}
	if f.Surfaces != "" {
		on := map[string]string{"da": " på ", "en": " on "}[lang]
		line += on + plainSurfaces(f.Surfaces, lang)
	}
	return line
}

// FamilyRecord is what a family sees of a child's record: signed entries
// only, in plain language.
type FamilyRecord struct {
	LastExam  time.Time    `json:"last_exam,omitzero"`
	NextExam  time.Time    `json:"next_exam,omitzero"`
	Findings  []string     `json:"findings"` // open findings and planned treatments, plain language
	PlanDone  int          `json:"plan_done"`
	PlanTotal int          `json:"plan_total"`
	Health    []string     `json:"health"`
	Entries   []PlainEntry `json:"entries"`
}

// FamilyRecord builds the family's view of a person's record from signed
// entries only (drafts never reach families), with the same access rules
// and audit as SignedEntries.
func (s *Service) FamilyRecord(ctx context.Context, p *auth.Principal, personID int64, lang string) (FamilyRecord, error) {
	if lang != "en" {
		lang = "da"
	}
	perm := auth.PermJournalRead
	if p.IsCitizen() {
		perm = auth.PermPortalUse
	}
	m := messages[lang]
	var fr FamilyRecord
	now := s.now()
	err := s.access(ctx, p, perm, personID, audit.ActionRead, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		person, err := getPerson(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		all, err := loadEntries(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		var signed []Entry
		signedIDs := map[int64]bool{}
		for _, e := range all {
			if e.Signed() {
				signedIDs[e.ID] = true
			}
			if e.Signed() && e.Current() {
				signed = append(signed, e)
				fr.Entries = append(fr.Entries, s.Plain(e, lang))
			}
		}
		prof, err := loadProfile(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		ri := s.recallOf(person.BirthDate, signed, prof.Risk, now)
		fr.LastExam, fr.NextExam = ri.LastExam, ri.Due
		plan, err := loadPlan(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		var items []PlanItem
		if plan != nil {
			// Only items of signed entries: a treatment planned in an
			// unsigned draft is not the family's to see yet, and an item
			// carried out in an unsigned entry still shows as planned.
			shown := Plan{}
			for _, it := range plan.Items {
				if !signedIDs[it.EntryID] {
					continue
				}
				if it.Status == ItemDone && it.DoneEntryID != 0 && !signedIDs[it.DoneEntryID] {
					it.Status, it.DoneEntryID = ItemPlanned, 0
				}
				shown.Items = append(shown.Items, it)
			}
			pr := shown.Progress()
			fr.PlanDone, fr.PlanTotal = pr.Done, pr.Total
			items = shown.Items
		}
		chart := BuildChart(person.BirthDate, signed, items, s.Catalogue, now, true)
		for _, t := range chart.OpenFindings() {
			fr.Findings = append(fr.Findings, familyFinding(t, s.Catalogue, lang))
		}
		for _, h := range []struct{ key, v string }{{"journal.allergies", prof.Allergies}, {"journal.medicines", prof.Medicines}, {"journal.conditions", prof.Conditions}} {
			if h.v != "" {
				fr.Health = append(fr.Health, m[h.key]+": "+h.v)
			}
		}
		return fmt.Sprintf("journal.family_record/%d", personID), map[string]any{"entries": len(fr.Entries)}, nil
	})
	return fr, err
}

// familyFinding is the family's line for a tooth with open findings (from
// Chart.OpenFindings): the tooth, what is found on it, and what is planned,
// e.g. "øverste højre 6-års tand (16): caries på tyggefladen (planlagt:
// fyldning)" or "øverste venstre midterste fortand (21): fraktur". Only
// the tooth and the plan when nothing is found.
func familyFinding(t ToothState, cat *Catalogue, lang string) string {
	m := messages[lang]
	var found []string
	var sf []byte
	for _, l := range surfaceOrder {
		if t.Surfaces[string(l)].Caries != "" {
			sf = append(sf, byte(l))
		}
	}
	if len(sf) > 0 {
		found = append(found, strings.ToLower(m["journal.cond.caries"])+" "+map[string]string{"da": "på", "en": "on"}[lang]+" "+plainSurfaces(string(sf), lang))
	}
	if t.Fracture {
		found = append(found, strings.ToLower(m["journal.cond.fracture"]))
	}
	line := ToothName(t.Tooth, lang)
	if len(found) > 0 {
		line += ": " + strings.Join(found, ", ")
	}
	for _, pl := range t.Planned {
		name := pl.Procedure
		if pr, ok := cat.Get(pl.Procedure); ok {
			name = pr.Name(lang)
		}
		line += " (" + strings.ToLower(m["journal.tooth.planned"]) + ": " + strings.ToLower(name) + ")"
	}
	return line
}

// ParentInformation records information from a custody holder (or the
// young person) as an unsigned "information from parents" entry for the
// clinic to read. Citizens need portal.use and access to the person
// (custody under 15, or self); staff writing it down need journal.write.
func (s *Service) ParentInformation(ctx context.Context, p *auth.Principal, personID int64, topic, text string) (Entry, error) {
	perm := auth.PermJournalWrite
	if p.IsCitizen() {
		perm = auth.PermPortalUse
	}
	n := NewEntry{Kind: KindParentInfo, CareTime: s.now(), Content: Content{Text: text, Topic: topic}}
	var out Entry
	err := s.access(ctx, p, perm, personID, audit.ActionCreate, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		person, err := getPerson(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		if err := n.Validate(Patient{PersonID: personID, BirthDate: person.BirthDate}, s.now(), s.Catalogue, s.SKS); err != nil {
			return "", nil, err
		}
		id, err := insertEntry(ctx, tx, p, personID, n, 0, "")
		if err != nil {
			return "", nil, err
		}
		out, err = loadEntry(ctx, tx, personID, id)
		return entryObject(id), map[string]any{"kind": string(KindParentInfo)}, err
	})
	return out, err
}
