// Package directory is a small plug-in module: the municipality's units
// (dental clinics, home-care groups, health visitors …) with their contact
// details and opening hours, for staff and citizens ("Kontakt"). Unit
// administrators keep the details up to date.
//
// It is the first module and shows the module interface end to end: its own
// schema and migrations, routes under /m/directory, declared permissions, a
// navigation entry, Danish and English messages, and the core reached only
// through an interface (Units) that cmd/molar wires in.
package directory

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// Permission to edit a unit's details.
const PermEdit = "directory.edit"

// Unit is one unit of the core register as the module sees it.
type Unit struct {
	ID   int64
	Kind string
	Name string
}

// Units is what the module needs from the core register.
type Units interface {
	// Units lists the tenant's units.
	Units(ctx context.Context, tenantID int64) ([]Unit, error)
}

// Viewer tells who is asking (from the request's principal).
type Viewer struct {
	TenantID int64
	Username string
	// CanEdit: the user holds PermEdit; they may edit the units they belong
	// to (Units), or every unit of the municipality when AllUnits.
	CanEdit  bool
	Units    []int64
	AllUnits bool
}

// mayEdit reports whether the viewer may edit unit.
func (v Viewer) mayEdit(unit int64) bool {
	if !v.CanEdit {
		return false
	}
	if v.AllUnits {
		return true
	}
	for _, u := range v.Units {
		if u == unit {
			return true
		}
	}
	return false
}

// Module is the directory module.
type Module struct {
	Pool  *pgxpool.Pool
	Units Units
	Shell *web.Shell
	// ViewerOf returns the signed-in user of a request.
	ViewerOf func(*http.Request) (Viewer, bool)
}

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed templates/*.html
var templates embed.FS

// Name implements modules.Module.
func (m *Module) Name() string { return "directory" }

// Migrations implements modules.Module.
func (m *Module) Migrations() fs.FS { sub, _ := fs.Sub(migrations, "migrations"); return sub }

// Permissions implements modules.Permissioner.
func (m *Module) Permissions() []modules.Permission {
	return []modules.Permission{{Name: PermEdit, Roles: []string{"clinic_admin", "system_admin"}}}
}

// Nav implements modules.Navigator.
func (m *Module) Nav() []modules.NavItem {
	return []modules.NavItem{{Label: "directory.nav", Path: "/m/directory/", Order: 90}}
}

// Messages implements modules.Messager.
func (m *Module) Messages() map[string]map[string]string {
	return map[string]map[string]string{
		"da": {
			"directory.nav": "Kontakt", "directory.title": "Kontakt og åbningstider",
			"directory.phone": "Telefon", "directory.email": "E-mail", "directory.address": "Adresse",
			"directory.hours": "Åbningstider", "directory.note": "Bemærkning", "directory.edit": "Ret oplysninger",
			"directory.save": "Gem", "directory.saved": "Oplysningerne er gemt.", "directory.none": "Ingen enheder endnu.",
			"directory.kind.dental_clinic": "Tandklinik", "directory.kind.home_care": "Hjemmepleje",
			"directory.kind.health_visitor": "Sundhedspleje", "directory.kind.rehab": "Genoptræning",
		},
		"en": {
			"directory.nav": "Contact", "directory.title": "Contact and opening hours",
			"directory.phone": "Phone", "directory.email": "E-mail", "directory.address": "Address",
			"directory.hours": "Opening hours", "directory.note": "Note", "directory.edit": "Edit details",
			"directory.save": "Save", "directory.saved": "The details have been saved.", "directory.none": "No units yet.",
			"directory.kind.dental_clinic": "Dental clinic", "directory.kind.home_care": "Home care",
			"directory.kind.health_visitor": "Health visitors", "directory.kind.rehab": "Rehabilitation",
		},
	}
}

// Pages registers the module's templates with the shell.
func (m *Module) Pages() (fs.FS, string) { return templates, "templates/*.html" }

// Routes implements modules.Module. Mounted behind authentication at /m/directory.
func (m *Module) Routes(r chi.Router) {
	r.Get("/", m.handleList)
	r.Get("/{unit}/edit", m.requireEdit(m.handleEditForm))
	r.Post("/{unit}/edit", m.requireEdit(m.handleEdit))
}

// Entry is a unit with its details.
type Entry struct {
	Unit
	Info
}

// Info is what the module keeps per unit.
type Info struct {
	Phone, Email, Address, OpeningHours, Note string
}

func (i Info) validate() error {
	for _, f := range []struct {
		v   string
		max int
	}{{i.Phone, 40}, {i.Email, 200}, {i.Address, 300}, {i.OpeningHours, 1000}, {i.Note, 2000}} {
		if len(f.v) > f.max {
			return web.E(web.Invalid, fmt.Sprintf("a field is longer than %d characters", f.max))
		}
		// PostgreSQL text holds UTF-8 without NUL; anything else is refused
		// by the database, which would be an internal error.
		if !utf8.ValidString(f.v) || strings.ContainsRune(f.v, 0) {
			return web.E(web.Invalid, "a field contains characters that are not allowed")
		}
	}
	if i.Email != "" && (!strings.Contains(i.Email, "@") || strings.ContainsAny(i.Email, " \t\r\n")) {
		return web.E(web.Invalid, "invalid e-mail address")
	}
	return nil
}

// List returns the tenant's units with their details, by name.
func (m *Module) List(ctx context.Context, tenantID int64) ([]Entry, error) {
	units, err := m.Units.Units(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("directory: units: %w", err)
	}
	infos := map[int64]Info{}
	err = postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT org_unit_id, phone, email, address, opening_hours, note FROM directory.unit_info`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var i Info
			if err := rows.Scan(&id, &i.Phone, &i.Email, &i.Address, &i.OpeningHours, &i.Note); err != nil {
				return err
			}
			infos[id] = i
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("directory: details: %w", err)
	}
	out := make([]Entry, 0, len(units))
	for _, u := range units {
		out = append(out, Entry{Unit: u, Info: infos[u.ID]})
	}
	return out, nil
}

// Save stores a unit's details; the unit must belong to the tenant.
func (m *Module) Save(ctx context.Context, tenantID, unitID int64, info Info, by string) error {
	if err := info.validate(); err != nil {
		return err
	}
	if _, err := m.unit(ctx, tenantID, unitID); err != nil {
		return err
	}
	return postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO directory.unit_info (tenant_id, org_unit_id, phone, email, address, opening_hours, note, updated, updated_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8)
			ON CONFLICT (tenant_id, org_unit_id) DO UPDATE SET phone = EXCLUDED.phone, email = EXCLUDED.email,
			address = EXCLUDED.address, opening_hours = EXCLUDED.opening_hours, note = EXCLUDED.note,
			updated = now(), updated_by = EXCLUDED.updated_by`,
			tenantID, unitID, info.Phone, info.Email, info.Address, info.OpeningHours, info.Note, by)
		if err != nil {
			return fmt.Errorf("directory: save: %w", err)
		}
		return nil
	})
}

var errNoUnit = web.E(web.NotFound, "")

func (m *Module) unit(ctx context.Context, tenantID, unitID int64) (Unit, error) {
	units, err := m.Units.Units(ctx, tenantID)
	if err != nil {
		return Unit{}, err
	}
	for _, u := range units {
		if u.ID == unitID {
			return u, nil
		}
	}
	return Unit{}, errNoUnit
}

func (m *Module) requireEdit(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := m.ViewerOf(r)
		if !ok {
			m.Shell.Error(w, r, web.E(web.Unauthorized, ""))
			return
		}
		if !v.CanEdit {
			m.Shell.Error(w, r, web.E(web.Forbidden, ""))
			return
		}
		h(w, r)
	}
}

// GET /m/directory/
func (m *Module) handleList(w http.ResponseWriter, r *http.Request) {
	v, ok := m.ViewerOf(r)
	if !ok {
		m.Shell.Error(w, r, web.E(web.Unauthorized, ""))
		return
	}
	entries, err := m.List(r.Context(), v.TenantID)
	if err != nil {
		m.Shell.Error(w, r, err)
		return
	}
	editable := map[int64]bool{}
	for _, e := range entries {
		editable[e.ID] = v.mayEdit(e.ID)
	}
	m.Shell.Render(w, r, http.StatusOK, "directory_list", map[string]any{"Entries": entries, "Editable": editable, "Saved": r.URL.Query().Get("saved") == "1"})
}

func unitID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "unit"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errNoUnit
	}
	return id, nil
}

// GET /m/directory/{unit}/edit
func (m *Module) handleEditForm(w http.ResponseWriter, r *http.Request) {
	v, _ := m.ViewerOf(r)
	id, err := unitID(r)
	if err != nil {
		m.Shell.Error(w, r, err)
		return
	}
	if !v.mayEdit(id) {
		m.Shell.Error(w, r, web.E(web.Forbidden, ""))
		return
	}
	entries, err := m.List(r.Context(), v.TenantID)
	if err != nil {
		m.Shell.Error(w, r, err)
		return
	}
	for _, e := range entries {
		if e.ID == id {
			m.Shell.Render(w, r, http.StatusOK, "directory_edit", e)
			return
		}
	}
	m.Shell.Error(w, r, errNoUnit)
}

// POST /m/directory/{unit}/edit
func (m *Module) handleEdit(w http.ResponseWriter, r *http.Request) {
	v, _ := m.ViewerOf(r)
	id, err := unitID(r)
	if err != nil {
		m.Shell.Error(w, r, err)
		return
	}
	if !v.mayEdit(id) {
		m.Shell.Error(w, r, web.E(web.Forbidden, ""))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		m.Shell.Error(w, r, web.E(web.Invalid, "", err))
		return
	}
	info := Info{
		Phone: strings.TrimSpace(r.PostFormValue("phone")), Email: strings.TrimSpace(r.PostFormValue("email")),
		Address: strings.TrimSpace(r.PostFormValue("address")), OpeningHours: strings.TrimSpace(r.PostFormValue("opening_hours")),
		Note: strings.TrimSpace(r.PostFormValue("note")),
	}
	if err := m.Save(r.Context(), v.TenantID, id, info, v.Username); err != nil {
		if errors.Is(err, errNoUnit) {
			m.Shell.Error(w, r, err)
			return
		}
		m.Shell.Error(w, r, err)
		return
	}
	http.Redirect(w, r, "/m/directory/?saved=1", http.StatusSeeOther)
}

// SeedDemo implements modules.Seeder: contact details for the demo units.
func (m *Module) SeedDemo(ctx context.Context, d modules.Demo) error {
	details := map[int64]Info{
		d.ClinicID: {Phone: "+45 99 99 12 34", Email: "tandplejen@molarby.example", Address: "Skolevej 1, 9999 Molarby",
			OpeningHours: "Mandag–torsdag 7.30–15.30\nFredag 7.30–13.00", Note: "Akut tandpine: ring mellem 7.30 og 9.00."},
		d.HomeCareID: {Phone: "+45 99 99 56 78", Address: "Plejevej 2, 9999 Molarby", OpeningHours: "Alle dage 7.00–22.00"},
	}
	return postgres.InTenant(ctx, m.Pool, d.TenantID, func(tx pgx.Tx) error {
		for id, i := range details {
			if id == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO directory.unit_info (tenant_id, org_unit_id, phone, email, address, opening_hours, note, updated_by)
				VALUES ($1, $2, $3, $4, $5, $6, $7, 'demo') ON CONFLICT DO NOTHING`,
				d.TenantID, id, i.Phone, i.Email, i.Address, i.OpeningHours, i.Note); err != nil {
				return fmt.Errorf("directory: demo: %w", err)
			}
		}
		return nil
	})
}

// Interface guards.
var (
	_ modules.Module       = (*Module)(nil)
	_ modules.Permissioner = (*Module)(nil)
	_ modules.Navigator    = (*Module)(nil)
	_ modules.Messager     = (*Module)(nil)
	_ modules.Pager        = (*Module)(nil)
	_ modules.Seeder       = (*Module)(nil)
)
