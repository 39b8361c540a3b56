package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/pixel"
	"github.com/molar-health/molar/dicom/query"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

// acceptable is one media range of an Accept header.
type acceptable struct {
	mediaType string            // "multipart/related", "application/dicom", "*/*" …
	params    map[string]string // type, transfer-syntax …
}

// parseAccept reads an Accept header: its media ranges in order of
// preference (q, highest first; equal q in the client's order), without
// those the client refuses (q=0). No header accepts anything.
func parseAccept(h string) []acceptable {
	if strings.TrimSpace(h) == "" {
		return []acceptable{{mediaType: "*/*", params: map[string]string{}}}
	}
	type ranked struct {
		a acceptable
		q float64
	}
	var rs []ranked
	for _, part := range splitAccept(h) {
		mt, params, ok := parseMediaType(part)
		if !ok {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
			delete(params, "q")
		}
		if q == 0 {
			continue
		}
		rs = append(rs, ranked{acceptable{mediaType: mt, params: params}, q})
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].q > rs[j].q })
	out := make([]acceptable, len(rs))
	for i, r := range rs {
		out[i] = r.a
	}
	return out
}

// parseMediaType reads "type/subtype; name=value; …" as PS3.18 6.1.1 does:
// a parameter value is a token or a quoted string, and clients such as
// OHIF send type=application/dicom unquoted (a '/' Go's MIME parser
// refuses in a token), so the lenient reading takes over when the strict
// one fails.
func parseMediaType(s string) (string, map[string]string, bool) {
	s = strings.TrimSpace(s)
	if mt, params, err := mime.ParseMediaType(s); err == nil {
		return mt, params, strings.Contains(mt, "/")
	}
	parts := splitOutsideQuotes(s, ';')
	mt := strings.ToLower(strings.TrimSpace(parts[0]))
	if !strings.Contains(mt, "/") || strings.ContainsAny(mt, " \t\"") {
		return "", nil, false
	}
	params := map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
		}
		params[k] = v
	}
	return mt, params, true
}

func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// splitAccept splits on commas outside quotes (type="multipart/related; …").
func splitAccept(h string) []string { return splitOutsideQuotes(h, ',') }

// partChoice is one acceptable way to send multipart/related parts: the
// part type asked for ("" = the resource's own) and the transfer syntax
// ("" = the default, "*" = as stored).
type partChoice struct{ typ, ts string }

// wantsPart lists, in the client's order of preference, the acceptable
// ways to send parts of partType (for frames also image/* bitstreams);
// none: not acceptable.
func wantsPart(r *http.Request, partType string) []partChoice {
	var out []partChoice
	for _, a := range parseAccept(r.Header.Get("Accept")) {
		ts := a.params["transfer-syntax"]
		switch a.mediaType {
		case "*/*", "multipart/*":
			out = append(out, partChoice{"", ts})
		case "multipart/related":
			switch t := strings.ToLower(a.params["type"]); {
			case t == "" || t == "*/*" || t == partType:
				out = append(out, partChoice{"", ts})
			case partType != "application/dicom" && strings.HasPrefix(t, "image/"):
				out = append(out, partChoice{t, ts})
			}
		case partType:
			out = append(out, partChoice{"", ts})
		}
	}
	return out
}

func boundary() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "molar-" + hex.EncodeToString(b)
}

// handleRetrieve: WADO-RS study, series or instance as multipart/related
// application/dicom parts, each a Part-10 file: as stored with
// transfer-syntax=* (or the stored one), else converted as retrievePlan
// says (Explicit VR Little Endian by default).
func (s *Service) handleRetrieve(w http.ResponseWriter, r *http.Request) {
	choices := wantsPart(r, "application/dicom")
	if len(choices) == 0 {
		s.fail(w, r, fmt.Errorf("%w: this resource is multipart/related; type=\"application/dicom\"", ErrNotAcceptable))
		return
	}
	sc, err := s.resolve(r.Context(), r, audit.ActionRead, "retrieve")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	plan, ok := retrievePlan(choices, sc.instances)
	if !ok {
		s.fail(w, r, fmt.Errorf("%w: instances are served as stored (transfer-syntax=*) or converted to %s, %s or (uncompressed ones) %s",
			ErrNotAcceptable, uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian))
		return
	}
	b := boundary()
	var mw *multipart.Writer
	for i, in := range sc.instances {
		rc, ts, size, err := s.openPart10(r.Context(), in, plan[i])
		if err != nil {
			switch {
			case errors.Is(err, context.Canceled):
				return
			case mw == nil && errors.Is(err, query.ErrCannotTranscode) && len(sc.instances) == 1:
				s.fail(w, r, fmt.Errorf("%w: %w", ErrNotAcceptable, err))
				return
			case errors.Is(err, query.ErrCannotTranscode):
				// Asked for a syntax this one instance cannot be decoded to
				// (the others are sent): say so in the log, go on.
				s.Log.WarnContext(r.Context(), "dicomweb: instance left out of retrieve", "instance_id", in.ID, "err", err)
				continue
			case mw == nil:
				s.fail(w, r, err)
				return
			}
			s.Log.ErrorContext(r.Context(), "dicomweb: retrieve", "instance_id", in.ID, "err", err)
			return // headers are sent: the body ends without its closing delimiter, so the client sees it cut
		}
		if mw == nil {
			w.Header().Set("Content-Type", fmt.Sprintf(`multipart/related; type="application/dicom"; boundary=%s`, b))
			mw = multipart.NewWriter(w)
			_ = mw.SetBoundary(b)
		}
		hdr := textproto.MIMEHeader{"Content-Type": {fmt.Sprintf("application/dicom; transfer-syntax=%s", ts)}}
		if size >= 0 {
			hdr.Set("Content-Length", strconv.FormatInt(size, 10))
		}
		part, err := mw.CreatePart(hdr)
		if err == nil {
			_, err = io.Copy(part, rc)
		}
		rc.Close()
		if err != nil {
			if !errors.Is(err, context.Canceled) && r.Context().Err() == nil {
				s.Log.ErrorContext(r.Context(), "dicomweb: retrieve", "instance_id", in.ID, "err", err)
			}
			return // the client went away, or a conversion failed midway: the body ends without its closing boundary
		}
	}
	if mw == nil {
		s.fail(w, r, fmt.Errorf("%w: no instance can be converted to the transfer syntax asked for", ErrNotAcceptable))
		return
	}
	_ = mw.Close()
}

// handleMetadata: WADO-RS metadata as a DICOM JSON array, pixel data by
// BulkDataURI.
func (s *Service) handleMetadata(w http.ResponseWriter, r *http.Request) {
	sc, err := s.resolve(r.Context(), r, audit.ActionRead, "metadata")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	base := s.base(r)
	var buf bytes.Buffer
	buf.WriteByte('[')
	err = postgres.InTenant(r.Context(), s.Pool, sc.study.TenantID, func(tx pgx.Tx) error {
		for i, in := range sc.instances {
			attrs, err := attrs(r.Context(), tx, in, base)
			if err != nil {
				return err
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(attrs)
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	buf.WriteByte(']')
	w.Header().Set("Content-Type", "application/dicom+json")
	_, _ = w.Write(buf.Bytes())
}

// attrs returns an instance's JSON attributes with the pixel data (and the
// meta's transfer syntax) added.
func attrs(ctx context.Context, q index.Querier, in index.Instance, base string) ([]byte, error) {
	raw, err := index.InstanceAttrs(ctx, q, in.SOPInstanceUID)
	if err != nil {
		return nil, err
	}
	instURL := fmt.Sprintf("%s/studies/%s/series/%s/instances/%s", base, in.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID)
	if raw, err = ingest.ResolveBulk(raw, func(path string) string { return instURL + "/bulkdata/" + path }); err != nil {
		return nil, fmt.Errorf("dicomweb: attributes of instance %d: %w", in.ID, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("dicomweb: attributes of instance %d: %w", in.ID, err)
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	ts, _ := json.Marshal(map[string]any{"vr": "UI", "Value": []string{in.TransferSyntax}})
	m["00020010"] = ts
	if in.Rows > 0 {
		vr := "OW"
		if in.TransferSyntax != uid.ImplicitVRLittleEndian && in.TransferSyntax != uid.ExplicitVRLittleEndian && in.TransferSyntax != uid.ExplicitVRBigEndian && in.TransferSyntax != uid.DeflatedExplicitVRLittleEndian {
			vr = "OB"
		}
		pd, _ := json.Marshal(map[string]any{"vr": vr, "BulkDataURI": instURL + "/bulkdata/7FE00010"})
		m["7FE00010"] = pd
	}
	// Stable key order (json.Marshal sorts map keys).
	return json.Marshal(m)
}

// openFrames reads an instance's header from the object store and prepares
// its frames.
func (s *Service) openFrames(ctx context.Context, in index.Instance) (*pixel.Frames, error) {
	ra := storage.NewReaderAt(ctx, s.Store, in.ObjectKey, in.Size, 0, 0)
	h, err := header.Read(io.NewSectionReader(ra, 0, in.Size), header.Options{})
	if err != nil {
		return nil, fmt.Errorf("dicomweb: header of instance %d: %w", in.ID, err)
	}
	if h.PixelData == nil {
		return nil, fmt.Errorf("%w: instance has no pixel data", errNoMatch)
	}
	return pixel.Open(ra, in.Size, h, pixel.Options{})
}

// parseFrames parses "1,3,5" (1-based) into 0-based indexes.
func parseFrames(s string, n int) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || i < 1 {
			return nil, fmt.Errorf("%w: frame numbers are 1, 2, …", errBadRequest)
		}
		if i > n {
			return nil, fmt.Errorf("%w: frame %d of %d", errNoMatch, i, n)
		}
		out = append(out, i-1)
	}
	return out, nil
}

// frameMediaType is the media type of a stored (compressed) frame.
func frameMediaType(ts string) string {
	switch ts {
	case uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1:
		return "image/jpeg"
	case uid.JPEGLSLossless, uid.JPEGLSNearLossless:
		return "image/jls"
	case uid.JPEG2000Lossless, uid.JPEG2000:
		return "image/jp2"
	case uid.RLELossless:
		return "image/dicom-rle"
	}
	return "application/octet-stream"
}

// frameChoice picks the first acceptable way to send frames of an
// instance stored in ts: as stored (the bitstream, its own image/* type,
// or native samples in their stored syntax) or decoded to Explicit VR
// Little Endian. A big-endian native instance is decoded unless the
// client asks for it as stored.
func frameChoice(choices []partChoice, ts string, encapsulated bool) (asStored, ok bool) {
	for _, c := range choices {
		if c.typ != "" { // image/jpeg …: only the stored bitstream of that type
			// Without transfer-syntax the type's default one is meant
			// (PS3.18 8.7.3: image/jpeg is JPEG Baseline, which browsers
			// decode; not the lossless or 12-bit JPEG processes).
			if encapsulated && c.typ == frameMediaType(ts) && (c.ts == "*" || c.ts == ts || (c.ts == "" && ts == defaultSyntaxOf(c.typ))) {
				return true, true
			}
			continue
		}
		switch {
		case c.ts == "*" || c.ts == ts:
			return true, true
		case c.ts == "" || c.ts == uid.ExplicitVRLittleEndian:
			return !encapsulated && ts != uid.ExplicitVRBigEndian, true
		}
	}
	return false, false
}

// defaultSyntaxOf is the transfer syntax a bulk data media type means
// without a transfer-syntax parameter (PS3.18 Table 8.7.3-2).
func defaultSyntaxOf(mediaType string) string {
	switch mediaType {
	case "image/jpeg":
		return uid.JPEGBaseline8Bit
	case "image/jls":
		return uid.JPEGLSLossless
	case "image/jp2":
		return uid.JPEG2000Lossless
	case "image/dicom-rle":
		return uid.RLELossless
	}
	return ""
}

// handleFrames: WADO-RS frames. With transfer-syntax=* (or the stored one)
// frames go as stored; otherwise they are decoded to Explicit VR Little
// Endian native samples (what a browser viewer applies its own window to).
func (s *Service) handleFrames(w http.ResponseWriter, r *http.Request) {
	choices := wantsPart(r, "application/octet-stream")
	if len(choices) == 0 {
		s.fail(w, r, fmt.Errorf("%w: frames are multipart/related; type=\"application/octet-stream\"", ErrNotAcceptable))
		return
	}
	sc, err := s.resolve(r.Context(), r, audit.ActionRead, "frames")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	in := sc.instances[0]
	frames, err := s.openFrames(r.Context(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	idx, err := parseFrames(chi.URLParam(r, "frames"), frames.Len())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	asStored, ok := frameChoice(choices, in.TransferSyntax, frames.Encapsulated())
	if !ok {
		s.fail(w, r, fmt.Errorf("%w: frames are available as stored (transfer-syntax=*, or %s) or as %s",
			ErrNotAcceptable, frameMediaType(in.TransferSyntax), uid.ExplicitVRLittleEndian))
		return
	}
	parts := make([][]byte, len(idx))
	ctype := "application/octet-stream; transfer-syntax=" + uid.ExplicitVRLittleEndian
	switch {
	case asStored && frames.Encapsulated():
		ctype = frameMediaType(in.TransferSyntax) + "; transfer-syntax=" + in.TransferSyntax
	case asStored && in.TransferSyntax == uid.ExplicitVRBigEndian: // asked for as stored: say so
		ctype = "application/octet-stream; transfer-syntax=" + in.TransferSyntax
	}
	for k, i := range idx {
		if asStored {
			parts[k], err = frames.Raw(i)
		} else {
			var f *pixel.Frame
			if f, err = frames.Frame(r.Context(), i); err == nil {
				parts[k] = f.Bytes()
			}
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	i := 0
	writeParts(w, ctype, func() ([]byte, bool) {
		if i >= len(parts) {
			return nil, false
		}
		i++
		return parts[i-1], true
	})
}

// writeParts answers with a multipart/related body of parts of one content
// type; next yields the parts until it returns false.
func writeParts(w http.ResponseWriter, ctype string, next func() ([]byte, bool)) {
	b := boundary()
	mt := strings.SplitN(ctype, ";", 2)[0]
	w.Header().Set("Content-Type", fmt.Sprintf(`multipart/related; type="%s"; boundary=%s`, mt, b))
	mw := multipart.NewWriter(w)
	_ = mw.SetBoundary(b)
	for {
		p, ok := next()
		if !ok {
			break
		}
		part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ctype}, "Content-Length": {strconv.Itoa(len(p))}})
		if err != nil {
			return
		}
		if _, err := part.Write(p); err != nil {
			return // the client went away
		}
	}
	_ = mw.Close()
}

// handleBulk: a bulk data value named by the BulkDataURI of the metadata:
// the pixel data (7FE00010, every frame as stored), or another element
// kept in the object only, by its tag path ("00420011",
// "00283010/0/00283006").
func (s *Service) handleBulk(w http.ResponseWriter, r *http.Request) {
	path, err := parseBulkPath(chi.URLParam(r, "*"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sc, err := s.resolve(r.Context(), r, audit.ActionRead, "bulkdata")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	in := sc.instances[0]
	if len(path) != 1 || path[0].tag != pixelDataTag {
		s.bulkElement(w, r, in, path)
		return
	}
	frames, err := s.openFrames(r.Context(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctype := "application/octet-stream; transfer-syntax=" + in.TransferSyntax
	if frames.Encapsulated() {
		ctype = frameMediaType(in.TransferSyntax) + "; transfer-syntax=" + in.TransferSyntax
	}
	i := 0
	writeParts(w, ctype, func() ([]byte, bool) {
		if i >= frames.Len() {
			return nil, false
		}
		data, err := frames.Raw(i)
		i++
		if err != nil {
			s.Log.ErrorContext(r.Context(), "dicomweb: bulk data frame", "instance_id", in.ID, "err", err)
			return nil, false
		}
		return data, true
	})
}

// handleWADOURI: WADO-URI (PS3.18 chapter 9) for application/dicom; rendered
// images (image/jpeg) are answered by the rendering extension when present.
func (s *Service) handleWADOURI(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("requestType") != "WADO" || q.Get("studyUID") == "" || q.Get("seriesUID") == "" || q.Get("objectUID") == "" {
		s.fail(w, r, fmt.Errorf("%w: requestType=WADO, studyUID, seriesUID and objectUID are required", errBadRequest))
		return
	}
	ct := q.Get("contentType")
	if ct == "" {
		// PS3.18 9.2: image/jpeg for single-frame images; the DICOM object
		// otherwise (multi-frame, or no image at all). The lookup only picks
		// the form; the handler below checks access and audits the read.
		ct = "application/dicom"
		var in index.Instance
		err := postgres.InTenant(r.Context(), s.Pool, auth.PrincipalFrom(r.Context()).TenantID, func(tx pgx.Tx) error {
			var err error
			in, err = index.GetInstance(r.Context(), tx, q.Get("objectUID"))
			return err
		})
		if err == nil && in.Rows > 0 && in.Frames <= 1 { // no NumberOfFrames: one frame
			ct = "image/jpeg"
		}
	}
	switch ct {
	case "application/dicom":
	case "image/jpeg", "image/png":
		// Rendered, with WADO-URI's windowCenter/windowWidth, rows/columns.
		r2 := r.Clone(r.Context())
		r2.Header.Set("Accept", ct)
		q2 := r2.URL.Query()
		if c, wd := q.Get("windowCenter"), q.Get("windowWidth"); c != "" && wd != "" {
			q2.Set("window", c+","+wd)
		}
		if rows, cols := q.Get("rows"), q.Get("columns"); rows != "" || cols != "" {
			q2.Set("viewport", strings.TrimSpace(orZero(cols)+","+orZero(rows)))
		}
		r2.URL.RawQuery = q2.Encode()
		s.handleRendered(w, r2)
		return
	default:
		s.fail(w, r, fmt.Errorf("%w: contentType %s (application/dicom, image/jpeg or image/png)", ErrNotAcceptable, ct))
		return
	}
	sc, err := s.resolve(r.Context(), r, audit.ActionRead, "wado")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	in := sc.instances[0]
	rc, ts, size, err := s.openPart10(r.Context(), in, uriDelivery(in, q.Get("transferSyntax")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	// WADO-URI names the transfer syntax only in the file meta (PS3.18 6.3).
	w.Header().Set("Content-Type", "application/dicom")
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.dcm"`, in.SOPInstanceUID))
	if _, err := io.Copy(w, rc); err != nil && r.Context().Err() == nil {
		s.Log.ErrorContext(r.Context(), "dicomweb: wado-uri", "instance_id", in.ID, "transfer_syntax", ts, "err", err)
	}
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}
