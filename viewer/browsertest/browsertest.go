// Package browsertest runs pages in a real headless Chromium (Debian's
// chromium package) through the DevTools protocol (chromedp), for end-to-end
// tests. Screenshots are kept as test artifacts under $MOLAR_ARTIFACTS
// (default ./artifacts at the repository root) so people can look at them.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// Binary finds Chromium.
func Binary() (string, error) {
	if p := os.Getenv("MOLAR_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// Browser is one headless Chromium with a fresh profile.
type Browser struct {
	t   testing.TB
	Ctx context.Context
}

// New starts Chromium for the test with a window of w×h CSS pixels
// (1366×768 laptop, 390×844 phone …). It is stopped when the test ends.
// Without Chromium the test is skipped, or fails under CI=true.
func New(t testing.TB, w, h int) *Browser {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		pgtest.Unavailable(t, "Chromium (apt-get install chromium)", err)
	}
	profile, err := os.MkdirTemp("", "molar-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Flags that let Chromium run headless as root on this kind of machine
	// without reaching for the network (see shared PEERS.md).
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("enable-unsafe-swiftshader", true),
		chromedp.WindowSize(w, h),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	if err := chromedp.Do(ctx); err != nil {
		cancelTimeout()
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
		os.RemoveAll(profile)
	})
	return &Browser{t: t, Ctx: ctx}
}

// Do runs chromedp actions, failing the test on error.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// Get runs one action that returns a value, failing the test on error.
func Get[T any](b *Browser, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.Ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	return v
}

// ArtifactsDir is where screenshots go.
func ArtifactsDir() string {
	if d := os.Getenv("MOLAR_ARTIFACTS"); d != "" {
		return d
	}
	// Walk up to the module root (go.mod).
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "artifacts")
		}
	}
	return filepath.Join(dir, "artifacts")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Screenshot saves a full-page PNG named after the test and step, and
// returns its path.
func (b *Browser) Screenshot(step string) string {
	b.t.Helper()
	png := Get(b, chromedp.FullScreenshot(100))
	dir := ArtifactsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	name := unsafeName.ReplaceAllString(strings.ToLower(b.t.Name()+"-"+step), "_") + ".png"
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
	return p
}

// WaitText waits until the element matching sel contains substr, across
// page navigations (which interrupt a single query), and returns its text.
func (b *Browser) WaitText(sel, substr string, timeout time.Duration) string {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.Ctx, time.Second)
		txt, err := chromedp.Run(ctx, chromedp.Text(sel, chromedp.AtLeast(0)))
		cancel()
		if err == nil {
			last = txt
			if strings.Contains(txt, substr) {
				return txt
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("browser: %s never contained %q (last: %q)", sel, substr, last)
	return ""
}
