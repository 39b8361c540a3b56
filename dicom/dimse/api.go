package dimse

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/molar-health/molar/dicom/header"
)

// Services is a set of DIMSE services an association may use.
type Services uint8

const (
	ServiceEcho Services = 1 << iota
	ServiceStore
	ServiceFind
	ServiceMove
	ServiceGet
	// ServiceCommit is the Storage Commitment Push Model (N-ACTION).
	ServiceCommit

	ServicesAll = ServiceEcho | ServiceStore | ServiceFind | ServiceMove | ServiceGet | ServiceCommit
)

// AssociationRequest is what the acceptor policy sees of an A-ASSOCIATE-RQ.
type AssociationRequest struct {
	ID                        string // association id (as in logs)
	CallingAE, CalledAE       string
	RemoteAddr                net.Addr
	UserIdentity              *UserIdentity // nil when not negotiated
	ImplementationClassUID    string
	ImplementationVersionName string
	// Proposed lists the proposed abstract syntaxes.
	Proposed []string
}

// Decision is the acceptor policy's answer.
type Decision struct {
	// Reject, when non-nil, rejects the association with these values.
	Reject *AssociateRJ
	// Services restricts what the association may do (0 = all configured).
	// Presentation contexts of other services are refused (user rejection).
	Services Services
	// UserIdentityVerified: the policy checked the requestor's user
	// identity and accepts it. Only then does a requested positive response
	// go back (PS3.7 D.3.3.7): for a username (and passcode) with an empty
	// server response, for Kerberos, SAML and JWT only when
	// UserIdentityResponse holds the server ticket, response or token.
	UserIdentityVerified bool
	// UserIdentityResponse is the server response of a verified identity.
	UserIdentityResponse []byte
	// Value is opaque data for the handlers (e.g. the remote AE's row);
	// available as AssociationInfo.Value.
	Value any
}

// Accept is a Decision accepting with the given services.
func Accept(s Services) Decision { return Decision{Services: s} }

// RejectCallingAE rejects with "calling AE title not recognized" (permanent).
func RejectCallingAE() Decision {
	return Decision{Reject: &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonCallingAENotRecognized}}
}

// RejectUserIdentity rejects permanently for a user identity that is
// missing or does not sign in: source "service-provider (ACSE related
// function)", no reason given, as PS3.7 D.3.3.7 has authorisation failures.
func RejectUserIdentity() Decision {
	return Decision{Reject: &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceProviderACSE, Reason: RejectReasonNoReason}}
}

// RejectTemporarily rejects transiently ("temporary congestion"): a
// dependency of the decision (the AE registry, the accounts) is not
// reachable now, and the requestor may try again.
func RejectTemporarily() Decision {
	return Decision{Reject: &AssociateRJ{Result: RejectTransient, Source: RejectSourceServiceProviderPresent, Reason: RejectReasonTemporaryCongestion}}
}

// RejectNoReason rejects permanently without a reason.
func RejectNoReason() Decision {
	return Decision{Reject: &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonNoReason}}
}

// Policy decides whether to accept an association. It runs before
// presentation contexts are negotiated; it must not block for long (the
// requestor is waiting within its own timeout).
type Policy func(ctx context.Context, req *AssociationRequest) Decision

// AssociationInfo describes an established association to handlers and hooks.
type AssociationInfo struct {
	ID                        string
	CallingAE, CalledAE       string
	RemoteAddr                net.Addr
	UserIdentity              *UserIdentity
	ImplementationClassUID    string
	ImplementationVersionName string
	PeerMaxPDULength          uint32
	Services                  Services
	Value                     any
	Opened                    time.Time
}

// StoreRequest is an incoming C-STORE (or a C-GET sub-operation received by
// the SCU).
type StoreRequest struct {
	Assoc          *AssociationInfo
	MessageID      uint16
	Priority       uint16
	SOPClassUID    string
	SOPInstanceUID string
	// TransferSyntax of the data set (the presentation context's).
	TransferSyntax string
	// MoveOriginatorAE / MoveOriginatorMessageID are set when the store is a
	// C-MOVE sub-operation.
	MoveOriginatorAE        string
	MoveOriginatorMessageID uint16
}

// StoreHandler receives C-STORE data sets. data streams the data set bytes
// (no file meta) as the PDVs arrive; it ends with io.EOF after the last
// fragment, or with an error if the association fails midway (then nothing
// must be kept). Return StatusSuccess only when the instance is durable. An
// error with a non-failure status is answered with StatusProcessingFailure;
// a *StatusError chooses the status and error comment.
type StoreHandler interface {
	Store(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error)
}

// StoreFunc adapts a function to StoreHandler.
type StoreFunc func(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error)

// Store implements StoreHandler.
func (f StoreFunc) Store(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error) {
	return f(ctx, req, data)
}

// EchoHandler answers C-ECHO (nil Server.Echo: always success).
type EchoHandler interface {
	Echo(ctx context.Context, assoc *AssociationInfo) Status
}

// QueryRequest is an incoming C-FIND, C-MOVE or C-GET.
type QueryRequest struct {
	Assoc       *AssociationInfo
	Command     uint16 // CFindRQ, CMoveRQ or CGetRQ
	MessageID   uint16
	Priority    uint16
	SOPClassUID string // the information model (patient/study root, worklist)
	// TransferSyntax of Identifier and of responses.
	TransferSyntax string
	// Identifier holds the raw identifier data set.
	Identifier []byte
	// MoveDestination is the destination AE of a C-MOVE.
	MoveDestination string
	// PendingStatus is the status of C-FIND pending responses (default
	// StatusPending); a handler may set StatusPendingOptionalKeysMissing.
	PendingStatus Status
}

// Dataset decodes the identifier with the bounded header reader.
func (q *QueryRequest) Dataset() (*header.Dataset, error) {
	h, err := header.Read(bytesReader(q.Identifier), header.Options{TransferSyntax: q.TransferSyntax, MaxValueLength: 1 << 20, MaxHeaderBytes: int64(len(q.Identifier)) + 1})
	if err != nil {
		return nil, fmt.Errorf("dimse: identifier: %w", err)
	}
	return h.Dataset, nil
}

// FindHandler answers C-FIND. For every match it calls emit, which sends a
// pending response; emit returns an error when the request was cancelled
// (C-CANCEL, association gone): stop then. The returned status is the final
// one (StatusSuccess normally; the server sends StatusCancel after a
// C-CANCEL whatever is returned). Set req.PendingStatus to
// StatusPendingOptionalKeysMissing to flag unsupported optional keys.
type FindHandler interface {
	Find(ctx context.Context, req *QueryRequest, emit func(match *header.Dataset) error) (Status, error)
}

// FindFunc adapts a function to FindHandler.
type FindFunc func(ctx context.Context, req *QueryRequest, emit func(*header.Dataset) error) (Status, error)

// Find implements FindHandler.
func (f FindFunc) Find(ctx context.Context, req *QueryRequest, emit func(*header.Dataset) error) (Status, error) {
	return f(ctx, req, emit)
}

// Instance is one stored instance to send in a C-MOVE or C-GET sub-operation.
type Instance struct {
	SOPClassUID    string
	SOPInstanceUID string
	TransferSyntax string
	// Open returns the data set bytes (no file meta) in TransferSyntax.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// RetrieveHandler resolves a C-MOVE or C-GET identifier to the instances to
// send. Return a *StatusError for failures (e.g. StatusDataSetDoesNotMatchSOP
// for a bad identifier, StatusOutOfResourcesMatches).
type RetrieveHandler interface {
	Retrieve(ctx context.Context, req *QueryRequest) ([]Instance, error)
}

// RetrieveFunc adapts a function to RetrieveHandler.
type RetrieveFunc func(ctx context.Context, req *QueryRequest) ([]Instance, error)

// Retrieve implements RetrieveHandler.
func (f RetrieveFunc) Retrieve(ctx context.Context, req *QueryRequest) ([]Instance, error) {
	return f(ctx, req)
}

// Destination is where C-MOVE sub-operations go.
type Destination struct {
	Addr string // host:port
	AE   string // called AE title (normally the move destination)
	// TLS, when set, opens the association over TLS (DialOptions.TLS).
	TLS *tls.Config
	// Dial overrides how the association is opened (custom dialer).
	Dial func(ctx context.Context, addr string, opts DialOptions) (*Association, error)
}

// MoveHandler answers C-MOVE: Retrieve plus resolving the destination AE.
// Return ErrUnknownDestination (or a StatusError with
// StatusMoveDestinationUnknown) for unknown titles.
type MoveHandler interface {
	RetrieveHandler
	Destination(ctx context.Context, req *QueryRequest, aeTitle string) (Destination, error)
}

// ErrUnknownDestination is answered with StatusMoveDestinationUnknown.
var ErrUnknownDestination = Fail(StatusMoveDestinationUnknown, "move destination unknown", nil)

// Transcoder converts an instance to one of the accepted transfer syntaxes
// for sub-operations; nil or an error fails the sub-operation.
type Transcoder func(ctx context.Context, inst Instance, accepted []string) (Instance, error)

// Hooks are optional callbacks for metrics and audit. They run synchronously
// on the association's goroutine; keep them fast.
type Hooks struct {
	// AssociationRejected is called for rejected (and policy-refused) requests.
	AssociationRejected func(req *AssociationRequest, rj *AssociateRJ)
	// AssociationOpened is called once the A-ASSOCIATE-AC is sent.
	AssociationOpened func(info *AssociationInfo)
	// AssociationClosed is called when the association ends. reason is one of
	// "released", "aborted", "peer-aborted", "closed", "idle-timeout",
	// "protocol-error", "shutdown".
	AssociationClosed func(info *AssociationInfo, reason string, stats AssociationStats)
	// DIMSE is called after each request handled (or sub-operation sent):
	// op is "C-ECHO", "C-STORE", "C-FIND", "C-MOVE", "C-GET" or
	// "C-STORE-SUBOP"; bytes counts data set bytes received or sent.
	DIMSE func(info *AssociationInfo, op string, status Status, d time.Duration, bytes int64)
}

// AssociationStats are per-association counters.
type AssociationStats struct {
	Requests      int
	Stores        int
	StoreFailures int
	BytesIn       int64
	BytesOut      int64
	Duration      time.Duration
}

type readerFromBytes struct {
	b []byte
	i int
}

func (r *readerFromBytes) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &readerFromBytes{b: b} }

// SOPRef names one instance (Referenced SOP Class/Instance UID).
type SOPRef struct{ SOPClassUID, SOPInstanceUID string }

// CommitRequest is a Storage Commitment Push Model request (N-ACTION-RQ,
// action type 1).
type CommitRequest struct {
	Assoc          *AssociationInfo
	TransactionUID string
	Refs           []SOPRef // the Referenced SOP Sequence
}

// CommitHandler takes storage commitment requests. Commit returns quickly
// (the N-ACTION-RSP waits on it): nil means the request is taken and a
// report (N-EVENT-REPORT) will follow; a StatusError refuses it.
type CommitHandler interface {
	Commit(ctx context.Context, req *CommitRequest) error
}

// CommitResult is a storage commitment report (PS3.4 J.3.3): the instances
// committed and those that failed, each failure with its reason
// (StatusNoSuchSOPInstance, StatusClassInstanceConflict,
// StatusProcessingFailure …).
type CommitResult struct {
	TransactionUID string
	Committed      []SOPRef
	Failed         []CommitFailure
}

// CommitFailure is one instance that is not committed.
type CommitFailure struct {
	SOPRef
	Reason Status
}
