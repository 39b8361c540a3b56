// Package commit is Molar's Storage Commitment Push Model SCP (PS3.4 J,
// IHE RAD-10): a modality that sent images asks whether Molar has taken
// responsibility for them, so that it may delete its own copies. The
// request (N-ACTION) is answered at once; the report (N-EVENT-REPORT) goes
// out on an association of its own to the requesting AE's registered
// address, as Orthanc and most modalities expect. The report is a durable
// job (storage/jobs, River) written before the N-ACTION is answered: it
// survives restarts and is retried while the modality cannot be reached.
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
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

// MaxRefs bounds one request (the N-ACTION data set is bounded too).
const MaxRefs = 10000

// MaxAttempts of a report's delivery: with River's backoff (attempt⁴
// seconds) the last one is about 80 minutes after the request.
const MaxAttempts = 8

// Caller is who asks: the registered AE (where the report goes) and its
// municipality.
type Caller struct {
	AE       index.AE
	TenantID int64
}

// ReportArgs is the job of one report.
type ReportArgs struct {
	TenantID       int64          `json:"tenant_id"`
	AETitle        string         `json:"ae"`
	TransactionUID string         `json:"transaction_uid"`
	Refs           []dimse.SOPRef `json:"refs"`
}

// Kind implements river.JobArgs.
func (ReportArgs) Kind() string { return "dicom_storage_commitment_report" }

// Service implements dimse.CommitHandler.
type Service struct {
	// Caller says who an association is; ok=false: not a registered AE,
	// whose request is refused (the report would have nowhere to go).
	Caller func(a *dimse.AssociationInfo) (Caller, bool)
	// Enqueue writes the report's job durably (jobs.Queue.InsertTx in a
	// committed transaction) before the request is answered.
	Enqueue func(ctx context.Context, args ReportArgs) error
}

// Commit takes a request: its caller and size are checked now; the report
// is a job.
func (s *Service) Commit(ctx context.Context, req *dimse.CommitRequest) error {
	c, ok := s.Caller(req.Assoc)
	if !ok {
		return dimse.Fail(dimse.StatusNotAuthorized, "storage commitment needs a registered AE: the report goes to its address", nil)
	}
	if len(req.Refs) > MaxRefs {
		return dimse.Fail(dimse.StatusResourceLimitation, fmt.Sprintf("at most %d instances per request", MaxRefs), nil)
	}
	if err := s.Enqueue(ctx, ReportArgs{TenantID: c.TenantID, AETitle: c.AE.Title, TransactionUID: req.TransactionUID, Refs: req.Refs}); err != nil {
		return dimse.Fail(dimse.StatusProcessingFailure, "the request could not be recorded", err)
	}
	return nil
}

// Worker delivers reports; register it with river.AddWorker.
type Worker struct {
	river.WorkerDefaults[ReportArgs]
	DB    *pgxpool.Pool
	Store storage.ObjectStore
	// AETitle is Molar's, the calling AE title of the report.
	AETitle string
	// ClientTLS is Molar's side of DICOM TLS to AEs registered with TLS.
	ClientTLS *tls.Config
	Log       *slog.Logger
}

func (w *Worker) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

// Timeout bounds one attempt.
func (w *Worker) Timeout(*river.Job[ReportArgs]) time.Duration { return 2 * time.Minute }

// Work checks the instances (again at each attempt: what is reported is
// the state when it is sent) and sends the report to the AE's address as
// registered now.
func (w *Worker) Work(ctx context.Context, job *river.Job[ReportArgs]) error {
	log := w.log().With("ae", job.Args.AETitle, "transaction_uid", job.Args.TransactionUID)
	ae, err := index.GetAE(ctx, w.DB, job.Args.AETitle)
	if errors.Is(err, index.ErrNotFound) {
		log.Warn("storage commitment report dropped: the AE is no longer registered")
		return river.JobCancel(err)
	}
	if err == nil {
		// The title may have been registered again by, or moved to, another
		// municipality since the request: the report, checked in the
		// requester's, is not for that one.
		var tenant int64
		if tenant, err = index.TenantOf(ctx, w.DB, ae); err == nil && tenant != job.Args.TenantID {
			log.Warn("storage commitment report dropped: the AE now belongs to another municipality")
			return river.JobCancel(fmt.Errorf("commit: AE %s is no longer in tenant %d", ae.Title, job.Args.TenantID))
		}
	}
	if err == nil {
		err = w.deliver(ctx, ae, job.Args, log)
	}
	if err != nil && job.Attempt >= job.MaxAttempts {
		log.Error("storage commitment report not delivered; the modality has to ask again", "attempts", job.Attempt, "err", err)
	} else if err != nil {
		log.Warn("storage commitment report not delivered yet", "attempt", job.Attempt, "err", err)
	}
	return err
}

// Check decides, per referenced instance, whether Molar has it in the
// tenant: indexed under that SOP class, its object in the store.
func Check(ctx context.Context, db postgres.Beginner, store storage.ObjectStore, tenant int64, refs []dimse.SOPRef, log *slog.Logger) (dimse.CommitResult, error) {
	uids := make([]string, len(refs))
	for i, r := range refs {
		uids[i] = r.SOPInstanceUID
	}
	var found []index.Instance
	err := postgres.InTenant(ctx, db, tenant, func(tx pgx.Tx) error {
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
			if _, err := store.Stat(ctx, in.ObjectKey); err != nil {
				if !errors.Is(err, storage.ErrNotFound) {
					return dimse.CommitResult{}, err // the store is unreachable: try again later
				}
				log.Error("storage commitment: an indexed instance's object is missing", "instance_id", in.ID)
				res.Failed = append(res.Failed, dimse.CommitFailure{SOPRef: r, Reason: dimse.StatusProcessingFailure})
				continue
			}
			res.Committed = append(res.Committed, r)
		}
	}
	return res, nil
}

func (w *Worker) deliver(ctx context.Context, ae index.AE, args ReportArgs, log *slog.Logger) error {
	res, err := Check(ctx, w.DB, w.Store, args.TenantID, args.Refs, log)
	if err != nil {
		return err
	}
	res.TransactionUID = args.TransactionUID
	a, err := dimse.Dial(ctx, ae.Addr(), dimse.DialOptions{CallingAE: w.AETitle, CalledAE: ae.Title, TLS: ae.DialTLS(w.ClientTLS), Logger: log,
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
