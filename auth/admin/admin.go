// Package admin is the staff administration screen: the municipality's
// organisational units and who works in them. Membership decides whose
// records an account reaches (staff reach the persons their units care
// for), so every change is an audit event, and a clinic administrator
// manages the units they belong to themselves; a system administrator
// manages all. It needs the admin.users permission. (`molar unit member`
// does the same from the command line.) Units whose membership follows
// directory groups at every OIDC login (MOLAR_OIDC_UNIT_MAP) are shown but
// not changed here: the next login would undo it. A change that changes
// nothing (adding a member twice) is no audit event.
package admin

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

//go:embed templates/*.html
var templates embed.FS

// Pages is the screen's templates.
func Pages() fs.FS { sub, _ := fs.Sub(templates, "templates"); return sub }

// Handler serves /admin/staff.
type Handler struct {
	Pool  *pgxpool.Pool
	Shell *web.Shell
	// DirectoryUnits names the units whose membership follows directory
	// groups at every OIDC login (MOLAR_OIDC_UNIT_MAP): shown, not
	// changed here, as the next login would undo the change.
	DirectoryUnits []string
}

func fromDirectory(directory []string, u auth.OrgUnit) bool {
	return slices.ContainsFunc(directory, func(name string) bool {
		return strings.EqualFold(strings.TrimSpace(name), strings.TrimSpace(u.Name))
	})
}

// Routes mounts the screen.
func (h *Handler) Routes(r chi.Router) {
	r.Route("/admin/staff", func(r chi.Router) {
		r.Use(h.require)
		r.Get("/", h.handlePage)
		r.Post("/members", h.handleAdd)
		r.Post("/members/{user}/{unit}/delete", h.handleRemove)
	})
}

func (h *Handler) require(next http.Handler) http.Handler {
	return auth.RequirePermission(auth.PermAdminUsers, func(w http.ResponseWriter, r *http.Request) {
		h.Shell.Error(w, r, web.E(web.Forbidden, ""))
	})(next)
}

type unitRow struct {
	auth.OrgUnit
	Members   []auth.StaffMember
	Manage    bool
	Directory bool // membership follows directory groups
}

type page struct {
	Units  []unitRow
	Staff  []auth.StaffMember
	Manage []auth.OrgUnit
	Saved  string
}

// managed lists the units p may change membership of here: all of the
// municipality's for a system administrator, else p's own; never one whose
// membership follows directory groups.
func (h *Handler) managed(ctx context.Context, tx pgx.Tx, p *auth.Principal, units []auth.OrgUnit) ([]auth.OrgUnit, error) {
	var mine []int64
	if !p.Can(auth.PermAdminSystem) {
		var err error
		if mine, err = auth.UserUnits(ctx, tx, p.UserID); err != nil {
			return nil, err
		}
	}
	return manageable(units, mine, p.Can(auth.PermAdminSystem), h.DirectoryUnits), nil
}

// manageable is the rule of managed: every unit for a system
// administrator, else the administrator's own (mine); never one named in
// directory (case and surrounding spaces aside).
func manageable(units []auth.OrgUnit, mine []int64, system bool, directory []string) []auth.OrgUnit {
	var out []auth.OrgUnit
	for _, u := range units {
		if (system || slices.Contains(mine, u.ID)) && !fromDirectory(directory, u) {
			out = append(out, u)
		}
	}
	return out
}

// GET /admin/staff/
func (h *Handler) handlePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := auth.PrincipalFrom(ctx)
	var v page
	err := postgres.InTenant(ctx, h.Pool, p.TenantID, func(tx pgx.Tx) error {
		units, err := auth.OrgUnits(ctx, tx, p.TenantID)
		if err != nil {
			return err
		}
		if v.Staff, err = auth.Staff(ctx, tx, p.TenantID); err != nil {
			return err
		}
		if v.Manage, err = h.managed(ctx, tx, p, units); err != nil {
			return err
		}
		for _, u := range units {
			row := unitRow{OrgUnit: u, Manage: slices.ContainsFunc(v.Manage, func(m auth.OrgUnit) bool { return m.ID == u.ID }), Directory: fromDirectory(h.DirectoryUnits, u)}
			for _, s := range v.Staff {
				if slices.Contains(s.Units, u.ID) {
					row.Members = append(row.Members, s)
				}
			}
			v.Units = append(v.Units, row)
		}
		return nil
	})
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	if saved := r.URL.Query().Get("saved"); saved == "added" || saved == "removed" || saved == "unchanged" {
		v.Saved = saved
	}
	h.Shell.Render(w, r, http.StatusOK, "staff_admin", v)
}

// POST /admin/staff/members: user_id works in unit_id from now on.
func (h *Handler) handleAdd(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.Shell.Error(w, r, web.E(web.Invalid, ""))
		return
	}
	userID, _ := strconv.ParseInt(r.PostFormValue("user_id"), 10, 64)
	unitID, _ := strconv.ParseInt(r.PostFormValue("unit_id"), 10, 64)
	h.change(w, r, userID, unitID, true)
}

// POST /admin/staff/members/{user}/{unit}/delete: the membership ends.
func (h *Handler) handleRemove(w http.ResponseWriter, r *http.Request) {
	userID, _ := strconv.ParseInt(chi.URLParam(r, "user"), 10, 64)
	unitID, _ := strconv.ParseInt(chi.URLParam(r, "unit"), 10, 64)
	h.change(w, r, userID, unitID, false)
}

// change adds or ends a membership, checked and audited in one
// transaction: the unit must be one p manages, the user a staff account
// of p's municipality.
func (h *Handler) change(w http.ResponseWriter, r *http.Request, userID, unitID int64, add bool) {
	ctx := r.Context()
	p := auth.PrincipalFrom(ctx)
	unchanged := false
	err := postgres.InTenant(ctx, h.Pool, p.TenantID, func(tx pgx.Tx) error {
		units, err := auth.OrgUnits(ctx, tx, p.TenantID)
		if err != nil {
			return err
		}
		mine, err := h.managed(ctx, tx, p, units)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(mine, func(u auth.OrgUnit) bool { return u.ID == unitID }) {
			return web.E(web.NotFound, "")
		}
		staff, err := auth.Staff(ctx, tx, p.TenantID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(staff, func(s auth.StaffMember) bool { return s.UserID == userID })
		if i < 0 {
			return web.E(web.NotFound, "")
		}
		if slices.Contains(staff[i].Units, unitID) == add {
			unchanged = true // nothing to do, nothing to audit
			return nil
		}
		action := audit.ActionCreate
		if add {
			err = auth.AddUserUnit(ctx, tx, userID, unitID)
		} else {
			err, action = auth.RemoveUserUnit(ctx, tx, userID, unitID), audit.ActionDelete
		}
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{Action: action, Object: fmt.Sprintf("auth.user_unit/%d", userID),
			Detail: map[string]any{"org_unit_id": unitID, "source": "staff administration"}})
	})
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	saved := "added"
	switch {
	case unchanged:
		saved = "unchanged"
	case !add:
		saved = "removed"
	}
	http.Redirect(w, r, "/admin/staff/?saved="+saved, http.StatusSeeOther)
}

// Messages are the screen's texts.
func Messages() map[string]map[string]string {
	return map[string]map[string]string{
		"da": {
			"staffadmin.nav": "Medarbejdere", "staffadmin.title": "Medarbejdere og enheder",
			"staffadmin.intro": "Hvem der arbejder i en enhed, afgør hvis journaler de kan se. En klinikadministrator ændrer de enheder, vedkommende selv hører til; en systemadministrator alle.",
			"staffadmin.unit":  "Enhed", "staffadmin.kind": "Type", "staffadmin.members": "Medarbejdere", "staffadmin.nobody": "Ingen endnu.",
			"staffadmin.remove": "Fjern", "staffadmin.add": "Tilføj medarbejder til enhed", "staffadmin.user": "Medarbejder",
			"staffadmin.save": "Tilføj", "staffadmin.saved.added": "Medarbejderen er tilføjet enheden.",
			"staffadmin.saved.removed": "Medarbejderen er fjernet fra enheden.", "staffadmin.saved.unchanged": "Intet ændret: sådan var det allerede.",
			"staffadmin.directory": "Følger grupperne i kataloget (OIDC) ved hvert login; ændres dér.", "staffadmin.none": "Du hører ikke til nogen enhed og kan ikke ændre noget her.",
		},
		"en": {
			"staffadmin.nav": "Staff", "staffadmin.title": "Staff and units",
			"staffadmin.intro": "Who works in a unit decides whose records they can see. A clinic administrator changes the units they belong to; a system administrator all of them.",
			"staffadmin.unit":  "Unit", "staffadmin.kind": "Kind", "staffadmin.members": "Staff", "staffadmin.nobody": "Nobody yet.",
			"staffadmin.remove": "Remove", "staffadmin.add": "Add a staff member to a unit", "staffadmin.user": "Staff member",
			"staffadmin.save": "Add", "staffadmin.saved.added": "The staff member was added to the unit.",
			"staffadmin.saved.removed": "The staff member was removed from the unit.", "staffadmin.saved.unchanged": "Nothing changed: it was so already.",
			"staffadmin.directory": "Follows the directory's groups (OIDC) at every login; change it there.", "staffadmin.none": "You belong to no unit and cannot change anything here.",
		},
	}
}
