package dimse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("DIMSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs s on a loopback port and returns its address.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	if s.Logger == nil {
		s.Logger = testLogger(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		assert.ErrorIs(t, <-done, ErrServerClosed)
	})
	return ln.Addr().String()
}

// memStore keeps received instances.
type memStore struct {
	mu    sync.Mutex
	items map[string]storedItem
}

type storedItem struct {
	req  StoreRequest
	data []byte
}

func (m *memStore) Store(ctx context.Context, req *StoreRequest, data io.Reader) (Status, error) {
	b, err := io.ReadAll(data)
	if err != nil {
		return StatusProcessingFailure, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items == nil {
		m.items = map[string]storedItem{}
	}
	m.items[req.SOPInstanceUID] = storedItem{req: *req, data: b}
	return StatusSuccess, nil
}

func (m *memStore) get(uid string) (storedItem, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[uid]
	return it, ok
}

func (m *memStore) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

func sampleDataset(sopInstance string, pixelBytes int) []byte {
	d := header.NewDataset()
	d.SetString(header.TagSOPClassUID, "UI", uid.DigitalIntraOralXRayForPresentation)
	d.SetString(header.TagSOPInstanceUID, "UI", sopInstance)
	d.SetString(header.TagPatientName, "PN", "Test^Patient")
	d.SetString(header.TagModality, "CS", "IO")
	b, _ := d.Encode(uid.ExplicitVRLittleEndian)
	pd := header.NewDataset()
	px := make([]byte, pixelBytes)
	for i := range px {
		px[i] = byte(i * 7)
	}
	pd.Set(&header.Element{Tag: header.TagPixelData, VR: "OW", Value: px})
	pb, _ := pd.Encode(uid.ExplicitVRLittleEndian)
	return append(b, pb...)
}

func dialTest(t testing.TB, addr string, opts DialOptions) *Association {
	t.Helper()
	if opts.CallingAE == "" {
		opts.CallingAE = "TESTSCU"
	}
	if opts.CalledAE == "" {
		opts.CalledAE = "MOLAR"
	}
	if opts.Contexts == nil {
		opts.Contexts = append([]ProposedContext{VerificationContext()}, StorageContexts([]string{uid.DigitalIntraOralXRayForPresentation}, []string{uid.ExplicitVRLittleEndian})...)
	}
	opts.Logger = testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := Dial(ctx, addr, opts)
	require.NoError(t, err)
	return a
}

func TestLoopbackEchoStoreRelease(t *testing.T) {
	store := &memStore{}
	var opened, closed sync.WaitGroup
	opened.Add(1)
	closed.Add(1)
	var closeReason string
	var dimseOps []string
	var mu sync.Mutex
	s := &Server{AETitle: "MOLAR", Store: store, Hooks: Hooks{
		AssociationOpened: func(*AssociationInfo) { opened.Done() },
		AssociationClosed: func(_ *AssociationInfo, r string, _ AssociationStats) { closeReason = r; closed.Done() },
		DIMSE: func(_ *AssociationInfo, op string, st Status, _ time.Duration, _ int64) {
			mu.Lock()
			dimseOps = append(dimseOps, op)
			mu.Unlock()
		},
	}}
	addr := startServer(t, s)
	a := dialTest(t, addr, DialOptions{})
	opened.Wait()
	ctx := context.Background()
	st, err := a.Echo(ctx)
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)

	data := sampleDataset("1.2.3.4.1", 300_000)
	st, err = a.Store(ctx, StoreParams{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: "1.2.3.4.1", TransferSyntax: uid.ExplicitVRLittleEndian}, bytes.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)
	got, ok := store.get("1.2.3.4.1")
	require.True(t, ok)
	assert.Equal(t, sha256.Sum256(data), sha256.Sum256(got.data))
	assert.Equal(t, uid.ExplicitVRLittleEndian, got.req.TransferSyntax)
	assert.Equal(t, "TESTSCU", got.req.Assoc.CallingAE)

	// No context for CT: refused locally.
	_, err = a.Store(ctx, StoreParams{SOPClassUID: uid.CTImage, SOPInstanceUID: "1.2"}, bytes.NewReader(data))
	assert.ErrorIs(t, err, ErrNoPresentationContext)

	require.NoError(t, a.Release(ctx))
	closed.Wait()
	assert.Equal(t, "released", closeReason)
	mu.Lock()
	assert.Equal(t, []string{"C-ECHO", "C-STORE"}, dimseOps)
	mu.Unlock()
	_, err = a.Echo(ctx)
	assert.ErrorIs(t, err, ErrReleased)
}

func TestTinyMaxPDUFragmentation(t *testing.T) {
	store := &memStore{}
	s := &Server{Store: store, MaxPDULength: MinMaxPDULength} // server receives PDUs of at most 512 bytes
	addr := startServer(t, s)
	a := dialTest(t, addr, DialOptions{MaxPDULength: 600})
	defer a.Close()
	assert.Equal(t, uint32(MinMaxPDULength), a.PeerMaxPDULength())
	data := sampleDataset("1.2.3.4.2", 5000)
	st, err := a.Store(context.Background(), StoreParams{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: "1.2.3.4.2"}, bytes.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)
	got, _ := store.get("1.2.3.4.2")
	assert.Equal(t, data, got.data)
}

func TestRejectUnknownAE(t *testing.T) {
	var rejected *AssociateRJ
	s := &Server{AETitle: "MOLAR",
		Policy: func(ctx context.Context, req *AssociationRequest) Decision {
			if req.CallingAE != "KNOWN" {
				return RejectCallingAE()
			}
			return Accept(ServicesAll)
		},
		Hooks: Hooks{AssociationRejected: func(_ *AssociationRequest, rj *AssociateRJ) { rejected = rj }},
	}
	addr := startServer(t, s)
	ctx := context.Background()
	_, err := Dial(ctx, addr, DialOptions{CallingAE: "STRANGER", CalledAE: "MOLAR", Contexts: []ProposedContext{VerificationContext()}})
	var rj *RejectedError
	require.ErrorAs(t, err, &rj)
	assert.Equal(t, RejectReasonCallingAENotRecognized, rj.Reason)
	assert.Equal(t, RejectPermanent, rj.Result)
	require.NotNil(t, rejected)

	_, err = Dial(ctx, addr, DialOptions{CallingAE: "KNOWN", CalledAE: "OTHER", Contexts: []ProposedContext{VerificationContext()}})
	require.ErrorAs(t, err, &rj)
	assert.Equal(t, RejectReasonCalledAENotRecognized, rj.Reason)

	a, err := Dial(ctx, addr, DialOptions{CallingAE: "KNOWN", CalledAE: "MOLAR", Contexts: []ProposedContext{VerificationContext()}})
	require.NoError(t, err)
	require.NoError(t, a.Release(ctx))
}

func TestPolicyServicesAndUserIdentity(t *testing.T) {
	var seen UserIdentity
	s := &Server{Store: &memStore{}, Find: FindFunc(func(ctx context.Context, req *QueryRequest, emit func(*header.Dataset) error) (Status, error) {
		return StatusSuccess, nil
	}),
		Policy: func(ctx context.Context, req *AssociationRequest) Decision {
			seen = *req.UserIdentity
			seen.Secondary = slices.Clone(seen.Secondary)
			return Decision{Services: ServiceEcho | ServiceStore, UserIdentityVerified: true, UserIdentityResponse: []byte("ok")}
		}}
	addr := startServer(t, s)
	a := dialTest(t, addr, DialOptions{
		UserIdentity: &UserIdentity{Type: IdentityUsernamePasscode, PositiveResponseRequested: true, Primary: []byte("anna"), Secondary: []byte("secret")},
		Contexts: []ProposedContext{VerificationContext(), {AbstractSyntax: uid.StudyRootQueryRetrieveFind, TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}},
			{AbstractSyntax: "1.2.3.999", TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}},
			{AbstractSyntax: uid.CTImage, TransferSyntaxes: []string{"1.2.3.4.5.6"}}},
		AsyncOps: &AsyncOps{MaxInvoked: 5, MaxPerformed: 5},
	})
	defer a.Close()
	assert.Equal(t, "anna", seen.Username())
	assert.Equal(t, []byte("secret"), seen.Secondary)
	assert.Equal(t, []byte("ok"), a.AssociateAC().UserInfo.UserIdentityResponse)
	assert.Equal(t, &AsyncOps{MaxInvoked: 1, MaxPerformed: 1}, a.AssociateAC().UserInfo.AsyncOps)
	ctxs := a.Contexts()
	require.Len(t, ctxs, 4)
	assert.Equal(t, ResultAcceptance, ctxs[0].Result)
	assert.Equal(t, ResultUserRejection, ctxs[1].Result, "find not allowed by policy")
	assert.Equal(t, ResultAbstractSyntaxNotSupported, ctxs[2].Result)
	assert.Equal(t, ResultTransferSyntaxNotSupported, ctxs[3].Result)
}

func TestFindWithCancel(t *testing.T) {
	release := make(chan struct{})
	s := &Server{Find: FindFunc(func(ctx context.Context, req *QueryRequest, emit func(*header.Dataset) error) (Status, error) {
		q, err := req.Dataset()
		if err != nil {
			return StatusCannotUnderstand, err
		}
		if q.Get(header.TagPatientName) == "NONE" {
			return StatusSuccess, nil
		}
		for i := 0; i < 1000; i++ {
			r := header.NewDataset()
			r.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
			r.SetString(header.TagPatientName, "PN", q.Get(header.TagPatientName))
			r.SetString(header.TagStudyInstanceUID, "UI", "1.2.3."+string(rune('0'+i%10)))
			if err := emit(r); err != nil {
				return StatusProcessingFailure, err
			}
			if i == 2 {
				<-release
			}
		}
		return StatusSuccess, nil
	})}
	addr := startServer(t, s)
	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{{AbstractSyntax: uid.StudyRootQueryRetrieveFind, TransferSyntaxes: []string{uid.ImplicitVRLittleEndian}}}})
	defer a.Close()
	q := header.NewDataset()
	q.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	q.SetString(header.TagPatientName, "PN", "NONE")
	st, err := a.Find(context.Background(), uid.StudyRootQueryRetrieveFind, q, func(*header.Dataset) error { t.Fatal("no match expected"); return nil })
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)

	q.SetString(header.TagPatientName, "PN", "Hansen*")
	var got []string
	stopErr := errors.New("enough")
	st, err = a.Find(context.Background(), uid.StudyRootQueryRetrieveFind, q, func(r *header.Dataset) error {
		got = append(got, r.Get(header.TagPatientName))
		if len(got) == 3 {
			// Unblock the handler only after our C-CANCEL had time to arrive
			// (a cancel arriving after completion rightly yields Success).
			go func() { time.Sleep(100 * time.Millisecond); close(release) }()
			return stopErr
		}
		return nil
	})
	assert.ErrorIs(t, err, stopErr)
	assert.Equal(t, StatusCancel, st)
	assert.Equal(t, []string{"Hansen*", "Hansen*", "Hansen*"}, got)
	// The association is still usable.
	q.SetString(header.TagPatientName, "PN", "NONE")
	st, err = a.Find(context.Background(), uid.StudyRootQueryRetrieveFind, q, func(*header.Dataset) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, st)
}

// archive serves instances from memory for retrieve tests.
type archive struct {
	insts map[string][]byte
	dest  string
}

func (ar *archive) Retrieve(ctx context.Context, req *QueryRequest) ([]Instance, error) {
	q, err := req.Dataset()
	if err != nil {
		return nil, Fail(StatusDataSetDoesNotMatchSOP, "bad identifier", err)
	}
	if q.Get(header.TagQueryRetrieveLevel) == "" {
		return nil, Fail(StatusDataSetDoesNotMatchSOP, "no level", nil)
	}
	var out []Instance
	for u, b := range ar.insts {
		b := b
		out = append(out, Instance{SOPClassUID: uid.DigitalIntraOralXRayForPresentation, SOPInstanceUID: u, TransferSyntax: uid.ExplicitVRLittleEndian,
			Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }})
	}
	return out, nil
}

func (ar *archive) Destination(ctx context.Context, req *QueryRequest, ae string) (Destination, error) {
	if ae != "DEST" {
		return Destination{}, ErrUnknownDestination
	}
	return Destination{Addr: ar.dest}, nil
}

func TestMoveAndGetLoopback(t *testing.T) {
	destStore := &memStore{}
	destAddr := startServer(t, &Server{AETitle: "DEST", Store: destStore})
	ar := &archive{insts: map[string][]byte{"1.9.1": sampleDataset("1.9.1", 1000), "1.9.2": sampleDataset("1.9.2", 70_000)}, dest: destAddr}
	addr := startServer(t, &Server{AETitle: "MOLAR", Move: ar, Get: ar})
	q := header.NewDataset()
	q.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	q.SetString(header.TagStudyInstanceUID, "UI", "1.9")

	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{
		{AbstractSyntax: uid.StudyRootQueryRetrieveMove, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}},
		{AbstractSyntax: uid.StudyRootQueryRetrieveGet, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}},
		{AbstractSyntax: uid.DigitalIntraOralXRayForPresentation, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}, ProposeSCPRole: true},
	}})
	defer a.Close()
	ctx := context.Background()
	var pendings int
	res, err := a.Move(ctx, uid.StudyRootQueryRetrieveMove, "DEST", q, func(SubOpCounts) { pendings++ })
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, res.Status)
	assert.Equal(t, uint16(2), res.Completed)
	assert.Equal(t, 1, pendings)
	assert.Equal(t, 2, destStore.len())
	it, _ := destStore.get("1.9.2")
	assert.Equal(t, ar.insts["1.9.2"], it.data)
	assert.Equal(t, "TESTSCU", it.req.MoveOriginatorAE)

	res, err = a.Move(ctx, uid.StudyRootQueryRetrieveMove, "NOWHERE", q, nil)
	require.NoError(t, err)
	assert.Equal(t, StatusMoveDestinationUnknown, res.Status)

	local := &memStore{}
	res, err = a.Get(ctx, uid.StudyRootQueryRetrieveGet, q, local, nil)
	require.NoError(t, err)
	assert.Equal(t, StatusSuccess, res.Status)
	assert.Equal(t, uint16(2), res.Completed)
	it, _ = local.get("1.9.1")
	assert.Equal(t, ar.insts["1.9.1"], it.data)

	bad := header.NewDataset()
	bad.SetString(header.TagPatientID, "LO", "x")
	res, err = a.Get(ctx, uid.StudyRootQueryRetrieveGet, bad, local, nil)
	require.NoError(t, err)
	assert.Equal(t, StatusDataSetDoesNotMatchSOP, res.Status)
	assert.Equal(t, "no level", res.ErrorComment)
}

func TestGetWithoutSCPRoleFails(t *testing.T) {
	ar := &archive{insts: map[string][]byte{"1.9.1": sampleDataset("1.9.1", 10)}}
	addr := startServer(t, &Server{Get: ar})
	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{
		{AbstractSyntax: uid.StudyRootQueryRetrieveGet, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}},
	}})
	defer a.Close()
	q := header.NewDataset()
	q.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	res, err := a.Get(context.Background(), uid.StudyRootQueryRetrieveGet, q, &memStore{}, nil)
	require.NoError(t, err)
	assert.Equal(t, StatusOutOfResourcesSubOps, res.Status)
	assert.Equal(t, uint16(1), res.Failed)
	assert.Equal(t, []string{"1.9.1"}, res.FailedSOPInstanceUIDs)
}

func TestGetCancel(t *testing.T) {
	insts := map[string][]byte{}
	for i := 0; i < 6; i++ {
		u := "1.9.5." + string(rune('0'+i))
		insts[u] = sampleDataset(u, 1000)
	}
	ar := &archive{insts: insts}
	addr := startServer(t, &Server{Get: ar})
	a := dialTest(t, addr, DialOptions{Contexts: []ProposedContext{
		{AbstractSyntax: uid.StudyRootQueryRetrieveGet, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}},
		{AbstractSyntax: uid.DigitalIntraOralXRayForPresentation, TransferSyntaxes: []string{uid.ExplicitVRLittleEndian}, ProposeSCPRole: true},
	}})
	defer a.Close()
	q := header.NewDataset()
	q.SetString(header.TagQueryRetrieveLevel, "CS", "STUDY")
	ctx, cancel := context.WithCancel(context.Background())
	received := 0
	res, err := a.Get(ctx, uid.StudyRootQueryRetrieveGet, q, StoreFunc(func(_ context.Context, req *StoreRequest, data io.Reader) (Status, error) {
		received++
		if received == 2 {
			cancel()
			time.Sleep(50 * time.Millisecond) // let the C-CANCEL arrive before this response
		}
		_, err := io.Copy(io.Discard, data)
		return StatusSuccess, err
	}), nil)
	assert.ErrorIs(t, err, context.Canceled)
	require.NotNil(t, res)
	assert.Equal(t, StatusCancel, res.Status)
	assert.Less(t, received, 6)
	assert.Equal(t, uint16(received), res.Completed)
	assert.Equal(t, uint16(6-received), res.Remaining)
	// Still usable afterwards.
	res, err = a.Get(context.Background(), uid.StudyRootQueryRetrieveGet, q, &memStore{}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint16(6), res.Completed)
}

// TestUserIdentityResponseOnlyWhenVerified: a requested positive response
// goes back only for an identity the policy verified (PS3.7 D.3.3.7), empty
// for a username and passcode; for a JWT only with a server token; and the
// association does not keep the passcode once the policy has seen it.
func TestUserIdentityResponseOnlyWhenVerified(t *testing.T) {
	for _, c := range []struct {
		name     string
		id       UserIdentity
		dec      Decision
		response []byte // nil: no sub-item
	}{
		{"not verified", UserIdentity{Type: IdentityUsernamePasscode, Primary: []byte("anna"), Secondary: []byte("pw")}, Decision{}, nil},
		{"username and passcode verified", UserIdentity{Type: IdentityUsernamePasscode, Primary: []byte("anna"), Secondary: []byte("pw")}, Decision{UserIdentityVerified: true}, []byte{}},
		{"JWT verified, no server token", UserIdentity{Type: IdentityJWT, Primary: []byte("a.b.c")}, Decision{UserIdentityVerified: true}, nil},
		{"JWT verified with a server token", UserIdentity{Type: IdentityJWT, Primary: []byte("a.b.c")}, Decision{UserIdentityVerified: true, UserIdentityResponse: []byte("x.y.z")}, []byte("x.y.z")},
	} {
		t.Run(c.name, func(t *testing.T) {
			var info *AssociationInfo
			opened := make(chan struct{})
			s := &Server{Store: &memStore{},
				Policy: func(ctx context.Context, req *AssociationRequest) Decision { return c.dec },
				Hooks: Hooks{AssociationOpened: func(a *AssociationInfo) { info = a; close(opened) }}}
			addr := startServer(t, s)
			id := c.id
			id.PositiveResponseRequested = true
			a := dialTest(t, addr, DialOptions{UserIdentity: &id, Contexts: []ProposedContext{VerificationContext()}})
			defer a.Close()
			<-opened
			got := a.AssociateAC().UserInfo.UserIdentityResponse
			if c.response == nil {
				assert.Nil(t, got)
			} else {
				assert.Equal(t, c.response, got)
			}
			require.NotNil(t, info.UserIdentity)
			assert.Nil(t, info.UserIdentity.Secondary, "passcode dropped")
			if c.id.Type == IdentityJWT {
				assert.Nil(t, info.UserIdentity.Primary, "token dropped")
			} else {
				assert.Equal(t, "anna", info.UserIdentity.Username())
			}
		})
	}
}
