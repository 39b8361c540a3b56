package booking_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/modules/booking/bookingtest"
)

// A call-in's proposed time is not an appointment the family has agreed
// to: calendars get it as TENTATIVE (RFC 5545 3.8.1.11) until it is
// accepted, then CONFIRMED.
func TestFeedShowsProposedTimeAsTentative(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	inv, err := f.m.Invite(f.ctx(f.dentist), f.dentist, booking.InviteRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID,
		DueDate: time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	token, err := f.m.CreateFeed(f.ctx(f.parent), f.parent)
	require.NoError(t, err)
	status := func() string {
		body, err := f.m.FeedCalendar(ctx, token)
		require.NoError(t, err)
		cal, err := bookingtest.CheckICS(body)
		require.NoError(t, err)
		require.Len(t, cal.Events, 1)
		return cal.Events[0].Props["STATUS"]
	}
	require.Equal(t, "TENTATIVE", status())
	_, err = f.m.AcceptInvitation(f.ctx(f.parent), f.parent, inv.ID)
	require.NoError(t, err)
	require.Equal(t, "CONFIRMED", status())
}
