package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/thumb"
	dweb "github.com/molar-health/molar/dicom/web"
	"github.com/molar-health/molar/journal/portal"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/jobs"
	"github.com/molar-health/molar/viewer/web"
)

// server is one running Molar: what cmdServe wires together.
type server struct {
	cfg   *Config
	log   *slog.Logger
	db    *database
	store storage.ObjectStore
	queue *jobs.Queue
	reg   *prometheus.Registry
	shell *web.Shell
	auth  *auth.Service
	demo  *demo.Result
	mods  []modules.Module
	parts []corePart
	// dicom is the DICOM SCP; dicomHooks let parts set its handlers
	// (Store, Find, Move, Get) before it serves.
	// portalJournal and portalBooking feed the parent portal; set by the
	// journal and booking wiring (nil: the portal shows what it has).
	portalJournal portal.Journal
	portalBooking portal.Booking
	dicom         *dimse.Server
	dicomHooks    []func(*dimse.Server)
	// clientTLS is Molar's side of DICOM TLS to AEs registered with TLS.
	clientTLS *tls.Config
	// ingester is the one ingest path (C-STORE, STOW-RS, import); set by
	// the DICOM part. dicomweb is the DICOMweb service.
	ingester *ingest.Ingester
	// thumbs moves instances queued by ingest into thumbnail jobs.
	thumbs   *thumb.Dispatcher
	dicomweb *dweb.Service
	router   chi.Router
	http     *http.Server
	draining atomic.Bool
	// background work started by start(); stopped by shutdown().
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
	// closers run at shutdown in reverse order (DICOM server, sealer …).
	stops []func(ctx context.Context)
}

func listen(addr, what, env string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s address %s is already in use (set %s to another address)", what, addr, env)
		}
		return nil, fmt.Errorf("%s address %s (%s): %w", what, addr, env, err)
	}
	return ln, nil
}

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := parseConfig("serve", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	httpLn, err := listen(cfg.HTTPAddr, "HTTP", "MOLAR_HTTP_ADDR")
	if err != nil {
		return err
	}
	defer httpLn.Close()
	dicomLn, err := listen(cfg.DICOMAddr, "DICOM", "MOLAR_DICOM_ADDR")
	if err != nil {
		return err
	}
	defer dicomLn.Close()
	if dicomLn, err = dicomTLS(cfg, dicomLn); err != nil {
		return err
	}

	s, err := newServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	if err := s.start(ctx, httpLn, dicomLn); err != nil {
		return err
	}
	s.printBanner(stdout, httpLn.Addr().String(), dicomLn.Addr().String())
	log.Info("ready", "http", httpLn.Addr().String(), "dicom", dicomLn.Addr().String())
	select {
	case <-ctx.Done():
		log.Info("shutting down", "deadline", cfg.ShutdownTimeout.String())
		s.shutdown(context.WithoutCancel(ctx))
		return nil
	case <-s.db.exited():
		// Without its database molar can neither acknowledge nor serve
		// anything: stop, so that the supervisor (systemd) starts both
		// again, rather than answer every request with an error. The
		// server's own log says why (it is not copied here: its lines can
		// hold values of failed statements).
		log.Error("embedded PostgreSQL stopped unexpectedly; molar stops too", "postgres_log", s.db.cluster.LogPath())
		s.shutdown(context.WithoutCancel(ctx))
		return fmt.Errorf("embedded PostgreSQL stopped unexpectedly (its log: %s); molar stopped", s.db.cluster.LogPath())
	}
}

// newServer opens the database and object store and builds every component.
func newServer(ctx context.Context, cfg *Config, log *slog.Logger) (*server, error) {
	db, err := openDatabase(ctx, cfg, log, dbServe)
	if err != nil {
		return nil, err
	}
	s, err := newServerFrom(ctx, cfg, db, log)
	if err != nil {
		db.close(ctx)
		return nil, err
	}
	return s, nil
}

// newServerFrom builds every component on an open database. With cfg.Demo
// it seeds the demo data.
func newServerFrom(ctx context.Context, cfg *Config, db *database, log *slog.Logger) (*server, error) {
	s := &server{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	s.db = db
	if s.store, err = openObjectStore(ctx, cfg, log); err != nil {
		return nil, err
	}
	if s.clientTLS, err = dicomClientTLS(cfg); err != nil {
		return nil, err
	}
	if err := s.wire(ctx); err != nil {
		return nil, err
	}
	if cfg.Demo {
		res, err := seedDemo(ctx, db, s.parts, s.mods)
		if err != nil {
			return nil, fmt.Errorf("demo data: %w", err)
		}
		s.demo = &res
	}
	return s, nil
}

// start begins serving HTTP and DICOM and runs background work.
func (s *server) start(ctx context.Context, httpLn, dicomLn net.Listener) error {
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.bgCancel = cancel
	if s.queue != nil {
		if err := s.queue.Start(bgCtx); err != nil {
			return err
		}
	}
	for _, r := range s.runners() {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if err := r.run(bgCtx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("background task stopped", "task", r.name, "err", err)
			}
		}()
	}
	s.http = &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.http.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	}()
	return s.startDICOM(bgCtx, dicomLn)
}

// shutdown stops accepting, lets in-flight requests and associations finish
// within the deadline, stops background jobs; close then stops the database.
func (s *server) shutdown(ctx context.Context) {
	s.draining.Store(true)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if s.http != nil {
			if err := s.http.Shutdown(ctx); err != nil {
				s.log.Warn("http shutdown deadline passed; closing connections", "err", err)
				_ = s.http.Close()
			}
		}
	}()
	for i := len(s.stops) - 1; i >= 0; i-- {
		wg.Add(1)
		go func() { defer wg.Done(); s.stops[i](ctx) }()
	}
	wg.Wait()
	if s.queue != nil {
		if err := s.queue.Stop(ctx); err != nil {
			s.log.Warn("job queue stop", "err", err)
		}
	}
	if s.bgCancel != nil {
		s.bgCancel()
	}
	s.bg.Wait()
	s.log.Info("stopped serving")
}

func (s *server) close(ctx context.Context) {
	if s.db != nil {
		s.db.close(ctx)
		s.db = nil
	}
}

// readyChecks are what /readyz asks.
func (s *server) readyChecks() []web.Check {
	return []web.Check{
		{Name: "database", Fn: func(ctx context.Context) error { return s.db.pool.Ping(ctx) }},
		{Name: "objectstore", Fn: func(ctx context.Context) error { return s.store.Ping(ctx) }},
	}
}

// publicRoutes mounts what needs no login: health, metrics, static assets.
func (s *server) publicRoutes(r chi.Router, assets *web.Assets) {
	r.Get("/healthz", web.Healthz)
	r.Get("/readyz", web.Readyz(s.draining.Load, s.readyChecks()...))
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	r.Method(http.MethodGet, assets.Prefix()+"/*", assets)
}

type runner struct {
	name string
	run  func(ctx context.Context) error
}
