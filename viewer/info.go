package viewer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
)

// Image is what the browser viewer needs to draw an instance from raw
// frames: the image pixel module, modality and VOI LUT attributes, spacing
// and teeth. The page carries it, so the first image draws after one
// frames request.
type Image struct {
	Study          string    `json:"study"`
	Series         string    `json:"series"`
	SOP            string    `json:"sop"`
	SOPClass       string    `json:"sopClass"`
	TransferSyntax string    `json:"transferSyntax"` // as stored: "download DICOM" asks for the original
	Modality       string    `json:"modality"`
	Kind           string    `json:"kind"`
	Rows           int       `json:"rows"`
	Cols           int       `json:"cols"`
	Frames         int       `json:"frames"`
	Samples        int       `json:"samples"`
	Planar         int       `json:"planar"`
	BitsAllocated  int       `json:"bitsAllocated"`
	BitsStored     int       `json:"bitsStored"`
	PixelRep       int       `json:"pixelRep"`
	Photometric    string    `json:"photometric"`
	PresInverse    bool      `json:"presInverse,omitempty"` // Presentation LUT Shape INVERSE on MONOCHROME2 (on MONOCHROME1 it is the same inversion)
	Shift          int       `json:"shift,omitempty"`       // the stored bits' lowest position in the frames the viewer gets (High Bit + 1 − Bits Stored; 0 for decoded frames)
	Slope          float64   `json:"slope"`
	Intercept      float64   `json:"intercept"`
	WindowCenter   *float64  `json:"windowCenter,omitempty"`
	WindowWidth    *float64  `json:"windowWidth,omitempty"`
	PixelSpacing   []float64 `json:"pixelSpacing,omitempty"`  // row spacing, column spacing (mm)
	SpacingSource  string    `json:"spacingSource,omitempty"` // "pixel" or "imager"
	Teeth          []string  `json:"teeth"`
	Date           string    `json:"date"`
	InstanceNumber int       `json:"instanceNumber"`
	Laterality     string    `json:"laterality,omitempty"`
	SliceLocation  *float64  `json:"sliceLocation,omitempty"`
	Label          string    `json:"label"`
}

// Item is one thing to look at: an image (possibly multi-frame) or a
// volume of single-frame instances (a CBCT series as slices).
type Item struct {
	ID     string  `json:"id"`
	Kind   string  `json:"kind"`
	Label  string  `json:"label"`
	Images []Image `json:"images"`
	// Volume is true for a series of slices (one image per slice).
	Volume bool `json:"volume"`
}

type jsonAttr struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

type attrMap map[string]jsonAttr

func (a attrMap) str(tag string) string {
	v, ok := a[tag]
	if !ok || len(v.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(v.Value[0], &s) == nil {
		return s
	}
	return strings.Trim(string(v.Value[0]), `"`)
}

func (a attrMap) nums(tag string) []float64 {
	v, ok := a[tag]
	if !ok {
		return nil
	}
	var out []float64
	for _, raw := range v.Value {
		var f float64
		if json.Unmarshal(raw, &f) == nil {
			out = append(out, f)
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
				out = append(out, f)
			}
		}
	}
	return out
}

func (a attrMap) num(tag string, def float64) float64 {
	if n := a.nums(tag); len(n) > 0 {
		return n[0]
	}
	return def
}

// NewImage builds an Image from an index row and its stored attributes
// (DICOM JSON model).
func NewImage(in index.Instance, modality string, attrs []byte) (Image, error) {
	var a attrMap
	if len(attrs) > 0 {
		if err := json.Unmarshal(attrs, &a); err != nil {
			return Image{}, fmt.Errorf("viewer: attributes of an instance: %w", err)
		}
	}
	im := Image{
		Study: in.StudyInstanceUID, Series: in.SeriesInstanceUID, SOP: in.SOPInstanceUID, SOPClass: in.SOPClassUID,
		TransferSyntax: in.TransferSyntax,
		Modality:       modality, Kind: ImageKind(modality, in), Rows: in.Rows, Cols: in.Columns, Frames: max(in.Frames, 1),
		Samples: int(a.num("00280002", 1)), Planar: int(a.num("00280006", 0)),
		BitsAllocated: int(a.num("00280100", 16)), BitsStored: int(a.num("00280101", 0)), PixelRep: int(a.num("00280103", 0)),
		Photometric: strings.TrimSpace(a.str("00280004")), Slope: a.num("00281053", 1), Intercept: a.num("00281052", 0),
		Teeth: sortTeeth(in.ToothCodes), Laterality: in.ImageLaterality,
	}
	if im.Teeth == nil {
		im.Teeth = []string{}
	}
	if im.BitsStored == 0 {
		im.BitsStored = im.BitsAllocated
	}
	if im.Slope == 0 {
		im.Slope = 1
	}
	if im.Photometric == "" {
		im.Photometric = "MONOCHROME2"
	}
	im.PresInverse = im.Photometric == "MONOCHROME2" && strings.TrimSpace(a.str("20500020")) == "INVERSE"
	// Frames of little endian native data reach the viewer as stored, the
	// Bits Stored ending at High Bit (e.g. 12 bits at 4–15); decoded frames
	// (compressed, big endian) have them at the bottom already.
	switch in.TransferSyntax {
	case uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.DeflatedExplicitVRLittleEndian:
		if hb := int(a.num("00280102", float64(im.BitsStored-1))); hb+1 > im.BitsStored && hb < im.BitsAllocated {
			im.Shift = hb + 1 - im.BitsStored
		}
	}
	if in.InstanceNumber != nil {
		im.InstanceNumber = *in.InstanceNumber
	}
	if c, w := a.nums("00281050"), a.nums("00281051"); len(c) > 0 && len(w) > 0 && w[0] >= 1 {
		im.WindowCenter, im.WindowWidth = &c[0], &w[0]
	}
	if ps := a.nums("00280030"); len(ps) == 2 && ps[0] > 0 && ps[1] > 0 {
		im.PixelSpacing, im.SpacingSource = ps, "pixel"
	} else if ps := a.nums("00181164"); len(ps) == 2 && ps[0] > 0 && ps[1] > 0 {
		im.PixelSpacing, im.SpacingSource = ps, "imager"
	}
	if sl := a.nums("00201041"); len(sl) > 0 {
		im.SliceLocation = &sl[0]
	} else if pos := a.nums("00200032"); len(pos) == 3 {
		im.SliceLocation = &pos[2]
	}
	for _, tag := range []string{"0008002A", "00080022", "00080023", "00080020"} {
		if d := a.str(tag); len(d) >= 8 {
			im.Date = d[0:4] + "-" + d[4:6] + "-" + d[6:8]
			break
		}
	}
	return im, nil
}

// Items groups a study's images into things to look at: every image on its
// own, except single-frame CBCT/CT instances of one series, which form a
// volume ordered by slice position (or instance number).
func Items(images []Image) []Item {
	var out []Item
	volumes := map[string]int{}
	for _, im := range images {
		if im.Kind == KindCBCT && im.Frames == 1 {
			if k, ok := volumes[im.Series]; ok {
				out[k].Images = append(out[k].Images, im)
				continue
			}
			volumes[im.Series] = len(out)
			out = append(out, Item{ID: im.Series, Kind: im.Kind, Images: []Image{im}, Volume: true})
			continue
		}
		out = append(out, Item{ID: im.SOP, Kind: im.Kind, Images: []Image{im}})
	}
	for i := range out {
		it := &out[i]
		if it.Volume {
			if len(it.Images) == 1 {
				it.Volume = false
				it.ID = it.Images[0].SOP
			} else {
				sort.SliceStable(it.Images, func(a, b int) bool {
					x, y := it.Images[a], it.Images[b]
					if x.SliceLocation != nil && y.SliceLocation != nil && *x.SliceLocation != *y.SliceLocation {
						return *x.SliceLocation < *y.SliceLocation
					}
					return x.InstanceNumber < y.InstanceNumber
				})
			}
		}
		it.Label = itemLabel(*it)
	}
	return out
}

func itemLabel(it Item) string {
	im := it.Images[0]
	switch {
	case it.Volume:
		return fmt.Sprintf("CBCT · %d", len(it.Images))
	case im.Frames > 1:
		return fmt.Sprintf("CBCT · %d", im.Frames)
	case len(im.Teeth) > 0:
		return strings.Join(im.Teeth, " ")
	case im.Kind == KindPanoramic:
		return "Panorama"
	}
	return im.Modality
}
