// Package commit is Molar's Storage Commitment Push Model SCP (PS3.4 J,
// IHE RAD-10): a modality that sent images asks whether Molar has taken
// responsibility for them, so that it may delete its own copies. The
// request (N-ACTION) is answered at once; the report (N-EVENT-REPORT) goes
// out on an association of its own to the requesting AE's registered
// address, as Orthanc and most modalities expect, and is retried while the
// modality cannot be reached.
//
// An instance is committed when it is indexed in the caller's
// municipality under the SOP class named and its object is in the store:
// what C-STORE Success already promised, checked again. Nothing else is
// read, so the report is not a read of health data.
package commit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

// MaxRefs bounds one request (the N-ACTION data set is bounded too).
const MaxRefs = 10000

// Caller is who asks: the registered AE (where the report goes) and its
// municipality.
type Caller struct {
	AE       index.AE
	TenantID int64
}

// Service implements dimse.CommitHandler.
type Service struct {
	DB    postgres.Beginner
	Store storage.ObjectStore
	// AETitle is Molar's, the calling AE title of the report.
	AETitle string
	// Caller says who an association is; ok=false: not a registered AE,
	// whose request is refused (the report would have nowhere to go).
	Caller func(a *dimse.AssociationInfo) (Caller, bool)
	// ClientTLS is Molar's side of DICOM TLS to AEs registered with TLS.
	ClientTLS *tls.Config
	// Retry are the waits before each new attempt to deliver a report
	// (nil: 5 s, 30 s, 2 min, 10 min, 30 min).
	Retry []time.Duration
	Log   *slog.Logger

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	pending sync.WaitGroup
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) background() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
	return s.ctx
}

// Close stops reports still waiting to be delivered and waits for those
// being sent.
func (s *Service) Close() {
	s.background()
	s.cancel()
	s.pending.Wait()
}

// Commit takes a request: checked for its caller and size now, reported
// from a goroutine.
func (s *Service) Commit(_ context.Context, req *dimse.CommitRequest) error {
	c, ok := s.Caller(req.Assoc)
	if !ok {
		return dimse.Fail(dimse.StatusNotAuthorized, "storage commitment needs a registered AE: the report goes to its address", nil)
	}
	if len(req.Refs) > MaxRefs {
		return dimse.Fail(dimse.StatusResourceLimitation, fmt.Sprintf("at most %d instances per request", MaxRefs), nil)
	}
	ctx := s.background()
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		s.report(ctx, c, req)
	}()
	return nil
}

// Check decides, per referenced instance, whether Molar has it.
func (s *Service) Check(ctx context.Context, tenant int64, refs []dimse.SOPRef) (dimse.CommitResult, error) {
	uids := make([]string, len(refs))
	for i, r := range refs {
		uids[i] = r.SOPInstanceUID
	}
	var found []index.Instance
	err := postgres.InTenant(ctx, s.DB, tenant, func(tx pgx.Tx) error {
		var err error
		found, err = index.InstancesBySOPUIDs(ctx, tx, uids)
		return err
	})
	if err != nil {
		return dimse.CommitResult{}, err
	}
	byUID := make(map[string]index.Instance, len(found))
	for _, in := range found {
		byUID[in.SOPInstanceUID] = in
	}
	var res dimse.CommitResult
	for _, r := range refs {
		in, ok := byUID[r.SOPInstanceUID]
		switch {
		case !ok:
			res.Failed = append(res.Failed, dimse.CommitFailure{SOPRef: r, Reason: dimse.StatusNoSuchSOPInstance})
		case in.SOPClassUID != r.SOPClassUID:
			res.Failed = append(res.Failed, dimse.CommitFailure{SOPRef: r, Reason: dimse.StatusClassInstanceConflict})
		default:
			if _, err := s.Store.Stat(ctx, in.ObjectKey); err != nil {
				if !errors.Is(err, storage.ErrNotFound) {
					return dimse.CommitResult{}, err // the store is unreachable: try again later
				}
				s.log().Error("storage commitment: an indexed instance's object is missing", "instance_id", in.ID)
				res.Failed = append(res.Failed, dimse.CommitFailure{SOPRef: r, Reason: dimse.StatusProcessingFailure})
				continue
			}
			res.Committed = append(res.Committed, r)
		}
	}
	return res, nil
}

func (s *Service) report(ctx context.Context, c Caller, req *dimse.CommitRequest) {
	waits := s.Retry
	if waits == nil {
		waits = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute}
	}
	log := s.log().With("ae", c.AE.Title, "transaction_uid", req.TransactionUID)
	for attempt := 0; ; attempt++ {
		err := s.deliver(ctx, c, req, log)
		if err == nil {
			return
		}
		if attempt >= len(waits) || ctx.Err() != nil {
			log.Error("storage commitment report not delivered; the modality has to ask again", "attempts", attempt+1, "err", err)
			return
		}
		log.Warn("storage commitment report not delivered, trying again", "in", waits[attempt], "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(waits[attempt]):
		}
	}
}

// deliver checks the instances (again, at each attempt: what is reported
// is the state when it is sent) and sends the report.
func (s *Service) deliver(ctx context.Context, c Caller, req *dimse.CommitRequest, log *slog.Logger) error {
	res, err := s.Check(ctx, c.TenantID, req.Refs)
	if err != nil {
		return err
	}
	res.TransactionUID = req.TransactionUID
	a, err := dimse.Dial(ctx, c.AE.Addr(), dimse.DialOptions{CallingAE: s.AETitle, CalledAE: c.AE.Title, TLS: c.AE.DialTLS(s.ClientTLS), Logger: log,
		Contexts: []dimse.ProposedContext{{AbstractSyntax: uid.StorageCommitmentPushModel,
			TransferSyntaxes: []string{uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian}, ProposeSCPRole: true}}})
	if err != nil {
		return err
	}
	st, err := a.ReportCommitment(ctx, res)
	if err != nil {
		_ = a.Abort()
		return err
	}
	if rerr := a.Release(ctx); rerr != nil {
		_ = a.Abort()
	}
	if st.IsFailure() {
		return fmt.Errorf("the modality answered the report with %s", st)
	}
	log.Info("storage commitment reported", "committed", len(res.Committed), "failed", len(res.Failed))
	return nil
}
