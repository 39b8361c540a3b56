package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/storagetest"
)

// switchProxy forwards TCP to target while up; down closes the listener and
// every open connection (as an S3 outage does), up opens it again on the
// same address.
type switchProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func (p *switchProxy) up(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(t, err)
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *switchProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestObjectStoreOutageDuringCStore: while S3 is unreachable a C-STORE gets a
// failure status (never Success) and nothing is indexed; when S3 returns,
// stores succeed again, and what was stored before is unchanged.
func TestObjectStoreOutageDuringCStore(t *testing.T) {
	endpoint, key, secret := storagetest.StartVersityGW(t)
	px := &switchProxy{addr: "127.0.0.1:0", target: strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")}
	px.up(t)
	ts := newTestServer(t, map[string]string{"MOLAR_DICOM_ACCEPT_UNKNOWN": "true",
		"MOLAR_S3_ENDPOINT": px.addr, "MOLAR_S3_ACCESS_KEY": key, "MOLAR_S3_SECRET_KEY": secret, "MOLAR_S3_BUCKET": storagetest.RandomBucket()})
	addr := startDICOM(t, ts)
	ctx := context.Background()

	store := func(n int) dimse.Status {
		in := dicomtest.Instance{PatientID: "OUTAGE", PatientName: "Test^Outage", StudyUID: dicomtest.Root + ".70",
			SeriesUID: dicomtest.Root + ".70.1", SOPUID: dicomtest.Root + ".70.1." + string(rune('0'+n))}
		a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: "SENSOR", CalledAE: "MOLAR",
			Contexts: dimse.StorageContexts([]string{uid.DigitalIntraOralXRayForPresentation}, []string{uid.ExplicitVRLittleEndian})})
		require.NoError(t, err)
		defer a.Release(ctx) //nolint:errcheck
		sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		st, err := a.Store(sctx, dimse.StoreParams{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: in.SOPUID, TransferSyntax: uid.ExplicitVRLittleEndian},
			bytes.NewReader(in.DataSet(t, uid.ExplicitVRLittleEndian)))
		require.NoError(t, err)
		return st
	}
	indexed := func(n int) bool {
		var ok bool
		require.NoError(t, postgres.InTenant(ctx, ts.db.pool, ts.demo.TenantID, func(tx pgx.Tx) error {
			_, err := index.GetInstance(ctx, tx, dicomtest.Root+".70.1."+string(rune('0'+n)))
			ok = err == nil
			return nil
		}))
		return ok
	}

	require.Equal(t, dimse.StatusSuccess, store(1))
	px.down()
	st := store(2)
	require.NotEqual(t, dimse.StatusSuccess, st, "never Success while the object store is down")
	require.Equal(t, uint16(0xA7), uint16(st)>>8, "an out-of-resources status (A7xx), got %04X", uint16(st))
	require.False(t, indexed(2), "nothing half-stored is indexed")
	px.up(t)
	require.Equal(t, dimse.StatusSuccess, store(3), "it recovers when S3 returns")
	require.True(t, indexed(1))
	require.True(t, indexed(3))
}
