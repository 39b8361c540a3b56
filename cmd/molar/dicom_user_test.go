package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres"
)

// TestDICOMUserIdentity: an AE registered with RequireUser must sign its
// associations with a Molar account (User Identity Negotiation, PS3.7
// D.3.3.7), proven with DCMTK storescu's -usr/-pwd; no identity, a wrong
// passcode, an account whose role may not use DICOM and an unverifiable JWT
// are rejected; other AEs' identities are ignored; the association log
// names the account.
func TestDICOMUserIdentity(t *testing.T) {
	dicomtest.Tool(t, "storescu")
	ts := newTestServer(t, nil)
	addr := startDICOM(t, ts)
	ctx := context.Background()
	for _, ae := range []index.AE{
		{Title: "SENSOR1", Host: "127.0.0.1", Port: 104, Permissions: []string{"echo", "store", "find", "get"}, RequireUser: true},
		{Title: "PANO1", Host: "127.0.0.1", Port: 104, Permissions: []string{"echo", "store"}},
	} {
		require.NoError(t, index.AddAE(ctx, ts.db.pool, ae, false))
	}
	got, err := index.GetAE(ctx, ts.db.pool, "SENSOR1")
	require.NoError(t, err)
	require.True(t, got.RequireUser)

	dir := t.TempDir()
	files := make([]string, 3)
	for i := range files {
		in := dicomtest.Instance{PatientID: "1234567", PatientName: "Sørensen^Jens", StudyUID: dicomtest.Root + ".70", SeriesUID: dicomtest.Root + ".70.1",
			SOPUID: fmt.Sprintf("%s.70.1.%d", dicomtest.Root, i), StudyDate: "20240301", InstanceNumber: i + 1}
		files[i] = filepath.Join(dir, fmt.Sprintf("f%d.dcm", i))
		in.Write(t, files[i])
	}
	h, p := dicomtest.HostPort(t, addr)
	store := func(calling, file string, identity ...string) (string, error) {
		args := append([]string{"-v", "-aet", calling, "-aec", "MOLAR"}, identity...)
		return dicomtest.Run(t, 60*time.Second, "storescu", append(args, h, p, file)...)
	}
	stored := func(sop string) bool {
		var n int
		require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM dicom.instance WHERE sop_instance_uid = $1`, sop).Scan(&n)
		}))
		return n == 1
	}
	rejected := func(out string, err error) {
		t.Helper()
		require.Error(t, err, out)
		require.Contains(t, out, "Association Rejected", out)
	}

	// SENSOR1 must sign in: without an identity, with a wrong passcode, or
	// as an account whose role has nothing to do with images, it is rejected.
	rejected(store("SENSOR1", files[0]))
	rejected(store("SENSOR1", files[0], "-usr", "tandlaege", "-pwd", "forkert-kodeord"))
	rejected(store("SENSOR1", files[0], "-usr", "klinikadmin", "-pwd", demo.Password))
	require.False(t, stored(dicomtest.Root+".70.1.0"))

	// The dental assistant's account signs in (asking for a positive
	// response) and the image is stored.
	out, err := store("SENSOR1", files[0], "-usr", "klinikassistent", "-pwd", demo.Password, "-rsp")
	require.NoError(t, err, out)
	require.Contains(t, out, "Received Store Response (Success)")
	require.True(t, stored(dicomtest.Root+".70.1.0"))

	// An AE without the requirement is not asked to sign in: an identity
	// it sends (devices send credentials meant for other archives) is
	// ignored, and neither counts towards a lock-out nor gets a positive
	// response.
	for i := 0; i < 4; i++ {
		out, err = store("PANO1", files[1+i%2], "-usr", "tandlaege", "-pwd", "forkert-kodeord")
		require.NoError(t, err, out)
	}
	require.True(t, stored(dicomtest.Root+".70.1.2"))
	out, err = store("PANO1", files[2], "-usr", "tandlaege", "-pwd", "forkert-kodeord", "-rsp")
	require.Error(t, err, "storescu -rsp gives up without the positive response: %s", out)
	out, err = store("SENSOR1", files[2], "-usr", "tandlaege", "-pwd", demo.Password)
	require.NoError(t, err, "the account was not locked by PANO1's passcodes: %s", out)

	// A JWT that no configured provider issued is refused (Molar's own SCU,
	// since storescu sends no JWT).
	_, err = dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: "SENSOR1", CalledAE: "MOLAR",
		Contexts:     []dimse.ProposedContext{dimse.VerificationContext()},
		UserIdentity: &dimse.UserIdentity{Type: dimse.IdentityJWT, PositiveResponseRequested: true, Primary: []byte("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")}})
	var rj *dimse.RejectedError
	require.True(t, errors.As(err, &rj), "%v", err)
	require.Equal(t, dimse.RejectPermanent, rj.Result)
	require.Equal(t, dimse.RejectSourceServiceProviderACSE, rj.Source, "an authorisation failure")

	// A signed-in association sees what its account may reach, and its
	// reads are audited with the account: the assistant does not see the
	// study not yet matched to anyone (only those who reconcile studies
	// do), but does see the demo children of her clinic; the dentist sees
	// both.
	find := func(user, studyUID string) int {
		t.Helper()
		a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: "SENSOR1", CalledAE: "MOLAR",
			Contexts:     []dimse.ProposedContext{{AbstractSyntax: uid.StudyRootQueryRetrieveFind, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}}},
			UserIdentity: &dimse.UserIdentity{Type: dimse.IdentityUsernamePasscode, Primary: []byte(user), Secondary: []byte(demo.Password)}})
		require.NoError(t, err)
		defer a.Release(ctx) //nolint:errcheck
		q := header.NewDataset()
		q.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
		q.SetString(header.TagStudyInstanceUID, "UI", studyUID)
		n := 0
		st, err := a.Find(ctx, uid.StudyRootQueryRetrieveFind, q, func(*header.Dataset) error { n++; return nil })
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
		return n
	}
	require.Equal(t, 0, find("klinikassistent", dicomtest.Root+".70"), "unmatched study, not a reconciler")
	require.Equal(t, 1, find("tandlaege", dicomtest.Root+".70"))
	mine := find("klinikassistent", "")
	require.Positive(t, mine, "the clinic's children")
	require.Equal(t, mine+1, find("tandlaege", ""))
	// C-GET likewise: the study's image comes only to the one who may see it.
	get := func(user string) int {
		t.Helper()
		a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: "SENSOR1", CalledAE: "MOLAR",
			Contexts: []dimse.ProposedContext{{AbstractSyntax: uid.StudyRootQueryRetrieveGet, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}},
				{AbstractSyntax: uid.DigitalIntraOralXRayForPresentation, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}, ProposeSCPRole: true}},
			UserIdentity: &dimse.UserIdentity{Type: dimse.IdentityUsernamePasscode, Primary: []byte(user), Secondary: []byte(demo.Password)}})
		require.NoError(t, err)
		defer a.Release(ctx) //nolint:errcheck
		id := header.NewDataset()
		id.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
		id.SetString(header.TagStudyInstanceUID, "UI", dicomtest.Root+".70")
		got := 0
		res, err := a.Get(ctx, uid.StudyRootQueryRetrieveGet, id, dimse.StoreFunc(func(ctx context.Context, req *dimse.StoreRequest, r io.Reader) (dimse.Status, error) {
			got++
			_, err := io.Copy(io.Discard, r)
			return dimse.StatusSuccess, err
		}), nil)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, res.Status)
		require.Equal(t, int(res.Completed), got)
		return got
	}
	require.Equal(t, 0, get("klinikassistent"))
	require.Equal(t, 3, get("tandlaege"))

	var reads int
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'read' AND username = 'dicom:SENSOR1'
			AND object = 'dicom.study/' || (SELECT id FROM dicom.study WHERE study_uid = $1)
			AND user_id = (SELECT id FROM auth.users WHERE username = 'tandlaege')`, dicomtest.Root+".70").Scan(&reads)
	}))
	require.Equal(t, 2, reads, "the study read twice by the dentist, audited with the account")

	// The association log names the accounts that signed SENSOR1's
	// associations, and none for PANO1's.
	var assistant int64
	require.NoError(t, ts.db.pool.QueryRow(ctx, `SELECT id FROM auth.users WHERE username = 'klinikassistent'`).Scan(&assistant))
	require.Eventually(t, func() bool {
		log, err := index.AssociationsOf(ctx, ts.db.pool, ts.demo.TenantID, 100)
		require.NoError(t, err)
		signed := map[string]bool{}
		pano := 0
		for _, a := range log {
			switch {
			case a.CallingAE == "SENSOR1" && a.Stored == 1:
				signed[a.Username] = a.UserID != 0
				if a.Username == "klinikassistent" {
					signed[a.Username] = a.UserID == assistant
				}
			case a.CallingAE == "PANO1" && a.Stored == 1:
				require.Zero(t, a.UserID)
				pano++
			}
		}
		return signed["klinikassistent"] && signed["tandlaege"] && pano == 4
	}, 10*time.Second, 50*time.Millisecond)
}
