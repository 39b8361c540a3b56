// Package pixeltest makes synthetic DICOM images for tests and benchmarks
// of pixel decoding, rendering and thumbnails: dental-looking content
// (bright crowns and roots on a darker background, noise, a collimator
// border) at any size, bit depth, signedness, photometric and frame count,
// written as Part-10 files in explicit VR little endian.
package pixeltest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// Spec describes a synthetic image.
type Spec struct {
	Name          string
	Rows, Columns int
	Frames        int // 0 = 1, and no Number of Frames element
	Samples       int // 1 or 3
	BitsAllocated int // 8 or 16
	BitsStored    int
	Signed        bool
	Photometric   string // default MONOCHROME2 / RGB
	Planar        int
	SOPClass      string
	Modality      string
	// Window center/width to put in the header (none when Width is 0).
	WindowCenter, WindowWidth float64
	// RescaleSlope/Intercept (none when slope is 0).
	RescaleSlope, RescaleIntercept float64
	Seed                           uint64
	// Extra elements added to the data set.
	Extra []*header.Element
}

// Sample returns the value of sample s of pixel (x, y) in frame f.
func (sp Spec) Sample(f, x, y, s int, rnd *rand.Rand) int64 {
	bits := sp.BitsStored
	lo, hi := int64(0), int64(1)<<bits-1
	if sp.Signed {
		lo, hi = -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1
	}
	span := float64(hi - lo)
	// normalised coordinates
	u := (float64(x) + 0.5) / float64(sp.Columns)
	v := (float64(y) + 0.5) / float64(sp.Rows)
	// background: soft tissue gradient
	val := 0.18 + 0.12*v + 0.03*math.Sin(9*u+float64(f))
	// teeth: bright vertical ellipses with darker pulp
	for k := range 4 {
		cx := 0.2 + 0.2*float64(k) + 0.02*float64(f)
		dx, dy := (u-cx)/0.07, (v-0.5)/0.33
		r := dx*dx + dy*dy
		if r < 1 {
			val = 0.55 + 0.3*(1-r)
			if r < 0.12 {
				val -= 0.25
			}
		}
	}
	// a metal filling (saturated) and a collimator border (zero)
	if math.Abs(u-0.4) < 0.03 && math.Abs(v-0.35) < 0.04 {
		val = 1
	}
	if u < 0.04 || v > 0.96 {
		val = 0
	}
	if sp.Samples == 3 {
		val = val * (0.7 + 0.15*float64(s))
	}
	val += (rnd.Float64() - 0.5) * 0.02
	n := lo + int64(math.Round(val*span))
	return max(lo, min(hi, n))
}

func (sp *Spec) defaults() {
	if sp.Samples == 0 {
		sp.Samples = 1
	}
	if sp.BitsAllocated == 0 {
		sp.BitsAllocated = 16
	}
	if sp.BitsStored == 0 {
		sp.BitsStored = sp.BitsAllocated
	}
	if sp.Photometric == "" {
		if sp.Samples == 3 {
			sp.Photometric = "RGB"
		} else {
			sp.Photometric = "MONOCHROME2"
		}
	}
	if sp.SOPClass == "" {
		sp.SOPClass = uid.DigitalIntraOralXRayForPresentation
		if sp.Samples == 3 {
			sp.SOPClass = uid.SecondaryCaptureImage
		}
	}
	if sp.Modality == "" {
		sp.Modality = "IO"
	}
}

// Pixels returns the native pixel data (little endian) for the spec.
func (sp Spec) Pixels() []byte {
	sp.defaults()
	frames := max(sp.Frames, 1)
	rnd := rand.New(rand.NewPCG(sp.Seed, 42))
	bps := sp.BitsAllocated / 8
	n := sp.Rows * sp.Columns * sp.Samples
	out := make([]byte, 0, frames*n*bps+1)
	mask := uint64(1)<<sp.BitsStored - 1
	for f := range frames {
		frame := make([]uint64, n)
		for y := range sp.Rows {
			for x := range sp.Columns {
				for s := range sp.Samples {
					v := uint64(sp.Sample(f, x, y, s, rnd)) & mask
					if sp.Signed && sp.BitsStored < sp.BitsAllocated && v&(1<<(sp.BitsStored-1)) != 0 {
						v |= ^mask // sign-extend into the unused bits, as modalities do
					}
					i := (y*sp.Columns+x)*sp.Samples + s
					if sp.Samples == 3 && sp.Planar == 1 {
						i = s*sp.Rows*sp.Columns + y*sp.Columns + x
					}
					frame[i] = v
				}
			}
		}
		for _, v := range frame {
			if bps == 1 {
				out = append(out, byte(v))
			} else {
				out = binary.LittleEndian.AppendUint16(out, uint16(v))
			}
		}
	}
	if len(out)%2 == 1 {
		out = append(out, 0)
	}
	return out
}

// Dataset returns the data set (without pixel data) for the spec.
func (sp Spec) Dataset(sopInstance string) *header.Dataset {
	sp.defaults()
	ds := header.NewDataset()
	ds.SetString(header.TagSOPClassUID, "UI", sp.SOPClass)
	ds.SetString(header.TagSOPInstanceUID, "UI", sopInstance)
	ds.SetString(header.TagModality, "CS", sp.Modality)
	ds.SetString(header.TagPatientName, "PN", "Test^Synthetic")
	ds.SetString(header.TagPatientID, "LO", "0101010000")
	ds.SetString(header.TagStudyInstanceUID, "UI", "1.2.826.0.1.3680043.10.1234.1")
	ds.SetString(header.TagSeriesInstanceUID, "UI", "1.2.826.0.1.3680043.10.1234.1.1")
	ds.SetUint16(0x00280002, uint16(sp.Samples))
	ds.SetString(0x00280004, "CS", sp.Photometric)
	if sp.Samples == 3 {
		ds.SetUint16(0x00280006, uint16(sp.Planar))
	}
	if sp.Frames > 0 {
		ds.SetString(header.TagNumberOfFrames, "IS", fmt.Sprint(sp.Frames))
	}
	ds.SetUint16(header.TagRows, uint16(sp.Rows))
	ds.SetUint16(header.TagColumns, uint16(sp.Columns))
	ds.SetUint16(0x00280100, uint16(sp.BitsAllocated))
	ds.SetUint16(0x00280101, uint16(sp.BitsStored))
	ds.SetUint16(0x00280102, uint16(sp.BitsStored-1))
	pr := uint16(0)
	if sp.Signed {
		pr = 1
	}
	ds.SetUint16(0x00280103, pr)
	if sp.WindowWidth > 0 {
		ds.SetString(0x00281050, "DS", fmt.Sprint(sp.WindowCenter))
		ds.SetString(0x00281051, "DS", fmt.Sprint(sp.WindowWidth))
	}
	if sp.RescaleSlope != 0 {
		ds.SetString(0x00281052, "DS", fmt.Sprint(sp.RescaleIntercept))
		ds.SetString(0x00281053, "DS", fmt.Sprint(sp.RescaleSlope))
	}
	for _, e := range sp.Extra {
		ds.Set(e)
	}
	return ds
}

// File returns a Part-10 file (explicit VR little endian) for the spec.
func (sp Spec) File() []byte {
	sp.defaults()
	sop := fmt.Sprintf("1.2.826.0.1.3680043.10.1234.1.1.%d", sp.Seed+1)
	ds := sp.Dataset(sop)
	vr := "OW"
	if sp.BitsAllocated == 8 {
		vr = "OB"
	}
	ds.Set(&header.Element{Tag: header.TagPixelData, VR: vr, Value: sp.Pixels()})
	var buf bytes.Buffer
	if err := header.WriteFileHeader(&buf, sp.SOPClass, sop, uid.ExplicitVRLittleEndian); err != nil {
		panic(err)
	}
	if err := ds.WriteTo(&buf, uid.ExplicitVRLittleEndian); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Write writes File to path.
func (sp Spec) Write(path string) error {
	return os.WriteFile(path, sp.File(), 0o644)
}

// Intraoral is a 1.5-megapixel 12-bit intraoral image (size 2 sensor).
func Intraoral() Spec {
	return Spec{Name: "intraoral", Rows: 1600, Columns: 960, BitsAllocated: 16, BitsStored: 12, Modality: "IO"}
}

// Panoramic is a 3000×1500 12-bit panoramic without a window.
func Panoramic() Spec {
	return Spec{Name: "panoramic", Rows: 1500, Columns: 3000, BitsAllocated: 16, BitsStored: 12, Modality: "PX", SOPClass: uid.DigitalXRayForPresentation}
}
