package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
)

func entryObject(id int64) string { return fmt.Sprintf("journal.entry/%d", id) }

// Create writes a new entry for a person (journal.write; signing at once
// needs journal.sign). A planned treatment adds items to the patient's
// active plan (creating it); a performed treatment pointing to a plan item
// marks it done; an examination's risk becomes the patient's risk.
// Invalid input is an *InputError wrapping ErrInvalid; nothing is written.
func (s *Service) Create(ctx context.Context, p *auth.Principal, personID int64, n NewEntry) (Entry, error) {
	if n.Sign {
		if err := requirePerm(p, auth.PermJournalSign); err != nil {
			return Entry{}, err
		}
	}
	var out Entry
	err := s.access(ctx, p, auth.PermJournalWrite, personID, audit.ActionCreate, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		person, err := getPerson(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		if err := n.Validate(Patient{PersonID: personID, BirthDate: person.BirthDate}, s.now(), s.Catalogue, s.SKS); err != nil {
			return "", nil, err
		}
		if err := s.checkXRay(ctx, p, personID, n); err != nil {
			return "", nil, err
		}
		id, err := insertEntry(ctx, tx, p, personID, n, 0, "")
		if err != nil {
			return "", nil, err
		}
		if err := s.sideEffects(ctx, tx, p, personID, id, n); err != nil {
			return "", nil, err
		}
		if n.Sign {
			if err := insertSignature(ctx, tx, p, id); err != nil {
				return "", nil, err
			}
		}
		if out, err = loadEntry(ctx, tx, personID, id); err != nil {
			return "", nil, err
		}
		return entryObject(id), map[string]any{"kind": string(n.Kind), "signed": n.Sign}, nil
	})
	return out, err
}

func insertEntry(ctx context.Context, tx pgx.Tx, p *auth.Principal, personID int64, n NewEntry, supersedes int64, reason string) (int64, error) {
	body, err := json.Marshal(n.Content)
	if err != nil {
		return 0, fmt.Errorf("journal: encode entry: %w", err)
	}
	var sup, rsn any
	if supersedes != 0 {
		sup, rsn = supersedes, reason
	}
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO journal.entry (tenant_id, person_id, kind, author_id, author_name, author_role, care_time, supersedes, reason, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		p.TenantID, personID, string(n.Kind), p.UserID, authorName(p), p.Role, n.CareTime, sup, rsn, body).Scan(&id)
	if err != nil {
		return 0, dbErr("write entry", err)
	}
	return id, nil
}

func authorName(p *auth.Principal) string {
	if p.DisplayName != "" {
		return p.DisplayName
	}
	return p.Username
}

func insertSignature(ctx context.Context, tx pgx.Tx, p *auth.Principal, entryID int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO journal.signature (entry_id, tenant_id, signed_by) VALUES ($1, $2, $3)`, entryID, p.TenantID, p.UserID)
	return dbErr("sign entry", err)
}

// sideEffects updates the plan and the risk after a new (not corrected) entry.
// checkXRay asks the DICOM index (when it can say) whether an X-ray
// description's study and instances are the person's, as image links do:
// a description must not name another person's images.
func (s *Service) checkXRay(ctx context.Context, p *auth.Principal, personID int64, n NewEntry) error {
	c, ok := s.images().(ImageChecker)
	if !ok || n.Kind != KindXRay || n.XRay == nil {
		return nil
	}
	if err := c.CheckImageOf(ctx, p.TenantID, personID, n.XRay.StudyUID, "", ""); err != nil {
		return err
	}
	for _, u := range n.XRay.InstanceUIDs {
		if err := c.CheckImageOf(ctx, p.TenantID, personID, n.XRay.StudyUID, "", u); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) sideEffects(ctx context.Context, tx pgx.Tx, p *auth.Principal, personID, entryID int64, n NewEntry) error {
	switch n.Kind {
	case KindExamination:
		if n.Risk != "" {
			// The profile's lock first: the values carried over must be
			// the last saved, not those before a save that commits while
			// this waits for the lock.
			if err := lockProfile(ctx, tx, personID); err != nil {
				return err
			}
			pr, err := loadProfile(ctx, tx, personID)
			if err != nil {
				return err
			}
			if pr.Risk != n.Risk {
				pr.Risk = n.Risk
				if err := insertProfile(ctx, tx, p, personID, pr); err != nil {
					return err
				}
			}
		}
	case KindTreatmentPlanned:
		planID, err := activePlan(ctx, tx, p, personID, true)
		if err != nil {
			return err
		}
		for _, tr := range n.Treatments {
			var tooth any
			if tr.Tooth != 0 {
				tooth = int(tr.Tooth)
			}
			var itemID int64
			err := tx.QueryRow(ctx, `INSERT INTO journal.plan_item (tenant_id, plan_id, person_id, tooth, surfaces, procedure, note, entry_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
				p.TenantID, planID, personID, tooth, tr.Surfaces, tr.Procedure, tr.Note, entryID).Scan(&itemID)
			if err != nil {
				return dbErr("plan item", err)
			}
			if err := itemEvent(ctx, tx, p, itemID, ItemPlanned, 0, ""); err != nil {
				return err
			}
		}
	case KindTreatmentPerformed:
		for _, tr := range n.Treatments {
			if tr.PlanItemID == 0 {
				continue
			}
			if err := s.setItemStatus(ctx, tx, p, personID, tr.PlanItemID, ItemDone, entryID, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// activePlan returns the id of the person's active plan, creating it when
// create is set (0 when there is none and create is not).
func activePlan(ctx context.Context, tx pgx.Tx, p *auth.Principal, personID int64, create bool) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM journal.plan WHERE person_id = $1 AND closed_at IS NULL FOR UPDATE`, personID).Scan(&id)
	if err == nil || !errors.Is(err, pgx.ErrNoRows) || !create {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil
		}
		return id, dbErr("plan", err)
	}
	err = tx.QueryRow(ctx, `INSERT INTO journal.plan (tenant_id, person_id, created_by) VALUES ($1, $2, $3) RETURNING id`,
		p.TenantID, personID, p.UserID).Scan(&id)
	return id, dbErr("create plan", err)
}

func itemEvent(ctx context.Context, tx pgx.Tx, p *auth.Principal, itemID int64, st ItemStatus, entryID int64, note string) error {
	var e any
	if entryID != 0 {
		e = entryID
	}
	_, err := tx.Exec(ctx, `INSERT INTO journal.plan_item_event (tenant_id, item_id, status, by_user, entry_id, note) VALUES ($1, $2, $3, $4, $5, $6)`,
		p.TenantID, itemID, string(st), p.UserID, e, note)
	return dbErr("plan item status", err)
}

// setItemStatus moves a planned item of the person's active plan to st and
// closes the plan when no item is left planned.
func (s *Service) setItemStatus(ctx context.Context, tx pgx.Tx, p *auth.Principal, personID, itemID int64, st ItemStatus, entryID int64, note string) error {
	if !slices.Contains(ItemStatuses, st) || st == ItemPlanned {
		return inputErr("plan.status", string(st))
	}
	// Lock the active plan first (as adding items does), so that the item
	// states read below are the committed ones: two requests cannot both
	// close one item, and a plan is not closed under an item being added.
	if _, err := activePlan(ctx, tx, p, personID, false); err != nil {
		return err
	}
	plan, err := loadPlan(ctx, tx, personID)
	if err != nil {
		return err
	}
	if plan == nil {
		return &InputError{Key: "plan.item", Args: []any{itemID}, Sentinel: ErrNotFound}
	}
	idx := slices.IndexFunc(plan.Items, func(it PlanItem) bool { return it.ID == itemID })
	if idx < 0 {
		return &InputError{Key: "plan.item", Args: []any{itemID}, Sentinel: ErrNotFound}
	}
	if cur := plan.Items[idx].Status; cur != ItemPlanned {
		return conflictErr("plan.closed", itemID, string(cur))
	}
	if err := itemEvent(ctx, tx, p, itemID, st, entryID, note); err != nil {
		return err
	}
	open := false
	for i, it := range plan.Items {
		if i != idx && it.Status == ItemPlanned {
			open = true
		}
	}
	if !open {
		_, err := tx.Exec(ctx, `UPDATE journal.plan SET closed_at = clock_timestamp(), closed_by = $2 WHERE id = $1`, plan.ID, p.UserID)
		return dbErr("close plan", err)
	}
	return nil
}

// SetItemStatus marks a plan item done, referred or cancelled.
func (s *Service) SetItemStatus(ctx context.Context, p *auth.Principal, personID, itemID int64, st ItemStatus, note string) error {
	note = strings.TrimSpace(note)
	if !validText(note) {
		return inputErr("text.invalid")
	}
	if utf8.RuneCountInString(note) > 2000 {
		return inputErr("text.toolong", 2000)
	}
	return s.access(ctx, p, auth.PermJournalWrite, personID, audit.ActionUpdate, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		if err := s.setItemStatus(ctx, tx, p, personID, itemID, st, 0, note); err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("journal.plan_item/%d", itemID), map[string]any{"status": string(st)}, nil
	})
}

// Sign signs an entry (journal.sign), which locks it. Only the author
// signs, only once, and only the current version.
func (s *Service) Sign(ctx context.Context, p *auth.Principal, personID, entryID int64) (Entry, error) {
	var out Entry
	err := s.access(ctx, p, auth.PermJournalSign, personID, audit.ActionUpdate, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		e, err := loadEntry(ctx, tx, personID, entryID)
		if err != nil {
			return "", nil, err
		}
		switch {
		case e.Signed():
			return "", nil, lockedErr("sign.signed", entryID)
		case !e.Current():
			return "", nil, lockedErr("sign.superseded", entryID)
		case e.AuthorID != p.UserID:
			return "", nil, &InputError{Key: "sign.author", Args: []any{entryID}, Sentinel: ErrForbidden}
		}
		if err := insertSignature(ctx, tx, p, entryID); err != nil {
			return "", nil, err
		}
		out, err = loadEntry(ctx, tx, personID, entryID)
		return entryObject(entryID), map[string]any{"signed": true}, err
	})
	return out, err
}

// Correct writes a new version of an entry with a reason; the old version
// is kept and marked replaced. The kind stays the same. A signed (locked)
// entry can only be corrected by a version signed as it is written (n.Sign,
// needing journal.sign). Only the current version can be corrected.
func (s *Service) Correct(ctx context.Context, p *auth.Principal, personID, entryID int64, n NewEntry, reason string) (Entry, error) {
	reason = strings.TrimSpace(reason)
	if n.Sign {
		if err := requirePerm(p, auth.PermJournalSign); err != nil {
			return Entry{}, err
		}
	}
	var out Entry
	err := s.access(ctx, p, auth.PermJournalWrite, personID, audit.ActionUpdate, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		old, err := loadEntry(ctx, tx, personID, entryID)
		if err != nil {
			return "", nil, err
		}
		if !old.Current() {
			return "", nil, lockedErr("correction.superseded", entryID, old.SupersededBy)
		}
		if n.Kind == "" {
			n.Kind = old.Kind
		}
		if n.Kind != old.Kind {
			return "", nil, inputErr("correction.kind", string(old.Kind))
		}
		if reason == "" {
			return "", nil, inputErr("correction.reason")
		}
		if !validText(reason) {
			return "", nil, inputErr("text.invalid")
		}
		if utf8.RuneCountInString(reason) > 2000 {
			return "", nil, inputErr("text.toolong", 2000)
		}
		if old.Signed() && !n.Sign {
			return "", nil, lockedErr("correction.unsigned", entryID)
		}
		if n.CareTime.IsZero() {
			n.CareTime = old.CareTime
		}
		person, err := getPerson(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		if err := n.Validate(Patient{PersonID: personID, BirthDate: person.BirthDate}, s.now(), s.Catalogue, s.SKS); err != nil {
			return "", nil, err
		}
		if err := s.checkXRay(ctx, p, personID, n); err != nil {
			return "", nil, err
		}
		id, err := insertEntry(ctx, tx, p, personID, n, entryID, reason)
		if err != nil {
			return "", nil, err
		}
		if n.Sign {
			if err := insertSignature(ctx, tx, p, id); err != nil {
				return "", nil, err
			}
		}
		// Check now, not at commit, that a correction of a signed entry is
		// signed: the entry may have been signed by a transaction that
		// committed while this one waited, and the refusal must reach the
		// user as "locked", not as a failed commit.
		if _, err := tx.Exec(ctx, `SET CONSTRAINTS journal.correction_signed IMMEDIATE`); err != nil {
			return "", nil, dbErr("correct entry", err)
		}
		out, err = loadEntry(ctx, tx, personID, id)
		return entryObject(id), map[string]any{"supersedes": entryID, "signed": n.Sign}, err
	})
	return out, err
}

// Entries lists every version of a person's entries, newest care time first.
func (s *Service) Entries(ctx context.Context, p *auth.Principal, personID int64) ([]Entry, error) {
	var out []Entry
	err := s.access(ctx, p, auth.PermJournalRead, personID, audit.ActionRead, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		var err error
		out, err = loadEntries(ctx, tx, personID)
		return fmt.Sprintf("journal.entries/%d", personID), map[string]any{"count": len(out)}, err
	})
	return out, err
}

// Versions returns an entry's history, oldest version first, the entry
// itself included (ErrNotFound for an entry of another person).
func (s *Service) Versions(ctx context.Context, p *auth.Principal, personID, entryID int64) ([]Entry, error) {
	var out []Entry
	err := s.access(ctx, p, auth.PermJournalRead, personID, audit.ActionRead, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		all, err := loadEntries(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		out = versionChain(all, entryID)
		if out == nil {
			return "", nil, fmt.Errorf("journal: entry %d: %w", entryID, ErrNotFound)
		}
		return entryObject(entryID), map[string]any{"versions": len(out)}, nil
	})
	return out, err
}

func versionChain(all []Entry, id int64) []Entry {
	byID := map[int64]Entry{}
	for _, e := range all {
		byID[e.ID] = e
	}
	e, ok := byID[id]
	if !ok {
		return nil
	}
	for e.Supersedes != 0 {
		prev, ok := byID[e.Supersedes]
		if !ok {
			break
		}
		e = prev
	}
	var out []Entry
	for {
		out = append(out, e)
		if e.SupersededBy == 0 {
			break
		}
		next, ok := byID[e.SupersededBy]
		if !ok {
			break
		}
		e = next
	}
	return out
}

// SaveProfile records a new version of the patient's health information
// and risk.
func (s *Service) SaveProfile(ctx context.Context, p *auth.Principal, personID int64, pr Profile) error {
	pr.Allergies, pr.Medicines, pr.Conditions = strings.TrimSpace(pr.Allergies), strings.TrimSpace(pr.Medicines), strings.TrimSpace(pr.Conditions)
	for _, v := range []string{pr.Allergies, pr.Medicines, pr.Conditions, string(pr.Risk)} {
		if !validText(v) {
			return inputErr("text.invalid")
		}
		if utf8.RuneCountInString(v) > 4000 {
			return inputErr("profile.toolong")
		}
	}
	if pr.Risk != "" && !slices.Contains(Risks, pr.Risk) {
		return inputErr("risk.invalid", string(pr.Risk))
	}
	return s.access(ctx, p, auth.PermJournalWrite, personID, audit.ActionUpdate, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		return fmt.Sprintf("journal.patient_profile/%d", personID), nil, insertProfile(ctx, tx, p, personID, pr)
	})
}

// lockProfile makes the transaction's saves of the person's profile take
// turns with other transactions' (held until commit; taking it again in the
// same transaction does not wait).
func lockProfile(ctx context.Context, tx pgx.Tx, personID int64) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('journal.patient_profile/' || $1::bigint, 0))`, personID)
	return dbErr("lock profile", err)
}

func insertProfile(ctx context.Context, tx pgx.Tx, p *auth.Principal, personID int64, pr Profile) error {
	// Saves of one person's profile take turns, so that a save based on a
	// version sees every save committed before it.
	if err := lockProfile(ctx, tx, personID); err != nil {
		return err
	}
	if pr.BasedOn != nil {
		cur, err := loadProfile(ctx, tx, personID)
		if err != nil {
			return err
		}
		if cur.Version != *pr.BasedOn {
			return conflictErr("profile.changed", cur.RecordedName)
		}
	}
	var risk any
	if pr.Risk != "" {
		risk = string(pr.Risk)
	}
	_, err := tx.Exec(ctx, `INSERT INTO journal.patient_profile (tenant_id, person_id, risk, allergies, medicines, conditions, recorded_by, recorded_name)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, p.TenantID, personID, risk, pr.Allergies, pr.Medicines, pr.Conditions, p.UserID, authorName(p))
	return dbErr("save profile", err)
}

// RecallInfo is a patient's next examination.
type RecallInfo struct {
	LastExam time.Time `json:"last_exam,omitzero"`
	Due      time.Time `json:"due,omitzero"`
	Basis    string    `json:"basis,omitempty"`
	// None: no recall (free care has ended).
	None    bool `json:"none,omitempty"`
	Overdue bool `json:"overdue,omitempty"`
}

// recallOf computes the next examination from the entries (current
// versions) and the risk.
func (s *Service) recallOf(birth time.Time, entries []Entry, risk Risk, today time.Time) RecallInfo {
	var last *Entry
	for i := range entries {
		e := &entries[i]
		if e.Kind == KindExamination && e.Current() && !e.CareTime.After(today.Add(24*time.Hour)) && (last == nil || e.CareTime.After(last.CareTime)) {
			last = e
		}
	}
	in := RecallInput{BirthDate: birth, Risk: risk}
	var ri RecallInfo
	if last != nil {
		in.LastExam, in.ChosenMonths = last.CareTime, last.RecallMonths
		ri.LastExam = last.CareTime
	}
	if birth.IsZero() {
		ri.None = true
		return ri
	}
	due, basis, ok := s.Rules.NextRecall(in)
	if !ok {
		ri.None = true
		return ri
	}
	ri.Due, ri.Basis = due, basis
	ri.Overdue = due.Before(dateOnly(today))
	return ri
}

// Overview is everything the overview screen shows.
type Overview struct {
	Person   Person        `json:"person"`
	Access   auth.Decision `json:"access"`
	Profile  Profile       `json:"profile"`
	Recall   RecallInfo    `json:"recall"`
	Chart    *Chart        `json:"-"`
	Teeth    []ToothState  `json:"teeth"`
	Open     []ToothState  `json:"open_findings"`
	Plan     *Plan         `json:"plan"`
	Progress Progress      `json:"progress"`
	Indices  Indices       `json:"indices"`
	Entries  []Entry       `json:"entries"`
	// FollowUps are open plan items and, when due within 60 days or
	// overdue, the next examination.
	Images []Image   `json:"images"`
	At     time.Time `json:"at"`
}

// Overview reads a person's record for the overview screen, the chart as
// of at (zero: now).
func (s *Service) Overview(ctx context.Context, p *auth.Principal, personID int64, at time.Time) (*Overview, error) {
	now := s.now()
	if at.IsZero() || at.After(now) {
		at = now
	}
	var ov Overview
	err := s.access(ctx, p, auth.PermJournalRead, personID, audit.ActionRead, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		d, err := auth.Access(ctx, tx, p, personID)
		if err != nil {
			return "", nil, err
		}
		ov.Access = d
		person, err := getPerson(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		ov.Person = personOf(person)
		if ov.Profile, err = loadProfile(ctx, tx, personID); err != nil {
			return "", nil, err
		}
		if ov.Entries, err = loadEntries(ctx, tx, personID); err != nil {
			return "", nil, err
		}
		if ov.Plan, err = loadPlan(ctx, tx, personID); err != nil {
			return "", nil, err
		}
		var items []PlanItem
		if ov.Plan != nil {
			items = ov.Plan.Items
			ov.Progress = ov.Plan.Progress()
		}
		ov.Chart = BuildChart(person.BirthDate, ov.Entries, items, s.Catalogue, at, false)
		ov.Teeth = ov.Chart.List()
		ov.Open = ov.Chart.OpenFindings()
		ov.Indices = ComputeIndices(ov.Chart)
		ov.Recall = s.recallOf(person.BirthDate, ov.Entries, ov.Profile.Risk, now)
		ov.At = at
		return fmt.Sprintf("journal.record/%d", personID), nil, nil
	})
	if err != nil {
		return nil, err
	}
	imgs, err := s.images().ImagesForPerson(ctx, p.TenantID, personID)
	if err != nil {
		s.Logger.WarnContext(ctx, "journal: images unavailable", "err", err)
	}
	ov.Images = imgs
	return &ov, nil
}

// Chart returns the tooth chart at time at (zero: now).
func (s *Service) Chart(ctx context.Context, p *auth.Principal, personID int64, at time.Time) (*Chart, error) {
	if at.IsZero() {
		at = s.now()
	}
	var c *Chart
	err := s.access(ctx, p, auth.PermJournalRead, personID, audit.ActionRead, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		person, err := getPerson(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		entries, err := loadEntries(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		plan, err := loadPlan(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		var items []PlanItem
		if plan != nil {
			items = plan.Items
		}
		c = BuildChart(person.BirthDate, entries, items, s.Catalogue, at, false)
		return fmt.Sprintf("journal.chart/%d", personID), map[string]any{"at": at.Format(time.DateOnly)}, nil
	})
	return c, err
}

// ToothView is one tooth: its state, its history and its images.
type ToothView struct {
	Person Person     `json:"person"`
	State  ToothState `json:"state"`
	// History lists every entry version that mentions the tooth, newest
	// first, superseded versions included (marked).
	History []Entry     `json:"history"`
	Links   []ImageLink `json:"links"`
	Images  []Image     `json:"images"`
}

// Tooth returns a tooth's state at time at, its history and images.
func (s *Service) Tooth(ctx context.Context, p *auth.Principal, personID int64, tooth Tooth, at time.Time) (*ToothView, error) {
	if !tooth.Valid() {
		return nil, inputErr("tooth.invalid", int(tooth))
	}
	if at.IsZero() {
		at = s.now()
	}
	var tv ToothView
	err := s.access(ctx, p, auth.PermJournalRead, personID, audit.ActionRead, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		person, err := getPerson(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		tv.Person = personOf(person)
		entries, err := loadEntries(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		plan, err := loadPlan(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		var items []PlanItem
		if plan != nil {
			items = plan.Items
		}
		tv.State = *BuildChart(person.BirthDate, entries, items, s.Catalogue, at, false).Tooth(tooth)
		for _, e := range entries {
			if mentions(e, tooth) {
				tv.History = append(tv.History, e)
			}
		}
		links, err := loadLinks(ctx, tx, personID)
		if err != nil {
			return "", nil, err
		}
		for _, l := range links {
			if l.Tooth == tooth {
				tv.Links = append(tv.Links, l)
			}
		}
		return fmt.Sprintf("journal.tooth/%d/%d", personID, int(tooth)), nil, nil
	})
	if err != nil {
		return nil, err
	}
	imgs, err := s.images().ImagesForTooth(ctx, p.TenantID, personID, tooth)
	if err != nil {
		s.Logger.WarnContext(ctx, "journal: images unavailable", "err", err)
	}
	tv.Images = imgs
	return &tv, nil
}

func mentions(e Entry, t Tooth) bool {
	for _, f := range e.Findings {
		if f.Tooth == t {
			return true
		}
	}
	for _, tr := range e.Treatments {
		if tr.Tooth == t {
			return true
		}
	}
	for _, d := range e.Diagnoses {
		if d.Tooth == t {
			return true
		}
	}
	if e.XRay != nil && slices.Contains(e.XRay.Teeth, t) {
		return true
	}
	return false
}

// Plan returns the person's active plan (nil when none).
func (s *Service) Plan(ctx context.Context, p *auth.Principal, personID int64) (*Plan, error) {
	var pl *Plan
	err := s.access(ctx, p, auth.PermJournalRead, personID, audit.ActionRead, func(ctx context.Context, tx pgx.Tx) (string, map[string]any, error) {
		var err error
		pl, err = loadPlan(ctx, tx, personID)
		return fmt.Sprintf("journal.plan/%d", personID), nil, err
	})
	return pl, err
}
