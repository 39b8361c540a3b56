package dimse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// We grant an asynchronous operations window of one: C-FINDs sent while one
// runs are refused at once (no handler, no goroutine), the running one
// completes, and the association stays usable.
func TestRequestsBeyondOperationsWindowRefused(t *testing.T) {
	const requests = 50
	var running, peak, calls atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	addr := startServer(t, &Server{Find: FindFunc(func(ctx context.Context, req *QueryRequest, emit func(*header.Dataset) error) (Status, error) {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
			return StatusSuccess, nil
		case <-ctx.Done():
			return StatusCancel, ctx.Err()
		}
	})})
	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{{AbstractSyntax: uid.StudyRootQueryRetrieveFind, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}}},
		AsyncOps: &AsyncOps{MaxInvoked: 0, MaxPerformed: 0}, IdleTimeout: 5 * time.Second})
	defer a.Abort()
	require.Equal(t, &AsyncOps{MaxInvoked: 1, MaxPerformed: 1}, a.AssociateAC().UserInfo.AsyncOps)
	pc, err := a.FindContext(uid.StudyRootQueryRetrieveFind, "")
	require.NoError(t, err)
	body, err := studyQuery().Encode(pc.TransferSyntax)
	require.NoError(t, err)

	// Send them all without awaiting responses, as an asynchronous requestor would.
	for i := 1; i <= requests; i++ {
		require.NoError(t, a.c.sendMessage(pc.ID, &Command{CommandField: CFindRQ, MessageID: uint16(i), AffectedSOPClassUID: uid.StudyRootQueryRetrieveFind}, bytesReader(body)))
	}
	statuses := map[Status]int{}
	for i := 0; i < requests; i++ {
		m, err := a.c.readMessage()
		require.NoError(t, err)
		require.Equal(t, CFindRSP, m.cmd.CommandField)
		statuses[m.cmd.Status]++
		if m.cmd.Status == StatusOutOfResources {
			assert.Equal(t, "asynchronous operations window exceeded", m.cmd.ErrorComment)
			if statuses[StatusOutOfResources] == requests-1 {
				releaseAll() // every other request answered: let the running one end
			}
		}
	}
	assert.Equal(t, map[Status]int{StatusSuccess: 1, StatusOutOfResources: requests - 1}, statuses)
	assert.Equal(t, int32(1), calls.Load())
	assert.Equal(t, int32(1), peak.Load())

	// Synchronous use goes on: the window is free as soon as the final
	// response is out.
	for i := 0; i < 3; i++ {
		st, err := a.Find(context.Background(), uid.StudyRootQueryRetrieveFind, studyQuery(), func(*header.Dataset) error { return nil })
		require.NoError(t, err)
		assert.Equal(t, StatusSuccess, st)
	}
}

// Connections that announce the largest A-ASSOCIATE-RQ and then send nothing
// pin little memory: bodies are allocated as they arrive, and connections
// beyond MaxPendingAssociations are closed at once. Once they go, the server
// associates as usual.
func TestHeaderOnlyConnectionsPinLittleMemory(t *testing.T) {
	const conns = 300
	cases := []struct {
		name       string
		maxPending int
		wantServed int
	}{
		// All from one address: a quarter of the bound each.
		{"default bound", 0, defaultMaxPending / 4},
		{"all served", 4 * conns, conns}, // the bodies alone must stay small
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{ARTIMTimeout: time.Minute, MaxPendingAssociations: tc.maxPending}
			addr := startServer(t, s)
			var ms runtimeMemStats
			runtime.GC()
			base := ms.heapInUse()

			var closedByServer atomic.Int32
			var open []net.Conn
			for i := 0; i < conns; i++ {
				c := rawDial(t, addr)
				open = append(open, c)
				hdr := binary.BigEndian.AppendUint32([]byte{TypeAssociateRQ, 0}, MaxAssociatePDULength)
				_, _ = c.Write(append(hdr, 0, 1))
				go func() {
					if _, err := io.Copy(io.Discard, c); err == nil || errors.Is(err, syscall.ECONNRESET) {
						closedByServer.Add(1)
					}
				}()
			}
			// Every connection is either closed by the server or being served.
			require.Eventually(t, func() bool { return int(closedByServer.Load())+int(s.conns.Load()) == conns }, 10*time.Second, 10*time.Millisecond)
			runtime.GC()
			growth := int64(ms.heapInUse()) - int64(base)
			t.Logf("%d connections: %d served, heap in use grew by %d KiB", conns, s.conns.Load(), growth>>10)
			assert.Equal(t, tc.wantServed, int(s.conns.Load()))
			assert.Less(t, growth, int64(16<<20), "heap grew by %d MiB", growth>>20) // was 96 MiB with 256 KiB allocated per header

			for _, c := range open {
				_ = c.Close()
			}
			require.Eventually(t, func() bool { return s.pending.Load() == 0 }, 5*time.Second, 10*time.Millisecond)
			echoWorks(t, addr)
		})
	}
}

func TestReadBodyAllocatesAsBytesArrive(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20_000) // 320,000 bytes
	for _, n := range []int{0, 1, 4095, 4096, 4097, 100_000, len(data)} {
		got, err := readBody(iotest.OneByteReader(bytes.NewReader(data)), uint32(n))
		require.NoError(t, err, "length %d", n)
		assert.Equal(t, data[:n], got, "length %d", n)
		assert.LessOrEqual(t, cap(got), max(n, 4096)*2, "length %d", n)
	}
	for _, n := range []int{1, 4096, 10_000} {
		_, err := readBody(bytes.NewReader(data[:n-1]), uint32(n))
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "short body of %d", n)
	}
	_, err := readBody(iotest.ErrReader(io.ErrClosedPipe), 10)
	assert.ErrorIs(t, err, io.ErrClosedPipe)
}

// A requestor whose maximum PDU length is below MinMaxPDULength is rejected
// (we could not send it even a command without exceeding it); 0 means
// unlimited and is accepted.
func TestAcceptorRefusesTinyPeerMaxPDULength(t *testing.T) {
	addr := startServer(t, &Server{})
	cases := []struct {
		max    uint32
		accept bool
	}{
		{0, true},
		{1, false},
		{16, false},
		{MinMaxPDULength - 1, false},
		{MinMaxPDULength, true},
		{16384, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			rq, err := EncodePDU(&AssociateRQ{CalledAE: "MOLAR", CallingAE: "X", UserInfo: UserInfo{MaxPDULength: tc.max},
				PresentationContexts: []PresentationContextRQ{{ID: 1, AbstractSyntax: uid.Verification, TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}}}})
			require.NoError(t, err)
			c := rawDial(t, addr)
			_, _ = c.Write(rq)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			p, err := ReadPDU(c, 0)
			require.NoError(t, err)
			if tc.accept {
				assert.IsType(t, &AssociateAC{}, p)
				return
			}
			assert.Equal(t, &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonNoReason}, p)
		})
	}
}

// As requestor, an acceptor's maximum below MinMaxPDULength ends the
// association with an A-ABORT.
func TestDialRefusesTinyAcceptorMaxPDULength(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan PDU, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := ReadPDU(c, 0); err != nil {
			return
		}
		ac, _ := EncodePDU(&AssociateAC{CalledAE: "MOLAR", CallingAE: "TESTSCU", UserInfo: UserInfo{MaxPDULength: 100},
			PresentationContexts: []PresentationContextAC{{ID: 1, TransferSyntax: uid.ImplicitVRLittleEndian}}})
		_, _ = c.Write(ac)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		p, _ := ReadPDU(c, 0)
		got <- p
	}()
	_, err = Dial(context.Background(), ln.Addr().String(), DialOptions{CallingAE: "TESTSCU", CalledAE: "MOLAR", Contexts: []ProposedContext{VerificationContext()}})
	require.ErrorContains(t, err, "maximum PDU length 100")
	assert.IsType(t, &Abort{}, <-got)
}

// We never send a PDU longer than the peer's maximum.
func TestMaxPDVDataWithinPeerMaximum(t *testing.T) {
	for _, peer := range []uint32{MinMaxPDULength, MinMaxPDULength + 1, 16383, 16384, 4 << 20, 4<<20 + 1, 0} {
		c := &conn{peerMaxPDU: peer}
		n := c.maxPDVData()
		assert.Positive(t, n, "peer max %d", peer)
		assert.Zero(t, n%2, "peer max %d", peer)
		if peer != 0 {
			assert.LessOrEqual(t, n+6, int(peer), "peer max %d", peer) // PDV header 6 bytes
		}
	}
}

// One host's silent connections take at most a quarter of the pending
// slots: another host still associates, and the bound in all holds.
func TestPendingConnectionsBoundPerHost(t *testing.T) {
	s := &Server{ARTIMTimeout: time.Minute, MaxPendingAssociations: 8}
	addr := startServer(t, s)
	from := func(ip string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF || errors.Is(err, syscall.ECONNRESET)
	}
	// 127.0.0.2 holds its 2 slots silently; its third connection is closed.
	a, b := from("127.0.0.2"), from("127.0.0.2")
	require.Eventually(t, func() bool { return s.pending.Load() == 2 }, 5*time.Second, 10*time.Millisecond)
	require.True(t, closed(from("127.0.0.2")), "a third silent connection of one host")
	// Another host is not locked out.
	echoWorks(t, addr)
	// Three hosts' silent connections fill the bound; then even a new host waits.
	for _, ip := range []string{"127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4", "127.0.0.5", "127.0.0.5"} {
		from(ip)
	}
	require.Eventually(t, func() bool { return s.pending.Load() == 8 }, 5*time.Second, 10*time.Millisecond)
	require.True(t, closed(from("127.0.0.6")), "the bound in all")
	a.Close()
	b.Close()
	require.Eventually(t, func() bool { return s.pending.Load() == 6 }, 5*time.Second, 10*time.Millisecond)
	echoWorks(t, addr)
}

// Without a per-host bound (peers behind NAT or a load balancer share one
// address) only the bound in all applies.
func TestPendingConnectionsWithoutPerHostBound(t *testing.T) {
	s := &Server{ARTIMTimeout: time.Minute, MaxPendingAssociations: 4, MaxPendingPerHost: -1}
	addr := startServer(t, s)
	for range 4 {
		rawDial(t, addr)
	}
	require.Eventually(t, func() bool { return s.pending.Load() == 4 }, 5*time.Second, 10*time.Millisecond, "all four from one address")
	c := rawDial(t, addr)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	require.True(t, err == io.EOF || errors.Is(err, syscall.ECONNRESET), "the fifth is closed: %v", err)
}
