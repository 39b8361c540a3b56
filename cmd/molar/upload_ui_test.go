package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/viewer/browsertest"
)

// TestImportByUploadInChromium: a dentist uploads an intraoral camera
// picture (PNG) on a child's imaging timeline; it is wrapped in DICOM,
// stored for the child, and the timeline then shows a study with a ZIP
// download link.
func TestImportByUploadInChromium(t *testing.T) {
	ts := newTestServer(t, nil)
	child := ts.demo.Children[0]
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	f, err := os.Create(filepath.Join(dir, "foto.png"))
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, img))
	require.NoError(t, f.Close())

	b := browsertest.New(t, 1366, 768)
	b.Do(chromedp.Navigate(ts.URL+"/login"), chromedp.WaitVisible("#username"),
		chromedp.SendKeys("#username", "tandlaege"), chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"), chromedp.WaitVisible("#welcome"))
	b.Do(chromedp.Navigate(fmt.Sprintf("%s/viewer/p/%d/", ts.URL, child.PersonID)), chromedp.WaitVisible("#vw-upload"))
	before := browsertest.Get(b, chromedp.Evaluate[int](`document.querySelectorAll('.vw-study').length`))
	b.Do(chromedp.SetUploadFiles("#upload-files", []string{filepath.Join(dir, "foto.png")}), chromedp.Click("#upload-submit"))
	b.WaitText("#upload-status", "Gemt: 1", 30*time.Second)
	b.Screenshot("1-uploaded")
	// The page reloads with the new study.
	require.Eventually(t, func() bool {
		n, err := chromedp.Run(b.Ctx, chromedp.Evaluate[int](`document.querySelectorAll('.vw-study').length`))
		return err == nil && n == before+1
	}, 20*time.Second, 200*time.Millisecond)
	zip := browsertest.Get(b, chromedp.Evaluate[string](`document.querySelector('.vw-zip').getAttribute('href')`))
	require.Regexp(t, `^/dicom/studies/[0-9.]+/archive$`, zip)
	b.Screenshot("2-timeline")
}
