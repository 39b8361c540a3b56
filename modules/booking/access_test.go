package booking_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/storage/postgres"
)

// TestUnitInvitationsOnlyOwnPatients: staff of another unit asking for the
// clinic's invitation lists (?unit= on the recalls page) see none of the
// clinic's patients.
func TestUnitInvitationsOnlyOwnPatients(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.m.Invite(f.ctx(f.dentist), f.dentist, booking.InviteRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, DueDate: time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	var stranger *auth.Principal
	require.NoError(t, postgres.InTenant(ctx, f.db.App, f.tenant, func(tx pgx.Tx) error {
		unit, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: f.tenant, Kind: "dental_clinic", Name: "Tandplejen Andetsted"})
		if err != nil {
			return err
		}
		u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: f.tenant, Username: "andenlaege", DisplayName: "andenlaege", Role: auth.RoleDentist}, nil)
		if err != nil {
			return err
		}
		stranger = &auth.Principal{UserID: u.ID, TenantID: f.tenant, Username: u.Username, Role: auth.RoleDentist}
		return auth.AddUserUnit(ctx, tx, u.ID, unit.ID)
	}))
	own, err := f.m.UnitInvitations(f.ctx(f.dentist), f.dentist, f.clinic, booking.InvitationSent)
	require.NoError(t, err)
	require.Len(t, own, 1)
	theirs, err := f.m.UnitInvitations(f.ctx(stranger), stranger, f.clinic, booking.InvitationSent)
	require.NoError(t, err)
	require.Empty(t, theirs, "another unit's dentist does not see the clinic's invited children")
}

// TestCalendarNamesOnlyOfReachablePersons: another unit's dentist viewing
// the clinic's calendar sees the booked time but not who it is.
func TestCalendarNamesOnlyOfReachablePersons(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.m.Book(f.ctx(f.dentist), f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 8, 0)})
	require.NoError(t, err)
	var stranger *auth.Principal
	require.NoError(t, postgres.InTenant(ctx, f.db.App, f.tenant, func(tx pgx.Tx) error {
		unit, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: f.tenant, Kind: "dental_clinic", Name: "Tandplejen Andetsted"})
		if err != nil {
			return err
		}
		u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: f.tenant, Username: "andenlaege", DisplayName: "andenlaege", Role: auth.RoleDentist}, nil)
		if err != nil {
			return err
		}
		stranger = &auth.Principal{UserID: u.ID, TenantID: f.tenant, Username: u.Username, Role: auth.RoleDentist}
		return auth.AddUserUnit(ctx, tx, u.ID, unit.ID)
	}))
	entries := func(p *auth.Principal) []booking.Entry {
		cal, err := f.m.Calendar(f.ctx(p), p, booking.CalendarQuery{UnitID: f.clinic, Day: local(2026, 3, 4, 0, 0), Days: 1})
		require.NoError(t, err)
		require.Len(t, cal.Days, 1)
		return cal.Days[0].Entries
	}
	own := entries(f.dentist)
	require.Len(t, own, 1)
	require.Equal(t, "Emma", own[0].GivenName)
	theirs := entries(stranger)
	require.Len(t, theirs, 1, "the time is shown as booked")
	require.Empty(t, theirs[0].GivenName+theirs[0].FamilyName, "but not who it is")
	require.Equal(t, 1, f.auditRows(f.child, "read", "booking.appointment"), "only the clinic's own read is audited")
}
