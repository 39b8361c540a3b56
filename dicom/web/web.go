// Package web is Molar's DICOMweb service (PS3.18) at /dicomweb: WADO-RS
// (instances, metadata, frames, bulk data, rendered, thumbnails), STOW-RS,
// QIDO-RS and WADO-URI, the surface OHIF, Weasis, Stone and our own viewer
// use.
//
// Every request is authenticated by the core (session cookie, OIDC bearer
// token, or HTTP Basic for local accounts as Orthanc's and Weasis's clients
// send) and needs dicom.read (dicom.write for STOW-RS). Studies reconciled to
// a person need access to that person (care relation, or break the glass),
// and every read writes an audit row with the person.
package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/reconcile"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
	vweb "github.com/molar-health/molar/viewer/web"
)

// Ingester stores an instance (dicom/ingest's one path).
type Ingester interface {
	Ingest(ctx context.Context, src ingest.Source, r io.Reader) (ingest.Result, error)
}

// Service serves DICOMweb.
type Service struct {
	Pool   *pgxpool.Pool
	Store  storage.ObjectStore
	Auth   *auth.Service
	Ingest Ingester // nil: STOW-RS answers 503
	Log    *slog.Logger
	// Base is the absolute URL prefix of the service, e.g.
	// "https://molar.kommune.dk/dicomweb" (for BulkDataURI and STOW-RS
	// RetrieveURL). Empty: derived from each request.
	Base string
	// CORSOrigins may call the API from a browser ("*" = any); empty = none.
	CORSOrigins []string
	// Extra lets other packages add routes (rendered, thumbnail, QIDO).
	Extra func(r chi.Router)
}

// Errors.
var (
	ErrNotAcceptable = errors.New("dicomweb: no acceptable media type")
)

// Routes mounts the service at /dicomweb.
func (s *Service) Routes(r chi.Router) {
	r.Route("/dicomweb", func(r chi.Router) {
		// No HEAD: answering it with the GET handler would read the
		// objects and write "read" audit rows for data never sent.
		r.Use(vweb.NoStore, s.cors)
		r.Group(func(r chi.Router) {
			r.Use(s.require(auth.PermDICOMRead))
			r.Get("/studies/{study}", s.handleRetrieve)
			r.Get("/studies/{study}/metadata", s.handleMetadata)
			r.Get("/studies/{study}/series/{series}", s.handleRetrieve)
			r.Get("/studies/{study}/series/{series}/metadata", s.handleMetadata)
			r.Get("/studies/{study}/series/{series}/instances/{instance}", s.handleRetrieve)
			r.Get("/studies/{study}/series/{series}/instances/{instance}/metadata", s.handleMetadata)
			r.Get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", s.handleFrames)
			r.Get("/studies/{study}/series/{series}/instances/{instance}/bulkdata/*", s.handleBulk)
			r.Get("/wado", s.handleWADOURI)
			s.renderRoutes(r)
			s.qidoRoutes(r)
			if s.Extra != nil {
				s.Extra(r)
			}
		})
		r.With(s.require(auth.PermDICOMWrite)).Post("/studies", s.handleSTOW)
		r.With(s.require(auth.PermDICOMWrite)).Post("/studies/{study}", s.handleSTOW)
	})
}

func (s *Service) require(perm string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := auth.PrincipalFrom(r.Context())
			if p == nil {
				problem(w, r, http.StatusUnauthorized, "authentication required")
				return
			}
			if !p.Can(perm) {
				problem(w, r, http.StatusForbidden, "not permitted")
				return
			}
			if p.Method == auth.MethodBasic && r.Method != http.MethodGet && s.foreignOrigin(r) {
				// A browser that once answered the Basic challenge sends
				// those credentials with any site's form post, no preflight
				// asked: a STOW from another site would act for the user.
				problem(w, r, http.StatusForbidden, "a browser request from another site with Basic credentials; send it from this site or an origin in MOLAR_CORS_ORIGINS")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (s *Service) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && len(s.CORSOrigins) > 0 {
			for _, o := range s.CORSOrigins {
				named := strings.EqualFold(o, origin)
				if o != "*" && !named {
					continue
				}
				if named {
					// A named origin may send credentials (session or Basic).
					w.Header().Set("Access-Control-Allow-Origin", origin)
					w.Header().Set("Access-Control-Allow-Credentials", "true")
					w.Header().Add("Vary", "Origin")
				} else {
					// "*" opens the API to any origin, never with the
					// browser's credentials: callers bring a bearer token.
					w.Header().Set("Access-Control-Allow-Origin", "*")
				}
				w.Header().Set("Access-Control-Expose-Headers", "Content-Type, Content-Length, Warning")
				if r.Method == http.MethodOptions {
					w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
					w.Header().Set("Access-Control-Allow-Headers", "Authorization, Accept, Content-Type, X-CSRF-Token")
					w.WriteHeader(http.StatusNoContent)
					return
				}
				break
			}
		}
		next.ServeHTTP(w, r)
	})
}

// problem answers with an RFC 9457 problem document.
func problem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	vweb.WriteProblem(w, r, status, detail, "")
}

// fail maps an error to a status in one place.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, index.ErrNotFound), errors.Is(err, storage.ErrNotFound), errors.Is(err, errNoMatch):
		problem(w, r, http.StatusNotFound, "not found")
	case errors.Is(err, auth.ErrForbidden):
		problem(w, r, http.StatusForbidden, "no access to this patient's images (break the glass in the viewer to state a reason)")
	case errors.Is(err, ErrNotAcceptable):
		problem(w, r, http.StatusNotAcceptable, err.Error())
	case errors.Is(err, errBadRequest):
		problem(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.Canceled):
		return
	default:
		s.Log.ErrorContext(r.Context(), "dicomweb", "err", err, "path_pattern", chi.RouteContext(r.Context()).RoutePattern())
		problem(w, r, http.StatusInternalServerError, "internal error")
	}
}

var (
	errNoMatch    = errors.New("dicomweb: nothing matches")
	errBadRequest = errors.New("dicomweb: bad request")
)

// scope is what a request may read: the instances of one study (optionally
// one series or instance), after access checks and the audit row.
type scope struct {
	study     index.Study
	instances []index.Instance
}

// resolve loads the study (series, instance) of the request, checks access
// to its person and audits the read, in one tenant transaction.
func (s *Service) resolve(ctx context.Context, r *http.Request, action audit.Action, what string) (scope, error) {
	p := auth.PrincipalFrom(ctx)
	studyUID, seriesUID, instUID := chi.URLParam(r, "study"), chi.URLParam(r, "series"), chi.URLParam(r, "instance")
	if r.URL.Path == "/dicomweb/wado" {
		q := r.URL.Query()
		studyUID, seriesUID, instUID = q.Get("studyUID"), q.Get("seriesUID"), q.Get("objectUID")
	}
	var sc scope
	err := postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		st, err := index.GetStudy(ctx, tx, studyUID)
		if err != nil {
			return err
		}
		sc.study = st
		reason := ""
		if st.PersonID != 0 {
			d, err := s.Auth.RequireAccess(ctx, tx, p, st.PersonID)
			if err != nil {
				return err
			}
			reason = d.Reason
		} else if err := reconcile.CheckUnmatched(p); err != nil {
			return err
		}
		switch {
		case instUID != "":
			in, err := index.GetInstance(ctx, tx, instUID)
			if err != nil {
				return err
			}
			if in.StudyInstanceUID != studyUID || (seriesUID != "" && in.SeriesInstanceUID != seriesUID) {
				return errNoMatch
			}
			sc.instances = []index.Instance{in}
		case seriesUID != "":
			ins, err := index.InstancesOfSeries(ctx, tx, seriesUID)
			if err != nil {
				return err
			}
			for _, in := range ins {
				if in.StudyInstanceUID == studyUID {
					sc.instances = append(sc.instances, in)
				}
			}
		default:
			if sc.instances, err = index.InstancesOfStudy(ctx, tx, studyUID); err != nil {
				return err
			}
		}
		if len(sc.instances) == 0 {
			return errNoMatch
		}
		return audit.Record(ctx, tx, audit.Event{Action: action, PersonID: st.PersonID,
			Object: fmt.Sprintf("dicom.%s/%d", what, st.ID), BreakGlassReason: reason})
	})
	return sc, err
}

// foreignOrigin reports a browser request from another origin than Molar's
// (the session CSRF rule, auth.Service.SameOrigin) and the origins named in
// CORSOrigins. Clients that are not browsers send none of the headers.
func (s *Service) foreignOrigin(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		for _, o := range s.CORSOrigins {
			if o != "*" && strings.EqualFold(o, origin) {
				return false
			}
		}
	}
	return s.Auth != nil && !s.Auth.SameOrigin(r)
}

// base is the absolute prefix for URIs in responses.
func (s *Service) base(r *http.Request) string {
	if s.Base != "" {
		return strings.TrimSuffix(s.Base, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/dicomweb"
}

// Preflight answers CORS preflight requests (OPTIONS with
// Access-Control-Request-Method) for /dicomweb from allowed origins before
// authentication runs: browsers send preflights without credentials. It
// reveals nothing but the allowed methods and headers.
func (s *Service) Preflight(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" &&
			strings.HasPrefix(r.URL.Path, "/dicomweb/") && len(s.CORSOrigins) > 0 {
			s.cors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusForbidden) // origin not allowed
			})).ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
