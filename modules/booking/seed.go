package booking

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/storage/postgres"
)

// SeedDemo implements modules.Seeder: the demo clinic's chairs, X-ray room
// and staff, opening hours, appointment types, and appointments for demo
// children (the first child's examination a few days ahead, for its parent
// foraelder1 to move). It does nothing when the tenant has types already.
func (m *Module) SeedDemo(ctx context.Context, d modules.Demo) error {
	if d.ClinicID == 0 {
		return nil
	}
	var n int
	if err := postgres.InTenant(ctx, m.Pool, d.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM booking.appointment_type`).Scan(&n)
	}); err != nil {
		return fmt.Errorf("booking: demo: %w", err)
	}
	if n > 0 {
		return nil
	}
	for _, r := range []Resource{
		{UnitID: d.ClinicID, Kind: KindChair, Name: "Stol 1"},
		{UnitID: d.ClinicID, Kind: KindChair, Name: "Stol 2"},
		{UnitID: d.ClinicID, Kind: KindRoom, Name: "Røntgenrum", StationAE: "PANO1"},
		{UnitID: d.ClinicID, Kind: KindStaff, Name: "Tove Tandlæge"},
		{UnitID: d.ClinicID, Kind: KindStaff, Name: "Kim Klinikassistent"},
	} {
		if _, err := m.SaveResource(ctx, d.TenantID, r); err != nil {
			return fmt.Errorf("booking: demo: %w", err)
		}
	}
	var hours []Hours
	for wd := 1; wd <= 4; wd++ {
		hours = append(hours, Hours{Weekday: wd, Opens: 7*60 + 30, Closes: 15*60 + 30})
	}
	hours = append(hours, Hours{Weekday: 5, Opens: 7*60 + 30, Closes: 13 * 60})
	if err := m.SetHours(ctx, d.TenantID, d.ClinicID, hours); err != nil {
		return fmt.Errorf("booking: demo: %w", err)
	}
	types := map[string]Type{}
	for _, t := range []Type{
		{Code: "exam", Name: "Undersøgelse", NameEN: "Examination", PublicName: "Tid i tandplejen", Minutes: 30, SelfService: true, Kinds: []string{KindChair}},
		{Code: "treatment", Name: "Behandling", NameEN: "Treatment", PublicName: "Tid i tandplejen", Minutes: 45, Kinds: []string{KindChair, KindStaff}},
		{Code: "pano", Name: "Røntgen, panorama", NameEN: "Panoramic X-ray", PublicName: "Tid i tandplejen", Minutes: 15, Kinds: []string{KindRoom},
			Imaging: true, StationAE: "PANO1", Modality: "PX", ProcedureCode: "PANO", ProcedureDescription: "Panoramic X-ray"},
		{Code: "video", Name: "Videosamtale", NameEN: "Video call", PublicName: "Videosamtale", Minutes: 20, SelfService: true, Kinds: []string{KindStaff}, Video: true},
	} {
		saved, err := m.SaveType(ctx, d.TenantID, t)
		if err != nil {
			return fmt.Errorf("booking: demo: %w", err)
		}
		types[t.Code] = saved
	}
	if len(d.Children) == 0 {
		return nil
	}
	// Appointments: today's (or the next weekday's) calendar, and the first
	// child's examination three weekdays ahead.
	now := m.now()
	day := weekdayFrom(localDate(now), 0)
	ahead := weekdayFrom(localDate(now), 3)
	type seed struct {
		child int
		typ   string
		day   time.Time
		min   int
	}
	seeds := []seed{{0, "exam", ahead, 9 * 60}}
	for _, s := range []seed{{1, "exam", day, 8 * 60}, {2, "pano", day, 9 * 60}, {3, "treatment", day, 10*60 + 30}, {4, "exam", day, 13 * 60}, {5, "exam", ahead, 10 * 60}} {
		if s.child < len(d.Children) {
			seeds = append(seeds, s)
		}
	}
	sys := &auth.Principal{TenantID: d.TenantID, Username: "system:demo", Role: "system"}
	ctx = audit.WithActor(ctx, audit.Actor{Username: "system:demo", Role: "system", TenantID: d.TenantID})
	return postgres.InTenant(ctx, m.Pool, d.TenantID, func(tx pgx.Tx) error {
		for _, s := range seeds {
			req := BookRequest{PersonID: d.Children[s.child].PersonID, UnitID: d.ClinicID, TypeID: types[s.typ].ID, Start: wall(s.day, s.min)}
			if _, err := m.book(ctx, tx, sys, auth.Decision{Allowed: true}, req, StatusBooked, ViaStaff, 0); err != nil {
				return fmt.Errorf("booking: demo appointment: %w", err)
			}
		}
		// Demo notifications are not sent.
		if _, err := tx.Exec(ctx, `UPDATE booking.outbox SET sent = now(), last_error = 'demo' WHERE sent IS NULL`); err != nil {
			return fmt.Errorf("booking: demo: %w", err)
		}
		return nil
	})
}

// weekdayFrom returns the n-th weekday (Monday–Thursday, when the demo
// clinic is open all day) on or after date.
func weekdayFrom(date time.Time, n int) time.Time {
	d := date
	for {
		if wd := isoWeekday(d); wd <= 4 {
			if n == 0 {
				return d
			}
			n--
		}
		d = d.AddDate(0, 0, 1)
	}
}
