package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage"
)

// Sweep removes objects under instances/ that no instance row points to
// (written, then a crash before the commit, or a failed clean-up) once they
// are older than grace. It looks at the day folders of the last `days` days
// (keys carry the day they were written), so its cost follows the recent
// ingest volume, not the archive size. It returns how many it removed.
func Sweep(ctx context.Context, q index.Querier, store storage.ObjectStore, now time.Time, grace time.Duration, days int) (int, error) {
	removed := 0
	for d := 0; d <= days; d++ {
		day := now.UTC().AddDate(0, 0, -d)
		prefix := fmt.Sprintf("instances/%04d/%02d/%02d/", day.Year(), day.Month(), day.Day())
		var batch []storage.ObjectInfo
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			keys := make([]string, len(batch))
			for i, o := range batch {
				keys[i] = o.Key
			}
			known, err := index.KnownObjectKeys(ctx, q, keys)
			if err != nil {
				return err
			}
			for _, o := range batch {
				if known[o.Key] {
					continue
				}
				if err := store.Delete(ctx, o.Key); err != nil {
					return fmt.Errorf("ingest: sweep: %w", err)
				}
				removed++
			}
			batch = batch[:0]
			return nil
		}
		err := store.List(ctx, prefix, func(o storage.ObjectInfo) error {
			if now.Sub(o.Modified) < grace {
				return nil
			}
			batch = append(batch, o)
			if len(batch) >= 500 {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return removed, fmt.Errorf("ingest: sweep %s: %w", prefix, err)
		}
	}
	return removed, nil
}
