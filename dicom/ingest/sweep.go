package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/thumb"
	"github.com/molar-health/molar/storage"
)

// Sweep removes objects under instances/ that no instance row points to
// (written, then a crash before the commit, or a failed clean-up) once they
// are older than grace, and the thumbnails and failure notes under thumbs/
// whose instance no row points to (its instance swept or deleted while they
// were being made, a failed clean-up). It looks at the day folders of the
// last `days` days (keys carry the day the instance was written), so its
// cost follows the recent ingest volume, not the archive size. It returns
// how many objects it removed.
func Sweep(ctx context.Context, q index.Querier, store storage.ObjectStore, now time.Time, grace time.Duration, days int) (int, error) {
	removed := 0
	for d := 0; d <= days; d++ {
		day := now.UTC().AddDate(0, 0, -d)
		n, err := SweepFolder(ctx, q, store, now, grace, fmt.Sprintf("%04d/%02d/%02d/", day.Year(), day.Month(), day.Day()))
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// SweepMonth sweeps the day folders of the month `back` months before
// now's: housekeeping walks the older archive one month per run, so that
// what a deletion or an overwrite of an older instance could not remove
// (the store failed) goes too, at a bounded cost per run.
func SweepMonth(ctx context.Context, q index.Querier, store storage.ObjectStore, now time.Time, grace time.Duration, back int) (int, error) {
	m := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -back, 0)
	return SweepFolder(ctx, q, store, now, grace, fmt.Sprintf("%04d/%02d/", m.Year(), m.Month()))
}

// SweepFolder sweeps one folder of the archive ("2026/11/26/", "2026/11/").
func SweepFolder(ctx context.Context, q index.Querier, store storage.ObjectStore, now time.Time, grace time.Duration, folder string) (int, error) {
	removed := 0
	for _, part := range []struct {
		prefix   string
		instance func(key string) (string, bool) // the instance key an object stands or falls with
	}{
		{"instances/" + folder, func(k string) (string, bool) { return k, true }},
		{"thumbs/" + folder, thumb.InstanceKey},
	} {
		n, err := sweepPrefix(ctx, q, store, part.prefix, part.instance, now, grace)
		removed += n
		if err != nil {
			return removed, fmt.Errorf("ingest: sweep %s: %w", part.prefix, err)
		}
	}
	return removed, nil
}

// ErrSweepBrake: most objects of a folder are unknown to the index. That is
// not what crashes and failed clean-ups leave; it is what a molar pointed at
// the wrong (empty, restored, staging) database sees. Nothing is removed.
var ErrSweepBrake = errors.New("ingest: sweep refused: the index knows too few of the objects (is this the archive's database?)")

// The brake: a folder whose objects (older than the grace) are mostly
// unknown — more than half of at least brakeMin, or brakeNone with not one
// known — is left alone.
const (
	brakeMin  = 20
	brakeNone = 5
)

// sweepPrefix lists the objects under prefix older than grace, asks the
// index which instances it knows (in batches), and only then, when the
// brake does not hold, removes the unknown ones.
func sweepPrefix(ctx context.Context, q index.Querier, store storage.ObjectStore, prefix string, instance func(string) (string, bool), now time.Time, grace time.Duration) (int, error) {
	type candidate struct{ key, instance string }
	var batch []candidate
	var orphans []string
	total := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		keys := make([]string, len(batch))
		for i, c := range batch {
			keys[i] = c.instance
		}
		known, err := index.KnownObjectKeys(ctx, q, keys)
		if err != nil {
			return err
		}
		for _, c := range batch {
			if !known[c.instance] {
				orphans = append(orphans, c.key)
			}
		}
		total += len(batch)
		batch = batch[:0]
		return nil
	}
	err := store.List(ctx, prefix, func(o storage.ObjectInfo) error {
		if now.Sub(o.Modified) < grace {
			return nil
		}
		ik, ok := instance(o.Key)
		if !ok {
			return nil
		}
		batch = append(batch, candidate{o.Key, ik})
		if len(batch) >= 500 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return 0, err
	}
	unknown := len(orphans)
	if (total >= brakeMin && 2*unknown > total) || (unknown >= brakeNone && unknown == total) {
		return 0, fmt.Errorf("%w: %d of %d objects under %s", ErrSweepBrake, unknown, total, prefix)
	}
	removed := 0
	for _, k := range orphans {
		if err := store.Delete(ctx, k); err != nil {
			return removed, fmt.Errorf("ingest: sweep: %w", err)
		}
		removed++
	}
	return removed, nil
}
