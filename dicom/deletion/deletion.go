// Package deletion removes DICOM instances and studies from Molar: only on
// a privileged user's request with a reason, audit-logged, and never while
// a deletion guard (the journal's retention rule, wired by cmd/molar)
// blocks the study.
//
// Order: the index rows go first, in one tenant transaction together with
// the audit row; the objects (and their thumbnails) are removed from the
// store after the commit. An object whose removal fails is no longer
// indexed, so it is invisible and the orphan sweep (dicom/ingest.Sweep)
// removes it; nothing re-indexes objects from the store, so a deleted
// instance does not come back (unless a modality sends it again).
package deletion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/thumb"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

// Guard is asked before a study (or one of its instances) is deleted. The
// journal implements it with its retention rule (cmd/molar adapts it).
type Guard interface {
	// Blocked reports whether the study must be kept, with a reason fit to
	// show the user (no names or CPR numbers).
	Blocked(ctx context.Context, tenantID int64, studyUID string) (reason string, blocked bool, err error)
}

// NoGuard blocks nothing.
type NoGuard struct{}

// Blocked implements Guard.
func (NoGuard) Blocked(context.Context, int64, string) (string, bool, error) { return "", false, nil }

// Errors.
var (
	// ErrNoReason: a deletion needs a stated reason.
	ErrNoReason = errors.New("deletion: a reason is required")
	// ErrBlocked wraps the guard's reason.
	ErrBlocked = errors.New("deletion: blocked")
	// ErrNotFound: no such study or instance (in the tenant).
	ErrNotFound = index.ErrNotFound
)

// MinReason is the shortest accepted reason (characters, trimmed).
const MinReason = 5

// Request names what to delete.
type Request struct {
	TenantID int64
	StudyUID string
	// SOPInstanceUID, when set, deletes that instance only (it must belong
	// to the study); empty deletes the whole study.
	SOPInstanceUID string
	Reason         string
}

// Result says what was deleted.
type Result struct {
	StudyID   int64
	PersonID  int64
	Instances int
	// StudyGone: the study has no instances left and was removed.
	StudyGone bool
}

// Deleter deletes. The context must carry the audit actor.
type Deleter struct {
	DB    postgres.Beginner
	Store storage.ObjectStore
	Guard Guard // nil: NoGuard
	Log   *slog.Logger
}

// Delete removes an instance or a whole study (see the package doc).
func (d *Deleter) Delete(ctx context.Context, req Request) (Result, error) {
	reason := strings.TrimSpace(req.Reason)
	if utf8.RuneCountInString(reason) < MinReason {
		return Result{}, fmt.Errorf("%w (at least %d characters)", ErrNoReason, MinReason)
	}
	if req.StudyUID == "" {
		return Result{}, fmt.Errorf("deletion: no study: %w", ErrNotFound)
	}
	guard := d.Guard
	if guard == nil {
		guard = NoGuard{}
	}
	why, blocked, err := guard.Blocked(ctx, req.TenantID, req.StudyUID)
	if err != nil {
		return Result{}, fmt.Errorf("deletion: guard: %w", err)
	}
	if blocked {
		return Result{}, fmt.Errorf("%w: %s", ErrBlocked, why)
	}
	var res Result
	var keys []string
	// An ingest into the study takes its locks in another order (series,
	// then study); PostgreSQL breaks such a deadlock by failing one side,
	// and a deletion that lost simply runs again.
	for attempt := 1; ; attempt++ {
		res, keys, err = d.deleteTx(ctx, req, reason)
		if err == nil || !postgres.IsDeadlock(err) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return Result{}, err
	}
	d.removeObjects(context.WithoutCancel(ctx), keys)
	return res, nil
}

// deleteTx is the deletion's one transaction: rows and the audit event.
func (d *Deleter) deleteTx(ctx context.Context, req Request, reason string) (Result, []string, error) {
	var res Result
	var keys []string
	err := postgres.InTenant(ctx, d.DB, req.TenantID, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, req.StudyUID)
		if err != nil {
			return err
		}
		res.StudyID, res.PersonID = st.ID, st.PersonID
		// Lock the study before looking at its instances: an instance being
		// stored into it holds a key-share lock on the study row until its
		// COMMIT (which waits for the object to be durable). Without waiting
		// for it here, this transaction would not see the newcomer, and the
		// study's delete below would cascade to an instance its sender is
		// told is stored. Statements after the lock see it.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM dicom.study WHERE id = $1 FOR UPDATE`, st.ID); err != nil {
			return fmt.Errorf("deletion: lock study: %w", err)
		}
		var victims []index.Instance
		if req.SOPInstanceUID != "" {
			in, err := index.GetInstance(ctx, tx, req.SOPInstanceUID)
			if err != nil {
				return err
			}
			if in.StudyRef != st.ID {
				return fmt.Errorf("deletion: instance is not in the study: %w", ErrNotFound)
			}
			victims = []index.Instance{in}
		} else if victims, err = index.InstancesOfStudy(ctx, tx, req.StudyUID); err != nil {
			return err
		}
		ids := make([]int64, len(victims))
		for i, in := range victims {
			ids[i] = in.ID
			keys = append(keys, in.ObjectKey)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dicom.instance WHERE id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("deletion: instances: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dicom.series se WHERE se.study_ref = $1
			AND NOT EXISTS (SELECT 1 FROM dicom.instance i WHERE i.series_ref = se.id)`, st.ID); err != nil {
			return fmt.Errorf("deletion: series: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM dicom.study s WHERE s.id = $1
			AND NOT EXISTS (SELECT 1 FROM dicom.instance i WHERE i.study_ref = s.id)`, st.ID)
		if err != nil {
			return fmt.Errorf("deletion: study: %w", err)
		}
		res.Instances, res.StudyGone = len(victims), tag.RowsAffected() == 1
		object := fmt.Sprintf("dicom.study/%d", st.ID)
		if req.SOPInstanceUID != "" {
			object = fmt.Sprintf("dicom.instance/%d", victims[0].ID)
		}
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionDelete, PersonID: st.PersonID, Object: object,
			Detail: map[string]any{"reason": reason, "instances": len(victims), "study_id": st.ID, "study_removed": res.StudyGone}})
	})
	return res, keys, err
}

// removeObjects deletes the objects and thumbnails of deleted instances;
// failures are logged (by object key only) and left to the orphan sweep.
func (d *Deleter) removeObjects(ctx context.Context, keys []string) {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, k := range keys {
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = d.Store.Delete(ctx, k); err == nil || errors.Is(err, storage.ErrNotFound) {
				err = nil
				break
			}
		}
		if err != nil {
			log.Warn("deletion: object not removed; the orphan sweep will", "key", k, "err", err)
		}
		prefix := strings.TrimSuffix(thumb.Key(k, 0), "0.jpg")
		_ = d.Store.List(ctx, prefix, func(o storage.ObjectInfo) error {
			if err := d.Store.Delete(ctx, o.Key); err != nil {
				log.Warn("deletion: thumbnail not removed", "key", o.Key, "err", err)
			}
			return nil
		})
	}
}
