package viewer

import (
	"slices"
	"strings"

	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/uid"
)

// Image kinds, as the timeline groups them (DOMAIN.md "Dental DICOM").
const (
	KindIntraoral = "io"    // periapical and other intra-oral images
	KindBitewing  = "bw"    // intra-oral images of both jaws' posterior teeth
	KindPanoramic = "pano"  // PX, or DX panoramics and cephs
	KindCBCT      = "cbct"  // CT, enhanced CT, X-ray 3D craniofacial, multi-frame volumes
	KindPhoto     = "photo" // XC/VL photographs, secondary capture
	KindOther     = "other"
)

// KindOrder is the order of the timeline's groups.
var KindOrder = []string{KindIntraoral, KindBitewing, KindPanoramic, KindCBCT, KindPhoto, KindOther}

// upperJaw reports whether an ISO 3950 tooth is in the maxilla.
func upperJaw(t string) bool { return len(t) == 2 && strings.ContainsRune("1256", rune(t[0])) }

// IsBitewing reports whether an intra-oral image shows posterior teeth of
// both jaws (a bitewing), judged by its tooth codes.
func IsBitewing(teeth []string) bool {
	up, low := false, false
	for _, t := range teeth {
		if upperJaw(t) {
			up = true
		} else {
			low = true
		}
	}
	return up && low
}

// ImageKind classifies an instance by modality, SOP class, frames and teeth.
func ImageKind(modality string, in index.Instance) string {
	m := strings.ToUpper(modality)
	switch {
	case in.SOPClassUID == uid.CTImage || in.SOPClassUID == uid.EnhancedCTImage || in.SOPClassUID == uid.XRay3DCraniofacialImage || m == "CT":
		return KindCBCT
	case in.SOPClassUID == uid.DigitalIntraOralXRayForPresentation || in.SOPClassUID == uid.DigitalIntraOralXRayForProcessing || m == "IO":
		if IsBitewing(in.ToothCodes) {
			return KindBitewing
		}
		return KindIntraoral
	case m == "PX" || m == "DX" || in.SOPClassUID == uid.DigitalXRayForPresentation || in.SOPClassUID == uid.DigitalXRayForProcessing:
		return KindPanoramic
	case m == "XC" || m == "VL" || in.SOPClassUID == uid.VLPhotographicImage || in.SOPClassUID == uid.SecondaryCaptureImage:
		return KindPhoto
	case in.Frames > 1:
		return KindCBCT
	}
	return KindOther
}

// StudyKind is the kind of a study from its images' kinds: the kind most
// of them have, bitewings counting as intra-oral unless all are bitewings.
func StudyKind(kinds []string) string {
	if len(kinds) == 0 {
		return KindOther
	}
	count := map[string]int{}
	for _, k := range kinds {
		count[k]++
	}
	if count[KindBitewing] == len(kinds) {
		return KindBitewing
	}
	count[KindIntraoral] += count[KindBitewing]
	delete(count, KindBitewing)
	best := ""
	for _, k := range KindOrder {
		if count[k] > count[best] {
			best = k
		}
	}
	if best == "" {
		return KindOther
	}
	return best
}

// sortTeeth orders ISO 3950 numbers by quadrant and tooth.
func sortTeeth(t []string) []string {
	out := slices.Clone(t)
	slices.Sort(out)
	return out
}
