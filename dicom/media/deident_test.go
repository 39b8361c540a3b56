package media

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/dicom/header"
)

// TestProfileTable: the transcription of PS3.15 Table E.1-1 (the edition
// named in deident_table.go) has all 460 rows, no tag twice, a name and an
// action for each, and option marks only where they make sense.
func TestProfileTable(t *testing.T) {
	require.Len(t, profileTable, 460, "rows of PS3.15 Table E.1-1 as transcribed")
	seen := map[[2]header.Tag]string{}
	kinds := map[action]int{}
	for _, r := range profileTable {
		k := [2]header.Tag{r.tag, r.mask}
		require.NotContains(t, seen, k, "%s %s twice (also %s)", r.tag, r.name, seen[k])
		seen[k] = r.name
		require.NotEmpty(t, r.name)
		require.NotEmpty(t, r.basic.String(), "%s: action", r.name)
		require.NotEqual(t, aK, r.basic, "%s: the Basic Profile never keeps", r.name)
		if r.mask != 0 {
			require.Equal(t, r.tag, r.tag&r.mask, "%s: pattern", r.name)
		}
		kinds[r.basic]++
	}
	require.Len(t, profileRows, 456)
	require.Len(t, profilePatterns, 4)
	// The action kinds of the table and how often they occur.
	require.Equal(t, map[action]int{aD: 45, aZ: 37, aX: 287, aU: 50, aZD: 4, aXZ: 10, aXD: 18, aXZD: 7, aXZU: 2}, kinds)
	for _, c := range []struct {
		tag  header.Tag
		name string
	}{
		{0x50003000, "Curve Data (50xx,xxxx)"}, {0x50FE0010, "Curve Data (50xx,xxxx)"},
		{0x60003000, "Overlay Data (60xx,3000)"}, {0x601E4000, "Overlay Comments (60xx,4000)"},
		{0x00091001, "Private attributes (gggg,eeee) with gggg odd"}, {0x7FE10010, "Private attributes (gggg,eeee) with gggg odd"},
		{0x00080050, "Accession Number"},
	} {
		r := profileRowFor(c.tag)
		require.NotNil(t, r, "%s", c.tag)
		require.Equal(t, c.name, r.name, "%s", c.tag)
	}
	for _, tg := range []header.Tag{0x60000010, 0x00080060, 0x7FE00010, 0x00280010} { // overlay rows, modality, pixel data, rows
		require.Nil(t, profileRowFor(tg), "%s is not in the table", tg)
	}
}

// TestResolveCombinedActions: each combined action against the type the
// attribute has in the IOD.
func TestResolveCombinedActions(t *testing.T) {
	for _, c := range []struct {
		a    action
		typ  int
		want action
	}{
		{aZD, 3, aZ}, {aZD, 2, aZ}, {aZD, 1, aD},
		{aXZ, 3, aX}, {aXZ, 2, aZ}, {aXZ, 1, aZ},
		{aXD, 3, aX}, {aXD, 2, aD}, {aXD, 1, aD},
		{aXZD, 3, aX}, {aXZD, 2, aZ}, {aXZD, 1, aD},
		{aXZU, 3, aX}, {aXZU, 2, aZ}, {aXZU, 1, aU},
		{aD, 3, aD}, {aZ, 3, aZ}, {aX, 1, aX}, {aU, 3, aU}, {aK, 3, aK}, {aC, 3, aC},
	} {
		require.Equal(t, c.want, resolveType(c.a, c.typ), "%s type %d", c.a, c.typ)
	}
	// The IOD knowledge: nested items always take the first alternative.
	require.Equal(t, aZ, resolve(aXZ, tag(0x0040, 0x0555), IntraOralForPresentation, 0))
	require.Equal(t, aX, resolve(aXZ, tag(0x0040, 0x0555), IntraOralForPresentation, 1))
	require.Equal(t, aX, resolve(aXZ, tag(0x0040, 0x0555), SecondaryCapture, 0))
	require.Equal(t, aD, resolve(aXZD, tag(0x0018, 0x1000), EncapsulatedSTL, 0))
	require.Equal(t, aZ, resolve(aXZD, tag(0x0008, 0x002A), EncapsulatedSTL, 0))
	require.Equal(t, aD, resolve(aZD, tag(0x0008, 0x0023), EnhancedCT, 0))
}

const (
	IntraOralForPresentation = "1.2.840.10008.5.1.4.1.1.1.3"
	SecondaryCapture         = "1.2.840.10008.5.1.4.1.1.7"
	EnhancedCT               = "1.2.840.10008.5.1.4.1.1.2.1"
)

// deidSample builds an object of the SOP class with attributes for every
// kind of action, some in sequence items.
func deidSample(class string) *header.Dataset {
	item := func(f func(*header.Dataset)) *header.Dataset { d := header.NewDataset(); f(d); return d }
	ds := header.NewDataset()
	ds.SetString(header.TagSOPClassUID, "UI", class)
	ds.SetString(header.TagSOPInstanceUID, "UI", "1.2.3.4.5")
	ds.SetString(header.TagStudyInstanceUID, "UI", "1.2.3.4")
	ds.SetString(tag(0x0020, 0x0052), "UI", "1.2.3.9")                               // Frame of Reference UID: U
	ds.SetString(tag(0x0008, 0x0050), "SH", "ACC123")                                // Accession Number: Z
	ds.SetString(header.TagStudyDate, "DA", "20240506")                              // Study Date: Z, K with dates
	ds.SetString(tag(0x0008, 0x0021), "DA", "20240506")                              // Series Date: X/D
	ds.SetString(tag(0x0008, 0x0022), "DA", "20240506")                              // Acquisition Date: X/Z, K with dates
	ds.SetString(tag(0x0008, 0x0023), "DA", "20240506")                              // Content Date: Z/D
	ds.SetString(tag(0x0008, 0x0012), "DA", "20240506")                              // Instance Creation Date: not in the table, a date
	ds.SetString(header.TagModality, "CS", "IO")                                     // not in the table: K
	ds.SetString(tag(0x0008, 0x0070), "LO", "Acme")                                  // Manufacturer: not in the table: K
	ds.SetString(tag(0x0008, 0x0080), "LO", "Tandklinik Nord")                       // Institution Name: X/Z/D
	ds.SetString(tag(0x0008, 0x0090), "PN", "Dr^Who")                                // Referring Physician's Name: Z
	ds.SetString(tag(0x0008, 0x1010), "SH", "XRAY-ROOM-2")                           // Station Name: X/Z/D, K with device
	ds.SetString(tag(0x0008, 0x1070), "PN", "Nurse^Jane")                            // Operators' Name: X/Z/D
	ds.SetString(tag(0x0010, 0x0010), "PN", "Ørsted^Åse")                            // Patient's Name: Z (pseudonym)
	ds.SetString(tag(0x0010, 0x0020), "LO", "0101154321")                            // Patient ID: Z (pseudonym)
	ds.SetString(tag(0x0010, 0x0030), "DA", "20150101")                              // Patient's Birth Date: Z, also with dates
	ds.SetString(tag(0x0010, 0x1040), "LO", "Nørregade 1")                           // Patient's Address: X
	ds.SetString(tag(0x0018, 0x1000), "LO", "SN-42")                                 // Device Serial Number: X/Z/D, K with device
	ds.SetString(tag(0x0018, 0x1002), "UI", "1.2.3.77")                              // Device UID: U, K with device
	ds.SetString(tag(0x0018, 0x1030), "LO", "Bitewing left")                         // Protocol Name: X/D
	ds.SetString(tag(0x0020, 0x0010), "SH", "S1")                                    // Study ID: Z
	ds.SetString(tag(0x0040, 0xA075), "PN", "Observer^Olga")                         // Verifying Observer Name: D
	ds.SetString(tag(0x0009, 0x0010), "LO", "ACME 1.0")                              // private creator: X
	ds.SetString(tag(0x0009, 0x1001), "LO", "0101154321")                            // private: X
	ds.Set(&header.Element{Tag: tag(0x5000, 0x3000), VR: "OW", Value: []byte{1, 2}}) // Curve Data: X
	ds.Set(&header.Element{Tag: tag(0x6000, 0x3000), VR: "OW", Value: []byte{1, 2}}) // Overlay Data: X
	ds.SetUint16(tag(0x6000, 0x0010), 512)                                           // Overlay Rows: not in the table
	ds.SetSequence(tag(0x0010, 0x1002), item(func(d *header.Dataset) {               // Other Patient IDs Sequence: X
		d.SetString(tag(0x0010, 0x0020), "LO", "OTHER-1")
	}))
	ds.SetSequence(tag(0x0040, 0x0555), item(func(d *header.Dataset) { // Acquisition Context Sequence: X/Z
		d.SetString(tag(0x0040, 0xA160), "UT", "secret")
	}))
	ds.SetSequence(tag(0x0008, 0x2112), item(func(d *header.Dataset) { // Source Image Sequence: X/Z/U*
		d.SetString(tag(0x0008, 0x1155), "UI", "1.2.3.4.6")
	}))
	ds.SetSequence(tag(0x0040, 0xA730), item(func(d *header.Dataset) { // Content Sequence: D
		d.SetString(tag(0x0040, 0xA160), "UT", "Patient complains")
	}))
	// A sequence outside the table (kept, its items cleaned), with table
	// attributes nested two levels deep.
	ds.SetSequence(tag(0x0008, 0x2218), item(func(d *header.Dataset) { // Anatomic Region Sequence
		d.SetString(tag(0x0008, 0x0100), "SH", "T-11170")
		d.SetString(tag(0x0008, 0x1155), "UI", "1.2.3.4.7")                // Referenced SOP Instance UID: U
		d.SetString(tag(0x0040, 0xA123), "PN", "Doe^John")                 // Person Name: D
		d.SetString(tag(0x0008, 0x0080), "LO", "Other Clinic")             // Institution Name: X/Z/D → X in an item
		d.SetString(tag(0x0011, 0x1001), "LO", "private")                  // private: X
		d.SetString(tag(0x0008, 0x1060), "PN", "Reader^Rita")              // Name of Physician(s) Reading Study: X
		d.SetSequence(tag(0x0008, 0x2228), item(func(d2 *header.Dataset) { // nested again
			d2.SetString(tag(0x0010, 0x1040), "LO", "Adresse")     // Patient's Address: X
			d2.SetString(tag(0x0020, 0x0052), "UI", "1.2.3.9")     // Frame of Reference UID: U
			d2.SetString(tag(0x0032, 0x1032), "PN", "Requester^R") // Requesting Physician: X
			d2.SetString(tag(0x0008, 0x0104), "LO", "Maxilla")     // Code Meaning: K
		}))
	}))
	return ds
}

// expect kinds for the table-driven test.
const (
	gone   = "removed"
	empty  = "empty"
	same   = "kept"
	mapped = "uid-mapped" // the UID the de-identifier maps the original to
)

func TestDeidentifyActions(t *testing.T) {
	type want struct {
		path []header.Tag // sequence tags (first item each), then the attribute
		is   string       // gone, empty, same, mapped, or the exact value
	}
	p := func(tags ...header.Tag) []header.Tag { return tags }
	anatomic := tag(0x0008, 0x2218)
	nested := []header.Tag{anatomic, tag(0x0008, 0x2228)}
	in2 := func(t header.Tag) []header.Tag { return append(append([]header.Tag{}, nested...), t) }
	basic := []want{
		{p(tag(0x0008, 0x0050)), empty},                     // Z
		{p(tag(0x0020, 0x0010)), empty},                     // Z
		{p(tag(0x0008, 0x0090)), empty},                     // Z (PN)
		{p(header.TagStudyDate), empty},                     // Z (date)
		{p(tag(0x0010, 0x0030)), empty},                     // Z: Patient's Birth Date
		{p(tag(0x0010, 0x0010)), "ANONYM01^Patient"},        // Z: dummy pseudonym
		{p(tag(0x0010, 0x0020)), "ANON0001"},                // Z: dummy pseudonym
		{p(tag(0x0010, 0x1040)), gone},                      // X
		{p(tag(0x0010, 0x1002)), gone},                      // X sequence
		{p(tag(0x0008, 0x0021)), gone},                      // X/D → X (type 3)
		{p(tag(0x0018, 0x1030)), gone},                      // X/D → X
		{p(tag(0x0008, 0x0022)), gone},                      // X/Z → X
		{p(tag(0x0008, 0x0023)), empty},                     // Z/D → Z
		{p(tag(0x0008, 0x0080)), gone},                      // X/Z/D → X
		{p(tag(0x0008, 0x1010)), gone},                      // X/Z/D → X
		{p(tag(0x0008, 0x1070)), gone},                      // X/Z/D → X
		{p(tag(0x0018, 0x1000)), gone},                      // X/Z/D → X (General Equipment: type 3)
		{p(tag(0x0040, 0x0555)), empty},                     // X/Z → Z: type 2 in the intra-oral IOD
		{p(tag(0x0008, 0x2112)), gone},                      // X/Z/U* → X
		{p(tag(0x0040, 0xA075)), "ANONYMIZED"},              // D
		{p(tag(0x0040, 0xA730), tag(0x0040, 0xA160)), gone}, // D sequence: one empty item
		{p(header.TagSOPInstanceUID), mapped},               // U
		{p(header.TagStudyInstanceUID), mapped},             // U
		{p(tag(0x0020, 0x0052)), mapped},                    // U
		{p(tag(0x0018, 0x1002)), mapped},                    // U
		{p(header.TagSOPClassUID), same},                    // class UID: K
		{p(header.TagModality), same},                       // not in the table: K
		{p(tag(0x0008, 0x0070)), same},                      // K
		{p(tag(0x0008, 0x0012)), gone},                      // a date outside the table
		{p(tag(0x0009, 0x0010)), gone},                      // private creator
		{p(tag(0x0009, 0x1001)), gone},                      // private
		{p(tag(0x5000, 0x3000)), gone},                      // curve
		{p(tag(0x6000, 0x3000)), gone},                      // overlay data
		{p(tag(0x6000, 0x0010)), same},                      // overlay rows
		{p(anatomic, tag(0x0008, 0x0100)), same},            // K sequence: item kept
		{p(anatomic, tag(0x0008, 0x1155)), mapped},          // U in an item
		{p(anatomic, tag(0x0040, 0xA123)), "ANONYMIZED"},    // D in an item
		{p(anatomic, tag(0x0008, 0x0080)), gone},            // X/Z/D in an item: X
		{p(anatomic, tag(0x0011, 0x1001)), gone},            // private in an item
		{p(anatomic, tag(0x0008, 0x1060)), gone},            // X (PN) in an item
		{in2(tag(0x0010, 0x1040)), gone},                    // X two levels deep
		{in2(tag(0x0020, 0x0052)), mapped},                  // U two levels deep
		{in2(tag(0x0032, 0x1032)), gone},                    // X two levels deep
		{in2(tag(0x0008, 0x0104)), same},                    // K two levels deep
		{p(tag(0x0012, 0x0062)), "YES"},
		{p(tag(0x0012, 0x0063)), "PS3.15 E Basic Profile"},
		{p(tag(0x0012, 0x0064), tag(0x0008, 0x0100)), "113100"},
		{p(tag(0x0028, 0x0303)), "REMOVED"},
	}
	for _, c := range []struct {
		name               string
		class              string
		keepDates, keepDev bool
		want               []want
	}{
		{"basic profile, intra-oral", IntraOralForPresentation, false, false, basic},
		{"full dates option", IntraOralForPresentation, true, false, []want{
			{p(header.TagStudyDate), same}, {p(tag(0x0008, 0x0021)), same}, {p(tag(0x0008, 0x0022)), same},
			{p(tag(0x0008, 0x0023)), same}, {p(tag(0x0008, 0x0012)), same},
			{p(tag(0x0010, 0x0030)), empty}, // not retained by the option
			{p(tag(0x0008, 0x1010)), gone},  // device: not retained
			{p(tag(0x0012, 0x0064), tag(0x0008, 0x0100)), "113100"},
			{p(tag(0x0028, 0x0303)), "UNMODIFIED"},
		}},
		{"device identity option", IntraOralForPresentation, false, true, []want{
			{p(tag(0x0008, 0x1010)), same}, {p(tag(0x0018, 0x1000)), same}, {p(tag(0x0018, 0x1002)), same},
			{p(header.TagStudyDate), empty}, {p(tag(0x0008, 0x0080)), gone}, // institution: not retained
		}},
		{"secondary capture: X/Z without Acquisition Context Module", SecondaryCapture, false, false, []want{
			{p(tag(0x0040, 0x0555)), gone},
		}},
		{"enhanced CT: Z/D and X/Z/D as type 1", EnhancedCT, false, false, []want{
			{p(tag(0x0008, 0x0023)), "19000101"}, {p(tag(0x0018, 0x1000)), "ANONYMIZED"}, {p(tag(0x0040, 0x0555)), empty},
		}},
		{"encapsulated STL: Device Serial Number type 1", EncapsulatedSTL, false, false, []want{
			{p(tag(0x0018, 0x1000)), "ANONYMIZED"}, {p(tag(0x0008, 0x0080)), gone},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := NewDeidentifier(c.keepDates, c.keepDev)
			orig, ds := deidSample(c.class), deidSample(c.class)
			require.NoError(t, d.Apply(ds))
			for _, w := range c.want {
				e, parent := lookup(ds, w.path)
				oe, _ := lookup(orig, w.path)
				switch w.is {
				case gone:
					require.Nil(t, e, "%v", w.path)
				case empty:
					require.NotNil(t, e, "%v", w.path)
					require.Empty(t, e.Value, "%v", w.path)
					require.Empty(t, e.Items, "%v", w.path)
				case same:
					require.NotNil(t, e, "%v", w.path)
					require.Equal(t, oe.Value, e.Value, "%v", w.path)
				case mapped:
					require.NotNil(t, e, "%v", w.path)
					old := oe.Value
					require.Equal(t, d.MapUID(string(old)), string(e.Value), "%v", w.path)
					require.NotEqual(t, string(old), string(e.Value), "%v", w.path)
				default:
					require.NotNil(t, e, "%v", w.path)
					require.Equal(t, w.is, parent.Get(e.Tag), "%v", w.path)
				}
			}
			if c.keepDates {
				codes := ds.Sequence(tag(0x0012, 0x0064))
				require.Len(t, codes, 2)
				require.Equal(t, "113106", codes[1].Get(tag(0x0008, 0x0100)))
			}
			if c.keepDev {
				codes := ds.Sequence(tag(0x0012, 0x0064))
				require.Len(t, codes, 2)
				require.Equal(t, "113109", codes[1].Get(tag(0x0008, 0x0100)))
			}
		})
	}
}

// lookup follows the first item of each sequence of path and returns the
// last attribute and the data set holding it.
func lookup(ds *header.Dataset, path []header.Tag) (*header.Element, *header.Dataset) {
	for _, s := range path[:len(path)-1] {
		e := ds.Find(s)
		if e == nil || len(e.Items) == 0 {
			return nil, nil
		}
		ds = e.Items[0]
	}
	return ds.Find(path[len(path)-1]), ds
}

func TestDeidentifyContentSequenceDummyItem(t *testing.T) {
	ds := deidSample(IntraOralForPresentation)
	require.NoError(t, NewDeidentifier(false, false).Apply(ds))
	items := ds.Sequence(tag(0x0040, 0xA730))
	require.Len(t, items, 1, "D on a sequence: one item")
	require.Empty(t, items[0].Elements, "the dummy item carries nothing")
}

func TestDeidentifyCleanAndBurnedIn(t *testing.T) {
	d := NewDeidentifier(false, false)
	// C (no row of the Basic Profile column uses it; the engine has it).
	e := d.do(aC, &header.Element{Tag: tag(0x0008, 0x1030), VR: "LO", Value: []byte("Bitewing Åse")})
	require.Equal(t, "ANONYMIZED", string(e.Value))
	seq := &header.Element{Tag: tag(0x0040, 0x0555), VR: "SQ", Items: []*header.Dataset{header.NewDataset()}}
	require.Same(t, seq, d.do(aC, seq), "C on a sequence: items kept and cleaned by the walk")
	// Dummies are non-empty and of the VR.
	for vr, n := range map[string]int{"DA": 8, "TM": 6, "DT": 14, "US": 2, "FD": 8, "DS": 1} {
		e := d.do(aD, &header.Element{Tag: tag(0x0008, 0x0001), VR: vr, Value: []byte("x")})
		require.Len(t, e.Value, n, vr)
	}

	ds := deidSample(IntraOralForPresentation)
	ds.SetString(tag(0x0028, 0x0301), "CS", "YES")
	require.ErrorIs(t, d.Apply(ds), ErrBurnedIn)
	require.ErrorIs(t, d.Apply(ds), ErrNotDeidentifiable)
}

// What the profile cannot clean is refused with its reason: a face in a
// photo, a PDF or CDA (names inside), an OBJ or MTL (free comments); an
// STL (its header and solid names blanked) and an ordinary image are not.
func TestDeidentifyRefusesWhatItCannotClean(t *testing.T) {
	for _, c := range []struct {
		name, class string
		face        string
		refused     string
	}{
		{"photo of a face", "1.2.840.10008.5.1.4.1.1.77.1.4", "YES", "recognizable visual features"},
		{"intra-oral photo, no face", "1.2.840.10008.5.1.4.1.1.77.1.4", "NO", ""},
		{"PDF", "1.2.840.10008.5.1.4.1.1.104.1", "", "encapsulated document"},
		{"CDA", "1.2.840.10008.5.1.4.1.1.104.2", "", "encapsulated document"},
		{"OBJ", "1.2.840.10008.5.1.4.1.1.104.4", "", "encapsulated document"},
		{"STL", EncapsulatedSTL, "", ""},
		{"intra-oral X-ray", IntraOralForPresentation, "", ""},
	} {
		ds := deidSample(IntraOralForPresentation)
		ds.SetString(header.TagSOPClassUID, "UI", c.class)
		if c.face != "" {
			ds.SetString(tag(0x0028, 0x0302), "CS", c.face)
		}
		err := NewDeidentifier(false, false).Apply(ds)
		if c.refused == "" {
			require.NoError(t, err, c.name)
			continue
		}
		require.ErrorIs(t, err, ErrNotDeidentifiable, c.name)
		require.ErrorContains(t, err, c.refused, c.name)
	}
}

// TestDeidentifyConsistentUIDs: one export maps a UID the same way in
// every object and at every level; two exports do not link.
func TestDeidentifyConsistentUIDs(t *testing.T) {
	d := NewDeidentifier(false, false)
	a, b := deidSample(IntraOralForPresentation), deidSample(IntraOralForPresentation)
	b.SetString(header.TagSOPInstanceUID, "UI", "1.2.3.4.99")
	require.NoError(t, d.Apply(a))
	require.NoError(t, d.Apply(b))
	require.Equal(t, a.UID(header.TagStudyInstanceUID), b.UID(header.TagStudyInstanceUID))
	require.NotEqual(t, a.UID(header.TagSOPInstanceUID), b.UID(header.TagSOPInstanceUID))
	fr, _ := lookup(a, []header.Tag{tag(0x0008, 0x2218), tag(0x0008, 0x2228), tag(0x0020, 0x0052)})
	require.Equal(t, a.UID(tag(0x0020, 0x0052)), string(fr.Value), "nested Frame of Reference UID = top-level one")
	require.Equal(t, "ANON0001", b.Get(header.TagPatientID), "same patient, same pseudonym")

	c := deidSample(IntraOralForPresentation)
	require.NoError(t, NewDeidentifier(false, false).Apply(c))
	require.NotEqual(t, a.UID(header.TagStudyInstanceUID), c.UID(header.TagStudyInstanceUID))
}
