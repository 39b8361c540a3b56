package main

import (
	"context"
	"runtime"

	"github.com/riverqueue/river"

	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/thumb"
)

// imagingPart wires pixel decoding, rendering, thumbnails and DICOMweb.
// prepare registers the thumbnail worker (dicom/thumb); the ingest
// transaction queues thumbnail work (dicom.thumbnail_queue) and the
// dispatcher runner turns it into jobs in batches. JPEG-LS and
// JPEG 2000 frames are decoded by `molar codec` worker subprocesses that
// dicom/pixel starts on first use.
func imagingPart(s *server) corePart {
	p := corePart{name: "imaging"}
	if s == nil {
		return p
	}
	s.thumbs = thumb.NewDispatcher(s.db.pool, s.log)
	p.prepare = func(ctx context.Context, workers *river.Workers) error {
		// As much CPU as the other background work (wiring.go): half the
		// cores, at a lower priority than arriving instances.
		w := &thumb.Worker{Store: s.store, Parallel: max(1, runtime.NumCPU()/2), Nice: 10,
			Logger: s.log, Remote: s.cfg.S3Endpoint != "", Indexed: func(ctx context.Context, key string) (bool, error) {
				known, err := index.KnownObjectKeys(ctx, s.db.pool, []string{key})
				return known[key], err
			}}
		if err := river.AddWorkerSafely(workers, w); err != nil {
			return err
		}
		return river.AddWorkerSafely(workers, &thumb.BatchWorker{Worker: w})
	}
	p.runners = []runner{{name: "thumbnail dispatcher", run: func(ctx context.Context) error { return s.thumbs.Run(ctx, s.queue) }}}
	return p
}
