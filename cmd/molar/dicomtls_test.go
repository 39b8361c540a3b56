package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Molar test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf certificate and returns its PEM certificate and key.
func (ca *testCA) issue(t *testing.T, cn string, server bool) ([]byte, []byte) {
	if server {
		return ca.issueFor(t, cn, x509.ExtKeyUsageServerAuth)
	}
	return ca.issueFor(t, cn, x509.ExtKeyUsageClientAuth)
}

// issueFor makes a leaf certificate for the given uses (a server one names
// 127.0.0.1).
func (ca *testCA) issueFor(t *testing.T, cn string, uses ...x509.ExtKeyUsage) ([]byte, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: uses}
	if slices.Contains(uses, x509.ExtKeyUsageServerAuth) {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

// TestDICOMTLS: with a certificate, key and client CA configured, a client
// with a certificate from the CA verifies the server and echoes; a client
// without one, or speaking plain DICOM, is refused.
func TestDICOMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	sc, sk := ca.issue(t, "molar", true)
	cc, ck := ca.issue(t, "sensor", false)
	env := map[string]string{
		"MOLAR_DICOM_ACCEPT_UNKNOWN": "true",
		"MOLAR_DICOM_TLS_CERT":       writeFile(t, dir, "server.pem", sc),
		"MOLAR_DICOM_TLS_KEY":        writeFile(t, dir, "server.key", sk),
		"MOLAR_DICOM_TLS_CA":         writeFile(t, dir, "ca.pem", ca.pem),
	}
	ts := newTestServer(t, env)
	addr := startDICOMWith(t, ts, func(ln net.Listener) (net.Listener, error) { return dicomTLS(ts.cfg, ln) })
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	opts := dimse.DialOptions{CallingAE: "SENSOR", CalledAE: "MOLAR", Contexts: []dimse.ProposedContext{dimse.VerificationContext()}, ARTIMTimeout: 5 * time.Second}
	ctx := context.Background()
	dialTLS := func(cfg *tls.Config) (*dimse.Association, error) {
		nc, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		a, err := dimse.NewAssociation(ctx, nc, opts)
		if err != nil {
			nc.Close()
		}
		return a, err
	}

	pair, err := tls.X509KeyPair(cc, ck)
	require.NoError(t, err)
	a, err := dialTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1"})
	require.NoError(t, err)
	st, err := a.Echo(ctx)
	require.NoError(t, err)
	require.Equal(t, dimse.StatusSuccess, st)
	require.NoError(t, a.Release(ctx))

	// No client certificate: the handshake fails.
	_, err = dialTLS(&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	require.Error(t, err)
	// Plain DICOM on the TLS port: no association.
	_, err = dimse.Dial(ctx, addr, opts)
	require.Error(t, err)

	// Bad settings are named.
	_, _, err = parseConfig("serve", nil, envOf(map[string]string{"MOLAR_DICOM_TLS_CERT": "x.pem"}), nil, nil)
	require.ErrorContains(t, err, "MOLAR_DICOM_TLS_CERT")
}

// TestDICOMTLSWithDCMTK proves DICOM TLS against DCMTK both ways:
// echoscu, storescu and findscu reach Molar's TLS listener with
// certificates from the site's CA, and C-MOVE sub-operations go over TLS
// to a DCMTK storescp that requires Molar's certificate, because its AE is
// registered with TLS. The same storescp registered without TLS gets
// nothing. (DCMTK's movescu has no TLS: Molar's own SCU asks for the move,
// through dimse.Dial's TLS.)
// startTLSMolar serves the test server's DICOM over TLS with a
// certificate of ca (for server and client use) and ca's clients required;
// it returns the server, its DICOM address and ca's PEM file.
func startTLSMolar(t *testing.T, dir string, ca *testCA) (*testServer, string, string) {
	t.Helper()
	caFile := writeFile(t, dir, "ca.pem", ca.pem)
	mc, mk := ca.issueFor(t, "molar", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	ts := newTestServer(t, map[string]string{
		"MOLAR_DICOM_TLS_CERT": writeFile(t, dir, "molar.pem", mc),
		"MOLAR_DICOM_TLS_KEY":  writeFile(t, dir, "molar.key", mk),
		"MOLAR_DICOM_TLS_CA":   caFile,
	})
	addr := startDICOMWith(t, ts, func(ln net.Listener) (net.Listener, error) { return dicomTLS(ts.cfg, ln) })
	return ts, addr, caFile
}

func TestDICOMTLSWithDCMTK(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	sc, sk := ca.issue(t, "storescp", true)
	cc, ck := ca.issue(t, "dcmtk-client", false)
	clientKey, clientCert := writeFile(t, dir, "client.key", ck), writeFile(t, dir, "client.pem", cc)
	ts, addr, caFile := startTLSMolar(t, dir, ca)
	host, port := dicomtest.HostPort(t, addr)
	// dcmtk runs a DCMTK tool over TLS with a client certificate; files
	// follow the peer's address.
	dcmtk := func(tool string, args []string, files ...string) (string, error) {
		args = append(append([]string{"-aet", "DCMTK", "-aec", "MOLAR", "+tls", clientKey, clientCert, "+cf", caFile}, args...), host, port)
		return dicomtest.Run(t, 60*time.Second, tool, append(args, files...)...)
	}

	ctx := context.Background()
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "DCMTK", Host: "127.0.0.1", Port: 104, Permissions: []string{"echo", "store", "find", "move"}}, false))
	out, err := dcmtk("echoscu", nil)
	require.NoError(t, err, "echoscu over TLS: %s", out)
	out, err = dicomtest.Run(t, 30*time.Second, "echoscu", "-aet", "DCMTK", "-aec", "MOLAR", host, port)
	require.Error(t, err, "plain DICOM on the TLS port: %s", out)

	in := dicomtest.Instance{PatientID: "TLS-1", PatientName: "Test^TLS", StudyUID: dicomtest.Root + ".73", SeriesUID: dicomtest.Root + ".73.1",
		SOPUID: dicomtest.Root + ".73.1.1", StudyDate: "20260101"}
	file := writeFile(t, dir, "in.dcm", in.File(t))
	out, err = dcmtk("storescu", nil, file)
	require.NoError(t, err, "storescu over TLS: %s", out)
	out, err = dcmtk("findscu", []string{"-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + in.StudyUID, "-k", "PatientID"})
	require.NoError(t, err, out)
	require.Contains(t, out, "TLS-1", "findscu over TLS finds the study")

	// storescp over TLS, requiring a client certificate from the CA.
	recv := t.TempDir()
	scp := dicomtest.StartStorescp(t, recv, "+tls", writeFile(t, dir, "storescp.key", sk), writeFile(t, dir, "storescp.pem", sc), "+cf", caFile)
	_, scpPort := dicomtest.HostPort(t, scp)
	p, _ := strconv.Atoi(scpPort)
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "PLAIN", Host: "127.0.0.1", Port: p, Permissions: []string{"echo"}}, false))
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "STORESCP", Host: "127.0.0.1", Port: p, Permissions: []string{"echo"}, TLS: true}, false))

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	pair, err := tls.X509KeyPair(cc, ck)
	require.NoError(t, err)
	move := func(dest string) *dimse.RetrieveResult {
		a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: "DCMTK", CalledAE: "MOLAR",
			Contexts: []dimse.ProposedContext{{AbstractSyntax: uid.StudyRootQueryRetrieveMove, TransferSyntaxes: uid.UncompressedTransferSyntaxes()}},
			TLS:      &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}})
		require.NoError(t, err)
		defer a.Release(ctx) //nolint:errcheck
		id := header.NewDataset()
		id.SetString(header.NewTag(0x0008, 0x0052), "CS", "STUDY")
		id.SetString(header.TagStudyInstanceUID, "UI", in.StudyUID)
		res, err := a.Move(ctx, uid.StudyRootQueryRetrieveMove, dest, id, nil)
		require.NoError(t, err)
		return res
	}
	res := move("PLAIN")
	files, _ := os.ReadDir(recv)
	require.Empty(t, files, "the TLS storescp took an association without TLS")
	require.False(t, res.Status.IsSuccess(), "a move that reached no one: %+v", res)
	res = move("STORESCP")
	require.Equal(t, dimse.StatusSuccess, res.Status, "%+v", res)
	files, err = os.ReadDir(recv)
	require.NoError(t, err)
	require.Len(t, files, 1)
	got, err := os.ReadFile(filepath.Join(recv, files[0].Name()))
	require.NoError(t, err)
	body, gotTS := dicomtest.DataSetBody(t, got)
	require.Equal(t, uid.ExplicitVRLittleEndian, gotTS)
	require.Empty(t, dicomtest.CompareDataSets(in.DataSet(t, gotTS), body, gotTS), "storescp received what storescu sent")
}

// TestDICOMTLSWithOrthanc: Orthanc with DICOM TLS on (its listener and its
// associations, certificates from the site's CA) stores to Molar's TLS
// listener and asks Molar to C-MOVE a study to it, which Molar sends over
// TLS because Orthanc's AE is registered with TLS.
func TestDICOMTLSWithOrthanc(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	oc, ok := ca.issueFor(t, "orthanc", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	ts, addr, caFile := startTLSMolar(t, dir, ca)
	mhost, mport := dicomtest.HostPort(t, addr)
	mp, _ := strconv.Atoi(mport)
	o := dicomtest.StartOrthancWith(t, nil, map[string]any{
		"DicomTlsEnabled": true, "DicomTlsCertificate": writeFile(t, dir, "orthanc.pem", oc),
		"DicomTlsPrivateKey": writeFile(t, dir, "orthanc.key", ok), "DicomTlsTrustedCertificates": caFile,
		"DicomTlsRemoteCertificateRequired": true,
		"DicomModalities":                   map[string]any{"MOLAR": map[string]any{"AET": "MOLAR", "Host": mhost, "Port": mp, "UseDicomTls": true}},
	})
	ohost, oport := dicomtest.HostPort(t, o.DICOMAddr)
	op, _ := strconv.Atoi(oport)
	ctx := context.Background()
	require.NoError(t, index.AddAE(ctx, ts.db.pool, index.AE{Title: "ORTHANC", Host: ohost, Port: op, Permissions: []string{"echo", "store", "find", "move"}, TLS: true}, false))

	// Orthanc stores to Molar over TLS.
	in := dicomtest.Instance{PatientID: "TLS-2", PatientName: "Test^Orthanc", StudyUID: dicomtest.Root + ".75",
		SeriesUID: dicomtest.Root + ".75.1", SOPUID: dicomtest.Root + ".75.1.1", StudyDate: "20260101"}
	var up map[string]any
	o.Do(t, "POST", "/instances", in.File(t), &up)
	o.Do(t, "POST", "/modalities/MOLAR/store", map[string]any{"Resources": []string{up["ID"].(string)}, "Synchronous": true}, nil)
	require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
		_, err := index.GetInstance(ctx, tx, in.SOPUID)
		return err
	}), "the instance Orthanc sent over TLS is in Molar")

	// Orthanc asks Molar to move a study only Molar has to Orthanc: over TLS.
	other := dicomtest.Instance{PatientID: "TLS-3", PatientName: "Test^Move", StudyUID: dicomtest.Root + ".76",
		SeriesUID: dicomtest.Root + ".76.1", SOPUID: dicomtest.Root + ".76.1.1", StudyDate: "20260101"}
	ingestFile(t, ts, other.File(t))
	o.Do(t, "POST", "/modalities/MOLAR/move", map[string]any{"Level": "Study", "Resources": []map[string]string{{"StudyInstanceUID": other.StudyUID}},
		"TargetAet": "ORTHANC", "Synchronous": true}, nil)
	var found []any
	o.Do(t, "POST", "/tools/lookup", []byte(other.SOPUID), &found)
	require.NotEmpty(t, found, "the moved instance arrived in Orthanc over TLS")
}
