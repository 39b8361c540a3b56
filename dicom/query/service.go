package query

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/dicom/worklist"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

// Service answers C-FIND (patient root, study root, modality worklist),
// C-MOVE and C-GET from the index and the object store. It implements
// dimse.FindHandler, dimse.MoveHandler and dimse.RetrieveHandler.
type Service struct {
	DB    postgres.Beginner
	Store storage.ObjectStore
	// AETitle is returned as Retrieve AE Title.
	AETitle string
	// Tenant says which tenant an association queries (its AE's).
	Tenant func(a *dimse.AssociationInfo) (int64, error)
	// Worklist feeds Modality Worklist queries (nil: no items). Called per
	// query, so it may be wired after the server starts.
	Worklist func() worklist.Source
	// Gate narrows what an association signed in with an account sees
	// (nil: every match of the municipality).
	Gate Gate
	// MaxMatches caps C-FIND responses and C-MOVE/C-GET instances (0 = 10000).
	MaxMatches int
	// ClientTLS is Molar's side of DICOM TLS for sub-operations to AEs
	// registered with TLS (nil: the system's roots, no client certificate).
	ClientTLS *tls.Config
	Logger    *slog.Logger
}

func (s *Service) max() int {
	if s.MaxMatches > 0 {
		return s.MaxMatches
	}
	return 10000
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func failQuery(err error) (dimse.Status, error) {
	switch {
	case errors.Is(err, ErrInvalid):
		return dimse.StatusDataSetDoesNotMatchSOP, dimse.Fail(dimse.StatusDataSetDoesNotMatchSOP, "identifier does not match SOP class", err)
	case errors.Is(err, context.Canceled):
		return dimse.StatusCancel, err
	}
	return dimse.StatusOutOfResourcesMatches, dimse.Fail(dimse.StatusOutOfResourcesMatches, "unable to process", err)
}

// failFind is failQuery for C-FIND, which knows no A701: anything but a
// bad identifier or a cancel is A700, refused: out of resources.
func failFind(err error) (dimse.Status, error) {
	if errors.Is(err, ErrInvalid) || errors.Is(err, context.Canceled) {
		return failQuery(err)
	}
	return dimse.StatusOutOfResources, dimse.Fail(dimse.StatusOutOfResources, "unable to process", err)
}

// Find implements dimse.FindHandler.
func (s *Service) Find(ctx context.Context, req *dimse.QueryRequest, emit func(*header.Dataset) error) (dimse.Status, error) {
	id, err := req.Dataset()
	if err != nil {
		return dimse.StatusCannotUnderstand, dimse.Fail(dimse.StatusCannotUnderstand, "identifier cannot be read", err)
	}
	tenant, err := s.Tenant(req.Assoc)
	if err != nil {
		return failFind(err)
	}
	if req.SOPClassUID == uid.ModalityWorklistFind {
		return s.findWorklist(ctx, req.Assoc, tenant, id, emit)
	}
	q, err := FromDataset(id)
	if err != nil {
		return failFind(err)
	}
	if req.SOPClassUID == uid.PatientRootQueryRetrieveFind {
		q.PatientRoot = true
	} else if q.Level == Patient {
		return failFind(fmt.Errorf("%w: PATIENT level in the study root model", ErrInvalid))
	}
	q.Limit = s.max()
	cs := CharsetOf(id)
	if q.Unsupported() {
		req.PendingStatus = dimse.StatusPendingOptionalKeysMissing
	}
	// The matches are collected and their reads audited and committed
	// before the first response goes out. What waits is each answer (the
	// requested keys) and the match's references for the audit, not the
	// stored attributes a match may carry (up to MaxMatches of them).
	var refs readRefs
	var answers []*header.Dataset
	actx := dimseActor(ctx, req.Assoc, tenant)
	err = postgres.InTenant(actx, s.DB, tenant, func(tx pgx.Tx) error {
		refs, answers = readRefs{}, answers[:0]
		var matched []matchRef
		if err := q.Run(actx, tx, func(m *Match) error {
			answers = append(answers, q.Response(m, cs, s.AETitle))
			matched = append(matched, refOf(m))
			return nil
		}); err != nil {
			return err
		}
		visible, err := s.visible(actx, tx, req.Assoc, matched, &refs)
		if err != nil {
			return err
		}
		answers = pick(answers, visible)
		return auditMatches(actx, tx, refs, audit.ActionRead,
			map[string]any{"dimse": "C-FIND", "level": q.Level.String(), "results": refs.n}, true)
	})
	if err != nil {
		if ctx.Err() != nil {
			return dimse.StatusCancel, nil
		}
		return failFind(err)
	}
	for i, d := range answers {
		answers[i] = nil // sent: not held until the last one is
		if err := emit(d); err != nil {
			if ctx.Err() != nil {
				return dimse.StatusCancel, nil
			}
			return failFind(err)
		}
	}
	if len(answers) >= s.max() {
		// PS3.4 has no status for "more than I answer": say so in the log.
		s.log().Warn("C-FIND answer cut at the match limit", "level", q.Level.String(), "matches", len(answers),
			"calling_ae", callingAE(req.Assoc))
	}
	s.log().Debug("C-FIND", "level", q.Level.String(), "matches", len(answers))
	return dimse.StatusSuccess, nil
}

func callingAE(a *dimse.AssociationInfo) string {
	if a == nil {
		return ""
	}
	return a.CallingAE
}

// Retrieve implements dimse.RetrieveHandler (C-GET) and the first half of
// dimse.MoveHandler: the identifier's level and keys select instances.
func (s *Service) Retrieve(ctx context.Context, req *dimse.QueryRequest) ([]dimse.Instance, error) {
	id, err := req.Dataset()
	if err != nil {
		return nil, dimse.Fail(dimse.StatusCannotUnderstand, "identifier cannot be read", err)
	}
	tenant, err := s.Tenant(req.Assoc)
	if err != nil {
		_, ferr := failQuery(err)
		return nil, ferr
	}
	q, err := FromDataset(id)
	if err != nil {
		_, ferr := failQuery(err)
		return nil, ferr
	}
	if q.Level == Patient && req.SOPClassUID != uid.PatientRootQueryRetrieveMove && req.SOPClassUID != uid.PatientRootQueryRetrieveGet {
		return nil, dimse.Fail(dimse.StatusDataSetDoesNotMatchSOP, "PATIENT level in the study root model", nil)
	}
	// The unique key of the level must be given, a single value or a list
	// of values: no wildcard, no universal matching (PS3.4 C.4.2.2.1).
	var hasUnique bool
	for _, k := range q.Keys {
		if k.Tag != uniqueKeys(q.Level)[len(uniqueKeys(q.Level))-1] {
			continue
		}
		if v := strings.TrimSpace(k.Value); v != "" && strings.ContainsAny(v, "*?") {
			return nil, dimse.Fail(dimse.StatusDataSetDoesNotMatchSOP, "the unique key of the level holds a wildcard", nil)
		} else if v != "" {
			hasUnique = true
		}
	}
	if !hasUnique {
		return nil, dimse.Fail(dimse.StatusDataSetDoesNotMatchSOP, "the unique key of the level is missing", nil)
	}
	q.Level = Image
	q.Limit = s.max() + 1
	var ids []int64
	var out []index.Instance
	op, dest := "C-GET", ""
	if req.Assoc != nil {
		dest = req.Assoc.CallingAE
	}
	if req.Command == dimse.CMoveRQ {
		op, dest = "C-MOVE", req.MoveDestination
	}
	actx := dimseActor(ctx, req.Assoc, tenant)
	err = postgres.InTenant(actx, s.DB, tenant, func(tx pgx.Tx) error {
		ids = ids[:0]
		var refs readRefs
		var matched []matchRef
		if err := q.Run(actx, tx, func(m *Match) error {
			ids = append(ids, m.InstanceID)
			matched = append(matched, refOf(m))
			return nil
		}); err != nil {
			return err
		}
		if len(ids) > s.max() {
			return fmt.Errorf("more than %d instances", s.max())
		}
		visible, err := s.visible(actx, tx, req.Assoc, matched, &refs)
		if err != nil {
			return err
		}
		ids = pick(ids, visible)
		if out, err = index.InstancesByIDs(actx, tx, ids); err != nil {
			return err
		}
		// Each study sent out is an export of its person's images, audited
		// before the sub-operations start.
		return auditMatches(actx, tx, refs, audit.ActionExport,
			map[string]any{"dimse": op, "destination_ae": dest, "instances": len(ids)}, false)
	})
	if err != nil {
		_, ferr := failQuery(err)
		return nil, ferr
	}
	insts := make([]dimse.Instance, len(out))
	for i, in := range out {
		insts[i] = s.instance(in)
	}
	return insts, nil
}

// Instance serves a stored instance for a sub-operation: its data set bytes
// without the file meta, from the object store.
func (s *Service) instance(in index.Instance) dimse.Instance {
	return StoredInstance(s.Store, in)
}

// StoredInstance adapts an index row to a dimse.Instance reading the object.
func StoredInstance(store storage.ObjectStore, in index.Instance) dimse.Instance {
	key := in.ObjectKey
	return dimse.Instance{SOPClassUID: in.SOPClassUID, SOPInstanceUID: in.SOPInstanceUID, TransferSyntax: in.TransferSyntax,
		Open: func(ctx context.Context) (io.ReadCloser, error) { return OpenDataSet(ctx, store, key) }}
}

// OpenDataSet opens a stored Part-10 object positioned at its data set
// (as stored: deflated data sets stay deflated).
func OpenDataSet(ctx context.Context, store storage.ObjectStore, key string) (io.ReadCloser, error) {
	rc, _, err := store.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	_, rest, err := header.ReadFileMeta(rc, header.Options{MaxHeaderBytes: 1 << 20})
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("query: stored object %s: %w", key, err)
	}
	return readCloser{rest, rc}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Destination implements dimse.MoveHandler: the move destination must be a
// registered AE of the caller's municipality (no AE moves one
// municipality's images to another's devices); sub-operations go to its
// host and port.
func (s *Service) Destination(ctx context.Context, req *dimse.QueryRequest, aeTitle string) (dimse.Destination, error) {
	q, ok := s.DB.(index.Querier)
	if !ok {
		return dimse.Destination{}, dimse.Fail(dimse.StatusOutOfResourcesSubOps, "no AE registry", nil)
	}
	tenant, err := s.Tenant(req.Assoc)
	if err != nil {
		return dimse.Destination{}, dimse.Fail(dimse.StatusOutOfResourcesSubOps, "no municipality for this AE", err)
	}
	ae, err := index.GetAEOf(ctx, q, tenant, strings.TrimSpace(aeTitle))
	if errors.Is(err, index.ErrNotFound) {
		return dimse.Destination{}, dimse.ErrUnknownDestination
	}
	if err != nil {
		return dimse.Destination{}, dimse.Fail(dimse.StatusOutOfResourcesSubOps, "AE registry unavailable", err)
	}
	return dimse.Destination{Addr: ae.Addr(), AE: ae.Title, TLS: ae.DialTLS(s.ClientTLS)}, nil
}
