package main

import (
	"context"
	"errors"
	"net"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/scp"
)

// serveDICOM builds the DICOM SCP and serves it on ln until shutdown, when
// it stops accepting, lets associations finish within the deadline and
// aborts what is left.
func (s *server) serveDICOM(ctx context.Context, ln net.Listener) error {
	metrics := scp.NewMetrics(s.reg)
	srv := &dimse.Server{
		AETitle: s.cfg.AETitle,
		Policy:  scp.Policy(s.db.pool, s.cfg.AcceptUnknownAE, s.log),
		Logger:  s.log,
		Hooks:   metrics.Hooks(),
	}
	for _, hook := range s.dicomHooks {
		hook(srv)
	}
	s.dicom = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, dimse.ErrServerClosed) {
			s.log.Error("dicom server", "err", err)
		}
	}()
	s.stops = append(s.stops, func(ctx context.Context) {
		if err := srv.Shutdown(ctx); err != nil {
			s.log.Warn("dicom shutdown", "err", err)
		}
	})
	return nil
}

// dicomPart wires DICOM ingest, the index and query (dicom/).
func dicomPart(s *server) corePart { return corePart{name: "dicom"} }
