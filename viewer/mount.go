package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Template is a mount layout: slots on a width × height canvas. Templates
// are data (table viewer.mount_template): the built-in ones for every
// municipality and those a municipality's administrators add.
type Template struct {
	ID     int64  `json:"id"`
	Code   string `json:"code"`
	NameDA string `json:"name_da"`
	NameEN string `json:"name_en"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Slots  []Slot `json:"slots"`
	// BuiltIn is true for the templates every municipality has.
	BuiltIn bool `json:"built_in"`
}

// Name is the template's name in a language ("da" or "en").
func (t Template) Name(lang string) string {
	if lang == "en" {
		return t.NameEN
	}
	return t.NameDA
}

// Slot is one place in a mount.
type Slot struct {
	N      int      `json:"n"`
	X      int      `json:"x"`
	Y      int      `json:"y"`
	W      int      `json:"w"`
	H      int      `json:"h"`
	Order  int      `json:"order"`  // acquisition order: images without matching teeth fill slots in this order
	Rotate int      `json:"rotate"` // degrees clockwise applied when an image is placed (0, 90, 180, 270)
	Flip   bool     `json:"flip"`   // mirror horizontally when placed
	Kind   string   `json:"kind"`   // "pa", "bw", "pano" or "any"
	Teeth  []string `json:"teeth"`  // ISO 3950 numbers the slot shows
}

// Errors of the mount functions.
var (
	ErrInvalid  = errors.New("viewer: invalid input")
	ErrNotFound = errors.New("viewer: not found")
	ErrConflict = errors.New("viewer: changed by someone else")
)

// Validate checks a template given by an administrator.
func (t *Template) Validate() error {
	t.Code = strings.TrimSpace(strings.ToLower(t.Code))
	t.NameDA, t.NameEN = strings.TrimSpace(t.NameDA), strings.TrimSpace(t.NameEN)
	if t.NameEN == "" {
		t.NameEN = t.NameDA
	}
	// As the table's CHECK: a letter or digit first (otherwise the insert
	// fails with a database error instead of this message).
	if t.Code == "" || len(t.Code) > 40 || strings.Trim(t.Code, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" || t.Code[0] == '-' || t.Code[0] == '_' {
		return fmt.Errorf("%w: code must be lower-case letters, digits, - or _, starting with a letter or digit", ErrInvalid)
	}
	if t.NameDA == "" || len(t.NameDA) > 100 || len(t.NameEN) > 100 {
		return fmt.Errorf("%w: a name of 1 to 100 characters is needed", ErrInvalid)
	}
	if t.Width < 100 || t.Width > 10000 || t.Height < 100 || t.Height > 10000 {
		return fmt.Errorf("%w: width and height must be 100 to 10000", ErrInvalid)
	}
	if len(t.Slots) == 0 || len(t.Slots) > 64 {
		return fmt.Errorf("%w: a template has 1 to 64 slots", ErrInvalid)
	}
	seen := map[int]bool{}
	for i := range t.Slots {
		s := &t.Slots[i]
		if s.N <= 0 || seen[s.N] {
			return fmt.Errorf("%w: slot numbers must be positive and unique (slot %d)", ErrInvalid, i+1)
		}
		seen[s.N] = true
		// Each bound on its own first: X+W of huge numbers overflows.
		if s.W <= 0 || s.H <= 0 || s.X < 0 || s.Y < 0 || s.X > t.Width || s.W > t.Width || s.Y > t.Height || s.H > t.Height ||
			s.X+s.W > t.Width || s.Y+s.H > t.Height {
			return fmt.Errorf("%w: slot %d lies outside the template", ErrInvalid, s.N)
		}
		if s.Rotate%90 != 0 || s.Rotate < 0 || s.Rotate >= 360 {
			return fmt.Errorf("%w: slot %d: rotate must be 0, 90, 180 or 270", ErrInvalid, s.N)
		}
		if s.Kind == "" {
			s.Kind = "any"
		}
		if !slices.Contains([]string{"pa", "bw", "pano", "any"}, s.Kind) {
			return fmt.Errorf("%w: slot %d: kind must be pa, bw, pano or any", ErrInvalid, s.N)
		}
		if s.Order == 0 {
			s.Order = s.N
		}
		for _, tooth := range s.Teeth {
			if !ValidTooth(tooth) {
				return fmt.Errorf("%w: slot %d: %q is not an ISO 3950 tooth number", ErrInvalid, s.N, tooth)
			}
		}
	}
	return nil
}

// ValidTooth reports whether s is an ISO 3950 (FDI) tooth number: permanent
// 11–18 … 41–48, deciduous 51–55 … 81–85 (DOMAIN.md "Dental care").
func ValidTooth(s string) bool {
	if len(s) != 2 || s[0] < '1' || s[0] > '8' || s[1] < '1' {
		return false
	}
	if s[0] <= '4' {
		return s[1] <= '8'
	}
	return s[1] <= '5'
}

// Candidate is an image that may go into a mount.
type Candidate struct {
	SOPInstanceUID string
	Kind           string   // image kind (KindIntraoral, KindBitewing, KindPanoramic …)
	Teeth          []string // ISO 3950 numbers from the Primary Anatomic Structure Sequence
	Order          int      // acquisition order within the candidates (0, 1, 2 …)
}

// Placement is an image in a slot.
type Placement struct {
	Slot   int    `json:"slot"`
	SOP    string `json:"sop"`
	Rotate int    `json:"rotate"`
	Flip   bool   `json:"flip"`
	// Auto is true when the image was placed automatically (not moved by a person).
	Auto bool `json:"auto"`
}

// fits reports whether an image of kind k may go into slot s.
func fits(s Slot, k string) bool {
	switch s.Kind {
	case "pano":
		return k == KindPanoramic
	case "pa", "bw":
		return k == KindIntraoral || k == KindBitewing
	}
	return true
}

// toothScore is how well an image's teeth match a slot's: the Jaccard
// index of the two sets (1 = the same teeth), 0 when none is shared.
func toothScore(slot, img []string) float64 {
	if len(slot) == 0 || len(img) == 0 {
		return 0
	}
	inter := 0
	for _, t := range img {
		if slices.Contains(slot, t) {
			inter++
		}
	}
	if inter == 0 {
		return 0
	}
	return float64(inter) / float64(len(slot)+len(img)-inter)
}

// Place puts the images that are not yet in the mount into its free slots:
// first every image whose tooth codes match a free slot (best match first,
// in acquisition order), then the rest into the remaining slots in the
// template's acquisition order. Slots rotate and flip the image as the
// template says. It returns the new placements only; images that find no
// free slot stay out.
func Place(t Template, taken []Placement, images []Candidate) []Placement {
	used := map[int]bool{}
	in := map[string]bool{}
	for _, p := range taken {
		used[p.Slot] = true
		in[p.SOP] = true
	}
	var todo []Candidate
	for _, c := range images {
		if !in[c.SOPInstanceUID] {
			todo = append(todo, c)
		}
	}
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].Order < todo[j].Order })
	slots := append([]Slot(nil), t.Slots...)
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].Order < slots[j].Order })
	var out []Placement
	put := func(s Slot, c Candidate) {
		used[s.N] = true
		in[c.SOPInstanceUID] = true
		out = append(out, Placement{Slot: s.N, SOP: c.SOPInstanceUID, Rotate: s.Rotate, Flip: s.Flip, Auto: true})
	}
	// Pass 1: by tooth codes. Repeatedly take the best (image, slot) pair,
	// so that an image showing exactly a slot's teeth wins it over one
	// that only overlaps.
	for {
		best, bi, bs := 0.0, -1, -1
		for i, c := range todo {
			if in[c.SOPInstanceUID] {
				continue
			}
			for k, s := range slots {
				if used[s.N] || !fits(s, c.Kind) {
					continue
				}
				if sc := toothScore(s.Teeth, c.Teeth); sc > best {
					best, bi, bs = sc, i, k
				}
			}
		}
		if bi < 0 {
			break
		}
		put(slots[bs], todo[bi])
	}
	// Pass 2: the rest in acquisition order.
	for _, c := range todo {
		if in[c.SOPInstanceUID] {
			continue
		}
		for _, s := range slots {
			if !used[s.N] && fits(s, c.Kind) {
				put(s, c)
				break
			}
		}
	}
	return out
}

// Templates lists the templates the tenant of tx sees, built-in first.
func Templates(ctx context.Context, tx pgx.Tx) ([]Template, error) {
	rows, err := tx.Query(ctx, `SELECT id, code, name_da, name_en, width, height, slots, tenant_id IS NULL
		FROM viewer.mount_template ORDER BY tenant_id NULLS FIRST, id`)
	if err != nil {
		return nil, fmt.Errorf("viewer: templates: %w", err)
	}
	return pgx.CollectRows(rows, scanTemplate)
}

func scanTemplate(r pgx.CollectableRow) (Template, error) {
	var t Template
	var slots []byte
	if err := r.Scan(&t.ID, &t.Code, &t.NameDA, &t.NameEN, &t.Width, &t.Height, &slots, &t.BuiltIn); err != nil {
		return t, fmt.Errorf("viewer: template: %w", err)
	}
	if err := json.Unmarshal(slots, &t.Slots); err != nil {
		return t, fmt.Errorf("viewer: template %s slots: %w", t.Code, err)
	}
	return t, nil
}

// TemplateByCode returns the tenant's template with the code (its own
// before a built-in one of the same code).
func TemplateByCode(ctx context.Context, tx pgx.Tx, code string) (Template, error) {
	rows, err := tx.Query(ctx, `SELECT id, code, name_da, name_en, width, height, slots, tenant_id IS NULL
		FROM viewer.mount_template WHERE code = $1 ORDER BY tenant_id NULLS LAST LIMIT 1`, code)
	if err != nil {
		return Template{}, fmt.Errorf("viewer: template: %w", err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTemplate)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("%w: template %q", ErrNotFound, code)
	}
	return t, err
}

// AddTemplate stores a new template of the tenant (tx scoped to it).
func AddTemplate(ctx context.Context, tx pgx.Tx, tenantID, userID int64, t Template) (Template, error) {
	if err := t.Validate(); err != nil {
		return t, err
	}
	slots, err := json.Marshal(t.Slots)
	if err != nil {
		return t, fmt.Errorf("viewer: template: %w", err)
	}
	err = tx.QueryRow(ctx, `INSERT INTO viewer.mount_template (tenant_id, code, name_da, name_en, width, height, slots, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`, tenantID, t.Code, t.NameDA, t.NameEN, t.Width, t.Height, slots, userID).Scan(&t.ID)
	if err != nil {
		if strings.Contains(err.Error(), "mount_template_code") {
			return t, fmt.Errorf("%w: a template with code %q exists", ErrConflict, t.Code)
		}
		return t, fmt.Errorf("viewer: add template: %w", err)
	}
	return t, nil
}

// Mount is a template filled with a patient's images.
type Mount struct {
	ID         int64
	PersonID   int64
	Template   Template
	StudyUID   string
	Placements []Placement
}

// CreateMount stores a new mount of a person.
func CreateMount(ctx context.Context, tx pgx.Tx, tenantID, personID, userID int64, t Template, studyUID string) (Mount, error) {
	m := Mount{PersonID: personID, Template: t, StudyUID: studyUID}
	err := tx.QueryRow(ctx, `INSERT INTO viewer.mount (tenant_id, person_id, template_id, study_uid, created_by)
		VALUES ($1, $2, $3, $4, NULLIF($5, 0)) RETURNING id`, tenantID, personID, t.ID, studyUID, userID).Scan(&m.ID)
	if err != nil {
		return m, fmt.Errorf("viewer: create mount: %w", err)
	}
	return m, nil
}

// GetMount loads a mount of a person with its placements.
func GetMount(ctx context.Context, tx pgx.Tx, personID, mountID int64) (Mount, error) {
	var m Mount
	var slots []byte
	err := tx.QueryRow(ctx, `SELECT m.id, m.person_id, m.study_uid, t.id, t.code, t.name_da, t.name_en, t.width, t.height, t.slots, t.tenant_id IS NULL
		FROM viewer.mount m JOIN viewer.mount_template t ON t.id = m.template_id WHERE m.id = $1 AND m.person_id = $2`, mountID, personID).
		Scan(&m.ID, &m.PersonID, &m.StudyUID, &m.Template.ID, &m.Template.Code, &m.Template.NameDA, &m.Template.NameEN,
			&m.Template.Width, &m.Template.Height, &slots, &m.Template.BuiltIn)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("%w: mount", ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("viewer: mount: %w", err)
	}
	if err := json.Unmarshal(slots, &m.Template.Slots); err != nil {
		return m, fmt.Errorf("viewer: mount template: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT slot, sop_uid, rotate, flip, placed_by IS NULL FROM viewer.mount_slot WHERE mount_id = $1 ORDER BY slot`, m.ID)
	if err != nil {
		return m, fmt.Errorf("viewer: mount slots: %w", err)
	}
	m.Placements, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Placement, error) {
		var p Placement
		err := r.Scan(&p.Slot, &p.SOP, &p.Rotate, &p.Flip, &p.Auto)
		return p, err
	})
	if err != nil {
		return m, fmt.Errorf("viewer: mount slots: %w", err)
	}
	return m, nil
}

// MountsOfPerson lists a person's mounts, newest first (without placements).
func MountsOfPerson(ctx context.Context, tx pgx.Tx, personID int64) ([]Mount, error) {
	rows, err := tx.Query(ctx, `SELECT m.id, m.study_uid, t.code, t.name_da, t.name_en,
			(SELECT count(*) FROM viewer.mount_slot s WHERE s.mount_id = m.id), jsonb_array_length(t.slots)
		FROM viewer.mount m JOIN viewer.mount_template t ON t.id = m.template_id WHERE m.person_id = $1 ORDER BY m.created DESC, m.id DESC`, personID)
	if err != nil {
		return nil, fmt.Errorf("viewer: mounts: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Mount, error) {
		m := Mount{PersonID: personID}
		var filled, total int
		err := r.Scan(&m.ID, &m.StudyUID, &m.Template.Code, &m.Template.NameDA, &m.Template.NameEN, &filled, &total)
		m.Placements = make([]Placement, filled)
		m.Template.Slots = make([]Slot, total)
		return m, err
	})
}

// SavePlacements inserts automatic placements.
func SavePlacements(ctx context.Context, tx pgx.Tx, tenantID, mountID int64, ps []Placement) error {
	for _, p := range ps {
		if _, err := tx.Exec(ctx, `INSERT INTO viewer.mount_slot (mount_id, tenant_id, slot, sop_uid, rotate, flip)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, mountID, tenantID, p.Slot, p.SOP, p.Rotate, p.Flip); err != nil {
			return fmt.Errorf("viewer: place: %w", err)
		}
	}
	return nil
}

// MoveImage puts an image into a slot of a mount with a rotation and flip
// (a person's choice). An image already in the target slot swaps places
// with it (keeping its own rotation and flip).
func MoveImage(ctx context.Context, tx pgx.Tx, tenantID, userID int64, m Mount, slot int, sop string, rotate int, flip bool) error {
	if !slices.ContainsFunc(m.Template.Slots, func(s Slot) bool { return s.N == slot }) {
		return fmt.Errorf("%w: the mount has no slot %d", ErrInvalid, slot)
	}
	if rotate%90 != 0 || rotate < 0 || rotate >= 360 {
		return fmt.Errorf("%w: rotate must be 0, 90, 180 or 270", ErrInvalid)
	}
	// Lock the mount, then read its placements: m.Placements may predate
	// another move committed meanwhile, and a swap planned on them would
	// put an image into a second slot or drop one. (Locking the slot rows
	// is not enough: empty slots have none.)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM viewer.mount WHERE id = $1 FOR UPDATE`, m.ID); err != nil {
		return fmt.Errorf("viewer: move: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT slot, sop_uid, rotate, flip FROM viewer.mount_slot WHERE mount_id = $1`, m.ID)
	if err != nil {
		return fmt.Errorf("viewer: move: %w", err)
	}
	current, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Placement, error) {
		var p Placement
		err := r.Scan(&p.Slot, &p.SOP, &p.Rotate, &p.Flip)
		return p, err
	})
	if err != nil {
		return fmt.Errorf("viewer: move: %w", err)
	}
	var from *Placement
	var occupant *Placement
	for i := range current {
		p := &current[i]
		if p.SOP == sop {
			from = p
		}
		if p.Slot == slot {
			occupant = p
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM viewer.mount_slot WHERE mount_id = $1 AND (slot = $2 OR sop_uid = $3)`, m.ID, slot, sop); err != nil {
		return fmt.Errorf("viewer: move: %w", err)
	}
	if occupant != nil && occupant.SOP != sop && from != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO viewer.mount_slot (mount_id, tenant_id, slot, sop_uid, rotate, flip, placed_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, m.ID, tenantID, from.Slot, occupant.SOP, occupant.Rotate, occupant.Flip, userID); err != nil {
			return fmt.Errorf("viewer: move: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO viewer.mount_slot (mount_id, tenant_id, slot, sop_uid, rotate, flip, placed_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, m.ID, tenantID, slot, sop, rotate, flip, userID); err != nil {
		return fmt.Errorf("viewer: move: %w", err)
	}
	return nil
}
