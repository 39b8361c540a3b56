package booking

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/molar-health/molar/storage/postgres"
)

// Resource is a chair, room or staff member of a unit.
type Resource struct {
	ID        int64
	UnitID    int64
	Kind      string // KindChair, KindRoom, KindStaff
	Name      string
	UserID    int64  // staff: the user account (0: none)
	StationAE string // a room with an imaging device: its AE title
	Active    bool
}

// Hours is one opening interval on an ISO weekday (1 = Monday … 7 = Sunday),
// in local wall-clock minutes after midnight (Closes may be 24*60).
type Hours struct {
	Weekday int
	Opens   int
	Closes  int
}

// Type is an appointment type.
type Type struct {
	ID   int64
	Code string // stable identifier, e.g. "exam"
	Name string // for staff (Danish)
	// NameEN is the English name for staff (empty: Name).
	NameEN string
	// PublicName is what citizens, e-mails and the calendar see (no health
	// data); empty: a neutral "appointment".
	PublicName  string
	Minutes     int
	SelfService bool
	// Kinds are the resource kinds an appointment holds, one of each.
	Kinds []string
	// Imaging appointments feed the DICOM worklist.
	Imaging              bool
	StationAE            string
	ProcedureCode        string
	ProcedureDescription string
	Modality             string
	// Video meetings (telehealth).
	Video  bool
	Active bool
	// ResourceIDs limits the eligible resources (empty: any of the unit's of
	// the kind).
	ResourceIDs []int64
}

// Duration is the type's length.
func (t Type) Duration() time.Duration { return time.Duration(t.Minutes) * time.Minute }

// Rules are a unit's self-service and notification rules.
type Rules struct {
	// MinNoticeHours: citizens book, move and cancel no later than this
	// before the start.
	MinNoticeHours int
	// HorizonDays: citizens book no further ahead than this.
	HorizonDays   int
	CancelAllowed bool
	// ReminderHours: the reminder goes out this long before the start.
	ReminderHours int
	// AnswerDays: an invitation should be answered within this; FollowupDays
	// between follow-ups, at most MaxFollowups before it is marked unanswered.
	AnswerDays   int
	FollowupDays int
	MaxFollowups int
}

// DefaultRules apply where a unit has none.
var DefaultRules = Rules{MinNoticeHours: 24, HorizonDays: 90, CancelAllowed: true, ReminderHours: 48, AnswerDays: 7, FollowupDays: 3, MaxFollowups: 2}

// The forms of a type's code and modality (migrations/0001_booking.sql).
var (
	typeCode     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)
	typeModality = regexp.MustCompile(`^[A-Z]{0,2}$`)
)

// storable reports whether PostgreSQL can store s as text: UTF-8 without
// NUL (a form can send both; the database would refuse them as an error).
func storable(s ...string) bool {
	for _, v := range s {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return false
		}
	}
	return true
}

func validKind(k string) bool { return k == KindChair || k == KindRoom || k == KindStaff }

// SaveResource creates (ID 0) or updates a resource of a unit.
func (m *Module) SaveResource(ctx context.Context, tenantID int64, r Resource) (Resource, error) {
	r.Name = strings.TrimSpace(r.Name)
	r.StationAE = strings.TrimSpace(r.StationAE)
	if r.UnitID <= 0 || !validKind(r.Kind) || r.Name == "" || len(r.Name) > 200 || len(r.StationAE) > 16 || !storable(r.Name, r.StationAE) {
		return Resource{}, fmt.Errorf("%w: a resource needs a unit, a kind (chair, room, staff) and a name", ErrInvalid)
	}
	if err := m.checkUnit(ctx, tenantID, r.UnitID); err != nil {
		return Resource{}, err
	}
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		if r.ID == 0 {
			r.Active = true
			return tx.QueryRow(ctx, `INSERT INTO booking.resource (tenant_id, unit_id, kind, name, user_id, station_ae, active)
				VALUES ($1, $2, $3, $4, NULLIF($5, 0), $6, true) RETURNING id`,
				tenantID, r.UnitID, r.Kind, r.Name, r.UserID, r.StationAE).Scan(&r.ID)
		}
		tag, err := tx.Exec(ctx, `UPDATE booking.resource SET kind = $2, name = $3, user_id = NULLIF($4, 0), station_ae = $5, active = $6
			WHERE id = $1 AND unit_id = $7`, r.ID, r.Kind, r.Name, r.UserID, r.StationAE, r.Active, r.UnitID)
		if err == nil && tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return Resource{}, fmt.Errorf("booking: save resource: %w", err)
	}
	return r, nil
}

// SetResourceActive takes a resource of a unit out of service or back in:
// an inactive resource is offered in no new slot; appointments already
// booked on it stay.
func (m *Module) SetResourceActive(ctx context.Context, tenantID, unitID, id int64, active bool) error {
	return m.setActive(ctx, tenantID, `UPDATE booking.resource SET active = $3 WHERE id = $1 AND unit_id = $2`, id, unitID, active)
}

// SetTypeActive retires an appointment type or brings it back: an inactive
// type takes no new bookings; appointments already booked as it stay and
// can still be moved.
func (m *Module) SetTypeActive(ctx context.Context, tenantID, id int64, active bool) error {
	return m.setActive(ctx, tenantID, `UPDATE booking.appointment_type SET active = $2 WHERE id = $1`, id, active)
}

// setActive runs one UPDATE of an active flag in the tenant; no row is ErrNotFound.
func (m *Module) setActive(ctx context.Context, tenantID int64, sql string, args ...any) error {
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, args...)
		if err == nil && tag.RowsAffected() == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("booking: set active: %w", err)
	}
	return nil
}

// Resources lists a unit's resources (unitID 0: all of the tenant's).
func (m *Module) Resources(ctx context.Context, tenantID, unitID int64) ([]Resource, error) {
	var out []Resource
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		var err error
		out, err = resources(ctx, tx, unitID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("booking: resources: %w", err)
	}
	return out, nil
}

func resources(ctx context.Context, tx pgx.Tx, unitID int64) ([]Resource, error) {
	rows, err := tx.Query(ctx, `SELECT id, unit_id, kind, name, COALESCE(user_id, 0), station_ae, active FROM booking.resource
		WHERE $1 = 0 OR unit_id = $1 ORDER BY unit_id, array_position(ARRAY['chair','room','staff'], kind), name, id`, unitID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Resource, error) {
		var x Resource
		return x, r.Scan(&x.ID, &x.UnitID, &x.Kind, &x.Name, &x.UserID, &x.StationAE, &x.Active)
	})
}

// SetHours replaces a unit's opening hours.
func (m *Module) SetHours(ctx context.Context, tenantID, unitID int64, hours []Hours) error {
	for _, h := range hours {
		if h.Weekday < 1 || h.Weekday > 7 || h.Opens < 0 || h.Closes > 24*60 || h.Opens >= h.Closes {
			return fmt.Errorf("%w: opening hours", ErrInvalid)
		}
	}
	if err := m.checkUnit(ctx, tenantID, unitID); err != nil {
		return err
	}
	return postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM booking.opening_hours WHERE unit_id = $1`, unitID); err != nil {
			return fmt.Errorf("booking: set hours: %w", err)
		}
		for _, h := range hours {
			if _, err := tx.Exec(ctx, `INSERT INTO booking.opening_hours (tenant_id, unit_id, weekday, opens, closes) VALUES ($1, $2, $3, $4, $5)`,
				tenantID, unitID, h.Weekday, clockOf(h.Opens), clockOf(h.Closes)); err != nil {
				return fmt.Errorf("booking: set hours: %w", err)
			}
		}
		return nil
	})
}

func clockOf(min int) pgtype.Time {
	return pgtype.Time{Microseconds: int64(min) * 60_000_000, Valid: true}
}

// Hours lists a unit's opening hours by weekday.
func (m *Module) Hours(ctx context.Context, tenantID, unitID int64) ([]Hours, error) {
	var out []Hours
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		var err error
		out, err = hoursOf(ctx, tx, unitID)
		return err
	})
	return out, err
}

func hoursOf(ctx context.Context, tx pgx.Tx, unitID int64) ([]Hours, error) {
	rows, err := tx.Query(ctx, `SELECT weekday, opens, closes FROM booking.opening_hours WHERE unit_id = $1 ORDER BY weekday, opens`, unitID)
	if err != nil {
		return nil, fmt.Errorf("booking: hours: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Hours, error) {
		var h Hours
		var o, c pgtype.Time
		if err := r.Scan(&h.Weekday, &o, &c); err != nil {
			return h, err
		}
		h.Opens, h.Closes = int(o.Microseconds/60_000_000), int(c.Microseconds/60_000_000)
		return h, nil
	})
	if err != nil {
		return nil, fmt.Errorf("booking: hours: %w", err)
	}
	return out, nil
}

// ClosedDay is a date a unit is closed.
type ClosedDay struct {
	Day    time.Time // calendar date (UTC midnight)
	Reason string
}

// AddClosedDay closes a unit on a date.
func (m *Module) AddClosedDay(ctx context.Context, tenantID, unitID int64, day time.Time, reason string) error {
	if err := m.checkUnit(ctx, tenantID, unitID); err != nil {
		return err
	}
	if len(reason) > 200 || !storable(reason) {
		return fmt.Errorf("%w: reason too long or with characters that are not allowed", ErrInvalid)
	}
	return postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO booking.closed_day (tenant_id, unit_id, day, reason) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id, unit_id, day) DO UPDATE SET reason = EXCLUDED.reason`, tenantID, unitID, dateOnly(day), strings.TrimSpace(reason))
		if err != nil {
			return fmt.Errorf("booking: closed day: %w", err)
		}
		return nil
	})
}

// ClosedDays lists a unit's closed days from a date on.
func (m *Module) ClosedDays(ctx context.Context, tenantID, unitID int64, from time.Time) ([]ClosedDay, error) {
	var out []ClosedDay
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT day, reason FROM booking.closed_day WHERE unit_id = $1 AND day >= $2 ORDER BY day`, unitID, dateOnly(from))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ClosedDay, error) {
			var c ClosedDay
			return c, r.Scan(&c.Day, &c.Reason)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("booking: closed days: %w", err)
	}
	return out, nil
}

// Absence is a period a resource (a staff member, a room) is unavailable.
type Absence struct {
	ID          int64
	ResourceID  int64
	From, Until time.Time
	Reason      string
}

// AddAbsence records the absence of a resource of unit unitID. Existing
// appointments are not moved; the calendar shows them so staff can rebook.
// A resource of another unit is ErrNotFound.
func (m *Module) AddAbsence(ctx context.Context, tenantID, unitID int64, a Absence) (Absence, error) {
	if a.ResourceID <= 0 || !a.Until.After(a.From) || len(a.Reason) > 200 || !storable(a.Reason) {
		return Absence{}, fmt.Errorf("%w: absence needs a resource and a period", ErrInvalid)
	}
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO booking.absence (tenant_id, resource_id, during, reason)
			SELECT $1, r.id, tstzrange($3, $4, '[)'), $5 FROM booking.resource r WHERE r.id = $2 AND r.unit_id = $6
			RETURNING id`, tenantID, a.ResourceID, a.From, a.Until, strings.TrimSpace(a.Reason), unitID).Scan(&a.ID)
	})
	if isFK(err) || errors.Is(err, pgx.ErrNoRows) {
		return Absence{}, fmt.Errorf("booking: absence: %w", ErrNotFound)
	}
	if err != nil {
		return Absence{}, fmt.Errorf("booking: absence: %w", err)
	}
	return a, nil
}

// Absences lists absences of a unit's resources overlapping [from, to).
func (m *Module) Absences(ctx context.Context, tenantID, unitID int64, from, to time.Time) ([]Absence, error) {
	var out []Absence
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		var err error
		out, err = absences(ctx, tx, unitID, from, to)
		return err
	})
	return out, err
}

func absences(ctx context.Context, tx pgx.Tx, unitID int64, from, to time.Time) ([]Absence, error) {
	rows, err := tx.Query(ctx, `SELECT a.id, a.resource_id, lower(a.during), upper(a.during), a.reason
		FROM booking.absence a JOIN booking.resource r ON r.id = a.resource_id
		WHERE r.unit_id = $1 AND a.during && tstzrange($2, $3, '[)') ORDER BY lower(a.during)`, unitID, from, to)
	if err != nil {
		return nil, fmt.Errorf("booking: absences: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Absence, error) {
		var a Absence
		return a, r.Scan(&a.ID, &a.ResourceID, &a.From, &a.Until, &a.Reason)
	})
	if err != nil {
		return nil, fmt.Errorf("booking: absences: %w", err)
	}
	return out, nil
}

// SaveType creates (ID 0) or updates an appointment type.
func (m *Module) SaveType(ctx context.Context, tenantID int64, t Type) (Type, error) {
	t.Code = strings.TrimSpace(t.Code)
	t.Name, t.NameEN, t.PublicName = strings.TrimSpace(t.Name), strings.TrimSpace(t.NameEN), strings.TrimSpace(t.PublicName)
	t.StationAE, t.Modality = strings.TrimSpace(t.StationAE), strings.ToUpper(strings.TrimSpace(t.Modality))
	if len(t.Kinds) == 0 {
		t.Kinds = []string{KindChair}
	}
	slices.Sort(t.Kinds)
	t.Kinds = slices.Compact(t.Kinds)
	for _, k := range t.Kinds {
		if !validKind(k) {
			return Type{}, fmt.Errorf("%w: unknown resource kind", ErrInvalid)
		}
	}
	if !storable(t.Code, t.Name, t.NameEN, t.PublicName, t.StationAE, t.ProcedureCode, t.ProcedureDescription, t.Modality) {
		return Type{}, fmt.Errorf("%w: a field contains characters that are not allowed", ErrInvalid)
	}
	if t.Code == "" || t.Name == "" || t.Minutes < 5 || t.Minutes > 480 {
		return Type{}, fmt.Errorf("%w: a type needs a code, a name and 5 to 480 minutes", ErrInvalid)
	}
	// What the table's checks refuse is bad input, not an internal error.
	if !typeCode.MatchString(t.Code) {
		return Type{}, fmt.Errorf("%w: the code is lower-case letters, digits and _ (at most 41), starting with a letter", ErrInvalid)
	}
	if !typeModality.MatchString(t.Modality) {
		return Type{}, fmt.Errorf("%w: the modality is a DICOM modality code (e.g. IO, PX, DX)", ErrInvalid)
	}
	for _, f := range []struct {
		v   string
		max int
	}{{t.Name, 200}, {t.NameEN, 200}, {t.PublicName, 200}, {t.StationAE, 16}, {t.ProcedureCode, 16}, {t.ProcedureDescription, 64}} {
		if utf8.RuneCountInString(f.v) > f.max {
			return Type{}, fmt.Errorf("%w: a field is longer than %d characters", ErrInvalid, f.max)
		}
	}
	if t.Imaging && (t.StationAE == "" || t.Modality == "") {
		return Type{}, fmt.Errorf("%w: an imaging type needs a station AE title and a modality", ErrInvalid)
	}
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		if t.ID == 0 {
			t.Active = true
			err := tx.QueryRow(ctx, `INSERT INTO booking.appointment_type (tenant_id, code, name, name_en, public_name, minutes, self_service, kinds,
				imaging, station_ae, procedure_code, procedure_description, modality, video, active)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, true) RETURNING id`,
				tenantID, t.Code, t.Name, t.NameEN, t.PublicName, t.Minutes, t.SelfService, t.Kinds, t.Imaging, t.StationAE,
				t.ProcedureCode, t.ProcedureDescription, t.Modality, t.Video).Scan(&t.ID)
			if err != nil {
				return err
			}
		} else {
			tag, err := tx.Exec(ctx, `UPDATE booking.appointment_type SET code = $2, name = $3, name_en = $4, public_name = $5, minutes = $6,
				self_service = $7, kinds = $8, imaging = $9, station_ae = $10, procedure_code = $11, procedure_description = $12,
				modality = $13, video = $14, active = $15 WHERE id = $1`,
				t.ID, t.Code, t.Name, t.NameEN, t.PublicName, t.Minutes, t.SelfService, t.Kinds, t.Imaging, t.StationAE,
				t.ProcedureCode, t.ProcedureDescription, t.Modality, t.Video, t.Active)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return ErrNotFound
			}
			if _, err := tx.Exec(ctx, `DELETE FROM booking.type_resource WHERE type_id = $1`, t.ID); err != nil {
				return err
			}
		}
		for _, rid := range t.ResourceIDs {
			if _, err := tx.Exec(ctx, `INSERT INTO booking.type_resource (tenant_id, type_id, resource_id) VALUES ($1, $2, $3)`, tenantID, t.ID, rid); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case postgres.IsUniqueViolation(err):
		return Type{}, fmt.Errorf("booking: save type: %w: the code is taken", ErrInvalid)
	case isFK(err):
		return Type{}, fmt.Errorf("booking: save type: %w", ErrNotFound)
	case err != nil:
		return Type{}, fmt.Errorf("booking: save type: %w", err)
	}
	return t, nil
}

// Types lists the tenant's appointment types (active only unless all).
func (m *Module) Types(ctx context.Context, tenantID int64, all bool) ([]Type, error) {
	var out []Type
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		var err error
		out, err = types(ctx, tx, 0, all)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("booking: types: %w", err)
	}
	return out, nil
}

const typeColumns = `t.id, t.code, t.name, t.name_en, t.public_name, t.minutes, t.self_service, t.kinds, t.imaging, t.station_ae,
	t.procedure_code, t.procedure_description, t.modality, t.video, t.active,
	ARRAY(SELECT tr.resource_id FROM booking.type_resource tr WHERE tr.type_id = t.id ORDER BY 1)`

func scanType(r pgx.Row) (Type, error) {
	var t Type
	err := r.Scan(&t.ID, &t.Code, &t.Name, &t.NameEN, &t.PublicName, &t.Minutes, &t.SelfService, &t.Kinds, &t.Imaging, &t.StationAE,
		&t.ProcedureCode, &t.ProcedureDescription, &t.Modality, &t.Video, &t.Active, &t.ResourceIDs)
	return t, err
}

func types(ctx context.Context, tx pgx.Tx, id int64, all bool) ([]Type, error) {
	rows, err := tx.Query(ctx, `SELECT `+typeColumns+` FROM booking.appointment_type t
		WHERE ($1 = 0 OR t.id = $1) AND ($2 OR t.active) ORDER BY t.name, t.id`, id, all)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Type, error) { return scanType(r) })
}

func typeByID(ctx context.Context, tx pgx.Tx, id int64) (Type, error) {
	ts, err := types(ctx, tx, id, true)
	if err != nil {
		return Type{}, err
	}
	if len(ts) == 0 {
		return Type{}, ErrNotFound
	}
	return ts[0], nil
}

// SetRules stores a unit's rules (unitID 0: the tenant's default).
func (m *Module) SetRules(ctx context.Context, tenantID, unitID int64, r Rules) error {
	if r.MinNoticeHours < 0 || r.MinNoticeHours > 720 || r.HorizonDays < 1 || r.HorizonDays > 730 || r.ReminderHours < 0 || r.ReminderHours > 720 ||
		r.AnswerDays < 1 || r.AnswerDays > 90 || r.FollowupDays < 1 || r.FollowupDays > 90 || r.MaxFollowups < 0 || r.MaxFollowups > 10 {
		return fmt.Errorf("%w: rules out of range", ErrInvalid)
	}
	return postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO booking.rule (tenant_id, unit_id, min_notice_hours, horizon_days, cancel_allowed, reminder_hours, answer_days, followup_days, max_followups)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (tenant_id, unit_id) DO UPDATE SET min_notice_hours = EXCLUDED.min_notice_hours, horizon_days = EXCLUDED.horizon_days,
			cancel_allowed = EXCLUDED.cancel_allowed, reminder_hours = EXCLUDED.reminder_hours, answer_days = EXCLUDED.answer_days,
			followup_days = EXCLUDED.followup_days, max_followups = EXCLUDED.max_followups`,
			tenantID, unitID, r.MinNoticeHours, r.HorizonDays, r.CancelAllowed, r.ReminderHours, r.AnswerDays, r.FollowupDays, r.MaxFollowups)
		if err != nil {
			return fmt.Errorf("booking: set rules: %w", err)
		}
		return nil
	})
}

// RulesFor returns the rules of a unit (its own, the tenant's default, or DefaultRules).
func (m *Module) RulesFor(ctx context.Context, tenantID, unitID int64) (Rules, error) {
	var r Rules
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		var err error
		r, err = rulesOf(ctx, tx, unitID)
		return err
	})
	return r, err
}

func rulesOf(ctx context.Context, tx pgx.Tx, unitID int64) (Rules, error) {
	r := DefaultRules
	err := tx.QueryRow(ctx, `SELECT min_notice_hours, horizon_days, cancel_allowed, reminder_hours, answer_days, followup_days, max_followups
		FROM booking.rule WHERE unit_id IN ($1, 0) ORDER BY unit_id DESC LIMIT 1`, unitID).
		Scan(&r.MinNoticeHours, &r.HorizonDays, &r.CancelAllowed, &r.ReminderHours, &r.AnswerDays, &r.FollowupDays, &r.MaxFollowups)
	if errors.Is(err, pgx.ErrNoRows) {
		return DefaultRules, nil
	}
	if err != nil {
		return Rules{}, fmt.Errorf("booking: rules: %w", err)
	}
	return r, nil
}

// units returns the tenant's units by id.
func (m *Module) units(ctx context.Context, tenantID int64) (map[int64]Unit, error) {
	out := map[int64]Unit{}
	if m.Units == nil {
		return out, nil
	}
	us, err := m.Units.Units(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("booking: units: %w", err)
	}
	for _, u := range us {
		out[u.ID] = u
	}
	return out, nil
}

// UnitList lists the tenant's units (for choosers).
func (m *Module) UnitList(ctx context.Context, tenantID int64) ([]Unit, error) {
	if m.Units == nil {
		return nil, nil
	}
	us, err := m.Units.Units(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("booking: units: %w", err)
	}
	return us, nil
}

func (m *Module) checkUnit(ctx context.Context, tenantID, unitID int64) error {
	if m.Units == nil {
		return nil
	}
	us, err := m.units(ctx, tenantID)
	if err != nil {
		return err
	}
	if _, ok := us[unitID]; !ok {
		return fmt.Errorf("booking: unit %d: %w", unitID, ErrNotFound)
	}
	return nil
}

func dateOnly(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

func isFK(err error) bool { return hasCode(err, "23503") }
