package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/index"
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
		"POST /viewer/p/{person}/mounts":                   auth.PermDICOMRead,
		"GET /viewer/p/{person}/mounts/{mount}":            auth.PermDICOMRead,
		"GET /viewer/api/p/{person}/images/{sop}/state":    auth.PermDICOMRead,
		"PUT /viewer/api/p/{person}/images/{sop}/state":    auth.PermDICOMRead,
		"GET /viewer/api/p/{person}/images/{sop}/tags":     auth.PermDICOMRead,
		"POST /viewer/api/p/{person}/images/{sop}/send":    auth.PermDICOMRead,
		"POST /viewer/api/p/{person}/mounts/{mount}/slots": auth.PermDICOMRead,
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
	b.Screenshot("3-timeline")

	// Open the full-mouth study: the first image (teeth 18 17 16, Pixel
	// Spacing 0.05 mm) is drawn on the canvas.
	b.Do(chromedp.Click(fmt.Sprintf(`.vw-study[data-study="%s"] a.vw-study-open`, fmx.StudyInstanceUID)))
	waitDrawn(b, 1)
	b.Screenshot("4-study")
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
}

func upperJaw(tooth string) bool { return strings.ContainsRune("1256", rune(tooth[0])) }
