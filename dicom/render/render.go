package render

import (
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"sort"

	"github.com/disintegration/imaging"

	"github.com/molar-health/molar/dicom/pixel"
)

// Options choose the VOI and the viewport of a rendering.
type Options struct {
	// Window from the request; overrides the header.
	Window *Window
	// WindowIndex picks among the header's windows (or VOI LUTs).
	WindowIndex int
	// Auto forces the automatic window even when the header has one.
	Auto bool
	// Invert toggles inversion (on top of MONOCHROME1).
	Invert bool
	// Region of the frame to show, in pixels; empty = the whole frame.
	Region image.Rectangle
	// Width and Height: fit the region into this box keeping its aspect
	// ratio (0 = no limit on that side; both 0 = the region's own size).
	Width, Height int
}

// Format of an encoded rendering.
type Format string

const (
	JPEG Format = "image/jpeg"
	PNG  Format = "image/png"
)

// Render renders one frame to an 8-bit grey (*image.Gray) or colour
// (*image.NRGBA) picture and reports the window it used (nil for colour
// images and VOI LUTs).
func Render(f *pixel.Frame, p *Pipeline, o Options) (image.Image, *Window, error) {
	var img image.Image
	var used *Window
	switch {
	case f.Samples == 1 && p.Photometric == pixel.PaletteColor:
		m, err := renderPalette(f, p)
		if err != nil {
			return nil, nil, err
		}
		img = m
	case f.Samples == 1:
		lut, w, err := GreyLUT(f, p, o)
		if err != nil {
			return nil, nil, err
		}
		used = w
		g := image.NewGray(image.Rect(0, 0, f.Columns, f.Rows))
		apply(f, lut, g.Pix)
		img = g
	default:
		img = renderColour(f)
	}
	return viewport(img, o), used, nil
}

// greyLUT maps stored values to 8-bit output.
type greyLUT struct {
	min  int64
	data []uint8 // nil: compute with fn
	fn   func(v int64) uint8
}

// GreyLUT builds the stored value → 8-bit mapping of a grey frame, and the
// window used (nil when a VOI LUT applied).
func GreyLUT(f *pixel.Frame, p *Pipeline, o Options) (*greyLUT, *Window, error) {
	var (
		w     *Window
		voiFn func(x float64) float64
	)
	switch {
	case o.Window != nil && o.Window.Width > 0:
		ww := *o.Window
		ww.Source = "request"
		w = &ww
	case !o.Auto && len(p.VOILUTs) > 0 && len(p.Windows) == 0 || !o.Auto && len(p.VOILUTs) > 0 && o.WindowIndex >= len(p.Windows):
		l := p.VOILUTs[min(max(o.WindowIndex-len(p.Windows), 0), len(p.VOILUTs)-1)]
		scale := 1 / float64(int(1)<<l.Bits-1)
		voiFn = func(x float64) float64 { return l.lookup(x) * scale }
	case !o.Auto && len(p.Windows) > 0:
		ww := p.Windows[min(max(o.WindowIndex, 0), len(p.Windows)-1)]
		w = &ww
	default:
		ww := AutoWindow(f, p)
		w = &ww
	}
	if w != nil {
		fn := p.VOIFunction
		if w.Source == "auto" {
			fn = "LINEAR_EXACT"
		}
		win := *w
		voiFn = func(x float64) float64 { return voi(x, win, fn) }
	}
	invert := p.Invert != o.Invert
	out := func(v int64) uint8 {
		y := voiFn(p.Modality(v))
		if invert {
			y = 1 - y
		}
		return uint8(math.Round(max(0, min(1, y)) * 255))
	}
	lo, hi := valueRange(f)
	if hi-lo < 1<<20 {
		t := &greyLUT{min: lo, data: make([]uint8, hi-lo+1)}
		for v := lo; v <= hi; v++ {
			t.data[v-lo] = out(v)
		}
		return t, w, nil
	}
	return &greyLUT{fn: out}, w, nil
}

// valueRange is the range of values the frame's container and bits can hold.
func valueRange(f *pixel.Frame) (int64, int64) {
	bits := f.BitsStored
	if f.Signed {
		return -(int64(1) << (bits - 1)), int64(1)<<(bits-1) - 1
	}
	return 0, int64(1)<<bits - 1
}

func apply(f *pixel.Frame, t *greyLUT, dst []uint8) {
	switch {
	case t.data != nil && f.Pix16 != nil && !f.Signed:
		for i, v := range f.Pix16 {
			dst[i] = t.data[int64(v)-t.min]
		}
	case t.data != nil && f.Pix16 != nil:
		for i, v := range f.Pix16 {
			dst[i] = t.data[int64(int16(v))-t.min]
		}
	case t.data != nil:
		for i := range dst {
			dst[i] = t.data[f.Value(i)-t.min]
		}
	default:
		for i := range dst {
			dst[i] = t.fn(f.Value(i))
		}
	}
}

// AutoWindow computes a window from the histogram of the frame's modality
// values (see the package doc).
func AutoWindow(f *pixel.Frame, p *Pipeline) Window {
	lo, hi := f.Range()
	n := f.Rows * f.Columns
	counts := map[int64]int{}
	var hist []int
	dense := hi-lo < 1<<20
	if dense {
		hist = make([]int, hi-lo+1)
	}
	total := 0
	for i := range n {
		v := f.Value(i * f.Samples)
		if p.Padding != nil && v == *p.Padding {
			continue
		}
		if dense {
			hist[v-lo]++
		} else {
			counts[v]++
		}
		total++
	}
	if total == 0 {
		return Window{Center: p.Modality(lo), Width: 1, Source: "auto"}
	}
	type bin struct {
		v int64
		c int
	}
	var bins []bin
	if dense {
		for i, c := range hist {
			if c > 0 {
				bins = append(bins, bin{lo + int64(i), c})
			}
		}
	} else {
		for v, c := range counts {
			bins = append(bins, bin{v, c})
		}
		sort.Slice(bins, func(i, j int) bool { return bins[i].v < bins[j].v })
	}
	// Drop spikes at the ends: background, collimator, saturation.
	for len(bins) > 2 && bins[0].c*50 > total {
		total -= bins[0].c
		bins = bins[1:]
	}
	for len(bins) > 2 && bins[len(bins)-1].c*50 > total {
		total -= bins[len(bins)-1].c
		bins = bins[:len(bins)-1]
	}
	pct := func(q float64) int64 {
		target := int(math.Ceil(q * float64(total)))
		acc := 0
		for _, b := range bins {
			acc += b.c
			if acc >= target {
				return b.v
			}
		}
		return bins[len(bins)-1].v
	}
	a, b := p.Modality(pct(0.01)), p.Modality(pct(0.995))
	if a > b {
		a, b = b, a
	}
	if b-a < 1 {
		b = a + 1
	}
	return Window{Center: (a + b) / 2, Width: b - a, Source: "auto"}
}

func renderPalette(f *pixel.Frame, p *Pipeline) (*image.NRGBA, error) {
	if p.Palette[0] == nil || p.Palette[1] == nil || p.Palette[2] == nil {
		return nil, fmt.Errorf("%w: palette colour without palette", pixel.ErrMalformed)
	}
	m := image.NewNRGBA(image.Rect(0, 0, f.Columns, f.Rows))
	for i := range f.Rows * f.Columns {
		v := float64(f.Value(i))
		for c := range 3 {
			l := p.Palette[c]
			x := l.lookup(v)
			if l.Bits > 8 {
				x /= 257
			}
			m.Pix[4*i+c] = uint8(min(255, x))
		}
		m.Pix[4*i+3] = 255
	}
	return m, nil
}

func renderColour(f *pixel.Frame) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, f.Columns, f.Rows))
	shift := max(0, f.BitsStored-8)
	ybr := f.Photometric == pixel.YBRFull || f.Photometric == pixel.YBRFull422
	for i := range f.Rows * f.Columns {
		r, g, b := f.Value(3*i)>>shift, f.Value(3*i+1)>>shift, f.Value(3*i+2)>>shift
		if ybr { // PS3.3 C.7.6.3.1.2, full range
			y, cb, cr := float64(r), float64(g)-128, float64(b)-128
			r = int64(math.Round(y + 1.402*cr))
			g = int64(math.Round(y - 0.344136*cb - 0.714136*cr))
			b = int64(math.Round(y + 1.772*cb))
		}
		m.Pix[4*i] = uint8(max(0, min(255, r)))
		m.Pix[4*i+1] = uint8(max(0, min(255, g)))
		m.Pix[4*i+2] = uint8(max(0, min(255, b)))
		m.Pix[4*i+3] = 255
	}
	return m
}

// viewport crops to the region and fits the result into the box.
func viewport(img image.Image, o Options) image.Image {
	b := img.Bounds()
	if r := o.Region.Intersect(b); !o.Region.Empty() && !r.Empty() && r != b {
		img = crop(img, r)
		b = img.Bounds()
	}
	w, h := FitSize(b.Dx(), b.Dy(), o.Width, o.Height)
	if w == b.Dx() && h == b.Dy() {
		return img
	}
	filter := imaging.Linear
	if w < b.Dx()/2 {
		filter = imaging.Box // fast and alias-free for strong reduction
	}
	out := imaging.Resize(img, w, h, filter)
	if _, grey := img.(*image.Gray); grey {
		g := image.NewGray(out.Rect)
		for i := range len(g.Pix) {
			g.Pix[i] = out.Pix[4*i]
		}
		return g
	}
	return out
}

func crop(img image.Image, r image.Rectangle) image.Image {
	switch m := img.(type) {
	case *image.Gray:
		s := m.SubImage(r).(*image.Gray)
		out := image.NewGray(image.Rect(0, 0, r.Dx(), r.Dy()))
		for y := range r.Dy() {
			copy(out.Pix[y*out.Stride:y*out.Stride+r.Dx()], s.Pix[y*s.Stride:y*s.Stride+r.Dx()])
		}
		return out
	default:
		return imaging.Crop(img, r)
	}
}

// FitSize returns the size of a w×h picture fitted into a box (0 = no
// limit on that side), keeping the aspect ratio; at least 1×1.
func FitSize(w, h, boxW, boxH int) (int, int) {
	if boxW <= 0 && boxH <= 0 {
		return w, h
	}
	s := math.Inf(1)
	if boxW > 0 {
		s = float64(boxW) / float64(w)
	}
	if boxH > 0 {
		s = math.Min(s, float64(boxH)/float64(h))
	}
	return max(1, int(math.Round(float64(w)*s))), max(1, int(math.Round(float64(h)*s)))
}

// Encode writes an 8-bit picture as JPEG (quality 1–100, 0 = 90) or PNG.
func Encode(w io.Writer, img image.Image, f Format, quality int) error {
	switch f {
	case PNG:
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		if err := enc.Encode(w, img); err != nil {
			return fmt.Errorf("render: png: %w", err)
		}
		return nil
	case JPEG, "":
		if quality <= 0 || quality > 100 {
			quality = 90
		}
		if err := jpeg.Encode(w, img, &jpeg.Options{Quality: quality}); err != nil {
			return fmt.Errorf("render: jpeg: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w: format %q", ErrUnsupported, f)
}

// Image16 returns a grey frame as a 16-bit picture of its stored values
// (signed values offset by 2^(BitsStored-1) so that they fit, reported as
// offset), or a colour frame as 16-bit RGB. A browser reduces such a PNG to
// 8 bits on a canvas; viewers that window themselves want raw frames
// (pixel.Frame.Bytes with FrameMeta).
func Image16(f *pixel.Frame) (img image.Image, offset int64) {
	r := image.Rect(0, 0, f.Columns, f.Rows)
	if f.Samples == 1 {
		g := image.NewGray16(r)
		if f.Signed {
			offset = int64(1) << (f.BitsStored - 1)
		}
		for i := range f.Rows * f.Columns {
			v := uint16(max(0, min(65535, f.Value(i)+offset)))
			g.Pix[2*i], g.Pix[2*i+1] = uint8(v>>8), uint8(v)
		}
		return g, offset
	}
	m := image.NewRGBA64(r)
	for i := range f.Rows * f.Columns {
		c := color.RGBA64{A: 0xFFFF}
		vals := [3]uint16{}
		for s := range 3 {
			vals[s] = uint16(max(0, min(65535, f.Value(3*i+s))))
		}
		c.R, c.G, c.B = vals[0], vals[1], vals[2]
		m.SetRGBA64(i%f.Columns, i/f.Columns, c)
	}
	return m, 0
}

// FrameMeta is what a viewer needs to window raw frames itself.
type FrameMeta struct {
	Rows        int      `json:"rows"`
	Columns     int      `json:"columns"`
	Samples     int      `json:"samplesPerPixel"`
	BitsStored  int      `json:"bitsStored"`
	Container   int      `json:"bitsAllocated"`
	Signed      bool     `json:"signed"`
	Photometric string   `json:"photometric"`
	Slope       float64  `json:"rescaleSlope"`
	Intercept   float64  `json:"rescaleIntercept"`
	Invert      bool     `json:"invert"`
	Min         int64    `json:"min"`
	Max         int64    `json:"max"`
	Windows     []Window `json:"windows,omitempty"`
	Auto        *Window  `json:"autoWindow,omitempty"`
	VOIFunction string   `json:"voiLutFunction"`
}

// Meta describes a frame for a viewer that applies its own lookup table
// (the raw frame is pixel.Frame.Bytes: little endian, Container bits).
func Meta(f *pixel.Frame, p *Pipeline) FrameMeta {
	m := FrameMeta{Rows: f.Rows, Columns: f.Columns, Samples: f.Samples, BitsStored: f.BitsStored, Container: f.Container,
		Signed: f.Signed, Photometric: f.Photometric, Slope: p.Slope, Intercept: p.Intercept, Invert: p.Invert,
		Windows: p.Windows, VOIFunction: p.VOIFunction}
	m.Min, m.Max = f.Range()
	if f.Samples == 1 && p.Photometric != pixel.PaletteColor {
		w := AutoWindow(f, p)
		m.Auto = &w
	}
	return m
}
