package dimse

import (
	"context"
	"io"
	"sync"
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

func TestSubOpContexts(t *testing.T) {
	ioClass := uid.DigitalIntraOralXRayForPresentation
	inst := func(class, ts string) Instance { return Instance{SOPClassUID: class, TransferSyntax: ts} }
	plain := func(class, ts string) ProposedContext {
		return ProposedContext{AbstractSyntax: class, TransferSyntaxes: []string{ts}}
	}
	alternatives := func(class string) ProposedContext {
		return ProposedContext{AbstractSyntax: class, TransferSyntaxes: uid.UncompressedTransferSyntaxes()}
	}
	cases := []struct {
		name         string
		insts        []Instance
		canTranscode bool
		want         []ProposedContext
	}{
		{"uncompressed, no transcoder: as stored", []Instance{inst(ioClass, uid.ExplicitVRLittleEndian), inst(ioClass, uid.ExplicitVRLittleEndian)}, false,
			[]ProposedContext{plain(ioClass, uid.ExplicitVRLittleEndian)}},
		{"uncompressed with transcoder: the other uncompressed syntaxes too", []Instance{inst(ioClass, uid.ExplicitVRLittleEndian)}, true,
			[]ProposedContext{plain(ioClass, uid.ExplicitVRLittleEndian), alternatives(ioClass)}},
		{"compressed with transcoder", []Instance{inst(ioClass, uid.JPEGLosslessSV1), inst(ioClass, uid.ImplicitVRLittleEndian)}, true,
			[]ProposedContext{plain(ioClass, uid.JPEGLosslessSV1), alternatives(ioClass), plain(ioClass, uid.ImplicitVRLittleEndian)}},
		{"per SOP class", []Instance{inst(ioClass, uid.ExplicitVRLittleEndian), inst(uid.CTImage, uid.ExplicitVRLittleEndian)}, true,
			[]ProposedContext{plain(ioClass, uid.ExplicitVRLittleEndian), alternatives(ioClass), plain(uid.CTImage, uid.ExplicitVRLittleEndian), alternatives(uid.CTImage)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, subOpContexts(tc.insts, tc.canTranscode))
		})
	}
}

// A C-MOVE destination that accepts only Implicit VR Little Endian gets the
// Explicit VR Little Endian instances converted by the Transcoder.
func TestMoveConvertsForImplicitVROnlyDestination(t *testing.T) {
	dest := &memStore{}
	destAddr := startServer(t, &Server{AETitle: "DEST", Store: dest, StorageTransferSyntaxes: []string{uid.ImplicitVRLittleEndian}})
	ar := &archive{insts: map[string][]byte{"1.9.1": sampleDataset("1.9.1", 100), "1.9.2": sampleDataset("1.9.2", 100)}, dest: destAddr}
	var mu sync.Mutex
	var offered [][]string
	relabel := func(ctx context.Context, inst Instance, accepted []string) (Instance, error) {
		mu.Lock()
		offered = append(offered, accepted)
		mu.Unlock()
		inst.TransferSyntax = uid.ImplicitVRLittleEndian // the conversion itself is dicom/query's
		return inst, nil
	}
	addr := startServer(t, &Server{AETitle: "MOLAR", Move: ar, Transcode: relabel})
	a := dialTest(t, addr, DialOptions{Contexts: moveContexts()})
	defer a.Close()
	res, err := a.Move(context.Background(), uid.StudyRootQueryRetrieveMove, "DEST", studyQuery(), nil)
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, res.Status)
	assert.Equal(t, uint16(2), res.Completed)
	for _, u := range []string{"1.9.1", "1.9.2"} {
		it, ok := dest.get(u)
		require.True(t, ok, u)
		assert.Equal(t, uid.ImplicitVRLittleEndian, it.req.TransferSyntax)
	}
	assert.Equal(t, [][]string{{uid.ImplicitVRLittleEndian}, {uid.ImplicitVRLittleEndian}}, offered)
}
