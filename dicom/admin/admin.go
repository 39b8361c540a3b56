// Package admin is the DICOM administration screen: the known application
// entities (who may connect and what they may do) and the association log
// (who connected, what happened, no patient identifiers). It needs the
// admin.ae permission, and shows and changes only the admin's own
// municipality's AEs and associations.
package admin

import (
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/viewer/web"
)

//go:embed templates/*.html
var templates embed.FS

// Pages is the screen's templates.
func Pages() fs.FS { sub, _ := fs.Sub(templates, "templates"); return sub }

// Handler serves /admin/dicom.
type Handler struct {
	Pool  *pgxpool.Pool
	Shell *web.Shell
	// AETitle and Addr describe this server for the page.
	AETitle, Addr string
}

// Routes mounts the screen.
func (h *Handler) Routes(r chi.Router) {
	r.Route("/admin/dicom", func(r chi.Router) {
		r.Use(h.require)
		r.Get("/", h.handlePage)
		r.Post("/aes", h.handleAdd)
		r.Post("/aes/{title}/delete", h.handleRemove)
	})
}

func (h *Handler) require(next http.Handler) http.Handler {
	return auth.RequirePermission(auth.PermAdminAE, func(w http.ResponseWriter, r *http.Request) {
		h.Shell.Error(w, r, web.E(web.Forbidden, ""))
	})(next)
}

type page struct {
	AETitle, Addr string
	AEs           []index.AE
	Log           []index.Association
	Error         string
	Saved         string
	// Edit fills the form with a registered AE (?edit=TITLE), so that
	// saving it changes only what the admin changes.
	Edit    index.AE
	Editing bool
}

// Has reports whether the edited AE holds a permission (the form's boxes).
func (p page) Has(perm string) bool { return p.Edit.Can(perm) }

// GET /admin/dicom/
func (h *Handler) handlePage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "", r.URL.Query().Get("saved"))
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, msg, saved string) {
	tenant := auth.PrincipalFrom(r.Context()).TenantID
	aes, err := index.ListAEsOf(r.Context(), h.Pool, tenant)
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	log, err := index.AssociationsOf(r.Context(), h.Pool, tenant, 100)
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	pg := page{AETitle: h.AETitle, Addr: h.Addr, AEs: aes, Log: log, Error: msg, Saved: saved,
		Edit: index.AE{Port: 104, Permissions: []string{index.PermEcho, index.PermStore}}}
	if title := r.URL.Query().Get("edit"); title != "" && status == http.StatusOK {
		ae, err := index.GetAEOf(r.Context(), h.Pool, tenant, title)
		if err != nil {
			h.Shell.Error(w, r, err)
			return
		}
		pg.Edit, pg.Editing = ae, true
	}
	h.Shell.Render(w, r, status, "dicom_admin", pg)
}

// POST /admin/dicom/aes
func (h *Handler) handleAdd(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.Shell.Error(w, r, web.E(web.Invalid, ""))
		return
	}
	port, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("port")))
	if err != nil {
		h.render(w, r, http.StatusBadRequest, "dicomadmin.badport", "")
		return
	}
	perms, err := index.ParsePermissions(strings.Join(r.PostForm["perm"], ","))
	if err != nil {
		h.render(w, r, http.StatusBadRequest, err.Error(), "")
		return
	}
	p := auth.PrincipalFrom(r.Context())
	ae := index.AE{Title: strings.TrimSpace(r.PostFormValue("title")), Host: strings.TrimSpace(r.PostFormValue("host")), Port: port,
		Permissions: perms, Description: strings.TrimSpace(r.PostFormValue("description")), TLS: r.PostFormValue("tls") == "on",
		RequireUser: r.PostFormValue("require_user") == "on", TenantID: p.TenantID}
	if err := index.AddAEOf(r.Context(), h.Pool, ae, r.PostFormValue("replace") == "on"); err != nil {
		if errors.Is(err, index.ErrInvalid) || errors.Is(err, index.ErrExists) {
			h.render(w, r, http.StatusBadRequest, err.Error(), "")
			return
		}
		h.Shell.Error(w, r, err)
		return
	}
	http.Redirect(w, r, "/admin/dicom/?saved="+ae.Title, http.StatusSeeOther)
}

// POST /admin/dicom/aes/{title}/delete
func (h *Handler) handleRemove(w http.ResponseWriter, r *http.Request) {
	tenant := auth.PrincipalFrom(r.Context()).TenantID
	if err := index.RemoveAEOf(r.Context(), h.Pool, tenant, chi.URLParam(r, "title")); err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	http.Redirect(w, r, "/admin/dicom/", http.StatusSeeOther)
}

// Messages are the screen's texts.
func Messages() map[string]map[string]string {
	return map[string]map[string]string{
		"da": {
			"dicomadmin.nav": "DICOM", "dicomadmin.title": "DICOM-forbindelser", "dicomadmin.us": "Molar modtager som AE-titel %s på %s.",
			"dicomadmin.aes": "Kendte apparater og systemer (AE)", "dicomadmin.title_col": "AE-titel", "dicomadmin.address": "Adresse",
			"dicomadmin.perms": "Må", "dicomadmin.desc": "Beskrivelse", "dicomadmin.add": "Tilføj eller ret", "dicomadmin.host": "Værtsnavn eller IP",
			"dicomadmin.port": "Port", "dicomadmin.replace": "Ret, hvis den findes", "dicomadmin.save": "Gem", "dicomadmin.remove": "Fjern",
			"dicomadmin.saved": "AE %s er gemt.", "dicomadmin.badport": "Porten skal være et tal fra 1 til 65535.",
			"dicomadmin.log": "Forbindelseslog", "dicomadmin.when": "Åbnet", "dicomadmin.peer": "Fra", "dicomadmin.outcome": "Udfald",
			"dicomadmin.counts": "Forespørgsler / gemt / fejl", "dicomadmin.unknown": "ukendt AE", "dicomadmin.none": "Ingen forbindelser endnu.",
			"dicomadmin.perm.echo": "echo", "dicomadmin.perm.store": "gemme", "dicomadmin.perm.find": "søge", "dicomadmin.perm.move": "hente (move)", "dicomadmin.perm.get": "hente (get)",
			"dicomadmin.tls":         "Molar forbinder til den med DICOM TLS (krypteret)",
			"dicomadmin.requireuser": "Forbindelser skal logge ind med en Molar-bruger (DICOM user identity)", "dicomadmin.signin": "log ind",
			"dicomadmin.signedby": "som %s", "dicomadmin.edit": "Ret",
		},
		"en": {
			"dicomadmin.nav": "DICOM", "dicomadmin.title": "DICOM connections", "dicomadmin.us": "Molar listens as AE title %s on %s.",
			"dicomadmin.aes": "Known devices and systems (AEs)", "dicomadmin.title_col": "AE title", "dicomadmin.address": "Address",
			"dicomadmin.perms": "May", "dicomadmin.desc": "Description", "dicomadmin.add": "Add or change", "dicomadmin.host": "Host name or IP",
			"dicomadmin.port": "Port", "dicomadmin.replace": "Change it if it exists", "dicomadmin.save": "Save", "dicomadmin.remove": "Remove",
			"dicomadmin.saved": "AE %s saved.", "dicomadmin.badport": "The port must be a number from 1 to 65535.",
			"dicomadmin.log": "Association log", "dicomadmin.when": "Opened", "dicomadmin.peer": "From", "dicomadmin.outcome": "Outcome",
			"dicomadmin.counts": "Requests / stored / failed", "dicomadmin.unknown": "unknown AE", "dicomadmin.none": "No associations yet.",
			"dicomadmin.perm.echo": "echo", "dicomadmin.perm.store": "store", "dicomadmin.perm.find": "find", "dicomadmin.perm.move": "retrieve (move)", "dicomadmin.perm.get": "retrieve (get)",
			"dicomadmin.tls":         "Molar connects to it with DICOM TLS (encrypted)",
			"dicomadmin.requireuser": "Associations must sign in with a Molar account (DICOM user identity)", "dicomadmin.signin": "sign-in",
			"dicomadmin.signedby": "as %s", "dicomadmin.edit": "Edit",
		},
	}
}
