package booking

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// SlotStep is the spacing of the free slots offered, from the start of each
// opening interval. Bookings may start on any Grid step.
const (
	SlotStep = 15 * time.Minute
	Grid     = 5 * time.Minute
)

// Slot is a free time for an appointment type, with the resources it would take.
type Slot struct {
	Start, End  time.Time
	ResourceIDs []int64
}

type span struct{ from, to time.Time }

func (s span) overlaps(from, to time.Time) bool { return s.from.Before(to) && from.Before(s.to) }

// wall returns the instant of a local wall-clock time (minutes after
// midnight, 24*60 = the next midnight) on a calendar date in Loc.
func wall(date time.Time, min int) time.Time {
	y, mo, d := date.Date()
	return time.Date(y, mo, d, min/60, min%60, 0, 0, Loc)
}

// isoWeekday is 1 (Monday) … 7 (Sunday).
func isoWeekday(date time.Time) int {
	w := int(date.Weekday())
	if w == 0 {
		return 7
	}
	return w
}

// localDate is the calendar date (UTC midnight) of t in Loc.
func localDate(t time.Time) time.Time {
	y, mo, d := t.In(Loc).Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

// openSpans lists the opening intervals as instants on the local dates that
// [from, to) touches, skipping closed days.
func openSpans(hours []Hours, closed map[time.Time]bool, from, to time.Time) []span {
	var out []span
	last := localDate(to)
	for d := localDate(from); !d.After(last); d = d.AddDate(0, 0, 1) {
		if closed[d] {
			continue
		}
		wd := isoWeekday(d)
		for _, h := range hours {
			if h.Weekday != wd {
				continue
			}
			s := span{wall(d, h.Opens), wall(d, h.Closes)}
			if s.overlaps(from, to) {
				out = append(out, s)
			}
		}
	}
	return out
}

// plan is what deciding free times needs for one unit and type.
type plan struct {
	typ        Type
	open       []span
	candidates map[string][]int64 // kind → eligible resource ids, in preference order
	busy       map[int64][]span   // resource → held or absent
	personBusy []span
}

// loadPlan reads the unit's hours, closed days, eligible resources and their
// bookings and absences around [from, to). exclude is an appointment whose
// own holds do not count (the one being moved).
func loadPlan(ctx context.Context, tx pgx.Tx, unitID int64, typ Type, from, to time.Time, personID, exclude int64) (*plan, error) {
	hours, err := hoursOf(ctx, tx, unitID)
	if err != nil {
		return nil, err
	}
	closed := map[time.Time]bool{}
	rows, err := tx.Query(ctx, `SELECT day FROM booking.closed_day WHERE unit_id = $1 AND day BETWEEN $2 AND $3`,
		unitID, localDate(from).AddDate(0, 0, -1), localDate(to).AddDate(0, 0, 1))
	if err != nil {
		return nil, fmt.Errorf("booking: closed days: %w", err)
	}
	days, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("booking: closed days: %w", err)
	}
	for _, d := range days {
		closed[dateOnly(d)] = true
	}
	p := &plan{typ: typ, open: openSpans(hours, closed, from, to), candidates: map[string][]int64{}, busy: map[int64][]span{}}
	res, err := resources(ctx, tx, unitID)
	if err != nil {
		return nil, fmt.Errorf("booking: resources: %w", err)
	}
	var ids []int64
	for _, kind := range typ.Kinds {
		restricted := false
		for _, r := range res {
			if r.Kind == kind && slices.Contains(typ.ResourceIDs, r.ID) {
				restricted = true
			}
		}
		for _, r := range res {
			if r.Kind != kind || !r.Active || (restricted && !slices.Contains(typ.ResourceIDs, r.ID)) {
				continue
			}
			p.candidates[kind] = append(p.candidates[kind], r.ID)
			ids = append(ids, r.ID)
		}
	}
	// Widen by a day: holds that start before from may reach into it.
	lo, hi := from.Add(-24*time.Hour), to.Add(24*time.Hour)
	rows, err = tx.Query(ctx, `SELECT resource_id, lower(during), upper(during) FROM booking.appointment_resource
		WHERE active AND resource_id = ANY($1) AND during && tstzrange($2, $3) AND appointment_id <> $4
		UNION ALL
		SELECT resource_id, lower(during), upper(during) FROM booking.absence
		WHERE resource_id = ANY($1) AND during && tstzrange($2, $3)`, ids, lo, hi, exclude)
	if err != nil {
		return nil, fmt.Errorf("booking: busy times: %w", err)
	}
	var rid int64
	var s span
	_, err = pgx.ForEachRow(rows, []any{&rid, &s.from, &s.to}, func() error {
		p.busy[rid] = append(p.busy[rid], s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("booking: busy times: %w", err)
	}
	if personID != 0 {
		rows, err = tx.Query(ctx, `SELECT lower(during), upper(during) FROM booking.appointment
			WHERE person_id = $1 AND status <> 'cancelled' AND during && tstzrange($2, $3) AND id <> $4`, personID, lo, hi, exclude)
		if err != nil {
			return nil, fmt.Errorf("booking: person's times: %w", err)
		}
		_, err = pgx.ForEachRow(rows, []any{&s.from, &s.to}, func() error {
			p.personBusy = append(p.personBusy, s)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("booking: person's times: %w", err)
		}
	}
	return p, nil
}

// within reports whether [start, start+d) lies in an opening interval, on
// the booking grid from its opening.
func (p *plan) within(start time.Time, d time.Duration) bool {
	end := start.Add(d)
	for _, s := range p.open {
		if !start.Before(s.from) && !end.After(s.to) && start.Sub(s.from)%Grid == 0 {
			return true
		}
	}
	return false
}

func free(busy []span, from, to time.Time) bool {
	for _, b := range busy {
		if b.overlaps(from, to) {
			return false
		}
	}
	return true
}

// pick chooses one free resource of each kind the type needs, or nil.
func (p *plan) pick(from, to time.Time) []int64 {
	if !free(p.personBusy, from, to) {
		return nil
	}
	var out []int64
	for _, kind := range p.typ.Kinds {
		found := false
		for _, id := range p.candidates[kind] {
			if free(p.busy[id], from, to) {
				out = append(out, id)
				found = true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return out
}

// alternatives lists, per kind, the free resources in preference order.
func (p *plan) alternatives(from, to time.Time) map[string][]int64 {
	out := map[string][]int64{}
	for _, kind := range p.typ.Kinds {
		for _, id := range p.candidates[kind] {
			if free(p.busy[id], from, to) {
				out[kind] = append(out[kind], id)
			}
		}
	}
	return out
}

// slots lists the free slots starting in [from, to), every SlotStep from
// each opening. The step is real time, so a 24-hour unit offers 92
// quarter-hours on the spring daylight-saving day and 100 in the autumn.
func (p *plan) slots(from, to time.Time, limit int) []Slot {
	d := p.typ.Duration()
	var out []Slot
	for _, s := range p.open {
		for t := s.from; !t.Add(d).After(s.to); t = t.Add(SlotStep) {
			if t.Before(from) || !t.Before(to) {
				continue
			}
			if ids := p.pick(t, t.Add(d)); ids != nil {
				out = append(out, Slot{Start: t, End: t.Add(d), ResourceIDs: ids})
				if limit > 0 && len(out) >= limit {
					return out
				}
			}
		}
	}
	return out
}
