// Package modules defines how plug-in modules (booking, home-care journal,
// rehabilitation, housing, BI …) join the Molar server. cmd/molar builds the
// list of modules explicitly and hands each its dependencies; modules never
// import each other or read another package's tables.
//
// Lifecycle, as the core drives it:
//  1. Migrations are applied under the module's own PostgreSQL schema
//     (the namespace is Name()) before anything else runs.
//  2. Permissions are registered with the role table (optional Permissioner).
//  3. Routes are mounted at /m/<name> behind authentication: every route
//     denies anonymous requests unless the module marks it public.
//  4. Background work starts (optional Runner) and stops on shutdown.
//  5. After an instance is stored the core calls InstanceStored (optional
//     InstanceHook) outside the ingest transaction; an error is logged.
package modules

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"

	"github.com/go-chi/chi/v5"
)

// Module is the one interface every module implements.
type Module interface {
	// Name is the URL prefix (/m/<name>), migration namespace and schema,
	// and permission prefix ("booking" → "booking.read"). [a-z][a-z0-9_]*.
	Name() string
	// Routes registers the module's HTTP handlers on r, which the core has
	// mounted at /m/<name> behind authentication.
	Routes(r chi.Router)
	// Migrations returns the module's embedded *.sql files, or nil.
	Migrations() fs.FS
}

// Runner is implemented by modules with background work. Run blocks until
// ctx is cancelled and returns nil then.
type Runner interface {
	Run(ctx context.Context) error
}

// Permission is one permission a module declares, with the roles that hold it.
type Permission struct {
	Name  string   // "booking.manage"
	Roles []string // roles granted it by default
}

// Permissioner is implemented by modules that declare permissions.
type Permissioner interface {
	Permissions() []Permission
}

// NavItem is one entry of the web shell's navigation.
type NavItem struct {
	// Label is a message key looked up in the Danish and English catalogs
	// (a module adds its own keys through Messages).
	Label string
	Path  string // absolute, e.g. "/m/booking/"
	// Permission needed to see the entry ("" = any signed-in user).
	Permission string
	Order      int
}

// Navigator is implemented by modules with navigation entries.
type Navigator interface {
	Nav() []NavItem
}

// Messager is implemented by modules that add UI messages: lang → key → text.
type Messager interface {
	Messages() map[string]map[string]string
}

// Pager is implemented by modules with server-rendered pages: an fs.FS and
// a glob of templates, each defining "title" and "content" for the shell's
// layout. Page names (file names without extension) are global: prefix them
// with the module's name.
type Pager interface {
	Pages() (fs.FS, string)
}

// Demo describes the demo municipality the core seeded (`make run`,
// `molar demo`), so modules can add their own demo data.
type Demo struct {
	TenantID   int64
	ClinicID   int64 // the dental clinic
	HomeCareID int64 // the home-care group
	Children   []DemoPerson
	Youths     []DemoPerson // 15 and older
}

// DemoPerson is a demo child or young person.
type DemoPerson struct {
	PersonID int64
	Parents  []int64
}

// Seeder is implemented by modules with demo data. SeedDemo runs at every
// demo start and must be idempotent.
type Seeder interface {
	SeedDemo(ctx context.Context, d Demo) error
}

// PublicPather is implemented by modules with routes reachable without
// login, e.g. a calendar feed behind a secret link. Paths are relative to
// /m/<name>; one ending in "/" is a prefix. The handler is the only guard.
type PublicPather interface {
	PublicPaths() []string
}

// StoredInstance describes a DICOM instance that was just stored.
type StoredInstance struct {
	TenantID          int64
	PersonID          int64 // 0 when not reconciled yet
	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPInstanceUID    string
	SOPClassUID       string
	Modality          string
	ToothCodes        []string // ISO 3950 tooth numbers
}

// InstanceHook is implemented by modules that react to stored instances.
type InstanceHook interface {
	InstanceStored(ctx context.Context, in StoredInstance) error
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

// Validate checks a module list: valid, unique names that do not collide
// with the core's namespaces.
func Validate(mods []Module, reserved ...string) error {
	seen := map[string]bool{}
	for _, r := range reserved {
		seen[r] = true
	}
	for _, m := range mods {
		n := m.Name()
		if !nameRE.MatchString(n) {
			return fmt.Errorf("modules: invalid module name %q", n)
		}
		if seen[n] {
			return fmt.Errorf("modules: module name %q is taken", n)
		}
		seen[n] = true
	}
	return nil
}
