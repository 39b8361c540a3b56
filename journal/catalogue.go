package journal

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Effect is what a performed procedure does to the tooth chart.
type Effect string

// Effects of procedures.
const (
	EffectNone       Effect = "none"         // e.g. fluoride varnish, instruction
	EffectFilling    Effect = "filling"      // surfaces filled
	EffectSealant    Effect = "sealant"      // surfaces sealed
	EffectExtraction Effect = "extraction"   // tooth extracted (with reason)
	EffectCrown      Effect = "crown"        // tooth crowned
	EffectRootFill   Effect = "root_filling" // root canal treatment
)

// Procedure is one entry of the procedure catalogue.
type Procedure struct {
	Code   string `json:"code"`
	NameDA string `json:"name_da"`
	NameEN string `json:"name_en"`
	Effect Effect `json:"effect"`
	// PerTooth: the procedure needs a tooth; Surfaces: and surfaces.
	PerTooth bool `json:"per_tooth"`
	Surfaces bool `json:"surfaces"`
}

// Name is the procedure's name in lang.
func (p Procedure) Name(lang string) string {
	if lang == "en" && p.NameEN != "" {
		return p.NameEN
	}
	return p.NameDA
}

// Catalogue is the configurable list of procedures a municipality uses.
// The default is Molar's own short list (no licensed code set is copied);
// load a municipality's own with LoadCatalogue.
type Catalogue struct {
	byCode map[string]Procedure
	list   []Procedure
}

var codeRE = regexp.MustCompile(`^[A-Z0-9][A-Z0-9._-]{0,31}$`)

// NewCatalogue builds a catalogue, checking codes and effects.
func NewCatalogue(procs []Procedure) (*Catalogue, error) {
	c := &Catalogue{byCode: map[string]Procedure{}}
	for _, p := range procs {
		p.Code = strings.ToUpper(strings.TrimSpace(p.Code))
		if !codeRE.MatchString(p.Code) {
			return nil, fmt.Errorf("journal: catalogue: invalid code %q", p.Code)
		}
		if _, dup := c.byCode[p.Code]; dup {
			return nil, fmt.Errorf("journal: catalogue: code %s given twice", p.Code)
		}
		switch p.Effect {
		case EffectNone, EffectFilling, EffectSealant, EffectExtraction, EffectCrown, EffectRootFill:
		case "":
			p.Effect = EffectNone
		default:
			return nil, fmt.Errorf("journal: catalogue: %s: unknown effect %q", p.Code, p.Effect)
		}
		if p.Effect != EffectNone {
			p.PerTooth = true
		}
		if p.Effect == EffectFilling || p.Effect == EffectSealant {
			p.Surfaces = true
		}
		if p.NameDA == "" {
			return nil, fmt.Errorf("journal: catalogue: %s has no Danish name", p.Code)
		}
		c.byCode[p.Code] = p
		c.list = append(c.list, p)
	}
	sort.SliceStable(c.list, func(i, j int) bool { return c.list[i].Code < c.list[j].Code })
	return c, nil
}

// LoadCatalogue reads a JSON array of procedures.
func LoadCatalogue(r io.Reader) (*Catalogue, error) {
	var procs []Procedure
	if err := json.NewDecoder(r).Decode(&procs); err != nil {
		return nil, fmt.Errorf("journal: catalogue: %w", err)
	}
	return NewCatalogue(procs)
}

// DefaultCatalogue is Molar's own list of common procedures in municipal
// child dental care.
func DefaultCatalogue() *Catalogue {
	c, err := NewCatalogue([]Procedure{
		{Code: "FYLD", NameDA: "Fyldning", NameEN: "Filling", Effect: EffectFilling},
		{Code: "FORS", NameDA: "Fissurforsegling", NameEN: "Fissure sealant", Effect: EffectSealant},
		{Code: "EKST", NameDA: "Tandudtrækning", NameEN: "Extraction", Effect: EffectExtraction},
		{Code: "KRONE", NameDA: "Krone", NameEN: "Crown", Effect: EffectCrown},
		{Code: "ROD", NameDA: "Rodbehandling", NameEN: "Root canal treatment", Effect: EffectRootFill},
		{Code: "FLUOR", NameDA: "Fluorlak", NameEN: "Fluoride varnish", Effect: EffectNone},
		{Code: "RENS", NameDA: "Tandrensning", NameEN: "Scaling and cleaning", Effect: EffectNone},
		{Code: "INSTR", NameDA: "Instruktion i tandbørstning", NameEN: "Tooth-brushing instruction", Effect: EffectNone},
		{Code: "KONTROL", NameDA: "Kontrol af tand", NameEN: "Check of a tooth", Effect: EffectNone, PerTooth: true},
		{Code: "HENV-ORTO", NameDA: "Henvisning til tandregulering", NameEN: "Referral to orthodontics", Effect: EffectNone},
	})
	if err != nil {
		panic(err)
	}
	return c
}

// Get returns the procedure with code.
func (c *Catalogue) Get(code string) (Procedure, bool) {
	p, ok := c.byCode[strings.ToUpper(strings.TrimSpace(code))]
	return p, ok
}

// List returns the procedures by code.
func (c *Catalogue) List() []Procedure { return append([]Procedure(nil), c.list...) }
