package journal

import (
	"sort"
	"time"

	"github.com/molar-health/molar/auth"
)

// ToothStatus is whether and how a tooth is in the mouth.
type ToothStatus string

// Tooth statuses.
const (
	StatusPresent    ToothStatus = "present"
	StatusErupting   ToothStatus = "erupting"
	StatusNotErupted ToothStatus = "not_erupted"
	StatusMissing    ToothStatus = "missing"    // absent for another reason than extraction here
	StatusExtracted  ToothStatus = "extracted"  // with ExtractionReason
	StatusExfoliated ToothStatus = "exfoliated" // a deciduous tooth shed naturally
)

// InMouth reports whether the status means the tooth is there.
func (s ToothStatus) InMouth() bool { return s == StatusPresent || s == StatusErupting }

// SurfaceState is what is on one surface.
type SurfaceState struct {
	Caries   string `json:"caries,omitempty"`  // depth; "" = none
	Filling  string `json:"filling,omitempty"` // material; "" = none
	Sealant  bool   `json:"sealant,omitempty"`
	Fracture bool   `json:"fracture,omitempty"`
	Hypomin  bool   `json:"hypomineralisation,omitempty"`
}

func (s SurfaceState) empty() bool { return s == SurfaceState{} }

// PlanMark is an open plan item shown on a tooth.
type PlanMark struct {
	PlanItemID int64  `json:"plan_item_id"`
	Procedure  string `json:"procedure"`
	Surfaces   string `json:"surfaces,omitempty"`
}

// DoneMark is a performed treatment on a tooth.
type DoneMark struct {
	EntryID   int64     `json:"entry_id"`
	Procedure string    `json:"procedure"`
	Surfaces  string    `json:"surfaces,omitempty"`
	CareTime  time.Time `json:"care_time"`
}

// ToothState is one tooth of the chart at a date.
type ToothState struct {
	Tooth  Tooth       `json:"tooth"`
	Status ToothStatus `json:"status"`
	// Expected is true when the status comes from the child's age (typical
	// eruption and shedding), not from a recorded finding.
	Expected         bool                    `json:"expected"`
	ExtractionReason string                  `json:"extraction_reason,omitempty"`
	Crown            string                  `json:"crown,omitempty"` // material, "" = no crown
	RootFilled       bool                    `json:"root_filled,omitempty"`
	Fracture         bool                    `json:"fracture,omitempty"`
	Hypomin          bool                    `json:"hypomineralisation,omitempty"`
	Surfaces         map[string]SurfaceState `json:"surfaces,omitempty"`
	Planned          []PlanMark              `json:"planned,omitempty"`
	Done             []DoneMark              `json:"done,omitempty"`
	// Entries are the entries (current versions) that say something about
	// the tooth, oldest first.
	Entries []int64 `json:"entries,omitempty"`
	// Recorded is the time of care of the last finding on the status.
	Recorded time.Time `json:"recorded,omitzero"`
	// seenInMouth: a finding or performed treatment up to the chart's date
	// recorded the tooth in the mouth (present or erupting), whatever
	// happened to it later. Typical eruption by age does not set it.
	seenInMouth bool
}

// successorErupted reports whether deciduous tooth t's permanent successor
// has been recorded in the mouth.
func (c *Chart) successorErupted(t Tooth) bool {
	if !t.Deciduous() {
		return false
	}
	s := c.Teeth[t.Successor()]
	return s != nil && s.seenInMouth
}

// Caries reports whether any surface has caries.
func (t ToothState) Caries() bool {
	for _, s := range t.Surfaces {
		if s.Caries != "" {
			return true
		}
	}
	return false
}

// Surface returns the state of one surface (by letter).
func (t ToothState) Surface(letter string) SurfaceState { return t.Surfaces[letter] }

// Chart is the state of every tooth at a date, derived from the entries.
type Chart struct {
	At        time.Time             `json:"at"`
	AgeMonths int                   `json:"age_months"`
	Dentition Dentition             `json:"dentition"`
	Teeth     map[Tooth]*ToothState `json:"-"`
}

// Tooth returns the state of t.
func (c *Chart) Tooth(t Tooth) *ToothState { return c.Teeth[t] }

// List returns every tooth's state by tooth number.
func (c *Chart) List() []ToothState {
	out := make([]ToothState, 0, len(c.Teeth))
	for _, t := range AllTeeth() {
		out = append(out, *c.Teeth[t])
	}
	return out
}

// Rows are the chart's four display rows as dentists read them, from the
// patient's right to left: upper permanent, upper deciduous, lower
// deciduous, lower permanent.
func (c *Chart) Rows() [4][]*ToothState {
	var rows [4][]*ToothState
	add := func(row int, q int, from, to, step int) {
		for p := from; p != to+step; p += step {
			rows[row] = append(rows[row], c.Teeth[Tooth(q*10+p)])
		}
	}
	add(0, 1, 8, 1, -1)
	add(0, 2, 1, 8, 1)
	add(1, 5, 5, 1, -1)
	add(1, 6, 1, 5, 1)
	add(2, 8, 5, 1, -1)
	add(2, 7, 1, 5, 1)
	add(3, 4, 8, 1, -1)
	add(3, 3, 1, 8, 1)
	return rows
}

// OpenFindings lists teeth with untreated findings (caries, fracture) or
// open plan items.
func (c *Chart) OpenFindings() []ToothState {
	var out []ToothState
	for _, t := range AllTeeth() {
		s := c.Teeth[t]
		if s.Status.InMouth() && (s.Caries() || s.Fracture || len(s.Planned) > 0) {
			out = append(out, *s)
		}
	}
	return out
}

// BuildChart derives the chart at time at from a patient's entries (all
// versions: only current ones count) and plan items. With signedOnly, only
// signed entries count (for reports). Findings and performed treatments are
// applied in order of time of care; where nothing is recorded the child's
// age gives the typical state, and a typical change (eruption, shedding)
// after the last record is assumed too.
func BuildChart(birth time.Time, entries []Entry, plan []PlanItem, cat *Catalogue, at time.Time, signedOnly bool) *Chart {
	c := &Chart{At: at, Teeth: map[Tooth]*ToothState{}}
	if !birth.IsZero() {
		c.AgeMonths = ageMonths(birth, auth.DateIn(at, auth.Copenhagen)) // on the Danish date, as ages everywhere
	}
	for _, t := range AllTeeth() {
		c.Teeth[t] = &ToothState{Tooth: t, Status: StatusNotErupted, Surfaces: map[string]SurfaceState{}}
	}
	var use []Entry
	for _, e := range entries {
		if !e.Current() || e.CareTime.After(at) || signedOnly && !e.Signed() {
			continue
		}
		if e.Kind == KindExamination || e.Kind == KindTreatmentPerformed {
			use = append(use, e)
		}
	}
	sort.SliceStable(use, func(i, j int) bool {
		if !use[i].CareTime.Equal(use[j].CareTime) {
			return use[i].CareTime.Before(use[j].CareTime)
		}
		return use[i].ID < use[j].ID
	})
	for _, e := range use {
		mentioned := map[Tooth]bool{}
		var present []Tooth
		touch := func(t Tooth) *ToothState {
			s := c.Teeth[t]
			mentioned[t] = true
			if n := len(s.Entries); n == 0 || s.Entries[n-1] != e.ID {
				s.Entries = append(s.Entries, e.ID)
			}
			return s
		}
		for _, f := range e.Findings {
			if !f.Tooth.Valid() {
				continue
			}
			s := touch(f.Tooth)
			applyFinding(s, f, e.CareTime)
			if s.Status.InMouth() {
				s.seenInMouth = true
				present = append(present, f.Tooth)
			}
		}
		if e.Kind == KindTreatmentPerformed {
			for _, tr := range e.Treatments {
				if !tr.Tooth.Valid() {
					continue
				}
				s := touch(tr.Tooth)
				proc, _ := cat.Get(tr.Procedure)
				applyTreatment(s, tr, proc, e.CareTime)
				s.Done = append(s.Done, DoneMark{EntryID: e.ID, Procedure: tr.Procedure, Surfaces: tr.Surfaces, CareTime: e.CareTime})
				if s.Status.InMouth() {
					s.seenInMouth = true
					present = append(present, tr.Tooth)
				}
			}
		}
		// A permanent tooth found in the mouth has replaced its deciduous
		// predecessor, unless the same entry says the predecessor is there.
		for _, t := range present {
			if p := t.Predecessor(); p != 0 && !mentioned[p] {
				ps := c.Teeth[p]
				if ps.Status.InMouth() || ps.Recorded.IsZero() {
					ps.Status, ps.Expected, ps.Recorded = StatusExfoliated, false, e.CareTime
					ps.Surfaces = map[string]SurfaceState{}
				}
			}
		}
	}
	// Age: the typical state where nothing is recorded, and typical changes
	// that happened after the last record.
	for _, t := range AllTeeth() {
		s := c.Teeth[t]
		if birth.IsZero() {
			if s.Recorded.IsZero() {
				s.Expected = true
			}
			continue
		}
		erupt, shed := EruptionDate(t, birth), SheddingDate(t, birth)
		after := func(d time.Time) bool { return !d.IsZero() && d.After(s.Recorded) && !d.After(at) }
		switch {
		case s.Recorded.IsZero():
			s.Expected = true
			switch {
			case expectedPresent(t, birth, at):
				s.Status = StatusPresent
			case !shed.IsZero() && !at.Before(shed):
				s.Status = StatusExfoliated
			default:
				s.Status = StatusNotErupted
			}
		case (s.Status == StatusNotErupted || s.Status == StatusErupting) && after(erupt):
			s.Status, s.Expected = StatusPresent, true
		case s.Status == StatusErupting && at.Sub(s.Recorded) > 365*24*time.Hour:
			s.Status, s.Expected = StatusPresent, true
		case t.Deciduous() && s.Status.InMouth() && after(shed) && !c.Teeth[t.Successor()].Recorded.After(s.Recorded) && !hasWork(s):
			s.Status, s.Expected = StatusExfoliated, true
			s.Surfaces = map[string]SurfaceState{}
		}
	}
	for _, it := range plan {
		if it.Status != ItemPlanned || !it.Tooth.Valid() {
			continue
		}
		s := c.Teeth[it.Tooth]
		s.Planned = append(s.Planned, PlanMark{PlanItemID: it.ID, Procedure: it.Procedure, Surfaces: it.Surfaces})
	}
	var dec, perm bool
	for _, t := range AllTeeth() {
		if c.Teeth[t].Status.InMouth() {
			if t.Deciduous() {
				dec = true
			} else {
				perm = true
			}
		}
	}
	c.Dentition = dentitionOf(dec, perm)
	return c
}

// hasWork reports whether a deciduous tooth carries recorded disease or
// restorations (then it is not assumed shed without a record).
func hasWork(s *ToothState) bool {
	if s.Crown != "" || s.RootFilled {
		return true
	}
	for _, ss := range s.Surfaces {
		if !ss.empty() {
			return true
		}
	}
	return false
}

func letters(surfaces string) []string {
	out := make([]string, 0, len(surfaces))
	for _, r := range surfaces {
		out = append(out, string(r))
	}
	return out
}

func markPresent(s *ToothState, at time.Time) {
	if !s.Status.InMouth() {
		s.Status = StatusPresent
		s.ExtractionReason = ""
	}
	s.Expected, s.Recorded = false, at
}

// applyFinding changes a tooth by one finding. "Sound" on surfaces clears
// them; "sound" on the whole tooth marks it present and clears disease
// (caries, fractures) but keeps restorations.
func applyFinding(s *ToothState, f Finding, at time.Time) {
	edit := func(fn func(*SurfaceState)) {
		for _, l := range letters(f.Surfaces) {
			ss := s.Surfaces[l]
			fn(&ss)
			if ss.empty() {
				delete(s.Surfaces, l)
			} else {
				s.Surfaces[l] = ss
			}
		}
	}
	switch f.Condition {
	case CondSound:
		markPresent(s, at)
		if f.Surfaces != "" {
			edit(func(ss *SurfaceState) { *ss = SurfaceState{} })
		} else {
			s.Fracture = false
			for l, ss := range s.Surfaces {
				ss.Caries, ss.Fracture = "", false
				if ss.empty() {
					delete(s.Surfaces, l)
				} else {
					s.Surfaces[l] = ss
				}
			}
		}
	case CondCaries:
		if s.Status != StatusErupting {
			markPresent(s, at)
		}
		s.Recorded = at
		edit(func(ss *SurfaceState) { ss.Caries = f.Depth })
	case CondFilling:
		markPresent(s, at)
		edit(func(ss *SurfaceState) { ss.Filling, ss.Caries, ss.Sealant = f.Material, "", false })
	case CondSealant:
		if s.Status != StatusErupting {
			markPresent(s, at)
		}
		s.Recorded = at
		edit(func(ss *SurfaceState) { ss.Sealant = true })
	case CondCrown:
		markPresent(s, at)
		s.Crown = f.Material
		if s.Crown == "" {
			s.Crown = "other"
		}
		for l, ss := range s.Surfaces {
			ss.Caries = ""
			s.Surfaces[l] = ss
		}
	case CondFracture, CondHypomin:
		if s.Status != StatusErupting {
			markPresent(s, at)
		}
		s.Recorded = at
		if f.Surfaces == "" {
			if f.Condition == CondFracture {
				s.Fracture = true
			} else {
				s.Hypomin = true
			}
		} else {
			edit(func(ss *SurfaceState) {
				if f.Condition == CondFracture {
					ss.Fracture = true
				} else {
					ss.Hypomin = true
				}
			})
		}
	case CondMissing:
		s.Status, s.Expected, s.Recorded = StatusMissing, false, at
		s.Surfaces, s.Crown, s.RootFilled = map[string]SurfaceState{}, "", false
	case CondExtracted:
		s.Status, s.Expected, s.Recorded, s.ExtractionReason = StatusExtracted, false, at, f.Reason
		s.Surfaces, s.Crown, s.RootFilled = map[string]SurfaceState{}, "", false
	case CondNotErupted:
		s.Status, s.Expected, s.Recorded = StatusNotErupted, false, at
	case CondErupting:
		s.Status, s.Expected, s.Recorded = StatusErupting, false, at
	}
}

// applyTreatment changes a tooth by a performed procedure.
func applyTreatment(s *ToothState, tr Treatment, p Procedure, at time.Time) {
	switch p.Effect {
	case EffectFilling:
		m := tr.Material
		if m == "" {
			m = "composite"
		}
		applyFinding(s, Finding{Condition: CondFilling, Surfaces: tr.Surfaces, Material: m}, at)
	case EffectSealant:
		applyFinding(s, Finding{Condition: CondSealant, Surfaces: tr.Surfaces}, at)
	case EffectExtraction:
		applyFinding(s, Finding{Condition: CondExtracted, Reason: tr.Reason}, at)
	case EffectCrown:
		applyFinding(s, Finding{Condition: CondCrown, Material: tr.Material}, at)
	case EffectRootFill:
		markPresent(s, at)
		s.RootFilled = true
	}
}
