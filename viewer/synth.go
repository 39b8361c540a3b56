package viewer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// Synthetic dental images for the demo and the tests: teeth with enamel,
// dentin, pulp and roots on trabecular bone, fillings, noise, a collimator
// edge; written as Part-10 files (explicit VR little endian) with the
// attributes dental devices send (Pixel Spacing or Imager Pixel Spacing,
// one Primary Anatomic Structure Sequence item per tooth, Image Laterality,
// Positioner Type). Nothing here is a real person's image.

// Patient names the person the synthetic images belong to.
type Patient struct {
	ID         string // Patient ID: the CPR number's 10 digits
	Family     string
	Given      string
	BirthDate  time.Time
	Sex        string // M, F or O
	UIDSeed    string // makes the UIDs unique and stable per patient
	StationAET string
}

// SynthImage describes one synthetic image.
type SynthImage struct {
	Kind        string // KindIntraoral, KindBitewing, KindPanoramic, KindCBCT, KindPhoto
	Teeth       []string
	Rows, Cols  int
	Frames      int     // CBCT slices
	BitsStored  int     // 12 or 16 (8 for photos)
	Spacing     float64 // mm per pixel (square)
	Imager      bool    // spacing as Imager Pixel Spacing (at the detector) instead of Pixel Spacing
	NoWindow    bool    // no Window Center/Width (panoramics)
	Filling     string  // a tooth with a metal filling
	Seed        uint64
	Number      int // instance number (acquisition order)
	Description string
}

// SynthStudy is a study of synthetic images.
type SynthStudy struct {
	Key         string // stable key within the patient ("fmx", "bw", …)
	Date        time.Time
	Description string
	Modality    string
	Images      []SynthImage
}

// stableUID makes a UID under 2.25 (PS3.5 B.2: a UUID as an integer) from a
// hash of the parts, so re-seeding the demo makes the same UIDs.
func stableUID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	n := new(big.Int).SetBytes(sum[:16])
	return "2.25." + n.String()
}

// StudyUID is the Study Instance UID of a synthetic study of a patient.
func (s SynthStudy) StudyUID(p Patient) string { return stableUID(p.UIDSeed, s.Key) }

// SOPUID is the SOP Instance UID of the study's i-th image.
func (s SynthStudy) SOPUID(p Patient, i int) string {
	return stableUID(p.UIDSeed, s.Key, strconv.Itoa(i))
}

func sopClassOf(kind string) (sopClass, modality string) {
	switch kind {
	case KindPanoramic:
		return uid.DigitalXRayForPresentation, "PX"
	case KindCBCT:
		return uid.XRay3DCraniofacialImage, "CT"
	case KindPhoto:
		return uid.VLPhotographicImage, "XC"
	}
	return uid.DigitalIntraOralXRayForPresentation, "IO"
}

var (
	tagCodeValueT      = header.NewTag(0x0008, 0x0100)
	tagCodingSchemeT   = header.NewTag(0x0008, 0x0102)
	tagCodeMeaningT    = header.NewTag(0x0008, 0x0104)
	tagImageTypeT      = header.NewTag(0x0008, 0x0008)
	tagStudyTimeT      = header.NewTag(0x0008, 0x0030)
	tagContentDateT    = header.NewTag(0x0008, 0x0023)
	tagAcqDateT        = header.NewTag(0x0008, 0x0022)
	tagManufacturerT   = header.NewTag(0x0008, 0x0070)
	tagStudyDescT      = header.NewTag(0x0008, 0x1030)
	tagSeriesDescT     = header.NewTag(0x0008, 0x103E)
	tagPatientSexT     = header.NewTag(0x0010, 0x0040)
	tagPositionerT     = header.NewTag(0x0018, 0x1508)
	tagImagerSpacingT  = header.NewTag(0x0018, 0x1164)
	tagSeriesNumberT   = header.NewTag(0x0020, 0x0011)
	tagInstanceNumT    = header.NewTag(0x0020, 0x0013)
	tagStudyIDT        = header.NewTag(0x0020, 0x0010)
	tagImageLatT       = header.NewTag(0x0020, 0x0062)
	tagPositionT       = header.NewTag(0x0020, 0x0032)
	tagSliceLocationT  = header.NewTag(0x0020, 0x1041)
	tagSamplesT        = header.NewTag(0x0028, 0x0002)
	tagPhotometricT    = header.NewTag(0x0028, 0x0004)
	tagPlanarT         = header.NewTag(0x0028, 0x0006)
	tagPixelSpacingT   = header.NewTag(0x0028, 0x0030)
	tagBitsAllocT      = header.NewTag(0x0028, 0x0100)
	tagBitsStoredT     = header.NewTag(0x0028, 0x0101)
	tagHighBitT        = header.NewTag(0x0028, 0x0102)
	tagPixelRepT       = header.NewTag(0x0028, 0x0103)
	tagWindowCenterT   = header.NewTag(0x0028, 0x1050)
	tagWindowWidthT    = header.NewTag(0x0028, 0x1051)
	tagRescaleIntT     = header.NewTag(0x0028, 0x1052)
	tagRescaleSlopeT   = header.NewTag(0x0028, 0x1053)
	tagPresentationLUT = header.NewTag(0x2050, 0x0020)
)

func ds(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// File writes the i-th image of the study as a Part-10 file.
func (s SynthStudy) File(p Patient, i int) []byte {
	im := s.Images[i]
	sopClass, modality := sopClassOf(im.Kind)
	sop := s.SOPUID(p, i)
	d := header.NewDataset()
	d.SetString(header.TagSpecificCharacterSet, "CS", "ISO_IR 192")
	d.SetString(tagImageTypeT, "CS", "ORIGINAL", "PRIMARY")
	d.SetString(header.TagSOPClassUID, "UI", sopClass)
	d.SetString(header.TagSOPInstanceUID, "UI", sop)
	date := s.Date.Format("20060102")
	d.SetString(header.TagStudyDate, "DA", date)
	d.SetString(tagAcqDateT, "DA", date)
	d.SetString(tagContentDateT, "DA", date)
	d.SetString(tagStudyTimeT, "TM", "0930"+fmt.Sprintf("%02d", i%60))
	d.SetString(header.TagAccessionNumber, "SH", "")
	d.SetString(header.TagModality, "CS", modality)
	d.SetString(tagManufacturerT, "LO", "Molar synthetic")
	d.SetString(tagStudyDescT, "LO", s.Description)
	desc := im.Description
	if desc == "" {
		desc = s.Description
	}
	d.SetString(tagSeriesDescT, "LO", desc)
	d.SetString(header.TagPatientName, "PN", p.Family+"^"+p.Given)
	d.SetString(header.TagPatientID, "LO", p.ID)
	if !p.BirthDate.IsZero() {
		d.SetString(header.TagPatientBirthDate, "DA", p.BirthDate.Format("20060102"))
	}
	d.SetString(tagPatientSexT, "CS", p.Sex)
	d.SetString(header.TagStudyInstanceUID, "UI", s.StudyUID(p))
	series := stableUID(p.UIDSeed, s.Key, "series", im.Kind)
	d.SetString(header.TagSeriesInstanceUID, "UI", series)
	d.SetString(tagStudyIDT, "SH", strings.ToUpper(s.Key))
	d.SetString(tagSeriesNumberT, "IS", "1")
	d.SetString(tagInstanceNumT, "IS", strconv.Itoa(im.Number))
	if im.Kind == KindIntraoral || im.Kind == KindBitewing {
		lat := "R"
		if len(im.Teeth) > 0 && strings.ContainsRune("2367", rune(im.Teeth[0][0])) {
			lat = "L"
		}
		d.SetString(tagImageLatT, "CS", lat)
		pos := "PA"
		if im.Kind == KindBitewing {
			pos = "BITEWING"
		}
		d.SetString(tagPositionerT, "CS", pos)
		var items []*header.Dataset
		for _, t := range im.Teeth {
			it := header.NewDataset()
			it.SetString(tagCodeValueT, "SH", t)
			it.SetString(tagCodingSchemeT, "SH", "ISO3950")
			it.SetString(tagCodeMeaningT, "LO", "Tooth "+t)
			items = append(items, it)
		}
		d.SetSequence(header.TagPrimaryAnatomicStructSeq, items...)
		region := header.NewDataset()
		region.SetString(tagCodeValueT, "SH", "28035005")
		region.SetString(tagCodingSchemeT, "SH", "SCT")
		region.SetString(tagCodeMeaningT, "LO", "Teeth and gums")
		d.SetSequence(header.TagAnatomicRegionSequence, region)
	}
	samples, photometric, bitsAlloc := 1, "MONOCHROME2", 16
	if im.Kind == KindPhoto {
		samples, photometric, bitsAlloc = 3, "RGB", 8
	}
	bits := im.BitsStored
	if bits == 0 {
		bits = 12
	}
	if bitsAlloc == 8 {
		bits = 8
	}
	d.SetUint16(tagSamplesT, uint16(samples))
	d.SetString(tagPhotometricT, "CS", photometric)
	if samples == 3 {
		d.SetUint16(tagPlanarT, 0)
	}
	if im.Frames > 1 {
		d.SetString(header.TagNumberOfFrames, "IS", strconv.Itoa(im.Frames))
	}
	d.SetUint16(header.TagRows, uint16(im.Rows))
	d.SetUint16(header.TagColumns, uint16(im.Cols))
	if im.Spacing > 0 {
		if im.Imager {
			d.SetString(tagImagerSpacingT, "DS", ds(im.Spacing), ds(im.Spacing))
		} else {
			d.SetString(tagPixelSpacingT, "DS", ds(im.Spacing), ds(im.Spacing))
		}
	}
	d.SetUint16(tagBitsAllocT, uint16(bitsAlloc))
	d.SetUint16(tagBitsStoredT, uint16(bits))
	d.SetUint16(tagHighBitT, uint16(bits-1))
	pixelRep := uint16(0)
	if im.Kind == KindCBCT {
		pixelRep = 1
		d.SetString(tagRescaleIntT, "DS", "-1024")
		d.SetString(tagRescaleSlopeT, "DS", "1")
		d.SetString(tagPositionT, "DS", "0", "0", "0")
		d.SetString(tagSliceLocationT, "DS", "0")
	}
	d.SetUint16(tagPixelRepT, pixelRep)
	if !im.NoWindow && samples == 1 {
		c, w := windowOf(im, bits)
		d.SetString(tagWindowCenterT, "DS", ds(c))
		d.SetString(tagWindowWidthT, "DS", ds(w))
	}
	if samples == 1 {
		d.SetString(tagPresentationLUT, "CS", "IDENTITY")
	}
	vr := "OW"
	if bitsAlloc == 8 {
		vr = "OB"
	}
	d.Set(&header.Element{Tag: header.TagPixelData, VR: vr, Value: im.Pixels()})
	var buf bytes.Buffer
	if err := header.WriteFileHeader(&buf, sopClass, sop, uid.ExplicitVRLittleEndian); err != nil {
		panic(err) // writing to a bytes.Buffer does not fail
	}
	if err := d.WriteTo(&buf, uid.ExplicitVRLittleEndian); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// windowOf is the header window the device would write.
func windowOf(im SynthImage, bits int) (float64, float64) {
	if im.Kind == KindCBCT {
		return 600, 3000 // Hounsfield units: bone and teeth
	}
	top := float64(int(1)<<bits - 1)
	return top * 0.55, top * 0.7
}

// Pixels renders the image's native little-endian pixel data.
func (im SynthImage) Pixels() []byte {
	switch im.Kind {
	case KindPhoto:
		return im.photo()
	case KindCBCT:
		return im.cbct()
	}
	rnd := rand.New(rand.NewPCG(im.Seed, 7))
	bits := im.BitsStored
	if bits == 0 {
		bits = 12
	}
	top := float64(int(1)<<bits - 1)
	var teeth []toothShape
	switch im.Kind {
	case KindPanoramic:
		teeth = panoTeeth(im.Cols, im.Rows)
	case KindBitewing:
		teeth = bitewingTeeth(im.Teeth, im.Cols, im.Rows, im.Filling)
	default:
		teeth = periapicalTeeth(im.Teeth, im.Cols, im.Rows, im.Filling)
	}
	out := make([]byte, im.Rows*im.Cols*2)
	for y := 0; y < im.Rows; y++ {
		v := float64(y) / float64(im.Rows)
		for x := 0; x < im.Cols; x++ {
			u := float64(x) / float64(im.Cols)
			// Trabecular bone: a soft gradient with a fine texture.
			val := 0.34 + 0.07*math.Sin(u*23+math.Sin(v*17)*2)*math.Sin(v*29+u*5) + 0.05*v
			if im.Kind == KindPanoramic {
				val = panoBackground(u, v)
			}
			for i := range teeth {
				if d := teeth[i].density(float64(x), float64(y)); d > 0 {
					val = math.Max(val, d)
				}
			}
			// The collimator edge / sensor corner.
			if im.Kind != KindPanoramic && (u < 0.015 || u > 0.985 || v < 0.015 || v > 0.985) {
				val = 0.02
			}
			val += (rnd.Float64() - 0.5) * 0.025
			n := math.Round(val * top * 0.92)
			binary.LittleEndian.PutUint16(out[2*(y*im.Cols+x):], uint16(max(0, min(top, n))))
		}
	}
	return out
}

// toothShape is a tooth in image coordinates: a crown (enamel cap over
// dentin, pulp inside) and roots, crown toward the occlusal side.
type toothShape struct {
	cx, crownY    float64 // crown centre
	halfW, crownH float64
	rootLen       float64
	dir           float64 // +1: roots go up (crown at the bottom), -1: roots go down
	roots         int
	filling       bool
}

func (t *toothShape) density(x, y float64) float64 {
	dx := (x - t.cx) / t.halfW
	if dx > 1.05 || dx < -1.05 {
		return 0
	}
	// Crown: a superellipse.
	dy := (y - t.crownY) / t.crownH
	if dy*t.dir > 1.05 { // beyond the crown's occlusal edge
		return 0
	}
	ax, ay := math.Abs(dx), math.Abs(dy)
	r := ax*ax*math.Sqrt(ax) + ay*ay*math.Sqrt(ay) // a superellipse (exponent 2.5)
	if r < 1 {
		val := 0.62
		if r > 0.62 && dy*t.dir > -0.2 { // enamel on the occlusal side
			val = 0.86
		}
		if math.Abs(dx) < 0.28 && dy*t.dir < 0.1 && dy*t.dir > -1 && r < 0.5 { // pulp chamber
			val = 0.36
		}
		if t.filling && math.Abs(dx) < 0.45 && dy*t.dir > 0.35 {
			val = 1.0
		}
		return val
	}
	// Roots: from the crown's apical side, tapering.
	along := (t.crownY - y) * t.dir // distance from the crown centre toward the apex
	if along < 0 || along > t.crownH+t.rootLen {
		return 0
	}
	k := (along - t.crownH*0.6) / (t.rootLen + t.crownH*0.4)
	if k < 0 {
		return 0
	}
	best := 0.0
	for i := 0; i < t.roots; i++ {
		off := 0.0
		if t.roots == 2 {
			off = (float64(i)*2 - 1) * 0.45 * (1 - 0.3*k)
		}
		w := 0.6 * (1 - 0.55*k)
		if t.roots == 2 {
			w *= 0.62
		}
		ddx := dx - off
		if math.Abs(ddx) < w {
			val := 0.64
			if math.Abs(ddx) < w*0.2 {
				val = 0.36 // root canal
			}
			if math.Abs(ddx) > w*0.9 {
				val = 0.26 // periodontal ligament space
			}
			best = math.Max(best, val)
		}
	}
	return best
}

func isMolar(t string) bool    { return len(t) == 2 && t[1] >= '6' }
func isPremolar(t string) bool { return len(t) == 2 && (t[1] == '4' || t[1] == '5') }

// periapicalTeeth lays out the teeth of a periapical as the sensor sees
// them: crowns at the bottom, roots up.
func periapicalTeeth(teeth []string, cols, rows int, filling string) []toothShape {
	n := max(len(teeth), 1)
	var out []toothShape
	for i, t := range teeth {
		w := float64(cols) / float64(n)
		ts := toothShape{cx: w * (float64(i) + 0.5), crownY: float64(rows) * 0.72, halfW: w * 0.4, crownH: float64(rows) * 0.13,
			rootLen: float64(rows) * 0.42, dir: 1, roots: 1, filling: t == filling}
		if isMolar(t) {
			ts.roots = 2
			ts.halfW = w * 0.44
		} else if !isPremolar(t) {
			ts.halfW = w * 0.34
			ts.rootLen = float64(rows) * 0.48
		}
		out = append(out, ts)
	}
	return out
}

// bitewingTeeth lays out a bitewing: upper crowns above, lower below, meeting in the middle.
func bitewingTeeth(teeth []string, cols, rows int, filling string) []toothShape {
	var upper, lower []string
	for _, t := range teeth {
		if upperJaw(t) {
			upper = append(upper, t)
		} else {
			lower = append(lower, t)
		}
	}
	var out []toothShape
	for j, set := range [][]string{upper, lower} {
		n := max(len(set), 1)
		for i, t := range set {
			w := float64(cols) / float64(n)
			ts := toothShape{cx: w * (float64(i) + 0.5), halfW: w * 0.42, crownH: float64(rows) * 0.17, rootLen: float64(rows) * 0.3,
				roots: 1, filling: t == filling}
			if isMolar(t) {
				ts.roots = 2
			}
			if j == 0 {
				ts.crownY, ts.dir = float64(rows)*0.36, 1 // upper: roots up
			} else {
				ts.crownY, ts.dir = float64(rows)*0.66, -1 // lower: roots down
			}
			out = append(out, ts)
		}
	}
	return out
}

// panoTeeth: 16 upper and 16 lower teeth along the dental arch.
func panoTeeth(cols, rows int) []toothShape {
	var out []toothShape
	for j := 0; j < 2; j++ {
		for i := 0; i < 16; i++ {
			u := 0.2 + 0.6*(float64(i)+0.5)/16
			curve := 0.06 * math.Pow((u-0.5)/0.3, 2)
			ts := toothShape{cx: u * float64(cols), halfW: float64(cols) * 0.6 / 16 * 0.42, crownH: float64(rows) * 0.07,
				rootLen: float64(rows) * 0.16, roots: 1}
			k := i
			if k >= 8 {
				k = 15 - k
			}
			if k < 3 {
				ts.roots = 2
			}
			if j == 0 {
				ts.crownY, ts.dir = float64(rows)*(0.45-curve), 1
			} else {
				ts.crownY, ts.dir = float64(rows)*(0.56-curve), -1
			}
			out = append(out, ts)
		}
	}
	return out
}

// panoBackground: the jaws, the spine shadows and air, bright overall as
// panoramics without a usable window tend to be.
func panoBackground(u, v float64) float64 {
	val := 0.5 + 0.1*math.Sin(u*9)*math.Cos(v*7)
	// mandible outline
	jaw := math.Pow((u-0.5)/0.42, 2) + math.Pow((v-0.35)/0.55, 2)
	if jaw > 1 {
		val = 0.38
	}
	// the airway and tongue band
	if math.Abs(v-0.5) < 0.015 && u > 0.25 && u < 0.75 {
		val = 0.3
	}
	// spine shadows at the sides
	if u < 0.08 || u > 0.92 {
		val = 0.62
	}
	return val
}

// cbct renders a small signed 16-bit volume in Hounsfield units (stored =
// HU + 1024): a mandible-like horseshoe of bone with teeth as cylinders
// between two heights, soft tissue around, air outside.
func (im SynthImage) cbct() []byte {
	rnd := rand.New(rand.NewPCG(im.Seed, 11))
	frames := max(im.Frames, 1)
	out := make([]byte, 0, frames*im.Rows*im.Cols*2)
	for f := 0; f < frames; f++ {
		z := float64(f) / float64(frames)
		for y := 0; y < im.Rows; y++ {
			for x := 0; x < im.Cols; x++ {
				u := (float64(x)/float64(im.Cols) - 0.5) * 2
				v := (float64(y)/float64(im.Rows) - 0.35) * 2
				hu := -1000.0
				head := u*u/0.85 + (v-0.3)*(v-0.3)/1.1
				if head < 1 {
					hu = 40 // soft tissue
				}
				// horseshoe arch: distance to a parabola v = 0.9 u² - 0.2
				d := math.Abs(v - (0.9*u*u - 0.2))
				if d < 0.12 && math.Abs(u) < 0.85 {
					hu = 900 // cortical bone
					if d < 0.07 {
						hu = 350 // trabecular
					}
					// teeth between z 0.35 and 0.85
					if z > 0.35 && z < 0.85 {
						for k := -7; k <= 7; k++ {
							tu := float64(k) * 0.11
							tv := 0.9*tu*tu - 0.2
							if (u-tu)*(u-tu)+(v-tv)*(v-tv) < 0.0022 {
								hu = 1800
								if (u-tu)*(u-tu)+(v-tv)*(v-tv) < 0.0003 && z < 0.7 {
									hu = 60 // pulp
								}
								if z > 0.75 {
									hu = 2600 // enamel
								}
							}
						}
					}
				}
				hu += (rnd.Float64() - 0.5) * 40
				s := int16(max(-1024, min(3071, math.Round(hu)))) + 1024
				out = binary.LittleEndian.AppendUint16(out, uint16(s))
			}
		}
	}
	return out
}

// photo renders an 8-bit RGB intra-oral photograph: gums and teeth.
func (im SynthImage) photo() []byte {
	out := make([]byte, 0, im.Rows*im.Cols*3+1)
	for y := 0; y < im.Rows; y++ {
		for x := 0; x < im.Cols; x++ {
			u := float64(x) / float64(im.Cols)
			v := float64(y) / float64(im.Rows)
			r, g, b := 120.0, 40.0, 50.0 // lips / shadow
			if math.Pow((u-0.5)/0.42, 2)+math.Pow((v-0.5)/0.32, 2) < 1 {
				r, g, b = 205, 95, 105 // gums
				if math.Abs(v-0.5) < 0.14 && math.Mod(u*10, 1) > 0.08 {
					r, g, b = 236, 230, 212 // teeth
				}
			}
			out = append(out, byte(r), byte(g), byte(b))
		}
	}
	if len(out)%2 == 1 {
		out = append(out, 0)
	}
	return out
}
