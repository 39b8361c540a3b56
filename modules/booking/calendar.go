package booking

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// CalendarQuery asks for a unit's calendar, optionally one resource's
// (a chair, a room or a staff member).
type CalendarQuery struct {
	UnitID     int64
	ResourceID int64
	// Day is any time on the first local date; Days is 1 (day view) or 7
	// (week view, from the Monday of Day's week).
	Day  time.Time
	Days int
}

// Entry is an appointment in the staff calendar.
type Entry struct {
	Appointment
	GivenName, FamilyName string
}

// CalendarDay is one local date of the calendar.
type CalendarDay struct {
	Date      time.Time // UTC midnight of the local date
	Start     time.Time // local midnight
	Hours     []Hours
	Closed    bool
	Entries   []Entry
	Absences  []Absence
	HourCount int // 23, 24 or 25
}

// Calendar is a unit's days.
type Calendar struct {
	UnitID    int64
	Resources []Resource
	Days      []CalendarDay
}

// Calendar returns a unit's day or week for staff with PermRead: the
// appointments (with names of the persons the user may reach; others are
// a booked time without a name), opening hours, closed days and absence.
// Each person shown is recorded in the audit log.
func (m *Module) Calendar(ctx context.Context, p *auth.Principal, q CalendarQuery) (Calendar, error) {
	if p == nil || p.IsCitizen() || !p.Can(PermRead) {
		return Calendar{}, fmt.Errorf("booking: calendar: %w", ErrForbidden)
	}
	if err := m.checkUnit(ctx, p.TenantID, q.UnitID); err != nil {
		return Calendar{}, err
	}
	first := localDate(q.Day)
	if q.Days != 1 {
		q.Days = 7
		first = first.AddDate(0, 0, 1-isoWeekday(first))
	}
	from := wall(first, 0)
	to := wall(first.AddDate(0, 0, q.Days), 0)
	cal := Calendar{UnitID: q.UnitID}
	err := postgres.InTenant(ctx, m.Pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		if cal.Resources, err = resources(ctx, tx, q.UnitID); err != nil {
			return fmt.Errorf("booking: calendar: %w", err)
		}
		hours, err := hoursOf(ctx, tx, q.UnitID)
		if err != nil {
			return err
		}
		closed := map[time.Time]bool{}
		rows, err := tx.Query(ctx, `SELECT day FROM booking.closed_day WHERE unit_id = $1 AND day >= $2 AND day < $3`, q.UnitID, first, first.AddDate(0, 0, q.Days))
		if err != nil {
			return fmt.Errorf("booking: calendar: %w", err)
		}
		days, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return fmt.Errorf("booking: calendar: %w", err)
		}
		for _, d := range days {
			closed[dateOnly(d)] = true
		}
		as, err := queryAppts(ctx, tx, `WHERE a.unit_id = $1 AND a.status <> 'cancelled' AND a.during && tstzrange($2, $3)
			AND ($4 = 0 OR EXISTS (SELECT 1 FROM booking.appointment_resource ar WHERE ar.appointment_id = a.id AND ar.active AND ar.resource_id = $4))
			ORDER BY lower(a.during), a.id`, q.UnitID, from, to, q.ResourceID)
		if err != nil {
			return err
		}
		if _, err := m.decorate(ctx, tx, p.TenantID, as); err != nil {
			return err
		}
		abs, err := absences(ctx, tx, q.UnitID, from, to)
		if err != nil {
			return err
		}
		names := map[int64]auth.Person{}
		for _, a := range as {
			if _, ok := names[a.PersonID]; ok {
				continue
			}
			// Persons the user may not reach (another unit's patients)
			// show as a booked time without a name.
			d, err := auth.Access(ctx, tx, p, a.PersonID)
			if err != nil {
				return fmt.Errorf("booking: calendar: %w", err)
			}
			if !d.Allowed {
				names[a.PersonID] = auth.Person{}
				continue
			}
			person, err := auth.GetPerson(ctx, tx, a.PersonID)
			if err != nil {
				return err
			}
			names[a.PersonID] = person
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: a.PersonID, Object: "booking.appointment",
				BreakGlassReason: d.Reason, Detail: map[string]any{"view": "calendar", "unit_id": q.UnitID}}); err != nil {
				return fmt.Errorf("booking: audit: %w", err)
			}
		}
		for i := 0; i < q.Days; i++ {
			d := first.AddDate(0, 0, i)
			start, end := wall(d, 0), wall(d, 24*60)
			day := CalendarDay{Date: d, Start: start, Closed: closed[d], HourCount: int(end.Sub(start).Hours())}
			for _, h := range hours {
				if h.Weekday == isoWeekday(d) {
					day.Hours = append(day.Hours, h)
				}
			}
			for _, a := range as {
				if a.Start.Before(end) && a.End.After(start) {
					person := names[a.PersonID]
					day.Entries = append(day.Entries, Entry{Appointment: a, GivenName: person.GivenName, FamilyName: person.FamilyName})
				}
			}
			for _, ab := range abs {
				if (q.ResourceID == 0 || ab.ResourceID == q.ResourceID) && ab.From.Before(end) && ab.Until.After(start) {
					day.Absences = append(day.Absences, ab)
				}
			}
			cal.Days = append(cal.Days, day)
		}
		return nil
	})
	if err != nil {
		return Calendar{}, err
	}
	return cal, nil
}

// ResourceName returns the name of a resource of the calendar.
func (c Calendar) ResourceName(id int64) string {
	if i := slices.IndexFunc(c.Resources, func(r Resource) bool { return r.ID == id }); i >= 0 {
		return c.Resources[i].Name
	}
	return ""
}
