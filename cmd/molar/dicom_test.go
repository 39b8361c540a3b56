package main

import (
	"bytes"
	"context"
	"errors"
	"image"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/thumb"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres"
)

// startDICOM serves the test server's DICOM SCP on a loopback port.
func startDICOM(t *testing.T, ts *testServer) string {
	t.Helper()
	return startDICOMWith(t, ts, func(ln net.Listener) (net.Listener, error) { return ln, nil })
}

// startDICOMWith is startDICOM with the listener wrapped (dicomTLS).
func startDICOMWith(t *testing.T, ts *testServer, wrap func(net.Listener) (net.Listener, error)) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := wrap(raw)
	require.NoError(t, err)
	require.NoError(t, ts.serveDICOM(context.Background(), ln))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.dicom.Shutdown(ctx)
	})
	return raw.Addr().String()
}

func echo(ctx context.Context, addr, calling string) (dimse.Status, *dimse.Association, error) {
	a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: calling, CalledAE: "MOLAR", Contexts: []dimse.ProposedContext{dimse.VerificationContext()}})
	if err != nil {
		return 0, nil, err
	}
	st, err := a.Echo(ctx)
	return st, a, err
}

func TestDICOMPolicyKnownAndUnknownAEs(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := startDICOM(t, ts)
	ctx := context.Background()

	// Unknown AEs are rejected by default.
	_, _, err := echo(ctx, addr, "STRANGER")
	var rj *dimse.RejectedError
	require.True(t, errors.As(err, &rj), "%v", err)

	// A registered AE is accepted.
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "PANO1", Host: "127.0.0.1", Port: 104, Permissions: []string{"echo", "store"}}, false))
	st, a, err := echo(ctx, addr, "PANO1")
	require.NoError(t, err)
	require.Equal(t, dimse.Status(0), st)
	require.NoError(t, a.Release(ctx))

	// Metrics count the association and the echo.
	resp, err := http.Get(ts.URL + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(b), `molar_dicom_operations_total{op="C-ECHO",status="success"} 1`)
	require.Contains(t, string(b), `molar_dicom_associations_rejected_total 1`)
}

func TestDICOMAcceptUnknownAllowsEchoAndStoreOnly(t *testing.T) {
	ts := newTestServer(t, map[string]string{"MOLAR_DICOM_ACCEPT_UNKNOWN": "true"})
	addr := startDICOM(t, ts)
	st, a, err := echo(context.Background(), addr, "ANYONE")
	require.NoError(t, err)
	require.Equal(t, dimse.Status(0), st)
	require.NoError(t, a.Release(context.Background()))
}

// TestDICOMShutdownWaitsForAssociations: an open association may finish
// its work during shutdown; one left open past the deadline is aborted, and
// shutdown returns.
func TestDICOMShutdownWaitsForAssociations(t *testing.T) {
	ts := newTestServer(t, map[string]string{"MOLAR_DICOM_ACCEPT_UNKNOWN": "true"})
	addr := startDICOM(t, ts)
	ctx := context.Background()
	_, a, err := echo(ctx, addr, "ANYONE")
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		done <- ts.dicom.Shutdown(sctx)
	}()
	// New associations are refused once shutdown began.
	time.Sleep(100 * time.Millisecond)
	_, _, err = echo(ctx, addr, "LATE")
	require.Error(t, err)
	// The open association still works, then releases.
	st, err := a.Echo(ctx)
	require.NoError(t, err)
	require.Equal(t, dimse.Status(0), st)
	require.NoError(t, a.Release(ctx))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not return")
	}
	require.Zero(t, ts.dicom.ActiveAssociations())
	_ = strings.TrimSpace
}

// TestThumbnailAfterCStore: a C-STORE Success leads to stored thumbnails by
// the durable job; an instance without pixels gets a recorded reason.
func TestThumbnailAfterCStore(t *testing.T) {
	ts := newTestServer(t, map[string]string{"MOLAR_DICOM_ACCEPT_UNKNOWN": "true"})
	addr := startDICOM(t, ts)
	ctx := context.Background()
	require.NoError(t, ts.queue.Start(ctx))
	t.Cleanup(func() { _ = ts.queue.Stop(context.Background()) })
	dctx, stopDispatch := context.WithCancel(ctx)
	dispatched := make(chan error, 1)
	go func() { dispatched <- ts.thumbs.Run(dctx, ts.queue) }()
	t.Cleanup(func() { stopDispatch(); <-dispatched })

	in := dicomtest.Instance{PatientID: "THUMB-1", PatientName: "Test^Thumb", StudyUID: dicomtest.Root + ".90",
		SeriesUID: dicomtest.Root + ".90.1", SOPUID: dicomtest.Root + ".90.1.1", Rows: 400, Cols: 300, Teeth: []string{"46"}}
	data := in.DataSet(t, uid.ExplicitVRLittleEndian)
	a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: "SENSOR", CalledAE: "MOLAR",
		Contexts: dimse.StorageContexts([]string{uid.DigitalIntraOralXRayForPresentation}, []string{uid.ExplicitVRLittleEndian})})
	require.NoError(t, err)
	stored := time.Now()
	st, err := a.Store(ctx, dimse.StoreParams{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: in.SOPUID, TransferSyntax: uid.ExplicitVRLittleEndian}, bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	require.NoError(t, a.Release(ctx))

	var key string
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		i, err := index.GetInstance(ctx, tx, in.SOPUID)
		key = i.ObjectKey
		return err
	}))
	var ready thumb.Status
	require.Eventually(t, func() bool {
		ready, err = thumb.Lookup(ctx, ts.store, key, nil)
		return err == nil && len(ready.Ready) == len(thumb.DefaultSizes)
	}, 30*time.Second, 20*time.Millisecond, "thumbnails made by the job")
	t.Logf("thumbnails ready %s after C-STORE Success", time.Since(stored).Round(time.Millisecond))
	rc, _, err := ts.store.Get(ctx, thumb.Key(key, 128), nil)
	require.NoError(t, err)
	img, _, err := image.Decode(rc)
	rc.Close()
	require.NoError(t, err)
	require.Equal(t, 128, max(img.Bounds().Dx(), img.Bounds().Dy()))

	// An instance the renderer cannot draw: the failure and its reason are kept.
	sr := ingestFile(t, ts, testFile(t, "reportsi.dcm"))
	require.Eventually(t, func() bool {
		st, err := thumb.Lookup(ctx, ts.store, sr.ObjectKey, nil)
		return err == nil && st.Failed != nil && st.Failed.Reason != ""
	}, 30*time.Second, 20*time.Millisecond, "the failure is recorded with a reason")
}

func init() {
	routePermissions["GET /admin/dicom/"] = auth.PermAdminAE
	routePermissions["POST /admin/dicom/aes"] = auth.PermAdminAE
	routePermissions["POST /admin/dicom/aes/{title}/delete"] = auth.PermAdminAE
}

// TestDICOMAdminScreen: an administrator registers an AE in the web UI; its
// association then shows in the association log, an unknown AE's rejection too.
func TestDICOMAdminScreen(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := startDICOM(t, ts)
	c, csrf := ts.login(t, "admin")
	st, _ := post(t, c, ts.URL, ts.URL+"/admin/dicom/aes", csrf, url.Values{"title": {"INTRAORAL1"}, "host": {"127.0.0.1"}, "port": {"104"}, "perm": {"store", "find"}, "description": {"Sensor, rum 2"}})
	require.Equal(t, http.StatusSeeOther, st)
	st, _ = post(t, c, ts.URL, ts.URL+"/admin/dicom/aes", csrf, url.Values{"title": {"BAD\\TITLE"}, "host": {"h"}, "port": {"104"}})
	require.Equal(t, http.StatusBadRequest, st)

	ctx := context.Background()
	_, a, err := echo(ctx, addr, "INTRAORAL1")
	require.NoError(t, err)
	require.NoError(t, a.Release(ctx))
	_, _, err = echo(ctx, addr, "STRANGER")
	require.Error(t, err)

	var body string
	require.Eventually(t, func() bool {
		_, body = get(t, c, ts.URL+"/admin/dicom/")
		return strings.Contains(body, "released") && strings.Contains(body, "rejected")
	}, 10*time.Second, 50*time.Millisecond)
	require.Contains(t, body, "INTRAORAL1")
	require.Contains(t, body, "Sensor, rum 2")
	require.Contains(t, body, "STRANGER")
	require.NotContains(t, body, "(TLS)")
	// saveAE submits the form and returns the AE as stored.
	saveAE := func(form url.Values) index.AE {
		t.Helper()
		st, _ := post(t, c, ts.URL, ts.URL+"/admin/dicom/aes", csrf, form)
		require.Equal(t, http.StatusSeeOther, st)
		ae, err := index.GetAE(ctx, ts.db.pool, form.Get("title"))
		require.NoError(t, err)
		return ae
	}
	// The PACS across town is reached over DICOM TLS.
	pacs := saveAE(url.Values{"title": {"PACS"}, "host": {"pacs.example"}, "port": {"2762"}, "perm": {"store"}, "tls": {"on"}})
	require.True(t, pacs.TLS)
	_, body = get(t, c, ts.URL+"/admin/dicom/")
	require.Contains(t, body, "pacs.example:2762 <span class=\"muted\"")
	in, _ := index.GetAE(ctx, ts.db.pool, "INTRAORAL1")
	require.False(t, in.TLS)
	require.False(t, in.RequireUser)
	// A sensor whose associations must sign in with an account.
	sensor := saveAE(url.Values{"title": {"SENSOR2"}, "host": {"127.0.0.1"}, "port": {"104"}, "perm": {"store"}, "require_user": {"on"}})
	require.True(t, sensor.RequireUser)
	_, body = get(t, c, ts.URL+"/admin/dicom/")
	require.Contains(t, body, "127.0.0.1:104 <span class=\"muted\" title=\"Forbindelser skal logge ind")
	// Editing fills the form with the stored values, so saving it changes
	// only what the admin changed (here the address): sign-in, TLS and
	// permissions stay.
	st, body = get(t, c, ts.URL+"/admin/dicom/?edit=SENSOR2")
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, body, `id="ae-require-user" checked`)
	require.Contains(t, body, `id="ae-replace" checked`)
	require.Contains(t, body, `name="title" id="ae-title" maxlength="16" required value="SENSOR2"`)
	require.Contains(t, body, `value="store" checked`)
	require.NotContains(t, body, `value="find" checked`)
	sensor = saveAE(url.Values{"title": {"SENSOR2"}, "host": {"10.0.0.9"}, "port": {"104"}, "perm": {"store"},
		"require_user": {"on"}, "replace": {"on"}})
	require.True(t, sensor.RequireUser)
	require.Equal(t, "10.0.0.9", sensor.Host)
	st, _ = get(t, c, ts.URL+"/admin/dicom/?edit=NOSUCH")
	require.Equal(t, http.StatusNotFound, st)

	st, _ = post(t, c, ts.URL, ts.URL+"/admin/dicom/aes/INTRAORAL1/delete", csrf, url.Values{})
	require.Equal(t, http.StatusSeeOther, st)
	_, err = index.GetAE(ctx, ts.db.pool, "INTRAORAL1")
	require.ErrorIs(t, err, index.ErrNotFound)

	dentist, _ := ts.login(t, "tandlaege")
	st, _ = get(t, dentist, ts.URL+"/admin/dicom/")
	require.Equal(t, http.StatusForbidden, st)
}

// TestDICOMAdminScreenPerMunicipality: with two municipalities on one
// server, each admin sees and changes only their own AEs and association
// log; one cannot list, take over, redirect or remove the other's sensor.
func TestDICOMAdminScreenPerMunicipality(t *testing.T) {
	ts := newTestServer(t, nil)
	addr := startDICOM(t, ts)
	ctx := context.Background()
	var other auth.Tenant
	require.NoError(t, postgres.InTx(ctx, ts.db.pool, func(tx pgx.Tx) error {
		var err error
		if other, err = auth.CreateTenant(ctx, tx, "0202", "Andenkommune"); err != nil {
			return err
		}
		_, err = auth.CreateUser(ctx, tx, auth.NewUser{TenantID: other.ID, Username: "admin-anden", DisplayName: "Anne Admin", Role: auth.RoleClinicAdmin, Password: demo.Password}, nil)
		return err
	}))
	ca, csrfA := ts.login(t, "admin")
	cb, csrfB := ts.login(t, "admin-anden")
	add := func(c *http.Client, csrf, title, host string, replace bool) int {
		form := url.Values{"title": {title}, "host": {host}, "port": {"104"}, "perm": {"store"}}
		if replace {
			form.Set("replace", "on")
		}
		st, _ := post(t, c, ts.URL, ts.URL+"/admin/dicom/aes", csrf, form)
		return st
	}
	require.Equal(t, http.StatusSeeOther, add(ca, csrfA, "SENSOR_A", "10.1.0.1", false))
	require.Equal(t, http.StatusSeeOther, add(cb, csrfB, "SENSOR_B", "10.2.0.1", false))
	for _, title := range []string{"SENSOR_A", "SENSOR_B"} {
		_, a, err := echo(ctx, addr, title)
		require.NoError(t, err, title)
		require.NoError(t, a.Release(ctx))
	}
	page := func(c *http.Client) string {
		var body string
		require.Eventually(t, func() bool {
			_, body = get(t, c, ts.URL+"/admin/dicom/")
			return strings.Contains(body, "released")
		}, 10*time.Second, 50*time.Millisecond)
		return body
	}
	bodyA, bodyB := page(ca), page(cb)
	require.Contains(t, bodyA, "SENSOR_A")
	require.NotContains(t, bodyA, "SENSOR_B", "neither the AE nor its associations")
	require.NotContains(t, bodyA, "10.2.0.1")
	require.Contains(t, bodyB, "SENSOR_B")
	require.NotContains(t, bodyB, "SENSOR_A")

	// A's admin tries to re-home B's sensor, to point it elsewhere, to remove it.
	require.Equal(t, http.StatusBadRequest, add(ca, csrfA, "SENSOR_B", "attacker.example", false))
	require.Equal(t, http.StatusBadRequest, add(ca, csrfA, "SENSOR_B", "attacker.example", true))
	st, _ := post(t, ca, ts.URL, ts.URL+"/admin/dicom/aes/SENSOR_B/delete", csrfA, url.Values{})
	require.Equal(t, http.StatusNotFound, st)
	b, err := index.GetAE(ctx, ts.db.pool, "SENSOR_B")
	require.NoError(t, err)
	require.Equal(t, other.ID, b.TenantID)
	require.Equal(t, "10.2.0.1", b.Host)

	// Its own sensor A's admin changes and removes.
	require.Equal(t, http.StatusSeeOther, add(ca, csrfA, "SENSOR_A", "10.1.0.2", true))
	st, _ = post(t, ca, ts.URL, ts.URL+"/admin/dicom/aes/SENSOR_A/delete", csrfA, url.Values{})
	require.Equal(t, http.StatusSeeOther, st)
	_, err = index.GetAE(ctx, ts.db.pool, "SENSOR_A")
	require.ErrorIs(t, err, index.ErrNotFound)
}
