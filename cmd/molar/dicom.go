package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/molar-health/molar/auth"
	dicomadmin "github.com/molar-health/molar/dicom/admin"
	"github.com/molar-health/molar/dicom/commit"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/reconcile"
	"github.com/molar-health/molar/dicom/scp"
	"github.com/molar-health/molar/dicom/worklist"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/storage/jobs"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// Orphan objects (written, never indexed) are swept after this long.
const (
	orphanGrace = time.Hour
	orphanDays  = 2
	// archiveMonths is how far back the month-by-month sweep goes.
	archiveMonths = 360
)

// serveDICOM builds the DICOM SCP and serves it on ln until shutdown, when
// it stops accepting, lets associations finish within the deadline and
// aborts what is left.
func (s *server) serveDICOM(ctx context.Context, ln net.Listener) error {
	metrics := scp.NewMetrics(s.reg)
	srv := &dimse.Server{
		AETitle: s.cfg.AETitle,
		Policy:  scp.Policy(s.db.pool, s.cfg.AcceptUnknownAE, s.log, s.policyOptions()...),
		Logger:  s.log,
		Hooks:   scp.LogAssociations(metrics.Hooks(), s.db.pool, s.log),
	}
	srv.MaxPendingPerHost = s.cfg.DICOMPendingPerHost
	if srv.MaxPendingPerHost == 0 {
		srv.MaxPendingPerHost = -1 // configured off
	}
	if s.ingester == nil { // servers built without the dicom part (tests)
		s.ingester = newIngester(s)
	}
	srv.Store = s.ingester.StoreHandler(func(_ context.Context, a *dimse.AssociationInfo) (int64, error) { return callerTenant(a) })
	q := newQueryService(s)
	srv.Find, srv.Move, srv.Get = q, q, q
	srv.Transcode = query.Transcode
	srv.Commit = &commit.Service{
		Caller: func(a *dimse.AssociationInfo) (commit.Caller, bool) {
			c, ok := a.Value.(scp.Caller)
			return commit.Caller{AE: c.AE, TenantID: c.TenantID}, ok && c.Known && c.TenantID != 0
		},
		Enqueue: func(ctx context.Context, args commit.ReportArgs) error {
			return postgres.InTx(ctx, s.db.pool, func(tx pgx.Tx) error {
				_, err := s.queue.InsertTx(ctx, tx, args, &river.InsertOpts{MaxAttempts: commit.MaxAttempts})
				return err
			})
		}}
	// Hooks may replace handlers or feed the worklist, e.g. booking:
	//	srv.Find.(*query.Service).Worklist = func() worklist.Source { return src }
	for _, hook := range s.dicomHooks {
		hook(srv)
	}
	s.dicom = srv
	go func() {
		if err := srv.Serve(ln); err != nil && ctx.Err() == nil && !errors.Is(err, dimse.ErrServerClosed) {
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

// policyOptions are the association policy's options: the registered
// host check, and sign-in of RequireUser AEs with Molar's accounts (a
// server built without accounts rejects those AEs).
func (s *server) policyOptions() []scp.PolicyOption {
	opts := []scp.PolicyOption{scp.CheckHost(s.cfg.CheckAEHost)}
	if s.auth != nil {
		opts = append(opts, scp.CheckUsers(s.dicomUser))
	}
	return opts
}

// dicomUser signs in an association's user identity (username and
// passcode, or a JWT) as HTTP Basic and bearer tokens sign in: the same
// rate limit per address, lock-out and accounts. The account may do over
// DICOM what its role may do with images.
func (s *server) dicomUser(ctx context.Context, id *dimse.UserIdentity, remote net.Addr) (scp.AssociationUser, error) {
	source, _ := netip.ParseAddr(dimse.PeerHost(remote))
	source = source.Unmap()
	var p *auth.Principal
	var err error
	switch id.Type {
	case dimse.IdentityUsernamePasscode:
		p, err = s.auth.CheckPassword(ctx, string(id.Primary), string(id.Secondary), source)
	case dimse.IdentityJWT:
		p, err = s.auth.CheckBearer(ctx, string(id.Primary), source)
	default:
		err = auth.ErrInvalidCredentials
	}
	switch status := auth.StatusOf(err); {
	case err == nil:
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return scp.AssociationUser{}, fmt.Errorf("%w: %w", scp.ErrUserRefused, err)
	default: // rate limit, identity provider or database unavailable
		return scp.AssociationUser{}, err
	}
	u := scp.AssociationUser{ID: p.UserID, TenantID: p.TenantID, Services: dimse.ServiceEcho}
	if p.Can(auth.PermDICOMWrite) {
		u.Services |= dimse.ServiceStore | dimse.ServiceCommit
	}
	if p.Can(auth.PermDICOMRead) {
		u.Services |= dimse.ServiceFind | dimse.ServiceMove | dimse.ServiceGet
	}
	if u.Services == dimse.ServiceEcho {
		return scp.AssociationUser{}, fmt.Errorf("%w: the account's role may not use DICOM", scp.ErrUserRefused)
	}
	return u, nil
}

// callerTenant is the tenant the association's AE belongs to (scp.Policy).
func callerTenant(a *dimse.AssociationInfo) (int64, error) {
	if c, ok := a.Value.(scp.Caller); ok && c.TenantID != 0 {
		return c.TenantID, nil
	}
	return 0, index.ErrNoDefaultTenant
}

// newIngester builds the one ingest path.
func newIngester(s *server) *ingest.Ingester {
	policy, _ := index.ParseDuplicatePolicy(s.cfg.DuplicatePolicy) // validated with the configuration
	in := &ingest.Ingester{DB: s.db.pool, Store: s.store, Policy: policy, Logger: s.log}
	// The ingest transaction queues the thumbnails (dicom.thumbnail_queue);
	// the dispatcher turns them into jobs soon after the commit.
	in.After = append(in.After, func(context.Context, ingest.Stored) error {
		s.thumbs.Wake()
		return nil
	})
	for _, m := range s.mods {
		if h, ok := m.(modules.InstanceHook); ok {
			in.After = append(in.After, func(ctx context.Context, st ingest.Stored) error {
				return h.InstanceStored(ctx, modules.StoredInstance{TenantID: st.TenantID, PersonID: st.PersonID,
					StudyInstanceUID: st.StudyInstanceUID, SeriesInstanceUID: st.SeriesInstanceUID, SOPInstanceUID: st.SOPInstanceUID,
					SOPClassUID: st.SOPClassUID, Modality: st.Modality, ToothCodes: st.ToothCodes})
			})
		}
	}
	return in
}

// newQueryService builds C-FIND (patient root, study root, worklist),
// C-MOVE and C-GET over the index. The worklist stays empty until a
// dicomHook sets Service.Worklist (booking).
func newQueryService(s *server) *query.Service {
	return &query.Service{DB: s.db.pool, Store: s.store, AETitle: s.cfg.AETitle, ClientTLS: s.clientTLS, Logger: s.log, Tenant: callerTenant,
		Worklist: func() worklist.Source { return nil }, Gate: s.dimseGate}
}

// dimseGate: an association signed in with an account (a require-user AE)
// sees only the images of persons the account may reach, as the account
// would over DICOMweb (its units' care relations, custody, an active
// break-the-glass grant), and studies not yet matched to anyone only when
// the account reconciles studies. Other associations see their
// municipality's images, as DIMSE peers do.
func (s *server) dimseGate(ctx context.Context, tx pgx.Tx, a *dimse.AssociationInfo) (func(int64) (bool, error), error) {
	c, ok := a.Value.(scp.Caller)
	if !ok || c.UserID == 0 || s.auth == nil {
		return nil, nil
	}
	u, err := auth.GetUser(ctx, tx, c.UserID)
	if err != nil {
		return nil, err
	}
	p := u.Principal(auth.MethodBasic)
	return func(person int64) (bool, error) {
		if person == 0 {
			return reconcile.CheckUnmatched(p) == nil, nil
		}
		d, err := s.auth.Access(ctx, tx, p, person)
		return d.Allowed, err
	}, nil
}

// dicomPart wires DICOM ingest, the index and query (dicom/): the ingest
// path shared by C-STORE, STOW-RS (s.ingester) and `molar import`, the
// query/retrieve service, the orphan sweep, and reconciliation pages.
func dicomPart(s *server) corePart {
	p := corePart{name: "dicom"}
	if s == nil {
		return p
	}
	p.prepare = func(ctx context.Context, workers *river.Workers) error {
		s.ingester = newIngester(s)
		if err := river.AddWorkerSafely(workers, &commit.Worker{DB: s.db.pool, Store: s.store, AETitle: s.cfg.AETitle,
			ClientTLS: s.clientTLS, Log: s.log}); err != nil {
			return err
		}
		return s.prepareReconciliation()
	}
	p.housekeeping = []jobs.Task{{Name: "sweep unindexed DICOM objects and their thumbnails", Run: func(ctx context.Context) error {
		// The recent day folders at every run, and one month of the older
		// archive in turn (what a deletion or an overwrite of an older
		// instance could not remove while the store failed): 30 years of
		// months in 3.75 days of runs every 15 minutes.
		now := time.Now()
		n, err := ingest.Sweep(ctx, s.db.pool, s.store, now, orphanGrace, orphanDays)
		if err == nil {
			var m int
			// The month follows the clock (restarts do not reset it).
			back := int(now.Unix()/int64(jobs.HousekeepingEvery/time.Second)) % archiveMonths
			m, err = ingest.SweepMonth(ctx, s.db.pool, s.store, now, orphanGrace, back)
			n += m
		}
		if n > 0 {
			s.log.Info("removed unindexed DICOM objects and thumbnails", "count", n)
		}
		return err
	}}}
	adm := &dicomadmin.Handler{Pool: s.db.pool, AETitle: s.cfg.AETitle, Addr: s.cfg.DICOMAddr}
	prepare := p.prepare
	p.prepare = func(ctx context.Context, workers *river.Workers) error {
		adm.Shell = s.shell
		s.shell.Catalog.Add(dicomadmin.Messages())
		s.shell.AddNav(web.NavItem{Label: "dicomadmin.nav", Path: "/admin/dicom/", Permission: auth.PermAdminAE, Order: 95})
		if err := s.shell.AddPages(dicomadmin.Pages(), "*.html"); err != nil {
			return err
		}
		return prepare(ctx, workers)
	}
	p.routes = func(r chi.Router) {
		s.reconciliationRoutes(r)
		adm.Routes(r)
	}
	return p
}

// dicomTLS wraps the DICOM listener in TLS when configured (PS3.15 Annex B
// secure transport): the server's certificate, and optionally client
// certificates required and verified against a CA.
func dicomTLS(cfg *Config, ln net.Listener) (net.Listener, error) {
	if cfg.DICOMTLSCert == "" {
		return ln, nil
	}
	cert, ca, err := dicomTLSFiles(cfg)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: cert, MinVersion: tls.VersionTLS12}
	if ca != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tls.NewListener(ln, tc), nil
}

// dicomClientTLS is Molar's side of the associations it opens to AEs
// registered with TLS: the listener's certificate (for peers that require
// client certificates) and, beside the system's roots, the CA of
// MOLAR_DICOM_TLS_CA (one DICOM PKI for both directions).
func dicomClientTLS(cfg *Config) (*tls.Config, error) {
	cert, ca, err := dicomTLSFiles(cfg)
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	roots.AppendCertsFromPEM(ca)
	return &tls.Config{Certificates: cert, RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}

// dicomTLSFiles loads MOLAR_DICOM_TLS_CERT/KEY (none: nil) and reads the
// PEM of MOLAR_DICOM_TLS_CA (none: nil).
func dicomTLSFiles(cfg *Config) ([]tls.Certificate, []byte, error) {
	var certs []tls.Certificate
	if cfg.DICOMTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.DICOMTLSCert, cfg.DICOMTLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("DICOM TLS certificate (MOLAR_DICOM_TLS_CERT, MOLAR_DICOM_TLS_KEY): %w", err)
		}
		certs = []tls.Certificate{cert}
	}
	if cfg.DICOMTLSCA == "" {
		return certs, nil, nil
	}
	pem, err := os.ReadFile(cfg.DICOMTLSCA)
	if err != nil {
		return nil, nil, fmt.Errorf("DICOM TLS CA (MOLAR_DICOM_TLS_CA): %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("DICOM TLS CA (MOLAR_DICOM_TLS_CA): no PEM certificates in %s", cfg.DICOMTLSCA)
	}
	return certs, pem, nil
}
