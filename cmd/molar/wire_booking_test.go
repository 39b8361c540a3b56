package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/modules/booking/bookingtest"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
	"github.com/molar-health/molar/viewer/browsertest"
)

func init() {
	for k, v := range map[string]string{
		"GET /m/booking/":                             "",
		"GET /m/booking/assets/booking.css":           "",
		"GET /m/booking/calendar":                     booking.PermRead,
		"GET /m/booking/book":                         booking.PermBook,
		"POST /m/booking/book":                        booking.PermBook,
		"GET /m/booking/appointments/{id}":            booking.PermRead,
		"POST /m/booking/appointments/{id}/move":      booking.PermBook,
		"POST /m/booking/appointments/{id}/cancel":    booking.PermBook,
		"GET /m/booking/recalls":                      booking.PermInvite,
		"POST /m/booking/invitations":                 booking.PermInvite,
		"GET /m/booking/admin":                        booking.PermAdmin,
		"POST /m/booking/admin/{what}":                booking.PermAdmin,
		"GET /m/booking/my":                           auth.PermPortalUse,
		"GET /m/booking/my/{person}/slots":            auth.PermPortalUse,
		"POST /m/booking/my/{person}/book":            auth.PermPortalUse,
		"POST /m/booking/my/appointments/{id}/move":   auth.PermPortalUse,
		"POST /m/booking/my/appointments/{id}/cancel": auth.PermPortalUse,
		"POST /m/booking/my/invitations/{id}/accept":  auth.PermPortalUse,
		"POST /m/booking/my/invitations/{id}/change":  auth.PermPortalUse,
		"POST /m/booking/my/feed":                     auth.PermPortalUse,
		"POST /m/booking/my/feed/revoke":              auth.PermPortalUse,
	} {
		routePermissions[k] = v
	}
	// The calendar feed: its secret link is the credential (calendar apps
	// cannot log in); unknown and revoked links answer 404.
	publicRoutes["GET /m/booking/feed/{token}"] = true
}

// bookingServer is a test server with the demo data and booking e-mail to
// a real SMTP server the test runs.
func bookingServer(t *testing.T, extra map[string]string) (*testServer, *bookingtest.SMTPSink, *booking.Module) {
	t.Helper()
	sink := bookingtest.StartSMTP(t)
	env := map[string]string{"MOLAR_SMTP_ADDR": sink.Addr, "MOLAR_SMTP_FROM": "Tandplejen Molarby <tandpleje@molarby.example>", "MOLAR_SMTP_TLS": "off"}
	for k, v := range extra {
		env[k] = v
	}
	ts := newTestServer(t, env)
	return ts, sink, bookingOf(ts.server)
}

// personName reads a person's given name (admin pool).
func personName(t *testing.T, ts *testServer, id int64) string {
	var name string
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		p, err := auth.GetPerson(context.Background(), tx, id)
		name = p.GivenName
		return err
	}))
	return name
}

func TestBookingFeedIsPublicAndSecret(t *testing.T) {
	ts, _, _ := bookingServer(t, nil)
	resp, err := http.Get(ts.URL + "/m/booking/feed/nosuchtokenxxxxxxxxxxxxxxxxxxxx.ics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "reachable without login, but unknown")

	c, csrf := ts.login(t, "foraelder1")
	form := url.Values{"csrf_token": {csrf}}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/m/booking/my/feed", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", ts.URL)
	resp, err = c.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	i := strings.Index(string(body), "/m/booking/feed/")
	require.Positive(t, i)
	link := string(body[i:])
	link = link[:strings.IndexByte(link, '"')]
	resp, err = http.Get(ts.URL + link)
	require.NoError(t, err)
	ics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/calendar; charset=utf-8", resp.Header.Get("Content-Type"))
	cal, err := bookingtest.CheckICS(ics)
	require.NoError(t, err)
	require.NotEmpty(t, cal.Events, "the demo child's examination")
	child := personName(t, ts, ts.demo.Children[0].PersonID)
	require.NotContains(t, string(ics), child, "times and places only")
}

// TestBookingParentRebooksOnPhone: a parent moves a child's examination on
// a phone-sized window in headless Chromium; the clinic's calendar shows the
// new time; the reminder e-mail reaches the test SMTP server with a valid .ics.
func TestBookingParentRebooksOnPhone(t *testing.T) {
	ts, sink, m := bookingServer(t, nil)
	var offset time.Duration
	m.Now = func() time.Time { return time.Now().Add(offset) }
	childID := ts.demo.Children[0].PersonID
	child := personName(t, ts, childID)

	b := browsertest.New(t, 390, 844)
	// Headless Chromium keeps a minimum window width; emulate the phone's viewport.
	b.Do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.Do(chromedp.Navigate(ts.URL+"/m/booking/my"), chromedp.WaitVisible("#username"))
	b.Do(chromedp.SendKeys("#username", "foraelder1"), chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"), chromedp.WaitVisible("#my"))
	b.Screenshot("1-appointments")
	width := browsertest.Get(b, chromedp.Evaluate[float64](`window.innerWidth`))
	require.Equal(t, 390.0, width, "a phone-sized window")
	right := browsertest.Get(b, chromedp.Evaluate[float64](`document.querySelector('#my').getBoundingClientRect().right`))
	require.LessOrEqual(t, right, 390.0, "the page fits the phone's width")
	page := browsertest.Get(b, chromedp.Text("#my"))
	require.Contains(t, page, child)
	require.Contains(t, page, "Tandplejen Molarby Skole")
	require.NotContains(t, page, "Undersøgelse", "no clinical type names on the citizen's page")

	// Rebook: the week after the current appointment, first slot on its first day.
	sel := fmt.Sprintf("#person-%d a.rebook", childID)
	b.Do(chromedp.Click(sel), chromedp.WaitVisible("#slots"))
	b.Do(chromedp.Click("#next-week"), chromedp.WaitVisible(".bk-slots button.slot"))
	b.Screenshot("2-free-times")
	start := browsertest.Get(b, chromedp.AttributeValue(".bk-slots button.slot", "data-start"))
	newStart, err := time.Parse(time.RFC3339, start.Value)
	require.NoError(t, err)
	b.Do(chromedp.Click(".bk-slots button.slot"), chromedp.WaitVisible("#done"))
	b.Screenshot("3-moved")
	require.Contains(t, browsertest.Get(b, chromedp.Text("#done")), "Tiden er flyttet")
	require.Contains(t, browsertest.Get(b, chromedp.Text(fmt.Sprintf("#person-%d", childID))), booking.DanishDate(newStart))

	// The clinic's calendar shows it (dentist, laptop window).
	staff := browsertest.New(t, 1366, 768)
	staff.Do(chromedp.Navigate(ts.URL+"/m/booking/calendar?view=week&date="+newStart.In(booking.Loc).Format("2006-01-02")), chromedp.WaitVisible("#username"))
	staff.Do(chromedp.SendKeys("#username", "tandlaege"), chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"), chromedp.WaitVisible("#calendar"))
	week := browsertest.Get(staff, chromedp.Text(".bk-week"))
	require.Contains(t, week, newStart.In(booking.Loc).Format("15:04")+" "+child)
	staff.Screenshot("4-clinic-week")
	staff.Do(chromedp.Navigate(ts.URL+"/m/booking/calendar?view=day&date="+newStart.In(booking.Loc).Format("2006-01-02")), chromedp.WaitVisible(".bk-grid"))
	require.Contains(t, browsertest.Get(staff, chromedp.Text(".bk-grid")), child)
	staff.Screenshot("5-clinic-day")

	// The confirmation of the move, then the reminder 48 hours before.
	require.NoError(t, m.Tick(context.Background()))
	parent := ts.demo.Children[0].Parents[0]
	var parentEmail string
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		p, err := auth.GetPerson(context.Background(), tx, parent)
		parentEmail = p.Email
		return err
	}))
	if parentEmail == "" { // the demo register has no e-mail addresses: give the parent one
		parentEmail = "foraelder1@molarby.example"
		require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
			p, err := auth.GetPerson(context.Background(), tx, parent)
			if err != nil {
				return err
			}
			return auth.UpdatePersonContact(context.Background(), tx, parent, p.Address, p.Phone, parentEmail)
		}))
	}
	offset = time.Until(newStart) - 47*time.Hour
	require.NoError(t, m.Tick(context.Background()))
	msg, ok := sink.Wait(10*time.Second, func(mm bookingtest.Mail) bool {
		p, err := bookingtest.Parse(mm.Data)
		return err == nil && strings.HasPrefix(p.Subject, "Påmindelse:")
	})
	require.True(t, ok, "the reminder e-mail arrives")
	require.Equal(t, []string{parentEmail}, msg.To)
	p, err := bookingtest.Parse(msg.Data)
	require.NoError(t, err)
	require.Contains(t, p.Text, child)
	require.Contains(t, p.Text, booking.DanishDate(newStart))
	require.Len(t, p.Calendars, 1)
	cal, err := bookingtest.CheckICS(p.Calendars[0])
	require.NoError(t, err)
	require.Len(t, cal.Events, 1)
	require.True(t, cal.Events[0].Start.Equal(newStart), "the .ics has the new time")
	require.Contains(t, cal.Events[0].Props["LOCATION"], "Tandplejen Molarby Skole")
	dir := browsertest.ArtifactsDir()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "testbookingparentrebooksonphone-reminder.eml"), msg.Data, 0o644))
}

// TestBookingFindscuWorklist: an imaging appointment appears in DCMTK's
// findscu -W answer from Molar's MWL SCP with the right patient, accession
// number and station AE; moving it updates the answer, cancelling removes it.
func TestBookingFindscuWorklist(t *testing.T) {
	if _, err := exec.LookPath("findscu"); err != nil {
		pgtest.Unavailable(t, "findscu (apt-get install dcmtk)", err)
	}
	ts, _, m := bookingServer(t, nil)
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ts.serveDICOM(ctx, ln))
	t.Cleanup(func() { _ = ts.dicom.Shutdown(ctx) })
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "PANO1", Host: "127.0.0.1", Port: 104, Permissions: []string{"echo", "find"}, TenantID: ts.demo.TenantID}, true))

	// The demo seeds a panoramic X-ray for the third child; give it a CPR-number check.
	childID := ts.demo.Children[2].PersonID
	var cpr, family, given string
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		p, err := auth.GetPerson(ctx, tx, childID)
		cpr, family, given = p.CPR.Digits(), p.FamilyName, p.GivenName
		return err
	}))
	dentist := dentistPrincipal(t, ts)
	actx := auth.WithPrincipal(ctx, dentist)
	list, err := m.Appointments(actx, dentist, childID, booking.ListFilter{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	a := list[0]
	require.True(t, a.Imaging)

	query := func(day time.Time) []*header.Dataset {
		return findscuW(t, ln.Addr().String(), "PANO1", day.In(booking.Loc).Format("20060102"))
	}
	rs := query(a.Start)
	require.Len(t, rs, 1)
	require.Equal(t, cpr, rs[0].Get(header.TagPatientID))
	require.Equal(t, family+"^"+given, rs[0].Get(header.TagPatientName))
	require.Equal(t, a.AccessionNumber, rs[0].Get(header.TagAccessionNumber))
	require.Equal(t, a.StudyUID, rs[0].Get(header.TagStudyInstanceUID))
	sps := rs[0].Sequence(header.NewTag(0x0040, 0x0100))
	require.Len(t, sps, 1)
	require.Equal(t, "PANO1", sps[0].Get(header.NewTag(0x0040, 0x0001)))
	require.Equal(t, "PX", sps[0].Get(header.TagModality))
	require.Equal(t, a.Start.In(booking.Loc).Format("150405"), sps[0].Get(header.NewTag(0x0040, 0x0003)))
	// The modality read the child's data: in the child's access log.
	var reads int
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE person_id = $1 AND action = 'read'
			AND username = 'dicom:PANO1' AND detail->>'worklist' = 'true'`, childID).Scan(&reads)
	}))
	require.Equal(t, 1, reads)

	// Move it to another day: the old day is empty, the new day has it.
	newDay := a.Start.AddDate(0, 0, 7)
	if wd := newDay.In(booking.Loc).Weekday(); wd == time.Friday || wd == time.Saturday || wd == time.Sunday {
		newDay = newDay.AddDate(0, 0, 3)
	}
	moved, err := m.Move(actx, dentist, a.ID, booking.MoveRequest{Start: newDay, Reason: "Røntgenapparatet til service"})
	require.NoError(t, err)
	require.Empty(t, query(a.Start))
	rs = query(moved.Start)
	require.Len(t, rs, 1)
	require.Equal(t, a.AccessionNumber, rs[0].Get(header.TagAccessionNumber))
	require.Equal(t, moved.Start.In(booking.Loc).Format("150405"), rs[0].Sequence(header.NewTag(0x0040, 0x0100))[0].Get(header.NewTag(0x0040, 0x0003)))

	// Cancel: gone.
	require.NoError(t, m.Cancel(actx, dentist, a.ID, "Ikke længere nødvendig"))
	require.Empty(t, query(moved.Start))
}

func dentistPrincipal(t *testing.T, ts *testServer) *auth.Principal {
	var p *auth.Principal
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(context.Background(), `SELECT id FROM auth.users WHERE username = 'tandlaege'`).Scan(&id); err != nil {
			return err
		}
		p = &auth.Principal{UserID: id, TenantID: ts.demo.TenantID, Username: "tandlaege", Role: auth.RoleDentist}
		return nil
	}))
	return p
}

// findscuW runs DCMTK's findscu -W as the station AE and reads the answers.
func findscuW(t *testing.T, addr, aet, date string) []*header.Dataset {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "findscu", "-W", "-X", "-od", dir, "-aet", aet, "-aec", "MOLAR",
		"-k", "PatientName", "-k", "PatientID", "-k", "AccessionNumber", "-k", "StudyInstanceUID",
		"-k", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle="+aet,
		"-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate="+date,
		"-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
		"-k", "ScheduledProcedureStepSequence[0].Modality", host, port)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var rs []*header.Dataset
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		hd, err := header.Read(f, header.Options{})
		f.Close()
		require.NoError(t, err)
		rs = append(rs, hd.Dataset)
	}
	return rs
}

// TestBookingSetupTakesResourcesAndTypesOutOfService: on the set-up page a
// clinic administrator takes a chair out of service (no new slot uses it,
// the page marks it) and brings it back, and retires an appointment type
// (it can no longer be booked) and brings it back.
func TestBookingSetupTakesResourcesAndTypesOutOfService(t *testing.T) {
	ts, _, mod := bookingServer(t, nil)
	ctx := context.Background()
	ten, clinic := ts.demo.TenantID, ts.demo.ClinicID
	c, csrf := ts.login(t, "klinikadmin")
	post := func(what string, form url.Values) int {
		form.Set("csrf_token", csrf)
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/m/booking/admin/%s?unit=%d", ts.URL, what, clinic), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", ts.URL)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	page := func() string {
		resp, err := c.Get(fmt.Sprintf("%s/m/booking/admin?unit=%d", ts.URL, clinic))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return string(b)
	}

	resources, err := mod.Resources(ctx, ten, clinic)
	require.NoError(t, err)
	types, err := mod.Types(ctx, ten, false)
	require.NoError(t, err)
	var chair booking.Resource
	for _, r := range resources {
		if r.Kind == booking.KindChair && r.Active {
			chair = r
			break
		}
	}
	require.NotZero(t, chair.ID)
	var typ booking.Type
	for _, ty := range types {
		if len(ty.Kinds) == 1 && ty.Kinds[0] == booking.KindChair && len(ty.ResourceIDs) == 0 {
			typ = ty
			break
		}
	}
	require.NotZero(t, typ.ID)
	dentist := dentistPrincipal(t, ts)
	child := ts.demo.Children[0].PersonID
	from := time.Now().AddDate(0, 0, 2)
	slots := func() ([]booking.Slot, error) {
		return mod.FreeSlots(ctx, dentist, booking.SlotQuery{PersonID: child, UnitID: clinic, TypeID: typ.ID, From: from, To: from.AddDate(0, 0, 14), Limit: 500})
	}
	using := func(id int64) int {
		s, err := slots()
		require.NoError(t, err)
		n := 0
		for _, sl := range s {
			for _, r := range sl.ResourceIDs {
				if r == id {
					n++
				}
			}
		}
		return n
	}
	require.Positive(t, using(chair.ID))

	// In Chromium, as the clinic administrator would.
	b := browsertest.New(t, 1366, 900)
	b.Do(chromedp.Navigate(fmt.Sprintf("%s/m/booking/admin?unit=%d", ts.URL, clinic)), chromedp.WaitVisible("#username"))
	b.Do(chromedp.SendKeys("#username", "klinikadmin"), chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"), chromedp.WaitVisible(".bk-admin"))
	toggle := chromedp.CSS(fmt.Sprintf(`form[action^="/m/booking/admin/resources"]:has(input[name="id"][value="%d"]) button`, chair.ID))
	require.Equal(t, "Tag ud af brug", browsertest.Get(b, chromedp.Text(toggle)))
	b.Do(chromedp.Click(toggle), chromedp.WaitVisible(".notice"))
	b.Screenshot("booking-setup-chair-out-of-service")
	item := browsertest.Get(b, chromedp.Text(chromedp.CSS(fmt.Sprintf(`li.bk-inactive:has(input[name="id"][value="%d"])`, chair.ID))))
	require.Contains(t, item, chair.Name)
	require.Contains(t, item, "ude af brug")
	require.Zero(t, using(chair.ID), "no new slot on a chair out of service")
	require.Contains(t, page(), "ude af brug")
	require.Equal(t, http.StatusSeeOther, post("resources", url.Values{"id": {fmt.Sprint(chair.ID)}, "active": {"true"}}))
	require.Positive(t, using(chair.ID))
	require.NotEqual(t, http.StatusSeeOther, post("resources", url.Values{"id": {"99999999"}, "active": {"false"}}), "an unknown resource")

	// An appointment booked as the type before it is retired stays movable.
	free, err := slots()
	require.NoError(t, err)
	require.NotEmpty(t, free)
	actx := audit.WithActor(ctx, audit.Actor{UserID: dentist.UserID, Username: dentist.Username, Role: dentist.Role, TenantID: ten})
	booked, err := mod.Book(actx, dentist, booking.BookRequest{PersonID: child, UnitID: clinic, TypeID: typ.ID, Start: free[len(free)-1].Start})
	require.NoError(t, err)
	require.Equal(t, http.StatusSeeOther, post("types", url.Values{"id": {fmt.Sprint(typ.ID)}, "active": {"false"}}))
	_, err = slots()
	require.ErrorIs(t, err, booking.ErrNotFound, "a retired type cannot be booked")
	moves, err := mod.FreeSlots(actx, dentist, booking.SlotQuery{PersonID: child, UnitID: clinic, TypeID: typ.ID, From: from, To: from.AddDate(0, 0, 14), Moving: booked.ID})
	require.NoError(t, err)
	require.NotEmpty(t, moves, "the booked appointment can still move")
	require.Contains(t, page(), "Tag i brug igen")
	require.Equal(t, http.StatusSeeOther, post("types", url.Values{"id": {fmt.Sprint(typ.ID)}, "active": {"true"}}))
	_, err = slots()
	require.NoError(t, err)
}

// TestBookingSetupStaysInTheAdministratorsUnits: a clinic administrator
// sets up the units they belong to; another clinic of the municipality is
// refused (page and changes, as not found: like everything outside one's
// reach), and an absence cannot be put on another clinic's resource
// through their own unit.
func TestBookingSetupStaysInTheAdministratorsUnits(t *testing.T) {
	ts, _, mod := bookingServer(t, nil)
	ctx := context.Background()
	ten, clinic := ts.demo.TenantID, ts.demo.ClinicID
	var other auth.OrgUnit
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ten, func(tx pgx.Tx) error {
		var err error
		other, err = auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: ten, Kind: "dental_clinic", Name: "Tandplejen Nordby"})
		return err
	}))
	otherChair, err := mod.SaveResource(ctx, ten, booking.Resource{UnitID: other.ID, Kind: booking.KindChair, Name: "Stol N1"})
	require.NoError(t, err)

	c, csrf := ts.login(t, "klinikadmin")
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(unit int64, what string, form url.Values) int {
		form.Set("csrf_token", csrf)
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/m/booking/admin/%s?unit=%d", ts.URL, what, unit), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", ts.URL)
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func(unit int64) (int, string) {
		resp, err := c.Get(fmt.Sprintf("%s/m/booking/admin?unit=%d", ts.URL, unit))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := get(clinic)
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "Tandplejen Nordby", "the unit picker lists the administrator's units only")
	code, _ = get(other.ID)
	require.Equal(t, http.StatusNotFound, code)

	require.Equal(t, http.StatusNotFound, post(other.ID, "resources", url.Values{"id": {strconv.FormatInt(otherChair.ID, 10)}, "active": {"false"}}))
	require.Equal(t, http.StatusNotFound, post(other.ID, "closed", url.Values{"day": {time.Now().AddDate(0, 1, 0).Format("2006-01-02")}, "reason": {"Lukket"}}))
	// Through their own unit, another unit's resource is not found.
	require.Equal(t, http.StatusNotFound, post(clinic, "resources", url.Values{"id": {strconv.FormatInt(otherChair.ID, 10)}, "active": {"false"}}))
	from := time.Now().AddDate(0, 0, 7)
	require.Equal(t, http.StatusNotFound, post(clinic, "absence", url.Values{"resource": {strconv.FormatInt(otherChair.ID, 10)},
		"from": {from.Format("2006-01-02T15:04")}, "until": {from.Add(4 * time.Hour).Format("2006-01-02T15:04")}, "reason": {"Kursus"}}))

	res, err := mod.Resources(ctx, ten, other.ID)
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.True(t, res[0].Active, "the other clinic's chair is untouched")
	abs, err := mod.Absences(ctx, ten, other.ID, time.Now(), time.Now().AddDate(1, 0, 0))
	require.NoError(t, err)
	require.Empty(t, abs)
	closed, err := mod.ClosedDays(ctx, ten, other.ID, time.Now())
	require.NoError(t, err)
	require.Empty(t, closed)
}
