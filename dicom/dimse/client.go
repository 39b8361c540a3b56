package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// ProposedContext is a presentation context to propose in Dial.
type ProposedContext struct {
	AbstractSyntax   string
	TransferSyntaxes []string
	// ProposeSCPRole proposes the SCP role for this SOP class (role
	// selection), as needed to receive C-STORE sub-operations of C-GET.
	ProposeSCPRole bool
}

// DialOptions configure an association request.
type DialOptions struct {
	CallingAE, CalledAE string
	Contexts            []ProposedContext
	// MaxPDULength we accept (0: DefaultMaxPDULength).
	MaxPDULength uint32
	UserIdentity *UserIdentity
	AsyncOps     *AsyncOps
	// ARTIMTimeout bounds the wait for A-ASSOCIATE-AC and A-RELEASE-RP (0: 30 s).
	ARTIMTimeout time.Duration
	// IdleTimeout bounds the wait for each response PDU (0: 5 min; <0: none).
	IdleTimeout time.Duration
	// WriteTimeout bounds each write (0: 2 min).
	WriteTimeout time.Duration
	Dialer       *net.Dialer
	// TLS, when set, opens the association over TLS (PS3.15 Annex B.1,
	// the Basic TLS Secure Transport Connection Profile). An empty
	// ServerName is taken from the address, so the peer's certificate is
	// checked against the host dialled.
	TLS    *tls.Config
	Logger *slog.Logger
	// ImplementationClassUID / VersionName (defaults: Molar's).
	ImplementationClassUID, ImplementationVersionName string
}

// VerificationContext proposes Verification with the uncompressed syntaxes.
func VerificationContext() ProposedContext {
	return ProposedContext{AbstractSyntax: uid.Verification, TransferSyntaxes: uid.UncompressedTransferSyntaxes()}
}

// StorageContexts proposes each SOP class with the given syntaxes (one
// context per class; nil syntaxes: uncompressed).
func StorageContexts(sopClasses, transferSyntaxes []string) []ProposedContext {
	if transferSyntaxes == nil {
		transferSyntaxes = uid.UncompressedTransferSyntaxes()
	}
	out := make([]ProposedContext, 0, len(sopClasses))
	for _, c := range sopClasses {
		out = append(out, ProposedContext{AbstractSyntax: c, TransferSyntaxes: transferSyntaxes})
	}
	return out
}

// Association is an association opened by Dial (the requestor side).
// Operations are serialized: one DIMSE operation at a time.
type Association struct {
	c     *conn
	opts  DialOptions
	ac    *AssociateAC
	opMu  sync.Mutex
	msgID atomic.Uint32
	info  *AssociationInfo
	done  atomic.Bool
}

// Dial opens a TCP connection to addr and negotiates an association. An
// A-ASSOCIATE-RJ is returned as *RejectedError.
func Dial(ctx context.Context, addr string, opts DialOptions) (*Association, error) {
	d := opts.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: 30 * time.Second}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dimse: dial %s: %w", addr, err)
	}
	if opts.TLS != nil {
		cfg := opts.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		timeout := opts.ARTIMTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		tc := tls.Client(nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("dimse: TLS with %s: %w", addr, err)
		}
		nc = tc
	}
	a, err := NewAssociation(ctx, nc, opts)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return a, nil
}

// NewAssociation negotiates an association over an open connection (e.g. TLS).
func NewAssociation(ctx context.Context, nc net.Conn, opts DialOptions) (*Association, error) {
	if len(opts.Contexts) == 0 {
		return nil, errors.New("dimse: no presentation contexts to propose")
	}
	if len(opts.Contexts) > 128 {
		return nil, errors.New("dimse: more than 128 presentation contexts")
	}
	c := newConn(nc, opts.Logger, true)
	c.idle = durOr(opts.IdleTimeout, DefaultIdleTimeout)
	c.writeTimeout = durOr(opts.WriteTimeout, DefaultWriteTimeout)
	c.localMaxPDU = opts.MaxPDULength
	if c.localMaxPDU == 0 {
		c.localMaxPDU = DefaultMaxPDULength
	}
	c.log = c.log.With("peer", nc.RemoteAddr().String(), "calling_ae", opts.CallingAE, "called_ae", opts.CalledAE)
	impl, ver := opts.ImplementationClassUID, opts.ImplementationVersionName
	if impl == "" {
		impl, ver = ImplementationClassUID, ImplementationVersionName
	}
	rq := &AssociateRQ{ProtocolVersion: 1, CalledAE: opts.CalledAE, CallingAE: opts.CallingAE, ApplicationContext: uid.ApplicationContext,
		UserInfo: UserInfo{MaxPDULength: c.localMaxPDU, ImplementationClassUID: impl, ImplementationVersionName: ver,
			AsyncOps: opts.AsyncOps, UserIdentity: opts.UserIdentity}}
	proposed := map[byte]ProposedContext{}
	roles := map[string]bool{}
	for i, pc := range opts.Contexts {
		id := byte(2*i + 1)
		proposed[id] = pc
		rq.PresentationContexts = append(rq.PresentationContexts, PresentationContextRQ{ID: id, AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes})
		if pc.ProposeSCPRole && !roles[pc.AbstractSyntax] {
			roles[pc.AbstractSyntax] = true
			rq.UserInfo.RoleSelections = append(rq.UserInfo.RoleSelections, RoleSelection{SOPClassUID: pc.AbstractSyntax, SCU: false, SCP: true})
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	if err := c.writePDU(rq); err != nil {
		return nil, err
	}
	c.setState(Sta5AwaitingAssociateAC)
	typ, length, err := c.readPDUHeader(durOr(opts.ARTIMTimeout, DefaultARTIMTimeout))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dimse: association: %w", ctx.Err())
		}
		return nil, fmt.Errorf("dimse: awaiting A-ASSOCIATE-AC: %w", err)
	}
	p, err := c.readPDUBody(typ, length)
	if err != nil {
		c.abortFor(err)
		return nil, err
	}
	switch v := p.(type) {
	case *AssociateRJ:
		c.close()
		return nil, &RejectedError{Result: v.Result, Source: v.Source, Reason: v.Reason}
	case *Abort:
		c.close()
		return nil, &AbortError{Source: v.Source, Reason: v.Reason}
	case *AssociateAC:
		if !stop() && ctx.Err() != nil {
			c.abort(AbortSourceServiceUser, AbortReasonNotSpecified)
			return nil, fmt.Errorf("dimse: association: %w", ctx.Err())
		}
		_ = nc.SetDeadline(time.Time{})
		if m := v.UserInfo.MaxPDULength; m != 0 && m < MinMaxPDULength {
			c.abort(AbortSourceServiceUser, AbortReasonNotSpecified)
			return nil, fmt.Errorf("dimse: acceptor's maximum PDU length %d is below %d", m, MinMaxPDULength)
		}
		a := &Association{c: c, opts: opts, ac: v}
		c.peerMaxPDU = v.UserInfo.MaxPDULength
		c.contexts = map[byte]*PresentationContext{}
		acRoles := map[string]RoleSelection{}
		for _, rs := range v.UserInfo.RoleSelections {
			acRoles[rs.SOPClassUID] = rs
		}
		for _, r := range v.PresentationContexts {
			pp, ok := proposed[r.ID]
			if !ok {
				c.abort(AbortSourceServiceUser, AbortReasonInvalidParameter)
				return nil, protoErr(AbortReasonInvalidParameter, "A-ASSOCIATE-AC answers unknown context %d", r.ID)
			}
			pc := &PresentationContext{ID: r.ID, AbstractSyntax: pp.AbstractSyntax, Result: r.Result, RequestorSCU: true}
			if r.Result == ResultAcceptance {
				pc.TransferSyntax = r.TransferSyntax
			}
			if rs, ok := acRoles[pp.AbstractSyntax]; ok && roles[pp.AbstractSyntax] {
				pc.RequestorSCU, pc.RequestorSCP = rs.SCU, rs.SCP
			}
			c.contexts[r.ID] = pc
		}
		c.setState(Sta6Established)
		c.growReadBuffer()
		a.info = &AssociationInfo{ID: c.id, CallingAE: opts.CallingAE, CalledAE: opts.CalledAE, RemoteAddr: nc.RemoteAddr(),
			ImplementationClassUID: v.UserInfo.ImplementationClassUID, ImplementationVersionName: v.UserInfo.ImplementationVersionName,
			PeerMaxPDULength: v.UserInfo.MaxPDULength, Services: ServicesAll, Opened: time.Now()}
		c.log.Debug("association established", "peer_max_pdu", c.peerMaxPDU)
		return a, nil
	default:
		c.abort(AbortSourceServiceUser, AbortReasonUnexpectedPDU)
		return nil, protoErr(AbortReasonUnexpectedPDU, "unexpected PDU 0x%02x awaiting A-ASSOCIATE-AC", typ)
	}
}

// ID returns the association id used in logs.
func (a *Association) ID() string { return a.c.id }

// State returns the upper layer state.
func (a *Association) State() State { return a.c.getState() }

// AssociateAC returns the acceptor's answer as received.
func (a *Association) AssociateAC() *AssociateAC { return a.ac }

// Contexts returns the negotiated presentation contexts.
func (a *Association) Contexts() []PresentationContext {
	var out []PresentationContext
	for i := 1; i < 256; i += 2 {
		if pc := a.c.contexts[byte(i)]; pc != nil {
			out = append(out, *pc)
		}
	}
	return out
}

// PeerMaxPDULength is the acceptor's maximum PDU length (0 = unlimited).
func (a *Association) PeerMaxPDULength() uint32 { return a.c.peerMaxPDU }

// FindContext returns an accepted context for the abstract syntax, preferring
// the given transfer syntax when non-empty (then only that one is returned).
func (a *Association) FindContext(abstract, transferSyntax string) (*PresentationContext, error) {
	for i := 1; i < 256; i += 2 {
		pc := a.c.contexts[byte(i)]
		if pc == nil || !pc.Accepted() || pc.AbstractSyntax != abstract {
			continue
		}
		if transferSyntax == "" || pc.TransferSyntax == transferSyntax {
			cp := *pc
			return &cp, nil
		}
	}
	if transferSyntax != "" {
		return nil, fmt.Errorf("%w for %s in %s", ErrNoPresentationContext, uid.Name(abstract), uid.Name(transferSyntax))
	}
	return nil, fmt.Errorf("%w for %s", ErrNoPresentationContext, uid.Name(abstract))
}

func (a *Association) nextID() uint16 {
	for {
		id := uint16(a.msgID.Add(1))
		if id != 0 {
			return id
		}
	}
}

// begin serializes operations and ties ctx cancellation to the connection.
func (a *Association) begin(ctx context.Context) (func(), error) {
	if a.done.Load() {
		return nil, ErrReleased
	}
	a.opMu.Lock()
	if a.done.Load() {
		a.opMu.Unlock()
		return nil, ErrReleased
	}
	return func() { a.opMu.Unlock() }, nil
}

// fail aborts the association after a transport or protocol failure.
func (a *Association) fail(err error) error {
	var ae *AbortError
	if !errors.As(err, &ae) && !errors.Is(err, ErrClosed) {
		a.c.abortFor(err)
	} else {
		a.c.close()
	}
	a.done.Store(true)
	return err
}

// awaitResponse reads messages until the response to id arrives. Incoming
// C-STORE requests (C-GET sub-operations) go to store.
func (a *Association) awaitResponse(ctx context.Context, id uint16, store StoreHandler, onPending func(*message) error) (*message, error) {
	for {
		m, err := a.c.readMessage()
		if err != nil {
			if errors.Is(err, errPeerReleaseRQ) {
				err = a.acceptPeerRelease()
			}
			if ctx.Err() != nil && isTimeout(err) {
				err = ctx.Err()
			}
			return nil, a.fail(err)
		}
		cmd := m.cmd
		switch {
		case cmd.CommandField == CStoreRQ && store != nil:
			if err := a.serveStore(ctx, m, store); err != nil {
				return nil, a.fail(err)
			}
		case cmd.IsResponse() && cmd.MessageIDBeingRespondedTo == id:
			if cmd.Status.IsPending() && onPending != nil {
				if err := onPending(m); err != nil {
					return nil, err
				}
				continue
			}
			return m, nil
		case !cmd.IsResponse():
			rsp := &Command{CommandField: cmd.CommandField | 0x8000, MessageIDBeingRespondedTo: cmd.MessageID,
				AffectedSOPClassUID: cmd.AffectedSOPClassUID, AffectedSOPInstanceUID: cmd.AffectedSOPInstanceUID, Status: StatusUnrecognizedOperation}
			if m.data != nil {
				if err := m.data.drain(); err != nil {
					return nil, a.fail(err)
				}
			}
			if err := a.c.sendMessage(m.pc.ID, rsp, nil); err != nil {
				return nil, a.fail(err)
			}
		default:
			a.c.log.Warn("ignoring unexpected response", "command", cmd.Name(), "id", cmd.MessageIDBeingRespondedTo)
		}
	}
}

// acceptPeerRelease answers an acceptor-initiated release.
func (a *Association) acceptPeerRelease() error {
	_ = a.c.writePDU(&ReleaseRP{})
	a.c.close()
	a.done.Store(true)
	return ErrReleased
}

func (a *Association) serveStore(ctx context.Context, m *message, h StoreHandler) error {
	cmd := m.cmd
	rsp := &Command{CommandField: CStoreRSP, MessageIDBeingRespondedTo: cmd.MessageID, AffectedSOPClassUID: cmd.AffectedSOPClassUID,
		AffectedSOPInstanceUID: cmd.AffectedSOPInstanceUID}
	if m.data == nil {
		rsp.Status = StatusCannotUnderstand
		return a.c.sendMessage(m.pc.ID, rsp, nil)
	}
	req := &StoreRequest{Assoc: a.info, MessageID: cmd.MessageID, Priority: cmd.Priority, SOPClassUID: cmd.AffectedSOPClassUID,
		SOPInstanceUID: cmd.AffectedSOPInstanceUID, TransferSyntax: m.pc.TransferSyntax,
		MoveOriginatorAE: cmd.MoveOriginatorAE, MoveOriginatorMessageID: cmd.MoveOriginatorMessageID}
	st, err := h.Store(ctx, req, m.data)
	if derr := m.data.drain(); derr != nil {
		return derr
	}
	rsp.Status, rsp.ErrorComment = statusOf(st, err)
	return a.c.sendMessage(m.pc.ID, rsp, nil)
}

// Echo sends C-ECHO and returns the response status.
func (a *Association) Echo(ctx context.Context) (Status, error) {
	end, err := a.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	pc, err := a.FindContext(uid.Verification, "")
	if err != nil {
		return 0, err
	}
	stop := a.watch(ctx)
	defer stop()
	id := a.nextID()
	if err := a.c.sendMessage(pc.ID, &Command{CommandField: CEchoRQ, MessageID: id, AffectedSOPClassUID: uid.Verification}, nil); err != nil {
		return 0, a.fail(err)
	}
	m, err := a.awaitResponse(ctx, id, nil, nil)
	if err != nil {
		return 0, err
	}
	return m.cmd.Status, nil
}

// watch aborts blocking I/O when ctx ends (the association is then failed).
func (a *Association) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { _ = a.c.nc.SetDeadline(time.Now()) })
}

// StoreParams describe an instance to send.
type StoreParams struct {
	SOPClassUID, SOPInstanceUID string
	// TransferSyntax of the data; a context accepting exactly it is used.
	TransferSyntax          string
	Priority                uint16
	MoveOriginatorAE        string
	MoveOriginatorMessageID uint16
}

// Store sends a C-STORE, streaming data (the data set, no file meta, in
// TransferSyntax). It returns the response status; err reports transport,
// protocol or negotiation failures (ErrNoPresentationContext).
func (a *Association) Store(ctx context.Context, p StoreParams, data io.Reader) (Status, error) {
	end, err := a.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	pc, err := a.FindContext(p.SOPClassUID, p.TransferSyntax)
	if err != nil {
		return 0, err
	}
	stop := a.watch(ctx)
	defer stop()
	id := a.nextID()
	cmd := &Command{CommandField: CStoreRQ, MessageID: id, AffectedSOPClassUID: p.SOPClassUID, AffectedSOPInstanceUID: p.SOPInstanceUID,
		Priority: p.Priority, MoveOriginatorAE: p.MoveOriginatorAE, MoveOriginatorMessageID: p.MoveOriginatorMessageID}
	if err := a.c.sendMessage(pc.ID, cmd, data); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return 0, a.fail(err)
	}
	m, err := a.awaitResponse(ctx, id, nil, nil)
	if err != nil {
		return 0, err
	}
	return m.cmd.Status, nil
}

// cancelOnDone sends C-CANCEL for id when ctx ends (or cancel() is called);
// it returns a stop function.
func (a *Association) cancelOnDone(ctx context.Context, pc *PresentationContext, id uint16) (cancel func(), stop func()) {
	var once sync.Once
	send := func() {
		once.Do(func() {
			_ = a.c.sendMessage(pc.ID, &Command{CommandField: CCancelRQ, MessageIDBeingRespondedTo: id}, nil)
		})
	}
	st := context.AfterFunc(ctx, send)
	return send, func() { st() }
}

// Find sends a C-FIND with the identifier and calls fn for each pending
// response's identifier. When fn returns an error or ctx ends, a C-CANCEL is
// sent and the final response awaited; the error is then returned.
func (a *Association) Find(ctx context.Context, sopClass string, identifier *header.Dataset, fn func(*header.Dataset) error) (Status, error) {
	end, err := a.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	pc, err := a.FindContext(sopClass, "")
	if err != nil {
		return 0, err
	}
	body, err := identifier.Encode(pc.TransferSyntax)
	if err != nil {
		return 0, err
	}
	id := a.nextID()
	if err := a.c.sendMessage(pc.ID, &Command{CommandField: CFindRQ, MessageID: id, AffectedSOPClassUID: sopClass}, bytesReader(body)); err != nil {
		return 0, a.fail(err)
	}
	cancel, stop := a.cancelOnDone(ctx, pc, id)
	defer stop()
	var fnErr error
	m, err := a.awaitResponse(context.Background(), id, nil, func(m *message) error {
		if m.data == nil {
			return nil
		}
		ds, err := readIdentifier(m.data, pc.TransferSyntax)
		if err != nil {
			return a.fail(err)
		}
		if fnErr == nil && ctx.Err() == nil {
			if err := fn(ds); err != nil {
				fnErr = err
				cancel()
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if fnErr != nil {
		return m.cmd.Status, fnErr
	}
	if ctx.Err() != nil {
		return m.cmd.Status, ctx.Err()
	}
	return m.cmd.Status, nil
}

func readIdentifier(r io.Reader, ts string) (*header.Dataset, error) {
	h, err := header.Read(r, header.Options{TransferSyntax: ts, MaxValueLength: 1 << 20, MaxHeaderBytes: DefaultMaxIdentifier})
	if err != nil {
		return nil, fmt.Errorf("dimse: response identifier: %w", err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, err
	}
	return h.Dataset, nil
}

// RetrieveResult is the outcome of a C-MOVE or C-GET.
type RetrieveResult struct {
	Status Status
	SubOpCounts
	// FailedSOPInstanceUIDs from the final response identifier (0008,0058).
	FailedSOPInstanceUIDs []string
	ErrorComment          string
}

// Move sends a C-MOVE to destination and waits for the final response;
// progress (optional) sees each pending response's counters. Cancelling ctx
// sends C-CANCEL.
func (a *Association) Move(ctx context.Context, sopClass, destination string, identifier *header.Dataset, progress func(SubOpCounts)) (*RetrieveResult, error) {
	return a.retrieve(ctx, CMoveRQ, sopClass, destination, identifier, nil, progress)
}

// Get sends a C-GET; the C-STORE sub-operations arrive on this association
// and go to store (contexts must have been proposed with ProposeSCPRole).
func (a *Association) Get(ctx context.Context, sopClass string, identifier *header.Dataset, store StoreHandler, progress func(SubOpCounts)) (*RetrieveResult, error) {
	if store == nil {
		return nil, errors.New("dimse: Get needs a StoreHandler")
	}
	return a.retrieve(ctx, CGetRQ, sopClass, "", identifier, store, progress)
}

func (a *Association) retrieve(ctx context.Context, field uint16, sopClass, dest string, identifier *header.Dataset, store StoreHandler, progress func(SubOpCounts)) (*RetrieveResult, error) {
	end, err := a.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	pc, err := a.FindContext(sopClass, "")
	if err != nil {
		return nil, err
	}
	body, err := identifier.Encode(pc.TransferSyntax)
	if err != nil {
		return nil, err
	}
	id := a.nextID()
	if err := a.c.sendMessage(pc.ID, &Command{CommandField: field, MessageID: id, AffectedSOPClassUID: sopClass, MoveDestination: dest}, bytesReader(body)); err != nil {
		return nil, a.fail(err)
	}
	_, stop := a.cancelOnDone(ctx, pc, id)
	defer stop()
	m, err := a.awaitResponse(context.WithoutCancel(ctx), id, store, func(m *message) error {
		if m.data != nil {
			if err := m.data.drain(); err != nil {
				return a.fail(err)
			}
		}
		if progress != nil && m.cmd.SubOps != nil {
			progress(*m.cmd.SubOps)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res := &RetrieveResult{Status: m.cmd.Status, ErrorComment: m.cmd.ErrorComment}
	if m.cmd.SubOps != nil {
		res.SubOpCounts = *m.cmd.SubOps
	}
	if m.data != nil {
		ds, err := readIdentifier(m.data, pc.TransferSyntax)
		if err == nil {
			res.FailedSOPInstanceUIDs = ds.Strings(tagFailedSOPInstanceUIDList)
		}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

const tagFailedSOPInstanceUIDList = header.Tag(0x00080058)

// Release releases the association (A-RELEASE), handling a release
// collision, and closes the connection.
func (a *Association) Release(ctx context.Context) error {
	if a.done.Load() {
		return ErrReleased
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.done.Swap(true) {
		return ErrReleased
	}
	defer a.c.close()
	stop := context.AfterFunc(ctx, func() { _ = a.c.nc.SetDeadline(time.Now()) })
	defer stop()
	if err := a.c.writePDU(&ReleaseRQ{}); err != nil {
		return err
	}
	a.c.setState(Sta7AwaitingReleaseRP)
	artim := durOr(a.opts.ARTIMTimeout, DefaultARTIMTimeout)
	for {
		_, err := a.readReleasePDU(artim)
		switch {
		case errors.Is(err, errPeerReleaseRP):
			if a.c.getState() == Sta11CollisionRequestorRP || a.c.getState() == Sta7AwaitingReleaseRP {
				a.c.setState(Sta1Idle)
				return nil
			}
		case errors.Is(err, errPeerReleaseRQ):
			// Release collision; we are the requestor: answer first (Sta9 ->
			// Sta11), then wait for the peer's RP.
			a.c.setState(Sta9CollisionRequestor)
			if err := a.c.writePDU(&ReleaseRP{}); err != nil {
				return err
			}
			a.c.setState(Sta11CollisionRequestorRP)
		case err == nil:
			// P-DATA during release: discarded.
		default:
			var ae *AbortError
			if errors.As(err, &ae) {
				return err
			}
			a.c.abortFor(err)
			return fmt.Errorf("dimse: release: %w", err)
		}
	}
}

// readReleasePDU reads the next PDU while releasing; P-DATA is skipped.
func (a *Association) readReleasePDU(timeout time.Duration) (PDU, error) {
	c := a.c
	// Skip any remainder of a P-DATA-TF in progress.
	if c.pdvLeft > 0 || c.pduLeft > 0 {
		if _, err := c.br.Discard(int(c.pdvLeft + c.pduLeft)); err != nil {
			return nil, c.readErr(err)
		}
		c.pdvLeft, c.pduLeft = 0, 0
	}
	typ, length, err := c.readPDUHeader(timeout)
	if err != nil {
		return nil, err
	}
	if typ == TypePDataTF {
		if _, err := c.br.Discard(int(length)); err != nil {
			return nil, c.readErr(err)
		}
		return &PDataTF{}, nil
	}
	p, err := c.readPDUBody(typ, length)
	if err != nil {
		return nil, err
	}
	switch v := p.(type) {
	case *ReleaseRP:
		return p, errPeerReleaseRP
	case *ReleaseRQ:
		return p, errPeerReleaseRQ
	case *Abort:
		return p, &AbortError{Source: v.Source, Reason: v.Reason}
	}
	return nil, protoErr(AbortReasonUnexpectedPDU, "unexpected PDU 0x%02x during release", typ)
}

// Abort sends A-ABORT and closes the connection.
func (a *Association) Abort() error {
	a.done.Store(true)
	a.c.abort(AbortSourceServiceUser, AbortReasonNotSpecified)
	return nil
}

// Close releases the association if still open (with a 10 s bound).
func (a *Association) Close() error {
	if a.done.Load() {
		a.c.close()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.Release(ctx)
}

// String describes the association for logs.
func (a *Association) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "association %s %s->%s", a.c.id, a.opts.CallingAE, a.opts.CalledAE)
	return b.String()
}
