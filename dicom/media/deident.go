package media

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/molar-health/molar/dicom/header"
)

// ErrBurnedIn: the image says it carries burned-in annotation, which the
// Basic Profile cannot clean without the Clean Pixel Data option.
var ErrBurnedIn = errors.New("media: burned-in annotation; not exported de-identified")

// Deidentifier applies the PS3.15 Annex E Basic Application Level
// Confidentiality Profile to data sets, optionally with the Retain
// Longitudinal Temporal Information with Full Dates option (KeepDates) and
// the Retain Device Identity option (KeepDevice).
//
// What it does, recursively in sequences:
//   - Patient's Name and Patient ID get a pseudonym per original patient
//     (ANONYM01^…, ANON0001), the same for every object of one export;
//   - the attributes of the profile's table that occur in dental imaging
//     are removed (X) or emptied (Z: the type 2 ones, e.g. Accession
//     Number, Study ID, Referring Physician's Name, Patient's Birth Date
//     and Sex); every other person name (PN) is removed;
//   - dates and times (DA, DT, TM): emptied for type 2 study/content dates,
//     removed elsewhere, unless KeepDates; the birth date is always emptied;
//   - every UID that is not a standard one (1.2.840.10008.…) and not a
//     class or syntax UID is replaced by a new 2.25 UID, consistently
//     within the export (the same old UID always gives the same new one);
//   - private attributes, curves and overlay data/comments are removed;
//   - Patient Identity Removed = YES, De-identification Method and its code
//     sequence (113100, plus 113106 and 113109 for the options) are added.
//
// Objects with Burned In Annotation YES are refused (ErrBurnedIn). An STL
// document's free-text header is blanked.
type Deidentifier struct {
	KeepDates, KeepDevice bool
	salt                  string
	patients              map[string]int
}

// NewDeidentifier returns a de-identifier whose UID and patient mapping
// holds for one export (a fresh random salt: two exports do not link).
func NewDeidentifier(keepDates, keepDevice bool) *Deidentifier {
	return &Deidentifier{KeepDates: keepDates, KeepDevice: keepDevice, salt: NewUID(), patients: map[string]int{}}
}

// MapUID returns the replacement of a UID (standard UIDs are kept).
func (d *Deidentifier) MapUID(u string) string {
	u = strings.TrimRight(u, "\x00 ")
	if u == "" || strings.HasPrefix(u, "1.2.840.10008.") {
		return u
	}
	return UIDFrom("molar-deidentify", d.salt, u)
}

type action byte

const (
	remove action = 'X'
	zero   action = 'Z'
	device action = 'V' // removed unless KeepDevice
)

// profile lists the Basic Profile actions for the attributes that are not
// covered by the VR rules (PN, DA/DT/TM, UI) below.
var profile = map[header.Tag]action{
	tag(0x0008, 0x0050): zero,   // Accession Number
	tag(0x0008, 0x0080): remove, // Institution Name
	tag(0x0008, 0x0081): remove, // Institution Address
	tag(0x0008, 0x0082): remove, // Institution Code Sequence
	tag(0x0008, 0x0092): remove, // Referring Physician's Address
	tag(0x0008, 0x0094): remove, // Referring Physician's Telephone Numbers
	tag(0x0008, 0x0096): remove, // Referring Physician Identification Sequence
	tag(0x0008, 0x009D): remove, // Consulting Physician Identification Sequence
	tag(0x0008, 0x1010): device, // Station Name
	tag(0x0008, 0x1030): remove, // Study Description
	tag(0x0008, 0x103E): remove, // Series Description
	tag(0x0008, 0x1040): remove, // Institutional Department Name
	tag(0x0008, 0x1049): remove, // Physician(s) of Record Identification Sequence
	tag(0x0008, 0x1052): remove, // Performing Physician Identification Sequence
	tag(0x0008, 0x1062): remove, // Physician(s) Reading Study Identification Sequence
	tag(0x0008, 0x1072): remove, // Operator Identification Sequence
	tag(0x0008, 0x1080): remove, // Admitting Diagnoses Description
	tag(0x0008, 0x1084): remove, // Admitting Diagnoses Code Sequence
	tag(0x0008, 0x1110): remove, // Referenced Study Sequence
	tag(0x0008, 0x1111): remove, // Referenced Performed Procedure Step Sequence
	tag(0x0008, 0x1120): remove, // Referenced Patient Sequence
	tag(0x0008, 0x2111): remove, // Derivation Description
	tag(0x0010, 0x0021): remove, // Issuer of Patient ID
	tag(0x0010, 0x0040): zero,   // Patient's Sex
	tag(0x0010, 0x0050): remove, // Patient's Insurance Plan Code Sequence
	tag(0x0010, 0x0101): remove, // Patient's Primary Language Code Sequence
	tag(0x0010, 0x0102): remove, // Patient's Primary Language Modifier Code Sequence
	tag(0x0010, 0x1000): remove, // Other Patient IDs
	tag(0x0010, 0x1002): remove, // Other Patient IDs Sequence
	tag(0x0010, 0x1010): remove, // Patient's Age
	tag(0x0010, 0x1020): remove, // Patient's Size
	tag(0x0010, 0x1030): remove, // Patient's Weight
	tag(0x0010, 0x1040): remove, // Patient's Address
	tag(0x0010, 0x1080): remove, // Military Rank
	tag(0x0010, 0x1081): remove, // Branch of Service
	tag(0x0010, 0x1090): remove, // Medical Record Locator
	tag(0x0010, 0x2000): remove, // Medical Alerts
	tag(0x0010, 0x2110): remove, // Allergies
	tag(0x0010, 0x2150): remove, // Country of Residence
	tag(0x0010, 0x2152): remove, // Region of Residence
	tag(0x0010, 0x2154): remove, // Patient's Telephone Numbers
	tag(0x0010, 0x2160): remove, // Ethnic Group
	tag(0x0010, 0x2180): remove, // Occupation
	tag(0x0010, 0x21A0): remove, // Smoking Status
	tag(0x0010, 0x21B0): remove, // Additional Patient History
	tag(0x0010, 0x21C0): remove, // Pregnancy Status
	tag(0x0010, 0x21F0): remove, // Patient's Religious Preference
	tag(0x0010, 0x2203): remove, // Patient's Sex Neutered
	tag(0x0010, 0x4000): remove, // Patient Comments
	tag(0x0018, 0x1000): device, // Device Serial Number
	tag(0x0018, 0x1002): device, // Device UID
	tag(0x0018, 0x1004): device, // Plate ID
	tag(0x0018, 0x1005): device, // Generator ID
	tag(0x0018, 0x1007): device, // Cassette ID
	tag(0x0018, 0x1008): device, // Gantry ID
	tag(0x0018, 0x700A): device, // Detector ID
	tag(0x0018, 0x1030): remove, // Protocol Name
	tag(0x0018, 0x4000): remove, // Acquisition Comments
	tag(0x0020, 0x0010): zero,   // Study ID
	tag(0x0020, 0x4000): remove, // Image Comments
	tag(0x0020, 0x9158): remove, // Frame Comments
	tag(0x0032, 0x1033): remove, // Requesting Service
	tag(0x0032, 0x1060): remove, // Requested Procedure Description
	tag(0x0032, 0x1070): remove, // Requested Contrast Agent
	tag(0x0032, 0x4000): remove, // Study Comments
	tag(0x0038, 0x0010): remove, // Admission ID
	tag(0x0038, 0x0300): remove, // Current Patient Location
	tag(0x0038, 0x0400): remove, // Patient's Institution Residence
	tag(0x0038, 0x0500): remove, // Patient State
	tag(0x0038, 0x4000): remove, // Visit Comments
	tag(0x0040, 0x0001): remove, // Scheduled Station AE Title
	tag(0x0040, 0x0007): remove, // Scheduled Procedure Step Description
	tag(0x0040, 0x0010): remove, // Scheduled Station Name
	tag(0x0040, 0x0011): remove, // Scheduled Procedure Step Location
	tag(0x0040, 0x0241): remove, // Performed Station AE Title
	tag(0x0040, 0x0242): remove, // Performed Station Name
	tag(0x0040, 0x0243): remove, // Performed Location
	tag(0x0040, 0x0253): remove, // Performed Procedure Step ID
	tag(0x0040, 0x0254): remove, // Performed Procedure Step Description
	tag(0x0040, 0x0275): remove, // Request Attributes Sequence
	tag(0x0040, 0x0280): remove, // Comments on the Performed Procedure Step
	tag(0x0040, 0x1001): remove, // Requested Procedure ID
	tag(0x0040, 0x1400): remove, // Requested Procedure Comments
	tag(0x0040, 0x2016): remove, // Placer Order Number / Imaging Service Request
	tag(0x0040, 0x2017): remove, // Filler Order Number / Imaging Service Request
	tag(0x0040, 0x2400): remove, // Imaging Service Request Comments
	tag(0x0040, 0xA07A): remove, // Participant Sequence
	tag(0x0040, 0xA730): remove, // Content Sequence
	tag(0x0042, 0x0010): zero,   // Document Title
	tag(0x0400, 0x0561): remove, // Original Attributes Sequence
}

// zeroDates are the type 2 dates and times that are emptied, not removed.
var zeroDates = map[header.Tag]bool{
	header.TagStudyDate: true, tag(0x0008, 0x0030): true, // Study Date, Time
	tag(0x0008, 0x0023): true, tag(0x0008, 0x0033): true, // Content Date, Time
	tag(0x0008, 0x002A): true, // Acquisition DateTime (type 2 in Encapsulated Document)
}

// zeroNames are the type 2 person names that are emptied, not removed.
var zeroNames = map[header.Tag]bool{tag(0x0008, 0x0090): true, tag(0x0070, 0x0084): true}

// keepUIDs are class and syntax UIDs (never instance UIDs).
var keepUIDs = map[header.Tag]bool{
	header.TagSOPClassUID: true, tag(0x0008, 0x1150): true, tag(0x0008, 0x001A): true, tag(0x0008, 0x001B): true,
	tag(0x0008, 0x010C): true, tag(0x0008, 0x0117): true, tag(0x0004, 0x1510): true, tag(0x0004, 0x1512): true,
	header.TagTransferSyntaxUID: true, header.TagMediaStorageSOPClassUID: true, header.TagImplementationClassUID: true,
}

// Apply de-identifies ds in place.
func (d *Deidentifier) Apply(ds *header.Dataset) error {
	if strings.EqualFold(strings.TrimSpace(ds.Get(tag(0x0028, 0x0301))), "YES") {
		return ErrBurnedIn
	}
	key := ds.Get(header.TagPatientID) + "\x00" + ds.Get(header.TagPatientName)
	n, ok := d.patients[key]
	if !ok {
		n = len(d.patients) + 1
		d.patients[key] = n
	}
	d.apply(ds, 0)
	ds.SetString(header.TagPatientName, "PN", fmt.Sprintf("ANONYM%02d^Patient", n))
	ds.SetString(header.TagPatientID, "LO", fmt.Sprintf("ANON%04d", n))
	ds.SetString(header.TagPatientBirthDate, "DA", "")
	ds.SetString(tag(0x0012, 0x0062), "CS", "YES")
	method := "PS3.15 E Basic Profile"
	codes := []*header.Dataset{code("113100", "Basic Application Confidentiality Profile")}
	if d.KeepDates {
		method += ", Retain Longitudinal Full Dates"
		codes = append(codes, code("113106", "Retain Longitudinal Temporal Information Full Dates Option"))
	}
	if d.KeepDevice {
		method += ", Retain Device Identity"
		codes = append(codes, code("113109", "Retain Device Identity Option"))
	}
	ds.SetString(tag(0x0012, 0x0063), "LO", method)
	ds.SetSequence(tag(0x0012, 0x0064), codes...)
	if d.KeepDates {
		ds.SetString(tag(0x0028, 0x0303), "CS", "UNMODIFIED")
	} else {
		ds.SetString(tag(0x0028, 0x0303), "CS", "REMOVED")
	}
	if strings.TrimSpace(ds.Get(tag(0x0042, 0x0012))) == "model/stl" {
		if e := ds.Find(tag(0x0042, 0x0011)); e != nil {
			e.Value = blankSTLHeader(e.Value)
		}
	}
	return nil
}

func code(value, meaning string) *header.Dataset {
	c := header.NewDataset()
	c.SetString(tag(0x0008, 0x0100), "SH", value)
	c.SetString(tag(0x0008, 0x0102), "SH", "DCM")
	c.SetString(tag(0x0008, 0x0104), "LO", meaning)
	return c
}

func (d *Deidentifier) apply(ds *header.Dataset, depth int) {
	out := ds.Elements[:0]
	for _, e := range ds.Elements {
		t := e.Tag
		g := t.Group()
		switch {
		case t.IsPrivate():
			continue
		case g >= 0x5000 && g <= 0x50FF: // curves
			continue
		case g >= 0x6000 && g <= 0x60FF && (t.Element() == 0x3000 || t.Element() == 0x4000): // overlay data, comments
			continue
		case t == header.TagPatientName || t == header.TagPatientID:
			if depth == 0 { // replaced by the pseudonym
				out = append(out, e)
			}
			continue
		case t == header.TagPixelData:
			out = append(out, e)
			continue
		}
		if a, ok := d.action(e); ok {
			switch a {
			case remove:
				continue
			case zero:
				e = &header.Element{Tag: t, VR: e.VR}
				if e.VR == "SQ" {
					e.Items = []*header.Dataset{}
				}
			}
		}
		for _, it := range e.Items {
			d.apply(it, depth+1)
		}
		if e.VR == "UI" && !keepUIDs[t] && !(d.KeepDevice && t == tag(0x0018, 0x1002)) {
			vals := strings.Split(strings.TrimRight(string(e.Value), "\x00 "), `\`)
			for i, v := range vals {
				vals[i] = d.MapUID(v)
			}
			e = &header.Element{Tag: t, VR: "UI", Value: []byte(strings.Join(vals, `\`))}
		}
		out = append(out, e)
	}
	ds.Elements = out
}

// action returns what happens to an element (ok=false: keep it).
func (d *Deidentifier) action(e *header.Element) (action, bool) {
	if a, ok := profile[e.Tag]; ok {
		if a == device {
			if d.KeepDevice {
				return 0, false
			}
			if e.Tag == tag(0x0018, 0x1000) { // type 1 in Enhanced General Equipment: a dummy would do; empty it
				return zero, true
			}
			if e.Tag == tag(0x0018, 0x1002) {
				return 0, false // a UID: replaced by the UID rule
			}
			return remove, true
		}
		return a, true
	}
	switch e.VR {
	case "PN":
		if zeroNames[e.Tag] {
			return zero, true
		}
		return remove, true
	case "DA", "DT", "TM":
		if e.Tag == header.TagPatientBirthDate {
			return zero, true
		}
		if d.KeepDates {
			return 0, false
		}
		if e.Tag == tag(0x0010, 0x0032) || zeroDates[e.Tag] {
			return zero, true
		}
		return remove, true
	}
	return 0, false
}

// blankSTLHeader clears the free text of an STL file: the 80-byte header
// of a binary STL, the name after "solid" of an ASCII one.
func blankSTLHeader(b []byte) []byte {
	out := append([]byte(nil), b...)
	if checkSTL(b) != nil {
		return out
	}
	if len(b) >= 84 && int64(len(b)) == 84+50*int64(uint32(b[80])|uint32(b[81])<<8|uint32(b[82])<<16|uint32(b[83])<<24) {
		copy(out[:80], bytes.Repeat([]byte{' '}, 80))
		copy(out, "de-identified by Molar")
		return out
	}
	if i := bytes.IndexByte(out, '\n'); i > 0 {
		for k := bytes.Index(out, []byte("solid")) + 5; k < i; k++ {
			if out[k] != '\r' {
				out[k] = ' '
			}
		}
	}
	return out
}
