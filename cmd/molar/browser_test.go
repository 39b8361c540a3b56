package main

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/viewer/browsertest"
)

// TestLoginInChromium logs in through the real login page in headless
// Chromium: the browser is sent to the login page, signs in, lands on the
// home page in Danish, switches to English, and logs out.
func TestLoginInChromium(t *testing.T) {
	ts := newTestServer(t, nil)
	b := browsertest.New(t, 1366, 768)
	b.Do(chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible("#username"))
	loc := browsertest.Get(b, chromedp.Location())
	require.Contains(t, loc, "/login", "an anonymous browser is sent to the login page")
	b.Screenshot("1-login")

	// A wrong password shows the Danish error.
	b.Do(chromedp.SendKeys("#username", "tandlaege"),
		chromedp.SendKeys("#password", "forkert-kode-123"),
		chromedp.Click("#login-submit"),
		chromedp.WaitVisible(".error"))
	msg := browsertest.Get(b, chromedp.Text(".error"))
	require.Contains(t, msg, "Forkert brugernavn eller adgangskode")
	b.Screenshot("2-wrong-password")

	// The form keeps the username and never echoes the password.
	require.Equal(t, "tandlaege", browsertest.Get(b, chromedp.Value("#username")))
	b.Do(chromedp.SendKeys("#password", demo.Password),
		chromedp.Click("#login-submit"),
		chromedp.WaitVisible("#welcome"))
	welcome := browsertest.Get(b, chromedp.Text("#welcome"))
	require.Equal(t, "Velkommen, Tove Tandlæge", strings.TrimSpace(welcome))
	role := browsertest.Get(b, chromedp.Text(".role"))
	require.Equal(t, "Tandlæge", strings.TrimSpace(role))
	b.Screenshot("3-home-da")

	// The directory module's navigation entry leads to the demo clinic's details.
	b.Do(chromedp.Click(`nav.main a[href="/m/directory/"]`), chromedp.WaitVisible(".unit .phone"))
	units := browsertest.Get(b, chromedp.Text(".units"))
	require.Contains(t, units, "Tandplejen Molarby Skole")
	require.Contains(t, units, "+45 99 99 12 34")
	b.Screenshot("3b-directory")
	b.Do(chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible("#welcome"))

	b.Do(chromedp.Click("a.lang"), chromedp.WaitVisible("#welcome"))
	welcome = browsertest.Get(b, chromedp.Text("#welcome"))
	require.Equal(t, "Welcome, Tove Tandlæge", strings.TrimSpace(welcome))
	b.Screenshot("4-home-en")

	b.Do(chromedp.Click("button.link"), chromedp.WaitVisible("#username"))
	loc = browsertest.Get(b, chromedp.Location())
	require.Contains(t, loc, "/login")
}
