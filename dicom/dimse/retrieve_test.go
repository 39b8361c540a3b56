package dimse

import (
	"context"
	"fmt"
	"io"
	"strings"
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

// blockingMove blocks in Destination or in the destination dial until the
// request is cancelled.
type blockingMove struct {
	archive
	inLookup bool
}

func (b *blockingMove) Destination(ctx context.Context, req *QueryRequest, ae string) (Destination, error) {
	if b.inLookup {
		<-ctx.Done()
		return Destination{}, ctx.Err()
	}
	return Destination{Addr: "127.0.0.1:1", Dial: func(ctx context.Context, addr string, opts DialOptions) (*Association, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}, nil
}

// A C-CANCEL that arrives while the destination is looked up or dialled
// ends the C-MOVE with status Cancel, not as a destination failure.
func TestMoveCancelledBeforeSubOperations(t *testing.T) {
	cases := []struct {
		name          string
		inLookup      bool
		wantRemaining uint16
	}{
		{"during destination lookup", true, 0},
		{"during the dial", false, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &blockingMove{archive: archive{insts: map[string][]byte{"1.9.1": sampleDataset("1.9.1", 10), "1.9.2": sampleDataset("1.9.2", 10)}}, inLookup: tc.inLookup}
			addr := startServer(t, &Server{Move: h})
			a := dialTest(t, addr, DialOptions{Contexts: moveContexts()})
			defer a.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			res, err := a.Move(ctx, uid.StudyRootQueryRetrieveMove, "DEST", studyQuery(), nil)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			require.NotNil(t, res)
			assert.Equal(t, StatusCancel, res.Status)
			assert.Equal(t, tc.wantRemaining, res.Remaining)
			assert.Zero(t, res.Completed+res.Failed+res.Warning)
		})
	}
}

// Sub-operation counters are 16 bits: beyond 65535 instances they are
// clamped, never wrapped.
func TestRetrieveCountersClampedBeyond65535(t *testing.T) {
	const n = 70_000
	insts := make([]Instance, n)
	for i := range insts {
		insts[i] = Instance{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: fmt.Sprintf("1.%d", i), TransferSyntax: uid.ExplicitVRLittleEndian}
	}
	// No storage context with the SCP role: every sub-operation fails at once.
	addr := startServer(t, &Server{Get: RetrieveFunc(func(ctx context.Context, req *QueryRequest) ([]Instance, error) { return insts, nil })})
	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{{AbstractSyntax: uid.StudyRootQueryRetrieveGet, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}}}})
	defer a.Close()
	last := SubOpCounts{Remaining: 0xFFFF}
	pendings := 0
	res, err := a.Get(context.Background(), uid.StudyRootQueryRetrieveGet, studyQuery(), &memStore{}, func(c SubOpCounts) {
		pendings++
		if c.Remaining > last.Remaining || c.Failed < last.Failed {
			t.Errorf("counters wrapped: %+v after %+v", c, last)
		}
		last = c
	})
	require.NoError(t, err)
	assert.Equal(t, n-1, pendings)
	assert.Equal(t, uint16(1), last.Remaining)
	assert.Equal(t, StatusOutOfResourcesSubOps, res.Status)
	assert.Equal(t, uint16(0xFFFF), res.Failed)
	// The list is cut to what its 16-bit length can hold.
	require.Greater(t, len(res.FailedSOPInstanceUIDs), 5000)
	assert.Equal(t, uidsOf(insts[:len(res.FailedSOPInstanceUIDs)]), res.FailedSOPInstanceUIDs)
}

func uidsOf(insts []Instance) []string {
	out := make([]string, len(insts))
	for i, in := range insts {
		out[i] = in.SOPInstanceUID
	}
	return out
}

func TestFitUIDList(t *testing.T) {
	long := strings.Repeat("1", 63)
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = long
		}
		return out
	}
	cases := []struct {
		name  string
		uids  []string
		count int
	}{
		{"empty", nil, 0},
		{"short", []string{"1.2", "1.3"}, 2},
		{"exactly 0xFFFE bytes", []string{strings.Repeat("1", 32767), strings.Repeat("2", 32766)}, 2},
		{"padding goes over", []string{strings.Repeat("1", 32767), strings.Repeat("2", 32767)}, 1},
		{"the 1024th would go over", many(1025), 1023}, // 1024*64 - 1 = 65535
	}
	for _, tc := range cases {
		assert.Len(t, fitUIDList(tc.uids), tc.count, tc.name)
	}
}

func TestSubOpTallyCounts(t *testing.T) {
	cases := []struct {
		tally         subOpTally
		withRemaining bool
		want          SubOpCounts
	}{
		{subOpTally{remaining: 3, completed: 1, failed: 2, warning: 4}, true, SubOpCounts{Remaining: 3, Completed: 1, Failed: 2, Warning: 4, HasRemaining: true}},
		{subOpTally{remaining: 3, completed: 1}, false, SubOpCounts{Completed: 1}},
		{subOpTally{remaining: 70_000, completed: 65_536, failed: 1 << 20, warning: 0xFFFF}, true, SubOpCounts{Remaining: 0xFFFF, Completed: 0xFFFF, Failed: 0xFFFF, Warning: 0xFFFF, HasRemaining: true}},
	}
	for _, tc := range cases {
		assert.Equal(t, &tc.want, tc.tally.counts(tc.withRemaining), "%+v", tc.tally)
	}
}
