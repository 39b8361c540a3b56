package journal

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/viewer/web"
)

//go:embed templates/*.html
var templates embed.FS

//go:embed static
var static embed.FS

//go:embed openapi.yaml
var openapi []byte

// Pages returns the journal's page templates for the shell (AddPages).
func Pages() (fs.FS, string) { return templates, "templates/*.html" }

// Static is the journal's static files (journal.css), served by the
// shell's assets ({{asset "journal.css"}}).
func Static() fs.FS { sub, _ := fs.Sub(static, "static"); return sub }

// Handler serves the journal's pages (under /journal) and its JSON API
// (under /api/journal). Mount it behind the auth middleware.
type Handler struct {
	Svc   *Service
	Shell *web.Shell
}

// Route is one route of the handler with the permission it needs.
type Route struct {
	Method, Pattern, Permission string
}

// Routes mounts the pages and the API on r.
func (h *Handler) Routes(r chi.Router) {
	read, write, sign := auth.PermJournalRead, auth.PermJournalWrite, auth.PermJournalSign
	page := func(method, pattern, perm string, fn http.HandlerFunc) {
		r.With(h.need(perm), web.NoStore).MethodFunc(method, pattern, fn)
	}
	page("GET", "/journal/", read, h.handleSearch)
	page("GET", "/journal/patients/{person}", read, h.handleOverview)
	page("POST", "/journal/patients/{person}/break-glass", read, h.handleBreakGlass)
	page("POST", "/journal/patients/{person}/profile", write, h.handleProfile)
	page("GET", "/journal/patients/{person}/entries/new", write, h.handleNewForm)
	page("POST", "/journal/patients/{person}/entries", write, h.handleCreate)
	page("GET", "/journal/patients/{person}/entries/{entry}", read, h.handleEntry)
	page("POST", "/journal/patients/{person}/entries/{entry}/sign", sign, h.handleSign)
	page("GET", "/journal/patients/{person}/entries/{entry}/correct", write, h.handleCorrectForm)
	page("POST", "/journal/patients/{person}/entries/{entry}/correct", write, h.handleCorrect)
	page("GET", "/journal/patients/{person}/teeth/{tooth}", read, h.handleTooth)
	page("POST", "/journal/patients/{person}/plan/items/{item}", write, h.handleItemStatus)
	page("GET", "/journal/clinics/{clinic}/recall", read, h.handleRecall)
	page("GET", "/journal/clinics/{clinic}/xrays", read, h.handleXRays)
	page("GET", "/journal/clinics/{clinic}/indices", read, h.handleIndices)
	page("GET", "/journal/clinics/{clinic}/indices.svg", read, h.handleIndicesSVG)
	page("GET", "/journal/clinics/{clinic}/scor.csv", auth.PermJournalReport, h.handleScor)
	h.apiRoutes(r)
}

// need refuses principals without perm (403).
func (h *Handler) need(perm string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := auth.PrincipalFrom(r.Context())
			if p == nil {
				h.Shell.Error(w, r, web.E(web.Unauthorized, ""))
				return
			}
			if perm != "" && !p.Can(perm) {
				h.Shell.Error(w, r, web.E(web.Forbidden, ""))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// kindOf maps the journal's errors to the shell's kinds with a message in
// the request's language.
func kindOf(err error, lang string) (web.Kind, string) {
	msg := MessageOf(err, lang)
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, auth.ErrInvalidInput):
		return web.Invalid, msg
	case errors.Is(err, ErrNotFound), errors.Is(err, auth.ErrNotFound):
		return web.NotFound, msg
	case errors.Is(err, ErrLocked), errors.Is(err, ErrConflict):
		return web.Conflict, msg
	case errors.Is(err, ErrForbidden), errors.Is(err, auth.ErrForbidden):
		return web.Forbidden, msg
	case errors.Is(err, auth.ErrUnauthenticated):
		return web.Unauthorized, msg
	}
	return web.Internal, ""
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	kind, msg := kindOf(err, web.Lang(r))
	h.Shell.Error(w, r, web.E(kind, msg, err))
}

func principal(r *http.Request) *auth.Principal { return auth.PrincipalFrom(r.Context()) }

func idParam(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, name), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("journal: %s: %w", name, ErrNotFound)
	}
	return id, nil
}

// parseDate reads YYYY-MM-DD as the end of that Danish day; "" is zero.
func parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, s, auth.Copenhagen)
	if err != nil {
		return time.Time{}, inputErr("date.invalid", s)
	}
	return d.AddDate(0, 0, 1).Add(-time.Second), nil
}

// page is the data every journal page gets.
type page struct {
	Lang      string
	PersonID  int64
	Error     string
	Notice    string
	CanWrite  bool
	CanSign   bool
	UserID    int64
	ClinicIDs []int64
}

func (h *Handler) base(r *http.Request) page {
	p := principal(r)
	return page{Lang: web.Lang(r), CanWrite: p.Can(auth.PermJournalWrite), CanSign: p.Can(auth.PermJournalSign), UserID: p.UserID}
}

// GET /journal/?q=
func (h *Handler) handleSearch(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	data := struct {
		page
		Q       string
		Hits    []Hit
		Clinics []auth.OrgUnit
		Done    bool
		// CanReport shows the SCOR export (PermJournalReport).
		CanReport bool
	}{page: h.base(r), Q: strings.TrimSpace(r.URL.Query().Get("q")), CanReport: p.Can(auth.PermJournalReport)}
	units, err := userClinics(r, h.Svc, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	data.Clinics = units
	status := http.StatusOK
	if data.Q != "" {
		data.Hits, err = h.Svc.Search(r.Context(), p, data.Q)
		if err != nil {
			if kind, msg := kindOf(err, data.Lang); kind == web.Invalid {
				data.Error, status = msg, http.StatusBadRequest
			} else {
				h.fail(w, r, err)
				return
			}
		}
		data.Done = true
	}
	h.Shell.Render(w, r, status, "journal_search", data)
}

// userClinics lists the user's units that are dental clinics.
func userClinics(r *http.Request, s *Service, p *auth.Principal) ([]auth.OrgUnit, error) {
	ids, err := auth.UserUnits(r.Context(), s.Pool, p.UserID)
	if err != nil {
		return nil, err
	}
	units, err := auth.OrgUnits(r.Context(), s.Pool, p.TenantID)
	if err != nil {
		return nil, err
	}
	var out []auth.OrgUnit
	for _, u := range units {
		if slices.Contains(ids, u.ID) {
			out = append(out, u)
		}
	}
	return out, nil
}

type overviewData struct {
	page
	*Overview
	ChartView ChartView
	AtDate    string
	Today     string
	Procs     []Procedure
	Statuses  []ItemStatus
	Risks     []Risk
	Kinds     []Kind
}

// GET /journal/patients/{person}?at=YYYY-MM-DD
func (h *Handler) handleOverview(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	at, err := parseDate(r.URL.Query().Get("at"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := principal(r)
	ov, err := h.Svc.Overview(r.Context(), p, person, at)
	if errors.Is(err, auth.ErrForbidden) && p.Can(auth.PermBreakGlass) {
		h.Shell.Render(w, r, http.StatusForbidden, "journal_breakglass", struct {
			page
			Hours int
		}{page: page{Lang: web.Lang(r), PersonID: person}, Hours: int(auth.DefaultBreakGlassDuration.Hours())})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := overviewData{page: h.base(r), Overview: ov, Procs: h.Svc.Catalogue.List(), Statuses: ItemStatuses[1:], Risks: Risks, Kinds: Kinds}
	d.PersonID = person
	d.ChartView = ViewChart(ov.Chart, d.Lang)
	d.AtDate = auth.DateIn(ov.At, auth.Copenhagen).Format(time.DateOnly)
	d.Today = auth.DateIn(time.Now(), auth.Copenhagen).Format(time.DateOnly)
	switch r.URL.Query().Get("msg") {
	case "saved":
		d.Notice = "journal.entry.saved"
	case "signed":
		d.Notice = "journal.entry.signedmsg"
	case "profile":
		d.Notice = "journal.profile.saved"
	}
	h.Shell.Render(w, r, http.StatusOK, "journal_overview", d)
}

// POST /journal/patients/{person}/break-glass
func (h *Handler) handleBreakGlass(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.Svc.BreakGlass(r.Context(), principal(r), person, r.PostFormValue("reason")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/journal/patients/%d", person), http.StatusSeeOther)
}

// POST /journal/patients/{person}/profile
func (h *Handler) handleProfile(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	pr := Profile{Risk: Risk(r.PostFormValue("risk")), Allergies: r.PostFormValue("allergies"), Medicines: r.PostFormValue("medicines"), Conditions: r.PostFormValue("conditions")}
	if v := r.PostFormValue("based_on"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			h.fail(w, r, inputErr("profile.version"))
			return
		}
		pr.BasedOn = &n
	}
	if err := h.Svc.SaveProfile(r.Context(), principal(r), person, pr); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/journal/patients/%d?msg=profile", person), http.StatusSeeOther)
}

// formData is the entry form (new or correction).
type formData struct {
	page
	Kind       Kind
	Kinds      []Kind
	Entry      NewEntry
	CareTime   string
	Rows       []Finding
	TRows      []Treatment
	Conditions []Condition
	Depths     []string
	Materials  []string
	Reasons    []string
	Procs      []Procedure
	Risks      []Risk
	PlanItems  []PlanItem
	Q          string
	SKSHits    []SKSCode
	Chosen     map[string]bool
	XRayTeeth  string
	// Correct is the entry being corrected (0 for a new entry).
	Correct int64
	Reason  string
}

const formRows = 8

func (h *Handler) form(r *http.Request, person int64, kind Kind, n NewEntry) formData {
	d := formData{page: h.base(r), Kind: kind, Kinds: Kinds, Entry: n, Conditions: Conditions, Depths: CariesDepths, Materials: Materials,
		Reasons: ExtractionReasons, Procs: h.Svc.Catalogue.List(), Risks: Risks, Chosen: map[string]bool{}}
	d.PersonID = person
	if n.CareTime.IsZero() {
		n.CareTime = time.Now()
	}
	d.CareTime = n.CareTime.In(auth.Copenhagen).Format("2006-01-02T15:04")
	d.Rows = append(append([]Finding(nil), n.Findings...), make([]Finding, max(formRows-len(n.Findings), 2))...)
	d.TRows = append(append([]Treatment(nil), n.Treatments...), make([]Treatment, max(4-len(n.Treatments), 1))...)
	d.Q = strings.TrimSpace(r.URL.Query().Get("q"))
	for _, dg := range n.Diagnoses {
		d.Chosen[dg.Code] = true
		d.SKSHits = append(d.SKSHits, SKSCode{Code: dg.Code, Text: dg.Text})
	}
	if d.Q != "" {
		for _, c := range h.Svc.SKS.Search(d.Q, 30) {
			if !d.Chosen[c.Code] {
				d.SKSHits = append(d.SKSHits, c)
			}
		}
	}
	if n.XRay != nil {
		var ts []string
		for _, t := range n.XRay.Teeth {
			ts = append(ts, strconv.Itoa(int(t)))
		}
		d.XRayTeeth = strings.Join(ts, ", ")
	}
	if kind == KindTreatmentPerformed {
		// The items still planned, and those the entry already names (a
		// correction keeps its links, done or in a closed plan).
		linked := map[int64]bool{}
		for _, t := range n.Treatments {
			if t.PlanItemID != 0 {
				linked[t.PlanItemID] = true
			}
		}
		if pl, err := h.Svc.Plan(r.Context(), principal(r), person); err == nil && pl != nil {
			for _, it := range pl.Items {
				if it.Status == ItemPlanned || linked[it.ID] {
					d.PlanItems = append(d.PlanItems, it)
					delete(linked, it.ID)
				}
			}
		}
		for _, t := range n.Treatments {
			if linked[t.PlanItemID] {
				d.PlanItems = append(d.PlanItems, PlanItem{ID: t.PlanItemID, Procedure: t.Procedure, Tooth: t.Tooth, Surfaces: t.Surfaces})
				delete(linked, t.PlanItemID)
			}
		}
	}
	return d
}

// GET /journal/patients/{person}/entries/new?kind=
func (h *Handler) handleNewForm(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	kind := Kind(r.URL.Query().Get("kind"))
	if !kind.Valid() {
		kind = KindExamination
	}
	// Opening the form reads nothing of the record but checks access.
	if d, err := h.Svc.Access(r.Context(), principal(r), person); err != nil || !d.Allowed {
		if err == nil {
			err = fmt.Errorf("journal: %w", auth.ErrForbidden)
		}
		h.fail(w, r, err)
		return
	}
	n := NewEntry{Kind: kind}
	if kind == KindConsent {
		// The select starts at whoever Health Act §17 gives the decision.
		by, err := h.Svc.ConsentGiver(r.Context(), principal(r), person)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		n.Consent = &Consent{GivenBy: by}
	}
	h.Shell.Render(w, r, http.StatusOK, "journal_entry_form", h.form(r, person, kind, n))
}

// parseEntryForm reads an entry from a posted form.
func parseEntryForm(r *http.Request, kind Kind) (NewEntry, error) {
	n := NewEntry{Kind: kind, Sign: r.PostFormValue("sign") == "on"}
	if v := r.PostFormValue("care_time"); v != "" {
		t, err := time.ParseInLocation("2006-01-02T15:04", v, auth.Copenhagen)
		if err != nil {
			return n, inputErr("date.invalid", v)
		}
		n.CareTime = t
	}
	n.Text = r.PostFormValue("text")
	f := r.PostForm
	tooth := func(s string) (Tooth, error) {
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, nil
		}
		return ParseTooth(s)
	}
	switch kind {
	case KindExamination:
		for i, ts := range f["finding_tooth"] {
			if strings.TrimSpace(ts) == "" {
				continue
			}
			t, err := tooth(ts)
			if err != nil {
				return n, err
			}
			fd := Finding{Tooth: t, Surfaces: at(f["finding_surfaces"], i), Condition: Condition(at(f["finding_condition"], i)), Note: at(f["finding_note"], i)}
			detail := at(f["finding_detail"], i)
			switch {
			case slices.Contains(CariesDepths, detail):
				fd.Depth = detail
			case slices.Contains(Materials, detail):
				fd.Material = detail
			case slices.Contains(ExtractionReasons, detail):
				fd.Reason = detail
			}
			n.Findings = append(n.Findings, fd)
		}
		if v := strings.TrimSpace(r.PostFormValue("recall_months")); v != "" {
			m, err := strconv.Atoi(v)
			if err != nil {
				return n, inputErr("recall.range", MaxRecallMonths)
			}
			n.RecallMonths = m
		}
		n.Risk = Risk(r.PostFormValue("risk"))
	case KindDiagnosis:
		t, err := tooth(r.PostFormValue("diagnosis_tooth"))
		if err != nil {
			return n, err
		}
		for _, c := range f["code"] {
			n.Diagnoses = append(n.Diagnoses, Diagnosis{Code: c, Tooth: t})
		}
	case KindTreatmentPlanned, KindTreatmentPerformed:
		for i, pc := range f["treatment_procedure"] {
			if pc == "" {
				continue
			}
			t, err := tooth(at(f["treatment_tooth"], i))
			if err != nil {
				return n, err
			}
			tr := Treatment{Tooth: t, Surfaces: at(f["treatment_surfaces"], i), Procedure: pc, Material: at(f["treatment_material"], i), Reason: at(f["treatment_reason"], i)}
			if v := at(f["treatment_plan_item"], i); v != "" {
				tr.PlanItemID, _ = strconv.ParseInt(v, 10, 64)
			}
			n.Treatments = append(n.Treatments, tr)
		}
	case KindXRay:
		x := &XRay{StudyUID: strings.TrimSpace(r.PostFormValue("study_uid")), ShowsDisease: r.PostFormValue("shows_disease") == "on"}
		// The images described (kept from the entry corrected; the viewer's
		// description names them), as long as the study is the one they
		// belong to: a correction naming another study describes none of
		// them (they would be refused as outside the study).
		if st := strings.TrimSpace(r.PostFormValue("instance_study")); st == "" || st == x.StudyUID {
			for _, u := range f["instance_uid"] {
				if u = strings.TrimSpace(u); u != "" {
					x.InstanceUIDs = append(x.InstanceUIDs, u)
				}
			}
		}
		for _, ts := range strings.FieldsFunc(r.PostFormValue("xray_teeth"), func(r rune) bool { return r == ',' || r == ' ' }) {
			t, err := tooth(ts)
			if err != nil {
				return n, err
			}
			x.Teeth = append(x.Teeth, t)
		}
		n.XRay = x
	case KindConsent:
		n.Consent = &Consent{Topic: r.PostFormValue("consent_topic"), Given: r.PostFormValue("consent_given") == "on", GivenBy: r.PostFormValue("consent_by")}
	}
	return n, nil
}

func at(vs []string, i int) string {
	if i < len(vs) {
		return strings.TrimSpace(vs[i])
	}
	return ""
}

// POST /journal/patients/{person}/entries
func (h *Handler) handleCreate(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, inputErr("text.toolong", MaxTextLen))
		return
	}
	kind := Kind(r.PostFormValue("kind"))
	if !kind.Valid() {
		h.fail(w, r, inputErr("kind.invalid", string(kind)))
		return
	}
	n, err := parseEntryForm(r, kind)
	var e Entry
	if err == nil {
		e, err = h.Svc.Create(r.Context(), principal(r), person, n)
	}
	if err != nil {
		h.formError(w, r, person, kind, n, 0, "", err)
		return
	}
	msg := "saved"
	if e.Signed() {
		msg = "signed"
	}
	http.Redirect(w, r, fmt.Sprintf("/journal/patients/%d?msg=%s#entry-%d", person, msg, e.ID), http.StatusSeeOther)
}

// formError shows the form again with the message of an input error.
func (h *Handler) formError(w http.ResponseWriter, r *http.Request, person int64, kind Kind, n NewEntry, correct int64, reason string, err error) {
	kindE, msg := kindOf(err, web.Lang(r))
	if msg == "" || kindE == web.Forbidden || kindE == web.NotFound {
		h.fail(w, r, err)
		return
	}
	d := h.form(r, person, kind, n)
	d.Error, d.Correct, d.Reason = msg, correct, reason
	status := http.StatusBadRequest
	if kindE == web.Conflict {
		status = http.StatusConflict
	}
	h.Shell.Render(w, r, status, "journal_entry_form", d)
}

// personEntry reads the {person} and {entry} ids of a URL.
func personEntry(r *http.Request) (person, entry int64, err error) {
	if person, err = idParam(r, "person"); err != nil {
		return 0, 0, err
	}
	entry, err = idParam(r, "entry")
	return person, entry, err
}

// GET /journal/patients/{person}/entries/{entry}
func (h *Handler) handleEntry(w http.ResponseWriter, r *http.Request) {
	person, id, err := personEntry(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	vs, err := h.Svc.Versions(r.Context(), principal(r), person, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	slices.Reverse(vs) // newest first
	d := struct {
		page
		Versions []Entry
		Plain    []PlainEntry
		Current  Entry
	}{page: h.base(r), Versions: vs, Current: vs[0]}
	d.PersonID = person
	for _, v := range vs {
		d.Plain = append(d.Plain, h.Svc.Plain(v, d.Lang))
	}
	h.Shell.Render(w, r, http.StatusOK, "journal_entry", d)
}

// POST /journal/patients/{person}/entries/{entry}/sign
func (h *Handler) handleSign(w http.ResponseWriter, r *http.Request) {
	person, id, err := personEntry(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.Svc.Sign(r.Context(), principal(r), person, id); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/journal/patients/%d?msg=signed#entry-%d", person, id), http.StatusSeeOther)
}

// GET /journal/patients/{person}/entries/{entry}/correct
func (h *Handler) handleCorrectForm(w http.ResponseWriter, r *http.Request) {
	person, id, err := personEntry(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	vs, err := h.Svc.Versions(r.Context(), principal(r), person, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cur := vs[len(vs)-1]
	n := NewEntry{Kind: cur.Kind, CareTime: cur.CareTime, Content: cur.Content, Sign: cur.Signed() || vs[0].Signed()}
	d := h.form(r, person, cur.Kind, n)
	d.Correct = cur.ID
	h.Shell.Render(w, r, http.StatusOK, "journal_entry_form", d)
}

// POST /journal/patients/{person}/entries/{entry}/correct
func (h *Handler) handleCorrect(w http.ResponseWriter, r *http.Request) {
	person, id, err := personEntry(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, inputErr("text.toolong", MaxTextLen))
		return
	}
	kind := Kind(r.PostFormValue("kind"))
	n, err := parseEntryForm(r, kind)
	reason := r.PostFormValue("reason")
	var e Entry
	if err == nil {
		e, err = h.Svc.Correct(r.Context(), principal(r), person, id, n, reason)
	}
	if err != nil {
		h.formError(w, r, person, kind, n, id, reason, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/journal/patients/%d/entries/%d", person, e.ID), http.StatusSeeOther)
}

// GET /journal/patients/{person}/teeth/{tooth}
func (h *Handler) handleTooth(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	t, err := ParseTooth(chi.URLParam(r, "tooth"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	at, err := parseDate(r.URL.Query().Get("at"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tv, err := h.Svc.Tooth(r.Context(), principal(r), person, t, at)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := struct {
		page
		*ToothView
		Name string
		Cell ChartCell
	}{page: h.base(r), ToothView: tv}
	d.PersonID = person
	d.Name = ToothName(t, d.Lang)
	d.Cell = cellOf(&tv.State, d.Lang)
	h.Shell.Render(w, r, http.StatusOK, "journal_tooth", d)
}

// POST /journal/patients/{person}/plan/items/{item}
func (h *Handler) handleItemStatus(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	item, err := idParam(r, "item")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.Svc.SetItemStatus(r.Context(), principal(r), person, item, ItemStatus(r.PostFormValue("status")), r.PostFormValue("note")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/journal/patients/%d#plan", person), http.StatusSeeOther)
}

// GET /journal/clinics/{clinic}/recall?until=YYYY-MM-DD
func (h *Handler) handleRecall(w http.ResponseWriter, r *http.Request) {
	clinic, err := idParam(r, "clinic")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	until, err := parseDate(r.URL.Query().Get("until"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if until.IsZero() {
		until = time.Now().AddDate(0, 1, 0)
	}
	rows, err := h.Svc.ClinicRecall(r.Context(), principal(r), clinic, until)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.Shell.Render(w, r, http.StatusOK, "journal_recall", struct {
		page
		Clinic int64
		Until  string
		Rows   []RecallRow
	}{page: h.base(r), Clinic: clinic, Until: auth.DateIn(until, auth.Copenhagen).Format(time.DateOnly), Rows: rows})
}

// GET /journal/clinics/{clinic}/xrays
func (h *Handler) handleXRays(w http.ResponseWriter, r *http.Request) {
	clinic, err := idParam(r, "clinic")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	items, err := h.Svc.XRayWorklist(r.Context(), principal(r), clinic)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.Shell.Render(w, r, http.StatusOK, "journal_xrays", struct {
		page
		Clinic int64
		Items  []WorklistItem
	}{page: h.base(r), Clinic: clinic, Items: items})
}

// clinicIndices reads the clinic and ?at=YYYY-MM-DD (default now) of an
// indices request and totals them; ok is false when it has answered.
func (h *Handler) clinicIndices(w http.ResponseWriter, r *http.Request) (clinic int64, at time.Time, totals []GroupTotal, ok bool) {
	clinic, err := idParam(r, "clinic")
	if err == nil {
		at, err = parseDate(r.URL.Query().Get("at"))
	}
	if err == nil {
		if at.IsZero() {
			at = time.Now()
		}
		totals, err = h.Svc.ClinicIndices(r.Context(), principal(r), clinic, at)
	}
	if err != nil {
		h.fail(w, r, err)
		return 0, time.Time{}, nil, false
	}
	return clinic, at, totals, true
}

// GET /journal/clinics/{clinic}/indices?at=YYYY-MM-DD
func (h *Handler) handleIndices(w http.ResponseWriter, r *http.Request) {
	clinic, at, totals, ok := h.clinicIndices(w, r)
	if !ok {
		return
	}
	lang := web.Lang(r)
	h.Shell.Render(w, r, http.StatusOK, "journal_indices", struct {
		page
		Clinic int64
		At     string
		Year   int
		Totals []GroupTotal
		SVG    template.HTML
		// CanReport shows the SCOR export (PermJournalReport).
		CanReport bool
	}{page: h.base(r), CanReport: principal(r).Can(auth.PermJournalReport), Clinic: clinic, At: auth.DateIn(at, auth.Copenhagen).Format(time.DateOnly), Year: at.Year(), Totals: totals,
		SVG: template.HTML(IndicesSVG(totals, lang))}) //nolint:gosec // built by IndicesSVG with escaped text
}

// GET /journal/clinics/{clinic}/indices.svg?at=YYYY-MM-DD
func (h *Handler) handleIndicesSVG(w http.ResponseWriter, r *http.Request) {
	_, _, totals, ok := h.clinicIndices(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = w.Write([]byte(IndicesSVG(totals, web.Lang(r))))
}

// GET /journal/clinics/{clinic}/scor.csv?year=
func (h *Handler) handleScor(w http.ResponseWriter, r *http.Request) {
	h.scor(w, r, CSVExporter{})
}

func (h *Handler) scor(w http.ResponseWriter, r *http.Request, ex ScorExporter) {
	clinic, err := idParam(r, "clinic")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	year := time.Now().Year()
	if v := r.URL.Query().Get("year"); v != "" {
		if year, err = strconv.Atoi(v); err != nil {
			h.fail(w, r, inputErr("year.invalid"))
			return
		}
	}
	recs, err := h.Svc.ScorExtract(r.Context(), principal(r), clinic, year)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ex.ContentType())
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="scor-%d-%d.%s"`, clinic, year, ex.Ext()))
	if err := ex.Export(w, recs); err != nil {
		h.Svc.Logger.ErrorContext(r.Context(), "journal: SCOR export", "err", err)
	}
}
