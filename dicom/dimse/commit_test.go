package dimse

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/uid"
)

func TestCommitCommandsEncodeTheirTypeIDs(t *testing.T) {
	for _, c := range []*Command{
		{CommandField: NActionRQ, MessageID: 7, RequestedSOPClassUID: uid.StorageCommitmentPushModel, RequestedSOPInstanceUID: uid.StorageCommitmentPushModelInstance, ActionTypeID: 1, HasDataSet: true},
		{CommandField: NEventReportRQ, MessageID: 8, AffectedSOPClassUID: uid.StorageCommitmentPushModel, AffectedSOPInstanceUID: uid.StorageCommitmentPushModelInstance, EventTypeID: 2, HasDataSet: true},
		{CommandField: NEventReportRSP, MessageIDBeingRespondedTo: 8, AffectedSOPClassUID: uid.StorageCommitmentPushModel, EventTypeID: 2, Status: StatusSuccess},
	} {
		b := c.Encode()
		require.False(t, bytes.Contains(b, []byte{0, 0, 0, 7, 2, 0, 0, 0}), "%s: no Priority (0000,0700): it belongs to C- requests", c.Name())
		got, err := DecodeCommand(b[12:]) // after the group length
		require.NoError(t, err)
		require.Equal(t, c, got, c.Name())
	}
}

func TestCommitResultRoundTrip(t *testing.T) {
	res := CommitResult{TransactionUID: "1.2.3.4", Committed: []SOPRef{{"1.2.840.10008.5.1.4.1.1.1.3", "1.2.3.5"}},
		Failed: []CommitFailure{{SOPRef{"1.2.840.10008.5.1.4.1.1.1.3", "1.2.3.6"}, StatusNoSuchSOPInstance}}}
	b, err := commitDataSet(res.TransactionUID, res.Committed, res.Failed).Encode(uid.ImplicitVRLittleEndian)
	require.NoError(t, err)
	got, err := ParseCommitResult(b, uid.ImplicitVRLittleEndian)
	require.NoError(t, err)
	require.Equal(t, res, got)
}

type commitRecorder struct {
	mu   sync.Mutex
	reqs []*CommitRequest
	err  error
}

func (r *commitRecorder) Commit(_ context.Context, req *CommitRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return r.err
}

// TestCommitRequests: the N-ACTION reaches the handler with its Transaction
// UID and references; a wrong instance, action type or data set, or a
// refusal by the handler, is answered with its status and never reaches it.
func TestCommitRequests(t *testing.T) {
	rec := &commitRecorder{}
	addr := startServer(t, &Server{Commit: rec})
	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{{AbstractSyntax: uid.StorageCommitmentPushModel, TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}}}})
	defer a.Close()
	ctx := context.Background()
	refs := []SOPRef{{uid.DigitalIntraOralXRayForPresentation, "1.2.3.1"}, {uid.DigitalIntraOralXRayForPresentation, "1.2.3.2"}}
	st, err := a.RequestCommitment(ctx, "2.25.1", refs)
	require.NoError(t, err)
	require.Equal(t, StatusSuccess, st)
	require.Len(t, rec.reqs, 1)
	require.Equal(t, "2.25.1", rec.reqs[0].TransactionUID)
	require.Equal(t, refs, rec.reqs[0].Refs)
	require.NotNil(t, rec.reqs[0].Assoc)

	for _, c := range []struct {
		name string
		cmd  Command
		refs []SOPRef
		tx   string
		want Status
	}{
		{"another instance", Command{CommandField: NActionRQ, RequestedSOPClassUID: uid.StorageCommitmentPushModel, RequestedSOPInstanceUID: "1.2.3", ActionTypeID: 1}, refs, "2.25.2", StatusNoSuchSOPInstance},
		{"another action", Command{CommandField: NActionRQ, RequestedSOPClassUID: uid.StorageCommitmentPushModel, RequestedSOPInstanceUID: uid.StorageCommitmentPushModelInstance, ActionTypeID: 2}, refs, "2.25.3", StatusNoSuchAction},
		{"no transaction", Command{CommandField: NActionRQ, RequestedSOPClassUID: uid.StorageCommitmentPushModel, RequestedSOPInstanceUID: uid.StorageCommitmentPushModelInstance, ActionTypeID: 1}, refs, "", StatusMissingAttribute},
		{"no references", Command{CommandField: NActionRQ, RequestedSOPClassUID: uid.StorageCommitmentPushModel, RequestedSOPInstanceUID: uid.StorageCommitmentPushModelInstance, ActionTypeID: 1}, nil, "2.25.4", StatusMissingAttribute},
	} {
		cmd := c.cmd
		st, err := a.sendCommitment(ctx, &cmd, commitDataSet(c.tx, c.refs, nil))
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, st, c.name)
	}
	require.Len(t, rec.reqs, 1, "refused requests never reach the handler")

	// 10,000 references of 64-character UIDs (about 1.2 MB) are taken.
	many := make([]SOPRef, 10000)
	for i := range many {
		many[i] = SOPRef{uid.DigitalIntraOralXRayForPresentation, fmt.Sprintf("2.25.%059d", i)}
	}
	st, err = a.RequestCommitment(ctx, "2.25.10", many)
	require.NoError(t, err)
	require.Equal(t, StatusSuccess, st)
	require.Len(t, rec.reqs[len(rec.reqs)-1].Refs, 10000)
	rec.reqs = rec.reqs[:1]

	rec.err = Fail(StatusNotAuthorized, "not yours", nil)
	st, err = a.RequestCommitment(ctx, "2.25.5", refs)
	require.NoError(t, err)
	require.Equal(t, StatusNotAuthorized, st)
	require.NoError(t, a.Release(ctx))

	// A server without a commitment handler does not offer the SOP class.
	addr = startServer(t, &Server{Store: &memStore{}})
	b := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{VerificationContext(), {AbstractSyntax: uid.StorageCommitmentPushModel, TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}}}})
	defer b.Close()
	_, err = b.RequestCommitment(ctx, "2.25.6", refs)
	require.ErrorIs(t, err, ErrNoPresentationContext)
}

// TestCommitStatusNames: the statuses a storage commitment request can be
// refused with are named in logs, not "Unknown status".
func TestCommitStatusNames(t *testing.T) {
	for _, s := range []Status{StatusNoSuchAction, StatusNoSuchSOPInstance, StatusMissingAttribute, StatusNotAuthorized, StatusResourceLimitation} {
		require.NotContains(t, s.String(), "Unknown", s.String())
	}
}
