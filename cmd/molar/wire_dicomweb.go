package main

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/molar-health/molar/dicom/ingest"
	dweb "github.com/molar-health/molar/dicom/web"
)

// dicomwebPart wires DICOMweb (dicom/web) at /dicomweb. STOW-RS stores
// through the server's ingester (s.ingester, built by the DICOM part).
func dicomwebPart(s *server) corePart {
	p := corePart{name: "dicomweb"}
	if s == nil {
		return p
	}
	svc := &dweb.Service{Pool: s.db.pool, Store: s.store, Log: s.log, Ingest: lazyIngester{s}}
	if s.cfg.PublicURL != "" {
		svc.Base = strings.TrimSuffix(s.cfg.PublicURL, "/") + "/dicomweb"
	}
	svc.CORSOrigins = commaList(s.cfg.CORSOrigins)
	s.dicomweb = svc
	p.routes = func(r chi.Router) {
		svc.Auth = s.auth
		svc.Routes(r)
	}
	return p
}

// lazyIngester reaches the server's ingester at call time.
type lazyIngester struct{ s *server }

var errNoIngester = errors.New("dicomweb: ingest is not wired")

func (l lazyIngester) Ingest(ctx context.Context, src ingest.Source, r io.Reader) (ingest.Result, error) {
	if l.s.ingester == nil {
		return ingest.Result{}, errNoIngester
	}
	return l.s.ingester.Ingest(ctx, src, r)
}
