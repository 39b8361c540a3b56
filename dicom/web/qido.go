package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	dtag "github.com/suyashkumar/dicom/pkg/tag"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/reconcile"
	"github.com/molar-health/molar/storage/postgres"
)

// QIDO-RS limits.
const (
	DefaultQIDOLimit = 1000
	MaxQIDOLimit     = 10000
	MaxQIDOOffset    = 100000
	// qidoChunk rows of the index are read at a time, and at most
	// qidoMaxScan beyond offset+limit for one page, while matches the user
	// may not see are left out.
	qidoChunk   = 500
	qidoMaxScan = 50000
)

// Tags of the hierarchy used to scope QIDO requests by their path.
var (
	tagStudyUID  = header.Tag(0x0020000D)
	tagSeriesUID = header.Tag(0x0020000E)
	tagRetrieve  = header.Tag(0x00081190)
)

// qidoRoutes mounts QIDO-RS at every path form (PS3.18 10.6).
func (s *Service) qidoRoutes(r chi.Router) {
	r.Get("/studies", s.qido(query.Study))
	r.Get("/series", s.qido(query.Series))
	r.Get("/instances", s.qido(query.Image))
	r.Get("/studies/{study}/series", s.qido(query.Series))
	r.Get("/studies/{study}/instances", s.qido(query.Image))
	r.Get("/studies/{study}/series/{series}/instances", s.qido(query.Image))
}

// parseTag reads a QIDO attribute: a keyword (PatientName) or a hex tag
// (00100010); nested paths (a.b) are not supported.
func parseTag(s string) (header.Tag, error) {
	if len(s) == 8 {
		if n, err := strconv.ParseUint(s, 16, 32); err == nil {
			return header.Tag(n), nil
		}
	}
	info, err := dtag.FindByName(s)
	if err != nil {
		return 0, fmt.Errorf("%w: unknown attribute %q", errBadRequest, s)
	}
	return header.NewTag(info.Tag.Group, info.Tag.Element), nil
}

// parseQIDO turns the request into a query.
func parseQIDO(r *http.Request, level query.Level) (*query.Query, error) {
	q := &query.Query{Level: level, Limit: DefaultQIDOLimit}
	seen := map[header.Tag]bool{}
	add := func(t header.Tag, v string) {
		if seen[t] {
			for i := range q.Keys {
				if q.Keys[i].Tag == t && q.Keys[i].Value == "" {
					q.Keys[i].Value = v
				}
			}
			return
		}
		seen[t] = true
		q.Keys = append(q.Keys, query.Key{Tag: t, Value: v})
	}
	if v := chi.URLParam(r, "study"); v != "" {
		add(tagStudyUID, v)
	}
	if v := chi.URLParam(r, "series"); v != "" {
		add(tagSeriesUID, v)
	}
	for name, values := range r.URL.Query() {
		switch name {
		case "limit", "offset":
			n, err := strconv.Atoi(values[0])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: %s must be a whole number", errBadRequest, name)
			}
			switch {
			case name == "limit":
				q.Limit = min(max(n, 1), MaxQIDOLimit)
			case n > MaxQIDOOffset:
				return nil, fmt.Errorf("%w: offset at most %d: narrow the search instead", errBadRequest, MaxQIDOOffset)
			default:
				q.Offset = n
			}
		case "fuzzymatching":
			q.Fuzzy = values[0] == "true"
		case "includefield":
			for _, v := range values {
				for _, f := range strings.Split(v, ",") {
					if f = strings.TrimSpace(f); f == "all" {
						q.All = true
						continue
					}
					t, err := parseTag(f)
					if err != nil {
						return nil, err
					}
					add(t, "")
				}
			}
		default:
			t, err := parseTag(name)
			if err != nil {
				return nil, err
			}
			add(t, values[0])
		}
	}
	// The default attributes of the level (PS3.18 Table 6.7.1-2) come back
	// whether asked for or not.
	for _, t := range query.DefaultKeys(level) {
		if !seen[t] {
			add(t, "")
		}
	}
	return q, nil
}

// qido answers a QIDO-RS search with DICOM JSON. Results of studies that
// belong to a person the user may not reach are left out (their existence
// is not revealed); every returned person's study is audited as read, and
// the search itself is audited.
func (s *Service) qido(level query.Level) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQIDO(r, level)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		p := auth.PrincipalFrom(r.Context())
		base := s.base(r)
		var out []map[string]any
		truncated := false
		err = postgres.InTenant(r.Context(), s.Pool, p.TenantID, func(tx pgx.Tx) error {
			type studyAccess struct {
				ok     bool
				person int64
				reason string
			}
			studies := map[int64]studyAccess{}
			allowed := func(m *query.Match) (studyAccess, error) {
				if m.StudyRef == 0 {
					return studyAccess{ok: true}, nil
				}
				if sa, ok := studies[m.StudyRef]; ok {
					return sa, nil
				}
				st, err := index.GetStudyByID(r.Context(), tx, m.StudyRef)
				if err != nil {
					return studyAccess{}, err
				}
				sa := studyAccess{ok: reconcile.CheckUnmatched(p) == nil, person: st.PersonID}
				if st.PersonID != 0 {
					d, err := s.Auth.Access(r.Context(), tx, p, st.PersonID)
					if err != nil {
						return studyAccess{}, err
					}
					sa.ok, sa.reason = d.Allowed, d.Reason
				}
				studies[m.StudyRef] = sa
				return sa, nil
			}
			// Pages count what the user may see: the index is read in
			// chunks, matches of studies the user may not reach are left
			// out, until the page (and one more, to know there are more) is
			// full, the index has no more, or qidoMaxScan rows beyond the
			// page's end were read.
			offset, limit := q.Offset, q.Limit
			var page []*query.Match
			scanned, skipped, more := 0, 0, false
		chunks:
			for sqlOffset := 0; ; sqlOffset += qidoChunk {
				q.Offset, q.Limit = sqlOffset, qidoChunk
				// Collect first: the matcher streams rows on this connection.
				var matches []*query.Match
				if err := q.Run(r.Context(), tx, func(m *query.Match) error {
					matches = append(matches, m)
					return nil
				}); err != nil {
					return err
				}
				scanned += len(matches)
				for _, m := range matches {
					sa, err := allowed(m)
					if err != nil {
						return err
					}
					switch {
					case !sa.ok:
					case skipped < offset:
						skipped++
					case len(page) < limit:
						page = append(page, m)
					default:
						more = true // one more than the page: there are more
						break chunks
					}
				}
				if len(matches) < qidoChunk {
					break
				}
				if scanned >= offset+limit+qidoMaxScan {
					more = true // not looked further
					break
				}
			}
			audited := map[int64]bool{}
			for _, m := range page {
				if sa := studies[m.StudyRef]; m.StudyRef != 0 && !audited[m.StudyRef] {
					audited[m.StudyRef] = true
					if err := audit.Record(r.Context(), tx, audit.Event{Action: audit.ActionRead, PersonID: sa.person,
						Object: fmt.Sprintf("dicom.study/%d", m.StudyRef), BreakGlassReason: sa.reason}); err != nil {
						return err
					}
				}
				out = append(out, matchJSON(m, q, base))
			}
			truncated = more
			return audit.Record(r.Context(), tx, audit.Event{Action: audit.ActionSearch, Object: fmt.Sprintf("dicom.qido/%d", len(out)),
				Detail: map[string]any{"level": level.String(), "results": len(out)}})
		})
		if err != nil {
			if errors.Is(err, query.ErrInvalid) {
				err = fmt.Errorf("%w: %w", errBadRequest, err)
			}
			s.fail(w, r, err)
			return
		}
		if truncated {
			w.Header().Set("Warning", `299 molar "There are more results: page with offset and limit."`)
		}
		w.Header().Set("Content-Type", "application/dicom+json")
		if len(out) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_ = json.NewEncoder(w).Encode(out)
	}
}

// matchJSON renders a match in the DICOM JSON model with its RetrieveURL.
func matchJSON(m *query.Match, q *query.Query, base string) map[string]any {
	obj := map[string]any{}
	for t, v := range m.Values {
		obj[fmt.Sprintf("%08X", uint32(t))] = jsonValue(t, v)
	}
	for t, items := range m.Sequences {
		var vs []any
		for _, it := range items {
			item := map[string]any{}
			for _, e := range it.Elements {
				item[fmt.Sprintf("%08X", uint32(e.Tag))] = jsonValue(e.Tag, it.Get(e.Tag))
			}
			vs = append(vs, item)
		}
		entry := map[string]any{"vr": "SQ"}
		if len(vs) > 0 {
			entry["Value"] = vs
		}
		obj[fmt.Sprintf("%08X", uint32(t))] = entry
	}
	// Requested attributes that are not index columns come from the stored
	// attributes (those of the match's first instance above the instance
	// level), as C-FIND's do; includefield=all of instances gives them all.
	raw := withoutBulk(m.RawAttrs())
	for _, k := range q.Keys {
		key := fmt.Sprintf("%08X", uint32(k.Tag))
		if _, done := obj[key]; done {
			continue
		}
		if lvl, ok := query.KeyLevel(k.Tag); ok && lvl > m.Level {
			continue // an attribute of a deeper level (a series' UID at study level)
		}
		switch {
		case k.Tag == query.TagInstanceAvailability:
			obj[key] = map[string]any{"vr": "CS", "Value": []string{"ONLINE"}}
		case raw[key] != nil:
			obj[key] = raw[key]
		}
	}
	if q.All && m.Level == query.Image {
		for key, v := range raw {
			if _, done := obj[key]; !done {
				obj[key] = v
			}
		}
	}
	study, series, inst := m.Values[tagStudyUID], m.Values[tagSeriesUID], m.Values[header.TagSOPInstanceUID]
	u := ""
	switch {
	case m.Level == query.Image && inst != "":
		u = fmt.Sprintf("%s/studies/%s/series/%s/instances/%s", base, study, series, inst)
	case m.Level == query.Series && series != "":
		u = fmt.Sprintf("%s/studies/%s/series/%s", base, study, series)
	case study != "":
		u = fmt.Sprintf("%s/studies/%s", base, study)
	}
	if u != "" {
		obj[fmt.Sprintf("%08X", uint32(tagRetrieve))] = map[string]any{"vr": "UR", "Value": []string{u}}
	}
	return obj
}

// jsonValue renders one value (DICOM string syntax) per its VR.
func jsonValue(t header.Tag, v string) map[string]any {
	vr := header.DictionaryVR(t)
	e := map[string]any{"vr": vr}
	if v == "" {
		return e
	}
	parts := strings.Split(v, `\`)
	vals := make([]any, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		switch vr {
		case "PN":
			vals = append(vals, map[string]string{"Alphabetic": p})
		case "IS", "SL", "SS", "UL", "US", "SV", "UV":
			if n, err := strconv.ParseInt(p, 10, 64); err == nil {
				vals = append(vals, n)
			} else {
				vals = append(vals, p)
			}
		case "DS", "FL", "FD":
			if f, err := strconv.ParseFloat(p, 64); err == nil {
				vals = append(vals, f)
			} else {
				vals = append(vals, p)
			}
		default:
			vals = append(vals, p)
		}
	}
	e["Value"] = vals
	return e
}

// withoutBulk drops the elements kept in the object only (their
// BulkDataURI is the ingest's marker): a search answer stays small, and
// WADO-RS metadata gives their URLs.
func withoutBulk(raw map[string]json.RawMessage) map[string]json.RawMessage {
	marked := false
	for _, v := range raw {
		if bytes.Contains(v, []byte(ingest.BulkDataMarker)) {
			marked = true
			break
		}
	}
	if !marked {
		return raw
	}
	b, err := json.Marshal(raw)
	if err == nil {
		b, err = ingest.ResolveBulk(b, func(string) string { return "" })
	}
	var out map[string]json.RawMessage
	if err != nil || json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}
