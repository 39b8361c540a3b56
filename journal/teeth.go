package journal

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Tooth is a tooth in FDI / ISO 3950 notation: quadrant digit then
// position. Permanent 11–18, 21–28, 31–38, 41–48; deciduous 51–55, 61–65,
// 71–75, 81–85 (DOMAIN.md "Dental care").
type Tooth int

// Valid reports whether t is a tooth of the FDI notation.
func (t Tooth) Valid() bool {
	q, p := int(t)/10, int(t)%10
	switch {
	case q >= 1 && q <= 4:
		return p >= 1 && p <= 8
	case q >= 5 && q <= 8:
		return p >= 1 && p <= 5
	}
	return false
}

// Quadrant is the first digit (1–8).
func (t Tooth) Quadrant() int { return int(t) / 10 }

// Position is the second digit: 1 central incisor … 8 third molar.
func (t Tooth) Position() int { return int(t) % 10 }

// Deciduous reports whether t is a milk tooth (quadrants 5–8).
func (t Tooth) Deciduous() bool { return t.Quadrant() >= 5 }

// Upper reports whether t is in the upper jaw.
func (t Tooth) Upper() bool { q := t.Quadrant(); return q == 1 || q == 2 || q == 5 || q == 6 }

// Anterior reports whether t is an incisor or a canine (positions 1–3):
// it has an incisal edge and no occlusal surface.
func (t Tooth) Anterior() bool { return t.Position() <= 3 }

// Successor is the permanent tooth that replaces a deciduous one (55 → 15);
// 0 for permanent teeth.
func (t Tooth) Successor() Tooth {
	if !t.Deciduous() {
		return 0
	}
	return Tooth((t.Quadrant()-4)*10 + t.Position())
}

// Predecessor is the deciduous tooth a permanent one replaces (15 → 55);
// 0 for molars and deciduous teeth.
func (t Tooth) Predecessor() Tooth {
	if t.Deciduous() || t.Position() > 5 {
		return 0
	}
	return Tooth((t.Quadrant()+4)*10 + t.Position())
}

// IndexSurfaces is how many surfaces the tooth counts for in DMF-S and
// def-s: 5 for premolars and molars, 4 for incisors and canines (WHO oral
// health surveys: 128 surfaces for 28 permanent teeth, 88 for 20
// deciduous). An incisal finding on an anterior tooth counts, but never more
// than 4 surfaces per anterior tooth.
func (t Tooth) IndexSurfaces() int {
	if t.Anterior() {
		return 4
	}
	return 5
}

// ParseTooth reads a tooth number ("16", " 55 ").
func ParseTooth(s string) (Tooth, error) {
	s = strings.TrimSpace(s)
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || fmt.Sprint(n) != s {
		return 0, inputErr("tooth.invalid", s)
	}
	t := Tooth(n)
	if !t.Valid() {
		return 0, inputErr("tooth.invalid", s)
	}
	return t, nil
}

// AllTeeth lists the 52 teeth: the 32 permanent then the 20 deciduous, each
// by quadrant and position.
func AllTeeth() []Tooth {
	out := make([]Tooth, 0, 52)
	for q := 1; q <= 8; q++ {
		n := 8
		if q >= 5 {
			n = 5
		}
		for p := 1; p <= n; p++ {
			out = append(out, Tooth(q*10+p))
		}
	}
	return out
}

// Surface is a tooth surface: M mesial, O occlusal, I incisal, D distal,
// B buccal/facial (also written F or V), L lingual/palatal (also P).
type Surface byte

// The surfaces in the order they are written.
const (
	SurfaceM Surface = 'M'
	SurfaceO Surface = 'O'
	SurfaceI Surface = 'I'
	SurfaceD Surface = 'D'
	SurfaceB Surface = 'B'
	SurfaceL Surface = 'L'
)

var surfaceOrder = []Surface{SurfaceM, SurfaceO, SurfaceI, SurfaceD, SurfaceB, SurfaceL}

// Surfaces of a tooth: posterior teeth have M O D B L, anterior M I D B L.
func (t Tooth) Surfaces() []Surface {
	if t.Anterior() {
		return []Surface{SurfaceM, SurfaceI, SurfaceD, SurfaceB, SurfaceL}
	}
	return []Surface{SurfaceM, SurfaceO, SurfaceD, SurfaceB, SurfaceL}
}

// Has reports whether the tooth has surface s.
func (t Tooth) Has(s Surface) bool { return slices.Contains(t.Surfaces(), s) }

// ParseSurfaces reads surface letters for tooth t ("mod", "M,O,D", "DOP")
// into canonical form ("MOD"): F and V are written B, P is written L, and
// duplicates collapse. A surface the tooth does not have (incisal on a
// molar, occlusal on an incisor) is an error.
func ParseSurfaces(t Tooth, s string) (string, error) {
	seen := map[Surface]bool{}
	for _, r := range strings.ToUpper(s) {
		var sf Surface
		switch r {
		case ' ', ',', '-', '/':
			continue
		case 'M', 'O', 'I', 'D', 'B', 'L':
			sf = Surface(r)
		case 'F', 'V':
			sf = SurfaceB
		case 'P':
			sf = SurfaceL
		default:
			return "", inputErr("surface.unknown", string(r))
		}
		if !t.Has(sf) {
			return "", inputErr("surface.notontooth", string(r), int(t))
		}
		seen[sf] = true
	}
	var b strings.Builder
	for _, sf := range surfaceOrder {
		if seen[sf] {
			b.WriteByte(byte(sf))
		}
	}
	return b.String(), nil
}

// Dentition is the set of teeth a mouth has.
type Dentition string

// Dentitions.
const (
	DentitionNone      Dentition = "none" // no teeth yet
	DentitionDeciduous Dentition = "deciduous"
	DentitionMixed     Dentition = "mixed"
	DentitionPermanent Dentition = "permanent"
)

// Typical eruption and shedding ages (rounded means of the usual dental
// development tables; individual variation is large, so recorded findings
// always win over these). Deciduous teeth erupt at the given month and are
// shed when their successor erupts; third molars are never assumed.
var (
	deciduousEruptMonths = [6]int{0, 8, 11, 19, 16, 29}
	permanentEruptMonths = [9]int{0, 7 * 12, 8 * 12, 11 * 12, 10 * 12, 11 * 12, 6 * 12, 12 * 12, 0}
)

// EruptionDate is when t typically erupts in a child born on birth; zero
// for third molars (never assumed).
func EruptionDate(t Tooth, birth time.Time) time.Time {
	var m int
	if t.Deciduous() {
		m = deciduousEruptMonths[t.Position()]
	} else {
		m = permanentEruptMonths[t.Position()]
	}
	if m == 0 {
		return time.Time{}
	}
	return addMonths(birth, m)
}

// SheddingDate is when a deciduous tooth is typically shed (its successor
// erupts); zero for permanent teeth.
func SheddingDate(t Tooth, birth time.Time) time.Time {
	if !t.Deciduous() {
		return time.Time{}
	}
	return EruptionDate(t.Successor(), birth)
}

// ExpectedDentition is the dentition typical of a child born on birth at
// date at: none before the first deciduous tooth, deciduous until the first
// permanent molars (6 years), mixed until the last deciduous tooth is shed
// (12 years), then permanent.
func ExpectedDentition(birth, at time.Time) Dentition {
	var dec, perm bool
	for _, t := range AllTeeth() {
		if expectedPresent(t, birth, at) {
			if t.Deciduous() {
				dec = true
			} else {
				perm = true
			}
		}
	}
	return dentitionOf(dec, perm)
}

func dentitionOf(dec, perm bool) Dentition {
	switch {
	case dec && perm:
		return DentitionMixed
	case dec:
		return DentitionDeciduous
	case perm:
		return DentitionPermanent
	}
	return DentitionNone
}

// expectedPresent reports whether t is typically in the mouth at date at.
func expectedPresent(t Tooth, birth, at time.Time) bool {
	e := EruptionDate(t, birth)
	if e.IsZero() || at.Before(e) {
		return false
	}
	if s := SheddingDate(t, birth); !s.IsZero() && !at.Before(s) {
		return false
	}
	return true
}

// addMonths adds n months to a date, clamping to the last day of the month
// (31 January + 1 month = 28/29 February), which is how people count
// "8 months old".
func addMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, t.Location())
	last := first.AddDate(0, 1, -1).Day()
	if d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
}

// ageYears is the age in whole years at date at.
func ageYears(birth, at time.Time) int {
	y := at.Year() - birth.Year()
	if at.Month() < birth.Month() || at.Month() == birth.Month() && at.Day() < birth.Day() {
		y--
	}
	return y
}

// ageMonths is the age in whole months at date at.
func ageMonths(birth, at time.Time) int {
	m := (at.Year()-birth.Year())*12 + int(at.Month()) - int(birth.Month())
	if at.Day() < birth.Day() && addMonths(birth, m).After(at) {
		m--
	}
	return m
}

// ToothName is a plain-language name of a tooth, in Danish or English, for
// parents ("øverste højre 6-års tand").
func ToothName(t Tooth, lang string) string {
	if !t.Valid() {
		return fmt.Sprint(int(t))
	}
	da := lang != "en"
	var jaw, side string
	upper := t.Upper()
	q := t.Quadrant()
	right := q == 1 || q == 4 || q == 5 || q == 8
	if da {
		jaw, side = "nederste", "venstre"
		if upper {
			jaw = "øverste"
		}
		if right {
			side = "højre"
		}
	} else {
		jaw, side = "lower", "left"
		if upper {
			jaw = "upper"
		}
		if right {
			side = "right"
		}
	}
	kind := toothKind(t, da)
	return fmt.Sprintf("%s %s %s (%d)", jaw, side, kind, int(t))
}

func toothKind(t Tooth, da bool) string {
	p := t.Position()
	if t.Deciduous() {
		names := map[bool][6]string{
			true:  {"", "midterste mælkefortand", "mælkefortand", "mælkehjørnetand", "første mælkekindtand", "anden mælkekindtand"},
			false: {"", "central milk incisor", "lateral milk incisor", "milk canine", "first milk molar", "second milk molar"},
		}
		return names[da][p]
	}
	names := map[bool][9]string{
		true:  {"", "midterste fortand", "fortand", "hjørnetand", "første lille kindtand", "anden lille kindtand", "6-års tand", "12-års tand", "visdomstand"},
		false: {"", "central incisor", "lateral incisor", "canine", "first premolar", "second premolar", "first molar", "second molar", "wisdom tooth"},
	}
	return names[da][p]
}
