// Package render turns decoded frames (dicom/pixel) into pictures: the
// grey-scale pipeline of PS3.3 C.11 — modality LUT (rescale slope and
// intercept, or the Modality LUT Sequence), VOI (a window from the header,
// a VOI LUT Sequence, a window from the request, or an automatic window
// from the histogram), MONOCHROME1 and Presentation LUT Shape inversion —
// palette colour and YBR to RGB, then a viewport (region and size) and
// 8-bit JPEG or PNG output. For viewers that window themselves it gives the
// frame as a 16-bit PNG or raw little endian samples with the metadata
// (FrameMeta) they need.
//
// Automatic window: dental panoramics and many intraoral sensors carry no
// usable window (or one for another display), and render far too bright
// with the full bit range. AutoWindow builds the histogram of the modality
// values, drops the pixel padding value and the spikes at the very lowest
// and highest values (collimator borders, air, saturated metal — a bin
// holding more than 2 % of the pixels at either end), and windows from the
// 1st to the 99.5th percentile of what remains. It is the default when
// the header has no window and no VOI LUT.
package render

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/pixel"
)

// ErrUnsupported: an encoding of the presentation attributes this package
// does not handle (segmented palettes …).
var ErrUnsupported = errors.New("render: unsupported")

// Tags of the presentation modules.
const (
	TagPixelPaddingValue      header.Tag = 0x00280120
	TagWindowCenter           header.Tag = 0x00281050
	TagWindowWidth            header.Tag = 0x00281051
	TagRescaleIntercept       header.Tag = 0x00281052
	TagRescaleSlope           header.Tag = 0x00281053
	TagWindowExplanation      header.Tag = 0x00281055
	TagVOILUTFunction         header.Tag = 0x00281056
	TagRedPaletteDescriptor   header.Tag = 0x00281101
	TagGreenPaletteDescriptor header.Tag = 0x00281102
	TagBluePaletteDescriptor  header.Tag = 0x00281103
	TagRedPaletteData         header.Tag = 0x00281201
	TagGreenPaletteData       header.Tag = 0x00281202
	TagBluePaletteData        header.Tag = 0x00281203
	TagSegmentedRedPalette    header.Tag = 0x00281221
	TagModalityLUTSequence    header.Tag = 0x00283000
	TagLUTDescriptor          header.Tag = 0x00283002
	TagLUTData                header.Tag = 0x00283006
	TagVOILUTSequence         header.Tag = 0x00283010
	TagPresentationLUTShape   header.Tag = 0x20500020
)

// Window is a VOI window: centre and width in modality values.
type Window struct {
	Center      float64 `json:"center"`
	Width       float64 `json:"width"`
	Explanation string  `json:"explanation,omitempty"`
	// Source: "header", "request", "auto" or "voi-lut".
	Source string `json:"source,omitempty"`
}

// LUT is a lookup table (PS3.3 C.11.1): inputs First … First+len(Data)-1
// map to Data; inputs outside clamp to the ends. Bits is the output depth.
type LUT struct {
	First int64
	Bits  int
	Data  []uint16
}

func (l *LUT) lookup(v float64) float64 {
	i := int64(math.Floor(v)) - l.First
	i = max(0, min(i, int64(len(l.Data)-1)))
	return float64(l.Data[i])
}

// Pipeline holds the presentation attributes of an image.
type Pipeline struct {
	Photometric string
	BitsStored  int
	Signed      bool
	// Modality LUT: a LUT if present, else rescale slope and intercept.
	Slope, Intercept float64
	ModalityLUT      *LUT
	// VOI: windows and VOI LUTs from the header, and the window function.
	Windows     []Window
	VOILUTs     []*LUT
	VOIFunction string // LINEAR (default), LINEAR_EXACT or SIGMOID
	// Invert after VOI: MONOCHROME1, or Presentation LUT Shape INVERSE.
	Invert bool
	// Padding is the Pixel Padding Value, left out of the auto window.
	Padding *int64
	// Palette for PALETTE COLOR (red, green, blue).
	Palette [3]*LUT
}

// FromDataset reads the presentation attributes of a data set.
func FromDataset(ds *header.Dataset) (*Pipeline, error) {
	p := &Pipeline{Slope: 1, VOIFunction: "LINEAR"}
	p.Photometric = strings.ToUpper(strings.TrimSpace(ds.Get(pixel.TagPhotometricInterpretation)))
	if v, ok := ds.Int(pixel.TagBitsStored); ok {
		p.BitsStored = int(v)
	}
	if v, ok := ds.Int(pixel.TagPixelRepresentation); ok {
		p.Signed = v == 1
	}
	if f := ds.Floats(TagRescaleSlope); len(f) > 0 && f[0] != 0 && !math.IsNaN(f[0]) && !math.IsInf(f[0], 0) {
		p.Slope = f[0]
	}
	if f := ds.Floats(TagRescaleIntercept); len(f) > 0 && !math.IsNaN(f[0]) && !math.IsInf(f[0], 0) {
		p.Intercept = f[0]
	}
	if items := ds.Sequence(TagModalityLUTSequence); len(items) > 0 {
		l, err := readLUT(items[0], TagLUTDescriptor, TagLUTData, p.Signed)
		if err != nil {
			return nil, fmt.Errorf("modality LUT: %w", err)
		}
		p.ModalityLUT = l
	}
	centers, widths := ds.Floats(TagWindowCenter), ds.Floats(TagWindowWidth)
	expl := ds.Strings(TagWindowExplanation)
	for i := range min(len(centers), len(widths)) {
		if widths[i] <= 0 || math.IsNaN(widths[i]) || math.IsNaN(centers[i]) {
			continue
		}
		w := Window{Center: centers[i], Width: widths[i], Source: "header"}
		if i < len(expl) {
			w.Explanation = expl[i]
		}
		p.Windows = append(p.Windows, w)
	}
	for _, it := range ds.Sequence(TagVOILUTSequence) {
		// VOI LUT inputs are modality values: signed when they can be negative.
		l, err := readLUT(it, TagLUTDescriptor, TagLUTData, p.Signed || p.Intercept < 0)
		if err != nil {
			return nil, fmt.Errorf("VOI LUT: %w", err)
		}
		p.VOILUTs = append(p.VOILUTs, l)
	}
	if f := strings.ToUpper(ds.Get(TagVOILUTFunction)); f == "LINEAR_EXACT" || f == "SIGMOID" {
		p.VOIFunction = f
	}
	// One inversion for MONOCHROME1 or INVERSE, never two: the DX family
	// (intraoral and panoramic images included) requires INVERSE with
	// MONOCHROME1 (PS3.3 C.8.11.3), stating the inversion MONOCHROME1
	// already implies.
	shape := strings.ToUpper(strings.TrimSpace(ds.Get(TagPresentationLUTShape)))
	p.Invert = p.Photometric == pixel.Monochrome1 || shape == "INVERSE"
	if v, ok := ds.Int(TagPixelPaddingValue); ok {
		if p.Signed && v >= 1<<15 && ds.Find(TagPixelPaddingValue).VR == "US" {
			v -= 1 << 16
		}
		p.Padding = &v
	}
	if p.Photometric == pixel.PaletteColor {
		if ds.Has(TagSegmentedRedPalette) {
			return nil, fmt.Errorf("%w: segmented palette", ErrUnsupported)
		}
		for i, tags := range [3][2]header.Tag{{TagRedPaletteDescriptor, TagRedPaletteData}, {TagGreenPaletteDescriptor, TagGreenPaletteData}, {TagBluePaletteDescriptor, TagBluePaletteData}} {
			l, err := readLUT(ds, tags[0], tags[1], false)
			if err != nil {
				return nil, fmt.Errorf("palette: %w", err)
			}
			p.Palette[i] = l
		}
	}
	return p, nil
}

// readLUT reads a LUT descriptor (entries, first mapped value, bits) and
// its data (8- or 16-bit entries).
func readLUT(ds *header.Dataset, descTag, dataTag header.Tag, signedFirst bool) (*LUT, error) {
	desc := ds.Ints(descTag)
	if len(desc) != 3 {
		return nil, fmt.Errorf("%w: LUT descriptor with %d values", pixel.ErrMalformed, len(desc))
	}
	n := int(uint16(desc[0]))
	if n == 0 {
		n = 65536
	}
	first := desc[1]
	if signedFirst && first >= 1<<15 {
		first -= 1 << 16
	} else if !signedFirst && first < 0 {
		first += 1 << 16
	}
	bits := int(desc[2])
	if bits < 1 || bits > 16 {
		return nil, fmt.Errorf("%w: LUT of %d bits", pixel.ErrMalformed, bits)
	}
	raw, ok := ds.Raw(dataTag)
	if !ok {
		return nil, fmt.Errorf("%w: LUT without data", pixel.ErrMalformed)
	}
	l := &LUT{First: first, Bits: bits, Data: make([]uint16, n)}
	switch {
	case len(raw) >= 2*n:
		for i := range n {
			if ds.BigEndian {
				l.Data[i] = uint16(raw[2*i])<<8 | uint16(raw[2*i+1])
			} else {
				l.Data[i] = uint16(raw[2*i]) | uint16(raw[2*i+1])<<8
			}
		}
	case len(raw) >= n && bits <= 8: // 8-bit entries packed (allowed for palettes)
		for i := range n {
			l.Data[i] = uint16(raw[i])
		}
	default:
		return nil, fmt.Errorf("%w: LUT data of %d bytes for %d entries", pixel.ErrMalformed, len(raw), n)
	}
	// Some writers declare 16 bits for 8-bit data; trust the data.
	if bits == 16 {
		maxV := uint16(0)
		for _, v := range l.Data {
			maxV = max(maxV, v)
		}
		if maxV < 256 && len(raw) >= 2*n {
			l.Bits = 8
		}
	}
	return l, nil
}

// Modality maps a stored value to its modality value.
func (p *Pipeline) Modality(v int64) float64 {
	if p.ModalityLUT != nil {
		return p.ModalityLUT.lookup(float64(v))
	}
	return float64(v)*p.Slope + p.Intercept
}

// voi maps a modality value to 0…1 with the window (PS3.3 C.11.2.1.2).
func voi(x float64, w Window, fn string) float64 {
	c, wd := w.Center, w.Width
	switch fn {
	case "LINEAR_EXACT":
		switch {
		case x <= c-wd/2:
			return 0
		case x > c+wd/2:
			return 1
		}
		return (x-c)/wd + 0.5
	case "SIGMOID":
		return 1 / (1 + math.Exp(-4*(x-c)/wd))
	}
	if wd < 1 {
		wd = 1
	}
	switch {
	case x <= c-0.5-(wd-1)/2:
		return 0
	case x > c-0.5+(wd-1)/2:
		return 1
	}
	if wd == 1 {
		return 1
	}
	return (x-(c-0.5))/(wd-1) + 0.5
}
