package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/viewer/browsertest"
)

func init() {
	routePermissions["GET /admin/staff/"] = auth.PermAdminUsers
	routePermissions["POST /admin/staff/members"] = auth.PermAdminUsers
	routePermissions["POST /admin/staff/members/{user}/{unit}/delete"] = auth.PermAdminUsers
}

// TestStaffAdminScreen: a clinic administrator puts a colleague into their
// own unit and takes them out again, both audit events; another unit's
// membership is out of their reach (not found); the system administrator
// reaches every unit; staff without admin.users are refused. In Chromium,
// as the clinic administrator would, in Danish.
func TestStaffAdminScreen(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	clinic, home := ts.demo.ClinicID, ts.demo.HomeCareID
	nurse, err := auth.UserByUsername(ctx, ts.db.pool, "sygeplejerske")
	require.NoError(t, err)
	units := func() []int64 {
		ids, err := auth.UserUnits(ctx, ts.db.pool, nurse.ID)
		require.NoError(t, err)
		return ids
	}
	require.Equal(t, []int64{home}, units())
	audited := func(action string) int {
		conn, err := pgx.Connect(ctx, ts.db.ownerURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE object = $1 AND action = $2 AND detail->>'source' = 'staff administration'`,
			fmt.Sprintf("auth.user_unit/%d", nurse.ID), action).Scan(&n))
		return n
	}
	member := func(unit int64) url.Values {
		return url.Values{"user_id": {strconv.FormatInt(nurse.ID, 10)}, "unit_id": {strconv.FormatInt(unit, 10)}}
	}
	remove := func(unit int64) string {
		return fmt.Sprintf("%s/admin/staff/members/%d/%d/delete", ts.URL, nurse.ID, unit)
	}

	c, csrf := ts.login(t, "klinikadmin")
	st, body := get(t, c, ts.URL+"/admin/staff/")
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, body, "Hjemmeplejen Nord", "every unit is listed")
	st, _ = post(t, c, ts.URL, ts.URL+"/admin/staff/members", csrf, member(clinic))
	require.Equal(t, http.StatusSeeOther, st)
	require.ElementsMatch(t, []int64{home, clinic}, units())
	require.Equal(t, 1, audited("create"))
	// Not their unit: neither in nor out.
	st, _ = post(t, c, ts.URL, ts.URL+"/admin/staff/members", csrf, member(home))
	require.Equal(t, http.StatusNotFound, st)
	st, _ = post(t, c, ts.URL, remove(home), csrf, url.Values{})
	require.Equal(t, http.StatusNotFound, st)
	// A citizen account is not staff.
	citizen, err := auth.UserByUsername(ctx, ts.db.pool, "foraelder1")
	require.NoError(t, err)
	st, _ = post(t, c, ts.URL, ts.URL+"/admin/staff/members", csrf, url.Values{"user_id": {strconv.FormatInt(citizen.ID, 10)}, "unit_id": {strconv.FormatInt(clinic, 10)}})
	require.Equal(t, http.StatusNotFound, st)
	// Adding again changes nothing and is no audit event.
	st, _ = post(t, c, ts.URL, ts.URL+"/admin/staff/members", csrf, member(clinic))
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, 1, audited("create"))
	st, _ = post(t, c, ts.URL, remove(clinic), csrf, url.Values{})
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, []int64{home}, units())
	require.Equal(t, 1, audited("delete"))
	// Removing someone who is not there: nothing, no event.
	st, _ = post(t, c, ts.URL, remove(clinic), csrf, url.Values{})
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, 1, audited("delete"))
	_, body = get(t, c, ts.URL+"/admin/staff/?saved=Ring+til+1234")
	require.NotContains(t, body, "Ring til 1234", "only the screen's own notices")

	// The system administrator reaches every unit.
	ac, acsrf := ts.login(t, "admin")
	st, _ = post(t, ac, ts.URL, remove(home), acsrf, url.Values{})
	require.Equal(t, http.StatusSeeOther, st)
	require.Empty(t, units())
	st, _ = post(t, ac, ts.URL, ts.URL+"/admin/staff/members", acsrf, member(home))
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, []int64{home}, units())

	// Without admin.users: refused.
	dc, _ := ts.login(t, "tandlaege")
	st, _ = get(t, dc, ts.URL+"/admin/staff/")
	require.Equal(t, http.StatusForbidden, st)

	// In Chromium.
	b := browsertest.New(t, 1366, 900)
	b.Do(chromedp.Navigate(ts.URL+"/admin/staff/"), chromedp.WaitVisible("#username"))
	b.Do(chromedp.SendKeys("#username", "klinikadmin"), chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"), chromedp.WaitVisible("#member-form"))
	require.Equal(t, "Tandplejen Molarby Skole", browsertest.Get(b, chromedp.Text(`#member-unit`)), "only their own unit to choose")
	b.Do(chromedp.SetValue("#member-user", strconv.FormatInt(nurse.ID, 10)), chromedp.Click("#member-save"), chromedp.WaitVisible(".notice"))
	require.Contains(t, browsertest.Get(b, chromedp.Text(".notice")), "tilføjet")
	row := browsertest.Get(b, chromedp.Text(fmt.Sprintf(`tr[data-unit="%d"]`, clinic)))
	require.Contains(t, row, "Sofie Sygeplejerske")
	require.Contains(t, row, "Sygeplejerske")
	b.Screenshot("staff-admin-nurse-added")
	require.ElementsMatch(t, []int64{home, clinic}, units())
}

// TestStaffAdminLeavesDirectoryUnits: with OpenID Connect and the demo on
// an empty database (the municipality comes with the demo, after the
// server is wired), a unit whose membership follows directory groups at
// every login (MOLAR_OIDC_UNIT_MAP) is shown with that note and cannot be
// changed on the screen: the next login would undo the change.
func TestStaffAdminLeavesDirectoryUnits(t *testing.T) {
	ts := newTestServer(t, map[string]string{"MOLAR_OIDC_ISSUER": "http://127.0.0.1:1/idp", "MOLAR_OIDC_CLIENT_ID": "molar",
		"MOLAR_OIDC_UNIT_MAP": "tandplejen=Tandplejen Molarby Skole"})
	ctx := context.Background()
	nurse, err := auth.UserByUsername(ctx, ts.db.pool, "sygeplejerske")
	require.NoError(t, err)
	c, csrf := ts.login(t, "admin")
	st, body := get(t, c, ts.URL+"/admin/staff/")
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, body, "Følger grupperne i kataloget")
	st, _ = post(t, c, ts.URL, ts.URL+"/admin/staff/members", csrf, url.Values{"user_id": {strconv.FormatInt(nurse.ID, 10)}, "unit_id": {strconv.FormatInt(ts.demo.ClinicID, 10)}})
	require.Equal(t, http.StatusNotFound, st)
	ids, err := auth.UserUnits(ctx, ts.db.pool, nurse.ID)
	require.NoError(t, err)
	require.Equal(t, []int64{ts.demo.HomeCareID}, ids)
	// The other unit stays the administrator's to change.
	st, _ = post(t, c, ts.URL, fmt.Sprintf("%s/admin/staff/members/%d/%d/delete", ts.URL, nurse.ID, ts.demo.HomeCareID), csrf, url.Values{})
	require.Equal(t, http.StatusSeeOther, st)
	ids, err = auth.UserUnits(ctx, ts.db.pool, nurse.ID)
	require.NoError(t, err)
	require.Empty(t, ids)
	// The login page offers the provider.
	st, body = get(t, ts.client(t), ts.URL+"/login")
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, body, "MitID")
}
