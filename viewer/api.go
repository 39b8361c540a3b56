package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/transfer"
	"github.com/molar-health/molar/viewer/web"
)

// maxState bounds a saved image state (annotations and measurements).
const maxState = 256 << 10

// State is an image's saved display state, measurements and annotations
// (the JSON the browser viewer keeps; the server checks only its shape and
// size). Version counts saves; 0 = never saved.
type State struct {
	Version int             `json:"version"`
	State   json.RawMessage `json:"state"`
	Saved   *time.Time      `json:"saved,omitempty"`
}

// personInstance loads an instance and checks that it is the person's.
func personInstance(ctx context.Context, tx pgx.Tx, personID int64, sop string) (index.Instance, error) {
	in, err := index.GetInstance(ctx, tx, sop)
	if err != nil {
		return in, err
	}
	if in.PersonID != personID {
		return in, fmt.Errorf("%w: image of another person", ErrNotFound)
	}
	return in, nil
}

// LatestState returns the newest saved state of an image.
func LatestState(ctx context.Context, tx pgx.Tx, sop string) (State, error) {
	var s State
	var saved time.Time
	err := tx.QueryRow(ctx, `SELECT version, state, created FROM viewer.image_state WHERE sop_uid = $1 ORDER BY version DESC LIMIT 1`, sop).
		Scan(&s.Version, &s.State, &saved)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{State: json.RawMessage("{}")}, nil
	}
	if err != nil {
		return s, fmt.Errorf("viewer: image state: %w", err)
	}
	s.Saved = &saved
	return s, nil
}

// SaveState appends a new version of an image's state. base is the version
// the editor started from: another save in between is ErrConflict.
func SaveState(ctx context.Context, tx pgx.Tx, tenantID, personID, userID int64, sop string, base int, state json.RawMessage) (State, error) {
	if len(state) > maxState {
		return State{}, fmt.Errorf("%w: state too large", ErrInvalid)
	}
	var obj map[string]json.RawMessage
	// "null" decodes into a nil map without an error: no object either.
	if err := json.Unmarshal(state, &obj); err != nil || obj == nil {
		return State{}, fmt.Errorf("%w: state must be a JSON object", ErrInvalid)
	}
	cur, err := LatestState(ctx, tx, sop)
	if err != nil {
		return State{}, err
	}
	if cur.Version != base {
		return cur, fmt.Errorf("%w: image state is at version %d", ErrConflict, cur.Version)
	}
	now := time.Now()
	// A save of the same version by someone else meanwhile: the insert
	// waits for it and then does nothing. (A unique violation instead
	// would abort the transaction, and the handler's 409 would become a
	// 500.) The conflict answers the state now stored.
	tag, err := tx.Exec(ctx, `INSERT INTO viewer.image_state (tenant_id, person_id, sop_uid, version, state, created_by, created)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, sop_uid, version) DO NOTHING`, tenantID, personID, sop, base+1, []byte(state), userID, now)
	if err != nil {
		return State{}, fmt.Errorf("viewer: save image state: %w", err)
	}
	if tag.RowsAffected() == 0 {
		if cur, err = LatestState(ctx, tx, sop); err != nil {
			return State{}, err
		}
		return cur, fmt.Errorf("%w: saved by someone else meanwhile", ErrConflict)
	}
	return State{Version: base + 1, State: state, Saved: &now}, nil
}

// handleGetState: GET /viewer/api/p/{person}/images/{sop}/state.
func (v *Viewer) handleGetState(w http.ResponseWriter, r *http.Request) {
	var s State
	ok := v.withPerson(w, r, func(c *personCtx) error {
		in, err := personInstance(r.Context(), c.tx, c.person.ID, chi.URLParam(r, "sop"))
		if err != nil {
			return err
		}
		if s, err = LatestState(r.Context(), c.tx, in.SOPInstanceUID); err != nil {
			return err
		}
		return c.audit(r.Context(), audit.ActionRead, fmt.Sprintf("viewer.image_state/%d", in.ID), nil)
	})
	if ok {
		writeJSON(w, http.StatusOK, s)
	}
}

// handlePutState: PUT /viewer/api/p/{person}/images/{sop}/state with
// {"version": n, "state": {…}} — n is the version the edit started from.
func (v *Viewer) handlePutState(w http.ResponseWriter, r *http.Request) {
	var req State
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxState+1024)).Decode(&req); err != nil {
		v.fail(w, r, web.E(web.Invalid, "body must be {\"version\": n, \"state\": {…}}"))
		return
	}
	var s State
	var conflict bool
	ok := v.withPerson(w, r, func(c *personCtx) error {
		in, err := personInstance(r.Context(), c.tx, c.person.ID, chi.URLParam(r, "sop"))
		if err != nil {
			return err
		}
		s, err = SaveState(r.Context(), c.tx, c.p.TenantID, c.person.ID, c.p.UserID, in.SOPInstanceUID, req.Version, req.State)
		if errors.Is(err, ErrConflict) {
			conflict = true
			return nil
		}
		if err != nil {
			return err
		}
		return c.audit(r.Context(), audit.ActionUpdate, fmt.Sprintf("viewer.image_state/%d", in.ID), map[string]any{"version": s.Version})
	})
	if !ok {
		return
	}
	if conflict {
		writeJSON(w, http.StatusConflict, s)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// Tag is one attribute in the tag browser.
type Tag struct {
	Tag   string `json:"tag"` // "(0028,0010)"
	Name  string `json:"name"`
	VR    string `json:"vr"`
	Value string `json:"value"`
	Depth int    `json:"depth"`
}

// Tags flattens stored attributes (DICOM JSON model) for the tag browser.
func Tags(attrs []byte) ([]Tag, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(attrs, &m); err != nil {
		return nil, fmt.Errorf("viewer: attributes: %w", err)
	}
	var out []Tag
	flattenTags(m, 0, &out)
	return out, nil
}

func flattenTags(m map[string]json.RawMessage, depth int, out *[]Tag) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var a struct {
			VR          string            `json:"vr"`
			Value       []json.RawMessage `json:"Value"`
			BulkDataURI string            `json:"BulkDataURI"`
		}
		if json.Unmarshal(m[k], &a) != nil {
			continue
		}
		t := Tag{Tag: k, VR: a.VR, Depth: depth}
		if n, err := strconv.ParseUint(k, 16, 32); err == nil && len(k) == 8 {
			tag := header.Tag(n)
			t.Tag = tag.String()
			t.Name = header.TagName(tag)
		}
		if a.VR == "SQ" {
			t.Value = fmt.Sprintf("%d item(s)", len(a.Value))
			*out = append(*out, t)
			for _, it := range a.Value {
				var sub map[string]json.RawMessage
				if json.Unmarshal(it, &sub) == nil {
					flattenTags(sub, depth+1, out)
				}
			}
			continue
		}
		vals := make([]string, 0, len(a.Value))
		for _, raw := range a.Value {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				vals = append(vals, s)
				continue
			}
			var pn struct{ Alphabetic string }
			if json.Unmarshal(raw, &pn) == nil && pn.Alphabetic != "" {
				vals = append(vals, pn.Alphabetic)
				continue
			}
			vals = append(vals, string(raw))
		}
		t.Value = strings.Join(vals, `\`)
		if a.BulkDataURI != "" {
			t.Value = "(bulk data)"
		}
		if len(t.Value) > 300 {
			t.Value = t.Value[:300] + "…"
		}
		*out = append(*out, t)
	}
}

// handleTags: GET /viewer/api/p/{person}/images/{sop}/tags — the header
// for the tag browser.
func (v *Viewer) handleTags(w http.ResponseWriter, r *http.Request) {
	var tags []Tag
	ok := v.withPerson(w, r, func(c *personCtx) error {
		in, err := personInstance(r.Context(), c.tx, c.person.ID, chi.URLParam(r, "sop"))
		if err != nil {
			return err
		}
		attrs, err := index.InstanceAttrs(r.Context(), c.tx, in.SOPInstanceUID)
		if err != nil {
			return err
		}
		if tags, err = Tags(attrs); err != nil {
			return err
		}
		return c.audit(r.Context(), audit.ActionRead, fmt.Sprintf("dicom.instance/%d", in.ID), map[string]any{"view": "tags"})
	})
	if ok {
		writeJSON(w, http.StatusOK, map[string]any{"tags": tags})
	}
}

// handleSend: POST /viewer/api/p/{person}/images/{sop}/send {"ae": "TITLE"}
// — C-STORE the stored object to a registered AE that is a move
// destination of the user's municipality; audited as an export.
func (v *Viewer) handleSend(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AE string `json:"ae"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req); err != nil || req.AE == "" {
		v.fail(w, r, web.E(web.Invalid, "name the AE to send to"))
		return
	}
	var in index.Instance
	var ae index.AE
	ok := v.withPerson(w, r, func(c *personCtx) error {
		var err error
		if in, err = personInstance(r.Context(), c.tx, c.person.ID, chi.URLParam(r, "sop")); err != nil {
			return err
		}
		if ae, err = index.GetAEOf(r.Context(), c.tx, c.p.TenantID, req.AE); err != nil {
			return err
		}
		if !ae.Can(index.PermMove) {
			return fmt.Errorf("%w: %s is not a destination for images", ErrInvalid, ae.Title)
		}
		// The export is audited before it happens: a send that fails midway
		// may still have disclosed data.
		return c.audit(r.Context(), audit.ActionExport, fmt.Sprintf("dicom.instance/%d", in.ID), map[string]any{"ae": ae.Title})
	})
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	calling := v.AETitle
	if calling == "" {
		calling = "MOLAR"
	}
	// The study send's path: the stored syntax is offered, and an
	// uncompressed one the receiver may prefer (converted on the way).
	sent, _, err := transfer.Send(ctx, v.Store, calling, v.ClientTLS, ae, []index.Instance{in}, v.Log)
	if err != nil {
		v.Log.WarnContext(r.Context(), "viewer: sending an image failed", "ae", ae.Title, "instance_id", in.ID, "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]any{"ok": false, "error": err.Error()})
		return
	}
	if sent != 1 {
		writeJSON(w, http.StatusBadGateway, map[string]any{"ok": false, "error": ae.Title + " did not accept the image"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}
