package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/storage/postgres"
)

// TestBookingIDsOfAnotherFamily: parent A (foraelder1) names another
// family's appointment and invitation by id, through the portal (with A's
// own child's reference) and the booking module's citizen pages: every
// attempt is 404, nothing of the other child comes back, nothing changes.
func TestBookingIDsOfAnotherFamily(t *testing.T) {
	ts, _, m := bookingServer(t, nil)
	ctx := context.Background()
	own, other := ts.demo.Children[0], ts.demo.Children[5]
	require.NotContains(t, other.Parents, own.Parents[0])
	var appt, examType int64
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT id FROM booking.appointment WHERE person_id = $1`, other.PersonID).Scan(&appt); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT id FROM booking.appointment_type WHERE code = 'exam'`).Scan(&examType)
	}))
	dentist := dentistPrincipal(t, ts)
	inv, err := m.Invite(auth.WithPrincipal(ctx, dentist), dentist, booking.InviteRequest{PersonID: other.PersonID, UnitID: ts.demo.ClinicID, TypeID: examType,
		DueDate: time.Now().AddDate(0, 1, 0)})
	require.NoError(t, err)
	otherGiven := strings.Fields(other.Name)[0]

	c, csrf := ts.login(t, "foraelder1")
	_, body := get(t, c, ts.URL+"/portal/")
	ref := childLink.FindStringSubmatch(body)[1]
	later := time.Now().AddDate(0, 0, 20).Truncate(time.Hour)
	slot := fmt.Sprint(later.Unix())
	start := later.Format(time.RFC3339)

	type try struct{ method, path string }
	for _, tr := range []try{
		{"GET", fmt.Sprintf("/portal/c/%s/appointments/a%d/move", ref, appt)},
		{"POST", fmt.Sprintf("/portal/c/%s/appointments/a%d/move", ref, appt)},
		{"POST", fmt.Sprintf("/portal/c/%s/appointments/a%d/cancel", ref, appt)},
		{"GET", fmt.Sprintf("/portal/c/%s/appointments/i%d/move", ref, inv.ID)},
		{"POST", fmt.Sprintf("/portal/c/%s/appointments/i%d/move", ref, inv.ID)},
		{"POST", fmt.Sprintf("/portal/c/%s/invitations/i%d/accept", ref, inv.ID)},
		{"POST", fmt.Sprintf("/m/booking/my/appointments/%d/move", appt)},
		{"POST", fmt.Sprintf("/m/booking/my/appointments/%d/cancel", appt)},
		{"POST", fmt.Sprintf("/m/booking/my/appointments/%d/cancel", inv.Appointment.ID)},
		{"POST", fmt.Sprintf("/m/booking/my/invitations/%d/accept", inv.ID)},
		{"POST", fmt.Sprintf("/m/booking/my/invitations/%d/change", inv.ID)},
		{"GET", fmt.Sprintf("/m/booking/my/%d/slots?appt=%d", own.PersonID, appt)},
		{"GET", fmt.Sprintf("/m/booking/my/%d/slots?type=%d", other.PersonID, examType)},
		{"POST", fmt.Sprintf("/m/booking/my/%d/book", other.PersonID)},
	} {
		var status int
		if tr.method == http.MethodPost {
			status, body = post(t, c, ts.URL, ts.URL+tr.path, csrf, url.Values{"slot": {slot}, "start": {start}, "reason": {"x"},
				"type": {fmt.Sprint(examType)}, "unit": {fmt.Sprint(ts.demo.ClinicID)}})
		} else {
			status, body = get(t, c, ts.URL+tr.path)
		}
		require.Equal(t, http.StatusNotFound, status, "%s %s", tr.method, tr.path)
		require.NotContains(t, body, otherGiven, "%s %s", tr.method, tr.path)
	}
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var status string
		var version int
		require.NoError(t, tx.QueryRow(ctx, `SELECT status, version FROM booking.appointment WHERE id = $1`, appt).Scan(&status, &version))
		require.Equal(t, booking.StatusBooked, status)
		require.NoError(t, tx.QueryRow(ctx, `SELECT status FROM booking.invitation WHERE id = $1`, inv.ID).Scan(&status))
		require.Equal(t, "sent", status)
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM booking.appointment WHERE person_id = $1 AND booked_via = 'self'`, other.PersonID).Scan(&n))
		require.Zero(t, n)
		return nil
	}))
}

// TestJournalIDsOfAnotherPatient: a dentist names an entry and a plan item
// of one child under another child's path (both in care): 404, and the
// other child's entry is neither shown, signed nor corrected.
func TestJournalIDsOfAnotherPatient(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	a, b := ts.demo.Children[0].PersonID, ts.demo.Children[1].PersonID
	var entry, item int64
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT id FROM journal.entry WHERE person_id = $1 ORDER BY id DESC LIMIT 1`, b).Scan(&entry); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT id FROM journal.plan_item WHERE person_id = $1 LIMIT 1`, b).Scan(&item)
		if err == pgx.ErrNoRows {
			return nil
		}
		return err
	}))
	c, csrf := ts.login(t, dentistLogin(t, ts))
	paths := []string{
		fmt.Sprintf("GET /journal/patients/%d/entries/%d", a, entry),
		fmt.Sprintf("GET /journal/patients/%d/entries/%d/correct", a, entry),
		fmt.Sprintf("POST /journal/patients/%d/entries/%d/sign", a, entry),
		fmt.Sprintf("POST /journal/patients/%d/entries/%d/correct", a, entry),
		fmt.Sprintf("GET /api/journal/patients/%d/entries/%d", a, entry),
		fmt.Sprintf("POST /api/journal/patients/%d/entries/%d/sign", a, entry),
	}
	if item != 0 {
		paths = append(paths, fmt.Sprintf("POST /journal/patients/%d/plan/items/%d", a, item))
	}
	for _, p := range paths {
		method, path, _ := strings.Cut(p, " ")
		var status int
		if method == http.MethodPost {
			status, _ = post(t, c, ts.URL, ts.URL+path, csrf, url.Values{"kind": {"examination"}, "reason": {"rettelse"}, "status": {"done"}})
		} else {
			status, _ = get(t, c, ts.URL+path)
		}
		require.Equal(t, http.StatusNotFound, status, p)
	}
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM journal.entry WHERE supersedes = $1`, entry).Scan(&n))
		require.Zero(t, n)
		return nil
	}))
}
