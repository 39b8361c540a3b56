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
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dimse"
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
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
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := dicomTLS(ts.cfg, raw)
	require.NoError(t, err)
	require.NoError(t, ts.serveDICOM(context.Background(), ln))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.dicom.Shutdown(ctx)
	})
	addr := raw.Addr().String()
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
