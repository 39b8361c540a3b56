// Package pull moves studies from another PACS into Molar (migration from a
// legacy archive): a study-root C-FIND on the remote AE lists what matches,
// then a C-MOVE per study asks the remote to send it to Molar's own AE title,
// where the running server's SCP stores it through the one ingest path.
package pull

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// Tags used in queries.
var (
	tagLevel       = header.Tag(0x00080052)
	tagStudyDate   = header.Tag(0x00080020)
	tagStudyUID    = header.Tag(0x0020000D)
	tagPatientID   = header.Tag(0x00100020)
	tagAccession   = header.Tag(0x00080050)
	tagModalities  = header.Tag(0x00080061)
	tagNumInstance = header.Tag(0x00201208)
	tagDescription = header.Tag(0x00081030)
)

// Query selects studies on the remote. Empty fields match anything.
type Query struct {
	StudyUID  string
	PatientID string
	// Dates is a DICOM date or range: "20240101-20241231", "20240101-".
	Dates string
}

// Study is one study the remote reported.
type Study struct {
	UID         string
	Date        string
	Accession   string
	Modalities  string
	Description string
	Instances   int
}

// Remote is the PACS to pull from.
type Remote struct {
	Addr      string // host:port
	AETitle   string // its AE title
	CallingAE string // ours
	Timeout   time.Duration
	// TLS, when set, reaches the remote over DICOM TLS.
	TLS *tls.Config
}

func (r Remote) dial(ctx context.Context, sopClass string) (*dimse.Association, error) {
	if r.Timeout == 0 {
		r.Timeout = 30 * time.Second
	}
	return dimse.Dial(ctx, r.Addr, dimse.DialOptions{CallingAE: r.CallingAE, CalledAE: r.AETitle,
		Contexts: []dimse.ProposedContext{{AbstractSyntax: sopClass, TransferSyntaxes: uid.UncompressedTransferSyntaxes()}}, ARTIMTimeout: r.Timeout, TLS: r.TLS})
}

// Find lists the remote's studies matching q.
func Find(ctx context.Context, r Remote, q Query) ([]Study, error) {
	a, err := r.dial(ctx, uid.StudyRootQueryRetrieveFind)
	if err != nil {
		return nil, fmt.Errorf("pull: connect to %s at %s: %w", r.AETitle, r.Addr, err)
	}
	defer a.Release(context.WithoutCancel(ctx)) //nolint:errcheck
	id := header.NewDataset()
	id.SetString(tagLevel, "CS", "STUDY")
	id.SetString(tagStudyUID, "UI", q.StudyUID)
	id.SetString(tagPatientID, "LO", q.PatientID)
	id.SetString(tagStudyDate, "DA", q.Dates)
	id.SetString(tagAccession, "SH", "")
	id.SetString(tagModalities, "CS", "")
	id.SetString(tagDescription, "LO", "")
	id.SetString(tagNumInstance, "IS", "")
	var out []Study
	st, err := a.Find(ctx, uid.StudyRootQueryRetrieveFind, id, func(m *header.Dataset) error {
		s := Study{UID: m.UID(tagStudyUID), Date: m.Get(tagStudyDate), Accession: m.Get(tagAccession),
			Modalities: m.Get(tagModalities), Description: m.Get(tagDescription)}
		if n, ok := m.Int(tagNumInstance); ok {
			s.Instances = int(n)
		}
		if s.UID != "" {
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pull: C-FIND on %s: %w", r.AETitle, err)
	}
	if st != dimse.StatusSuccess {
		return out, fmt.Errorf("pull: C-FIND on %s ended with status %04X", r.AETitle, uint16(st))
	}
	return out, nil
}

// Result of moving one study.
type Result struct {
	Study     string
	Completed int
	Failed    int
	Warning   int
	Err       error
}

// ErrNotAllSent: the remote reported failed sub-operations.
var ErrNotAllSent = errors.New("pull: not every instance was sent")

// Move asks the remote to send each study to destination (our AE title).
// progress is called after each study.
func Move(ctx context.Context, r Remote, destination string, studies []Study, progress func(Result)) []Result {
	var out []Result
	for _, s := range studies {
		res := Result{Study: s.UID}
		a, err := r.dial(ctx, uid.StudyRootQueryRetrieveMove)
		if err != nil {
			res.Err = fmt.Errorf("pull: connect to %s: %w", r.AETitle, err)
		} else {
			id := header.NewDataset()
			id.SetString(tagLevel, "CS", "STUDY")
			id.SetString(tagStudyUID, "UI", s.UID)
			rr, err := a.Move(ctx, uid.StudyRootQueryRetrieveMove, destination, id, nil)
			_ = a.Release(context.WithoutCancel(ctx))
			switch {
			case err != nil:
				res.Err = fmt.Errorf("pull: C-MOVE of study: %w", err)
			default:
				res.Completed, res.Failed, res.Warning = int(rr.Completed), int(rr.Failed), int(rr.Warning)
				if rr.Status != dimse.StatusSuccess && rr.Status != 0xB000 {
					res.Err = fmt.Errorf("pull: C-MOVE ended with status %04X %s", uint16(rr.Status), rr.ErrorComment)
				} else if rr.Failed > 0 {
					res.Err = ErrNotAllSent
				}
			}
		}
		out = append(out, res)
		if progress != nil {
			progress(res)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return out
}
