// Package transfer is the web side of moving DICOM in and out of Molar
// (UC11): download a study as a ZIP with a DICOMDIR (optionally
// de-identified), send a study to a registered remote AE (C-STORE), import
// by upload (DICOM files, ZIP archives, or pictures and 3D models wrapped
// for a chosen patient) and delete an instance or a study.
//
// Routes (behind the core's authentication):
//
//	GET    /dicom/studies/{study}/archive                 dicom.read   ?deidentify=1&keep_dates=1&keep_device=1
//	POST   /dicom/studies/{study}/send                    dicom.read   ae=TITLE (the AE needs the move permission)
//	POST   /dicom/upload                                  dicom.write  multipart/form-data: person or cpr, file…
//	DELETE /dicom/studies/{study}                         dicom.delete reason (query or JSON body)
//	DELETE /dicom/studies/{study}/instances/{instance}    dicom.delete reason
//
// Reading a study reconciled to a person needs access to that person (care
// relation or break the glass); every download and send is audited as an
// export of the study with its person, every stored upload as a create,
// every deletion as a delete with the reason.
package transfer

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/deletion"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/media"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/reconcile"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
	vweb "github.com/molar-health/molar/viewer/web"
)

// PermDelete lets a user delete DICOM instances and studies (clinic and
// system administrators; cmd/molar registers it).
const PermDelete = "dicom.delete"

// DeleteRoles hold PermDelete.
var DeleteRoles = []string{auth.RoleClinicAdmin, auth.RoleSystemAdmin}

// MaxUploadBytes caps one upload request.
const MaxUploadBytes = 4 << 30

// Handler serves the routes.
type Handler struct {
	Pool    *pgxpool.Pool
	Store   storage.ObjectStore
	Auth    *auth.Service
	Ingest  media.Ingester
	Deleter *deletion.Deleter
	// CallingAE is Molar's AE title when sending.
	CallingAE string
	// ClientTLS is Molar's side of DICOM TLS to AEs registered with TLS.
	ClientTLS *tls.Config
	Log       *slog.Logger
}

// Routes mounts the routes (flat paths: /dicom/reconciliation lives beside them).
func (h *Handler) Routes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(vweb.NoStore)
		r.With(require(auth.PermDICOMRead)).Get("/dicom/studies/{study}/archive", h.handleArchive)
		r.With(require(auth.PermDICOMRead)).Post("/dicom/studies/{study}/send", h.handleSend)
		r.With(require(auth.PermDICOMWrite)).Post("/dicom/upload", h.handleUpload)
		r.With(require(PermDelete)).Delete("/dicom/studies/{study}", h.handleDelete)
		r.With(require(PermDelete)).Delete("/dicom/studies/{study}/instances/{instance}", h.handleDelete)
	})
}

func require(perm string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := auth.PrincipalFrom(r.Context())
			if p == nil {
				problem(w, r, http.StatusUnauthorized, "log ind først")
				return
			}
			if !p.Can(perm) {
				problem(w, r, http.StatusForbidden, "du har ikke rettighed til dette")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func problem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	vweb.WriteProblem(w, r, status, detail, "")
}

var errBadRequest = errors.New("transfer: bad request")

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.New(slog.DiscardHandler)
}

// fail maps errors to statuses in one place.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, index.ErrNotFound), errors.Is(err, auth.ErrNotFound), errors.Is(err, storage.ErrNotFound):
		problem(w, r, http.StatusNotFound, "findes ikke")
	case errors.Is(err, auth.ErrForbidden):
		problem(w, r, http.StatusForbidden, "du har ikke adgang til denne patients billeder (bryd glasset i fremviseren og angiv en grund)")
	case errors.Is(err, deletion.ErrNoReason):
		problem(w, r, http.StatusBadRequest, fmt.Sprintf("angiv en grund til sletningen (mindst %d tegn)", deletion.MinReason))
	case errors.Is(err, deletion.ErrBlocked):
		problem(w, r, http.StatusConflict, "kan ikke slettes: "+strings.TrimPrefix(err.Error(), deletion.ErrBlocked.Error()+": "))
	case errors.Is(err, audit.ErrPersonalData):
		problem(w, r, http.StatusBadRequest, "grunden må ikke indeholde et CPR-nummer")
	case errors.Is(err, errBadRequest):
		problem(w, r, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errBadRequest.Error()+": "))
	case errors.Is(err, context.Canceled):
	default:
		h.log().ErrorContext(r.Context(), "dicom transfer", "err", err, "path_pattern", chi.RouteContext(r.Context()).RoutePattern())
		problem(w, r, http.StatusInternalServerError, "intern fejl")
	}
}

// study loads a study with its instances, checks access to its person and
// records the audit event made by ev, in one tenant transaction.
func (h *Handler) study(ctx context.Context, studyUID string, ev func(index.Study, int) audit.Event, also func(tx pgx.Tx) error) (index.Study, []index.Instance, error) {
	p := auth.PrincipalFrom(ctx)
	var st index.Study
	var insts []index.Instance
	err := postgres.InTenant(ctx, h.Pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		if st, err = index.GetStudy(ctx, tx, studyUID); err != nil {
			return err
		}
		reason := ""
		if st.PersonID != 0 {
			d, err := h.Auth.RequireAccess(ctx, tx, p, st.PersonID)
			if err != nil {
				return err
			}
			reason = d.Reason
		} else if err := reconcile.CheckUnmatched(p); err != nil {
			return err
		}
		if also != nil {
			if err := also(tx); err != nil {
				return err
			}
		}
		if insts, err = index.InstancesOfStudy(ctx, tx, studyUID); err != nil {
			return err
		}
		e := ev(st, len(insts))
		e.BreakGlassReason = reason
		return audit.Record(ctx, tx, e)
	})
	return st, insts, err
}

func exportEvent(deid bool, ae string) func(index.Study, int) audit.Event {
	return func(st index.Study, n int) audit.Event {
		detail := map[string]any{"instances": n, "deidentified": deid}
		if ae != "" {
			detail["destination_ae"] = ae
		}
		return audit.Event{Action: audit.ActionExport, PersonID: st.PersonID, Object: fmt.Sprintf("dicom.study/%d", st.ID), Detail: detail}
	}
}

func flag(r *http.Request, name string) bool {
	v, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return v || r.URL.Query().Get(name) == "on"
}

// handleArchive streams the study as a ZIP with a DICOMDIR.
func (h *Handler) handleArchive(w http.ResponseWriter, r *http.Request) {
	deid := flag(r, "deidentify")
	st, insts, err := h.study(r.Context(), chi.URLParam(r, "study"), exportEvent(deid, ""), nil)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var d *media.Deidentifier
	if deid {
		d = media.NewDeidentifier(flag(r, "keep_dates"), flag(r, "keep_device"))
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fmt.Sprintf("undersoegelse-%d.zip", st.ID)}))
	sink := media.ZipSink(w)
	fs := media.NewFileSet(sink, d, "")
	var leftOut []string
	for _, in := range insts {
		rc, _, err := h.Store.Get(r.Context(), in.ObjectKey, nil)
		if err != nil {
			h.log().ErrorContext(r.Context(), "dicom archive: object", "instance_id", in.ID, "err", err)
			return // the ZIP stays incomplete (no central directory): the client sees a broken download
		}
		_, err = fs.Add(rc)
		rc.Close()
		if errors.Is(err, media.ErrNotDeidentifiable) {
			leftOut = append(leftOut, fmt.Sprintf("instans %d: %v", in.ID, err))
			continue
		}
		if err != nil {
			h.log().ErrorContext(r.Context(), "dicom archive", "instance_id", in.ID, "err", err)
			return
		}
	}
	if len(leftOut) > 0 {
		// The download says what it lacks (a de-identified export leaves
		// out what the profile cannot clean).
		if f, err := sink.Create(leftOutName); err == nil {
			fmt.Fprintf(f, "Ikke med i den afidentificerede eksport / left out of the de-identified export (%d):\r\n", len(leftOut))
			for _, l := range leftOut {
				fmt.Fprintf(f, "%s\r\n", l)
			}
			_ = f.Close()
		}
	}
	if err := fs.Close(); err != nil {
		h.log().ErrorContext(r.Context(), "dicom archive: close", "err", err)
	}
}

// leftOutName is the text file in a de-identified ZIP download naming the
// instances left out and why.
const leftOutName = "UDELADT.TXT"

// formValue reads a field from a JSON body or a form.
func formValue(r *http.Request, name string) string {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		var m map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&m); err == nil {
			s, _ := m[name].(string)
			return s
		}
		return ""
	}
	if v := r.URL.Query().Get(name); v != "" {
		return v
	}
	if r.Method == http.MethodPost {
		return r.PostFormValue(name)
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// handleSend sends the study to a registered AE that may receive (move).
func (h *Handler) handleSend(w http.ResponseWriter, r *http.Request) {
	title := strings.TrimSpace(formValue(r, "ae"))
	if title == "" {
		h.fail(w, r, fmt.Errorf("%w: vælg en modtager (ae)", errBadRequest))
		return
	}
	p := auth.PrincipalFrom(r.Context())
	var ae index.AE
	_, insts, err := h.study(r.Context(), chi.URLParam(r, "study"), exportEvent(false, title), func(tx pgx.Tx) error {
		var err error
		if ae, err = index.GetAEOf(r.Context(), tx, p.TenantID, title); err != nil {
			return fmt.Errorf("%w: ukendt modtager %s", errBadRequest, title)
		}
		if !ae.Can(index.PermMove) {
			return fmt.Errorf("%w: %s må ikke modtage billeder (mangler tilladelsen move)", errBadRequest, title)
		}
		return nil
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sent, failed, err := Send(r.Context(), h.Store, h.CallingAE, h.ClientTLS, ae, insts, h.log())
	if err != nil {
		h.log().WarnContext(r.Context(), "dicom send", "ae", ae.Title, "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]any{"sent": sent, "failed": len(insts) - sent, "error": "forbindelsen til modtageren fejlede"})
		return
	}
	status := http.StatusOK
	if failed > 0 {
		status = http.StatusAccepted
	}
	writeJSON(w, status, map[string]any{"sent": sent, "failed": failed})
}

// Send stores the instances at the AE over one association, each in its
// stored transfer syntax when the AE accepts it, else converted to an
// uncompressed one (query.Transcode). It returns how many were stored and
// how many the AE refused; err is a failed association. An AE registered
// with TLS is reached over TLS with clientTLS (index.AE.DialTLS).
func Send(ctx context.Context, store storage.ObjectStore, callingAE string, clientTLS *tls.Config, ae index.AE, insts []index.Instance, log *slog.Logger) (sent, failed int, err error) {
	var contexts []dimse.ProposedContext
	seen := map[string]bool{}
	for _, in := range insts {
		if k := in.SOPClassUID + "|" + in.TransferSyntax; !seen[k] {
			seen[k] = true
			contexts = append(contexts, dimse.ProposedContext{AbstractSyntax: in.SOPClassUID, TransferSyntaxes: []string{in.TransferSyntax}})
		}
		if k := in.SOPClassUID + "|*"; !seen[k] {
			seen[k] = true
			contexts = append(contexts, dimse.ProposedContext{AbstractSyntax: in.SOPClassUID,
				TransferSyntaxes: []string{uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian}})
		}
	}
	if len(contexts) == 0 {
		return 0, 0, nil
	}
	if len(contexts) > 128 {
		contexts = contexts[:128]
	}
	assoc, err := dimse.Dial(ctx, ae.Addr(), dimse.DialOptions{CallingAE: callingAE, CalledAE: ae.Title, Contexts: contexts, TLS: ae.DialTLS(clientTLS), Logger: log})
	if err != nil {
		return 0, 0, fmt.Errorf("transfer: associate with %s: %w", ae.Title, err)
	}
	defer func() {
		if rerr := assoc.Release(ctx); rerr != nil {
			_ = assoc.Abort()
		}
	}()
	for _, in := range insts {
		inst := query.StoredInstance(store, in)
		if _, err := assoc.FindContext(in.SOPClassUID, in.TransferSyntax); err != nil {
			pc, err := assoc.FindContext(in.SOPClassUID, "")
			if err != nil {
				failed++
				continue
			}
			if inst, err = query.Transcode(ctx, inst, []string{pc.TransferSyntax}); err != nil {
				failed++
				continue
			}
		}
		rc, err := inst.Open(ctx)
		if err != nil {
			return sent, failed, fmt.Errorf("transfer: instance %d: %w", in.ID, err)
		}
		status, err := assoc.Store(ctx, dimse.StoreParams{SOPClassUID: in.SOPClassUID, SOPInstanceUID: in.SOPInstanceUID, TransferSyntax: inst.TransferSyntax}, rc)
		rc.Close()
		if err != nil {
			return sent, failed, fmt.Errorf("transfer: store at %s: %w", ae.Title, err)
		}
		if status.IsFailure() {
			failed++
			continue
		}
		sent++
	}
	return sent, failed, nil
}

// handleDelete deletes a study or one instance, with a reason.
func (h *Handler) handleDelete(w http.ResponseWriter, r *http.Request) {
	p := auth.PrincipalFrom(r.Context())
	res, err := h.Deleter.Delete(r.Context(), deletion.Request{TenantID: p.TenantID, StudyUID: chi.URLParam(r, "study"),
		SOPInstanceUID: chi.URLParam(r, "instance"), Reason: formValue(r, "reason")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"instances": res.Instances, "study_removed": res.StudyGone})
}

// uploaded is one file's line in the upload answer.
type uploaded struct {
	Name           string `json:"name"`
	Outcome        string `json:"outcome"`
	Reason         string `json:"reason,omitempty"`
	StudyUID       string `json:"study_uid,omitempty"`
	SOPInstanceUID string `json:"sop_instance_uid,omitempty"`
}

// handleUpload imports the files of a multipart/form-data upload. Fields:
// person (register id) or cpr to wrap pictures and models for that person;
// any number of file parts (DICOM, ZIP, JPEG/PNG/TIFF, STL/PLY). Parts are
// spooled to temporary files first (a ZIP needs random access).
func (h *Handler) handleUpload(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := auth.PrincipalFrom(ctx)
	r.Body = http.MaxBytesReader(w, r.Body, MaxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		h.fail(w, r, fmt.Errorf("%w: send multipart/form-data med filerne", errBadRequest))
		return
	}
	dir, err := os.MkdirTemp("", "molar-upload-*")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer os.RemoveAll(dir)
	var entries []media.Entry
	var personField, cprField string
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			h.fail(w, r, fmt.Errorf("%w: ødelagt multipart-indhold", errBadRequest))
			return
		}
		if part.FileName() == "" {
			v, _ := io.ReadAll(io.LimitReader(part, 256))
			switch part.FormName() {
			case "person":
				personField = strings.TrimSpace(string(v))
			case "cpr":
				cprField = strings.TrimSpace(string(v))
			}
			continue
		}
		f, err := os.CreateTemp(dir, "part-*")
		if err != nil {
			h.fail(w, r, err)
			return
		}
		_, err = io.Copy(f, part)
		f.Close()
		if err != nil {
			h.fail(w, r, fmt.Errorf("%w: upload afbrudt eller for stor", errBadRequest))
			return
		}
		e, err := media.FileEntry(f.Name())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		// A browser sends no file time (the temporary copy's is now): a
		// picture wrapped into DICOM gets today's date and no time, so the
		// same file uploaded again is the same object.
		e.Name, e.ModTime = filepath.Base(part.FileName()), time.Time{}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		h.fail(w, r, fmt.Errorf("%w: ingen filer", errBadRequest))
		return
	}
	im := &media.Importer{Ingest: h.Ingest, TenantID: p.TenantID, AE: "upload"}
	if personField != "" || cprField != "" {
		var person auth.Person
		err := postgres.InTenant(ctx, h.Pool, p.TenantID, func(tx pgx.Tx) error {
			var err error
			if cprField != "" {
				c, perr := auth.ParseCPR(cprField)
				if perr != nil {
					return fmt.Errorf("%w: ugyldigt CPR-nummer", errBadRequest)
				}
				person, err = auth.FindPersonByCPR(ctx, tx, c)
			} else {
				id, perr := strconv.ParseInt(personField, 10, 64)
				if perr != nil {
					return fmt.Errorf("%w: ugyldig person", errBadRequest)
				}
				person, err = auth.GetPerson(ctx, tx, id)
			}
			if err != nil {
				return err
			}
			_, err = h.Auth.RequireAccess(ctx, tx, p, person.ID)
			return err
		})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		pt := media.PatientOf(person)
		im.Patient, im.Scope = &pt, media.Scope(p.TenantID, person.ID)
	}
	var out []uploaded
	counts := map[media.Outcome]int{}
	for _, e := range entries {
		im.Import(ctx, e, func(fr media.FileResult) {
			// An identical file sent again is audited too, as STOW-RS does:
			// its first upload may have been refused for want of its row.
			if fr.Outcome == media.Stored || (fr.Outcome == media.Duplicate && fr.Result.Outcome == index.OutcomeIdentical) {
				var detail map[string]any
				if fr.Outcome == media.Duplicate {
					detail = map[string]any{"outcome": fr.Result.Outcome}
				}
				err := postgres.InTenant(ctx, h.Pool, p.TenantID, func(tx pgx.Tx) error {
					return audit.Record(ctx, tx, audit.Event{Action: audit.ActionCreate, PersonID: fr.Result.PersonID,
						Object: fmt.Sprintf("dicom.instance/%d", fr.Result.InstanceID), Detail: detail})
				})
				if err != nil {
					// Stored, but never reported as stored without its audit row.
					h.log().ErrorContext(ctx, "upload: audit", "err", err)
					fr.Outcome, fr.Reason = media.Rejected, "gemt, men revisionsloggen kunne ikke skrives: kontakt systemadministratoren"
				}
			}
			counts[fr.Outcome]++
			u := uploaded{Name: fr.Name, Outcome: string(fr.Outcome), Reason: fr.Reason,
				StudyUID: fr.Result.StudyInstanceUID, SOPInstanceUID: fr.Result.SOPInstanceUID}
			if fr.Outcome == media.Rejected {
				u.Reason = oneLine(fr.Reason)
			}
			out = append(out, u)
		})
	}
	status := http.StatusOK
	switch {
	case counts[media.Rejected] > 0 && counts[media.Stored]+counts[media.Duplicate] == 0:
		status = http.StatusUnprocessableEntity
	case counts[media.Rejected] > 0:
		status = http.StatusAccepted
	}
	writeJSON(w, status, map[string]any{"stored": counts[media.Stored], "duplicates": counts[media.Duplicate],
		"rejected": counts[media.Rejected], "skipped": counts[media.Skipped], "files": out})
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
