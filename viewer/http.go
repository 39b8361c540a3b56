package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// Routes mounts the viewer at /viewer.
func (v *Viewer) Routes(r chi.Router) {
	r.Route("/viewer", func(r chi.Router) {
		r.Use(web.NoStore)
		r.Group(func(r chi.Router) {
			r.Use(v.requirePerm(auth.PermDICOMRead))
			r.Get("/", v.handleFind)
			r.Get("/p/{person}/", v.handleTimeline)
			r.Post("/p/{person}/breakglass", v.handleBreakGlass)
			r.Get("/p/{person}/studies/{study}", v.handleStudy)
			r.Get("/p/{person}/tooth/{fdi}", v.handleTooth)
			r.Get("/p/{person}/compare", v.handleCompare)
			r.Get("/p/{person}/mounts/{mount}", v.handleMount)
			r.Get("/api/p/{person}/images/{sop}/state", v.handleGetState)
			r.Get("/api/p/{person}/images/{sop}/tags", v.handleTags)
			r.Post("/api/p/{person}/images/{sop}/send", v.handleSend) // an export, as the study send (dicom.read)
			// What changes the record beside the images (measurements,
			// window, mounts) needs the write permission too.
			r.With(v.requirePerm(auth.PermDICOMWrite)).Post("/p/{person}/mounts", v.handleCreateMount)
			r.With(v.requirePerm(auth.PermDICOMWrite)).Put("/api/p/{person}/images/{sop}/state", v.handlePutState)
			r.With(v.requirePerm(auth.PermDICOMWrite)).Post("/api/p/{person}/mounts/{mount}/slots", v.handleMoveSlot)
		})
		r.Group(func(r chi.Router) {
			r.Use(v.requirePerm(PermTemplates))
			r.Get("/admin/templates", v.handleTemplates)
			r.Post("/admin/templates", v.handleAddTemplate)
		})
	})
}

func (v *Viewer) requirePerm(perm string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := auth.PrincipalFrom(r.Context())
			if p == nil {
				v.Shell.Error(w, r, web.E(web.Unauthorized, ""))
				return
			}
			if !p.Can(perm) {
				v.Shell.Error(w, r, web.E(web.Forbidden, ""))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Bounds of the viewer's form bodies: the forms carry a few short fields
// (a template is at most 64 slots of JSON).
const (
	maxForm         = 16 << 10
	maxTemplateForm = 256 << 10
)

// parseForm reads a url-encoded or multipart form of at most limit bytes
// (r.FormValue alone would take 10 MB of fields, and spool multipart file
// parts of any size to disk).
func parseForm(w http.ResponseWriter, r *http.Request, limit int64) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if err := r.ParseMultipartForm(limit); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return web.E(web.Invalid, "the form is too large or malformed", err)
	}
	return nil
}

// fail answers an error; the package's sentinels map to HTTP kinds here.
func (v *Viewer) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, index.ErrNotFound), errors.Is(err, auth.ErrNotFound):
		err = web.E(web.NotFound, "", err)
	case errors.Is(err, ErrInvalid):
		err = web.E(web.Invalid, strings.TrimPrefix(err.Error(), "viewer: invalid input: "), err)
	case errors.Is(err, ErrConflict):
		err = web.E(web.Conflict, "", err)
	}
	v.Shell.Error(w, r, err)
}

// errNoAccess is returned inside a person transaction when the user has no
// access: the page offers to break the glass.
var errNoAccess = errors.New("viewer: no access to this person")

// personCtx is what a handler about one person gets, inside the tenant
// transaction that checked access and wrote the audit row.
type personCtx struct {
	tx       pgx.Tx
	p        *auth.Principal
	person   auth.Person
	decision auth.Decision
}

// audit records a use of the person's data (flagged when under break-the-glass).
func (c *personCtx) audit(ctx context.Context, action audit.Action, object string, detail map[string]any) error {
	return audit.Record(ctx, c.tx, audit.Event{Action: action, PersonID: c.person.ID, Object: object,
		BreakGlassReason: c.decision.Reason, Detail: detail})
}

// withPerson runs fn for the person of the URL in one tenant transaction
// after the access check. Without access it answers 403 (HTML: the
// break-the-glass form, which shows nothing of the person).
func (v *Viewer) withPerson(w http.ResponseWriter, r *http.Request, fn func(c *personCtx) error) bool {
	p := auth.PrincipalFrom(r.Context())
	id, err := strconv.ParseInt(chi.URLParam(r, "person"), 10, 64)
	if err != nil || id <= 0 {
		v.fail(w, r, web.E(web.NotFound, ""))
		return false
	}
	err = postgres.InTenant(r.Context(), v.Pool, p.TenantID, func(tx pgx.Tx) error {
		d, err := v.Auth.Access(r.Context(), tx, p, id)
		if err != nil {
			return err
		}
		if !d.Allowed {
			return errNoAccess
		}
		person, err := auth.GetPerson(r.Context(), tx, id)
		if err != nil {
			return err
		}
		return fn(&personCtx{tx: tx, p: p, person: person, decision: d})
	})
	if errors.Is(err, errNoAccess) {
		if web.WantsJSON(r) || r.Method != http.MethodGet {
			v.fail(w, r, web.E(web.Forbidden, ""))
		} else {
			v.Shell.Render(w, r, http.StatusForbidden, "viewer_breakglass", map[string]any{
				"PersonID": id, "Next": r.URL.RequestURI(), "CanBreak": p.Can(auth.PermBreakGlass), "Error": r.URL.Query().Get("bg_error")})
		}
		return false
	}
	if err != nil {
		v.fail(w, r, err)
		return false
	}
	return true
}

// PersonView is the person header of the viewer's pages.
type PersonView struct {
	ID        int64
	Name      string
	CPR       string
	BirthDate time.Time
	Age       int
	// BreakGlass is the stated reason when the user reached the person by
	// breaking the glass ("" otherwise): the pages show a banner.
	BreakGlass string
}

func personView(c *personCtx) PersonView { return personViewAt(c, time.Now()) }

// personViewAt is personView at time now; the age is counted on the Danish
// date (a birthday starts at midnight in Copenhagen, as in auth.Access).
func personViewAt(c *personCtx, now time.Time) PersonView {
	pv := PersonView{ID: c.person.ID, Name: c.person.GivenName + " " + c.person.FamilyName, BirthDate: c.person.BirthDate, BreakGlass: c.decision.Reason}
	if !c.person.CPR.IsZero() {
		pv.CPR = c.person.CPR.Formatted()
	}
	if !c.person.BirthDate.IsZero() {
		pv.Age = auth.AgeAt(c.person.BirthDate, auth.DateIn(now, auth.Copenhagen))
	}
	return pv
}

// ---- Patient finder ----

// FoundPerson is one search result.
type FoundPerson struct {
	ID        int64
	Name      string
	CPR       string
	BirthDate time.Time
	InCare    bool
}

var datePatterns = []string{"02-01-2006", "02.01.2006", "2006-01-02", "020106", "02012006", "2/1/2006"}

// handleFind: GET /viewer/?q= — by CPR number (any person of the
// municipality, so that one outside care can be reached by breaking the
// glass), or by name or birth date among the persons the user's units care
// for. The query itself is never logged; the search is audited with its
// kind and the number of results.
func (v *Viewer) handleFind(w http.ResponseWriter, r *http.Request) {
	p := auth.PrincipalFrom(r.Context())
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	var found []FoundPerson
	searched := false
	if q != "" {
		searched = true
		err := postgres.InTenant(r.Context(), v.Pool, p.TenantID, func(tx pgx.Tx) error {
			var err error
			kind := "name"
			if cpr, cerr := auth.ParseCPR(q); cerr == nil {
				kind = "cpr"
				per, err := auth.FindPersonByCPR(r.Context(), tx, cpr)
				if err == nil {
					found = append(found, FoundPerson{ID: per.ID, Name: per.GivenName + " " + per.FamilyName, CPR: per.CPR.Formatted(), BirthDate: per.BirthDate})
				} else if !errors.Is(err, auth.ErrNotFound) {
					return err
				}
			} else if d, ok := parseDate(q); ok {
				kind = "birth_date"
				found, err = searchCared(r.Context(), tx, p.UserID, "p.birth_date = $2", d)
			} else {
				words := strings.Fields(strings.ToLower(q))
				if len(words) > 5 {
					words = words[:5]
				}
				cond := make([]string, len(words))
				args := make([]any, len(words))
				for i, wd := range words {
					cond[i] = fmt.Sprintf("lower(p.given_name || ' ' || p.family_name) LIKE $%d", i+2)
					args[i] = "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(wd) + "%"
				}
				found, err = searchCared(r.Context(), tx, p.UserID, strings.Join(cond, " AND "), args...)
			}
			if err != nil {
				return err
			}
			for i := range found {
				d, err := v.Auth.Access(r.Context(), tx, p, found[i].ID)
				if err != nil {
					return err
				}
				found[i].InCare = d.Allowed && d.Basis != auth.BasisBreakGlass
			}
			// Each person found is named in the log (their access log shows
			// who looked them up); a search that found nobody is logged too.
			ev := audit.Event{Action: audit.ActionSearch, Object: "viewer.search/1", Detail: map[string]any{"kind": kind, "results": len(found)}}
			if len(found) == 0 {
				return audit.Record(r.Context(), tx, ev)
			}
			for _, f := range found {
				ev.PersonID = f.ID
				if err := audit.Record(r.Context(), tx, ev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			v.fail(w, r, err)
			return
		}
	}
	v.Shell.Render(w, r, http.StatusOK, "viewer_find", map[string]any{"Query": q, "Found": found, "Searched": searched})
}

func parseDate(s string) (time.Time, bool) {
	for _, f := range datePatterns {
		if t, err := time.Parse(f, s); err == nil && t.Year() > 1900 {
			return t, true
		}
	}
	return time.Time{}, false
}

// searchCared finds persons cared for today by one of the user's units.
func searchCared(ctx context.Context, tx pgx.Tx, userID int64, cond string, args ...any) ([]FoundPerson, error) {
	rows, err := tx.Query(ctx, `SELECT p.id, p.given_name || ' ' || p.family_name, coalesce(p.cpr, ''), p.birth_date
		FROM auth.person p
		WHERE EXISTS (SELECT 1 FROM auth.care_relation cr JOIN auth.user_unit uu ON uu.org_unit_id = cr.org_unit_id
			WHERE uu.user_id = $1 AND cr.person_id = p.id AND cr.valid_from <= current_date
			  AND (cr.valid_to IS NULL OR cr.valid_to >= current_date))
		  AND `+cond+` ORDER BY p.family_name, p.given_name, p.id LIMIT 50`, append([]any{userID}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("viewer: search: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (FoundPerson, error) {
		var f FoundPerson
		var cpr string
		var birth *time.Time
		err := r.Scan(&f.ID, &f.Name, &cpr, &birth)
		if c, cerr := auth.ParseCPR(cpr); cerr == nil {
			f.CPR = c.Formatted()
		}
		if birth != nil {
			f.BirthDate = *birth
		}
		return f, err
	})
}

// handleBreakGlass: POST /viewer/p/{person}/breakglass — state a reason to
// reach a person outside the user's care; flagged in the audit log.
func (v *Viewer) handleBreakGlass(w http.ResponseWriter, r *http.Request) {
	p := auth.PrincipalFrom(r.Context())
	id, err := strconv.ParseInt(chi.URLParam(r, "person"), 10, 64)
	if err != nil || id <= 0 {
		v.fail(w, r, web.E(web.NotFound, ""))
		return
	}
	if err := parseForm(w, r, maxForm); err != nil {
		v.fail(w, r, err)
		return
	}
	next := auth.SafeNext(r.FormValue("next"))
	if next == "/" {
		next = fmt.Sprintf("/viewer/p/%d/", id)
	}
	err = postgres.InTenant(r.Context(), v.Pool, p.TenantID, func(tx pgx.Tx) error {
		_, err := v.Auth.BreakGlass(r.Context(), tx, p, id, r.FormValue("reason"))
		return err
	})
	if errors.Is(err, auth.ErrInvalidInput) && !web.WantsJSON(r) {
		u, _ := url.Parse(next)
		q := u.Query()
		q.Set("bg_error", "reason")
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return
	}
	if err != nil {
		v.fail(w, r, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// ---- Timeline ----

// StudyView is a study on the timeline.
type StudyView struct {
	UID         string
	Date        time.Time
	Description string
	Modalities  []string
	Kind        string
	Items       []Item
	Instances   int
}

// KindGroup is the timeline's studies of one kind, newest first.
type KindGroup struct {
	Kind    string
	Studies []StudyView
}

// loadStudy reads a study's images (with their attributes) for the person.
func loadStudy(ctx context.Context, tx pgx.Tx, personID int64, studyUID string, withAttrs bool) (index.Study, []Image, error) {
	st, err := index.GetStudy(ctx, tx, studyUID)
	if err != nil {
		return st, nil, err
	}
	if st.PersonID != personID {
		return st, nil, fmt.Errorf("%w: study of another person", ErrNotFound)
	}
	images, err := studyImages(ctx, tx, studyUID, withAttrs)
	return st, images, err
}

func studyImages(ctx context.Context, tx pgx.Tx, studyUID string, withAttrs bool) ([]Image, error) {
	series, err := index.SeriesOfStudy(ctx, tx, studyUID)
	if err != nil {
		return nil, err
	}
	mod := map[string]string{}
	for _, se := range series {
		mod[se.SeriesInstanceUID] = se.Modality
	}
	ins, err := index.InstancesOfStudy(ctx, tx, studyUID)
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(ins))
	for _, in := range ins {
		var attrs []byte
		if withAttrs {
			if attrs, err = index.InstanceAttrs(ctx, tx, in.SOPInstanceUID); err != nil {
				return nil, err
			}
		}
		im, err := NewImage(in, mod[in.SeriesInstanceUID], attrs)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	return out, nil
}

// handleTimeline: GET /viewer/p/{person}/ — the person's studies by date,
// grouped by kind, with their mounts and teeth.
func (v *Viewer) handleTimeline(w http.ResponseWriter, r *http.Request) {
	var data struct {
		Person    PersonView
		Groups    []KindGroup
		Mounts    []Mount
		Templates []Template
		Teeth     []string
		IOStudies []StudyView
		Thumbs    bool
		DICOMweb  string
	}
	ok := v.withPerson(w, r, func(c *personCtx) error {
		ctx := r.Context()
		data.Person = personView(c)
		studies, err := index.StudiesOfPerson(ctx, c.tx, c.person.ID)
		if err != nil {
			return err
		}
		groups := map[string]*KindGroup{}
		teeth := map[string]bool{}
		for _, st := range studies {
			images, err := studyImages(ctx, c.tx, st.StudyInstanceUID, false)
			if err != nil {
				return err
			}
			kinds := make([]string, len(images))
			for i, im := range images {
				kinds[i] = im.Kind
				for _, t := range im.Teeth {
					teeth[t] = true
				}
			}
			sv := StudyView{UID: st.StudyInstanceUID, Date: st.StudyDate, Description: st.Description, Modalities: st.Modalities,
				Kind: StudyKind(kinds), Items: Items(images), Instances: len(images)}
			g := groups[sv.Kind]
			if g == nil {
				g = &KindGroup{Kind: sv.Kind}
				groups[sv.Kind] = g
			}
			g.Studies = append(g.Studies, sv)
			if sv.Kind == KindIntraoral || sv.Kind == KindBitewing || sv.Kind == KindPanoramic {
				data.IOStudies = append(data.IOStudies, sv)
			}
		}
		for _, k := range KindOrder {
			if g := groups[k]; g != nil {
				data.Groups = append(data.Groups, *g)
			}
		}
		for t := range teeth {
			data.Teeth = append(data.Teeth, t)
		}
		slices.Sort(data.Teeth)
		if data.Mounts, err = MountsOfPerson(ctx, c.tx, c.person.ID); err != nil {
			return err
		}
		if data.Templates, err = Templates(ctx, c.tx); err != nil {
			return err
		}
		return c.audit(ctx, audit.ActionRead, fmt.Sprintf("viewer.timeline/%d", c.person.ID), map[string]any{"studies": len(studies)})
	})
	if !ok {
		return
	}
	data.Thumbs, data.DICOMweb = v.Thumbnails, v.dicomweb()
	v.Shell.Render(w, r, http.StatusOK, "viewer_timeline", data)
}

// ---- The viewer page ----

// pageConfig is what the JavaScript viewer reads from the page
// (data-config on #viewer-app).
type pageConfig struct {
	Mode     string            `json:"mode"` // "study", "compare", "tooth", "mount"
	Person   int64             `json:"person"`
	API      string            `json:"api"`
	DICOMweb string            `json:"dicomweb"`
	Thumbs   bool              `json:"thumbs,omitempty"` // DICOMweb serves stored thumbnails (dicom/thumb)
	Items    []Item            `json:"items"`
	Select   []string          `json:"select,omitempty"` // item ids to show first
	AEs      []string          `json:"aes,omitempty"`
	Mount    *mountConfig      `json:"mount,omitempty"`
	T        map[string]string `json:"t"`
}

type mountConfig struct {
	ID         int64       `json:"id"`
	Template   Template    `json:"template"`
	Placements []Placement `json:"placements"`
}

func (v *Viewer) config(r *http.Request, mode string, c *personCtx) pageConfig {
	return pageConfig{Mode: mode, Person: c.person.ID, API: fmt.Sprintf("/viewer/api/p/%d", c.person.ID), DICOMweb: v.dicomweb(),
		Thumbs: v.Thumbnails, T: jsMessages(v.Shell.Catalog, web.Lang(r))}
}

func (v *Viewer) sendTargets(ctx context.Context, tx pgx.Tx, tenantID int64) []string {
	aes, err := index.ListAEsOf(ctx, tx, tenantID)
	if err != nil {
		v.Log.WarnContext(ctx, "viewer: listing AEs failed", "err", err)
		return nil
	}
	var out []string
	for _, a := range aes {
		if a.Can(index.PermMove) {
			out = append(out, a.Title)
		}
	}
	return out
}

type viewerPage struct {
	Person PersonView
	Title  string
	Study  *StudyView
	Config string
	Mode   string
	Mount  *Mount
}

func (v *Viewer) renderViewer(w http.ResponseWriter, r *http.Request, page viewerPage, cfg pageConfig) {
	b, err := json.Marshal(cfg)
	if err != nil {
		v.fail(w, r, fmt.Errorf("viewer: config: %w", err))
		return
	}
	page.Config = string(b)
	page.Mode = cfg.Mode
	v.Shell.Render(w, r, http.StatusOK, "viewer_app", page)
}

// handleStudy: GET /viewer/p/{person}/studies/{study}[?i=sop] — the viewer
// on one study.
func (v *Viewer) handleStudy(w http.ResponseWriter, r *http.Request) {
	var page viewerPage
	var cfg pageConfig
	ok := v.withPerson(w, r, func(c *personCtx) error {
		ctx := r.Context()
		st, images, err := loadStudy(ctx, c.tx, c.person.ID, chi.URLParam(r, "study"), true)
		if err != nil {
			return err
		}
		cfg = v.config(r, "study", c)
		cfg.Items = Items(images)
		if i := r.URL.Query().Get("i"); i != "" {
			for _, it := range cfg.Items {
				if it.ID == i || slices.ContainsFunc(it.Images, func(im Image) bool { return im.SOP == i }) {
					cfg.Select = []string{it.ID}
				}
			}
		}
		cfg.AEs = v.sendTargets(ctx, c.tx, c.p.TenantID)
		page.Person = personView(c)
		page.Study = &StudyView{UID: st.StudyInstanceUID, Date: st.StudyDate, Description: st.Description, Modalities: st.Modalities, Instances: len(images)}
		return c.audit(ctx, audit.ActionRead, "viewer.study/"+st.StudyInstanceUID, nil)
	})
	if !ok {
		return
	}
	v.renderViewer(w, r, page, cfg)
}

// personImages reads the given instances of the person, with attributes.
func personImages(ctx context.Context, tx pgx.Tx, personID int64, sops []string) ([]Image, error) {
	var out []Image
	mods := map[string]string{}
	for _, sop := range sops {
		in, err := index.GetInstance(ctx, tx, sop)
		if err != nil {
			return nil, err
		}
		if in.PersonID != personID {
			return nil, fmt.Errorf("%w: image of another person", ErrNotFound)
		}
		m, ok := mods[in.SeriesInstanceUID]
		if !ok {
			se, err := index.GetSeries(ctx, tx, in.SeriesInstanceUID)
			if err != nil {
				return nil, err
			}
			m = se.Modality
			mods[in.SeriesInstanceUID] = m
		}
		attrs, err := index.InstanceAttrs(ctx, tx, sop)
		if err != nil {
			return nil, err
		}
		im, err := NewImage(in, m, attrs)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	return out, nil
}

// handleTooth: GET /viewer/p/{person}/tooth/{fdi} — a tooth's images over
// time, newest first; the two newest side by side (the journal's tooth
// chart links here).
func (v *Viewer) handleTooth(w http.ResponseWriter, r *http.Request) {
	fdi := chi.URLParam(r, "fdi")
	if !ValidTooth(fdi) {
		v.fail(w, r, web.E(web.NotFound, ""))
		return
	}
	var page viewerPage
	var cfg pageConfig
	ok := v.withPerson(w, r, func(c *personCtx) error {
		ctx := r.Context()
		ins, err := index.InstancesWithTooth(ctx, c.tx, c.person.ID, fdi)
		if err != nil {
			return err
		}
		sops := make([]string, len(ins))
		for i, in := range ins {
			sops[i] = in.SOPInstanceUID
		}
		images, err := personImages(ctx, c.tx, c.person.ID, sops)
		if err != nil {
			return err
		}
		// Newest first by acquisition date.
		slices.SortStableFunc(images, func(a, b Image) int { return strings.Compare(b.Date, a.Date) })
		cfg = v.config(r, "tooth", c)
		cfg.Items = Items(images)
		for i, it := range cfg.Items {
			if i < 2 {
				cfg.Select = append(cfg.Select, it.ID)
			}
		}
		cfg.AEs = v.sendTargets(ctx, c.tx, c.p.TenantID)
		page.Person = personView(c)
		page.Title = fdi
		return c.audit(ctx, audit.ActionRead, fmt.Sprintf("viewer.tooth/%d/%s", c.person.ID, fdi), map[string]any{"images": len(images)})
	})
	if !ok {
		return
	}
	v.renderViewer(w, r, page, cfg)
}

// handleCompare: GET /viewer/p/{person}/compare?i=sop&i=sop[…] — two or
// four images side by side with linked zoom and pan.
func (v *Viewer) handleCompare(w http.ResponseWriter, r *http.Request) {
	sops := r.URL.Query()["i"]
	if len(sops) < 1 || len(sops) > 4 {
		v.fail(w, r, web.E(web.Invalid, "compare 2 to 4 images"))
		return
	}
	var page viewerPage
	var cfg pageConfig
	ok := v.withPerson(w, r, func(c *personCtx) error {
		ctx := r.Context()
		images, err := personImages(ctx, c.tx, c.person.ID, sops)
		if err != nil {
			return err
		}
		cfg = v.config(r, "compare", c)
		cfg.Items = Items(images)
		for _, it := range cfg.Items {
			cfg.Select = append(cfg.Select, it.ID)
		}
		cfg.AEs = v.sendTargets(ctx, c.tx, c.p.TenantID)
		page.Person = personView(c)
		return c.audit(ctx, audit.ActionRead, fmt.Sprintf("viewer.compare/%d", c.person.ID), map[string]any{"images": len(images)})
	})
	if !ok {
		return
	}
	v.renderViewer(w, r, page, cfg)
}

// ---- Mounts ----

// mountCandidates are a study's images as mount candidates, in acquisition
// order (series, instance number).
func mountCandidates(images []Image) []Candidate {
	out := make([]Candidate, 0, len(images))
	for i, im := range images {
		out = append(out, Candidate{SOPInstanceUID: im.SOP, Kind: im.Kind, Teeth: im.Teeth, Order: i})
	}
	return out
}

// handleCreateMount: POST /viewer/p/{person}/mounts (form: template, study)
// — a new mount filled with the study's images.
func (v *Viewer) handleCreateMount(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r, maxForm); err != nil {
		v.fail(w, r, err)
		return
	}
	code, studyUID := r.FormValue("template"), r.FormValue("study")
	if code == "" || studyUID == "" {
		v.fail(w, r, web.E(web.Invalid, "choose a template and a study"))
		return
	}
	var id int64
	ok := v.withPerson(w, r, func(c *personCtx) error {
		ctx := r.Context()
		t, err := TemplateByCode(ctx, c.tx, code)
		if err != nil {
			return err
		}
		_, images, err := loadStudy(ctx, c.tx, c.person.ID, studyUID, false)
		if err != nil {
			return err
		}
		m, err := CreateMount(ctx, c.tx, c.p.TenantID, c.person.ID, c.p.UserID, t, studyUID)
		if err != nil {
			return err
		}
		id = m.ID
		if err := SavePlacements(ctx, c.tx, c.p.TenantID, m.ID, Place(t, nil, mountCandidates(images))); err != nil {
			return err
		}
		return c.audit(ctx, audit.ActionCreate, fmt.Sprintf("viewer.mount/%d", m.ID), map[string]any{"template": t.Code})
	})
	if !ok {
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/viewer/p/%s/mounts/%d", chi.URLParam(r, "person"), id), http.StatusSeeOther)
}

// handleMount: GET /viewer/p/{person}/mounts/{mount} — the mount; images of
// its study that arrived since fall into free slots first.
func (v *Viewer) handleMount(w http.ResponseWriter, r *http.Request) {
	mountID, err := strconv.ParseInt(chi.URLParam(r, "mount"), 10, 64)
	if err != nil {
		v.fail(w, r, web.E(web.NotFound, ""))
		return
	}
	var page viewerPage
	var cfg pageConfig
	ok := v.withPerson(w, r, func(c *personCtx) error {
		ctx := r.Context()
		m, err := GetMount(ctx, c.tx, c.person.ID, mountID)
		if err != nil {
			return err
		}
		var images []Image
		if m.StudyUID != "" {
			if _, images, err = loadStudy(ctx, c.tx, c.person.ID, m.StudyUID, true); err != nil {
				return err
			}
			if fresh := Place(m.Template, m.Placements, mountCandidates(images)); len(fresh) > 0 {
				if err := SavePlacements(ctx, c.tx, c.p.TenantID, m.ID, fresh); err != nil {
					return err
				}
				m.Placements = append(m.Placements, fresh...)
			}
		}
		cfg = v.config(r, "mount", c)
		cfg.Items = Items(images)
		cfg.Mount = &mountConfig{ID: m.ID, Template: m.Template, Placements: m.Placements}
		if cfg.Mount.Placements == nil {
			cfg.Mount.Placements = []Placement{}
		}
		cfg.AEs = v.sendTargets(ctx, c.tx, c.p.TenantID)
		page.Person = personView(c)
		page.Mount = &m
		page.Title = m.Template.Name(web.Lang(r))
		return c.audit(ctx, audit.ActionRead, fmt.Sprintf("viewer.mount/%d", m.ID), nil)
	})
	if !ok {
		return
	}
	v.renderViewer(w, r, page, cfg)
}

// handleMoveSlot: POST /viewer/api/p/{person}/mounts/{mount}/slots
// {"slot": 3, "sop": "…", "rotate": 90, "flip": false}.
func (v *Viewer) handleMoveSlot(w http.ResponseWriter, r *http.Request) {
	mountID, err := strconv.ParseInt(chi.URLParam(r, "mount"), 10, 64)
	if err != nil {
		v.fail(w, r, web.E(web.NotFound, ""))
		return
	}
	var req Placement
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.SOP == "" {
		v.fail(w, r, web.E(web.Invalid, "slot, sop, rotate and flip are needed"))
		return
	}
	var m Mount
	ok := v.withPerson(w, r, func(c *personCtx) error {
		ctx := r.Context()
		if m, err = GetMount(ctx, c.tx, c.person.ID, mountID); err != nil {
			return err
		}
		in, err := index.GetInstance(ctx, c.tx, req.SOP)
		if err != nil {
			return err
		}
		if in.PersonID != c.person.ID {
			return fmt.Errorf("%w: image of another person", ErrNotFound)
		}
		if err := MoveImage(ctx, c.tx, c.p.TenantID, c.p.UserID, m, req.Slot, req.SOP, req.Rotate, req.Flip); err != nil {
			return err
		}
		if m, err = GetMount(ctx, c.tx, c.person.ID, mountID); err != nil {
			return err
		}
		return c.audit(ctx, audit.ActionUpdate, fmt.Sprintf("viewer.mount/%d", m.ID), map[string]any{"slot": req.Slot})
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"placements": m.Placements})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ---- Template administration ----

func (v *Viewer) handleTemplates(w http.ResponseWriter, r *http.Request) {
	v.renderTemplates(w, r, http.StatusOK, "", "")
}

func (v *Viewer) renderTemplates(w http.ResponseWriter, r *http.Request, status int, msg, draft string) {
	p := auth.PrincipalFrom(r.Context())
	var ts []Template
	err := postgres.InTenant(r.Context(), v.Pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		ts, err = Templates(r.Context(), tx)
		return err
	})
	if err != nil {
		v.fail(w, r, err)
		return
	}
	if draft == "" {
		draft = exampleTemplate
	}
	v.Shell.Render(w, r, status, "viewer_templates", map[string]any{"Templates": ts, "Error": msg, "Draft": draft, "OK": r.URL.Query().Get("ok") != ""})
}

const exampleTemplate = `{
  "code": "pa4",
  "name_da": "4 periapikale (front)",
  "name_en": "4 periapicals (anterior)",
  "width": 1000, "height": 480,
  "slots": [
    {"n": 1, "x": 10,  "y": 10,  "w": 480, "h": 220, "order": 1, "kind": "pa", "teeth": ["12","11"]},
    {"n": 2, "x": 510, "y": 10,  "w": 480, "h": 220, "order": 2, "kind": "pa", "teeth": ["21","22"]},
    {"n": 3, "x": 10,  "y": 250, "w": 480, "h": 220, "order": 4, "kind": "pa", "rotate": 180, "teeth": ["42","41"]},
    {"n": 4, "x": 510, "y": 250, "w": 480, "h": 220, "order": 3, "kind": "pa", "rotate": 180, "teeth": ["31","32"]}
  ]
}`

// handleAddTemplate: POST /viewer/admin/templates (form field "template":
// the template as JSON).
func (v *Viewer) handleAddTemplate(w http.ResponseWriter, r *http.Request) {
	p := auth.PrincipalFrom(r.Context())
	if err := parseForm(w, r, maxTemplateForm); err != nil {
		v.fail(w, r, err)
		return
	}
	raw := r.FormValue("template")
	var t Template
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		v.renderTemplates(w, r, http.StatusBadRequest, "JSON: "+err.Error(), raw)
		return
	}
	err := postgres.InTenant(r.Context(), v.Pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		t, err = AddTemplate(r.Context(), tx, p.TenantID, p.UserID, t)
		if err != nil {
			return err
		}
		return audit.Record(r.Context(), tx, audit.Event{Action: audit.ActionCreate, Object: fmt.Sprintf("viewer.mount_template/%d", t.ID)})
	})
	if errors.Is(err, ErrInvalid) || errors.Is(err, ErrConflict) {
		v.renderTemplates(w, r, http.StatusBadRequest, err.Error(), raw)
		return
	}
	if err != nil {
		v.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/viewer/admin/templates?ok=1", http.StatusSeeOther)
}
