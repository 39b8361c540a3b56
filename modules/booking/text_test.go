package booking_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/viewer/web"
)

// Text PostgreSQL cannot store (NUL, bytes that are not UTF-8), as a form
// can send it, is bad input (400) everywhere the module takes text, and
// nothing is changed.
func TestTextPostgreSQLCannotStoreIsInvalid(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dctx := f.ctx(f.dentist)
	a, err := f.m.Book(dctx, f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 10, 0)})
	require.NoError(t, err)
	for _, bad := range []string{"syg\x00dom", "syg \xff"} {
		err := f.m.Cancel(dctx, f.dentist, a.ID, bad)
		require.Equal(t, web.Invalid, web.KindOf(err), "cancel %q: %v", bad, err)
		_, err = f.m.Move(dctx, f.dentist, a.ID, booking.MoveRequest{Start: local(2026, 3, 4, 11, 0), Reason: bad})
		require.Equal(t, web.Invalid, web.KindOf(err), "move %q: %v", bad, err)
		err = f.m.AddClosedDay(ctx, f.tenant, f.clinic, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), bad)
		require.Equal(t, web.Invalid, web.KindOf(err), "closed day %q: %v", bad, err)
		_, err = f.m.AddAbsence(ctx, f.tenant, f.clinic, booking.Absence{ResourceID: f.chair, From: local(2026, 4, 2, 8, 0), Until: local(2026, 4, 2, 12, 0), Reason: bad})
		require.Equal(t, web.Invalid, web.KindOf(err), "absence %q: %v", bad, err)
		_, err = f.m.SaveResource(ctx, f.tenant, booking.Resource{UnitID: f.clinic, Kind: booking.KindChair, Name: bad})
		require.Equal(t, web.Invalid, web.KindOf(err), "resource %q: %v", bad, err)
		_, err = f.m.SaveType(ctx, f.tenant, booking.Type{Code: "kontrol", Name: bad, Minutes: 20})
		require.Equal(t, web.Invalid, web.KindOf(err), "type %q: %v", bad, err)
	}
	got, err := f.m.Get(dctx, f.dentist, a.ID)
	require.NoError(t, err)
	require.True(t, got.Active())
	require.True(t, got.Start.Equal(a.Start))
}
