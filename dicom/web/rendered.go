package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/pixel"
	"github.com/molar-health/molar/dicom/render"
	"github.com/molar-health/molar/dicom/thumb"
	"github.com/molar-health/molar/storage"
)

// renderRoutes adds /rendered and /thumbnail at every level (PS3.18 8.3.5,
// 8.3.6 and the thumbnail resources) and /frames/{n}/meta for viewers that
// window raw frames themselves.
func (s *Service) renderRoutes(r chi.Router) {
	inst := "/studies/{study}/series/{series}/instances/{instance}"
	r.Get(inst+"/rendered", s.handleRendered)
	r.Get(inst+"/frames/{frames}/rendered", s.handleRendered)
	r.Get(inst+"/frames/{frames}/meta", s.handleFrameMeta)
	r.Get(inst+"/thumbnail", s.handleThumbnail)
	r.Get(inst+"/frames/{frames}/thumbnail", s.handleThumbnail)
	r.Get("/studies/{study}/series/{series}/thumbnail", s.handleThumbnail)
	r.Get("/studies/{study}/thumbnail", s.handleThumbnail)
}

// maxViewport caps a rendered image's side (memory per request).
const maxViewport = 4096

// renderFormat picks JPEG or PNG from Accept (default JPEG).
func renderFormat(r *http.Request) (render.Format, error) {
	for _, a := range parseAccept(r.Header.Get("Accept")) {
		switch a.mediaType {
		case "image/jpeg", "image/*", "*/*":
			return render.JPEG, nil
		case "image/png":
			return render.PNG, nil
		}
	}
	return "", fmt.Errorf("%w: rendered images are image/jpeg or image/png", ErrNotAcceptable)
}

// renderParams reads window=center,width[,function], viewport=w,h[,sx,sy,sw,sh],
// quality=1..100 and the non-standard auto=true and invert=true.
func renderParams(r *http.Request) (render.Options, int, error) {
	q := r.URL.Query()
	var o render.Options
	quality := 90
	if w := q.Get("window"); w != "" {
		f := strings.Split(w, ",")
		if len(f) < 2 {
			return o, 0, fmt.Errorf("%w: window=center,width", errBadRequest)
		}
		c, err1 := strconv.ParseFloat(f[0], 64)
		wd, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil || wd < 1 {
			return o, 0, fmt.Errorf("%w: window=center,width with width ≥ 1", errBadRequest)
		}
		o.Window = &render.Window{Center: c, Width: wd, Source: "request"}
	}
	if v := q.Get("viewport"); v != "" {
		f := strings.Split(v, ",")
		n := make([]int, len(f))
		for i, x := range f {
			var err error
			if n[i], err = strconv.Atoi(strings.TrimSpace(x)); err != nil || n[i] < 0 || n[i] > maxViewport {
				return o, 0, fmt.Errorf("%w: viewport=width,height[,sx,sy,sw,sh]", errBadRequest)
			}
		}
		if len(n) >= 2 {
			o.Width, o.Height = n[0], n[1]
		}
		if len(n) == 6 {
			o.Region = image.Rect(n[2], n[3], n[2]+n[4], n[3]+n[5])
		}
	}
	if v := q.Get("quality"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return o, 0, fmt.Errorf("%w: quality=1..100", errBadRequest)
		}
		quality = n
	}
	o.Auto = q.Get("auto") == "true"
	o.Invert = q.Get("invert") == "true"
	return o, quality, nil
}

// openInstance opens an instance for rendering.
func (s *Service) openInstance(ctx context.Context, in index.Instance) (*render.Instance, error) {
	ra := storage.NewReaderAt(ctx, s.Store, in.ObjectKey, in.Size, 0, 0)
	return render.Open(ra, in.Size, pixel.Options{})
}

func frameIndex(r *http.Request) (int, error) {
	f := chi.URLParam(r, "frames")
	if f == "" && r.URL.Path == "/dicomweb/wado" {
		f = r.URL.Query().Get("frameNumber") // WADO-URI
	}
	if f == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(f)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: one frame number", errBadRequest)
	}
	return n - 1, nil
}

// handleRendered: an instance or frame rendered to JPEG/PNG with the
// header's window, the request's, or the automatic one.
func (s *Service) handleRendered(w http.ResponseWriter, r *http.Request) {
	format, err := renderFormat(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o, quality, err := renderParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	fi, err := frameIndex(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sc, err := s.resolve(r.Context(), r, audit.ActionRead, "rendered")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ri, err := s.openInstance(r.Context(), sc.instances[0])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if fi >= ri.Frames.Len() {
		s.fail(w, r, errNoMatch)
		return
	}
	img, used, err := ri.Render(r.Context(), fi, o)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := render.Encode(&buf, img, format, quality); err != nil {
		s.fail(w, r, err)
		return
	}
	if used != nil {
		w.Header().Set("X-Molar-Window", fmt.Sprintf("%g,%g;%s", used.Center, used.Width, used.Source))
	}
	w.Header().Set("Content-Type", string(format))
	_, _ = w.Write(buf.Bytes())
}

// handleFrameMeta: what a viewer needs to window a raw frame itself
// (rescale, the header's windows, the automatic window, value range).
func (s *Service) handleFrameMeta(w http.ResponseWriter, r *http.Request) {
	fi, err := frameIndex(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sc, err := s.resolve(r.Context(), r, audit.ActionRead, "frames")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ri, err := s.openInstance(r.Context(), sc.instances[0])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if fi >= ri.Frames.Len() {
		s.fail(w, r, errNoMatch)
		return
	}
	f, err := ri.Frames.Frame(r.Context(), fi)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(render.Meta(f, ri.Pipeline))
}

// thumbSize picks the stored size for a viewport (default the small one).
func thumbSize(r *http.Request) (int, int, int) {
	vw, vh := 128, 128
	if v := r.URL.Query().Get("viewport"); v != "" {
		f := strings.Split(v, ",")
		if len(f) >= 2 {
			a, e1 := strconv.Atoi(f[0])
			b, e2 := strconv.Atoi(f[1])
			if e1 == nil && e2 == nil && a > 0 && b > 0 && a <= 2048 && b <= 2048 {
				vw, vh = a, b
			}
		}
	}
	size := thumb.DefaultSizes[0]
	for _, sz := range thumb.DefaultSizes {
		if sz >= max(vw, vh) {
			size = sz
			break
		}
		size = sz
	}
	return size, vw, vh
}

// handleThumbnail: the stored thumbnail of an instance (for a study or
// series: of its first instance with pixels). While the background job has
// not made it, one is rendered on the fly; when it could not be made, a
// grey placeholder comes back with the reason in X-Molar-Thumbnail — never
// an error page where an image is expected.
func (s *Service) handleThumbnail(w http.ResponseWriter, r *http.Request) {
	sc, err := s.resolve(r.Context(), r, audit.ActionRead, "thumbnail")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in index.Instance
	found := false
	for _, x := range sc.instances {
		if x.Rows > 0 {
			in, found = x, true
			break
		}
	}
	size, vw, vh := thumbSize(r)
	if !found {
		s.placeholder(w, vw, vh, "no image in this study")
		return
	}
	// Stored, or (job not run yet, or the thumbnail lost in a crash)
	// rendered now and stored for the next request.
	rc, made, err := thumb.Ensure(r.Context(), s.Store, in.ObjectKey, size, pixel.Options{})
	var failed *thumb.FailedError
	switch {
	case errors.As(err, &failed):
		s.placeholder(w, vw, vh, failed.Reason)
		return
	case err != nil:
		s.placeholder(w, vw, vh, err.Error())
		return
	}
	defer rc.Close()
	source := "ready"
	if made {
		source = "rendered"
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("X-Molar-Thumbnail", source)
	_, _ = io.Copy(w, rc)
}

// placeholder writes a grey PNG and the reason.
func (s *Service) placeholder(w http.ResponseWriter, vw, vh int, reason string) {
	img := image.NewGray(image.Rect(0, 0, min(vw, 512), min(vh, 512)))
	for i := range img.Pix {
		img.Pix[i] = 0x40
	}
	for x := 0; x < img.Rect.Dx(); x++ { // a diagonal cross marks "no image"
		y := x * img.Rect.Dy() / max(img.Rect.Dx(), 1)
		img.Set(x, y, color.Gray{Y: 0x90})
		img.Set(x, img.Rect.Dy()-1-y, color.Gray{Y: 0x90})
	}
	var buf bytes.Buffer
	_ = render.Encode(&buf, img, render.PNG, 0)
	if len(reason) > 200 {
		reason = reason[:200]
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("X-Molar-Thumbnail", "failed; reason="+strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, reason))
	_, _ = w.Write(buf.Bytes())
}
