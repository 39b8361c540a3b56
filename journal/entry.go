package journal

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/molar-health/molar/auth"
)

// Kind is the kind of a journal entry.
type Kind string

// Entry kinds.
const (
	KindExamination        Kind = "examination"         // findings per tooth and surface
	KindDiagnosis          Kind = "diagnosis"           // SKS codes
	KindTreatmentPlanned   Kind = "treatment_planned"   // items added to the treatment plan
	KindTreatmentPerformed Kind = "treatment_performed" // procedures done
	KindXRay               Kind = "xray_description"    // description of an X-ray (required when it shows disease)
	KindNote               Kind = "note"                // free text
	KindConsent            Kind = "consent"             // consent given or refused
	KindParentInfo         Kind = "parent_info"         // information from the custody holders
)

// Kinds lists every entry kind in display order.
var Kinds = []Kind{KindExamination, KindDiagnosis, KindTreatmentPlanned, KindTreatmentPerformed, KindXRay, KindNote, KindConsent, KindParentInfo}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return slices.Contains(Kinds, k) }

// Condition is what an examination found on a tooth or its surfaces.
type Condition string

// Conditions of a finding.
const (
	CondSound      Condition = "sound"       // no disease, no restoration on the surfaces (or the tooth)
	CondCaries     Condition = "caries"      // with Depth
	CondFilling    Condition = "filling"     // with Material
	CondSealant    Condition = "sealant"     // fissure sealant
	CondCrown      Condition = "crown"       // whole tooth
	CondMissing    Condition = "missing"     // absent, not extracted here (agenesis, unknown)
	CondExtracted  Condition = "extracted"   // with Reason
	CondNotErupted Condition = "not_erupted" // not yet in the mouth
	CondErupting   Condition = "erupting"    // breaking through
	CondFracture   Condition = "fracture"    // on surfaces or the tooth
	CondHypomin    Condition = "hypomineralisation"
)

// Conditions lists the finding conditions in display order.
var Conditions = []Condition{CondSound, CondCaries, CondFilling, CondSealant, CondCrown, CondMissing, CondExtracted, CondNotErupted, CondErupting, CondFracture, CondHypomin}

// Caries depths.
var CariesDepths = []string{"enamel", "dentin", "pulp"}

// Filling materials.
var Materials = []string{"composite", "glass_ionomer", "compomer", "amalgam", "temporary", "other"}

// Reasons a tooth was extracted. Only caries counts in DMF-S and def-s.
var ExtractionReasons = []string{"caries", "orthodontic", "trauma", "periodontal", "other"}

// Risk is a patient's caries risk, which sets the recall interval.
type Risk string

// Risk levels.
const (
	RiskLow    Risk = "low"
	RiskMedium Risk = "medium"
	RiskHigh   Risk = "high"
)

// Risks lists the risk levels.
var Risks = []Risk{RiskLow, RiskMedium, RiskHigh}

// Finding is one observation of an examination.
type Finding struct {
	Tooth     Tooth     `json:"tooth"`
	Surfaces  string    `json:"surfaces,omitempty"` // canonical letters, e.g. "MOD"; empty: the whole tooth
	Condition Condition `json:"condition"`
	Depth     string    `json:"depth,omitempty"`    // caries
	Material  string    `json:"material,omitempty"` // filling, crown
	Reason    string    `json:"reason,omitempty"`   // extracted
	Note      string    `json:"note,omitempty"`
}

// Diagnosis is one SKS diagnosis code.
type Diagnosis struct {
	Code  string `json:"code"`
	Text  string `json:"text,omitempty"`
	Tooth Tooth  `json:"tooth,omitempty"`
}

// Treatment is one procedure, planned or performed, from the catalogue.
type Treatment struct {
	Tooth     Tooth  `json:"tooth,omitempty"`
	Surfaces  string `json:"surfaces,omitempty"`
	Procedure string `json:"procedure"`          // catalogue code
	Material  string `json:"material,omitempty"` // fillings, crowns
	Reason    string `json:"reason,omitempty"`   // extractions
	// PlanItemID links a performed treatment to the plan item it carries
	// out (marked done); 0 for none.
	PlanItemID int64  `json:"plan_item_id,omitempty"`
	Note       string `json:"note,omitempty"`
}

// XRay describes an X-ray image or series.
type XRay struct {
	StudyUID     string   `json:"study_uid"`
	InstanceUIDs []string `json:"instance_uids,omitempty"`
	Teeth        []Tooth  `json:"teeth,omitempty"`
	ShowsDisease bool     `json:"shows_disease"`
}

// Consent records consent given or refused.
type Consent struct {
	Topic   string `json:"topic"`
	Given   bool   `json:"given"`
	GivenBy string `json:"given_by"` // "patient" or "custody_holder"
}

// Content is what an entry says; which fields are used depends on its kind.
type Content struct {
	Text       string      `json:"text,omitempty"`
	Findings   []Finding   `json:"findings,omitempty"`
	Diagnoses  []Diagnosis `json:"diagnoses,omitempty"`
	Treatments []Treatment `json:"treatments,omitempty"`
	XRay       *XRay       `json:"xray,omitempty"`
	Consent    *Consent    `json:"consent,omitempty"`
	// RecallMonths is the examiner's chosen interval to the next
	// examination (at most MaxRecallMonths); 0 lets the rules decide.
	RecallMonths int `json:"recall_months,omitempty"`
	// Risk is the caries risk the examiner assessed ("" = unchanged).
	Risk Risk `json:"risk,omitempty"`
	// Topic is what information from parents is about (free, short).
	Topic string `json:"topic,omitempty"`
}

// Entry is one version of a journal entry. Entries are never changed: a
// correction is a new Entry whose Supersedes points to the version it
// replaces, with a Reason; both are kept.
type Entry struct {
	ID         int64     `json:"id"`
	PersonID   int64     `json:"person_id"`
	Kind       Kind      `json:"kind"`
	AuthorID   int64     `json:"author_id"`
	AuthorName string    `json:"author_name"`
	AuthorRole string    `json:"author_role,omitempty"`
	CareTime   time.Time `json:"care_time"`   // when the care happened
	RecordedAt time.Time `json:"recorded_at"` // when it was written down (set by the database)
	// Supersedes is the version this one corrects (0 for an original).
	Supersedes int64  `json:"supersedes,omitempty"`
	Reason     string `json:"reason,omitempty"` // why it was corrected
	// SupersededBy is the newer version that replaced this one (0 when current).
	SupersededBy int64     `json:"superseded_by,omitempty"`
	SignedAt     time.Time `json:"signed_at,omitzero"`
	SignedBy     int64     `json:"signed_by,omitempty"`
	Content
}

// Signed reports whether the entry is signed, hence locked.
func (e Entry) Signed() bool { return !e.SignedAt.IsZero() }

// Current reports whether no newer version replaced the entry.
func (e Entry) Current() bool { return e.SupersededBy == 0 }

// NewEntry is what a user writes.
type NewEntry struct {
	Kind     Kind      `json:"kind"`
	CareTime time.Time `json:"care_time"`
	Content
	// Sign signs the entry as it is written (it is locked at once).
	Sign bool `json:"sign"`
}

// Limits.
const (
	MaxTextLen      = 20000
	MaxItems        = 200
	MaxRecallMonths = 24 // never more than 2 years between examinations (DOMAIN.md)
	// MaxShortText bounds the short texts of an entry: notes on findings
	// and treatments, the consent topic (the form allows 500 and 300).
	MaxShortText = 500
	// ClockSkew is how far in the future a time of care may lie (clocks of
	// clients differ a little).
	ClockSkew = 5 * time.Minute
)

// Patient is what validation needs to know about the person.
type Patient struct {
	PersonID  int64
	BirthDate time.Time // zero if unknown
}

// Validate checks and normalises a new entry for patient at time now
// against the procedure catalogue: it canonicalises surface letters and
// refuses teeth that do not exist, surfaces a tooth does not have, a future
// time of care, unknown codes and kinds, and content that does not fit the
// kind. Deciduous teeth are accepted at any age: milk teeth persist into
// adulthood when the successor is missing (agenesis).
func (n *NewEntry) Validate(p Patient, now time.Time, cat *Catalogue, sks *SKS) error {
	if !n.Kind.Valid() {
		return inputErr("kind.invalid", string(n.Kind))
	}
	if !n.validTexts() {
		return inputErr("text.invalid")
	}
	if n.CareTime.IsZero() {
		return inputErr("caretime.missing")
	}
	if n.CareTime.After(now.Add(ClockSkew)) {
		return inputErr("caretime.future")
	}
	if !p.BirthDate.IsZero() && n.CareTime.Before(p.BirthDate.AddDate(0, 0, -1)) {
		return inputErr("caretime.beforebirth")
	}
	n.Text = strings.TrimSpace(n.Text)
	if utf8.RuneCountInString(n.Text) > MaxTextLen {
		return inputErr("text.toolong", MaxTextLen)
	}
	if len(n.Findings)+len(n.Diagnoses)+len(n.Treatments) > MaxItems ||
		n.XRay != nil && (len(n.XRay.InstanceUIDs) > MaxItems || len(n.XRay.Teeth) > MaxItems) {
		return inputErr("items.toomany", MaxItems)
	}
	for _, f := range n.Findings {
		if utf8.RuneCountInString(f.Note) > MaxShortText {
			return inputErr("text.toolong", MaxShortText)
		}
	}
	for _, tr := range n.Treatments {
		if utf8.RuneCountInString(tr.Note) > MaxShortText {
			return inputErr("text.toolong", MaxShortText)
		}
	}
	if n.Consent != nil && utf8.RuneCountInString(n.Consent.Topic) > MaxShortText {
		return inputErr("text.toolong", MaxShortText)
	}
	checkTooth := func(t Tooth) error {
		if !t.Valid() {
			return inputErr("tooth.invalid", int(t))
		}
		return nil
	}
	switch n.Kind {
	case KindExamination:
		if len(n.Diagnoses)+len(n.Treatments) > 0 || n.XRay != nil || n.Consent != nil {
			return inputErr("kind.content", string(n.Kind))
		}
		for i := range n.Findings {
			f := &n.Findings[i]
			if err := checkTooth(f.Tooth); err != nil {
				return err
			}
			if err := f.normalise(); err != nil {
				return err
			}
		}
		if n.RecallMonths < 0 || n.RecallMonths > MaxRecallMonths {
			return inputErr("recall.range", MaxRecallMonths)
		}
		if n.Risk != "" && !slices.Contains(Risks, n.Risk) {
			return inputErr("risk.invalid", string(n.Risk))
		}
		if len(n.Findings) == 0 && n.Text == "" {
			return inputErr("examination.empty")
		}
	case KindDiagnosis:
		if len(n.Diagnoses) == 0 {
			return inputErr("diagnosis.empty")
		}
		for i := range n.Diagnoses {
			d := &n.Diagnoses[i]
			d.Code = strings.ToUpper(strings.TrimSpace(d.Code))
			text, ok := sks.Lookup(d.Code)
			if !ok {
				return inputErr("diagnosis.unknown", d.Code)
			}
			d.Text = text
			if d.Tooth != 0 {
				if err := checkTooth(d.Tooth); err != nil {
					return err
				}
			}
		}
	case KindTreatmentPlanned, KindTreatmentPerformed:
		if len(n.Treatments) == 0 {
			return inputErr("treatment.empty")
		}
		for i := range n.Treatments {
			tr := &n.Treatments[i]
			proc, ok := cat.Get(tr.Procedure)
			if !ok {
				return inputErr("procedure.unknown", tr.Procedure)
			}
			if tr.Tooth == 0 && proc.PerTooth {
				return inputErr("procedure.needstooth", proc.Code)
			}
			if tr.Tooth != 0 {
				if err := checkTooth(tr.Tooth); err != nil {
					return err
				}
				s, err := ParseSurfaces(tr.Tooth, tr.Surfaces)
				if err != nil {
					return err
				}
				tr.Surfaces = s
			} else if tr.Surfaces != "" {
				return inputErr("surface.withouttooth")
			}
			if proc.Surfaces && tr.Surfaces == "" {
				return inputErr("procedure.needssurfaces", proc.Code)
			}
			if proc.Effect == EffectExtraction {
				if tr.Reason == "" {
					tr.Reason = "other"
				}
				if !slices.Contains(ExtractionReasons, tr.Reason) {
					return inputErr("reason.invalid", tr.Reason)
				}
			}
			if tr.Material != "" && !slices.Contains(Materials, tr.Material) {
				return inputErr("material.invalid", tr.Material)
			}
			if n.Kind == KindTreatmentPlanned && tr.PlanItemID != 0 {
				return inputErr("treatment.planitem")
			}
		}
	case KindXRay:
		if n.XRay == nil || strings.TrimSpace(n.XRay.StudyUID) == "" {
			return inputErr("xray.study")
		}
		if n.Text == "" {
			return inputErr("text.missing")
		}
		n.XRay.StudyUID = strings.TrimSpace(n.XRay.StudyUID)
		if !validUID(n.XRay.StudyUID) {
			return inputErr("xray.uid", n.XRay.StudyUID)
		}
		for _, u := range n.XRay.InstanceUIDs {
			if !validUID(u) {
				return inputErr("xray.uid", u)
			}
		}
		for _, t := range n.XRay.Teeth {
			if err := checkTooth(t); err != nil {
				return err
			}
		}
	case KindConsent:
		if n.Consent == nil || strings.TrimSpace(n.Consent.Topic) == "" {
			return inputErr("consent.topic")
		}
		n.Consent.Topic = strings.TrimSpace(n.Consent.Topic)
		if n.Consent.GivenBy != "patient" && n.Consent.GivenBy != "custody_holder" {
			return inputErr("consent.by")
		}
		// Health Act §17: from 15 the patient gives informed consent, under
		// 15 the custody holders do (DOMAIN.md, age on the Danish date).
		if !p.BirthDate.IsZero() {
			adult := ageYears(p.BirthDate, auth.DateIn(n.CareTime, auth.Copenhagen)) >= auth.CustodyAgeLimit
			if adult && n.Consent.GivenBy != "patient" {
				return inputErr("consent.from15", auth.CustodyAgeLimit)
			}
			if !adult && n.Consent.GivenBy != "custody_holder" {
				return inputErr("consent.under15", auth.CustodyAgeLimit)
			}
		}
	case KindNote, KindParentInfo:
		if n.Text == "" {
			return inputErr("text.missing")
		}
	}
	n.Topic = strings.TrimSpace(n.Topic)
	if n.Topic != "" && (n.Kind != KindParentInfo || utf8.RuneCountInString(n.Topic) > 100) {
		return inputErr("kind.content", string(n.Kind))
	}
	if n.Kind != KindExamination && (len(n.Findings) > 0 || n.RecallMonths != 0 || n.Risk != "") {
		return inputErr("kind.content", string(n.Kind))
	}
	if n.Kind != KindDiagnosis && len(n.Diagnoses) > 0 || n.Kind != KindXRay && n.XRay != nil || n.Kind != KindConsent && n.Consent != nil ||
		len(n.Treatments) > 0 && n.Kind != KindTreatmentPlanned && n.Kind != KindTreatmentPerformed {
		return inputErr("kind.content", string(n.Kind))
	}
	return nil
}

// normalise checks a finding and writes its surfaces canonically.
func (f *Finding) normalise() error {
	if !slices.Contains(Conditions, f.Condition) {
		return inputErr("condition.invalid", string(f.Condition))
	}
	s, err := ParseSurfaces(f.Tooth, f.Surfaces)
	if err != nil {
		return err
	}
	f.Surfaces = s
	f.Note = strings.TrimSpace(f.Note)
	switch f.Condition {
	case CondCaries:
		if f.Surfaces == "" {
			return inputErr("finding.needssurfaces", string(f.Condition), int(f.Tooth))
		}
		if f.Depth == "" {
			f.Depth = "dentin"
		}
		if !slices.Contains(CariesDepths, f.Depth) {
			return inputErr("depth.invalid", f.Depth)
		}
	case CondFilling, CondSealant:
		if f.Surfaces == "" {
			return inputErr("finding.needssurfaces", string(f.Condition), int(f.Tooth))
		}
		if f.Condition == CondFilling && f.Material == "" {
			f.Material = "composite"
		}
	case CondCrown, CondMissing, CondExtracted, CondNotErupted, CondErupting:
		if f.Surfaces != "" {
			return inputErr("finding.wholetooth", string(f.Condition))
		}
		if f.Condition == CondExtracted {
			if f.Reason == "" {
				f.Reason = "other"
			}
			if !slices.Contains(ExtractionReasons, f.Reason) {
				return inputErr("reason.invalid", f.Reason)
			}
		}
	}
	if f.Material != "" && !slices.Contains(Materials, f.Material) {
		return inputErr("material.invalid", f.Material)
	}
	if f.Condition != CondCaries {
		f.Depth = ""
	}
	if f.Condition != CondExtracted {
		f.Reason = ""
	}
	return nil
}

// validText reports whether s can be stored: valid UTF-8 without NUL
// characters (PostgreSQL's text and jsonb hold neither, and JSON encoding
// would silently replace invalid bytes).
func validText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// validTexts reports whether every string of the entry is validText.
func (n *NewEntry) validTexts() bool {
	ss := []string{n.Text, n.Topic}
	for _, f := range n.Findings {
		ss = append(ss, f.Surfaces, string(f.Condition), f.Depth, f.Material, f.Reason, f.Note)
	}
	for _, d := range n.Diagnoses {
		ss = append(ss, d.Code, d.Text)
	}
	for _, tr := range n.Treatments {
		ss = append(ss, tr.Surfaces, tr.Procedure, tr.Material, tr.Reason, tr.Note)
	}
	if n.XRay != nil {
		ss = append(ss, n.XRay.StudyUID)
		ss = append(ss, n.XRay.InstanceUIDs...)
	}
	if n.Consent != nil {
		ss = append(ss, n.Consent.Topic, n.Consent.GivenBy)
	}
	ss = append(ss, string(n.Risk))
	for _, s := range ss {
		if !validText(s) {
			return false
		}
	}
	return true
}

// validUID reports whether s is a DICOM UID (digits and dots, ≤ 64).
func validUID(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}
