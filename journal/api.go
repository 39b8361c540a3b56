package journal

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/viewer/web"
)

// apiRoutes mounts the JSON API (documented in openapi.yaml).
func (h *Handler) apiRoutes(r chi.Router) {
	read, write, sign := auth.PermJournalRead, auth.PermJournalWrite, auth.PermJournalSign
	api := func(method, pattern, perm string, fn http.HandlerFunc) {
		r.With(h.need(perm), web.NoStore).MethodFunc(method, pattern, fn)
	}
	r.With(h.need("")).Get("/api/journal/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openapi)
	})
	api("GET", "/api/journal/diagnoses", read, h.apiDiagnoses)
	api("GET", "/api/journal/procedures", read, h.apiProcedures)
	api("GET", "/api/journal/patients", read, h.apiSearch)
	api("GET", "/api/journal/patients/{person}", read, h.apiOverview)
	api("POST", "/api/journal/patients/{person}/break-glass", read, h.apiBreakGlass)
	api("POST", "/api/journal/patients/{person}/profile", write, h.apiProfile)
	api("GET", "/api/journal/patients/{person}/entries", read, h.apiEntries)
	api("POST", "/api/journal/patients/{person}/entries", write, h.apiCreate)
	api("GET", "/api/journal/patients/{person}/entries/{entry}", read, h.apiVersions)
	api("POST", "/api/journal/patients/{person}/entries/{entry}/sign", sign, h.apiSign)
	api("POST", "/api/journal/patients/{person}/entries/{entry}/corrections", write, h.apiCorrect)
	api("GET", "/api/journal/patients/{person}/chart", read, h.apiChart)
	api("GET", "/api/journal/patients/{person}/teeth/{tooth}", read, h.apiTooth)
	api("GET", "/api/journal/patients/{person}/plan", read, h.apiPlan)
	api("POST", "/api/journal/patients/{person}/plan/items/{item}", write, h.apiItemStatus)
	api("POST", "/api/journal/patients/{person}/images", write, h.apiLinkImage)
	api("GET", "/api/journal/patients/{person}/signed-entries", read, h.apiSigned)
	api("GET", "/api/journal/clinics/{clinic}/recall", read, h.apiRecall)
	api("GET", "/api/journal/clinics/{clinic}/xray-worklist", read, h.apiWorklist)
	api("GET", "/api/journal/clinics/{clinic}/indices", read, h.apiIndices)
	api("GET", "/api/journal/clinics/{clinic}/scor", auth.PermJournalReport, h.apiScor)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiLang is the language of API messages: English unless ?lang=da.
func apiLang(r *http.Request) string {
	if r.URL.Query().Get("lang") == "da" {
		return "da"
	}
	return "en"
}

// apiFail answers with a problem document; input errors carry their
// message, internal errors an id (and are logged).
func (h *Handler) apiFail(w http.ResponseWriter, r *http.Request, err error) {
	kind, msg := kindOf(err, apiLang(r))
	if kind == web.Internal {
		h.Shell.Error(w, r, err)
		return
	}
	status := map[web.Kind]int{web.Invalid: 400, web.NotFound: 404, web.Conflict: 409, web.Forbidden: 403, web.Unauthorized: 401}[kind]
	if msg == "" {
		msg = http.StatusText(status)
	}
	web.WriteProblem(w, r, status, msg, "")
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return &InputError{Key: "body.empty"}
		}
		return &InputError{Key: "body.invalid", Args: []any{err.Error()}}
	}
	return nil
}

// GET /api/journal/diagnoses?q=
func (h *Handler) apiDiagnoses(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	res := h.Svc.SKS.Search(r.URL.Query().Get("q"), min(max(limit, 0), 200))
	if res == nil {
		res = []SKSCode{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"system": "urn:oid:1.2.208.176.2.4", "codes": res})
}

// GET /api/journal/procedures
func (h *Handler) apiProcedures(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"procedures": h.Svc.Catalogue.List()})
}

// GET /api/journal/patients?q=
func (h *Handler) apiSearch(w http.ResponseWriter, r *http.Request) {
	hits, err := h.Svc.Search(r.Context(), principal(r), r.URL.Query().Get("q"))
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	if hits == nil {
		hits = []Hit{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"patients": hits})
}

// GET /api/journal/patients/{person}?at=
func (h *Handler) apiOverview(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	if err == nil {
		var at time.Time
		if at, err = parseDate(r.URL.Query().Get("at")); err == nil {
			var ov *Overview
			if ov, err = h.Svc.Overview(r.Context(), principal(r), person, at); err == nil {
				ov.Chart = nil
				writeJSON(w, http.StatusOK, ov)
				return
			}
		}
	}
	h.apiFail(w, r, err)
}

// POST /api/journal/patients/{person}/break-glass {"reason": "..."}
func (h *Handler) apiBreakGlass(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var body struct {
		Reason string `json:"reason"`
	}
	if err == nil {
		err = decode(w, r, &body)
	}
	if err == nil {
		err = h.Svc.BreakGlass(r.Context(), principal(r), person, body.Reason)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"granted": true, "hours": auth.DefaultBreakGlassDuration.Hours()})
}

// POST /api/journal/patients/{person}/profile
func (h *Handler) apiProfile(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var pr Profile
	if err == nil {
		err = decode(w, r, &pr)
	}
	if err == nil {
		err = h.Svc.SaveProfile(r.Context(), principal(r), person, pr)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// GET /api/journal/patients/{person}/entries
func (h *Handler) apiEntries(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var es []Entry
	if err == nil {
		es, err = h.Svc.Entries(r.Context(), principal(r), person)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	if es == nil {
		es = []Entry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es})
}

// POST /api/journal/patients/{person}/entries
func (h *Handler) apiCreate(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var n NewEntry
	if err == nil {
		err = decode(w, r, &n)
	}
	var e Entry
	if err == nil {
		e, err = h.Svc.Create(r.Context(), principal(r), person, n)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/journal/patients/"+strconv.FormatInt(person, 10)+"/entries/"+strconv.FormatInt(e.ID, 10))
	writeJSON(w, http.StatusCreated, e)
}

// GET /api/journal/patients/{person}/entries/{entry}: the entry's versions.
func (h *Handler) apiVersions(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var id int64
	if err == nil {
		id, err = idParam(r, "entry")
	}
	var vs []Entry
	if err == nil {
		vs, err = h.Svc.Versions(r.Context(), principal(r), person, id)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	var cur Entry
	for _, v := range vs {
		if v.ID == id {
			cur = v
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entry": cur, "versions": vs})
}

// POST /api/journal/patients/{person}/entries/{entry}/sign
func (h *Handler) apiSign(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var id int64
	if err == nil {
		id, err = idParam(r, "entry")
	}
	var e Entry
	if err == nil {
		e, err = h.Svc.Sign(r.Context(), principal(r), person, id)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// POST /api/journal/patients/{person}/entries/{entry}/corrections
func (h *Handler) apiCorrect(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var id int64
	if err == nil {
		id, err = idParam(r, "entry")
	}
	var body struct {
		NewEntry
		Reason string `json:"reason"`
	}
	if err == nil {
		err = decode(w, r, &body)
	}
	var e Entry
	if err == nil {
		e, err = h.Svc.Correct(r.Context(), principal(r), person, id, body.NewEntry, body.Reason)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/journal/patients/"+strconv.FormatInt(person, 10)+"/entries/"+strconv.FormatInt(e.ID, 10))
	writeJSON(w, http.StatusCreated, e)
}

// chartJSON is a chart as the API returns it.
type chartJSON struct {
	At        time.Time    `json:"at"`
	AgeMonths int          `json:"age_months"`
	Dentition Dentition    `json:"dentition"`
	Indices   Indices      `json:"indices"`
	Teeth     []ToothState `json:"teeth"`
}

// GET /api/journal/patients/{person}/chart?at=YYYY-MM-DD
func (h *Handler) apiChart(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var at time.Time
	if err == nil {
		at, err = parseDate(r.URL.Query().Get("at"))
	}
	var c *Chart
	if err == nil {
		c, err = h.Svc.Chart(r.Context(), principal(r), person, at)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, chartJSON{At: c.At, AgeMonths: c.AgeMonths, Dentition: c.Dentition, Indices: ComputeIndices(c), Teeth: c.List()})
}

// GET /api/journal/patients/{person}/teeth/{tooth}
func (h *Handler) apiTooth(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var t Tooth
	if err == nil {
		t, err = ParseTooth(chi.URLParam(r, "tooth"))
	}
	var at time.Time
	if err == nil {
		at, err = parseDate(r.URL.Query().Get("at"))
	}
	var tv *ToothView
	if err == nil {
		tv, err = h.Svc.Tooth(r.Context(), principal(r), person, t, at)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tv)
}

// GET /api/journal/patients/{person}/plan
func (h *Handler) apiPlan(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var pl *Plan
	if err == nil {
		pl, err = h.Svc.Plan(r.Context(), principal(r), person)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	if pl == nil {
		writeJSON(w, http.StatusOK, map[string]any{"plan": nil})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"plan": pl, "progress": pl.Progress()})
}

// POST /api/journal/patients/{person}/plan/items/{item} {"status": "done", "note": ""}
func (h *Handler) apiItemStatus(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var item int64
	if err == nil {
		item, err = idParam(r, "item")
	}
	var body struct {
		Status ItemStatus `json:"status"`
		Note   string     `json:"note"`
	}
	if err == nil {
		err = decode(w, r, &body)
	}
	if err == nil {
		err = h.Svc.SetItemStatus(r.Context(), principal(r), person, item, body.Status, body.Note)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// POST /api/journal/patients/{person}/images
func (h *Handler) apiLinkImage(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var l ImageLink
	if err == nil {
		err = decode(w, r, &l)
	}
	if err == nil {
		l, err = h.Svc.LinkImage(r.Context(), principal(r), person, l)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, l)
}

// GET /api/journal/patients/{person}/signed-entries?lang=
func (h *Handler) apiSigned(w http.ResponseWriter, r *http.Request) {
	person, err := idParam(r, "person")
	var out []PlainEntry
	if err == nil {
		out, err = h.Svc.SignedEntries(r.Context(), principal(r), person, web.Lang(r))
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	if out == nil {
		out = []PlainEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
}

// GET /api/journal/clinics/{clinic}/recall?until=YYYY-MM-DD
func (h *Handler) apiRecall(w http.ResponseWriter, r *http.Request) {
	clinic, err := idParam(r, "clinic")
	var until time.Time
	if err == nil {
		until, err = parseDate(r.URL.Query().Get("until"))
	}
	if until.IsZero() {
		until = time.Now()
	}
	var rows []RecallRow
	if err == nil {
		rows, err = h.Svc.ClinicRecall(r.Context(), principal(r), clinic, until)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	if rows == nil {
		rows = []RecallRow{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"recalls": rows})
}

// GET /api/journal/clinics/{clinic}/xray-worklist
func (h *Handler) apiWorklist(w http.ResponseWriter, r *http.Request) {
	clinic, err := idParam(r, "clinic")
	var items []WorklistItem
	if err == nil {
		items, err = h.Svc.XRayWorklist(r.Context(), principal(r), clinic)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	if items == nil {
		items = []WorklistItem{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// GET /api/journal/clinics/{clinic}/indices?at=YYYY-MM-DD
func (h *Handler) apiIndices(w http.ResponseWriter, r *http.Request) {
	clinic, err := idParam(r, "clinic")
	var at time.Time
	if err == nil {
		at, err = parseDate(r.URL.Query().Get("at"))
	}
	if at.IsZero() {
		at = time.Now()
	}
	var totals []GroupTotal
	if err == nil {
		totals, err = h.Svc.ClinicIndices(r.Context(), principal(r), clinic, at)
	}
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"at": auth.DateIn(at, auth.Copenhagen).Format(time.DateOnly), "groups": totals})
}

// exporters are the SCOR formats by name (?format=).
var exporters = map[string]ScorExporter{"csv": CSVExporter{}}

// GET /api/journal/clinics/{clinic}/scor?year=&format=csv
func (h *Handler) apiScor(w http.ResponseWriter, r *http.Request) {
	f := strings.ToLower(r.URL.Query().Get("format"))
	if f == "" {
		f = "csv"
	}
	ex, ok := exporters[f]
	if !ok {
		web.WriteProblem(w, r, http.StatusBadRequest, "unknown format", "")
		return
	}
	h.scor(w, r, ex)
}
