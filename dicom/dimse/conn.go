package dimse

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/molar-health/molar/dicom/uid"
)

// State is the upper layer state of an association (PS3.8 9.2.1).
type State int32

const (
	Sta1Idle                   State = 1  // no association
	Sta2AwaitingAssociateRQ    State = 2  // transport open, ARTIM running
	Sta5AwaitingAssociateAC    State = 5  // A-ASSOCIATE-RQ sent
	Sta6Established            State = 6  // data transfer
	Sta7AwaitingReleaseRP      State = 7  // A-RELEASE-RQ sent
	Sta8AwaitingLocalReleaseRP State = 8  // A-RELEASE-RQ received
	Sta9CollisionRequestor     State = 9  // release collision, requestor side
	Sta10CollisionAcceptor     State = 10 // release collision, acceptor side
	Sta11CollisionRequestorRP  State = 11 // collision, requestor sent RP, awaiting RP
	Sta12CollisionAcceptorRP   State = 12 // collision, acceptor received RP
	Sta13AwaitingClose         State = 13 // awaiting transport close, ARTIM running
)

// Errors reported by association operations.
var (
	// ErrReleased: the association was released; no more operations.
	ErrReleased = errors.New("dimse: association released")
	// ErrClosed: the transport connection closed without release (A-P-ABORT indication).
	ErrClosed = errors.New("dimse: connection closed by peer")
	// ErrNoPresentationContext: no accepted presentation context fits the request.
	ErrNoPresentationContext = errors.New("dimse: no accepted presentation context")
	// ErrProtocol marks a violation of PS3.8 by the peer (answered with A-ABORT).
	ErrProtocol = errors.New("dimse: protocol error")
	// errPeerReleaseRQ / errPeerReleaseRP: release PDUs seen while reading.
	errPeerReleaseRQ = errors.New("dimse: peer requested release")
	errPeerReleaseRP = errors.New("dimse: peer sent A-RELEASE-RP")
)

// AbortError reports an A-ABORT received from the peer.
type AbortError struct{ Source, Reason byte }

func (e *AbortError) Error() string {
	return fmt.Sprintf("dimse: association aborted by peer (source %d, reason %d)", e.Source, e.Reason)
}

// RejectedError reports an A-ASSOCIATE-RJ received by Dial.
type RejectedError struct{ Result, Source, Reason byte }

func (e *RejectedError) Error() string {
	return fmt.Sprintf("dimse: association rejected (result %d, source %d, reason %d: %s)", e.Result, e.Source, e.Reason, rejectReasonText(e.Source, e.Reason))
}

func rejectReasonText(source, reason byte) string {
	switch {
	case source == RejectSourceServiceUser && reason == RejectReasonAppContextNotSupported:
		return "application context name not supported"
	case source == RejectSourceServiceUser && reason == RejectReasonCallingAENotRecognized:
		return "calling AE title not recognized"
	case source == RejectSourceServiceUser && reason == RejectReasonCalledAENotRecognized:
		return "called AE title not recognized"
	case source == RejectSourceServiceProviderACSE && reason == RejectReasonProtocolVersion:
		return "protocol version not supported"
	case source == RejectSourceServiceProviderPresent && reason == RejectReasonTemporaryCongestion:
		return "temporary congestion"
	case source == RejectSourceServiceProviderPresent && reason == RejectReasonLocalLimitExceeded:
		return "local limit exceeded"
	}
	return "no reason given"
}

// protocolError is a PS3.8 violation detected locally; it carries the A-ABORT reason.
type protocolError struct {
	reason byte
	msg    string
}

func (e *protocolError) Error() string { return "dimse: protocol error: " + e.msg }
func (e *protocolError) Unwrap() error { return ErrProtocol }

func protoErr(reason byte, format string, args ...any) error {
	return &protocolError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// PresentationContext is a negotiated presentation context.
type PresentationContext struct {
	ID             byte
	AbstractSyntax string
	TransferSyntax string // accepted syntax ("" when rejected)
	Result         byte
	// RequestorSCU / RequestorSCP are the roles of the association
	// requestor after SCP/SCU role selection (default: SCU only).
	RequestorSCU, RequestorSCP bool
	// service is what the acceptor serves on the context (set when it is
	// negotiated, so messages need not look it up again).
	service Services
}

// Accepted reports whether the context was accepted.
func (pc *PresentationContext) Accepted() bool { return pc.Result == ResultAcceptance }

// conn is the upper layer over one transport connection; it is shared by the
// acceptor (server) and requestor (client) sides.
type conn struct {
	nc        net.Conn
	src       io.Reader // nc, counting bytes in
	br        *bufio.Reader
	wmu       sync.Mutex
	id        string
	log       *slog.Logger
	requestor bool

	contexts    map[byte]*PresentationContext
	peerMaxPDU  uint32
	localMaxPDU uint32

	idle         time.Duration
	writeTimeout time.Duration

	// idleMu guards busy and the idle read deadline.
	idleMu sync.Mutex
	// busy counts operations we perform for the peer (acceptor side); the
	// idle timeout is suspended while any runs.
	busy int

	// reader state; one reader at a time
	pduLeft uint32
	pdvLeft uint32
	pdvCtx  byte
	pdvCmd  bool
	pdvLast bool
	cur     *dataReader

	state     atomic.Int32
	closeOnce sync.Once
	bytesIn   atomic.Int64
	bytesOut  atomic.Int64
}

func newConn(nc net.Conn, log *slog.Logger, requestor bool) *conn {
	c := &conn{nc: nc, id: newID(), requestor: requestor}
	c.src = &countingReader{r: nc, n: &c.bytesIn}
	// Small until the association is established (growReadBuffer): a
	// connection that has not associated yet should cost little memory.
	c.br = bufio.NewReaderSize(c.src, negotiationBufferSize)
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.log = log.With("assoc", c.id)
	c.state.Store(int32(Sta1Idle))
	return c
}

// Read buffer sizes: during negotiation, and in data transfer.
const (
	negotiationBufferSize = 4 << 10
	dataBufferSize        = 64 << 10
)

// growReadBuffer switches to the data transfer read buffer once the
// association is established, keeping bytes already buffered.
func (c *conn) growReadBuffer() {
	if c.br.Size() >= dataBufferSize {
		return
	}
	r := c.src
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), c.src)
	}
	c.br = bufio.NewReaderSize(r, dataBufferSize)
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n != nil {
		c.n.Add(int64(n))
	}
	return n, err
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *conn) setState(s State) { c.state.Store(int32(s)) }
func (c *conn) getState() State  { return State(c.state.Load()) }

func (c *conn) close() {
	c.closeOnce.Do(func() {
		_ = c.nc.Close()
		c.setState(Sta1Idle)
	})
}

// abort sends an A-ABORT (unless a writer holds the connection) and closes.
func (c *conn) abort(source, reason byte) {
	if c.wmu.TryLock() {
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		b, _ := EncodePDU(&Abort{Source: source, Reason: reason})
		_, _ = c.nc.Write(b)
		c.wmu.Unlock()
	}
	c.close()
}

// abortFor aborts with the reason fitting err (protocol errors carry theirs).
func (c *conn) abortFor(err error) {
	var pe *protocolError
	if errors.As(err, &pe) {
		c.abort(AbortSourceServiceProvider, pe.reason)
		return
	}
	c.abort(AbortSourceServiceProvider, AbortReasonNotSpecified)
}

// writePDU writes one complete PDU.
func (c *conn) writePDU(p PDU) error {
	b, err := EncodePDU(p)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeRaw(b)
}

func (c *conn) writeRaw(bufs ...[]byte) error {
	if c.writeTimeout > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	var n int64
	var err error
	if len(bufs) == 1 {
		var m int
		m, err = c.nc.Write(bufs[0])
		n = int64(m)
	} else {
		nb := net.Buffers(bufs)
		n, err = nb.WriteTo(c.nc)
	}
	c.bytesOut.Add(n)
	if err != nil {
		return fmt.Errorf("dimse: write: %w", err)
	}
	return nil
}

// readPDUHeader reads the 6-byte PDU header, applying the idle timeout.
func (c *conn) readPDUHeader(timeout time.Duration) (byte, uint32, error) {
	if timeout > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	}
	var h [6]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, 0, c.readErr(err)
	}
	return h[0], binary.BigEndian.Uint32(h[2:]), nil
}

// armIdle sets the read deadline for the next PDU: the idle timeout, or
// none while operations we perform for the peer are in progress: the peer
// then waits silently for their responses, and a C-MOVE may well outlast
// any idle timeout.
func (c *conn) armIdle() {
	c.idleMu.Lock()
	defer c.idleMu.Unlock()
	switch {
	case c.busy > 0:
		_ = c.nc.SetReadDeadline(time.Time{})
	case c.idle > 0:
		_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
	}
}

// beginOp marks an operation in progress (see armIdle).
func (c *conn) beginOp() {
	c.idleMu.Lock()
	c.busy++
	c.idleMu.Unlock()
}

// endOp ends an operation; after the last one the idle timeout runs again,
// counted from now (the reader may be blocked without a deadline).
func (c *conn) endOp() {
	c.idleMu.Lock()
	defer c.idleMu.Unlock()
	c.busy--
	if c.busy == 0 && c.idle > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
	}
}

func (c *conn) readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return fmt.Errorf("dimse: read: %w", err)
}

// isTimeout reports a read deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// readPDUBody reads a non-data PDU body (capped) and decodes it.
func (c *conn) readPDUBody(typ byte, length uint32) (PDU, error) {
	if typ < TypeAssociateRQ || typ > TypeAbort {
		return nil, protoErr(AbortReasonUnrecognizedPDU, "unrecognized PDU type 0x%02x", typ)
	}
	if length > MaxAssociatePDULength {
		return nil, protoErr(AbortReasonInvalidParameter, "PDU type 0x%02x length %d too large", typ, length)
	}
	body, err := readBody(c.br, length)
	if err != nil {
		return nil, c.readErr(err)
	}
	p, err := DecodePDU(typ, body)
	if err != nil {
		return nil, protoErr(AbortReasonInvalidParameter, "%v", err)
	}
	return p, nil
}

// nextPDV advances to the next PDV of a P-DATA-TF, reading PDU headers as
// needed. Release and abort PDUs are returned as errors.
func (c *conn) nextPDV() error {
	for c.pduLeft == 0 {
		c.armIdle()
		typ, length, err := c.readPDUHeader(0)
		if err != nil {
			return err
		}
		if typ == TypePDataTF {
			if length < 6 {
				return protoErr(AbortReasonInvalidParameter, "P-DATA-TF length %d", length)
			}
			c.pduLeft = length
			break
		}
		p, err := c.readPDUBody(typ, length)
		if err != nil {
			return err
		}
		switch v := p.(type) {
		case *ReleaseRQ:
			return errPeerReleaseRQ
		case *ReleaseRP:
			// We have not asked for release (that is read by
			// readReleasePDU): AA-8, unexpected PDU.
			return protoErr(AbortReasonUnexpectedPDU, "A-RELEASE-RP without A-RELEASE-RQ")
		case *Abort:
			return &AbortError{Source: v.Source, Reason: v.Reason}
		default:
			return protoErr(AbortReasonUnexpectedPDU, "unexpected PDU type 0x%02x in data transfer", typ)
		}
	}
	if c.pduLeft < 6 {
		return protoErr(AbortReasonInvalidParameter, "P-DATA-TF has %d trailing bytes", c.pduLeft)
	}
	var h [6]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return c.readErr(err)
	}
	n := binary.BigEndian.Uint32(h[:])
	if n < 2 || n > c.pduLeft-4 {
		return protoErr(AbortReasonInvalidParameter, "PDV length %d in P-DATA-TF with %d bytes left", n, c.pduLeft)
	}
	c.pduLeft -= 4 + n
	c.pdvLeft = n - 2
	c.pdvCtx, c.pdvCmd, c.pdvLast = h[4], h[5]&1 != 0, h[5]&2 != 0
	if h[5]&^3 != 0 {
		return protoErr(AbortReasonInvalidParameter, "message control header 0x%02x", h[5])
	}
	pc := c.contexts[c.pdvCtx]
	if pc == nil || !pc.Accepted() {
		return protoErr(AbortReasonInvalidParameter, "PDV on presentation context %d that was not accepted", c.pdvCtx)
	}
	return nil
}

// message is a received DIMSE message; Data streams the data set, if any.
type message struct {
	pc   *PresentationContext
	cmd  *Command
	data *dataReader
}

// readMessage reads the next command; its data set (if any) must be read or
// drained through msg.data before the next readMessage (drained here
// otherwise).
func (c *conn) readMessage() (*message, error) {
	if c.cur != nil {
		if err := c.cur.drain(); err != nil {
			return nil, err
		}
		c.cur = nil
	}
	var buf []byte
	var ctx byte
	first := true
	for {
		if c.pdvLeft == 0 {
			if err := c.nextPDV(); err != nil {
				return nil, err
			}
		}
		if !c.pdvCmd {
			return nil, protoErr(AbortReasonUnexpectedParameter, "data PDV where a command was expected")
		}
		if first {
			ctx, first = c.pdvCtx, false
		} else if c.pdvCtx != ctx {
			return nil, protoErr(AbortReasonUnexpectedParameter, "command fragments on different presentation contexts")
		}
		if len(buf)+int(c.pdvLeft) > MaxCommandLength {
			return nil, protoErr(AbortReasonInvalidParameter, "command set longer than %d bytes", MaxCommandLength)
		}
		start := len(buf)
		buf = append(buf, make([]byte, c.pdvLeft)...)
		if _, err := io.ReadFull(c.br, buf[start:]); err != nil {
			return nil, c.readErr(err)
		}
		c.pdvLeft = 0
		if c.pdvLast {
			break
		}
	}
	cmd, err := DecodeCommand(buf)
	if err != nil {
		return nil, protoErr(AbortReasonInvalidParameter, "%v", err)
	}
	m := &message{pc: c.contexts[ctx], cmd: cmd}
	if cmd.HasDataSet {
		m.data = &dataReader{c: c, ctx: ctx}
		c.cur = m.data
	}
	return m, nil
}

// dataReader streams the data set of a message straight from the connection.
type dataReader struct {
	c     *conn
	ctx   byte
	last  bool // last fragment header seen
	done  bool
	err   error
	n     int64
	began bool
}

func (r *dataReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.done {
		return 0, io.EOF
	}
	c := r.c
	for c.pdvLeft == 0 {
		if r.began && r.last {
			r.done = true
			return 0, io.EOF
		}
		if err := c.nextPDV(); err != nil {
			r.err = err
			return 0, err
		}
		if c.pdvCmd {
			r.err = protoErr(AbortReasonUnexpectedParameter, "command PDV inside a data set")
			return 0, r.err
		}
		if c.pdvCtx != r.ctx {
			r.err = protoErr(AbortReasonUnexpectedParameter, "data set fragments on different presentation contexts")
			return 0, r.err
		}
		r.began = true
		r.last = c.pdvLast
	}
	if len(p) > int(c.pdvLeft) {
		p = p[:c.pdvLeft]
	}
	n, err := c.br.Read(p)
	c.pdvLeft -= uint32(n)
	r.n += int64(n)
	if err != nil {
		r.err = c.readErr(err)
		return n, r.err
	}
	return n, nil
}

// drain discards the rest of the data set.
func (r *dataReader) drain() error {
	if r.done {
		return nil
	}
	_, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	return r.err
}

// bytesRead is the number of data set bytes delivered so far.
func (r *dataReader) bytesRead() int64 { return r.n }

// maxPDVData is the largest data payload of one PDV we may send.
func (c *conn) maxPDVData() int {
	m := c.peerMaxPDU
	if m == 0 || m > 4<<20 {
		m = 256 << 10
	}
	// Negotiation refuses a peer maximum below MinMaxPDULength, so this
	// never exceeds what the peer takes. Even, so that only a final
	// fragment can have odd length.
	return (int(m) - 6) &^ 1
}

var bufPool sync.Pool

func getBuf(n int) []byte {
	if b, ok := bufPool.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n)
}

func putBuf(b []byte) { bufPool.Put(&b) }

// writePDV writes one P-DATA-TF holding one PDV. Caller holds wmu.
func (c *conn) writePDV(ctx byte, command, last bool, payload []byte) error {
	var h [12]byte
	h[0] = TypePDataTF
	binary.BigEndian.PutUint32(h[2:], uint32(len(payload)+6))
	binary.BigEndian.PutUint32(h[6:], uint32(len(payload)+2))
	h[10] = ctx
	h[11] = mch(command, last)
	if len(payload) < 1024 {
		return c.writeRaw(append(h[:], payload...))
	}
	return c.writeRaw(h[:], payload)
}

// sendMessage sends a command and, when data is non-nil, streams the data set,
// fragmenting to the peer's maximum PDU length. A failure while streaming
// leaves the association unusable; the caller must abort it.
func (c *conn) sendMessage(ctx byte, cmd *Command, data io.Reader) error {
	cmd.HasDataSet = data != nil
	enc := cmd.Encode()
	max := c.maxPDVData()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for len(enc) > 0 {
		n := min(len(enc), max)
		if err := c.writePDV(ctx, true, n == len(enc), enc[:n]); err != nil {
			return err
		}
		enc = enc[n:]
	}
	if data == nil {
		return nil
	}
	a, b := getBuf(max), getBuf(max)
	defer putBuf(a)
	defer putBuf(b)
	na, erra := io.ReadFull(data, a)
	padOdd := false
	if pc := c.contexts[ctx]; pc != nil && pc.TransferSyntax == uid.DeflatedExplicitVRLittleEndian {
		// PS3.5 A.5: a deflated data set of odd length is padded with a
		// trailing NUL; receivers (DCMTK) refuse odd fragments.
		padOdd = true
	}
	for {
		last := false
		switch {
		case erra == io.EOF || erra == io.ErrUnexpectedEOF:
			last = true
		case erra != nil:
			return fmt.Errorf("dimse: reading data set to send: %w", erra)
		}
		var nb int
		var errb error
		if !last {
			nb, errb = io.ReadFull(data, b)
			if errb == io.EOF {
				last = true
			}
		}
		if last && padOdd && na%2 == 1 {
			a = a[:na+1]
			a[na] = 0
			na++
		}
		if err := c.writePDV(ctx, false, last, a[:na]); err != nil {
			return err
		}
		if last {
			return nil
		}
		a, b = b, a
		na, erra = nb, errb
	}
}
