package booking_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// The database itself refuses overlapping holds of one resource, whatever
// the Go code does: the exclusion constraint, not a check in Go.
func TestExclusionConstraintRefusesOverlapInSQL(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(f.dentist)
	a, err := f.m.Book(ctx, f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 10, 0)})
	require.NoError(t, err)
	err = postgres.InTenant(ctx, f.db.App, f.tenant, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO booking.appointment (tenant_id, unit_id, person_id, type_id, during, booked_via)
			VALUES ($1, $2, $3, $4, tstzrange($5, $6), 'staff') RETURNING id`,
			f.tenant, f.clinic, f.otherChild, f.exam.ID, a.Start.Add(15*time.Minute), a.End.Add(15*time.Minute)).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO booking.appointment_resource (tenant_id, appointment_id, resource_id, during)
			VALUES ($1, $2, $3, tstzrange($4, $5))`, f.tenant, id, f.chair, a.Start.Add(15*time.Minute), a.End.Add(15*time.Minute))
		return err
	})
	require.True(t, postgres.IsExclusionViolation(err), "overlap must be refused by PostgreSQL: %v", err)
	// Touching ranges ([10:00,10:30) and [10:30,11:00)) do not overlap.
	_, err = f.m.Book(ctx, f.dentist, booking.BookRequest{PersonID: f.otherChild, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 10, 30)})
	require.NoError(t, err)
	// The same person cannot be in two places at once either.
	_, err = f.m.Book(ctx, f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.xray.ID, Start: local(2026, 3, 4, 10, 15)})
	require.ErrorIs(t, err, booking.ErrSlotTaken)
}

// 50 simultaneous attempts at one slot (one chair): exactly one booking and
// 49 clear refusals.
func TestFiftySimultaneousBookingsOfOneSlot(t *testing.T) {
	f := newFixture(t)
	children := f.addChildren(50)
	start := local(2026, 3, 5, 9, 0)
	var wg sync.WaitGroup
	errs := make([]error, len(children))
	ready := make(chan struct{})
	for i, c := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			_, errs[i] = f.m.Book(f.ctx(f.dentist), f.dentist, booking.BookRequest{PersonID: c, UnitID: f.clinic, TypeID: f.exam.ID, Start: start})
		}()
	}
	close(ready)
	wg.Wait()
	ok, taken := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, booking.ErrSlotTaken):
			taken++
			require.Equal(t, web.Conflict, web.KindOf(err), "a refusal is a 409 Conflict")
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	require.Equal(t, 1, ok, "exactly one booking")
	require.Equal(t, 49, taken, "49 clear refusals")
	var n int
	require.NoError(t, f.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM booking.appointment WHERE status <> 'cancelled'`).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, f.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM booking.appointment_resource WHERE active`).Scan(&n))
	require.Equal(t, 1, n)
}

// With two chairs, two simultaneous bookings of one time both succeed, on
// different chairs; a third is refused.
func TestSecondChairTakesTheSecondBooking(t *testing.T) {
	f := newFixture(t)
	f.resource(booking.KindChair, "Stol 2", "")
	kids := f.addChildren(3)
	start := local(2026, 3, 5, 9, 0)
	var got []booking.Appointment
	for i, c := range kids {
		a, err := f.m.Book(f.ctx(f.dentist), f.dentist, booking.BookRequest{PersonID: c, UnitID: f.clinic, TypeID: f.exam.ID, Start: start})
		if i < 2 {
			require.NoError(t, err)
			got = append(got, a)
		} else {
			require.ErrorIs(t, err, booking.ErrSlotTaken)
		}
	}
	require.NotEqual(t, got[0].ResourceIDs, got[1].ResourceIDs)
}

func TestOpeningHoursClosedDaysAndAbsence(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(f.dentist)
	book := func(start time.Time, typ booking.Type) error {
		_, err := f.m.Book(ctx, f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: typ.ID, Start: start})
		return err
	}
	require.ErrorIs(t, book(local(2026, 3, 4, 7, 30), f.exam), booking.ErrClosed, "before opening")
	require.ErrorIs(t, book(local(2026, 3, 4, 15, 45), f.exam), booking.ErrClosed, "ends after closing")
	require.ErrorIs(t, book(local(2026, 3, 7, 10, 0), f.exam), booking.ErrClosed, "Saturday")
	require.ErrorIs(t, book(local(2026, 3, 4, 10, 7), f.exam), booking.ErrClosed, "off the 5-minute grid")
	require.NoError(t, f.m.AddClosedDay(ctx, f.tenant, f.clinic, time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC), "Personaledag"))
	require.ErrorIs(t, book(local(2026, 3, 6, 10, 0), f.exam), booking.ErrClosed, "closed day")
	// The dentist is away on Tuesday morning: the treatment (chair + staff) cannot be booked then.
	_, err := f.m.AddAbsence(ctx, f.tenant, f.clinic, booking.Absence{ResourceID: f.staff, From: local(2026, 3, 3, 8, 0), Until: local(2026, 3, 3, 12, 0), Reason: "Kursus"})
	require.NoError(t, err)
	require.ErrorIs(t, book(local(2026, 3, 3, 9, 0), f.staffOnly), booking.ErrSlotTaken)
	require.NoError(t, book(local(2026, 3, 3, 12, 0), f.staffOnly))
	// Slots skip the absence and the booked hour.
	slots, err := f.m.FreeSlots(ctx, f.dentist, booking.SlotQuery{PersonID: f.otherChild, UnitID: f.clinic, TypeID: f.staffOnly.ID,
		From: local(2026, 3, 3, 0, 0), To: local(2026, 3, 4, 0, 0)})
	require.NoError(t, err)
	require.NotEmpty(t, slots)
	require.True(t, slots[0].Start.Equal(local(2026, 3, 3, 13, 0)), "first free slot %v", slots[0].Start)
	require.True(t, slots[len(slots)-1].Start.Equal(local(2026, 3, 3, 15, 0)))
}

// Daylight saving: opening hours are wall-clock times, slots step in real
// time, days are 23 or 25 hours long (last Sundays of March and October).
func TestDaylightSavingBoundaries(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(f.dentist)
	// A unit open around the clock on every day.
	var hours []booking.Hours
	for wd := 1; wd <= 7; wd++ {
		hours = append(hours, booking.Hours{Weekday: wd, Opens: 0, Closes: 24 * 60})
	}
	require.NoError(t, f.m.SetHours(ctx, f.tenant, f.clinic, hours))
	quarter, err := f.m.SaveType(ctx, f.tenant, booking.Type{Code: "q", Name: "Kvarter", Minutes: 15, SelfService: true, Kinds: []string{booking.KindChair}})
	require.NoError(t, err)
	count := func(day time.Time) int {
		from := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, booking.Loc)
		to := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, booking.Loc)
		slots, err := f.m.FreeSlots(ctx, f.dentist, booking.SlotQuery{PersonID: f.child, UnitID: f.clinic, TypeID: quarter.ID, From: from, To: to, Limit: 1000})
		require.NoError(t, err)
		return len(slots)
	}
	require.Equal(t, 96, count(local(2026, 3, 28, 0, 0)), "an ordinary day")
	require.Equal(t, 92, count(local(2026, 3, 29, 0, 0)), "29 March 2026 (spring forward) has 23 hours")
	require.Equal(t, 100, count(local(2026, 10, 25, 0, 0)), "25 October 2026 (fall back) has 25 hours")

	// Wall-clock opening hours: 08:00 is 07:00 UTC before the change and 06:00 UTC after.
	require.NoError(t, f.m.SetHours(ctx, f.tenant, f.clinic, []booking.Hours{{Weekday: 5, Opens: 8 * 60, Closes: 16 * 60}, {Weekday: 1, Opens: 8 * 60, Closes: 16 * 60}}))
	first := func(day time.Time) time.Time {
		slots, err := f.m.FreeSlots(ctx, f.dentist, booking.SlotQuery{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, From: day, To: day.Add(24 * time.Hour), Limit: 1})
		require.NoError(t, err)
		require.Len(t, slots, 1)
		return slots[0].Start
	}
	require.Equal(t, time.Date(2026, 3, 27, 7, 0, 0, 0, time.UTC), first(local(2026, 3, 27, 0, 0)).UTC())
	require.Equal(t, time.Date(2026, 3, 30, 6, 0, 0, 0, time.UTC), first(local(2026, 3, 30, 0, 0)).UTC())
	require.Equal(t, time.Date(2026, 10, 23, 6, 0, 0, 0, time.UTC), first(local(2026, 10, 23, 0, 0)).UTC())
	require.Equal(t, time.Date(2026, 10, 26, 7, 0, 0, 0, time.UTC), first(local(2026, 10, 26, 0, 0)).UTC())

	// An appointment booked on Friday for Monday 08:00 keeps its wall-clock
	// time across the change and is 30 real minutes long.
	a, err := f.m.Book(ctx, f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 30, 8, 0)})
	require.NoError(t, err)
	require.Equal(t, "08:00", a.Local().Format("15:04"))
	require.Equal(t, 30*time.Minute, a.End.Sub(a.Start))
	// Moving it across the autumn change.
	a, err = f.m.Move(ctx, f.dentist, a.ID, booking.MoveRequest{Start: local(2026, 10, 26, 8, 0), Reason: "Ferie"})
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 10, 26, 7, 0, 0, 0, time.UTC), a.Start.UTC())

	// The week views around the changes have a 23- and a 25-hour Sunday.
	week, err := f.m.Calendar(ctx, f.dentist, booking.CalendarQuery{UnitID: f.clinic, Day: local(2026, 3, 25, 12, 0), Days: 7})
	require.NoError(t, err)
	require.Len(t, week.Days, 7)
	require.Equal(t, time.Monday, week.Days[0].Date.Weekday())
	require.Equal(t, 23, week.Days[6].HourCount)
	week, err = f.m.Calendar(ctx, f.dentist, booking.CalendarQuery{UnitID: f.clinic, Day: local(2026, 10, 25, 12, 0), Days: 7})
	require.NoError(t, err)
	require.Equal(t, 25, week.Days[6].HourCount)
	require.Len(t, week.Days[0].Entries, 0)
	week, err = f.m.Calendar(ctx, f.dentist, booking.CalendarQuery{UnitID: f.clinic, Day: local(2026, 10, 26, 12, 0), Days: 1})
	require.NoError(t, err)
	require.Len(t, week.Days, 1)
	require.Len(t, week.Days[0].Entries, 1)

	// Self-service notice counts real hours: on Saturday 28 March 09:00 the
	// earliest a citizen may book is Sunday 09:00 + ... i.e. 24 real hours,
	// which on the spring day is 10:00 wall-clock Sunday.
	f.clock.Set(local(2026, 3, 28, 9, 0))
	require.NoError(t, f.m.SetHours(ctx, f.tenant, f.clinic, hours))
	slots, err := f.m.FreeSlots(f.ctx(f.parent), f.parent, booking.SlotQuery{PersonID: f.child, UnitID: f.clinic, TypeID: quarter.ID,
		From: local(2026, 3, 28, 0, 0), To: local(2026, 3, 31, 0, 0), Limit: 1})
	require.NoError(t, err)
	require.Len(t, slots, 1)
	require.Equal(t, "2026-03-29 10:00", slots[0].Start.In(booking.Loc).Format("2006-01-02 15:04"))
}

// A parent books for children in their custody under 15, a citizen for
// themselves only, within the rules.
func TestSelfServiceWhoMayBook(t *testing.T) {
	f := newFixture(t)
	book := func(p *auth.Principal, person int64, typ booking.Type, start time.Time) (booking.Appointment, error) {
		return f.m.Book(f.ctx(p), p, booking.BookRequest{PersonID: person, UnitID: f.clinic, TypeID: typ.ID, Start: start})
	}
	wed := local(2026, 3, 4, 10, 0)
	a, err := book(f.parent, f.child, f.exam, wed)
	require.NoError(t, err, "a parent books for a child in custody under 15")
	require.Equal(t, booking.ViaSelf, a.BookedVia)

	_, err = book(f.parent, f.teen15, f.exam, wed.Add(time.Hour))
	require.ErrorIs(t, err, booking.ErrForbidden, "the child is 15: own access from then (Health Act §17)")
	_, err = book(f.other, f.child, f.exam, wed.Add(time.Hour))
	require.ErrorIs(t, err, booking.ErrForbidden, "not the parent's child")
	_, err = book(f.teen, f.teen15, f.exam, wed.Add(time.Hour))
	require.NoError(t, err, "the 15-year-old books for herself")
	_, err = book(f.teen, f.child, f.exam, wed.Add(2*time.Hour))
	require.ErrorIs(t, err, booking.ErrForbidden, "a citizen books for themselves only")
	_, err = book(f.parent, f.parentPerson, f.exam, wed.Add(3*time.Hour))
	require.NoError(t, err, "a parent books for themselves too")

	_, err = book(f.parent, f.child, f.staffOnly, local(2026, 3, 5, 10, 0))
	require.ErrorIs(t, err, booking.ErrRule, "staff-only type")
	_, err = book(f.parent, f.child, f.exam, local(2026, 3, 2, 14, 0))
	require.ErrorIs(t, err, booking.ErrRule, "less than 24 hours ahead")
	_, err = book(f.parent, f.child, f.exam, local(2026, 7, 1, 10, 0))
	require.ErrorIs(t, err, booking.ErrRule, "beyond the 90-day horizon")

	// Rules are configurable per unit.
	r := booking.DefaultRules
	r.MinNoticeHours = 2
	r.CancelAllowed = false
	require.NoError(t, f.m.SetRules(context.Background(), f.tenant, f.clinic, r))
	_, err = book(f.parent, f.child, f.exam, local(2026, 3, 2, 14, 0))
	require.NoError(t, err, "2 hours' notice is enough now")
	require.ErrorIs(t, f.m.Cancel(f.ctx(f.parent), f.parent, a.ID, ""), booking.ErrRule, "cancelling switched off")
	// What the portal offers agrees with what the module allows.
	mv, cn := r.CitizenMay(a, f.clock.Now())
	require.True(t, mv, "moving is still allowed")
	require.False(t, cn, "no cancel button when cancelling is switched off")
	staffOnly, err := f.m.Book(f.ctx(f.dentist), f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.staffOnly.ID, Start: local(2026, 3, 5, 13, 0)})
	require.NoError(t, err)
	mv, cn = booking.DefaultRules.CitizenMay(staffOnly, f.clock.Now())
	require.False(t, mv || cn, "a type only the clinic books is changed by the clinic")
	_, err = f.m.Move(f.ctx(f.parent), f.parent, staffOnly.ID, booking.MoveRequest{Start: local(2026, 3, 12, 13, 0)})
	require.ErrorIs(t, err, booking.ErrRule)
	require.NoError(t, f.m.SetRules(context.Background(), f.tenant, f.clinic, booking.DefaultRules))

	// Move and cancel within the rules; not within 24 hours of the start.
	a, err = f.m.Move(f.ctx(f.parent), f.parent, a.ID, booking.MoveRequest{Start: local(2026, 3, 11, 9, 30)})
	require.NoError(t, err)
	require.Equal(t, 2, a.Version)
	mv, cn = booking.DefaultRules.CitizenMay(a, f.clock.Now())
	require.True(t, mv && cn, "a self-booked time, days ahead")
	f.clock.Set(local(2026, 3, 10, 10, 0))
	_, err = f.m.Move(f.ctx(f.parent), f.parent, a.ID, booking.MoveRequest{Start: local(2026, 3, 13, 9, 30)})
	require.ErrorIs(t, err, booking.ErrRule, "less than 24 hours before the appointment")
	require.ErrorIs(t, f.m.Cancel(f.ctx(f.parent), f.parent, a.ID, ""), booking.ErrRule)
	mv, cn = booking.DefaultRules.CitizenMay(a, f.clock.Now())
	require.False(t, mv || cn, "within the notice")
	f.clock.Set(local(2026, 3, 2, 9, 0))
	require.NoError(t, f.m.Cancel(f.ctx(f.parent), f.parent, a.ID, ""))

	// Another parent cannot see, move or cancel the child's appointments.
	_, err = f.m.Appointments(f.ctx(f.other), f.other, f.child, booking.ListFilter{})
	require.ErrorIs(t, err, booking.ErrForbidden)
	_, err = f.m.Get(f.ctx(f.other), f.other, a.ID)
	require.ErrorIs(t, err, booking.ErrForbidden)
	require.ErrorIs(t, f.m.Cancel(f.ctx(f.other), f.other, a.ID, ""), booking.ErrForbidden)
	list, err := f.m.Appointments(f.ctx(f.parent), f.parent, f.child, booking.ListFilter{WithCancelled: true})
	require.NoError(t, err)
	require.Len(t, list, 3, "the two self-booked (one cancelled) and the clinic's")
}

// Staff book, move and cancel with a reason; every change is audited with
// the person; a cancelled time is free again.
func TestStaffMoveCancelAudited(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(f.dentist)
	a, err := f.m.Book(ctx, f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.staffOnly.ID, Start: local(2026, 3, 4, 10, 0)})
	require.NoError(t, err)
	require.Equal(t, []string{"Stol 1", "Tove Tandlæge"}, a.ResourceNames)
	_, err = f.m.Move(ctx, f.dentist, a.ID, booking.MoveRequest{Start: local(2026, 3, 4, 12, 0)})
	require.ErrorIs(t, err, booking.ErrInvalid, "staff state a reason")
	a, err = f.m.Move(ctx, f.dentist, a.ID, booking.MoveRequest{Start: local(2026, 3, 4, 12, 0), Reason: "Tandlægen er forsinket"})
	require.NoError(t, err)
	require.True(t, a.Start.Equal(local(2026, 3, 4, 12, 0)))
	require.ErrorIs(t, f.m.Cancel(ctx, f.dentist, a.ID, " "), booking.ErrInvalid, "staff state a reason")
	require.NoError(t, f.m.Cancel(ctx, f.dentist, a.ID, "Barnet er sygt"))
	require.ErrorIs(t, f.m.Cancel(ctx, f.dentist, a.ID, "igen"), booking.ErrStatus)
	// The time is free again.
	b, err := f.m.Book(ctx, f.dentist, booking.BookRequest{PersonID: f.otherChild, UnitID: f.clinic, TypeID: f.staffOnly.ID, Start: local(2026, 3, 4, 12, 0)})
	require.NoError(t, err)

	require.Equal(t, 1, f.auditRows(f.child, audit.ActionCreate, "booking.appointment/"))
	require.Equal(t, 2, f.auditRows(f.child, audit.ActionUpdate, "booking.appointment/"), "move and cancel")
	require.Equal(t, 1, f.auditRows(f.otherChild, audit.ActionCreate, "booking.appointment/"))
	var detail string
	require.NoError(t, f.db.Admin.QueryRow(context.Background(), `SELECT detail::text FROM audit.event WHERE person_id = $1 AND action = 'update' ORDER BY id LIMIT 1`, f.child).Scan(&detail))
	require.Contains(t, detail, `"change": "move"`)
	require.NotContains(t, detail, "forsinket", "free-text reasons stay out of the audit log")

	// The calendar shows the unit's appointments; reading it is audited per person.
	cal, err := f.m.Calendar(ctx, f.dentist, booking.CalendarQuery{UnitID: f.clinic, Day: local(2026, 3, 4, 0, 0), Days: 1})
	require.NoError(t, err)
	require.Len(t, cal.Days[0].Entries, 1)
	require.Equal(t, b.ID, cal.Days[0].Entries[0].ID)
	require.Equal(t, "Noah", cal.Days[0].Entries[0].GivenName)
	require.Equal(t, 1, f.auditRows(f.otherChild, audit.ActionRead, "booking.appointment"))
	// Per-resource view.
	cal, err = f.m.Calendar(ctx, f.dentist, booking.CalendarQuery{UnitID: f.clinic, ResourceID: f.xrayRoom, Day: local(2026, 3, 4, 0, 0), Days: 1})
	require.NoError(t, err)
	require.Empty(t, cal.Days[0].Entries)

	// Citizens have no calendar.
	_, err = f.m.Calendar(f.ctx(f.parent), f.parent, booking.CalendarQuery{UnitID: f.clinic, Day: local(2026, 3, 4, 0, 0)})
	require.ErrorIs(t, err, booking.ErrForbidden)
}

// Row-level security: another municipality sees none of the rows.
func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	_, err := f.m.Book(f.ctx(f.dentist), f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 10, 0)})
	require.NoError(t, err)
	ctx := context.Background()
	var n int
	require.NoError(t, postgres.InTenant(ctx, f.db.App, f.tenant+1, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM booking.appointment) + (SELECT count(*) FROM booking.resource) + (SELECT count(*) FROM booking.appointment_type)`).Scan(&n)
	}))
	require.Zero(t, n)
	_, err = f.db.App.Exec(ctx, `DELETE FROM booking.appointment`)
	require.True(t, postgres.IsInsufficientPrivilege(err), "appointments are never deleted: %v", err)
}
