// Package viewer is the dentist's web viewer: a patient finder, the
// patient's imaging timeline grouped by kind, mounts (full-mouth series,
// bitewings, panoramic) whose layouts are data, and one embedded JavaScript
// viewer (static files, no build step) that draws full-depth frames from
// DICOMweb through a lookup table onto a canvas: window/level, zoom, pan,
// rotate, flip, invert, sharpen, calibrated length and angle measurements,
// annotations, compare, CBCT slices, tag browser, download and send.
//
// Access follows the core's rules: staff with dicom.read reach the persons
// their units care for; anyone else only after breaking the glass with a
// stated reason (auth.BreakGlass), which flags every later read in the audit
// log. Every page and API call that reads a person's images writes an audit
// row in the same tenant transaction; the frames themselves come from
// dicom/web, which checks and audits again.
//
// Measurements, annotations and display edits are stored per image beside
// it (viewer.image_state, append-only versions), never in the DICOM object.
package viewer

import (
	"crypto/tls"
	"embed"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed templates/*.html templates/*.tmpl
var templates embed.FS

//go:embed static
var static embed.FS

// Namespace is the viewer's database schema.
const Namespace = "viewer"

// PermTemplates lets a user add mount templates for the municipality.
const PermTemplates = "viewer.templates"

// Migrations is the "viewer" schema.
func Migrations() postgres.Source {
	sub, _ := fs.Sub(migrations, "migrations")
	return postgres.Source{Namespace: Namespace, FS: sub}
}

// Pages are the viewer's page templates (viewer_*.html, with the shared
// blocks in *.tmpl): shell.AddPagesWith(Pages(), "*.html", "*.tmpl").
func Pages() fs.FS { sub, _ := fs.Sub(templates, "templates"); return sub }

// Static is the viewer's JavaScript and CSS, served by the shell's assets.
func Static() fs.FS { sub, _ := fs.Sub(static, "static"); return sub }

// Viewer serves the viewer's pages and JSON API under /viewer.
type Viewer struct {
	Pool  *pgxpool.Pool
	Store storage.ObjectStore
	Auth  *auth.Service
	Shell *web.Shell
	Log   *slog.Logger
	// AETitle is the calling AE title for sending images (C-STORE SCU).
	AETitle string
	// ClientTLS is Molar's side of DICOM TLS to AEs registered with TLS.
	ClientTLS *tls.Config
	// Thumbnails is true when DICOMweb serves /thumbnail (dicom/thumb);
	// otherwise the timeline shows placeholders.
	Thumbnails bool
	// DICOMweb is the DICOMweb base path the browser uses (default /dicomweb).
	DICOMweb string
}

func (v *Viewer) dicomweb() string {
	if v.DICOMweb == "" {
		return "/dicomweb"
	}
	return v.DICOMweb
}
