package dimse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/uid"
)

func TestPDURoundTrip(t *testing.T) {
	cases := []PDU{
		&AssociateRQ{ProtocolVersion: 1, CalledAE: "MOLAR", CallingAE: "SENSOR1", ApplicationContext: uid.ApplicationContext,
			PresentationContexts: []PresentationContextRQ{
				{ID: 1, AbstractSyntax: uid.Verification, TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}},
				{ID: 3, AbstractSyntax: uid.DigitalIntraOralXRayForPresentation, TransferSyntaxes: []string{uid.JPEGLosslessSV1, uid.ExplicitVRLittleEndian}},
			},
			UserInfo: UserInfo{MaxPDULength: 16384, ImplementationClassUID: "1.2.3", ImplementationVersionName: "X_1",
				AsyncOps:            &AsyncOps{MaxInvoked: 2, MaxPerformed: 3},
				RoleSelections:      []RoleSelection{{SOPClassUID: uid.CTImage, SCU: false, SCP: true}},
				ExtendedNegotiation: []ExtendedNegotiation{{SOPClassUID: uid.StudyRootQueryRetrieveFind, Info: []byte{1, 0, 1}}},
				UserIdentity:        &UserIdentity{Type: IdentityUsernamePasscode, PositiveResponseRequested: true, Primary: []byte("anna"), Secondary: []byte("pw")},
				Other:               []RawItem{{Type: 0x57, Value: []byte{0, 3, '1', '.', '2'}}},
			}},
		&AssociateAC{ProtocolVersion: 1, CalledAE: "MOLAR", CallingAE: "SENSOR1", ApplicationContext: uid.ApplicationContext,
			PresentationContexts: []PresentationContextAC{{ID: 1, Result: ResultAcceptance, TransferSyntax: uid.ImplicitVRLittleEndian}, {ID: 3, Result: ResultAbstractSyntaxNotSupported}},
			UserInfo:             UserInfo{MaxPDULength: 0, ImplementationClassUID: "1.2.3", UserIdentityResponse: []byte("token"), RoleSelections: []RoleSelection{{SOPClassUID: uid.CTImage, SCU: true, SCP: true}}}},
		&AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonCallingAENotRecognized},
		&PDataTF{PDVs: []PDV{{ContextID: 1, Command: true, Last: true, Data: []byte{1, 2, 3, 4}}, {ContextID: 3, Data: []byte{}}}},
		&ReleaseRQ{},
		&ReleaseRP{},
		&Abort{Source: AbortSourceServiceProvider, Reason: AbortReasonUnexpectedPDU},
	}
	for _, p := range cases {
		b, err := EncodePDU(p)
		require.NoError(t, err)
		got, err := ReadPDU(bytes.NewReader(b), 0)
		require.NoError(t, err, "%T", p)
		if ac, ok := got.(*AssociateAC); ok && ac.PresentationContexts[1].TransferSyntax == "" {
			ac.PresentationContexts[1].TransferSyntax = ""
		}
		assert.Equal(t, p, got, "%T", p)
		// Every truncation is an error, never a panic.
		for i := 0; i < len(b); i++ {
			_, err := ReadPDU(bytes.NewReader(b[:i]), 0)
			assert.Error(t, err)
		}
	}
}

func TestPDUDecodeErrors(t *testing.T) {
	hdr := func(typ byte, n uint32) []byte { return binary.BigEndian.AppendUint32([]byte{typ, 0}, n) }
	cases := map[string][]byte{
		"unknown type":      append(hdr(0x09, 4), 0, 0, 0, 0),
		"huge length":       hdr(TypeAssociateRQ, 0xFFFFFFF0),
		"short RJ":          append(hdr(TypeAssociateRJ, 2), 0, 1),
		"short RQ":          append(hdr(TypeAssociateRQ, 10), make([]byte, 10)...),
		"item overrun":      append(append(hdr(TypeAssociateRQ, 72), make([]byte, 68)...), 0x10, 0, 0xFF, 0xFF),
		"PDV overrun":       append(hdr(TypePDataTF, 8), 0, 0, 0, 100, 1, 3, 0, 0),
		"PDV zero":          append(hdr(TypePDataTF, 6), 0, 0, 0, 0, 1, 3),
		"release wrong len": append(hdr(TypeReleaseRQ, 2), 0, 0),
	}
	for name, b := range cases {
		_, err := ReadPDU(bytes.NewReader(b), 0)
		assert.Error(t, err, name)
	}
}

func TestCommandRoundTrip(t *testing.T) {
	cmds := []*Command{
		{CommandField: CStoreRQ, MessageID: 7, AffectedSOPClassUID: uid.CTImage, AffectedSOPInstanceUID: "1.2.3", Priority: PriorityHigh, HasDataSet: true,
			MoveOriginatorAE: "PACS", MoveOriginatorMessageID: 3},
		{CommandField: CStoreRSP, MessageIDBeingRespondedTo: 7, AffectedSOPClassUID: uid.CTImage, AffectedSOPInstanceUID: "1.2.3", Status: StatusOutOfResources, ErrorComment: "disk full"},
		{CommandField: CMoveRQ, MessageID: 9, AffectedSOPClassUID: uid.StudyRootQueryRetrieveMove, MoveDestination: "DEST", HasDataSet: true},
		{CommandField: CMoveRSP, MessageIDBeingRespondedTo: 9, AffectedSOPClassUID: uid.StudyRootQueryRetrieveMove, Status: StatusPending,
			SubOps: &SubOpCounts{Remaining: 3, Completed: 1, Failed: 2, Warning: 0, HasRemaining: true}},
		{CommandField: CCancelRQ, MessageIDBeingRespondedTo: 9},
		{CommandField: CEchoRQ, MessageID: 1, AffectedSOPClassUID: uid.Verification},
	}
	for _, c := range cmds {
		got, err := DecodeCommand(c.Encode())
		require.NoError(t, err)
		assert.Equal(t, c, got)
	}
	// Group length is right.
	b := cmds[0].Encode()
	assert.Equal(t, uint32(len(b)-12), binary.LittleEndian.Uint32(b[8:]))
	_, err := DecodeCommand([]byte{0, 0, 0, 1, 0xFF, 0xFF, 0, 0})
	assert.ErrorIs(t, err, ErrCommand)
	assert.Equal(t, "0xA700 Refused: out of resources", StatusOutOfResources.String())
	assert.Equal(t, KindWarning, StatusElementsDiscarded.Kind())
	assert.Equal(t, "C-STORE-RSP", CommandName(CStoreRSP))
}

func FuzzPDU(f *testing.F) {
	rq, _ := EncodePDU(&AssociateRQ{CalledAE: "A", CallingAE: "B", PresentationContexts: []PresentationContextRQ{{ID: 1, AbstractSyntax: uid.Verification, TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}}},
		UserInfo: UserInfo{MaxPDULength: 1000, RoleSelections: []RoleSelection{{SOPClassUID: "1.2", SCP: true}}, UserIdentity: &UserIdentity{Type: 1, Primary: []byte("u")}}})
	ac, _ := EncodePDU(&AssociateAC{PresentationContexts: []PresentationContextAC{{ID: 1, TransferSyntax: uid.ImplicitVRLittleEndian}}, UserInfo: UserInfo{UserIdentityResponse: []byte{}}})
	pd, _ := EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 1, Command: true, Last: true, Data: (&Command{CommandField: CEchoRQ, MessageID: 1}).Encode()}}})
	for _, s := range [][]byte{rq, ac, pd, {7, 0, 0, 0, 0, 4, 0, 0, 2, 1}, {5, 0, 0, 0, 0, 4, 0, 0, 0, 0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ReadPDU(bytes.NewReader(data), 64<<10)
		if err != nil {
			return
		}
		b, err := EncodePDU(p)
		if err != nil {
			return
		}
		if _, err := ReadPDU(bytes.NewReader(b), 0); err != nil {
			t.Fatalf("re-read of re-encoded %T failed: %v", p, err)
		}
		if pd, ok := p.(*PDataTF); ok {
			for _, v := range pd.PDVs {
				if v.Command {
					_, _ = DecodeCommand(v.Data)
				}
			}
		}
	})
}

func FuzzCommand(f *testing.F) {
	f.Add((&Command{CommandField: CStoreRQ, MessageID: 1, AffectedSOPClassUID: uid.CTImage, AffectedSOPInstanceUID: "1.2", HasDataSet: true}).Encode())
	f.Add((&Command{CommandField: CMoveRSP, SubOps: &SubOpCounts{HasRemaining: true, Remaining: 1}}).Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			return
		}
		if _, err := DecodeCommand(c.Encode()); err != nil {
			t.Fatalf("re-decode failed: %v", err)
		}
	})
}

// rawDial opens a TCP connection for hand-made PDUs.
func rawDial(t *testing.T, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// expectAbortAndClose reads until EOF and reports whether an A-ABORT came.
func expectAbortAndClose(t *testing.T, c net.Conn) *Abort {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ab *Abort
	for {
		p, err := ReadPDU(c, 0)
		if err != nil {
			require.False(t, isTimeout(err), "server did not close the connection")
			return ab
		}
		if a, ok := p.(*Abort); ok {
			ab = a
		}
	}
}

func echoWorks(t *testing.T, addr string) {
	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{VerificationContext()}})
	st, err := a.Echo(context.Background())
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)
	require.NoError(t, a.Release(context.Background()))
}

func TestARTIMTimeoutSilentPeer(t *testing.T) {
	addr := startServer(t, &Server{ARTIMTimeout: 200 * time.Millisecond})
	c := rawDial(t, addr)
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "server closes after ARTIM")
	assert.Less(t, time.Since(start), 3*time.Second)
	echoWorks(t, addr)
}

func TestGarbageAndTruncatedPDUs(t *testing.T) {
	var mu sync.Mutex
	var reasons []string
	addr := startServer(t, &Server{ARTIMTimeout: 500 * time.Millisecond, Hooks: Hooks{AssociationClosed: func(_ *AssociationInfo, r string, _ AssociationStats) {
		mu.Lock()
		reasons = append(reasons, r)
		mu.Unlock()
	}}})

	// HTTP request instead of DICOM: unrecognized PDU type -> A-ABORT.
	c := rawDial(t, addr)
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	ab := expectAbortAndClose(t, c)
	require.NotNil(t, ab)
	assert.Equal(t, AbortReasonUnrecognizedPDU, ab.Reason)

	// Truncated A-ASSOCIATE-RQ then close: no panic, connection closed.
	c = rawDial(t, addr)
	_, _ = c.Write([]byte{1, 0, 0, 0, 1, 0, 0, 1})
	_ = c.(*net.TCPConn).CloseWrite()
	expectAbortAndClose(t, c)

	// A-ASSOCIATE-RQ with a lying item length -> A-ABORT.
	rq, _ := EncodePDU(&AssociateRQ{CalledAE: "MOLAR", CallingAE: "X", PresentationContexts: []PresentationContextRQ{{ID: 1, AbstractSyntax: uid.Verification, TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}}}})
	bad := append([]byte(nil), rq...)
	bad[6+68+2] = 0xFF // application context item length
	c = rawDial(t, addr)
	_, _ = c.Write(bad)
	ab = expectAbortAndClose(t, c)
	require.NotNil(t, ab)
	assert.Equal(t, AbortReasonInvalidParameter, ab.Reason)

	// Huge A-ASSOCIATE-RQ length: refused before allocating.
	c = rawDial(t, addr)
	_, _ = c.Write([]byte{1, 0, 0x7F, 0xFF, 0xFF, 0xFF})
	ab = expectAbortAndClose(t, c)
	require.NotNil(t, ab)

	// Established association, then a PDV longer than its PDU -> A-ABORT.
	c = rawDial(t, addr)
	_, _ = c.Write(rq)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := ReadPDU(c, 0)
	require.NoError(t, err)
	require.IsType(t, &AssociateAC{}, p)
	_, _ = c.Write([]byte{4, 0, 0, 0, 0, 10, 0, 0, 0, 200, 1, 3, 0, 0, 0, 0})
	ab = expectAbortAndClose(t, c)
	require.NotNil(t, ab)
	assert.Equal(t, AbortReasonInvalidParameter, ab.Reason)

	// Unknown PDU type during data transfer -> A-ABORT unrecognized PDU.
	c = rawDial(t, addr)
	_, _ = c.Write(rq)
	_, err = ReadPDU(c, 0)
	require.NoError(t, err)
	_, _ = c.Write([]byte{0x42, 0, 0, 0, 0, 0})
	ab = expectAbortAndClose(t, c)
	require.NotNil(t, ab)
	assert.Equal(t, AbortReasonUnrecognizedPDU, ab.Reason)

	// PDV on a context that was not accepted.
	c = rawDial(t, addr)
	_, _ = c.Write(rq)
	_, err = ReadPDU(c, 0)
	require.NoError(t, err)
	cmd := (&Command{CommandField: CEchoRQ, MessageID: 1, AffectedSOPClassUID: uid.Verification}).Encode()
	pd, _ := EncodePDU(&PDataTF{PDVs: []PDV{{ContextID: 5, Command: true, Last: true, Data: cmd}}})
	_, _ = c.Write(pd)
	ab = expectAbortAndClose(t, c)
	require.NotNil(t, ab)

	// The server keeps serving.
	echoWorks(t, addr)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range reasons {
			if r == "protocol-error" {
				n++
			}
		}
		return n == 3
	}, 5*time.Second, 10*time.Millisecond)
}

// A PDU that has no place in data transfer (Sta6) is answered with A-ABORT
// carrying the reason PS3.8 AA-8 prescribes.
func TestUnexpectedPDUInDataTransferAborts(t *testing.T) {
	addr := startServer(t, &Server{})
	rq, err := EncodePDU(&AssociateRQ{CalledAE: "MOLAR", CallingAE: "X", PresentationContexts: []PresentationContextRQ{{ID: 1, AbstractSyntax: uid.Verification, TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}}}})
	require.NoError(t, err)
	pdu := func(p PDU) []byte {
		b, err := EncodePDU(p)
		require.NoError(t, err)
		return b
	}
	cases := []struct {
		name   string
		pdu    []byte
		reason byte
	}{
		{"A-RELEASE-RP", pdu(&ReleaseRP{}), AbortReasonUnexpectedPDU},
		{"A-ASSOCIATE-RQ", rq, AbortReasonUnexpectedPDU},
		{"A-ASSOCIATE-AC", pdu(&AssociateAC{}), AbortReasonUnexpectedPDU},
		{"A-ASSOCIATE-RJ", pdu(&AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonNoReason}), AbortReasonUnexpectedPDU},
		{"unknown type", []byte{0x42, 0, 0, 0, 0, 0}, AbortReasonUnrecognizedPDU},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, addr)
			_, _ = c.Write(rq)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			p, err := ReadPDU(c, 0)
			require.NoError(t, err)
			require.IsType(t, &AssociateAC{}, p)
			_, _ = c.Write(tc.pdu)
			ab := expectAbortAndClose(t, c)
			require.NotNil(t, ab)
			assert.Equal(t, &Abort{Source: AbortSourceServiceProvider, Reason: tc.reason}, ab)
		})
	}
	echoWorks(t, addr)
}

func TestAbortAndIdleTimeoutAndDroppedConnection(t *testing.T) {
	reasons := make(chan string, 10)
	storeErr := make(chan error, 10)
	s := &Server{IdleTimeout: 300 * time.Millisecond,
		Store: StoreFunc(func(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error) {
			_, err := io.Copy(io.Discard, data)
			storeErr <- err
			if err != nil {
				return StatusProcessingFailure, err
			}
			return StatusSuccess, nil
		}),
		Hooks: Hooks{AssociationClosed: func(_ *AssociationInfo, r string, _ AssociationStats) { reasons <- r }}}
	addr := startServer(t, s)

	a := dialTest(t, addr, DialOptions{})
	require.NoError(t, a.Abort())
	assert.Equal(t, "peer-aborted", <-reasons)

	a = dialTest(t, addr, DialOptions{})
	assert.Equal(t, "idle-timeout", <-reasons)
	_, err := a.Echo(context.Background())
	assert.Error(t, err, "server aborted the idle association")

	// Connection dropped in the middle of a data set: the handler sees an
	// error, not a clean EOF.
	a = dialTest(t, addr, DialOptions{IdleTimeout: -1})
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(sampleDataset("1.2.3.9", 200_000)[:100_000])
		time.Sleep(50 * time.Millisecond)
		_ = a.c.nc.Close() // drop TCP mid-instance
		pw.CloseWithError(errors.New("gone"))
	}()
	_, err = a.Store(context.Background(), StoreParams{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: "1.2.3.9"}, pr)
	assert.Error(t, err)
	herr := <-storeErr
	require.Error(t, herr)
	assert.ErrorIs(t, herr, ErrClosed)
	assert.Equal(t, "closed", <-reasons)
}

func TestShutdownAbortsLingeringAssociations(t *testing.T) {
	s := &Server{Logger: testLogger(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	a := dialTest(t, ln.Addr().String(), DialOptions{Contexts: []ProposedContext{VerificationContext()}})
	require.Eventually(t, func() bool { return s.ActiveAssociations() == 1 }, 2*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = s.Shutdown(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, <-done, ErrServerClosed)
	_, err = a.Echo(context.Background())
	assert.Error(t, err)
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	assert.Error(t, err, "listener closed")
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	s := &Server{Logger: testLogger(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = s.Serve(ln) }()
	a := dialTest(t, ln.Addr().String(), DialOptions{Contexts: []ProposedContext{VerificationContext()}})
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = a.Echo(context.Background())
		_ = a.Release(context.Background())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
}

// lateListener hands out a connection only when told, whether or not it
// was closed meanwhile: the connection accepted just as Shutdown closes the
// listener.
type lateListener struct {
	conns chan net.Conn
}

func (l *lateListener) Accept() (net.Conn, error) {
	if c, ok := <-l.conns; ok {
		return c, nil
	}
	return nil, net.ErrClosed
}

func (l *lateListener) Close() error   { return nil }
func (l *lateListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// A connection accepted while Shutdown runs is closed, not served after
// Shutdown has returned.
func TestShutdownClosesConnectionAcceptedMeanwhile(t *testing.T) {
	s := &Server{Logger: testLogger(t)}
	ln := &lateListener{conns: make(chan net.Conn)}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.listeners) == 1
	}, 2*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))

	client, server := net.Pipe()
	defer client.Close()
	ln.conns <- server
	close(ln.conns)
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := client.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "connection closed, not awaiting an A-ASSOCIATE-RQ")
	assert.ErrorIs(t, <-done, ErrServerClosed)
}

// fakeAcceptor accepts one association, then on A-RELEASE-RQ sends its own
// A-RELEASE-RQ (a release collision) and completes it as the acceptor.
func TestReleaseCollision(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	result := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			result <- err
			return
		}
		defer c.Close()
		p, err := ReadPDU(c, 0)
		if err != nil {
			result <- err
			return
		}
		rq := p.(*AssociateRQ)
		ac := &AssociateAC{CalledAE: rq.CalledAE, CallingAE: rq.CallingAE, UserInfo: UserInfo{MaxPDULength: 16384}}
		for _, pc := range rq.PresentationContexts {
			ac.PresentationContexts = append(ac.PresentationContexts, PresentationContextAC{ID: pc.ID, TransferSyntax: pc.TransferSyntaxes[0]})
		}
		b, _ := EncodePDU(ac)
		_, _ = c.Write(b)
		if p, err = ReadPDU(c, 0); err != nil {
			result <- err
			return
		}
		if _, ok := p.(*ReleaseRQ); !ok {
			result <- errors.New("expected A-RELEASE-RQ")
			return
		}
		// Collision: send our own RQ before answering.
		b, _ = EncodePDU(&ReleaseRQ{})
		_, _ = c.Write(b)
		// Acceptor side (Sta10): wait for the requestor's RP, then send ours.
		if p, err = ReadPDU(c, 0); err != nil {
			result <- err
			return
		}
		if _, ok := p.(*ReleaseRP); !ok {
			result <- errors.New("expected A-RELEASE-RP from the requestor")
			return
		}
		b, _ = EncodePDU(&ReleaseRP{})
		_, _ = c.Write(b)
		result <- nil
	}()
	a := dialTest(t, ln.Addr().String(), DialOptions{Contexts: []ProposedContext{VerificationContext()}})
	require.NoError(t, a.Release(context.Background()))
	require.NoError(t, <-result)
	assert.Equal(t, Sta1Idle, a.State())
}

// Memory stays flat while a large instance streams through (no buffering).
func TestStreamingLargeInstanceMemory(t *testing.T) {
	const size = 256 << 20
	var got int64
	addr := startServer(t, &Server{Store: StoreFunc(func(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error) {
		n, err := io.Copy(io.Discard, data)
		got = n
		return StatusSuccess, err
	})})
	a := dialTest(t, addr, DialOptions{MaxPDULength: 1 << 20})
	defer a.Close()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtimeMemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				if h := ms.heapInUse(); h > peak {
					peak = h
				}
			}
		}
	}()
	base := (&runtimeMemStats{}).heapInUse()
	st, err := a.Store(context.Background(), StoreParams{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: "1.2.big"},
		io.LimitReader(zeroReader{}, size))
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)
	assert.Equal(t, int64(size), got)
	growth := int64(peak) - int64(base)
	t.Logf("heap in use: base %d MiB, peak %d MiB", base>>20, peak>>20)
	assert.Less(t, growth, int64(32<<20), "heap grew by %d MiB while streaming %d MiB", growth>>20, size>>20)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestMaxAssociationsAndMismatchedSOPClass(t *testing.T) {
	store := &memStore{}
	addr := startServer(t, &Server{MaxAssociations: 1, Store: store})
	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{VerificationContext(),
		{AbstractSyntax: uid.DigitalIntraOralXRayForPresentation, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}}}})
	defer a.Close()
	_, err := Dial(context.Background(), addr, DialOptions{CallingAE: "B", CalledAE: "MOLAR", Contexts: []ProposedContext{VerificationContext()}})
	var rj *RejectedError
	require.ErrorAs(t, err, &rj)
	assert.Equal(t, RejectTransient, rj.Result)
	assert.Equal(t, RejectReasonLocalLimitExceeded, rj.Reason)

	// A C-STORE whose SOP class differs from its presentation context: refused,
	// association still usable, nothing stored.
	pc, err := a.FindContext(uid.DigitalIntraOralXRayForPresentation, "")
	require.NoError(t, err)
	a.c.contexts[pc.ID].AbstractSyntax = uid.CTImage // lie locally to send a CT store on the IO context
	st, err := a.Store(context.Background(), StoreParams{SOPClassUID: uid.CTImage, SOPInstanceUID: "1.2.3"}, bytes.NewReader(sampleDataset("1.2.3", 10_000)))
	require.NoError(t, err)
	assert.Equal(t, StatusSOPClassNotSupported, st)
	assert.Equal(t, 0, store.len())
	a.c.contexts[pc.ID].AbstractSyntax = uid.DigitalIntraOralXRayForPresentation
	// Missing SOP instance UID.
	st, err = a.Store(context.Background(), StoreParams{SOPClassUID: uid.DigitalIntraOralXRayForPresentation}, bytes.NewReader(sampleDataset("", 100)))
	require.NoError(t, err)
	assert.Equal(t, StatusMissingAttribute, st)
	st, err = a.Echo(context.Background())
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)
}

func TestStoreNonDICOMDataSet(t *testing.T) {
	rec := &recordingStore{}
	addr := startServer(t, &Server{Store: rec})
	a := dialTest(t, addr, DialOptions{})
	defer a.Close()
	garbage := bytes.Repeat([]byte("this is not DICOM "), 1000)
	st, err := a.Store(context.Background(), StoreParams{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: "1.2.3"}, bytes.NewReader(garbage))
	require.NoError(t, err)
	assert.Equal(t, StatusCannotUnderstand, st)
	rec.mu.Lock()
	assert.Empty(t, rec.items)
	rec.mu.Unlock()
	st, err = a.Echo(context.Background())
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)
}
