package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/journal/portal"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/browsertest"
)

func init() {
	for k, v := range map[string]string{
		"GET /portal/":                                    auth.PermPortalUse,
		"GET /portal/c/{ref}/":                            auth.PermPortalUse,
		"GET /portal/c/{ref}/journal":                     auth.PermPortalUse,
		"GET /portal/c/{ref}/appointments":                auth.PermPortalUse,
		"GET /portal/c/{ref}/appointments/{appt}/move":    auth.PermPortalUse,
		"POST /portal/c/{ref}/appointments/{appt}/move":   auth.PermPortalUse,
		"POST /portal/c/{ref}/appointments/{appt}/cancel": auth.PermPortalUse,
		"POST /portal/c/{ref}/invitations/{appt}/accept":  auth.PermPortalUse,
		"GET /portal/c/{ref}/messages":                    auth.PermPortalUse,
		"POST /portal/c/{ref}/messages":                   auth.PermPortalUse,
		"GET /portal/c/{ref}/health":                      auth.PermPortalUse,
		"POST /portal/c/{ref}/health":                     auth.PermPortalUse,
		"GET /portal/c/{ref}/log":                         auth.PermPortalUse,
		"GET /portal/clinic/":                             auth.PermJournalRead,
		"GET /portal/clinic/c/{person}":                   auth.PermJournalRead,
		"POST /portal/clinic/c/{person}/messages":         auth.PermJournalRead,
		"POST /portal/clinic/updates/{id}/ack":            auth.PermJournalRead,
	} {
		routePermissions[k] = v
	}
}

var childLink = regexp.MustCompile(`href="/portal/c/([A-Za-z0-9_-]+)/"`)

// get fetches a page as a browser would (HTML) and returns status and body.
func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, base, u, csrf string, form url.Values) (int, string) {
	t.Helper()
	form.Set("csrf_token", csrf)
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPortalAuthorization enumerates every portal route and, for parent A,
// the references of every child that is not A's to see (other families'
// children, young people over 15, A's own older child): all refused, and
// nothing of that child in any response body.
func TestPortalAuthorization(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	parentA := ts.demo.Children[0].Parents[0] // foraelder1
	c, csrf := ts.login(t, "foraelder1")
	var userA auth.User
	userA, err := auth.UserByUsername(ctx, ts.db.pool, "foraelder1")
	require.NoError(t, err)
	require.Equal(t, parentA, userA.PersonID)

	// A sees exactly their own child.
	status, body := get(t, c, ts.URL+"/portal/")
	require.Equal(t, http.StatusOK, status)
	refs := childLink.FindAllStringSubmatch(body, -1)
	require.Len(t, refs, 1, "foraelder1 has one child under 15")
	ownRef := refs[0][1]
	require.Contains(t, body, ts.demo.Children[0].Name)

	// References A must not resolve: every other child and young person,
	// made with the real key (as if leaked), plus raw database ids.
	var key []byte
	require.NoError(t, ts.db.pool.QueryRow(ctx, `SELECT key FROM portal.secret`).Scan(&key))
	type target struct{ ref, name string }
	var targets []target
	for _, ch := range append(ts.demo.Children[1:], ts.demo.Youths...) {
		targets = append(targets,
			target{portal.Ref(key, userA.ID, ch.PersonID), ch.Name},
			target{fmt.Sprint(ch.PersonID), ch.Name})
	}
	// Another parent's reference for their own child is useless to A too.
	other, err := auth.UserByUsername(ctx, ts.db.pool, "foraelder2")
	require.NoError(t, err)
	targets = append(targets, target{portal.Ref(key, other.ID, ts.demo.Children[1].PersonID), ts.demo.Children[1].Name})

	routes := walkRoutes(t, ts.router)
	checked := 0
	for _, rt := range routes {
		if !strings.HasPrefix(rt.pattern, "/portal/c/{ref}") {
			continue
		}
		for _, tg := range targets {
			u := ts.URL + concrete(rt.pattern, map[string]string{"ref": tg.ref, "appt": "x"})
			var st int
			var b string
			if rt.method == http.MethodPost {
				st, b = post(t, c, ts.URL, u, csrf, url.Values{"body": {"hej"}, "kind": {"allergy"}, "slot": {"x"}})
			} else {
				st, b = get(t, c, u)
			}
			require.Equal(t, http.StatusNotFound, st, "%s %s for %s", rt.method, rt.pattern, tg.name)
			require.NotContains(t, b, tg.name, "%s %s leaks the child's name", rt.method, rt.pattern)
			given := strings.Fields(tg.name)[0]
			require.NotContains(t, b, given)
			checked++
		}
	}
	require.Greater(t, checked, 100)

	// A's own child: every page answers, never cached.
	for _, page := range []string{"", "journal", "appointments", "messages", "health", "log"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/portal/c/"+ownRef+"/"+page, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, page)
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"), page)
	}
	// Nothing was written for the refused children (no messages, no updates).
	var n int
	require.NoError(t, ts.db.pool.QueryRow(ctx, `SELECT count(*) FROM portal.message`).Scan(&n))
	require.Zero(t, n)
}

// TestPortalYouthAndOlderChildren: a 15-year-old sees their own record; a
// parent of a 15–17-year-old is informed but cannot open it.
func TestPortalYouthAndOlderChildren(t *testing.T) {
	ts := newTestServer(t, nil)
	c, _ := ts.login(t, "ung15")
	status, body := get(t, c, ts.URL+"/portal/")
	require.Equal(t, http.StatusOK, status)
	refs := childLink.FindAllStringSubmatch(body, -1)
	require.Len(t, refs, 1)
	require.Contains(t, body, ts.demo.Youths[0].Name)
	status, _ = get(t, c, ts.URL+"/portal/c/"+refs[0][1]+"/")
	require.Equal(t, http.StatusOK, status)
}

// TestPortalMessagesUpdatesAndAccessLog: a parent writes to the clinic and
// sends an allergy; the dentist reads and answers; the parent's access log
// names the dentist.
func TestPortalMessagesUpdatesAndAccessLog(t *testing.T) {
	ts := newTestServer(t, nil)
	parent, pcsrf := ts.login(t, "foraelder1")
	_, body := get(t, parent, ts.URL+"/portal/")
	ref := childLink.FindStringSubmatch(body)[1]
	child := ts.demo.Children[0]

	st, _ := post(t, parent, ts.URL, ts.URL+"/portal/c/"+ref+"/messages", pcsrf, url.Values{"body": {"Hun har ondt i en tand."}})
	require.Equal(t, http.StatusSeeOther, st)
	st, _ = post(t, parent, ts.URL, ts.URL+"/portal/c/"+ref+"/health", pcsrf, url.Values{"kind": {"allergy"}, "body": {"Allergisk over for latex"}})
	require.Equal(t, http.StatusSeeOther, st)

	dentist, dcsrf := ts.login(t, "tandlaege")
	st, body = get(t, dentist, ts.URL+"/portal/clinic/")
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, body, child.Name)
	thread := fmt.Sprintf("%s/portal/clinic/c/%d", ts.URL, child.PersonID)
	st, body = get(t, dentist, thread)
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, body, "ondt i en tand")
	require.Contains(t, body, "latex")
	st, _ = post(t, dentist, ts.URL, thread+"/messages", dcsrf, url.Values{"body": {"Ring til os i morgen kl. 8."}})
	require.Equal(t, http.StatusSeeOther, st)

	// A home carer (no care relation with the child, no journal.read) is refused.
	carer, _ := ts.login(t, "hjemmehjaelper")
	st, _ = get(t, carer, thread)
	require.Equal(t, http.StatusForbidden, st)

	_, body = get(t, parent, ts.URL+"/portal/c/"+ref+"/messages")
	require.Contains(t, body, "Ring til os i morgen")
	_, body = get(t, parent, ts.URL+"/portal/c/"+ref+"/log")
	require.Contains(t, body, "Tove Tandlæge", "the access log names the dentist who opened the record")
	require.Contains(t, body, "Tandlæge")
}

// TestPortalOnPhoneInChromium is issue 8's end-to-end proof at phone size:
// the dentist opens the child's record first; then the parent logs in on a
// 390×844 screen, picks the child, reads the latest examination, rebooks the
// examination, sends an allergy, and finds the dentist in the access log.
func TestPortalOnPhoneInChromium(t *testing.T) {
	ts := newTestServer(t, nil)
	child := ts.demo.Children[0]
	dentist, _ := ts.login(t, "tandlaege")
	st, _ := get(t, dentist, fmt.Sprintf("%s/journal/patients/%d", ts.URL, child.PersonID))
	require.Equal(t, http.StatusOK, st, "the dentist opens the child's record")

	b := browsertest.New(t, 390, 844)
	b.Do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(ts.URL+"/portal/"), chromedp.WaitVisible("#username"))
	b.Do(chromedp.SendKeys("#username", "foraelder1"), chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"), chromedp.WaitVisible(".child-card"))
	b.Screenshot("1-children")
	width := browsertest.Get(b, chromedp.Evaluate[float64](`document.documentElement.scrollWidth`))
	require.LessOrEqual(t, width, float64(390), "the page fits the phone's width")

	given := strings.Fields(child.Name)[0]
	b.Do(chromedp.Click(`.child-card a`), chromedp.WaitVisible("#child-name"))
	require.Equal(t, child.Name, strings.TrimSpace(browsertest.Get(b, chromedp.Text("#child-name"))))
	b.Screenshot("2-overview")

	// The latest examination in the record.
	b.Do(chromedp.Click(`nav.tabs a[href$="/journal"]`), chromedp.WaitVisible(".entries"))
	entries := browsertest.Get(b, chromedp.Text(".entries"))
	require.Contains(t, strings.ToLower(entries), "undersøgelse", "a signed examination is shown")
	b.Screenshot("3-journal")

	// Rebook the examination to another free time.
	b.Do(chromedp.Click(`nav.tabs a[href$="/appointments"]`), chromedp.WaitVisible(".appt .when"))
	before := browsertest.Get(b, chromedp.Text(".appt .when"))
	b.Do(chromedp.Click(".appt a.move"), chromedp.WaitVisible(".slots input"))
	b.Screenshot("4-free-times")
	b.Do(chromedp.Click(".slots label:nth-child(3) input"), chromedp.Click("#confirm-move"), chromedp.WaitVisible(".notice"))
	after := browsertest.Get(b, chromedp.Text(".appt .when"))
	require.NotEqual(t, before, after, "the appointment moved")
	b.Screenshot("5-moved")

	// Send an allergy.
	b.Do(chromedp.Click(`nav.tabs a[href$="/health"]`), chromedp.WaitVisible("#update-body"),
		chromedp.SetValue("#update-kind", "allergy"), chromedp.SendKeys("#update-body", "Allergisk over for penicillin"),
		chromedp.Click("#send-update"), chromedp.WaitVisible(".updates"))
	require.Contains(t, browsertest.Get(b, chromedp.Text(".updates")), "penicillin")
	b.Screenshot("6-allergy")

	// The access log names the dentist.
	b.Do(chromedp.Click(`nav.tabs a[href$="/log"]`), chromedp.WaitVisible("ol.log"))
	log := browsertest.Get(b, chromedp.Text("ol.log"))
	require.Contains(t, log, "Tove Tandlæge")
	require.NotContains(t, log, "Dig ", "own look-ups are hidden by default")
	require.Contains(t, log, "Tandlæge")
	b.Screenshot("7-access-log")
	_ = given
}

func init() {
	routePermissions["GET /portal/c/{ref}/images"] = auth.PermPortalUse
	routePermissions["GET /portal/c/{ref}/images/{img}"] = auth.PermPortalUse
}

// TestPortalXRays: with X-rays enabled a parent sees thumbnails of their
// child's images, and another child's image id is not found.
func TestPortalXRays(t *testing.T) {
	ts := newTestServer(t, map[string]string{"MOLAR_PORTAL_XRAYS": "true"})
	ctx := context.Background()
	cprOf := func(id int64) string {
		var cpr string
		require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
			p, err := auth.GetPerson(ctx, tx, id)
			cpr = p.CPR.Digits()
			return err
		}))
		return cpr
	}
	pn := func(name string) string { // the register's name as DICOM PN: Family^Given
		f := strings.Fields(name)
		return f[len(f)-1] + "^" + strings.Join(f[:len(f)-1], " ")
	}
	mine := ingestFile(t, ts, dicomtest.Instance{PatientID: cprOf(ts.demo.Children[0].PersonID), PatientName: pn(ts.demo.Children[0].Name), StudyUID: dicomtest.Root + ".80",
		SeriesUID: dicomtest.Root + ".80.1", SOPUID: dicomtest.Root + ".80.1.1", StudyDate: "20261001", Teeth: []string{"51"}}.File(t))
	other := ingestFile(t, ts, dicomtest.Instance{PatientID: cprOf(ts.demo.Children[1].PersonID), PatientName: pn(ts.demo.Children[1].Name), StudyUID: dicomtest.Root + ".81",
		SeriesUID: dicomtest.Root + ".81.1", SOPUID: dicomtest.Root + ".81.1.1", StudyDate: "20261001"}.File(t))

	require.Equal(t, index.ReconMatched, mine.ReconState, "matched to the child by CPR, name and birth date")
	c, _ := ts.login(t, "foraelder1")
	_, body := get(t, c, ts.URL+"/portal/")
	ref := childLink.FindStringSubmatch(body)[1]
	st, body := get(t, c, ts.URL+"/portal/c/"+ref+"/images")
	require.Equal(t, http.StatusOK, st)
	imgs := regexp.MustCompile(`/portal/c/`+ref+`/images/(\d+)`).FindAllStringSubmatch(body, -1)
	require.Len(t, imgs, 1)
	require.Equal(t, fmt.Sprint(mine.InstanceID), imgs[0][1])
	resp, jpeg := doReq(t, c, "GET", ts.URL+"/portal/c/"+ref+"/images/"+imgs[0][1], "", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
	require.Equal(t, []byte{0xff, 0xd8}, jpeg[:2])
	resp, _ = doReq(t, c, "GET", ts.URL+"/portal/c/"+ref+"/images/"+fmt.Sprint(other.InstanceID), "", nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "another child's image id")

	// Switched off, the tab and the images are gone.
	off := newTestServer(t, nil)
	c2, _ := off.login(t, "foraelder1")
	_, body = get(t, c2, off.URL+"/portal/")
	ref2 := childLink.FindStringSubmatch(body)[1]
	st, _ = get(t, c2, off.URL+"/portal/c/"+ref2+"/images")
	require.Equal(t, http.StatusNotFound, st)
}
