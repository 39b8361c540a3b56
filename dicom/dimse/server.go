package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// Implementation identity sent in negotiation.
const (
	ImplementationClassUID    = "2.25.271722841182218180260196051945293747180"
	ImplementationVersionName = "MOLAR_1"
)

// Defaults for Server and DialOptions.
const (
	DefaultMaxPDULength  = 256 << 10
	DefaultARTIMTimeout  = 30 * time.Second
	DefaultIdleTimeout   = 5 * time.Minute
	DefaultWriteTimeout  = 2 * time.Minute
	DefaultMaxIdentifier = 1 << 20
	// MaxCommitDataSet bounds a storage commitment request's data set.
	MaxCommitDataSet      = 4 << 20
	defaultMaxAssociation = 256
	defaultMaxPending     = 32
	// asyncOpsWindow is the asynchronous operations window we grant (PS3.7
	// D.3.3.3): one operation invoked and performed at a time, as when the
	// window is not negotiated.
	asyncOpsWindow = 1
)

// Server is a DICOM SCP. Configure the fields, then call Serve. Zero values
// give: any called AE accepted, every association accepted, echo always
// answered; storage, query and retrieve only offered when their handler is set.
type Server struct {
	// AETitle is this SCP's AE title; when set, requests calling another
	// title are rejected (called AE title not recognized).
	AETitle string
	// Policy decides who may associate and what they may do (nil: accept all).
	Policy Policy

	Echo  EchoHandler     // nil: success
	Store StoreHandler    // nil: no storage
	Find  FindHandler     // nil: no C-FIND
	Move  MoveHandler     // nil: no C-MOVE
	Get   RetrieveHandler // nil: no C-GET
	// Commit takes Storage Commitment Push Model requests (N-ACTION); nil:
	// the SOP class is not offered.
	Commit CommitHandler
	// Transcode converts instances for sub-operations when the receiver does
	// not accept the stored transfer syntax (nil: such sub-operations fail).
	Transcode Transcoder

	// StorageSOPClasses are the accepted storage abstract syntaxes
	// (nil: uid.StorageSOPClassUIDs()).
	StorageSOPClasses []string
	// StorageTransferSyntaxes are accepted for storage, in preference order
	// when several are proposed (nil: uid.DefaultTransferSyntaxes()).
	StorageTransferSyntaxes []string
	// FindSOPClasses, MoveSOPClasses, GetSOPClasses (nil: patient root and
	// study root; FIND also modality worklist).
	FindSOPClasses, MoveSOPClasses, GetSOPClasses []string
	// QueryTransferSyntaxes for verification and query/retrieve contexts
	// (nil: explicit LE, implicit LE, explicit BE).
	QueryTransferSyntaxes []string

	// MaxPDULength is the largest PDU we accept (advertised to the peer).
	MaxPDULength uint32
	// MaxAssociations limits concurrent associations (0: 256); beyond it,
	// requests are rejected transiently (local limit exceeded).
	MaxAssociations int
	// MaxPendingAssociations bounds the connections not yet associated
	// (from accept until the A-ASSOCIATE-AC is sent, or until closed after a
	// rejection); connections beyond it are closed at once, so that peers
	// that connect and stay silent or slow cannot pin goroutines and memory
	// (0: 32). Each costs at most a few KiB plus the request received so far.
	MaxPendingAssociations int
	// MaxPendingPerHost bounds one peer address's share of them (0: a
	// quarter, at least 2; negative: no per-host bound, for peers that
	// reach us through NAT or a TCP load balancer and share one address).
	MaxPendingPerHost int
	// ARTIMTimeout bounds the wait for the A-ASSOCIATE-RQ and for the peer
	// to close after release or rejection (0: 30 s).
	ARTIMTimeout time.Duration
	// IdleTimeout aborts associations that send nothing for this long, also
	// in the middle of a data set (0: 5 min; negative: none). It is
	// suspended while a C-FIND, C-MOVE or C-GET runs (the requestor awaits
	// its responses); a C-GET requestor must answer each sub-operation
	// within it.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the peer (0: 2 min).
	WriteTimeout time.Duration
	// MaxIdentifierLength caps C-FIND/MOVE/GET identifiers (0: 1 MiB).
	MaxIdentifierLength int
	// SubOpAETitle is the calling AE for C-MOVE sub-operations (default AETitle).
	SubOpAETitle string

	Logger *slog.Logger
	Hooks  Hooks

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	assocs    map[*serverAssoc]struct{}
	active    atomic.Int32 // established associations
	conns     atomic.Int32 // connections being served (incl. negotiating)
	pending   atomic.Int32 // connections admitted and not yet associated
	pendingMu sync.Mutex
	perHost   map[string]int // pending connections by peer address
	shutdown  atomic.Bool    // set under mu
	aborting  bool           // Shutdown's ctx ended: abort what is left (under mu)
	wg        sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("dimse: server closed")

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func durOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	if d < 0 {
		return 0
	}
	return d
}

// Serve accepts connections on ln until Shutdown (then ErrServerClosed) or a
// listener error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("dimse: accept: %w", err)
		}
		delay = 0
		if !s.track() {
			// Accepted as Shutdown closed the listener.
			_ = nc.Close()
			return ErrServerClosed
		}
		release, ok := s.admit(PeerHost(nc.RemoteAddr()))
		if !ok {
			// Closed without a word: answering A-ASSOCIATE-RJ would mean
			// reading the request, which is what this bound saves.
			s.logger().Warn("too many connections negotiating, closing", "peer", nc.RemoteAddr().String())
			_ = nc.Close()
			s.wg.Done()
			continue
		}
		go func() {
			defer s.wg.Done()
			s.serveConn(nc, release)
		}()
	}
}

// track counts a new connection in the WaitGroup Shutdown waits on, unless
// Shutdown has begun: under mu, so that no Add races with its Wait.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return false
	}
	s.wg.Add(1)
	return true
}

// admit takes a pending slot for a new connection from host, if one is
// free: MaxPendingAssociations in all, and MaxPendingPerHost per peer
// address, so that one host's silent connections cannot lock the others
// out. release gives the slot back.
func (s *Server) admit(host string) (release func(), ok bool) {
	limit := s.MaxPendingAssociations
	if limit <= 0 {
		limit = defaultMaxPending
	}
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if s.perHost == nil {
		s.perHost = map[string]int{}
	}
	perHost := s.MaxPendingPerHost
	if perHost == 0 {
		perHost = max(2, limit/4)
	}
	if int(s.pending.Load()) >= limit || (perHost > 0 && s.perHost[host] >= perHost) {
		return nil, false
	}
	s.pending.Add(1)
	s.perHost[host]++
	return sync.OnceFunc(func() {
		s.pendingMu.Lock()
		defer s.pendingMu.Unlock()
		s.pending.Add(-1)
		if s.perHost[host]--; s.perHost[host] <= 0 {
			delete(s.perHost, host)
		}
	}), true
}

// PeerHost is the address part of a peer's address (its IP for TCP).
func PeerHost(a net.Addr) string {
	if a == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// ListenAndServe listens on addr (TCP) and serves.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dimse: listen: %w", err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting, lets in-flight associations finish until ctx is
// done, then aborts those left. It returns ctx.Err() if it had to abort.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown.Store(true) // under mu: see track
	for ln := range s.listeners {
		_ = ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.aborting = true
	for a := range s.assocs {
		a.abortForShutdown()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

func ptr[T any](v T) *T { return &v }

func (a *serverAssoc) abortForShutdown() {
	a.closeReason.CompareAndSwap(nil, ptr("shutdown"))
	a.c.abort(AbortSourceServiceProvider, AbortReasonNotSpecified)
}

// ActiveAssociations returns the number of associations being served.
func (s *Server) ActiveAssociations() int { return int(s.active.Load()) }

// serverAssoc is one accepted association.
type serverAssoc struct {
	s      *Server
	c      *conn
	info   *AssociationInfo
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	ops     map[uint16]*runningOp
	waiters map[uint16]chan *Command // C-GET sub-operation responses
	opsWG   sync.WaitGroup
	msgID   atomic.Uint32

	closeReason atomic.Pointer[string]
	stats       AssociationStats
	statsMu     sync.Mutex
}

type runningOp struct {
	cancel   context.CancelFunc
	canceled atomic.Bool
	// finish removes the operation from those in progress; it runs before
	// the final response is sent (the requestor may send its next request
	// as soon as it has it) and is idempotent.
	finish func()
}

// serveConn serves one connection; it holds one of the pending slots taken
// by admit until the association is established or the connection ends.
func (s *Server) serveConn(nc net.Conn, negotiated func()) {
	s.conns.Add(1)
	defer s.conns.Add(-1)
	defer negotiated()
	c := newConn(nc, s.logger(), false)
	c.idle = durOr(s.IdleTimeout, DefaultIdleTimeout)
	c.writeTimeout = durOr(s.WriteTimeout, DefaultWriteTimeout)
	c.localMaxPDU = s.MaxPDULength
	if c.localMaxPDU == 0 {
		c.localMaxPDU = DefaultMaxPDULength
	}
	log := c.log.With("peer", nc.RemoteAddr().String())
	defer c.close()
	c.setState(Sta2AwaitingAssociateRQ)

	artim := durOr(s.ARTIMTimeout, DefaultARTIMTimeout)
	typ, length, err := c.readPDUHeader(artim)
	if err != nil {
		if isTimeout(err) {
			log.Info("ARTIM timer expired before A-ASSOCIATE-RQ")
		} else {
			log.Debug("connection closed before A-ASSOCIATE-RQ", "err", err)
		}
		return
	}
	if typ != TypeAssociateRQ {
		log.Warn("first PDU is not A-ASSOCIATE-RQ", "type", typ)
		if typ >= TypeAssociateRQ && typ <= TypeAbort {
			c.abort(AbortSourceServiceProvider, AbortReasonUnexpectedPDU)
		} else {
			c.abort(AbortSourceServiceProvider, AbortReasonUnrecognizedPDU)
		}
		return
	}
	p, err := c.readPDUBody(typ, length)
	if err != nil {
		log.Warn("bad A-ASSOCIATE-RQ", "err", err)
		c.abortFor(err)
		return
	}
	rq := p.(*AssociateRQ)
	log = log.With("calling_ae", rq.CallingAE, "called_ae", rq.CalledAE)
	c.log = log

	ac, rj, info := s.negotiate(c, rq)
	if rj != nil {
		log.Info("association rejected", "result", rj.Result, "source", rj.Source, "reason", rj.Reason, "why", rejectReasonText(rj.Source, rj.Reason))
		if s.Hooks.AssociationRejected != nil {
			s.Hooks.AssociationRejected(requestOf(c, rq), rj)
		}
		if err := c.writePDU(rj); err == nil {
			c.setState(Sta13AwaitingClose)
			c.awaitClose(artim)
		}
		return
	}
	if err := c.writePDU(ac); err != nil {
		log.Warn("sending A-ASSOCIATE-AC failed", "err", err)
		return
	}
	c.setState(Sta6Established)
	// The ARTIM deadline no longer applies; the idle timeout (if any) is
	// armed before each PDU.
	_ = nc.SetReadDeadline(time.Time{})
	c.growReadBuffer()
	negotiated()

	ctx, cancel := context.WithCancel(context.Background())
	a := &serverAssoc{s: s, c: c, info: info, log: log, ctx: ctx, cancel: cancel,
		ops: map[uint16]*runningOp{}, waiters: map[uint16]chan *Command{}}
	s.mu.Lock()
	if s.assocs == nil {
		s.assocs = map[*serverAssoc]struct{}{}
	}
	s.assocs[a] = struct{}{}
	if s.aborting {
		// Established as Shutdown gave up waiting: it would not see us.
		a.abortForShutdown()
	}
	s.mu.Unlock()
	s.active.Add(1)
	defer func() {
		s.active.Add(-1)
		s.mu.Lock()
		delete(s.assocs, a)
		s.mu.Unlock()
	}()
	accepted := 0
	for _, pc := range c.contexts {
		if pc.Accepted() {
			accepted++
		}
	}
	log.Info("association accepted", "contexts", len(rq.PresentationContexts), "accepted", accepted, "peer_max_pdu", c.peerMaxPDU,
		"impl", rq.UserInfo.ImplementationVersionName, "user_identity", rq.UserInfo.UserIdentity.Kind())
	if s.Hooks.AssociationOpened != nil {
		s.Hooks.AssociationOpened(info)
	}
	reason := a.loop()
	if r := a.closeReason.Load(); r != nil {
		reason = *r
	}
	cancel()
	a.opsWG.Wait()
	a.stats.BytesIn, a.stats.BytesOut = c.bytesIn.Load(), c.bytesOut.Load()
	a.stats.Duration = time.Since(info.Opened)
	log.Info("association closed", "reason", reason, "requests", a.stats.Requests, "stores", a.stats.Stores,
		"store_failures", a.stats.StoreFailures, "bytes_in", a.stats.BytesIn, "duration", a.stats.Duration.Round(time.Millisecond))
	if s.Hooks.AssociationClosed != nil {
		s.Hooks.AssociationClosed(info, reason, a.stats)
	}
}

func requestOf(c *conn, rq *AssociateRQ) *AssociationRequest {
	r := &AssociationRequest{ID: c.id, CallingAE: rq.CallingAE, CalledAE: rq.CalledAE, RemoteAddr: c.nc.RemoteAddr(),
		UserIdentity: rq.UserInfo.UserIdentity, ImplementationClassUID: rq.UserInfo.ImplementationClassUID,
		ImplementationVersionName: rq.UserInfo.ImplementationVersionName}
	for _, pc := range rq.PresentationContexts {
		r.Proposed = append(r.Proposed, pc.AbstractSyntax)
	}
	return r
}

// awaitClose waits (ARTIM) for the peer to close the transport.
func (c *conn) awaitClose(artim time.Duration) {
	_ = c.nc.SetReadDeadline(time.Now().Add(artim))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.br, 1<<20))
}

func (s *Server) serviceOf(abstract string) (Services, []string) {
	qts := s.QueryTransferSyntaxes
	if qts == nil {
		qts = []string{uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian}
	}
	if abstract == uid.Verification {
		return ServiceEcho, qts
	}
	if abstract == uid.StorageCommitmentPushModel {
		if s.Commit == nil {
			return 0, nil
		}
		return ServiceCommit, qts
	}
	in := func(list, def []string) bool {
		if list == nil {
			list = def
		}
		return slices.Contains(list, abstract)
	}
	if s.Find != nil && in(s.FindSOPClasses, []string{uid.PatientRootQueryRetrieveFind, uid.StudyRootQueryRetrieveFind, uid.ModalityWorklistFind}) {
		return ServiceFind, qts
	}
	if s.Move != nil && in(s.MoveSOPClasses, []string{uid.PatientRootQueryRetrieveMove, uid.StudyRootQueryRetrieveMove}) {
		return ServiceMove, qts
	}
	if s.Get != nil && in(s.GetSOPClasses, []string{uid.PatientRootQueryRetrieveGet, uid.StudyRootQueryRetrieveGet}) {
		return ServiceGet, qts
	}
	classes := s.StorageSOPClasses
	if classes == nil {
		classes = uid.StorageSOPClassUIDs()
	}
	if slices.Contains(classes, abstract) {
		ts := s.StorageTransferSyntaxes
		if ts == nil {
			ts = uid.DefaultTransferSyntaxes()
		}
		return ServiceStore, ts
	}
	return 0, nil
}

// negotiate builds the A-ASSOCIATE-AC or -RJ for a request.
func (s *Server) negotiate(c *conn, rq *AssociateRQ) (*AssociateAC, *AssociateRJ, *AssociationInfo) {
	if rq.ProtocolVersion&1 == 0 {
		return nil, &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceProviderACSE, Reason: RejectReasonProtocolVersion}, nil
	}
	if rq.ApplicationContext != uid.ApplicationContext {
		return nil, &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonAppContextNotSupported}, nil
	}
	if s.AETitle != "" && rq.CalledAE != s.AETitle {
		return nil, &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonCalledAENotRecognized}, nil
	}
	if m := rq.UserInfo.MaxPDULength; m != 0 && m < MinMaxPDULength {
		// We could not send even a command in PDUs that small without
		// exceeding the peer's maximum (0 means unlimited).
		c.log.Info("peer maximum PDU length too small", "max_pdu", m, "min", MinMaxPDULength)
		return nil, &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonNoReason}, nil
	}
	maxA := s.MaxAssociations
	if maxA == 0 {
		maxA = defaultMaxAssociation
	}
	if int(s.conns.Load()) > maxA || s.shutdown.Load() {
		return nil, &AssociateRJ{Result: RejectTransient, Source: RejectSourceServiceProviderPresent, Reason: RejectReasonLocalLimitExceeded}, nil
	}
	dec := Decision{Services: ServicesAll}
	if s.Policy != nil {
		ctx, cancel := context.WithTimeout(context.Background(), durOr(s.ARTIMTimeout, DefaultARTIMTimeout))
		dec = s.Policy(ctx, requestOf(c, rq))
		cancel()
		// The policy has seen the credentials: the association keeps no
		// passcode or token for the rest of its life.
		if id := rq.UserInfo.UserIdentity; id != nil {
			id.Secondary = nil
			if id.Type != IdentityUsername && id.Type != IdentityUsernamePasscode {
				id.Primary = nil
			}
		}
		if dec.Reject != nil {
			return nil, dec.Reject, nil
		}
		if dec.Services == 0 {
			dec.Services = ServicesAll
		}
	}
	ui := rq.UserInfo
	c.peerMaxPDU = ui.MaxPDULength
	ac := &AssociateAC{ProtocolVersion: 1, CalledAE: rq.CalledAE, CallingAE: rq.CallingAE, ApplicationContext: uid.ApplicationContext,
		UserInfo: UserInfo{MaxPDULength: c.localMaxPDU, ImplementationClassUID: ImplementationClassUID, ImplementationVersionName: ImplementationVersionName}}
	// Role selection: accept what is proposed for storage classes.
	roles := map[string]RoleSelection{}
	for _, rs := range ui.RoleSelections {
		if svc, _ := s.serviceOf(rs.SOPClassUID); svc == ServiceStore {
			roles[rs.SOPClassUID] = rs
			ac.UserInfo.RoleSelections = append(ac.UserInfo.RoleSelections, rs)
		}
	}
	if ui.AsyncOps != nil {
		ac.UserInfo.AsyncOps = &AsyncOps{MaxInvoked: asyncOpsWindow, MaxPerformed: asyncOpsWindow}
	}
	if id := ui.UserIdentity; id != nil && id.PositiveResponseRequested && dec.UserIdentityVerified {
		switch resp := dec.UserIdentityResponse; {
		case id.Type == IdentityUsername || id.Type == IdentityUsernamePasscode:
			if resp == nil {
				resp = []byte{}
			}
			ac.UserInfo.UserIdentityResponse = resp
		case resp != nil:
			ac.UserInfo.UserIdentityResponse = resp
		}
	}
	c.contexts = map[byte]*PresentationContext{}
	for _, pc := range rq.PresentationContexts {
		res := PresentationContext{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, RequestorSCU: true}
		svc, syntaxes := s.serviceOf(pc.AbstractSyntax)
		res.service = svc
		if rs, ok := roles[pc.AbstractSyntax]; ok {
			res.RequestorSCU, res.RequestorSCP = rs.SCU, rs.SCP
		}
		switch {
		case pc.ID%2 == 0:
			res.Result = ResultProviderRejection // context ids are odd (PS3.8 9.3.2.2)
		case svc == 0:
			res.Result = ResultAbstractSyntaxNotSupported
		case dec.Services&svc == 0 && !(svc == ServiceStore && res.RequestorSCP && dec.Services&ServiceGet != 0):
			res.Result = ResultUserRejection
		case svc == ServiceStore && s.Store == nil && !res.RequestorSCP:
			res.Result = ResultAbstractSyntaxNotSupported
		default:
			res.Result = ResultTransferSyntaxNotSupported
			// First proposed syntax we support (the requestor's order).
			for _, ts := range pc.TransferSyntaxes {
				if slices.Contains(syntaxes, ts) {
					res.Result, res.TransferSyntax = ResultAcceptance, ts
					break
				}
			}
		}
		if _, dup := c.contexts[pc.ID]; dup {
			continue
		}
		c.contexts[pc.ID] = &res
		ac.PresentationContexts = append(ac.PresentationContexts, PresentationContextAC{ID: pc.ID, Result: res.Result, TransferSyntax: res.TransferSyntax})
	}
	info := &AssociationInfo{ID: c.id, CallingAE: rq.CallingAE, CalledAE: rq.CalledAE, RemoteAddr: c.nc.RemoteAddr(),
		UserIdentity: ui.UserIdentity, ImplementationClassUID: ui.ImplementationClassUID, ImplementationVersionName: ui.ImplementationVersionName,
		PeerMaxPDULength: ui.MaxPDULength, Services: dec.Services, Value: dec.Value, Opened: time.Now()}
	return ac, nil, info
}

// loop reads and dispatches messages until the association ends; it returns
// the close reason.
func (a *serverAssoc) loop() string {
	c := a.c
	for {
		msg, err := c.readMessage()
		if err != nil {
			return a.endOnError(err)
		}
		a.statsMu.Lock()
		if !msg.cmd.IsResponse() {
			a.stats.Requests++
		}
		a.statsMu.Unlock()
		if err := a.dispatch(msg); err != nil {
			return a.endOnError(err)
		}
	}
}

func (a *serverAssoc) endOnError(err error) string {
	c := a.c
	var ae *AbortError
	var pe *protocolError
	switch {
	case errors.Is(err, errPeerReleaseRQ):
		// Finish (cancel) running operations, then confirm.
		a.cancelAll()
		a.opsWG.Wait()
		c.setState(Sta8AwaitingLocalReleaseRP)
		if err := c.writePDU(&ReleaseRP{}); err != nil {
			return "closed"
		}
		c.setState(Sta13AwaitingClose)
		c.awaitClose(durOr(a.s.ARTIMTimeout, DefaultARTIMTimeout))
		return "released"
	case errors.As(err, &ae):
		a.log.Info("association aborted by peer", "source", ae.Source, "reason", ae.Reason)
		a.cancelAll()
		return "peer-aborted"
	case errors.As(err, &pe):
		a.log.Warn("protocol error, aborting", "err", err)
		a.cancelAll()
		c.abortFor(err)
		return "protocol-error"
	case isTimeout(err):
		if r := a.closeReason.Load(); r != nil {
			return *r
		}
		a.log.Info("idle timeout, aborting")
		a.cancelAll()
		c.abort(AbortSourceServiceProvider, AbortReasonNotSpecified)
		return "idle-timeout"
	case errors.Is(err, ErrClosed):
		a.cancelAll()
		if r := a.closeReason.Load(); r != nil {
			return *r
		}
		a.log.Info("connection closed without release (A-P-ABORT)")
		return "closed"
	default:
		a.log.Warn("association failed", "err", err)
		a.cancelAll()
		c.abort(AbortSourceServiceProvider, AbortReasonNotSpecified)
		return "aborted"
	}
}

func (a *serverAssoc) cancelAll() {
	a.mu.Lock()
	for _, op := range a.ops {
		op.cancel()
	}
	a.mu.Unlock()
	a.cancel()
}

// respond sends a response command without data set.
func (a *serverAssoc) respond(pc *PresentationContext, rsp *Command) error {
	return a.c.sendMessage(pc.ID, rsp, nil)
}

func statusOf(status Status, err error) (Status, string) {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status, se.Comment
	}
	if err != nil && (status.Kind() == KindSuccess || status.Kind() == KindPending) {
		return StatusProcessingFailure, ""
	}
	return status, ""
}

func (a *serverAssoc) dispatch(m *message) error {
	cmd, pc := m.cmd, m.pc
	if cmd.IsResponse() {
		a.mu.Lock()
		ch := a.waiters[cmd.MessageIDBeingRespondedTo]
		a.mu.Unlock()
		if ch == nil {
			a.log.Warn("response to unknown message", "command", cmd.Name(), "id", cmd.MessageIDBeingRespondedTo)
			return nil
		}
		select {
		case ch <- cmd:
		default:
			a.log.Warn("duplicate response ignored", "command", cmd.Name(), "id", cmd.MessageIDBeingRespondedTo)
		}
		return nil
	}
	if cmd.CommandField == CCancelRQ {
		a.mu.Lock()
		op := a.ops[cmd.MessageIDBeingRespondedTo]
		a.mu.Unlock()
		if op != nil {
			op.canceled.Store(true)
			op.cancel()
		}
		return nil
	}
	svc := pc.service
	rsp := &Command{CommandField: cmd.CommandField | 0x8000, MessageIDBeingRespondedTo: cmd.MessageID,
		AffectedSOPClassUID: cmd.AffectedSOPClassUID, AffectedSOPInstanceUID: cmd.AffectedSOPInstanceUID}
	want := serviceFor(cmd.CommandField)
	if (want == 0 || svc != want) && m.data != nil {
		// Read the data set before answering.
		if err := m.data.drain(); err != nil {
			return err
		}
	}
	if want == 0 {
		a.log.Info("unsupported DIMSE operation", "command", cmd.Name())
		rsp.Status = StatusUnrecognizedOperation
		return a.respond(pc, rsp)
	}
	if svc != want || (cmd.AffectedSOPClassUID != "" && cmd.AffectedSOPClassUID != pc.AbstractSyntax) ||
		(cmd.RequestedSOPClassUID != "" && cmd.RequestedSOPClassUID != pc.AbstractSyntax) {
		if m.data != nil {
			if err := m.data.drain(); err != nil {
				return err
			}
		}
		a.log.Info("SOP class does not match presentation context", "command", cmd.Name(), "context", pc.ID)
		rsp.Status, rsp.ErrorComment = StatusSOPClassNotSupported, "SOP class does not match presentation context"
		return a.respond(pc, rsp)
	}
	switch cmd.CommandField {
	case CEchoRQ:
		start := time.Now()
		rsp.Status = StatusSuccess
		if a.s.Echo != nil {
			rsp.Status = a.s.Echo.Echo(a.ctx, a.info)
		}
		a.hook("C-ECHO", rsp.Status, start, 0)
		return a.respond(pc, rsp)
	case CStoreRQ:
		return a.handleStore(m, rsp)
	case NActionRQ:
		return a.handleCommit(m, rsp)
	default:
		return a.startQuery(m, rsp)
	}
}

// serviceFor is the service a request command belongs to (0: none Molar
// performs as SCP).
func serviceFor(commandField uint16) Services {
	switch commandField {
	case CEchoRQ:
		return ServiceEcho
	case CStoreRQ:
		return ServiceStore
	case CFindRQ:
		return ServiceFind
	case CMoveRQ:
		return ServiceMove
	case CGetRQ:
		return ServiceGet
	case NActionRQ:
		return ServiceCommit
	}
	return 0
}

func (a *serverAssoc) hook(op string, st Status, start time.Time, n int64) {
	if a.s.Hooks.DIMSE != nil {
		a.s.Hooks.DIMSE(a.info, op, st, time.Since(start), n)
	}
}

func (a *serverAssoc) handleStore(m *message, rsp *Command) error {
	cmd, pc := m.cmd, m.pc
	start := time.Now()
	if m.data == nil {
		rsp.Status, rsp.ErrorComment = StatusCannotUnderstand, "C-STORE without data set"
		return a.respond(pc, rsp)
	}
	if a.s.Store == nil || a.info.Services&ServiceStore == 0 {
		if err := m.data.drain(); err != nil {
			return err
		}
		rsp.Status = StatusSOPClassNotSupported
		return a.respond(pc, rsp)
	}
	req := &StoreRequest{Assoc: a.info, MessageID: cmd.MessageID, Priority: cmd.Priority, SOPClassUID: cmd.AffectedSOPClassUID,
		SOPInstanceUID: cmd.AffectedSOPInstanceUID, TransferSyntax: pc.TransferSyntax,
		MoveOriginatorAE: cmd.MoveOriginatorAE, MoveOriginatorMessageID: cmd.MoveOriginatorMessageID}
	var status Status
	var herr error
	if req.SOPInstanceUID == "" {
		status, herr = StatusMissingAttribute, Fail(StatusMissingAttribute, "no Affected SOP Instance UID", nil)
	} else {
		status, herr = a.callStore(req, m.data)
	}
	// The data set must be read to its end before answering.
	if err := m.data.drain(); err != nil {
		a.log.Info("C-STORE data set incomplete", "err", err)
		a.hook("C-STORE", StatusProcessingFailure, start, m.data.bytesRead())
		return err
	}
	rsp.Status, rsp.ErrorComment = statusOf(status, herr)
	a.statsMu.Lock()
	a.stats.Stores++
	if rsp.Status.IsFailure() {
		a.stats.StoreFailures++
	}
	a.statsMu.Unlock()
	if herr != nil {
		a.log.Warn("C-STORE failed", "status", rsp.Status.String(), "sop_class", req.SOPClassUID, "err", herr)
	} else {
		a.log.Debug("C-STORE", "status", rsp.Status.String(), "sop_class", req.SOPClassUID, "bytes", m.data.bytesRead())
	}
	a.hook("C-STORE", rsp.Status, start, m.data.bytesRead())
	return a.respond(pc, rsp)
}

func (a *serverAssoc) callStore(req *StoreRequest, data io.Reader) (st Status, err error) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("store handler panicked", "panic", p)
			st, err = StatusProcessingFailure, fmt.Errorf("dimse: store handler panic: %v", p)
		}
	}()
	return a.s.Store.Store(a.ctx, req, data)
}

// startQuery reads the identifier and runs C-FIND/MOVE/GET in a goroutine,
// so that the loop can receive C-CANCEL and sub-operation responses.
func (a *serverAssoc) startQuery(m *message, rsp *Command) error {
	cmd, pc := m.cmd, m.pc
	if m.data == nil {
		rsp.Status, rsp.ErrorComment = StatusCannotUnderstand, "request without identifier"
		return a.respond(pc, rsp)
	}
	limit := a.s.MaxIdentifierLength
	if limit == 0 {
		limit = DefaultMaxIdentifier
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(m.data, int64(limit)+1))
	if err != nil {
		return err
	}
	if n > int64(limit) {
		if err := m.data.drain(); err != nil {
			return err
		}
		rsp.Status, rsp.ErrorComment = StatusOutOfResources, "identifier too large"
		return a.respond(pc, rsp)
	}
	req := &QueryRequest{Assoc: a.info, Command: cmd.CommandField, MessageID: cmd.MessageID, Priority: cmd.Priority,
		SOPClassUID: pc.AbstractSyntax, TransferSyntax: pc.TransferSyntax, Identifier: buf.Bytes(), MoveDestination: cmd.MoveDestination,
		PendingStatus: StatusPending}
	ctx, cancel := context.WithCancel(a.ctx)
	op := &runningOp{cancel: cancel}
	a.mu.Lock()
	if _, dup := a.ops[cmd.MessageID]; dup {
		a.mu.Unlock()
		cancel()
		rsp.Status = StatusDuplicateInvocation
		return a.respond(pc, rsp)
	}
	if len(a.ops) >= asyncOpsWindow {
		a.mu.Unlock()
		cancel()
		return a.refuseBeyondWindow(pc, rsp)
	}
	a.ops[cmd.MessageID] = op
	a.mu.Unlock()
	a.c.beginOp()
	op.finish = sync.OnceFunc(func() {
		a.mu.Lock()
		delete(a.ops, cmd.MessageID)
		a.mu.Unlock()
		a.c.endOp()
	})
	a.opsWG.Add(1)
	go func() {
		defer a.opsWG.Done()
		defer func() {
			cancel()
			op.finish()
		}()
		var err error
		switch cmd.CommandField {
		case CFindRQ:
			err = a.runFind(ctx, op, pc, req, rsp)
		case CMoveRQ, CGetRQ:
			err = a.runRetrieve(ctx, op, pc, req, rsp)
		}
		if err != nil && a.ctx.Err() == nil {
			a.log.Warn("sending responses failed, aborting", "command", cmd.Name(), "err", err)
			a.c.abort(AbortSourceServiceProvider, AbortReasonNotSpecified)
		}
	}()
	return nil
}

// refuseBeyondWindow answers a request sent while the negotiated window is
// full. PS3.7 prescribes no behaviour for a requestor that exceeds the
// window; it is refused with the service's "refused: out of resources"
// status, without starting a handler, and the association stays usable.
func (a *serverAssoc) refuseBeyondWindow(pc *PresentationContext, rsp *Command) error {
	start := time.Now()
	name := "C-FIND"
	rsp.Status = StatusOutOfResources
	switch rsp.CommandField {
	case CMoveRSP:
		name, rsp.Status = "C-MOVE", StatusOutOfResourcesMatches
	case CGetRSP:
		name, rsp.Status = "C-GET", StatusOutOfResourcesMatches
	}
	rsp.ErrorComment = "asynchronous operations window exceeded"
	a.log.Info("request beyond the asynchronous operations window refused", "command", name, "id", rsp.MessageIDBeingRespondedTo, "window", asyncOpsWindow)
	a.hook(name, rsp.Status, start, 0)
	return a.respond(pc, rsp)
}

func (a *serverAssoc) runFind(ctx context.Context, op *runningOp, pc *PresentationContext, req *QueryRequest, rsp *Command) error {
	start := time.Now()
	if a.info.Services&ServiceFind == 0 {
		rsp.Status = StatusNotAuthorized
		op.finish()
		return a.respond(pc, rsp)
	}
	matches := 0
	var sendErr error
	emit := func(ds *header.Dataset) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b, err := ds.Encode(pc.TransferSyntax)
		if err != nil {
			return fmt.Errorf("dimse: encode C-FIND response: %w", err)
		}
		pend := *rsp
		pend.Status = req.PendingStatus
		if !pend.Status.IsPending() {
			pend.Status = StatusPending
		}
		if err := a.c.sendMessage(pc.ID, &pend, bytesReader(b)); err != nil {
			sendErr = err
			return err
		}
		matches++
		return nil
	}
	status, err := func() (st Status, err error) {
		defer func() {
			if p := recover(); p != nil {
				st, err = StatusProcessingFailure, fmt.Errorf("dimse: find handler panic: %v", p)
			}
		}()
		return a.s.Find.Find(ctx, req, emit)
	}()
	if sendErr != nil {
		return sendErr
	}
	final := *rsp
	final.Status, final.ErrorComment = statusOf(status, err)
	if op.canceled.Load() {
		final.Status, final.ErrorComment = StatusCancel, ""
	} else if err != nil {
		a.log.Warn("C-FIND failed", "status", final.Status.String(), "err", err)
	}
	a.log.Debug("C-FIND", "status", final.Status.String(), "matches", matches)
	a.hook("C-FIND", final.Status, start, 0)
	op.finish()
	return a.respond(pc, &final)
}

// handleCommit answers a Storage Commitment Push Model N-ACTION-RQ (PS3.4
// J.3.2): the request (Transaction UID, Referenced SOP Sequence) goes to
// the Commit handler, which takes responsibility for the report
// (N-EVENT-REPORT, sent later on an association of its own, as most
// requestors expect); the N-ACTION-RSP says only whether it was taken.
func (a *serverAssoc) handleCommit(m *message, rsp *Command) error {
	cmd, pc := m.cmd, m.pc
	start := time.Now()
	rsp.AffectedSOPClassUID, rsp.AffectedSOPInstanceUID = pc.AbstractSyntax, cmd.RequestedSOPInstanceUID
	rsp.ActionTypeID = cmd.ActionTypeID
	var data []byte
	if m.data != nil {
		// 10,000 references (commit.MaxRefs) of long UIDs take about
		// 1.2 MB: the request has a bound of its own.
		limit := max(a.s.MaxIdentifierLength, MaxCommitDataSet)
		var buf bytes.Buffer
		n, err := io.Copy(&buf, io.LimitReader(m.data, int64(limit)+1))
		if err != nil {
			return err
		}
		if err := m.data.drain(); err != nil {
			return err
		}
		if n > int64(limit) {
			rsp.Status, rsp.ErrorComment = StatusResourceLimitation, "storage commitment request too large"
			a.hook("N-ACTION", rsp.Status, start, n)
			return a.respond(pc, rsp)
		}
		data = buf.Bytes()
	}
	var herr error
	switch {
	case a.info.Services&ServiceCommit == 0:
		rsp.Status = StatusNotAuthorized
	case cmd.RequestedSOPInstanceUID != uid.StorageCommitmentPushModelInstance:
		rsp.Status, rsp.ErrorComment = StatusNoSuchSOPInstance, "the Storage Commitment instance is "+uid.StorageCommitmentPushModelInstance
	case cmd.ActionTypeID != 1:
		rsp.Status, rsp.ErrorComment = StatusNoSuchAction, "Request Storage Commitment is action type 1"
	case data == nil:
		rsp.Status, rsp.ErrorComment = StatusMissingAttribute, "N-ACTION without data set"
	default:
		var req *CommitRequest
		if req, herr = parseCommitRequest(data, pc.TransferSyntax); herr == nil {
			req.Assoc = a.info
			herr = a.s.Commit.Commit(a.ctx, req)
		}
		rsp.Status, rsp.ErrorComment = statusOf(StatusSuccess, herr)
	}
	if herr != nil {
		a.log.Warn("storage commitment request refused", "status", rsp.Status.String(), "err", herr)
	}
	a.hook("N-ACTION", rsp.Status, start, int64(len(data)))
	return a.respond(pc, rsp)
}
