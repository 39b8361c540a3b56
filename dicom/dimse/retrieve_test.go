package dimse

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

func studyQuery() *header.Dataset {
	q := header.NewDataset()
	q.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	q.SetString(header.TagStudyInstanceUID, "UI", "1.9")
	return q
}

func moveContexts() []ProposedContext {
	return []ProposedContext{{AbstractSyntax: uid.StudyRootQueryRetrieveMove, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}}}
}

// The requestor is silent while its C-MOVE runs (it awaits the responses):
// the idle timeout must not abort the association then, only once no
// operation is in progress.
func TestIdleTimeoutSuspendedWhileMoveRuns(t *testing.T) {
	slow := StoreFunc(func(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error) {
		_, err := io.Copy(io.Discard, data)
		time.Sleep(150 * time.Millisecond)
		return StatusSuccess, err
	})
	destAddr := startServer(t, &Server{AETitle: "DEST", Store: slow})
	insts := map[string][]byte{}
	for _, u := range []string{"1.9.1", "1.9.2", "1.9.3", "1.9.4"} {
		insts[u] = sampleDataset(u, 100)
	}
	reasons := make(chan string, 1)
	addr := startServer(t, &Server{AETitle: "MOLAR", Move: &archive{insts: insts, dest: destAddr}, IdleTimeout: 250 * time.Millisecond,
		Hooks: Hooks{AssociationClosed: func(_ *AssociationInfo, r string, _ AssociationStats) { reasons <- r }}})
	a := dialTest(t, addr, DialOptions{Contexts: moveContexts()})
	defer a.Close()

	res, err := a.Move(context.Background(), uid.StudyRootQueryRetrieveMove, "DEST", studyQuery(), nil)
	require.NoError(t, err, "the move takes longer than the idle timeout")
	assert.Equal(t, StatusSuccess, res.Status)
	assert.Equal(t, uint16(4), res.Completed)

	// Idle again: the timeout applies once more.
	select {
	case r := <-reasons:
		assert.Equal(t, "idle-timeout", r)
	case <-time.After(5 * time.Second):
		t.Fatal("idle association not aborted after the move")
	}
}

// While a C-GET runs the idle timeout is suspended; a requestor that stops
// answering the C-STORE sub-operations is still cut off after it.
func TestGetAbortsWhenRequestorStopsAnswering(t *testing.T) {
	reasons := make(chan string, 1)
	ar := &archive{insts: map[string][]byte{"1.9.1": sampleDataset("1.9.1", 100)}}
	addr := startServer(t, &Server{Get: ar, IdleTimeout: 200 * time.Millisecond,
		Hooks: Hooks{AssociationClosed: func(_ *AssociationInfo, r string, _ AssociationStats) { reasons <- r }}})
	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{
		{AbstractSyntax: uid.StudyRootQueryRetrieveGet, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}},
		{AbstractSyntax: uid.DigitalIntraOralXRayForPresentation, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}, ProposeSCPRole: true},
	}})
	defer a.Close()
	stuck := StoreFunc(func(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error) {
		time.Sleep(time.Second)
		_, err := io.Copy(io.Discard, data)
		return StatusSuccess, err
	})
	_, err := a.Get(context.Background(), uid.StudyRootQueryRetrieveGet, studyQuery(), stuck, nil)
	assert.Error(t, err)
	select {
	case r := <-reasons:
		assert.Equal(t, "idle-timeout", r)
	case <-time.After(5 * time.Second):
		t.Fatal("association not aborted")
	}
}
