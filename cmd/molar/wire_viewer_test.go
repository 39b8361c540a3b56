package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/journal"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer"
	"github.com/molar-health/molar/viewer/browsertest"
)

func init() {
	for k, v := range map[string]string{
		"GET /viewer/":                                     auth.PermDICOMRead,
		"GET /viewer/p/{person}/":                          auth.PermDICOMRead,
		"POST /viewer/p/{person}/breakglass":               auth.PermDICOMRead,
		"GET /viewer/p/{person}/studies/{study}":           auth.PermDICOMRead,
		"GET /viewer/p/{person}/tooth/{fdi}":               auth.PermDICOMRead,
		"GET /viewer/p/{person}/compare":                   auth.PermDICOMRead,
		"POST /viewer/p/{person}/mounts":                   auth.PermDICOMWrite,
		"GET /viewer/p/{person}/mounts/{mount}":            auth.PermDICOMRead,
		"GET /viewer/api/p/{person}/images/{sop}/state":    auth.PermDICOMRead,
		"PUT /viewer/api/p/{person}/images/{sop}/state":    auth.PermDICOMWrite,
		"GET /viewer/api/p/{person}/images/{sop}/tags":     auth.PermDICOMRead,
		"POST /viewer/api/p/{person}/images/{sop}/send":    auth.PermDICOMRead,
		"POST /viewer/api/p/{person}/mounts/{mount}/slots": auth.PermDICOMWrite,
		"GET /viewer/admin/templates":                      viewer.PermTemplates,
		"POST /viewer/admin/templates":                     viewer.PermTemplates,
	} {
		routePermissions[k] = v
	}
}

// demoImaged is the n-th demo child with images (the oldest first).
func demoImaged(ts *testServer, n int) demo.Child {
	return ts.demo.Children[len(ts.demo.Children)-1-n]
}

// demoStudies returns the first demo child's studies by key.
func demoStudiesOf(t *testing.T, ts *testServer, person int64) map[string]index.Study {
	t.Helper()
	out := map[string]index.Study{}
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		sts, err := index.StudiesOfPerson(context.Background(), tx, person)
		for _, s := range sts {
			out[strings.ToLower(s.StudyID)] = s
		}
		return err
	}))
	return out
}

// TestViewerDemoImagesAndTimeline: the demo gives the first children
// synthetic images reconciled to them; the dentist's timeline groups them
// by kind and the first child has an FMX mount.
func TestViewerDemoImagesAndTimeline(t *testing.T) {
	start := time.Now()
	ts := newTestServer(t, nil)
	t.Logf("test server with demo images in %v", time.Since(start))
	child := demoImaged(ts, 0)
	studies := demoStudiesOf(t, ts, child.PersonID)
	require.Len(t, studies, 5, "fmx, bw, pano, cbct, photo")
	require.Equal(t, 18, studies["fmx"].NumInstances)
	require.Equal(t, 4, studies["bw"].NumInstances)
	require.Len(t, demoStudiesOf(t, ts, demoImaged(ts, 1).PersonID), 2)

	c, _ := ts.login(t, "tandlaege")
	st, body := get(t, c, fmt.Sprintf("%s/viewer/p/%d/", ts.URL, child.PersonID))
	require.Equal(t, http.StatusOK, st, body)
	for _, k := range []string{"io", "bw", "pano", "cbct", "photo"} {
		require.Contains(t, body, `data-kind="`+k+`"`)
	}
	require.Contains(t, body, `data-template="fmx"`)
	require.Contains(t, body, child.Name)

	// A second start does not add images again.
	require.NoError(t, viewer.SeedDemo(context.Background(), ts.db.pool, ts.demo.TenantID, []int64{child.PersonID}, nil, time.Now()))
	require.Len(t, demoStudiesOf(t, ts, child.PersonID), 5)
	_ = json.Marshal
}

// evalJS evaluates a JavaScript expression in the page.
func evalJS[T any](b *browsertest.Browser, js string) T {
	return browsertest.Get(b, chromedp.Evaluate[T](js))
}

// dragMouse presses the left button at (x0, y0), moves in steps to
// (x1, y1) and releases, as a person dragging on the canvas.
func dragMouse(b *browsertest.Browser, x0, y0, x1, y1 float64, steps int) {
	acts := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(chromedp.MouseMoved, x0, y0),
		chromedp.MouseEvent(chromedp.MousePressed, x0, y0, chromedp.ButtonLeft, chromedp.ClickCount(1))}
	for i := 1; i <= steps; i++ {
		f := float64(i) / float64(steps)
		acts = append(acts, chromedp.MouseEvent(chromedp.MouseMoved, x0+(x1-x0)*f, y0+(y1-y0)*f, chromedp.ButtonLeft))
	}
	acts = append(acts, chromedp.MouseEvent(chromedp.MouseReleased, x1, y1, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	b.Do(acts...)
}

type point struct{ X, Y float64 }

// canvasAt reads the displayed gray value of image pixel (x, y) in the
// viewport: the canvas pixel, not the DOM.
func canvasAt(b *browsertest.Browser, vp int, x, y float64) int {
	return evalJS[int](b, fmt.Sprintf(`(() => { const vp = molarViewer.viewports[%d];
		const p = vp.matrix().transformPoint(new DOMPoint(%f, %f));
		return vp.ctx.getImageData(Math.round(p.x), Math.round(p.y), 1, 1).data[0]; })()`, vp, x, y))
}

// canvasStats samples the viewport's canvas on a grid: how many samples
// are not black, and how many distinct gray values there are.
type canvasStats struct{ NonBlack, Distinct, Samples int }

func statsOf(b *browsertest.Browser, vp int) canvasStats {
	// Samples inside the image's rectangle on the canvas.
	return evalJS[canvasStats](b, fmt.Sprintf(`(() => { const vp = molarViewer.viewports[%d], c = vp.canvas, ctx = c.getContext('2d');
		const m = vp.matrix(), a = m.transformPoint(new DOMPoint(0, 0)), z = m.transformPoint(new DOMPoint(vp.im.cols, vp.im.rows));
		const x0 = Math.max(0, Math.ceil(Math.min(a.x, z.x))), x1 = Math.min(c.width, Math.floor(Math.max(a.x, z.x)));
		const y0 = Math.max(0, Math.ceil(Math.min(a.y, z.y))), y1 = Math.min(c.height, Math.floor(Math.max(a.y, z.y)));
		const d = ctx.getImageData(0, 0, c.width, c.height).data, seen = new Set(); let nb = 0, n = 0;
		for (let y = y0; y < y1; y += 5) for (let x = x0; x < x1; x += 5) { const i = (y * c.width + x) * 4; n++; if (d[i] > 8) nb++; seen.add(d[i]); }
		return {NonBlack: nb, Distinct: seen.size, Samples: n}; })()`, vp))
}

func waitDrawn(b *browsertest.Browser, n int) {
	b.Do(chromedp.WaitVisible("#stage canvas"))
	b.Do(chromedp.Poll[chromedp.Void](fmt.Sprintf(`window.molarViewer && molarViewer.viewports.length >= %d && molarViewer.viewports.slice(0, %d).every(v => v.drawn > 0)`, n, n),
		chromedp.WithPollingTimeout(30*time.Second)))
}

// TestViewerInChromium is issue 5's proof on the demo data: a dentist logs
// in, finds a child, opens a study and sees the image drawn (canvas
// pixels), drags window/level and sees the pixels change, measures a line
// on an image with known Pixel Spacing and reads the millimetres, reloads
// and finds the measurement again, and opens the FMX mount with every image
// in the slot its tooth codes call for. Screenshots of every step.
func TestViewerInChromium(t *testing.T) {
	ts := newTestServer(t, nil)
	b := browsertest.New(t, 1366, 768)
	child := demoImaged(ts, 0)
	studies := demoStudiesOf(t, ts, child.PersonID)
	fmx := studies["fmx"]

	// Log in as the dentist through the login page.
	b.Do(chromedp.Navigate(ts.URL+"/viewer/"), chromedp.WaitVisible("#username"))
	b.Do(chromedp.SendKeys("#username", "tandlaege"), chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"), chromedp.WaitVisible("#q"))
	require.Contains(t, browsertest.Get(b, chromedp.Location()), "/viewer/")
	b.Screenshot("1-finder")

	// Find the child by name.
	b.Do(chromedp.SendKeys("#q", child.Name), chromedp.Click("#find-submit"), chromedp.WaitVisible("a.vw-person"))
	require.Contains(t, browsertest.Get(b, chromedp.Text(".vw-results")), child.Name)
	b.Screenshot("2-found")
	b.Do(chromedp.Click("a.vw-person"), chromedp.WaitVisible(`.vw-kind[data-kind="io"]`))
	// Every study's thumbnails load (rendered on demand where the job has
	// not made them yet); lazy ones below the fold are asked for too.
	_ = evalJS[int](b, `document.querySelectorAll('.vw-thumbs img').forEach(i => { i.loading = 'eager'; }) || 0`)
	b.Do(
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('.vw-thumbs img')].every(i => i.complete)`,
			chromedp.WithPollingTimeout(60*time.Second)))
	broken := evalJS[[]any](b, `[...document.querySelectorAll('.vw-thumbs img')].filter(i => !(i.naturalWidth > 0)).map(i => i.alt)`)
	require.Empty(t, broken, "timeline thumbnails that did not load")
	require.Greater(t, evalJS[int](b, `document.querySelectorAll('.vw-thumbs img').length`), 20)
	b.Screenshot("3-timeline")

	// Open the full-mouth study: the first image (teeth 18 17 16, Pixel
	// Spacing 0.05 mm) is drawn on the canvas.
	b.Do(chromedp.Click(fmt.Sprintf(`.vw-study[data-study="%s"] a.vw-study-open`, fmx.StudyInstanceUID)))
	waitDrawn(b, 1)
	// The strip shows the stored thumbnails (kilobytes each), not whole
	// frames fetched per item; each is drawn, not left black.
	b.Do(chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('canvas.vw-thumb')].every(c => c.dataset.source)`,
		chromedp.WithPollingTimeout(60*time.Second)))
	sources := evalJS[[]any](b, `[...document.querySelectorAll('canvas.vw-thumb')].map(c => c.dataset.source)`)
	require.Len(t, sources, 18)
	for _, s := range sources {
		require.Equal(t, "thumbnail", s)
	}
	dark := evalJS[int](b, `[...document.querySelectorAll('canvas.vw-thumb')].filter(c => {
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let nb = 0;
		for (let i = 0; i < d.length; i += 4) if (d[i] > 8) nb++;
		return nb < d.length / 4 / 4; }).length`)
	require.Zero(t, dark, "strip thumbnails left (nearly) black")
	b.Screenshot("4-study")
	// "Download DICOM" asks WADO-URI for the original, in its stored syntax
	// (the WADO-URI default would be Explicit VR Little Endian).
	href := evalJS[string](b, `document.querySelector('#download-dicom').href`)
	require.Regexp(t, `&transferSyntax=1\.2\.840\.10008\.1\.2[0-9.]*$`, href)
	dl := browsertest.Get(b, chromedp.Evaluate[string](`fetch(document.querySelector('#download-dicom').href).then(r => r.arrayBuffer()).then(b => new TextDecoder().decode(new Uint8Array(b).slice(128, 132)))`, chromedp.EvalAwaitPromise))
	require.Equal(t, "DICM", dl, "the download is a Part-10 file")
	st := statsOf(b, 0)
	t.Logf("canvas after open: %+v", st)
	require.Greater(t, st.NonBlack, st.Samples*3/4, "the image is drawn on the canvas")
	require.Greater(t, st.Distinct, 20, "a radiograph, not a flat fill")
	require.Equal(t, []any{"16", "17", "18"}, evalJS[[]any](b, `molarViewer.viewports[0].im.teeth`))
	firstMS := evalJS[float64](b, `molarViewer.firstImageMs`)
	t.Logf("first image drawn %.0f ms after navigation start (click from the timeline)", firstMS)

	// Window/level: drag right and down on the canvas; the displayed value
	// of a dentin pixel changes, and so does the window.
	crown := point{240, 430}
	before := canvasAt(b, 0, crown.X, crown.Y)
	w0 := evalJS[float64](b, `molarViewer.viewports[0].view.ww`)
	c := evalJS[point](b, `(() => { const r = molarViewer.viewports[0].canvas.getBoundingClientRect(); return {X: r.left + r.width / 2, Y: r.top + r.height / 2}; })()`)
	dragMouse(b, c.X, c.Y, c.X-180, c.Y+90, 12)
	b.Do(chromedp.Poll[chromedp.Void](`molarViewer.viewports[0].raf === 0`))
	after := canvasAt(b, 0, crown.X, crown.Y)
	w1 := evalJS[float64](b, `molarViewer.viewports[0].view.ww`)
	t.Logf("window width %.0f → %.0f; dentin pixel %d → %d", w0, w1, before, after)
	require.Less(t, w1, w0, "dragging left narrows the window")
	require.NotEqual(t, before, after, "the canvas pixel changed with the window")
	b.Screenshot("5-window-level")

	// Measure: the length tool from image pixel (100, 100) to (400, 500):
	// 500 pixels at 0.05 mm = 25.0 mm.
	b.Do(chromedp.Click(`[data-tool="length"]`))
	p0 := evalJS[point](b, `(() => { const p = molarViewer.viewports[0].imageToClient(100, 100); return {X: p.x, Y: p.y}; })()`)
	p1 := evalJS[point](b, `(() => { const p = molarViewer.viewports[0].imageToClient(400, 500); return {X: p.x, Y: p.y}; })()`)
	dragMouse(b, p0.X, p0.Y, p1.X, p1.Y, 10)
	b.Do(chromedp.WaitVisible(`#measurements li[data-type="length"]`))
	mm := browsertest.Get(b, chromedp.Text(`#measurements li[data-type="length"] .vw-mark`))
	t.Logf("measured: %q", mm)
	require.Equal(t, "25.0 mm", strings.TrimSpace(mm))
	// The line is drawn in green on the canvas at its midpoint.
	b.Do(chromedp.Poll[chromedp.Void](`molarViewer.viewports[0].raf === 0 && !molarViewer.viewports[0].draft`))
	green := evalJS[[]any](b, `(() => { const vp = molarViewer.viewports[0]; const p = vp.matrix().transformPoint(new DOMPoint(250, 300));
		return Array.from(vp.ctx.getImageData(Math.round(p.x), Math.round(p.y), 1, 1).data.slice(0, 3)); })()`)
	require.Greater(t, green[1].(float64), green[0].(float64)+60, "the measurement line is drawn over the image: %v", green)
	b.Do(chromedp.Poll[chromedp.Void](`!molarViewer.viewports[0].dirty`, chromedp.WithPollingTimeout(20*time.Second)))
	b.Screenshot("6-measured")

	// Reload: the measurement and the window come back from the server.
	b.Do(chromedp.Reload())
	waitDrawn(b, 1)
	b.Do(chromedp.Poll[chromedp.Void](`document.querySelector('#measurements li[data-type="length"]')`, chromedp.WithPollingTimeout(20*time.Second)))
	require.Equal(t, "25.0 mm", strings.TrimSpace(browsertest.Get(b, chromedp.Text(`#measurements li[data-type="length"] .vw-mark`))))
	require.InDelta(t, w1, evalJS[float64](b, `molarViewer.viewports[0].view.ww`), 0.5, "the window was saved beside the image")
	b.Screenshot("7-reloaded")

	// A colleague saves the same image meanwhile: this viewer's next save
	// conflicts, shows what the colleague stored, and saves on top of it
	// after that (it used to conflict on every save until a reload).
	v0 := evalJS[int](b, `molarViewer.viewports[0].version`)
	stateURL := ts.URL + evalJS[string](b, `JSON.parse(document.getElementById('viewer-app').dataset.config).api + '/images/' + encodeURIComponent(molarViewer.viewports[0].im.sop) + '/state'`)
	colleague, ccsrf := ts.login(t, "tandlaege")
	resp, body := doReq(t, colleague, "PUT", stateURL, "application/json",
		strings.NewReader(fmt.Sprintf(`{"version":%d,"state":{"annotations":[{"id":"c1","type":"text","pts":[[50,60]],"text":"kollega"},{"id":"bad","type":"text"}]}}`, v0)),
		map[string]string{"Content-Type": "application/json", "X-CSRF-Token": ccsrf, "Origin": ts.URL})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	_ = evalJS[int](b, `(molarViewer.viewports[0].save(), 0)`)
	b.Do(chromedp.Poll[chromedp.Void](fmt.Sprintf(`molarViewer.viewports[0].version === %d && !molarViewer.viewports[0].saving`, v0+1), chromedp.WithPollingTimeout(20*time.Second)))
	require.Equal(t, "kollega", evalJS[string](b, `molarViewer.viewports[0].state.annotations[0].text`), "the colleague's state is shown")
	require.Equal(t, 1, evalJS[int](b, `molarViewer.viewports[0].state.annotations.length`), "an annotation without points is dropped, not drawn")
	_ = evalJS[int](b, `(molarViewer.viewports[0].save(), 0)`)
	b.Do(chromedp.Poll[chromedp.Void](fmt.Sprintf(`molarViewer.viewports[0].version >= %d && !molarViewer.viewports[0].saving`, v0+2), chromedp.WithPollingTimeout(20*time.Second)))
	require.Contains(t, evalJS[string](b, `document.body.textContent`), "Gemt", "saved on top of the colleague's version")

	// The FMX mount: every image in the slot its tooth codes call for, the
	// mandibular ones turned 180° as the template says.
	b.Do(chromedp.Navigate(fmt.Sprintf("%s/viewer/p/%d/", ts.URL, child.PersonID)), chromedp.WaitVisible(`a.vw-mount-link[data-template="fmx"]`))
	b.Do(chromedp.Click(`a.vw-mount-link[data-template="fmx"]`), chromedp.WaitVisible("#mount .vw-slot"))
	b.Do(chromedp.Poll[chromedp.Void](`document.querySelectorAll('.vw-slot .vw-vp[data-drawn="1"]').length === 18`, chromedp.WithPollingTimeout(60*time.Second)))
	type slotInfo struct {
		Slot, Teeth, SOP, Rotate string
		NonBlack                 int
	}
	slots := evalJS[[]slotInfo](b, `[...document.querySelectorAll('.vw-slot')].map(d => { const h = d.querySelector('.vw-vp');
		const c = h.querySelector('canvas'), ctx = c.getContext('2d'), px = ctx.getImageData(0, 0, c.width, c.height).data; let nb = 0;
		for (let i = 0; i < px.length; i += 4 * 13) if (px[i] > 8) nb++;
		return {Slot: d.dataset.slot, Teeth: d.dataset.teeth, SOP: d.dataset.sop, Rotate: h.dataset.rotate, NonBlack: nb}; })`)
	require.Len(t, slots, 18)
	ctx := context.Background()
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		for _, s := range slots {
			in, err := index.GetInstance(ctx, tx, s.SOP)
			require.NoError(t, err, "slot %s", s.Slot)
			want := strings.Fields(s.Teeth)
			require.ElementsMatch(t, want, in.ToothCodes, "slot %s holds the image of teeth %v", s.Slot, want)
			lower := true
			for _, tooth := range want {
				lower = lower && !upperJaw(tooth)
			}
			if lower {
				require.Equal(t, "180", s.Rotate, "mandibular periapical in slot %s is turned", s.Slot)
			} else {
				require.Equal(t, "0", s.Rotate, "slot %s", s.Slot)
			}
			require.Greater(t, s.NonBlack, 100, "slot %s shows its image", s.Slot)
		}
		return nil
	}))
	b.Screenshot("8-fmx-mount")

	// The dentist turns the image in slot 4 (upper incisors) by 90°: saved
	// with the mount, drawn turned.
	b.Do(chromedp.Click(`.vw-slot[data-slot="4"]`), chromedp.Click("#mount-rotate"))
	b.Do(chromedp.Poll[chromedp.Void](`document.querySelector('.vw-slot[data-slot="4"] .vw-vp').dataset.rotate === "90"`, chromedp.WithPollingTimeout(10*time.Second)))
	b.Do(chromedp.Reload(), chromedp.WaitVisible("#mount .vw-slot"))
	b.Do(chromedp.Poll[chromedp.Void](`(() => { const h = document.querySelector('.vw-slot[data-slot="4"] .vw-vp'); return h && h.dataset.rotate === "90" && h.vp.view && h.vp.view.extraRot === 90; })()`, chromedp.WithPollingTimeout(20*time.Second)))
	b.Screenshot("9-fmx-mount-rotated")
}

func upperJaw(tooth string) bool { return strings.ContainsRune("1256", rune(tooth[0])) }

// imagesOfOutsider gives a person outside every care relation (a parent of
// an imaged demo child) a synthetic intra-oral study, reconciled to them.
func imagesOfOutsider(t *testing.T, ts *testServer) (auth.Person, ingest.Result) {
	t.Helper()
	ctx := context.Background()
	var per auth.Person
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var err error
		per, err = auth.GetPerson(ctx, tx, demoImaged(ts, 0).Parents[0])
		return err
	}))
	p := viewer.Patient{ID: per.CPR.Digits(), Family: per.FamilyName, Given: per.GivenName, BirthDate: per.BirthDate, Sex: "F", UIDSeed: "outsider"}
	s := viewer.SynthStudy{Key: "pa", Date: time.Now(), Description: "PA", Images: []viewer.SynthImage{{Kind: viewer.KindIntraoral, Teeth: []string{"16"}, Rows: 64, Cols: 48, Spacing: 0.05, Number: 1}}}
	res := ingestFile(t, ts, s.File(p, 0))
	require.Equal(t, per.ID, res.PersonID, "the outsider's image is reconciled to them")
	return per, res
}

// TestViewerAccessBreakGlassAndAudit: a dentist without a care relation
// sees nothing of a person (pages, API, frames) until breaking the glass
// with a reason, which then flags every read in the audit log; a role
// without dicom.read reaches nothing; every read is audited.
func TestViewerAccessBreakGlassAndAudit(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	out, res := imagesOfOutsider(t, ts)
	name, cpr := out.GivenName+" "+out.FamilyName, out.CPR.Formatted()
	dentist, csrf := ts.login(t, "tandlaege")
	base := fmt.Sprintf("%s/viewer/p/%d", ts.URL, out.ID)
	api := fmt.Sprintf("%s/viewer/api/p/%d/images/%s", ts.URL, out.ID, res.SOPInstanceUID)
	hdr := map[string]string{"X-CSRF-Token": csrf, "Origin": ts.URL, "Content-Type": "application/json"}

	refused := func(c *http.Client, who string) {
		t.Helper()
		for _, u := range []string{base + "/", base + "/studies/" + res.StudyInstanceUID, base + "/tooth/16", base + "/compare?i=" + res.SOPInstanceUID} {
			st, body := get(t, c, u)
			require.Equal(t, http.StatusForbidden, st, "%s: %s", who, u)
			require.NotContains(t, body, out.FamilyName, "%s: %s shows nothing of the person", who, u)
			require.NotContains(t, body, cpr)
			if !strings.Contains(u, res.SOPInstanceUID) {
				require.NotContains(t, body, res.SOPInstanceUID, "%s: %s lists no image", who, u)
			}
		}
		for _, m := range []struct{ method, url, body string }{{"GET", api + "/state", ""}, {"GET", api + "/tags", ""},
			{"PUT", api + "/state", `{"version":0,"state":{}}`}, {"POST", api + "/send", `{"ae":"X"}`}} {
			resp, body := doReq(t, c, m.method, m.url, "application/json", strings.NewReader(m.body), hdr)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s: %s %s", who, m.method, m.url)
			require.NotContains(t, string(body), out.FamilyName)
		}
		frames := fmt.Sprintf("%s/dicomweb/studies/%s/series/%s/instances/%s/frames/1", ts.URL, res.StudyInstanceUID, res.SeriesInstanceUID, res.SOPInstanceUID)
		resp, _ := doReq(t, c, "GET", frames, `multipart/related; type="application/octet-stream"`, nil, nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s: frames", who)
	}
	refused(dentist, "dentist outside care")
	carer, _ := ts.login(t, "hjemmehjaelper") // no dicom.read
	refused(carer, "home carer")
	st, _ := get(t, carer, ts.URL+"/viewer/")
	require.Equal(t, http.StatusForbidden, st)
	st, _ = get(t, carer, fmt.Sprintf("%s/viewer/p/%d/", ts.URL, demoImaged(ts, 0).PersonID))
	require.Equal(t, http.StatusForbidden, st, "no dicom.read: not even children in the unit's care")

	// The page offers to break the glass, without naming the person.
	_, body := get(t, dentist, base+"/")
	require.Contains(t, body, `action="/viewer/p/`+fmt.Sprint(out.ID)+`/breakglass"`)
	// Name search finds only persons in care; the CPR number finds them, flagged.
	_, body = get(t, dentist, ts.URL+"/viewer/?q="+url.QueryEscape(name))
	require.NotContains(t, body, cpr)
	_, body = get(t, dentist, ts.URL+"/viewer/?q="+out.CPR.Digits())
	require.Contains(t, body, name)
	require.Contains(t, body, "Uden behandlingsrelation")

	// A too short reason is refused; a reason opens the record, flagged.
	st, _ = post(t, dentist, ts.URL, base+"/breakglass", csrf, url.Values{"reason": {"x"}, "next": {"/viewer/p/" + fmt.Sprint(out.ID) + "/"}})
	require.Equal(t, http.StatusSeeOther, st)
	st, _ = get(t, dentist, base+"/")
	require.Equal(t, http.StatusForbidden, st)
	reason := "Akut tandpine, patient på vagten"
	st, _ = post(t, dentist, ts.URL, base+"/breakglass", csrf, url.Values{"reason": {reason}, "next": {"/viewer/p/" + fmt.Sprint(out.ID) + "/"}})
	require.Equal(t, http.StatusSeeOther, st)
	st, body = get(t, dentist, base+"/")
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, body, name)
	require.Contains(t, body, `id="breakglass-banner"`)
	st, _ = get(t, dentist, base+"/studies/"+res.StudyInstanceUID)
	require.Equal(t, http.StatusOK, st)
	resp, _ := doReq(t, dentist, "GET", api+"/state", "application/json", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The audit log has every read, flagged with the reason.
	type row struct {
		Object, Reason string
	}
	var rows []row
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		r, err := tx.Query(ctx, `SELECT object, coalesce(break_glass_reason, '') FROM audit.event WHERE person_id = $1 AND action NOT IN ('break_glass', 'search') ORDER BY id`, out.ID)
		if err != nil {
			return err
		}
		rows, err = pgx.CollectRows(r, pgx.RowToStructByPos[row])
		return err
	}))
	objects := map[string]bool{}
	for _, r := range rows {
		require.Equal(t, reason, r.Reason, "read %s is flagged", r.Object)
		objects[strings.SplitN(r.Object, "/", 2)[0]] = true
	}
	require.True(t, objects["viewer.timeline"] && objects["viewer.study"] && objects["viewer.image_state"], "%v", objects)
	// The search was audited without the query text.
	var searches int
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'search' AND object = 'viewer.search/1' AND detail::text NOT LIKE '%'||$1||'%'`, out.CPR.Digits()).Scan(&searches)
	}))
	require.GreaterOrEqual(t, searches, 2)
	// The CPR search that found the person is in their access log.
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'search' AND object = 'viewer.search/1' AND person_id = $1`, out.ID).Scan(&searches)
	}))
	require.Equal(t, 1, searches)
}

// TestViewerAPI: image state versions and conflicts, the tag browser, the
// tooth page across studies, compare, mounts (create, move with swap),
// template administration, and sending an image to a registered AE.
func TestViewerAPI(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	child := demoImaged(ts, 0)
	studies := demoStudiesOf(t, ts, child.PersonID)
	var fmxSOPs, bwSOPs []string
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		for key, dst := range map[string]*[]string{"fmx": &fmxSOPs, "bw": &bwSOPs} {
			ins, err := index.InstancesOfStudy(ctx, tx, studies[key].StudyInstanceUID)
			if err != nil {
				return err
			}
			for _, in := range ins {
				*dst = append(*dst, in.SOPInstanceUID)
			}
		}
		return nil
	}))
	c, csrf := ts.login(t, "tandlaege")
	hdr := map[string]string{"X-CSRF-Token": csrf, "Origin": ts.URL, "Content-Type": "application/json"}
	api := fmt.Sprintf("%s/viewer/api/p/%d", ts.URL, child.PersonID)
	img := api + "/images/" + fmxSOPs[0]

	// State: append-only versions with optimistic concurrency.
	resp, body := doReq(t, c, "GET", img+"/state", "application/json", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.JSONEq(t, `{"version":0,"state":{}}`, string(body))
	put := func(v int, state string) (*http.Response, []byte) {
		return doReq(t, c, "PUT", img+"/state", "application/json", strings.NewReader(fmt.Sprintf(`{"version":%d,"state":%s}`, v, state)), hdr)
	}
	resp, body = put(0, `{"annotations":[{"type":"text","pts":[[1,2]],"text":"karies?"}]}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, body = put(0, `{"annotations":[]}`)
	require.Equal(t, http.StatusConflict, resp.StatusCode, "a stale version does not overwrite: %s", body)
	resp, _ = put(1, `[1,2]`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, body = doReq(t, c, "GET", img+"/state", "application/json", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "karies?")
	require.Contains(t, string(body), `"version":1`)
	// Another person's image under this child's path is not found.
	_, other := imagesOfOutsider(t, ts)
	resp, _ = doReq(t, c, "GET", api+"/images/"+other.SOPInstanceUID+"/state", "application/json", nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// Tags.
	resp, body = doReq(t, c, "GET", img+"/tags", "application/json", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), `"name":"PrimaryAnatomicStructureSequence"`)
	require.Contains(t, string(body), `"name":"PixelSpacing"`)

	// Tooth 16 over time: the full-mouth series and the later bitewings.
	st, page := get(t, c, fmt.Sprintf("%s/viewer/p/%d/tooth/16", ts.URL, child.PersonID))
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, page, fmxSOPs[0], "periapical 18-17-16")
	require.Contains(t, page, bwSOPs[0], "the later bitewing of 16")
	st, _ = get(t, c, fmt.Sprintf("%s/viewer/p/%d/tooth/19", ts.URL, child.PersonID))
	require.Equal(t, http.StatusNotFound, st)
	st, _ = get(t, c, fmt.Sprintf("%s/viewer/p/%d/compare?i=%s&i=%s", ts.URL, child.PersonID, fmxSOPs[0], bwSOPs[0]))
	require.Equal(t, http.StatusOK, st)
	st, _ = get(t, c, fmt.Sprintf("%s/viewer/p/%d/compare?i=%s&i=%s", ts.URL, child.PersonID, fmxSOPs[0], other.SOPInstanceUID))
	require.Equal(t, http.StatusNotFound, st)

	// A 4-bitewing mount of the bitewing study; moving slot 1's image to
	// slot 2 swaps the two.
	st, _ = post(t, c, ts.URL, fmt.Sprintf("%s/viewer/p/%d/mounts", ts.URL, child.PersonID), csrf, url.Values{"template": {"bw4"}, "study": {studies["bw"].StudyInstanceUID}})
	require.Equal(t, http.StatusSeeOther, st)
	var mountID int64
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT m.id FROM viewer.mount m JOIN viewer.mount_template t ON t.id = m.template_id WHERE t.code = 'bw4' AND m.person_id = $1`, child.PersonID).Scan(&mountID)
	}))
	st, page = get(t, c, fmt.Sprintf("%s/viewer/p/%d/mounts/%d", ts.URL, child.PersonID, mountID))
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, 4, strings.Count(page, "&#34;auto&#34;:true"), "four images placed automatically")
	resp, body = doReq(t, c, "POST", fmt.Sprintf("%s/mounts/%d/slots", api, mountID), "application/json",
		strings.NewReader(fmt.Sprintf(`{"slot":2,"sop":%q,"rotate":90,"flip":true}`, bwSOPs[0])), hdr)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var moved struct{ Placements []viewer.Placement }
	require.NoError(t, json.Unmarshal(body, &moved))
	require.Contains(t, moved.Placements, viewer.Placement{Slot: 2, SOP: bwSOPs[0], Rotate: 90, Flip: true})
	require.Contains(t, moved.Placements, viewer.Placement{Slot: 1, SOP: bwSOPs[1]}, "the image of slot 2 took slot 1")
	resp, _ = doReq(t, c, "POST", fmt.Sprintf("%s/mounts/%d/slots", api, mountID), "application/json",
		strings.NewReader(fmt.Sprintf(`{"slot":9,"sop":%q}`, bwSOPs[0])), hdr)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// Templates are data: the clinic administrator adds one; dentists cannot.
	admin, acsrf := ts.login(t, "klinikadmin")
	tpl := `{"code":"pa2","name_da":"2 periapikale","name_en":"2 periapicals","width":400,"height":200,"slots":[{"n":1,"x":0,"y":0,"w":200,"h":200,"teeth":["11"]},{"n":2,"x":200,"y":0,"w":200,"h":200,"teeth":["21"]}]}`
	st, _ = post(t, admin, ts.URL, ts.URL+"/viewer/admin/templates", acsrf, url.Values{"template": {tpl}})
	require.Equal(t, http.StatusSeeOther, st)
	st, page = post(t, admin, ts.URL, ts.URL+"/viewer/admin/templates", acsrf, url.Values{"template": {strings.Replace(tpl, `"11"`, `"19"`, 1)}})
	require.Equal(t, http.StatusBadRequest, st)
	require.Contains(t, page, "ISO 3950")
	_, page = get(t, admin, ts.URL+"/viewer/admin/templates")
	require.Contains(t, page, `data-code="pa2"`)
	st, _ = get(t, c, ts.URL+"/viewer/admin/templates")
	require.Equal(t, http.StatusForbidden, st)
	_, page = get(t, c, fmt.Sprintf("%s/viewer/p/%d/", ts.URL, child.PersonID))
	require.Contains(t, page, `<option value="pa2">`, "the new template is offered for mounts")

	// Send to a registered AE (a C-STORE SCP in the test); audited as an export.
	got := make(chan string, 1)
	srv := &dimse.Server{AETitle: "PACS2", Store: dimse.StoreFunc(func(ctx context.Context, req *dimse.StoreRequest, data io.Reader) (dimse.Status, error) {
		if _, err := io.Copy(io.Discard, data); err != nil {
			return 0, err
		}
		got <- req.SOPInstanceUID
		return dimse.StatusSuccess, nil
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "PACS2", Host: "127.0.0.1", Port: port, Permissions: []string{"echo", "store", "move"}}, false))
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "MODALITY", Host: "127.0.0.1", Port: port, Permissions: []string{"echo", "store"}}, false))
	resp, body = doReq(t, c, "POST", img+"/send", "application/json", strings.NewReader(`{"ae":"PACS2"}`), hdr)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, fmxSOPs[0], <-got)
	resp, _ = doReq(t, c, "POST", img+"/send", "application/json", strings.NewReader(`{"ae":"MODALITY"}`), hdr)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "only move destinations receive images")
	// A receiver that takes only Implicit VR Little Endian gets the image
	// converted, as a study send does.
	gotTS := make(chan string, 1)
	implicitOnly := &dimse.Server{AETitle: "PACS3", StorageTransferSyntaxes: []string{uid.ImplicitVRLittleEndian},
		Store: dimse.StoreFunc(func(ctx context.Context, req *dimse.StoreRequest, data io.Reader) (dimse.Status, error) {
			if _, err := io.Copy(io.Discard, data); err != nil {
				return 0, err
			}
			gotTS <- req.TransferSyntax
			return dimse.StatusSuccess, nil
		})}
	ln3, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = implicitOnly.Serve(ln3) }()
	t.Cleanup(func() { _ = implicitOnly.Shutdown(context.Background()) })
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "PACS3", Host: "127.0.0.1", Port: ln3.Addr().(*net.TCPAddr).Port, Permissions: []string{"echo", "move"}}, false))
	resp, body = doReq(t, c, "POST", img+"/send", "application/json", strings.NewReader(`{"ae":"PACS3"}`), hdr)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, uid.ImplicitVRLittleEndian, <-gotTS)
	_, page = get(t, c, fmt.Sprintf("%s/viewer/p/%d/studies/%s", ts.URL, child.PersonID, studies["fmx"].StudyInstanceUID))
	require.Contains(t, page, "PACS2")
	require.NotContains(t, page, "MODALITY")
	var exports int
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'export' AND person_id = $1 AND detail->>'ae' = 'PACS2'`, child.PersonID).Scan(&exports)
	}))
	require.Equal(t, 1, exports)
}

// loginBrowser signs in through the login page.
func loginBrowser(b *browsertest.Browser, ts *testServer, user string) {
	b.Do(chromedp.Navigate(ts.URL+"/login"), chromedp.WaitVisible("#username"))
	b.Do(chromedp.SendKeys("#username", user), chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"), chromedp.WaitVisible("nav.main"))
}

// TestViewerPerformanceChromium measures, in Chromium on loopback, how
// long after the navigation to a study the first image is drawn (median of
// repeated openings), and the window/level rate on a 1.5-megapixel 12-bit
// image (LUT, pixels and canvas draw per frame). Figures go to the log and
// to artifacts/viewer-performance.txt for the README; the test asserts
// only that the measurements happened (no timing assertions in tests).
// It also checks the layout on a 4K diagnostic screen.
func TestViewerPerformanceChromium(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	child := demoImaged(ts, 0)
	var per auth.Person
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var err error
		per, err = auth.GetPerson(ctx, tx, child.PersonID)
		return err
	}))
	// A 1.5-megapixel intra-oral image (1600 × 960, 12-bit), as a size-2 sensor gives.
	p := viewer.Patient{ID: per.CPR.Digits(), Family: per.FamilyName, Given: per.GivenName, BirthDate: per.BirthDate, Sex: "M", UIDSeed: "perf"}
	big := viewer.SynthStudy{Key: "perf", Date: time.Now(), Description: "1,5 MP", Images: []viewer.SynthImage{{Kind: viewer.KindIntraoral,
		Teeth: []string{"14", "15", "16"}, Rows: 1600, Cols: 960, BitsStored: 12, Spacing: 0.02, Number: 1, Seed: 9}}}
	res := ingestFile(t, ts, big.File(p, 0))
	fmx := demoStudiesOf(t, ts, child.PersonID)["fmx"]

	b := browsertest.New(t, 1366, 768)
	loginBrowser(b, ts, "tandlaege")
	open := func(study string) float64 {
		b.Do(chromedp.Navigate(fmt.Sprintf("%s/viewer/p/%d/studies/%s", ts.URL, child.PersonID, study)))
		waitDrawn(b, 1)
		return evalJS[float64](b, `molarViewer.firstImageMs`)
	}
	median := func(study string, n int) (float64, []float64) {
		var xs []float64
		for range n {
			xs = append(xs, open(study))
		}
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2], xs
	}
	open(fmx.StudyInstanceUID) // warm up (template parse, static files)
	fmxMed, fmxAll := median(fmx.StudyInstanceUID, 7)
	bigMed, bigAll := median(res.StudyInstanceUID, 7)
	require.Equal(t, 1600*960, evalJS[int](b, `molarViewer.viewports[0].im.rows * molarViewer.viewports[0].im.cols`))
	// Window/level: 120 frames of a drag, each a new LUT over the 12-bit
	// range, 1.5 M pixels through it and the canvas draw.
	msPerFrame := evalJS[float64](b, `molarViewer.benchmarkWL(120)`)
	require.Positive(t, msPerFrame)
	fps := 1000 / msPerFrame
	b.Screenshot("1-1.5mp")
	report := fmt.Sprintf("first image drawn after opening a study (FMX periapical 480×640, 12-bit): median %.0f ms of %v\n"+
		"first image drawn after opening a study (1.5 MP 960×1600, 12-bit): median %.0f ms of %v\n"+
		"window/level on 1.5 MP: %.1f ms per frame = %.0f frames/s\n", fmxMed, round(fmxAll), bigMed, round(bigAll), msPerFrame, fps)
	t.Log("\n" + report)
	require.NoError(t, os.MkdirAll(browsertest.ArtifactsDir(), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(browsertest.ArtifactsDir(), "viewer-performance.txt"), []byte(report), 0o644))

	// A 4K diagnostic screen: the image uses the space.
	b4 := browsertest.New(t, 3840, 2160)
	loginBrowser(b4, ts, "tandlaege")
	b4.Do(chromedp.Navigate(fmt.Sprintf("%s/viewer/p/%d/studies/%s", ts.URL, child.PersonID, res.StudyInstanceUID)))
	waitDrawn(b4, 1)
	w := evalJS[float64](b4, `molarViewer.viewports[0].canvas.getBoundingClientRect().height`)
	require.Greater(t, w, 1700.0, "the viewport fills a 4K screen's height")
	b4.Screenshot("2-4k")
}

func round(xs []float64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(math.Round(x))
	}
	return out
}

func clientOf(b *browsertest.Browser, vp int, x, y float64) point {
	return evalJS[point](b, fmt.Sprintf(`(() => { const p = molarViewer.viewports[%d].imageToClient(%f, %f); return {X: p.x, Y: p.y}; })()`, vp, x, y))
}

// wheel turns the mouse wheel over a viewport's canvas.
func wheel(b *browsertest.Browser, vp int, at point, dy float64) {
	evalJS[any](b, fmt.Sprintf(`molarViewer.viewports[%d].canvas.dispatchEvent(new WheelEvent('wheel', {deltaY: %f, clientX: %f, clientY: %f, bubbles: true, cancelable: true}))`, vp, dy, at.X, at.Y))
}

func click(b *browsertest.Browser, p point) {
	b.Do(chromedp.MouseClickXY(p.X, p.Y))
}

// TestViewerToolsInChromium: a tooth's images side by side with linked
// zoom, angle measurement, invert and rotate, the panoramic without a
// header window drawn with an automatic window, CBCT slices loading
// progressively and scrolling, and the tag browser.
func TestViewerToolsInChromium(t *testing.T) {
	ts := newTestServer(t, nil)
	child := demoImaged(ts, 0)
	studies := demoStudiesOf(t, ts, child.PersonID)
	b := browsertest.New(t, 1366, 768)
	loginBrowser(b, ts, "tandlaege")

	// Tooth 16 over time (the journal's tooth chart links here): the two
	// newest images side by side; zoom in one, the other follows.
	b.Do(chromedp.Navigate(fmt.Sprintf("%s/viewer/p/%d/tooth/16", ts.URL, child.PersonID)))
	waitDrawn(b, 2)
	require.Equal(t, 2, evalJS[int](b, `molarViewer.viewports.length`))
	require.Equal(t, []any{"16", "17", "46", "47"}, evalJS[[]any](b, `molarViewer.viewports[0].im.teeth`), "the newest: the later bitewing")
	z0 := evalJS[float64](b, `molarViewer.viewports[1].view.zoom`)
	c := clientOf(b, 0, 320, 240)
	wheel(b, 0, c, -400)
	b.Do(chromedp.Poll[chromedp.Void](fmt.Sprintf(`molarViewer.viewports[1].view.zoom > %f * 1.5`, z0), chromedp.WithPollingTimeout(5*time.Second)))
	require.InDelta(t, evalJS[float64](b, `molarViewer.viewports[0].view.zoom`), evalJS[float64](b, `molarViewer.viewports[1].view.zoom`), 1e-9, "zoom is linked")
	b.Screenshot("1-tooth-16-compare")

	// Angle: arms to (100, 300) and (300, 100) around the vertex (300, 300): 90°.
	b.Do(chromedp.Click(`[data-tool="angle"]`))
	b.Do(chromedp.Click(`[data-cmd="fit"]`))
	b.Do(chromedp.Poll[chromedp.Void](`molarViewer.viewports[0].raf === 0`))
	click(b, clientOf(b, 0, 100, 300))
	click(b, clientOf(b, 0, 300, 300))
	click(b, clientOf(b, 0, 300, 100))
	b.Do(chromedp.WaitVisible(`#measurements li[data-type="angle"]`))
	require.Equal(t, "90.0°", strings.TrimSpace(browsertest.Get(b, chromedp.Text(`#measurements li[data-type="angle"] .vw-mark`))))
	// Invert (I) and rotate (R) with the keyboard.
	b.Do(chromedp.Poll[chromedp.Void](`molarViewer.viewports[0].raf === 0`))
	v0 := canvasAt(b, 0, 320, 100)
	b.Do(chromedp.KeyEvent("i"))
	b.Do(chromedp.Poll[chromedp.Void](`molarViewer.viewports[0].view.invert && molarViewer.viewports[0].raf === 0`))
	require.InDelta(t, 255-v0, canvasAt(b, 0, 320, 100), 2, "inverted")
	b.Do(chromedp.KeyEvent("r"))
	require.Equal(t, 90, evalJS[int](b, `molarViewer.viewports[0].view.rot`))
	b.Screenshot("2-angle-invert-rotate")

	// The panoramic carries no window: the automatic window spreads it.
	b.Do(chromedp.Navigate(fmt.Sprintf("%s/viewer/p/%d/studies/%s", ts.URL, child.PersonID, studies["pano"].StudyInstanceUID)))
	waitDrawn(b, 1)
	require.False(t, evalJS[bool](b, `!!molarViewer.viewports[0].im.windowWidth`))
	pano := statsOf(b, 0)
	require.Greater(t, pano.Distinct, 60, "a spread of grays, not a white image: %+v", pano)
	white := evalJS[float64](b, `(() => { const vp = molarViewer.viewports[0], c = vp.canvas, d = vp.ctx.getImageData(0, 0, c.width, c.height).data;
		let n = 0, w = 0; for (let i = 0; i < d.length; i += 4 * 11) { if (d[i] > 8) { n++; if (d[i] > 250) w++; } } return w / n; })()`)
	require.Less(t, white, 0.2, "not rendered far too bright")
	// Tag browser.
	b.Do(chromedp.Click(".vw-tags summary"), chromedp.WaitVisible(`#tag-table tr[data-tag="(0018,1164)"]`))
	require.Contains(t, browsertest.Get(b, chromedp.Text(`#tag-table tr[data-tag="(0018,1164)"]`)), "ImagerPixelSpacing")
	b.Screenshot("3-panoramic-tags")

	// CBCT: 40 slices load progressively; the wheel scrolls through them.
	b.Do(chromedp.Navigate(fmt.Sprintf("%s/viewer/p/%d/studies/%s", ts.URL, child.PersonID, studies["cbct"].StudyInstanceUID)))
	waitDrawn(b, 1)
	b.Do(chromedp.Poll[chromedp.Void](`molarViewer.viewports[0].frames.filter(Boolean).length === 40`, chromedp.WithPollingTimeout(30*time.Second)))
	s0 := evalJS[int](b, `molarViewer.viewports[0].slice`)
	c = clientOf(b, 0, 80, 80)
	before := statsOf(b, 0)
	for range 12 {
		wheel(b, 0, c, 100)
	}
	b.Do(chromedp.Poll[chromedp.Void](fmt.Sprintf(`molarViewer.viewports[0].slice === %d && molarViewer.viewports[0].raf === 0`, min(s0+12, 39)), chromedp.WithPollingTimeout(5*time.Second)))
	after := statsOf(b, 0)
	require.NotEqual(t, before, after, "another slice is drawn")
	require.Contains(t, browsertest.Get(b, chromedp.Text(".vw-info")), fmt.Sprintf("Snit %d af 40", min(s0+12, 39)+1))
	b.Screenshot("4-cbct")
}

// TestJournalLinkOfAnotherPersonsImage: a journal image link names its
// study, series and instance in the request body; the DICOM index refuses
// another person's (here an outsider's study linked to a child in care),
// and a series or instance from outside the study.
func TestJournalLinkOfAnotherPersonsImage(t *testing.T) {
	ts := newTestServer(t, nil)
	_, other := imagesOfOutsider(t, ts)
	child := demoImaged(ts, 0)
	studies := demoStudiesOf(t, ts, child.PersonID)
	jc := ts.journalClient(t, "tandlaege")
	base := fmt.Sprintf("/api/journal/patients/%d/images", child.PersonID)
	status, b := jc.do("POST", base, map[string]any{"study_uid": other.StudyInstanceUID, "modality": "IO"})
	require.Equal(t, http.StatusNotFound, status, "another person's study: %s", b)
	status, b = jc.do("POST", base, map[string]any{"study_uid": studies["fmx"].StudyInstanceUID, "instance_uid": other.SOPInstanceUID, "modality": "IO"})
	require.Equal(t, http.StatusNotFound, status, "another person's instance in the child's study: %s", b)
	status, b = jc.do("POST", base, map[string]any{"study_uid": studies["fmx"].StudyInstanceUID, "series_uid": other.SeriesInstanceUID, "modality": "IO"})
	require.Equal(t, http.StatusNotFound, status, "a series of another study: %s", b)
	jc.json("POST", base, map[string]any{"study_uid": studies["fmx"].StudyInstanceUID, "modality": "IO", "tooth": 16}, http.StatusCreated, nil)
	jc.json("POST", base, map[string]any{"study_uid": "1.2.826.0.1.3680043.99.7", "modality": "IO"}, http.StatusCreated, nil)
	var n int
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM journal.image_link WHERE study_uid = $1`, other.StudyInstanceUID).Scan(&n)
	}))
	require.Zero(t, n)

	// An X-ray description names its study and images the same way: not
	// another person's.
	entries := fmt.Sprintf("/api/journal/patients/%d/entries", child.PersonID)
	careTime := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	xray := func(study string, instances ...string) map[string]any {
		return map[string]any{"kind": "xray_description", "care_time": careTime, "text": "Ingen caries.",
			"xray": map[string]any{"study_uid": study, "instance_uids": instances}}
	}
	status, b = jc.do("POST", entries, xray(other.StudyInstanceUID))
	require.Equal(t, http.StatusNotFound, status, "another person's study described: %s", b)
	status, b = jc.do("POST", entries, xray(studies["fmx"].StudyInstanceUID, other.SOPInstanceUID))
	require.Equal(t, http.StatusNotFound, status, "another person's image in the description: %s", b)
	jc.json("POST", entries, xray(studies["fmx"].StudyInstanceUID), http.StatusCreated, nil)

	// The web form's correction of a description keeps the images it names
	// (they are not among the form's fields a user edits).
	var insts []index.Instance
	require.NoError(t, postgres.InTenant(context.Background(), ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		var err error
		insts, err = index.InstancesOfStudy(context.Background(), tx, studies["fmx"].StudyInstanceUID)
		return err
	}))
	var created journal.Entry
	jc.json("POST", entries, xray(studies["fmx"].StudyInstanceUID, insts[0].SOPInstanceUID), http.StatusCreated, &created)
	formURL := fmt.Sprintf("%s/journal/patients/%d/entries/%d/correct", ts.URL, child.PersonID, created.ID)
	code, page := get(t, jc.c, formURL)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, `name="instance_uid" value="`+insts[0].SOPInstanceUID+`"`)
	careLocal := regexp.MustCompile(`name="care_time"[^>]*value="([^"]+)"`).FindStringSubmatch(page)
	require.NotNil(t, careLocal, "the form's care time")
	code, body := post(t, jc.c, ts.URL, formURL, jc.csrf, url.Values{"kind": {"xray_description"}, "care_time": {careLocal[1]},
		"study_uid": {studies["fmx"].StudyInstanceUID}, "instance_uid": {insts[0].SOPInstanceUID}, "text": {"Ingen caries, rettet."}, "reason": {"Stavefejl"}})
	require.Equal(t, http.StatusSeeOther, code, body)
	var list struct{ Entries []journal.Entry }
	jc.json("GET", entries, nil, http.StatusOK, &list)
	var corrected *journal.Entry
	for i, e := range list.Entries {
		if e.Text == "Ingen caries, rettet." {
			corrected = &list.Entries[i]
		}
	}
	require.NotNil(t, corrected)
	require.Equal(t, []string{insts[0].SOPInstanceUID}, corrected.XRay.InstanceUIDs)

	// Corrected to describe another study of the child, the form's hidden
	// images of the first study are not carried over (they would name
	// images outside the study described, refused as another study's).
	formURL = fmt.Sprintf("%s/journal/patients/%d/entries/%d/correct", ts.URL, child.PersonID, corrected.ID)
	code, page = get(t, jc.c, formURL)
	require.Equal(t, http.StatusOK, code)
	form := url.Values{"kind": {"xray_description"}, "care_time": {careLocal[1]}, "study_uid": {studies["pano"].StudyInstanceUID},
		"text": {"Panoramaoptagelse, ingen caries."}, "reason": {"Forkert undersøgelse"}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(page, -1) {
		if m[1] != "csrf_token" {
			form.Add(m[1], m[2])
		}
	}
	require.Equal(t, []string{insts[0].SOPInstanceUID}, form["instance_uid"], "the form's hidden images")
	code, body = post(t, jc.c, ts.URL, formURL, jc.csrf, form)
	require.Equal(t, http.StatusSeeOther, code, body)
	var after struct{ Entries []journal.Entry }
	jc.json("GET", entries, nil, http.StatusOK, &after)
	corrected = nil
	for i, e := range after.Entries {
		if e.Text == "Panoramaoptagelse, ingen caries." {
			corrected = &after.Entries[i]
		}
	}
	require.NotNil(t, corrected)
	require.Equal(t, studies["pano"].StudyInstanceUID, corrected.XRay.StudyUID)
	require.Empty(t, corrected.XRay.InstanceUIDs)
}
