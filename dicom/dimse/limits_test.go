package dimse

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
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
