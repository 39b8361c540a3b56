package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/journal"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/browsertest"
)

func init() {
	read, write, sign := auth.PermJournalRead, auth.PermJournalWrite, auth.PermJournalSign
	for k, v := range map[string]string{
		"GET /journal/":                                                   read,
		"GET /journal/patients/{person}":                                  read,
		"POST /journal/patients/{person}/break-glass":                     read,
		"POST /journal/patients/{person}/profile":                         write,
		"GET /journal/patients/{person}/entries/new":                      write,
		"POST /journal/patients/{person}/entries":                         write,
		"GET /journal/patients/{person}/entries/{entry}":                  read,
		"POST /journal/patients/{person}/entries/{entry}/sign":            sign,
		"GET /journal/patients/{person}/entries/{entry}/correct":          write,
		"POST /journal/patients/{person}/entries/{entry}/correct":         write,
		"GET /journal/patients/{person}/teeth/{tooth}":                    read,
		"POST /journal/patients/{person}/plan/items/{item}":               write,
		"GET /journal/clinics/{clinic}/recall":                            read,
		"GET /journal/clinics/{clinic}/xrays":                             read,
		"GET /journal/clinics/{clinic}/indices":                           read,
		"GET /journal/clinics/{clinic}/indices.svg":                       read,
		"GET /journal/clinics/{clinic}/scor.csv":                          auth.PermJournalReport,
		"GET /api/journal/openapi.yaml":                                   "",
		"GET /api/journal/diagnoses":                                      read,
		"GET /api/journal/procedures":                                     read,
		"GET /api/journal/patients":                                       read,
		"GET /api/journal/patients/{person}":                              read,
		"POST /api/journal/patients/{person}/break-glass":                 read,
		"POST /api/journal/patients/{person}/profile":                     write,
		"GET /api/journal/patients/{person}/entries":                      read,
		"POST /api/journal/patients/{person}/entries":                     write,
		"GET /api/journal/patients/{person}/entries/{entry}":              read,
		"POST /api/journal/patients/{person}/entries/{entry}/sign":        sign,
		"POST /api/journal/patients/{person}/entries/{entry}/corrections": write,
		"GET /api/journal/patients/{person}/chart":                        read,
		"GET /api/journal/patients/{person}/teeth/{tooth}":                read,
		"GET /api/journal/patients/{person}/plan":                         read,
		"POST /api/journal/patients/{person}/plan/items/{item}":           write,
		"POST /api/journal/patients/{person}/images":                      write,
		"GET /api/journal/patients/{person}/signed-entries":               read,
		"GET /api/journal/clinics/{clinic}/recall":                        read,
		"GET /api/journal/clinics/{clinic}/xray-worklist":                 read,
		"GET /api/journal/clinics/{clinic}/indices":                       read,
		"GET /api/journal/clinics/{clinic}/scor":                          auth.PermJournalReport,
	} {
		routePermissions[k] = v
	}
}

// journalClient is a signed-in user calling the journal over HTTP.
type journalClient struct {
	t    *testing.T
	ts   *testServer
	c    *http.Client
	csrf string
}

func (ts *testServer) journalClient(t *testing.T, username string) *journalClient {
	c, csrf := ts.login(t, username)
	return &journalClient{t: t, ts: ts, c: c, csrf: csrf}
}

// do sends a JSON request and returns the status and body.
func (jc *journalClient) do(method, path string, body any) (int, []byte) {
	jc.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(jc.t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, jc.ts.URL+path, r)
	require.NoError(jc.t, err)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-CSRF-Token", jc.csrf)
	req.Header.Set("Origin", jc.ts.URL)
	resp, err := jc.c.Do(req)
	require.NoError(jc.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(jc.t, err)
	return resp.StatusCode, b
}

func (jc *journalClient) json(method, path string, body any, want int, out any) {
	jc.t.Helper()
	status, b := jc.do(method, path, body)
	require.Equal(jc.t, want, status, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(jc.t, json.Unmarshal(b, out), "%s", b)
	}
}

// demoChild finds a demo child by given name through the search API.
func (jc *journalClient) demoChild(name string) int64 {
	jc.t.Helper()
	var res struct {
		Patients []journal.Hit `json:"patients"`
	}
	jc.json("GET", "/api/journal/patients?q="+name, nil, 200, &res)
	require.Len(jc.t, res.Patients, 1, "one demo child called %s", name)
	return res.Patients[0].ID
}

func TestJournalAPI(t *testing.T) {
	ts := newTestServer(t, nil)
	jc := ts.journalClient(t, "tandlaege")

	// The OpenAPI document is served.
	status, b := jc.do("GET", "/api/journal/openapi.yaml", nil)
	require.Equal(t, 200, status)
	require.Contains(t, string(b), "openapi: 3.0.3")
	for _, p := range []string{"/api/journal/patients/{person}/entries:", "/api/journal/clinics/{clinic}/recall:", "/api/journal/clinics/{clinic}/scor:"} {
		require.Contains(t, string(b), p)
	}

	child := jc.demoChild("Agnes")
	base := fmt.Sprintf("/api/journal/patients/%d", child)
	var entries struct{ Entries []journal.Entry }
	jc.json("GET", base+"/entries", nil, 200, &entries)
	require.Empty(t, entries.Entries, "Agnes has no demo entries")

	careTime := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	exam := map[string]any{"kind": "examination", "care_time": careTime, "text": "Kontrol", "findings": []map[string]any{
		{"tooth": 36, "surfaces": "o", "condition": "caries", "depth": "dentin"},
		{"tooth": 16, "surfaces": "O", "condition": "sealant"},
	}}
	var e journal.Entry
	jc.json("POST", base+"/entries", exam, 201, &e)
	require.False(t, e.Signed())
	require.Equal(t, "O", e.Findings[0].Surfaces)

	// Invalid input: clear messages, nothing written.
	bad := []struct {
		findings []map[string]any
		want     string
	}{
		{[]map[string]any{{"tooth": 19, "condition": "sound"}}, "Tooth 19 does not exist"},
		{[]map[string]any{{"tooth": 36, "surfaces": "I", "condition": "caries"}}, "Tooth 36 has no surface I"},
	}
	for _, c := range bad {
		status, b := jc.do("POST", base+"/entries", map[string]any{"kind": "examination", "care_time": careTime, "findings": c.findings})
		require.Equal(t, 400, status, "%s", b)
		require.Contains(t, string(b), c.want)
	}
	status, b = jc.do("POST", base+"/entries", map[string]any{"kind": "note", "care_time": time.Now().Add(48 * time.Hour).Format(time.RFC3339), "text": "x"})
	require.Equal(t, 400, status)
	require.Contains(t, string(b), "in the future")
	status, b = jc.do("POST", base+"/entries?lang=da", map[string]any{"kind": "note", "care_time": careTime, "text": "x", "colour": "red"})
	require.Equal(t, 400, status)
	require.Contains(t, string(b), "JSON er ugyldig")
	// Text the database cannot store (a NUL character): 400, nothing written.
	status, b = jc.do("POST", base+"/entries?lang=en", map[string]any{"kind": "note", "care_time": careTime, "text": "Kontrol\x00"})
	require.Equal(t, 400, status, "%s", b)
	require.Contains(t, string(b), "invalid characters")
	jc.json("GET", base+"/entries", nil, 200, &entries)
	require.Len(t, entries.Entries, 1, "only the examination")

	// Sign, then the chart shows the caries; a second signature is refused.
	jc.json("POST", fmt.Sprintf("%s/entries/%d/sign", base, e.ID), nil, 200, &e)
	require.True(t, e.Signed())
	status, _ = jc.do("POST", fmt.Sprintf("%s/entries/%d/sign", base, e.ID), nil)
	require.Equal(t, 409, status)
	var chart struct {
		Dentition string
		Indices   journal.Indices
		Teeth     []journal.ToothState
	}
	jc.json("GET", base+"/chart", nil, 200, &chart)
	require.Equal(t, "mixed", chart.Dentition)
	require.Equal(t, 1, chart.Indices.DMFS)
	byTooth := map[journal.Tooth]journal.ToothState{}
	for _, s := range chart.Teeth {
		byTooth[s.Tooth] = s
	}
	require.Equal(t, "dentin", byTooth[36].Surfaces["O"].Caries)
	require.True(t, byTooth[16].Surfaces["O"].Sealant)

	// An unsigned correction of the signed entry is refused; a signed one is a new version.
	corr := map[string]any{"care_time": careTime, "reason": "Forkert tand: 46, ikke 36", "findings": []map[string]any{
		{"tooth": 46, "surfaces": "O", "condition": "caries", "depth": "dentin"},
		{"tooth": 16, "surfaces": "O", "condition": "sealant"},
	}}
	status, b = jc.do("POST", fmt.Sprintf("%s/entries/%d/corrections", base, e.ID), corr)
	require.Equal(t, 409, status, "%s", b)
	require.Contains(t, string(b), "is signed and locked")
	corr["sign"] = true
	var c2 journal.Entry
	jc.json("POST", fmt.Sprintf("%s/entries/%d/corrections", base, e.ID), corr, 201, &c2)
	require.Equal(t, e.ID, c2.Supersedes)
	var versions struct {
		Entry    journal.Entry
		Versions []journal.Entry
	}
	jc.json("GET", fmt.Sprintf("%s/entries/%d", base, e.ID), nil, 200, &versions)
	require.Len(t, versions.Versions, 2)
	require.Equal(t, c2.ID, versions.Entry.SupersededBy)
	chart.Teeth = nil // decode afresh (json reuses maps of existing elements)
	jc.json("GET", base+"/chart", nil, 200, &chart)
	byTooth = map[journal.Tooth]journal.ToothState{}
	for _, s := range chart.Teeth {
		byTooth[s.Tooth] = s
	}
	require.Empty(t, byTooth[36].Surfaces["O"].Caries)
	require.Equal(t, "dentin", byTooth[46].Surfaces["O"].Caries)

	// Plan, done item, progress.
	var planned journal.Entry
	jc.json("POST", base+"/entries", map[string]any{"kind": "treatment_planned", "care_time": careTime, "sign": true,
		"treatments": []map[string]any{{"tooth": 46, "surfaces": "O", "procedure": "FYLD"}, {"procedure": "FLUOR"}}}, 201, &planned)
	var plan struct {
		Plan     journal.Plan
		Progress journal.Progress
	}
	jc.json("GET", base+"/plan", nil, 200, &plan)
	require.Len(t, plan.Plan.Items, 2)
	var performed journal.Entry
	jc.json("POST", base+"/entries", map[string]any{"kind": "treatment_performed", "care_time": time.Now().Add(-time.Minute).Format(time.RFC3339), "sign": true,
		"treatments": []map[string]any{{"tooth": 46, "surfaces": "O", "procedure": "FYLD", "material": "composite", "plan_item_id": plan.Plan.Items[0].ID}}}, 201, &performed)
	jc.json("GET", base+"/plan", nil, 200, &plan)
	require.Equal(t, journal.Progress{Done: 1, Total: 2, Percent: 50}, plan.Progress)
	// The web form's correction of the performed treatment offers, selected,
	// the plan item it did (done now, so no longer among the open ones).
	code, page := get(t, jc.c, fmt.Sprintf("%s/journal/patients/%d/entries/%d/correct", ts.URL, child, performed.ID))
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, fmt.Sprintf(`<option value="%d" selected>`, plan.Plan.Items[0].ID), page)

	// Images, tooth view, signed plain-language entries, profile.
	jc.json("POST", base+"/images", map[string]any{"study_uid": "1.2.826.0.1.3680043.99.1", "modality": "IO", "tooth": 46}, 201, nil)
	var tooth journal.ToothView
	jc.json("GET", base+"/teeth/46", nil, 200, &tooth)
	require.Len(t, tooth.Links, 1)
	require.GreaterOrEqual(t, len(tooth.History), 3, "correction, plan and treatment mention 46")
	status, _ = jc.do("GET", base+"/teeth/19", nil)
	require.Equal(t, 400, status)
	jc.json("POST", base+"/profile", map[string]any{"risk": "high", "allergies": "Latex"}, 204, nil)
	var plain struct{ Entries []journal.PlainEntry }
	jc.json("GET", base+"/signed-entries", nil, 200, &plain)
	require.Len(t, plain.Entries, 3)
	var ov journal.Overview
	jc.json("GET", base, nil, 200, &ov)
	require.Equal(t, journal.RiskHigh, ov.Profile.Risk)
	require.Equal(t, "Latex", ov.Profile.Allergies)
	require.False(t, ov.Recall.Due.IsZero())

	// Clinic lists: recall, worklist, indices, SCOR; SKS search and catalogue.
	clinic := ts.demo.ClinicID
	var recalls struct{ Recalls []journal.RecallRow }
	jc.json("GET", fmt.Sprintf("/api/journal/clinics/%d/recall?until=%s", clinic, time.Now().AddDate(2, 0, 0).Format(time.DateOnly)), nil, 200, &recalls)
	require.GreaterOrEqual(t, len(recalls.Recalls), 20, "every demo child is due within 2 years")
	var wl struct{ Items []journal.WorklistItem }
	jc.json("GET", fmt.Sprintf("/api/journal/clinics/%d/xray-worklist", clinic), nil, 200, &wl)
	require.NotEmpty(t, wl.Items)
	var ix struct{ Groups []journal.GroupTotal }
	jc.json("GET", fmt.Sprintf("/api/journal/clinics/%d/indices", clinic), nil, 200, &ix)
	examined := 0
	for _, g := range ix.Groups {
		examined += g.Examined
	}
	require.Greater(t, examined, 10)
	status, b = jc.do("GET", fmt.Sprintf("/api/journal/clinics/%d/scor?year=%d", clinic, time.Now().Year()), nil)
	require.Equal(t, 200, status)
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, "cpr", rows[0][2])
	require.Greater(t, len(rows), 1)
	var sks struct{ Codes []journal.SKSCode }
	jc.json("GET", "/api/journal/diagnoses?q=karies", nil, 200, &sks)
	require.NotEmpty(t, sks.Codes)
	var procs struct{ Procedures []journal.Procedure }
	jc.json("GET", "/api/journal/procedures", nil, 200, &procs)
	require.NotEmpty(t, procs.Procedures)

	// An assistant records but does not sign; a home carer has no journal at all.
	ac := ts.journalClient(t, "klinikassistent")
	ac.json("POST", base+"/entries", map[string]any{"kind": "note", "care_time": careTime, "text": "Ringet til mor"}, 201, nil)
	status, _ = ac.do("POST", fmt.Sprintf("%s/entries/%d/sign", base, planned.ID), nil)
	require.Equal(t, 403, status)
	hc := ts.journalClient(t, "hjemmehjaelper")
	status, _ = hc.do("GET", base+"/entries", nil)
	require.Equal(t, 403, status)

	// Every read and write was audit-logged with the person.
	var n int
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM audit.event WHERE person_id = $1 AND username = 'tandlaege'`, child).Scan(&n)
	}))
	require.GreaterOrEqual(t, n, 15)
}

// A dentist of another clinic is refused unless they break the glass,
// which is flagged in the audit log; the demo data is idempotent.
func TestJournalAccessOtherClinic(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		unit, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: ts.demo.TenantID, Kind: "dental_clinic", Name: "Tandplejen Syd"})
		if err != nil {
			return err
		}
		u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: ts.demo.TenantID, Username: "tandlaege-syd", DisplayName: "Sara Syd", Role: auth.RoleDentist, Password: demo.Password}, nil)
		if err != nil {
			return err
		}
		return auth.AddUserUnit(ctx, tx, u.ID, unit.ID)
	}))
	jc := ts.journalClient(t, "tandlaege-syd")
	child := jc.demoChild("Oscar")
	base := fmt.Sprintf("/api/journal/patients/%d", child)
	for _, path := range []string{base, base + "/entries", base + "/chart", base + "/teeth/16"} {
		status, _ := jc.do("GET", path, nil)
		require.Equal(t, 403, status, path)
	}
	status, _ := jc.do("POST", base+"/entries", map[string]any{"kind": "note", "care_time": time.Now().Format(time.RFC3339), "text": "x"})
	require.Equal(t, 403, status)
	status, _ = jc.do("GET", fmt.Sprintf("/api/journal/clinics/%d/recall", ts.demo.ClinicID), nil)
	require.Equal(t, 403, status, "another clinic's recall list")

	// The HTML page offers break-the-glass.
	req, _ := http.NewRequest("GET", ts.URL+fmt.Sprintf("/journal/patients/%d", child), nil)
	req.Header.Set("Accept", "text/html")
	resp, err := jc.c.Do(req)
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 403, resp.StatusCode)
	require.Contains(t, string(page), "breakglass-submit")

	status, b := jc.do("POST", base+"/break-glass", map[string]any{"reason": "kort"})
	require.Equal(t, 400, status, "%s", b)
	jc.json("POST", base+"/break-glass", map[string]any{"reason": "Akut tandpine i weekendvagten"}, 200, nil)
	var ov journal.Overview
	jc.json("GET", base, nil, 200, &ov)
	require.Equal(t, auth.BasisBreakGlass, ov.Access.Basis)
	require.NotEmpty(t, ov.Entries, "Oscar has demo entries")

	var flagged int
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE person_id = $1 AND username = 'tandlaege-syd'
			AND action = 'read' AND break_glass_reason = 'Akut tandpine i weekendvagten'`, child).Scan(&flagged)
	}))
	require.Equal(t, 1, flagged, "the read under break-the-glass is flagged")

	// Demo data is idempotent: seeding again adds nothing.
	var before, after int
	count := func() int {
		var n int
		require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM journal.entry`).Scan(&n)
		}))
		return n
	}
	before = count()
	require.Greater(t, before, 10)
	_, err = seedDemo(ctx, ts.db, ts.parts, ts.mods)
	require.NoError(t, err)
	after = count()
	require.Equal(t, before, after)
}

// TestJournalInChromium: a dentist logs in, finds a child, records an
// examination with two findings, signs it, sees the tooth chart update,
// corrects the entry and sees both versions.
func TestJournalInChromium(t *testing.T) {
	ts := newTestServer(t, nil)
	b := browsertest.New(t, 1366, 768)
	b.Do(chromedp.Navigate(ts.URL+"/login"), chromedp.WaitVisible("#username"),
		chromedp.SendKeys("#username", "tandlaege"), chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"), chromedp.WaitVisible("#welcome"))

	b.Do(chromedp.Click(`nav.main a[href="/journal/"]`), chromedp.WaitVisible("#q"),
		chromedp.SendKeys("#q", "Agnes"), chromedp.Click("#search-submit"), chromedp.WaitVisible("a.patient"))
	require.Contains(t, browsertest.Get(b, chromedp.Text("table.hits")), "Agnes Kristensen")
	b.Screenshot("1-search")

	b.Do(chromedp.Click("a.patient"), chromedp.WaitVisible("#chart"))
	require.Equal(t, "Agnes Kristensen", strings.TrimSpace(browsertest.Get(b, chromedp.Text("#patient-name"))))
	require.Contains(t, browsertest.Get(b, chromedp.Text("#entries")), "Ingen notater endnu")
	require.Equal(t, "0", browsertest.Get(b, chromedp.Text("#dmfs")))
	b.Screenshot("2-overview-empty")

	// Record an examination with two findings.
	b.Do(chromedp.Click("#new-examination"), chromedp.WaitVisible("#entry-form"),
		chromedp.SendKeys("#finding-tooth-0", "36"), chromedp.SendKeys("#finding-surfaces-0", "O"),
		chromedp.SetValue("#finding-condition-0", "caries"), chromedp.SetValue("#finding-detail-0", "dentin"),
		chromedp.SendKeys("#finding-tooth-1", "16"), chromedp.SendKeys("#finding-surfaces-1", "O"),
		chromedp.SetValue("#finding-condition-1", "sealant"),
		chromedp.SendKeys("#entry-text", "Kontrol. Caries på 36 okklusalt."))
	b.Screenshot("3-examination-form")
	b.Do(chromedp.Click("#entry-submit"), chromedp.WaitVisible("#notice"))
	require.Contains(t, browsertest.Get(b, chromedp.Text("#entries")), "Ikke underskrevet")
	require.Equal(t, "1", browsertest.Get(b, chromedp.Text("#dmfs")), "the chart counts the unsigned finding")

	// Sign it: locked, and the chart shows the caries and the sealant.
	b.Do(chromedp.Click("#entries button.sign"))
	// The previous page had a notice too: wait for the signed one.
	b.WaitText("#notice", "låst", 20*time.Second)
	require.Contains(t, browsertest.Get(b, chromedp.Text("#notice")), "underskrevet og låst")
	require.Contains(t, browsertest.Get(b, chromedp.Text("#entries")), "Underskrevet")
	n := browsertest.Get(b, chromedp.Evaluate[int](`document.querySelectorAll('#tooth-36 polygon.caries[data-surface="O"]').length + document.querySelectorAll('#tooth-16 polygon.sealant[data-surface="O"]').length`))
	require.Equal(t, 2, n, "tooth 36 O carious and 16 O sealed on the chart")
	b.Screenshot("4-signed-chart")

	// Correct the entry: the caries was on 46, not 36.
	b.Do(chromedp.Click("#entries a.correct"), chromedp.WaitVisible("#reason"))
	require.Equal(t, "36", browsertest.Get(b, chromedp.Value("#finding-tooth-0")))
	b.Do(chromedp.SetValue("#finding-tooth-0", "46"), chromedp.SendKeys("#reason", "Forkert tand: fundet sidder på 46"))
	b.Screenshot("5-correction-form")
	b.Do(chromedp.Click("#entry-submit"), chromedp.WaitVisible("article.version.superseded"))
	versions := browsertest.Get(b, chromedp.Text("main"))
	require.Contains(t, versions, "Versioner (2)")
	require.Contains(t, versions, "Forkert tand: fundet sidder på 46")
	require.Contains(t, versions, "Erstattet af notat")
	b.Screenshot("6-versions")

	b.Do(chromedp.Click(`main a[href^="/journal/patients/"]`), chromedp.WaitVisible("#chart"))
	counts := browsertest.Get(b, chromedp.Evaluate[[]int](`[document.querySelectorAll('#tooth-46 polygon.caries').length, document.querySelectorAll('#tooth-36 polygon.caries').length]`))
	require.Equal(t, []int{1, 0}, counts, "the chart follows the correction")
	b.Screenshot("7-overview-corrected")

	// The tooth opens its history, with the replaced version marked.
	b.Do(chromedp.Click("#tooth-36"), chromedp.WaitVisible("#tooth-history"))
	hist := browsertest.Get(b, chromedp.Text("#tooth-history"))
	require.Contains(t, hist, "Erstattet af notat")
	b.Screenshot("8-tooth-36-history")

	// Clinic statistics with the plot.
	b.Do(chromedp.Navigate(fmt.Sprintf("%s/journal/clinics/%d/indices", ts.URL, ts.demo.ClinicID)), chromedp.WaitVisible("#indices-plot svg"))
	b.Screenshot("9-clinic-indices")
}

// The booking module's recall source is the journal's due list.
func TestJournalRecallSourceForBooking(t *testing.T) {
	ts := newTestServer(t, nil)
	src := journalRecallSource(ts.server)
	due, err := src.Due(context.Background(), ts.demo.TenantID, ts.demo.ClinicID, time.Now().AddDate(2, 1, 0))
	require.NoError(t, err)
	require.Len(t, due, len(ts.demo.Children)+len(ts.demo.Youths), "everyone under 22 is due within 2 years and a month")
	for i := 1; i < len(due); i++ {
		require.False(t, due[i].DueDate.Before(due[i-1].DueDate), "earliest first")
	}
	soon, err := src.Due(context.Background(), ts.demo.TenantID, ts.demo.ClinicID, time.Now())
	require.NoError(t, err)
	require.Less(t, len(soon), len(due), "examined children are not due today")
	require.GreaterOrEqual(t, len(soon), len(journal.DemoSkip), "never-examined children are overdue")
}

// TestJournalSearchHidesCPROutsideCare: a name search shows CPR numbers only
// for the user's own patients.
func TestJournalSearchHidesCPROutsideCare(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	var other int64
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		c, err := auth.ParseCPR("0101154237")
		if err != nil {
			return err
		}
		p, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: ts.demo.TenantID, CPR: c, GivenName: "Udenfor", FamilyName: "Plejen"})
		other = p.ID
		return err
	}))
	svc, err := journal.New(ts.db.pool)
	require.NoError(t, err)
	u, err := auth.UserByUsername(ctx, ts.db.pool, "tandlaege")
	require.NoError(t, err)
	p := &auth.Principal{UserID: u.ID, TenantID: u.TenantID, Username: u.Username, Role: u.Role}
	ctx = audit.WithActor(ctx, audit.Actor{UserID: u.ID, Username: u.Username, Role: u.Role, TenantID: u.TenantID})
	hits, err := svc.Search(ctx, p, "Udenfor")
	require.NoError(t, err)
	require.Len(t, hits, 1)
	require.Equal(t, other, hits[0].ID)
	require.False(t, hits[0].InCare)
	require.Empty(t, hits[0].CPR, "no CPR number for someone outside care found by name")
	hits, err = svc.Search(ctx, p, "010115-4237")
	require.NoError(t, err)
	require.Len(t, hits, 1)
	require.NotEmpty(t, hits[0].CPR, "searching by the number itself shows it")
	kid := strings.Fields(ts.demo.Children[0].Name)[0]
	hits, err = svc.Search(ctx, p, kid)
	require.NoError(t, err)
	require.NotEmpty(t, hits)
	for _, h := range hits {
		if h.InCare {
			require.NotEmpty(t, h.CPR, "own patients show their CPR number")
		}
	}
}
