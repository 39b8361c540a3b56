package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/storage/postgres"
)

// maxSTOWParts bounds the instances of one STOW-RS request.
const maxSTOWParts = 10000

// handleSTOW: STOW-RS. Each application/dicom part (a Part-10 file) goes
// through the one ingest path; the response lists stored and failed
// instances (PS3.18 10.5): 200 all stored, 202 some failed, 409 none stored.
func (s *Service) handleSTOW(w http.ResponseWriter, r *http.Request) {
	if s.Ingest == nil {
		problem(w, r, http.StatusServiceUnavailable, "storing is not available")
		return
	}
	mt, params, ok := parseMediaType(r.Header.Get("Content-Type"))
	if !ok || mt != "multipart/related" || params["boundary"] == "" {
		problem(w, r, http.StatusUnsupportedMediaType, `send multipart/related; type="application/dicom" with a boundary`)
		return
	}
	if t := params["type"]; t != "" && t != "application/dicom" {
		problem(w, r, http.StatusUnsupportedMediaType, "only application/dicom parts are accepted (no JSON+bulk data)")
		return
	}
	p := auth.PrincipalFrom(r.Context())
	mr := multipart.NewReader(r.Body, params["boundary"])
	var stored, failed []map[string]any
	base := s.base(r)
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problem(w, r, http.StatusBadRequest, "malformed multipart body")
			return
		}
		if n >= maxSTOWParts {
			problem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("at most %d instances per request", maxSTOWParts))
			return
		}
		if ct := part.Header.Get("Content-Type"); ct != "" {
			if pmt, _, _ := parseMediaType(ct); pmt != "application/dicom" {
				_, _ = io.Copy(io.Discard, part)
				failed = append(failed, failure("", "", 0xC000, "part is not application/dicom"))
				continue
			}
		}
		res, err := s.Ingest.Ingest(r.Context(), ingest.Source{TenantID: p.TenantID, AE: "STOW-RS", Part10: true, Size: -1,
			StudyInstanceUID: chi.URLParam(r, "study")}, part)
		if err != nil {
			status, comment := ingest.Status(err)
			failed = append(failed, failure(res.SOPClassUID, res.SOPInstanceUID, uint16(status), comment))
			continue
		}
		err = postgres.InTenant(r.Context(), s.Pool, p.TenantID, func(tx pgx.Tx) error {
			return audit.Record(r.Context(), tx, audit.Event{Action: audit.ActionCreate, PersonID: res.PersonID,
				Object: fmt.Sprintf("dicom.instance/%d", res.InstanceID)})
		})
		if err != nil {
			// Stored but not audited: not reported as stored, so the client
			// sends it again; the resend (identical) is audited then.
			s.Log.ErrorContext(r.Context(), "stow: audit", "err", err)
			failed = append(failed, failure(res.SOPClassUID, res.SOPInstanceUID, 0x0110, "the audit log could not be written; send the instance again"))
			continue
		}
		stored = append(stored, map[string]any{
			"00081150": map[string]any{"vr": "UI", "Value": []string{res.SOPClassUID}},
			"00081155": map[string]any{"vr": "UI", "Value": []string{res.SOPInstanceUID}},
			"00081190": map[string]any{"vr": "UR", "Value": []string{fmt.Sprintf("%s/studies/%s/series/%s/instances/%s", base, res.StudyInstanceUID, res.SeriesInstanceUID, res.SOPInstanceUID)}},
		})
	}
	resp := map[string]any{}
	if len(stored) > 0 {
		resp["00081199"] = map[string]any{"vr": "SQ", "Value": stored}
	}
	if len(failed) > 0 {
		resp["00081198"] = map[string]any{"vr": "SQ", "Value": failed}
	}
	status := http.StatusOK
	switch {
	case len(stored) == 0:
		status = http.StatusConflict
	case len(failed) > 0:
		status = http.StatusAccepted
	}
	w.Header().Set("Content-Type", "application/dicom+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

func failure(class, inst string, reason uint16, comment string) map[string]any {
	m := map[string]any{"00081197": map[string]any{"vr": "US", "Value": []uint16{reason}}}
	if class != "" {
		m["00081150"] = map[string]any{"vr": "UI", "Value": []string{class}}
	}
	if inst != "" {
		m["00081155"] = map[string]any{"vr": "UI", "Value": []string{inst}}
	}
	if comment != "" {
		m["00000902"] = map[string]any{"vr": "LO", "Value": []string{comment}}
	}
	return m
}
