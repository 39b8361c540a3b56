package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/riverqueue/river"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/thumb"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/modules/directory"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/jobs"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// moduleList is every plug-in module, built explicitly (no init-time
// registration). Modules get their dependencies here; s is nil when only
// the modules' names and migrations are needed (molar migrate).
func moduleList(s *server) []modules.Module {
	dir := &directory.Module{}
	if s != nil {
		dir.Pool, dir.Shell = s.db.pool, s.shell
		dir.Units = unitsAdapter{s}
		dir.ViewerOf = func(r *http.Request) (directory.Viewer, bool) {
			p := auth.PrincipalFrom(r.Context())
			if p == nil {
				return directory.Viewer{}, false
			}
			v := directory.Viewer{TenantID: p.TenantID, Username: p.Username, CanEdit: p.Can(directory.PermEdit), AllUnits: p.Can(auth.PermAdminSystem)}
			if v.CanEdit && !v.AllUnits {
				units, err := auth.UserUnits(r.Context(), s.db.pool, p.UserID)
				if err != nil {
					return directory.Viewer{}, false
				}
				v.Units = units
			}
			return v, true
		}
	}
	return []modules.Module{dir, bookingModule(s)}
}

// unitsAdapter serves the directory module from the core register.
type unitsAdapter struct{ s *server }

func (a unitsAdapter) Units(ctx context.Context, tenantID int64) ([]directory.Unit, error) {
	units, err := auth.OrgUnits(ctx, a.s.db.pool, tenantID)
	if err != nil {
		return nil, err
	}
	out := make([]directory.Unit, len(units))
	for i, u := range units {
		out[i] = directory.Unit{ID: u.ID, Kind: u.Kind, Name: u.Name}
	}
	return out, nil
}

// coreNamespaces are the core's migration namespaces; modules may not take them.
var coreNamespaces = []string{"audit", "auth", "dicom", "journal", "portal", "viewer", "river", "molar_migrations", "public"}

// sources lists every migration source in the order they apply.
func sources(mods []modules.Module) []postgres.Source {
	src := []postgres.Source{
		audit.Migrations(),
		auth.Migrations(),
		jobs.Source(),
		index.Migrations(),
	}
	for _, p := range coreParts(nil) {
		src = append(src, p.sources...)
	}
	for _, m := range mods {
		if fs := m.Migrations(); fs != nil {
			src = append(src, postgres.Source{Namespace: m.Name(), FS: fs})
		}
	}
	return src
}

// corePart is one core package's share of the server (the journal and
// portal, DICOM ingest and query, imaging and DICOMweb, the viewer), wired
// in its own wire_<name>.go so that each stays in one file.
type corePart struct {
	name    string
	sources []postgres.Source // migrations (needed with s == nil too)
	// prepare builds the package once the shell exists and before the job
	// queue does: add pages and messages, register job workers.
	prepare func(ctx context.Context, workers *river.Workers) error
	// routes mounts the package's HTTP routes; authentication is already
	// in front of them (deny by default).
	routes func(r chi.Router)
	// runners are background tasks of the part.
	runners []runner
	// housekeeping are periodic chores of the part.
	housekeeping []jobs.Task
	// static files served at content-hash URLs under /static ({{asset}}).
	static fs.FS
	// demo adds the part's demo data (idempotent; runs at every demo start
	// after the core's demo and before the modules').
	demo func(ctx context.Context, d modules.Demo) error
}

// coreParts lists the core parts in wiring order. s is nil when only
// migrations are needed. Building a part must not use s.shell or s.queue:
// they exist only when prepare runs.
func coreParts(s *server) []corePart {
	return []corePart{journalPart(s), bookingPart(s), portalPart(s), imagingPart(s), dicomPart(s), dicomwebPart(s), viewerPart(s), exportPart(s), staffPart(s)}
}

// migrateAll applies the core's and every module's migrations, then River's.
func migrateAll(ctx context.Context, ownerURL string, log *slog.Logger) error {
	mods := moduleList(nil)
	if err := modules.Validate(mods, coreNamespaces...); err != nil {
		return err
	}
	_, err := postgres.MigrateThen(ctx, ownerURL, sources(mods), log, func(ctx context.Context) error {
		return jobs.Migrate(ctx, ownerURL, log)
	})
	return err
}

// wire builds the shell, authentication, routes, job workers and modules.
func (s *server) wire(ctx context.Context) error {
	cat, err := web.NewCatalog()
	if err != nil {
		return err
	}
	s.parts = coreParts(s)
	statics := []fs.FS{web.CoreStatic()}
	for _, p := range s.parts {
		if p.static != nil {
			statics = append(statics, p.static)
		}
	}
	assets, err := web.NewAssets("/static", statics...)
	if err != nil {
		return err
	}
	s.shell = web.NewShell(cat, assets, s.log)
	if err := s.shell.AddPages(web.CorePages(), "*.html"); err != nil {
		return err
	}
	mods := moduleList(s)
	s.mods = mods
	for _, m := range mods {
		if p, ok := m.(modules.Permissioner); ok {
			for _, perm := range p.Permissions() {
				for _, role := range perm.Roles {
					auth.RegisterPermissions(role, perm.Name)
				}
			}
		}
		if pg, ok := m.(modules.Pager); ok {
			fsys, pattern := pg.Pages()
			if err := s.shell.AddPages(fsys, pattern); err != nil {
				return fmt.Errorf("module %s: %w", m.Name(), err)
			}
		}
		if mm, ok := m.(modules.Messager); ok {
			cat.Add(mm.Messages())
		}
		if n, ok := m.(modules.Navigator); ok {
			for _, it := range n.Nav() {
				s.shell.AddNav(web.NavItem{Label: it.Label, Path: it.Path, Permission: it.Permission, Order: it.Order})
			}
		}
	}
	registerErrors()

	workers := river.NewWorkers()
	for _, p := range s.parts {
		if p.prepare != nil {
			if err := p.prepare(ctx, workers); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	house := &jobs.Housekeeping{Logger: s.log, Tasks: s.housekeeping()}
	river.AddWorker(workers, house)
	if s.queue, err = jobs.New(s.db.pool, jobs.Options{Workers: workers, Logger: s.log,
		// Background work takes at most half the cores, so arriving
		// instances always have CPU to be acknowledged quickly; thumbnails
		// have their own queue with many jobs in hand, made on a pool of
		// half the cores' threads at a lower priority (wire_imaging.go).
		Concurrency: max(1, runtime.NumCPU()/2), Queues: map[string]int{thumb.Queue: thumb.QueueWorkers},
		Periodic: []*river.PeriodicJob{house.Periodic()}}); err != nil {
		return err
	}
	s.reg.MustRegister(s.queue.Collector())

	httpMetrics := web.NewHTTPMetrics(s.reg)
	r := chi.NewRouter()
	r.Use(web.RequestID, web.Observe(s.log, httpMetrics), web.SecurityHeaders, web.RememberLang)
	if s.dicomweb != nil {
		r.Use(s.dicomweb.Preflight) // CORS preflights carry no credentials
	}
	if err := s.mountAuth(ctx, r); err != nil {
		return err
	}
	s.publicRoutes(r, assets)
	s.mountCore(r)
	for _, p := range s.parts {
		if p.routes != nil {
			p.routes(r)
		}
	}
	for _, m := range mods {
		r.Route("/m/"+m.Name(), m.Routes)
	}
	r.NotFound(func(w http.ResponseWriter, req *http.Request) { s.shell.Error(w, req, web.E(web.NotFound, "")) })
	s.router = r
	return nil
}

// registerErrors maps the packages' sentinel errors to HTTP kinds, once.
func registerErrors() {
	registerOnce.Do(func() {
		web.RegisterError(storage.ErrNotFound, web.NotFound)
		web.RegisterError(storage.ErrInvalidKey, web.Invalid)
		web.RegisterError(storage.ErrInvalidRange, web.Invalid)
		web.RegisterError(auth.ErrNotFound, web.NotFound)
		web.RegisterError(auth.ErrInvalidCredentials, web.Unauthorized)
		web.RegisterError(auth.ErrUnauthenticated, web.Unauthorized)
		web.RegisterError(auth.ErrSessionExpired, web.Unauthorized)
		web.RegisterError(auth.ErrLocked, web.Forbidden)
		web.RegisterError(auth.ErrForbidden, web.Forbidden)
		web.RegisterError(auth.ErrNoRole, web.Forbidden)
		web.RegisterError(auth.ErrCSRF, web.CSRF)
		web.RegisterError(auth.ErrRateLimited, web.RateLimited)
		web.RegisterError(auth.ErrConflict, web.Conflict)
		web.RegisterError(auth.ErrInvalidInput, web.Invalid)
		web.RegisterError(auth.ErrInvalidCPR, web.Invalid)
		web.RegisterError(auth.ErrWeakPassword, web.Invalid)
		web.RegisterError(auth.ErrUnavailable, web.Unavailable)
		web.RegisterError(index.ErrNotFound, web.NotFound)
		web.RegisterError(index.ErrInvalid, web.Invalid)
		web.RegisterError(index.ErrExists, web.Conflict)
		web.RegisterError(booking.ErrSlotTaken, web.Conflict)
		web.RegisterError(booking.ErrStatus, web.Conflict)
		web.RegisterError(booking.ErrRule, web.Invalid)
		web.RegisterError(booking.ErrClosed, web.Invalid)
		web.RegisterError(booking.ErrInvalid, web.Invalid)
		web.RegisterError(booking.ErrForbidden, web.Forbidden)
		web.RegisterError(booking.ErrNotFound, web.NotFound)
	})
}

// runners are the background tasks of a server: the audit sealer, the
// modules' own work.
func (s *server) runners() []runner {
	rs := []runner{{"audit sealer", (&audit.Sealer{Pool: s.db.pool, Logger: s.log}).Run}}
	for _, p := range s.parts {
		rs = append(rs, p.runners...)
	}
	for _, m := range s.mods {
		if r, ok := m.(modules.Runner); ok {
			rs = append(rs, runner{"module " + m.Name(), r.Run})
		}
	}
	return rs
}

// seedDemo seeds the demo municipality, then the modules' demo data.
func seedDemo(ctx context.Context, db *database, parts []corePart, mods []modules.Module) (demo.Result, error) {
	res, err := demo.Seed(ctx, db.pool, time.Now())
	if err != nil {
		return res, err
	}
	d := modules.Demo{TenantID: res.TenantID, ClinicID: res.ClinicID, HomeCareID: res.HomeCareID}
	for _, c := range res.Children {
		d.Children = append(d.Children, modules.DemoPerson{PersonID: c.PersonID, Parents: c.Parents})
	}
	for _, c := range res.Youths {
		d.Youths = append(d.Youths, modules.DemoPerson{PersonID: c.PersonID, Parents: c.Parents})
	}
	for _, p := range parts {
		if p.demo != nil {
			if err := p.demo(ctx, d); err != nil {
				return res, fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	for _, m := range mods {
		if sd, ok := m.(modules.Seeder); ok {
			if err := sd.SeedDemo(ctx, d); err != nil {
				return res, fmt.Errorf("module %s: %w", m.Name(), err)
			}
		}
	}
	return res, nil
}

func (s *server) printBanner(w io.Writer, httpAddr, dicomAddr string) {
	base := s.cfg.publicURL()
	if s.cfg.PublicURL == "" {
		base = "http://" + httpAddr
	}
	fmt.Fprintf(w, "\nMolar is ready.\n")
	fmt.Fprintf(w, "  Web:       %s/\n", base)
	fmt.Fprintf(w, "  DICOMweb:  %s/dicomweb\n", base)
	fmt.Fprintf(w, "  DICOM:     AE title %s at %s\n", s.cfg.AETitle, dicomAddr)
	fmt.Fprintf(w, "  Health:    %s/healthz  %s/readyz  %s/metrics\n", base, base, base)
	if s.cfg.DatabaseURL == "" {
		fmt.Fprintf(w, "  Data:      %s (embedded PostgreSQL, filesystem objects)\n", s.cfg.DataDir)
	}
	if s.demo != nil {
		printLogins(w, *s.demo)
	}
	fmt.Fprintf(w, "Press Ctrl-C to stop.\n\n")
}

func printLogins(w io.Writer, res demo.Result) {
	fmt.Fprintf(w, "\nDemo logins (password for all: %s):\n", demo.Password)
	for _, l := range res.Logins {
		fmt.Fprintf(w, "  %-18s %s\n", l.Username, l.Role)
	}
}

// startDICOM serves DICOM on ln.
func (s *server) startDICOM(ctx context.Context, ln net.Listener) error {
	return s.serveDICOM(ctx, ln)
}

var _ http.Handler = chi.NewRouter()

// housekeeping lists the periodic chores.
func (s *server) housekeeping() []jobs.Task {
	tasks := []jobs.Task{{Name: "purge expired sessions", Run: func(ctx context.Context) error {
		n, err := auth.PurgeExpired(ctx, s.db.pool, time.Now())
		if n > 0 {
			s.log.Info("purged expired sessions", "count", n)
		}
		return err
	}}}
	for _, p := range s.parts {
		tasks = append(tasks, p.housekeeping...)
	}
	if fsys, ok := s.store.(interface {
		SweepTemp(time.Duration) (int, error)
	}); ok {
		tasks = append(tasks, jobs.Task{Name: "sweep temporary objects", Run: func(context.Context) error {
			_, err := fsys.SweepTemp(time.Hour)
			return err
		}})
	}
	return tasks
}
