package main

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/molar-health/molar/dicom/thumb"
)

// imagingPart wires pixel decoding, rendering, thumbnails and DICOMweb.
// prepare registers the thumbnail worker (dicom/thumb); ingest enqueues its
// jobs with thumb.EnqueueThumbnail in the index transaction. JPEG-LS and
// JPEG 2000 frames are decoded by `molar codec` worker subprocesses that
// dicom/pixel starts on first use.
func imagingPart(s *server) corePart {
	p := corePart{name: "imaging"}
	if s == nil {
		return p
	}
	p.prepare = func(ctx context.Context, workers *river.Workers) error {
		return river.AddWorkerSafely(workers, &thumb.Worker{Store: s.store})
	}
	return p
}
