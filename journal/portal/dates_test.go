package portal_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/journal/portal"
)

// fakeBooking has one invitation and free slots on a Monday.
type fakeBooking struct{}

var monday = time.Date(2026, 3, 30, 8, 0, 0, 0, portal.Local)

func (fakeBooking) Appointments(context.Context, int64, int64) ([]portal.Appointment, []portal.Appointment, error) {
	return nil, nil, nil
}
func (fakeBooking) Invitations(context.Context, int64, int64) ([]portal.Invitation, error) {
	return []portal.Invitation{{Ref: "i1", Kind: "Tandpleje", Proposed: monday, Place: "Tandplejen"}}, nil
}
func (fakeBooking) FreeSlots(context.Context, int64, int64, string, time.Time, time.Time) ([]portal.Slot, error) {
	return []portal.Slot{{Ref: "1", Start: monday.Add(time.Hour), End: monday.Add(90 * time.Minute), Place: "Tandplejen"}}, nil
}
func (fakeBooking) Rebook(context.Context, *auth.Principal, int64, int64, string, string) error {
	return nil
}
func (fakeBooking) Cancel(context.Context, *auth.Principal, int64, int64, string, string) error {
	return nil
}
func (fakeBooking) Accept(context.Context, *auth.Principal, int64, int64, string) error { return nil }

func (f *family) get(path string) string {
	r := chi.NewRouter()
	f.p.Routes(r)
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req = req.WithContext(auth.WithPrincipal(req.Context(), f.parent))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	require.Equal(f.t, http.StatusOK, w.Code, w.Body.String())
	return w.Body.String()
}

// The portal is Danish by default: weekdays of invitations and free times
// are Danish words, English only when English is chosen.
func TestWeekdaysInTheLanguageOfThePage(t *testing.T) {
	f := newFamily(t)
	f.p.Booking = fakeBooking{}
	page := f.get("/portal/c/" + f.ref + "/appointments")
	require.Contains(t, page, "mandag 30-03-2026 08:00")
	require.NotContains(t, page, "Monday")
	page = f.get("/portal/c/" + f.ref + "/appointments/i1/move")
	require.Contains(t, page, "man. 30-03 09:00")
	require.NotContains(t, page, "Mon ")

	page = f.get("/portal/c/" + f.ref + "/appointments?lang=en")
	require.Contains(t, page, "Monday 30-03-2026 08:00")
	page = f.get("/portal/c/" + f.ref + "/appointments/i1/move?lang=en")
	require.Contains(t, page, "Mon 30-03 09:00")
}
