package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// ErrNotDeidentifiable: an object whose identifying content the profile
// cannot clean; a de-identified export leaves it out, with the reason.
var ErrNotDeidentifiable = errors.New("cannot be de-identified")

// ErrBurnedIn: the image says it carries burned-in annotation, which the
// Basic Profile cannot clean without the Clean Pixel Data option.
var ErrBurnedIn = fmt.Errorf("%w: burned-in annotation", ErrNotDeidentifiable)

// Reasons beside burned-in annotation.
var (
	// errFace: Recognizable Visual Features YES (a face in a photo); the
	// profile cannot clean it without the Clean Recognizable Visual
	// Features option.
	errFace = fmt.Errorf("%w: recognizable visual features (a face)", ErrNotDeidentifiable)
	// errDocument: an encapsulated PDF, CDA, OBJ or MTL document, whose
	// content (names, dates, comments) the profile does not reach.
	errDocument = fmt.Errorf("%w: an encapsulated document whose content cannot be cleaned", ErrNotDeidentifiable)
)

// opaqueDocuments are the encapsulated document classes refused by
// de-identification (an STL's only free text, its header and solid names,
// is blanked instead).
var opaqueDocuments = classSet(
	"1.2.840.10008.5.1.4.1.1.104.1", // PDF
	"1.2.840.10008.5.1.4.1.1.104.2", // CDA
	"1.2.840.10008.5.1.4.1.1.104.4", // OBJ
	"1.2.840.10008.5.1.4.1.1.104.5", // MTL
)

// Deidentifier applies the PS3.15 Annex E Basic Application Level
// Confidentiality Profile to data sets, optionally with the Retain
// Longitudinal Temporal Information with Full Dates option (KeepDates) and
// the Retain Device Identity option (KeepDevice).
//
// What it does, at every nesting level (sequence items included):
//   - every attribute of PS3.15 Table E.1-1 gets its Basic Profile action
//     from profileTable (deident_table.go): D a dummy value of the VR (a
//     sequence: one empty item), Z zero length, X removed, U UID replaced,
//     K kept; the combined actions Z/D, X/Z, X/D, X/Z/D and X/Z/U* take the
//     first alternative unless the attribute is type 2 or 1 at the top
//     level of the object's IOD (requiredType: e.g. Acquisition Context
//     Sequence in DX and intra-oral images, Device Serial Number in
//     Encapsulated STL, Content Date in enhanced multi-frame images);
//   - with KeepDates (113106) the rows marked K in the Retain Longitudinal
//     Temporal Information with Full Dates column are kept, with KeepDevice
//     (113109) those of the Retain Device Identity column;
//   - Patient's Name and Patient ID (Z) get a pseudonym per original
//     patient (ANONYM01^…, ANON0001), the same for every object of one
//     export; Patient's Birth Date is always present and empty;
//   - outside the table: person names (PN) are removed, dates and times
//     (DA, DT, TM) too unless KeepDates, and every UID that is not a
//     standard one (1.2.840.10008.…) and not a class or syntax UID is
//     replaced like the U rows;
//   - UIDs are replaced by 2.25 UIDs derived from the old UID and a salt
//     per export: the same old UID gives the same new one in one export;
//   - private attributes, curves and overlay data/comments are removed
//     (rows of the table with a tag pattern);
//   - Patient Identity Removed = YES, De-identification Method and its code
//     sequence (113100, plus 113106 and 113109 for the options) are added.
//
// Refused (ErrNotDeidentifiable, with the reason): Burned In Annotation
// YES (ErrBurnedIn), Recognizable Visual Features YES, and encapsulated
// PDF, CDA, OBJ and MTL documents. An STL document's free-text header is
// blanked.
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

// keepUIDs are class and syntax UIDs (never instance UIDs): the broad UID
// rule for attributes outside Table E.1-1 leaves them alone.
var keepUIDs = map[header.Tag]bool{
	header.TagSOPClassUID: true, tag(0x0008, 0x1150): true, tag(0x0008, 0x001A): true, tag(0x0008, 0x001B): true,
	tag(0x0008, 0x010C): true, tag(0x0008, 0x0117): true, tag(0x0004, 0x1510): true, tag(0x0004, 0x1512): true,
	header.TagTransferSyntaxUID: true, header.TagMediaStorageSOPClassUID: true, header.TagImplementationClassUID: true,
	tag(0x0008, 0x0062): true,
}

// SOP classes whose IODs make some attributes with a combined action
// (X/Z, X/D, X/Z/D, Z/D, X/Z/U*) type 1 or 2 at the top level of the data
// set (PS3.3). For every other class and in sequence items the first
// alternative is taken (X, or Z for Z/D).
var (
	// Multi-frame Functional Groups Module (Content Date/Time type 1) and
	// the Enhanced image modules (Acquisition DateTime type 1C).
	enhancedClasses = classSet(
		"1.2.840.10008.5.1.4.1.1.2.1",    // Enhanced CT
		"1.2.840.10008.5.1.4.1.1.4.1",    // Enhanced MR
		"1.2.840.10008.5.1.4.1.1.12.1.1", // Enhanced XA
		"1.2.840.10008.5.1.4.1.1.12.2.1", // Enhanced XRF
	)
	// Encapsulated Document Module: Acquisition DateTime type 2.
	encapsulatedClasses = classSet(
		"1.2.840.10008.5.1.4.1.1.104.1", // PDF
		"1.2.840.10008.5.1.4.1.1.104.2", // CDA
		EncapsulatedSTL,
		"1.2.840.10008.5.1.4.1.1.104.4", // OBJ
		"1.2.840.10008.5.1.4.1.1.104.5", // MTL
	)
	// Enhanced General Equipment Module: Device Serial Number type 1.
	enhancedEquipmentClasses = classSet(
		"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.4.1",
		"1.2.840.10008.5.1.4.1.1.12.1.1", "1.2.840.10008.5.1.4.1.1.12.2.1",
		"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.5", // Segmentation, Surface Segmentation
		EncapsulatedSTL, "1.2.840.10008.5.1.4.1.1.104.4", "1.2.840.10008.5.1.4.1.1.104.5",
	)
	// Acquisition Context Module mandatory: Acquisition Context Sequence type 2.
	acquisitionContextClasses = classSet(
		"1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1", // DX
		"1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.1.2.1", // MG
		"1.2.840.10008.5.1.4.1.1.1.3", "1.2.840.10008.5.1.4.1.1.1.3.1", // Intra-oral
		"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.4.1",
		"1.2.840.10008.5.1.4.1.1.12.1.1", "1.2.840.10008.5.1.4.1.1.12.2.1",
		"1.2.840.10008.5.1.4.1.1.77.1.1", "1.2.840.10008.5.1.4.1.1.77.1.2", // VL Endoscopic, Microscopic
		"1.2.840.10008.5.1.4.1.1.77.1.3", "1.2.840.10008.5.1.4.1.1.77.1.4", // VL Slide-Coordinates, Photographic
		"1.2.840.10008.5.1.4.1.1.77.1.1.1", "1.2.840.10008.5.1.4.1.1.77.1.4.1", // Video Endoscopic, Photographic
	)
)

func classSet(uids ...string) map[string]bool {
	m := make(map[string]bool, len(uids))
	for _, u := range uids {
		m[u] = true
	}
	return m
}

// requiredType returns the type (1, 2 or 3) that an attribute with a
// combined action has at the top level of an object of the SOP class.
func requiredType(t header.Tag, class string) int {
	switch t {
	case tag(0x0040, 0x0555): // Acquisition Context Sequence
		if acquisitionContextClasses[class] {
			return 2
		}
	case tag(0x0008, 0x0023), tag(0x0008, 0x0033): // Content Date, Time
		if enhancedClasses[class] {
			return 1
		}
		return 2
	case tag(0x0008, 0x002A): // Acquisition DateTime
		if enhancedClasses[class] {
			return 1
		}
		if encapsulatedClasses[class] {
			return 2
		}
	case tag(0x0018, 0x1000): // Device Serial Number
		if enhancedEquipmentClasses[class] {
			return 1
		}
	}
	return 3
}

// resolve turns a combined action into the one that applies: X where the
// attribute is optional (type 3), Z where it is type 2, D (or U for the
// UIDs inside an X/Z/U* sequence) where it is type 1.
func resolve(a action, t header.Tag, class string, depth int) action {
	typ := 3
	if depth == 0 {
		typ = requiredType(t, class)
	}
	return resolveType(a, typ)
}

// resolveType resolves a combined action for an attribute of type typ.
func resolveType(a action, typ int) action {
	switch a {
	case aZD:
		if typ == 1 {
			return aD
		}
		return aZ
	case aXZ, aXD, aXZD, aXZU:
		switch {
		case typ == 1 && a == aXZU:
			return aU // kept, the instance UIDs inside replaced
		case typ == 1 && a != aXZ:
			return aD
		case typ <= 2 && a != aXD:
			return aZ // X/Z for a type 1 attribute: Z is as close as it allows
		case typ <= 2:
			return aD // X/D for a type 2 attribute
		}
		return aX
	}
	return a
}

// Apply de-identifies ds in place.
func (d *Deidentifier) Apply(ds *header.Dataset) error {
	_, err := d.apply(ds)
	return err
}

// apply de-identifies ds in place and returns the walk it used, for the
// elements of the same object that follow its pixel data (applyRest).
func (d *Deidentifier) apply(ds *header.Dataset) (*walk, error) {
	if strings.EqualFold(strings.TrimSpace(ds.Get(tag(0x0028, 0x0301))), "YES") {
		return nil, ErrBurnedIn
	}
	if strings.EqualFold(strings.TrimSpace(ds.Get(tag(0x0028, 0x0302))), "YES") {
		return nil, errFace
	}
	if opaqueDocuments[ds.UID(header.TagSOPClassUID)] {
		return nil, errDocument
	}
	key := ds.Get(header.TagPatientID) + "\x00" + ds.Get(header.TagPatientName)
	n, ok := d.patients[key]
	if !ok {
		n = len(d.patients) + 1
		d.patients[key] = n
	}
	w := &walk{d: d, class: ds.UID(header.TagSOPClassUID),
		name: fmt.Sprintf("ANONYM%02d^Patient", n), id: fmt.Sprintf("ANON%04d", n)}
	w.apply(ds, 0)
	ds.SetString(header.TagPatientName, "PN", w.name)
	ds.SetString(header.TagPatientID, "LO", w.id)
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
	return w, nil
}

// applyRest de-identifies top-level elements of an object that come after
// its pixel data (private groups such as 7FE1, Digital Signatures
// Sequence, Data Set Trailing Padding): the same profile, nothing added.
func (w *walk) applyRest(ds *header.Dataset) { w.apply(ds, 0) }

func code(value, meaning string) *header.Dataset {
	c := header.NewDataset()
	c.SetString(tag(0x0008, 0x0100), "SH", value)
	c.SetString(tag(0x0008, 0x0102), "SH", "DCM")
	c.SetString(tag(0x0008, 0x0104), "LO", meaning)
	return c
}

// walk de-identifies one object: its SOP class decides the combined
// actions at the top level; name and id are the patient's pseudonym.
type walk struct {
	d        *Deidentifier
	class    string
	name, id string
}

// apply applies the profile to the elements of ds and, recursively, to the
// items of the sequences that stay.
func (w *walk) apply(ds *header.Dataset, depth int) {
	out := ds.Elements[:0]
	for _, e := range ds.Elements {
		if e.Tag == header.TagPixelData {
			out = append(out, e)
			continue
		}
		if e.Items == nil && effectiveVR(e) == "SQ" {
			// A sequence passed on as UN of defined length: parsed to be
			// cleaned like any other; one that cannot be read is removed.
			if e = unSequence(e); e == nil {
				continue
			}
		}
		a, inTable := w.d.actionFor(e, w.class, depth)
		if e.Tag == header.TagPatientName || e.Tag == header.TagPatientID {
			// Z allows a dummy value: the pseudonym, at every level.
			v := w.id
			if e.Tag == header.TagPatientName {
				v = w.name
			}
			out = append(out, &header.Element{Tag: e.Tag, VR: e.VR, Value: []byte(v)})
			continue
		}
		ne := w.d.do(a, e)
		if ne == nil {
			continue
		}
		if !inTable && effectiveVR(ne) == "UI" && !keepUIDs[ne.Tag] {
			ne = w.d.mapUIDs(ne) // UIDs outside the table: replaced as well
		}
		for _, it := range ne.Items {
			w.apply(it, depth+1)
		}
		out = append(out, ne)
	}
	ds.Elements = out
}

// actionFor returns the action for an element and whether it comes from
// Table E.1-1. Outside the table (PS3.15 E.1.1 leaves these to the
// implementation), person names are removed and, unless dates are kept,
// so are dates and times; everything else is kept (sequences cleaned).
func (d *Deidentifier) actionFor(e *header.Element, class string, depth int) (action, bool) {
	if r := profileRowFor(e.Tag); r != nil {
		if d.KeepDates && r.opts&optDates != 0 || d.KeepDevice && r.opts&optDevice != 0 {
			return aK, true
		}
		return resolve(r.basic, e.Tag, class, depth), true
	}
	switch effectiveVR(e) {
	case "PN":
		return aX, false
	case "DA", "DT", "TM":
		if !d.KeepDates {
			return aX, false
		}
	}
	return aK, false
}

// effectiveVR is the VR an element has for the profile: a standard
// attribute that reached Molar as UN (explicit VR, sent by a system that
// did not know it) has the VR of the data dictionary, so that names, dates
// and UIDs outside the table are found whatever their encoding.
func effectiveVR(e *header.Element) string {
	if e.VR == "UN" && !e.Tag.IsPrivate() {
		if vr := header.DictionaryVR(e.Tag); vr != "UN" {
			return vr
		}
	}
	return e.VR
}

// unSequence parses the value of a UN element of defined length that is a
// sequence in the dictionary (its items are implicit VR little endian,
// PS3.5 6.2.2); nil when it cannot be read.
func unSequence(e *header.Element) *header.Element {
	var b bytes.Buffer
	b.Grow(8 + len(e.Value))
	b.Write(binary.LittleEndian.AppendUint16(nil, e.Tag.Group()))
	b.Write(binary.LittleEndian.AppendUint16(nil, e.Tag.Element()))
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(e.Value))))
	b.Write(e.Value)
	h, err := header.Read(&b, header.Options{TransferSyntax: uid.ImplicitVRLittleEndian})
	if err != nil || len(h.Dataset.Elements) != 1 || h.Dataset.Elements[0].Tag != e.Tag || h.Dataset.Elements[0].Items == nil {
		return nil
	}
	s := h.Dataset.Elements[0]
	s.VR = "SQ"
	return s
}

// do applies a resolved action to e; nil means removed.
func (d *Deidentifier) do(a action, e *header.Element) *header.Element {
	switch a {
	case aX:
		return nil
	case aZ:
		z := &header.Element{Tag: e.Tag, VR: e.VR}
		if e.IsSequence() {
			z.Items = []*header.Dataset{}
		}
		return z
	case aD, aC:
		// C (clean) has no semantic cleaner here: a non-identifying dummy
		// of the VR, as D; a sequence keeps its items, cleaned recursively.
		if a == aC && e.IsSequence() {
			return e
		}
		return dummy(e, d)
	case aU:
		if e.IsSequence() { // X/Z/U* resolved to U: items kept, their UIDs replaced
			return e
		}
		return d.mapUIDs(e)
	}
	return e // K
}

// mapUIDs replaces every value of a UI element (standard UIDs stay).
func (d *Deidentifier) mapUIDs(e *header.Element) *header.Element {
	if e.VR != "UI" && e.VR != "UN" {
		return e
	}
	s := strings.TrimRight(string(e.Value), "\x00 ")
	if s == "" {
		return &header.Element{Tag: e.Tag, VR: e.VR}
	}
	vals := strings.Split(s, `\`)
	for i, v := range vals {
		vals[i] = d.MapUID(v)
	}
	return &header.Element{Tag: e.Tag, VR: e.VR, Value: []byte(strings.Join(vals, `\`))}
}

// dummy returns a non-zero length value of e's VR that identifies no one.
// A sequence gets one empty item; binary values are zeros (the same in
// either byte order).
func dummy(e *header.Element, d *Deidentifier) *header.Element {
	out := &header.Element{Tag: e.Tag, VR: e.VR}
	if e.IsSequence() {
		out.Items = []*header.Dataset{header.NewDataset()}
		return out
	}
	var v string
	switch e.VR {
	case "DA":
		v = "19000101"
	case "TM":
		v = "000000"
	case "DT":
		v = "19000101000000"
	case "PN":
		v = "ANONYMIZED"
	case "AS":
		v = "000Y"
	case "DS", "IS":
		v = "0"
	case "UI":
		if u := strings.TrimRight(string(e.Value), "\x00 "); u != "" {
			return d.mapUIDs(e)
		}
		v = d.MapUID(NewUID())
	case "UR":
		v = "urn:anonymized"
	case "US", "SS":
		return &header.Element{Tag: e.Tag, VR: e.VR, Value: make([]byte, 2)}
	case "UL", "SL", "FL", "AT":
		return &header.Element{Tag: e.Tag, VR: e.VR, Value: make([]byte, 4)}
	case "FD", "SV", "UV":
		return &header.Element{Tag: e.Tag, VR: e.VR, Value: make([]byte, 8)}
	case "OB", "OW", "OD", "OF", "OL", "OV", "UN":
		return &header.Element{Tag: e.Tag, VR: e.VR, Value: make([]byte, 2)}
	default: // AE, CS, LO, LT, SH, ST, UC, UT
		v = "ANONYMIZED"
	}
	out.Value = []byte(v)
	return out
}

// blankSTLHeader clears the free text of an STL file: the 80-byte header
// of a binary STL, the names after "solid" and "endsolid" of an ASCII one.
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
	// ASCII: the name on every "solid name" and "endsolid name" line (a
	// file may hold several solids; the name is often repeated at the end).
	for line := out; len(line) > 0; {
		end := bytes.IndexByte(line, '\n')
		if end < 0 {
			end = len(line)
		}
		l := line[:end]
		t := bytes.TrimLeft(l, " \t")
		for _, kw := range []string{"endsolid", "solid"} {
			if bytes.HasPrefix(t, []byte(kw)) {
				for k := len(l) - len(t) + len(kw); k < len(l); k++ {
					if l[k] != '\r' {
						l[k] = ' '
					}
				}
				break
			}
		}
		line = line[min(end+1, len(line)):]
	}
	return out
}
