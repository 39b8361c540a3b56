package header

import (
	"fmt"

	dtag "github.com/suyashkumar/dicom/pkg/tag"
)

// Tag is a DICOM attribute tag: group in the high 16 bits, element in the low.
type Tag uint32

// NewTag builds a tag from group and element numbers.
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group returns the group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element returns the element number.
func (t Tag) Element() uint16 { return uint16(t) }

// IsPrivate reports whether the tag is in an odd (private) group.
func (t Tag) IsPrivate() bool { return t.Group()%2 == 1 }

func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group(), t.Element()) }

// Frequently used tags.
const (
	TagItem                     Tag = 0xFFFEE000
	TagItemDelimitation         Tag = 0xFFFEE00D
	TagSequenceDelimitation     Tag = 0xFFFEE0DD
	TagFileMetaGroupLength      Tag = 0x00020000
	TagFileMetaVersion          Tag = 0x00020001
	TagMediaStorageSOPClassUID  Tag = 0x00020002
	TagMediaStorageSOPInstance  Tag = 0x00020003
	TagTransferSyntaxUID        Tag = 0x00020010
	TagImplementationClassUID   Tag = 0x00020012
	TagImplementationVersion    Tag = 0x00020013
	TagSourceApplicationEntity  Tag = 0x00020016
	TagSpecificCharacterSet     Tag = 0x00080005
	TagSOPClassUID              Tag = 0x00080016
	TagSOPInstanceUID           Tag = 0x00080018
	TagStudyDate                Tag = 0x00080020
	TagModality                 Tag = 0x00080060
	TagQueryRetrieveLevel       Tag = 0x00080052
	TagAccessionNumber          Tag = 0x00080050
	TagAnatomicRegionSequence   Tag = 0x00082218
	TagPrimaryAnatomicStructSeq Tag = 0x00082228
	TagPatientName              Tag = 0x00100010
	TagPatientID                Tag = 0x00100020
	TagPatientBirthDate         Tag = 0x00100030
	TagStudyInstanceUID         Tag = 0x0020000D
	TagSeriesInstanceUID        Tag = 0x0020000E
	TagNumberOfFrames           Tag = 0x00280008
	TagRows                     Tag = 0x00280010
	TagColumns                  Tag = 0x00280011
	TagFloatPixelData           Tag = 0x7FE00008
	TagDoubleFloatPixelData     Tag = 0x7FE00009
	TagPixelData                Tag = 0x7FE00010
)

// DictionaryVR returns the VR the data dictionary gives a tag, as used to
// read implicit VR data sets. Unknown and private tags give "UN"; group
// length elements give "UL"; ambiguous entries resolve to their first choice.
func DictionaryVR(t Tag) string {
	if t.Element() == 0 {
		return "UL"
	}
	if t.IsPrivate() {
		if t.Element() >= 0x0010 && t.Element() <= 0x00FF {
			return "LO" // private creator
		}
		return "UN"
	}
	switch t {
	case TagPixelData:
		return "OW"
	}
	// Repeating groups (curves 50xx, overlays 60xx).
	if g := t.Group(); g&0xFF00 == 0x6000 {
		switch t.Element() {
		case 0x3000:
			return "OW"
		case 0x0010, 0x0011, 0x0100, 0x0102, 0x0015:
			return "US"
		case 0x0050:
			return "SS"
		case 0x0022, 0x1500:
			return "LO"
		case 0x0040:
			return "CS"
		}
		return "UN"
	}
	info, err := dtag.Find(dtag.Tag{Group: t.Group(), Element: t.Element()})
	if err != nil {
		return "UN"
	}
	switch vr := info.VR; vr {
	case "", "NA":
		return "UN"
	case "UP":
		return "UL"
	default:
		if len(vr) >= 2 {
			return vr[:2]
		}
		return "UN"
	}
}

// TagName returns the dictionary keyword of a tag, or "" if unknown.
func TagName(t Tag) string {
	info, err := dtag.Find(dtag.Tag{Group: t.Group(), Element: t.Element()})
	if err != nil {
		return ""
	}
	return info.Name
}
