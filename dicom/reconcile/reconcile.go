// Package reconcile is the staff side of patient reconciliation: the list
// of studies whose Patient ID did not (or not cleanly) match the citizen
// register, and the actions that settle them — link to a person, correct
// the patient data (matched again), merge two patient records. Pages at
// /dicom/reconciliation and the same as JSON (Accept: application/json).
// Every action runs in the staff member's tenant, needs access to every
// person whose images it moves (the study's current person and the one it
// goes to: care relation or break the glass), is recorded in the
// reconciliation history and audit-logged against each person concerned.
package reconcile

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
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

// Perm allows reconciling studies.
const Perm = "dicom.reconcile"

// ErrUnmatched: the study is not linked to a person and the caller does
// not reconcile studies.
var ErrUnmatched = fmt.Errorf("dicom: a study not matched to a person is for those who reconcile: %w", auth.ErrForbidden)

// CheckUnmatched is the access rule of a study not (yet) linked to a
// person: there is no care relation to check, and its Patient ID is often
// a CPR number, so only those who reconcile studies (Perm) read it, until
// it is linked; after that the person's access rules apply.
func CheckUnmatched(p *auth.Principal) error {
	if !p.Can(Perm) {
		return ErrUnmatched
	}
	return nil
}

// Roles granted Perm by default.
var Roles = []string{auth.RoleClinicAdmin, auth.RoleDentist}

//go:embed templates/*.html
var templates embed.FS

// Pages returns the templates for web.Shell.AddPages.
func Pages() (fs.FS, string) { return templates, "templates/*.html" }

// Messages are the Danish and English texts.
func Messages() map[string]map[string]string {
	return map[string]map[string]string{
		"da": {"recon.title": "Afstemning af billeder", "recon.empty": "Ingen studier venter på afstemning.",
			"recon.patient_id": "Patient-id", "recon.name": "Navn", "recon.birth": "Fødselsdato", "recon.date": "Dato",
			"recon.reason": "Årsag", "recon.link": "Tilknyt", "recon.cpr": "CPR-nummer", "recon.correct": "Ret og afstem",
			"recon.merge": "Flet patienter", "recon.from": "Fra patient", "recon.into": "Ind i patient", "recon.modalities": "Modaliteter"},
		"en": {"recon.title": "Image reconciliation", "recon.empty": "No studies wait for reconciliation.",
			"recon.patient_id": "Patient ID", "recon.name": "Name", "recon.birth": "Birth date", "recon.date": "Date",
			"recon.reason": "Reason", "recon.link": "Link", "recon.cpr": "CPR number", "recon.correct": "Correct and match",
			"recon.merge": "Merge patients", "recon.from": "From patient", "recon.into": "Into patient", "recon.modalities": "Modalities"},
	}
}

// Handler serves the pages and the JSON API.
type Handler struct {
	DB    postgres.Beginner
	Shell *web.Shell
	Auth  *auth.Service
}

// Routes mounts /dicom/reconciliation (authentication is in front).
func (h *Handler) Routes(r chi.Router) {
	r.Route("/dicom/reconciliation", func(r chi.Router) {
		r.Use(h.Auth.Require(Perm), web.NoStore)
		r.Get("/", h.list)
		r.Post("/{study}/link", h.link)
		r.Post("/{study}/correct", h.correct)
		r.Post("/merge", h.merge)
	})
}

// Item is one study on the list (JSON).
type Item struct {
	StudyID          int64     `json:"study_id"`
	StudyInstanceUID string    `json:"study_instance_uid"`
	PatientRef       int64     `json:"patient_ref"`
	PatientID        string    `json:"patient_id"`
	PatientName      string    `json:"patient_name"`
	BirthDate        string    `json:"birth_date,omitempty"`
	StudyDate        string    `json:"study_date,omitempty"`
	Modalities       []string  `json:"modalities"`
	Instances        int       `json:"instances"`
	State            string    `json:"state"`
	Reason           string    `json:"reason"`
	PersonID         int64     `json:"person_id,omitempty"`
	Received         time.Time `json:"received"`
}

func item(s index.Study) Item {
	it := Item{StudyID: s.ID, StudyInstanceUID: s.StudyInstanceUID, PatientRef: s.PatientRef, PatientID: s.Patient.PatientID,
		PatientName: strings.ReplaceAll(s.PatientName, "^", " "), Modalities: s.Modalities, Instances: s.NumInstances,
		State: s.ReconState, Reason: s.ReconNote, PersonID: s.PersonID, Received: s.Created}
	if !s.PatientBirthDate.IsZero() {
		it.BirthDate = s.PatientBirthDate.Format("2006-01-02")
	}
	if !s.StudyDate.IsZero() {
		it.StudyDate = s.StudyDate.Format("2006-01-02")
	}
	return it
}

func (h *Handler) inTenant(r *http.Request, fn func(ctx context.Context, tx pgx.Tx, p *auth.Principal) error) error {
	p := auth.PrincipalFrom(r.Context())
	if p == nil {
		return auth.ErrUnauthenticated
	}
	return postgres.InTenant(r.Context(), h.DB, p.TenantID, func(tx pgx.Tx) error { return fn(r.Context(), tx, p) })
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	var items []Item
	err := h.inTenant(r, func(ctx context.Context, tx pgx.Tx, p *auth.Principal) error {
		list, err := index.ReconciliationList(ctx, tx, 500)
		if err != nil {
			return err
		}
		for _, s := range list {
			items = append(items, item(s))
		}
		// The list shows patient data of persons not yet known: logged as a search.
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionSearch, Object: "dicom.reconciliation", Detail: map[string]any{"count": len(items)}})
	})
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	if items == nil {
		items = []Item{}
	}
	if web.WantsJSON(r) {
		writeJSON(w, http.StatusOK, items)
		return
	}
	h.Shell.Render(w, r, http.StatusOK, "dicom_reconciliation", items)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// input reads a JSON body or a form.
func input(r *http.Request) (map[string]string, error) {
	out := map[string]string{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var raw map[string]any
		if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<16)).Decode(&raw); err != nil {
			return nil, web.E(web.Invalid, "invalid JSON")
		}
		for k, v := range raw {
			out[k] = strings.TrimSpace(fmt.Sprint(v))
			if f, ok := v.(float64); ok {
				out[k] = strconv.FormatInt(int64(f), 10)
			}
		}
		return out, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, web.E(web.Invalid, "invalid form")
	}
	for k := range r.PostForm {
		out[k] = strings.TrimSpace(r.PostForm.Get(k))
	}
	return out, nil
}

func studyParam(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "study"), 10, 64)
	if err != nil || id <= 0 {
		return 0, web.E(web.NotFound, "")
	}
	return id, nil
}

func actor(p *auth.Principal) string { return fmt.Sprintf("user/%d", p.UserID) }

func (h *Handler) done(w http.ResponseWriter, r *http.Request, v any) {
	if web.WantsJSON(r) || strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeJSON(w, http.StatusOK, v)
		return
	}
	http.Redirect(w, r, "/dicom/reconciliation/", http.StatusSeeOther)
}

// personByInput finds the person named by person_id or cpr.
func personByInput(ctx context.Context, tx pgx.Tx, in map[string]string) (auth.Person, error) {
	if v := in["person_id"]; v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return auth.Person{}, web.E(web.Invalid, "person_id must be a number")
		}
		return auth.GetPerson(ctx, tx, id)
	}
	cpr, err := auth.ParseCPR(in["cpr"])
	if err != nil {
		return auth.Person{}, err
	}
	return auth.FindPersonByCPR(ctx, tx, cpr)
}

// reach checks access to the persons a reconciliation touches (0 and
// repeats are skipped) and returns the break-the-glass reason per person
// for the audit rows. Without it, re-linking or merging would move a
// person's images into a record the user may open: a way around access.
func (h *Handler) reach(ctx context.Context, tx pgx.Tx, p *auth.Principal, persons ...int64) (map[int64]string, error) {
	reasons := map[int64]string{}
	for _, id := range persons {
		if _, done := reasons[id]; done || id == 0 {
			continue
		}
		d, err := h.Auth.RequireAccess(ctx, tx, p, id)
		if err != nil {
			return nil, err
		}
		reasons[id] = d.Reason
	}
	return reasons, nil
}

// recordMoved audit-logs a study's images leaving a person's record.
func recordMoved(ctx context.Context, tx pgx.Tx, from int64, reasons map[int64]string, object, how string) error {
	if from == 0 {
		return nil
	}
	return audit.Record(ctx, tx, audit.Event{Action: audit.ActionUpdate, PersonID: from, Object: object, BreakGlassReason: reasons[from],
		Detail: map[string]any{"reconciliation": how, "moved": "away"}})
}

func (h *Handler) link(w http.ResponseWriter, r *http.Request) {
	id, err := studyParam(r)
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	in, err := input(r)
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	var res Item
	err = h.inTenant(r, func(ctx context.Context, tx pgx.Tx, p *auth.Principal) error {
		person, err := personByInput(ctx, tx, in)
		if err != nil {
			return err
		}
		before, err := index.GetStudyByID(ctx, tx, id)
		if err != nil {
			return err
		}
		reasons, err := h.reach(ctx, tx, p, before.PersonID, person.ID)
		if err != nil {
			return err
		}
		st, err := index.Link(ctx, tx, id, person.ID, actor(p))
		if err != nil {
			return err
		}
		res = item(st)
		object := fmt.Sprintf("dicom.study/%d", id)
		if before.PersonID != person.ID {
			if err := recordMoved(ctx, tx, before.PersonID, reasons, object, "link"); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionUpdate, PersonID: person.ID, Object: object,
			BreakGlassReason: reasons[person.ID], Detail: map[string]any{"reconciliation": "link"}})
	})
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	h.done(w, r, res)
}

func (h *Handler) correct(w http.ResponseWriter, r *http.Request) {
	id, err := studyParam(r)
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	in, err := input(r)
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	c := index.Correction{PatientID: in["patient_id"], Name: in["name"]}
	if v := in["birth_date"]; v != "" {
		if c.BirthDate, err = time.Parse("2006-01-02", v); err != nil {
			h.Shell.Error(w, r, web.E(web.Invalid, "birth_date must be YYYY-MM-DD"))
			return
		}
	}
	if c.PatientID != "" {
		if cpr, err := auth.ParseCPR(c.PatientID); err == nil {
			c.PatientID, c.CPR = cpr.Digits(), cpr.Digits()
		}
	}
	var res Item
	err = h.inTenant(r, func(ctx context.Context, tx pgx.Tx, p *auth.Principal) error {
		before, err := index.GetStudyByID(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := h.reach(ctx, tx, p, before.PersonID); err != nil {
			return err
		}
		st, err := index.Correct(ctx, tx, id, c, actor(p))
		if err != nil {
			return err
		}
		// The study may now be matched to someone else: the user must
		// reach that person too (else the transaction is rolled back).
		reasons, err := h.reach(ctx, tx, p, before.PersonID, st.PersonID)
		if err != nil {
			return err
		}
		res = item(st)
		object := fmt.Sprintf("dicom.study/%d", id)
		if before.PersonID != st.PersonID {
			if err := recordMoved(ctx, tx, before.PersonID, reasons, object, "correct"); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionUpdate, PersonID: st.PersonID, Object: object,
			BreakGlassReason: reasons[st.PersonID], Detail: map[string]any{"reconciliation": "correct", "state": st.ReconState}})
	})
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	h.done(w, r, res)
}

func (h *Handler) merge(w http.ResponseWriter, r *http.Request) {
	in, err := input(r)
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	from, err1 := strconv.ParseInt(in["from"], 10, 64)
	into, err2 := strconv.ParseInt(in["into"], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		h.Shell.Error(w, r, web.E(web.Invalid, "from and into must be patient numbers"))
		return
	}
	var n int
	err = h.inTenant(r, func(ctx context.Context, tx pgx.Tx, p *auth.Principal) error {
		// Every person whose studies move, and the person they move to.
		var person int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(person_id, 0) FROM dicom.patient WHERE id = $1`, into).Scan(&person); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return web.E(web.NotFound, "")
			}
			return err
		}
		var moved []int64
		rows, err := tx.Query(ctx, `SELECT DISTINCT person_id FROM dicom.study WHERE patient_ref = $1 AND person_id IS NOT NULL`, from)
		if err != nil {
			return err
		}
		if moved, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return err
		}
		reasons, err := h.reach(ctx, tx, p, append(moved, person)...)
		if err != nil {
			return err
		}
		if n, err = index.Merge(ctx, tx, from, into, actor(p)); err != nil {
			return err
		}
		object := fmt.Sprintf("dicom.patient/%d", into)
		for _, m := range moved {
			if person != 0 && m != person {
				if err := recordMoved(ctx, tx, m, reasons, object, "merge"); err != nil {
					return err
				}
			}
		}
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionUpdate, PersonID: person, Object: object, BreakGlassReason: reasons[person],
			Detail: map[string]any{"reconciliation": "merge", "from_patient": from, "studies": n}})
	})
	if err != nil {
		h.Shell.Error(w, r, err)
		return
	}
	h.done(w, r, map[string]int{"studies": n})
}
