package main

import (
	"context"
	"net"
)

// serveDICOM serves the DICOM listener. Interim: the DIMSE server is being
// written in dicom/dimse; until it is wired in, the listener is held (so the
// port is reserved and a clash is reported at start-up) and closed on shutdown.
func (s *server) serveDICOM(ctx context.Context, ln net.Listener) error {
	s.stops = append(s.stops, func(context.Context) { ln.Close() })
	return nil
}

// dicomPart wires DICOM ingest, the index and query (dicom/).
func dicomPart(s *server) corePart { return corePart{name: "dicom"} }
