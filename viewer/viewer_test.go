package viewer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/uid"
)

// fmxTemplate is the built-in FMX template as the migration defines it.
func fmxTemplate(t *testing.T) Template {
	t.Helper()
	b, err := migrations.ReadFile("migrations/0001_viewer.sql")
	require.NoError(t, err)
	s := string(b)
	start := bytes.Index(b, []byte("'fmx'"))
	require.Positive(t, start)
	open := start + bytes.IndexByte(b[start:], '[')
	end := open + bytes.Index(b[open:], []byte("]'"))
	var tpl Template
	tpl.Code, tpl.NameDA, tpl.Width, tpl.Height = "fmx", "FMX", 1000, 600
	require.NoError(t, json.Unmarshal([]byte(s[open:end+1]), &tpl.Slots))
	require.NoError(t, tpl.Validate())
	return tpl
}

func TestPlaceByToothCodes(t *testing.T) {
	tpl := fmxTemplate(t)
	require.Len(t, tpl.Slots, 18)
	// The 18 images of a full-mouth series arrive in a scrambled order;
	// each goes to the slot of its teeth.
	var imgs []Candidate
	order := []int{17, 3, 9, 0, 14, 5, 11, 1, 16, 7, 13, 2, 15, 4, 10, 6, 12, 8}
	for i, k := range order {
		kind := KindIntraoral
		if IsBitewing(FMXTeeth[k]) {
			kind = KindBitewing
		}
		imgs = append(imgs, Candidate{SOPInstanceUID: "sop" + FMXTeeth[k][0] + FMXTeeth[k][len(FMXTeeth[k])-1], Kind: kind, Teeth: FMXTeeth[k], Order: i})
	}
	ps := Place(tpl, nil, imgs)
	require.Len(t, ps, 18)
	for _, p := range ps {
		var slot Slot
		for _, s := range tpl.Slots {
			if s.N == p.Slot {
				slot = s
			}
		}
		var img Candidate
		for _, c := range imgs {
			if c.SOPInstanceUID == p.SOP {
				img = c
			}
		}
		require.ElementsMatch(t, slot.Teeth, img.Teeth, "slot %d", slot.N)
		require.Equal(t, slot.Rotate, p.Rotate)
		require.True(t, p.Auto)
	}
}

func TestPlaceWithoutTeethFollowsAcquisitionOrder(t *testing.T) {
	tpl := fmxTemplate(t)
	// Two placed already; three new images without tooth codes fill the
	// free slots in the template's acquisition order (slot order 1, 2, 3 …).
	taken := []Placement{{Slot: 1, SOP: "a"}, {Slot: 3, SOP: "b"}}
	imgs := []Candidate{{SOPInstanceUID: "a", Kind: KindIntraoral}, {SOPInstanceUID: "z", Kind: KindIntraoral, Order: 2},
		{SOPInstanceUID: "x", Kind: KindIntraoral, Order: 0}, {SOPInstanceUID: "y", Kind: KindIntraoral, Order: 1}}
	ps := Place(tpl, taken, imgs)
	require.Equal(t, []Placement{{Slot: 2, SOP: "x", Auto: true}, {Slot: 4, SOP: "y", Auto: true}, {Slot: 5, SOP: "z", Auto: true}}, ps)
	// A panoramic does not go into an intra-oral slot.
	require.Empty(t, Place(tpl, nil, []Candidate{{SOPInstanceUID: "p", Kind: KindPanoramic}}))
	// A bitewing beats a periapical that only overlaps for the bitewing slot.
	bw := Place(tpl, nil, []Candidate{{SOPInstanceUID: "pa", Kind: KindIntraoral, Teeth: []string{"17", "16"}}, {SOPInstanceUID: "bw", Kind: KindBitewing, Teeth: []string{"17", "16", "47", "46"}}})
	require.Contains(t, bw, Placement{Slot: 8, SOP: "bw", Auto: true})
	require.Contains(t, bw, Placement{Slot: 1, SOP: "pa", Auto: true})
}

func TestTemplateValidate(t *testing.T) {
	ok := Template{Code: "Pa2", NameDA: "To", Width: 200, Height: 100, Slots: []Slot{{N: 1, X: 0, Y: 0, W: 100, H: 100, Teeth: []string{"11"}}, {N: 2, X: 100, W: 100, H: 100, Rotate: 180}}}
	require.NoError(t, ok.Validate())
	require.Equal(t, "pa2", ok.Code)
	require.Equal(t, "To", ok.NameEN)
	require.Equal(t, "any", ok.Slots[0].Kind)
	for name, mod := range map[string]func(*Template){
		"outside":   func(t *Template) { t.Slots[1].X = 150 },
		"tooth":     func(t *Template) { t.Slots[0].Teeth = []string{"19"} },
		"deciduous": func(t *Template) { t.Slots[0].Teeth = []string{"56"} },
		"rotate":    func(t *Template) { t.Slots[0].Rotate = 45 },
		"duplicate": func(t *Template) { t.Slots[1].N = 1 },
		"code":      func(t *Template) { t.Code = "a b" },
		"codestart": func(t *Template) { t.Code = "-pa" }, // the table's CHECK: a letter or digit first
		"overflow":  func(t *Template) { t.Slots[1].X, t.Slots[1].W = 1, math.MaxInt },
		"wide":      func(t *Template) { t.Slots[1].W = math.MaxInt },
		"kind":      func(t *Template) { t.Slots[0].Kind = "ceph" },
		"noslots":   func(t *Template) { t.Slots = nil },
	} {
		bad := ok
		bad.Slots = slices.Clone(ok.Slots)
		bad.Slots[0].Teeth = slices.Clone(ok.Slots[0].Teeth)
		mod(&bad)
		require.ErrorIs(t, bad.Validate(), ErrInvalid, name)
	}
	require.True(t, ValidTooth("85"))
	require.False(t, ValidTooth("86"))
}

func TestKinds(t *testing.T) {
	require.True(t, IsBitewing([]string{"16", "46"}))
	require.False(t, IsBitewing([]string{"16", "17"}))
	require.Equal(t, KindBitewing, ImageKind("IO", index.Instance{ToothCodes: []string{"16", "46"}}))
	require.Equal(t, KindIntraoral, ImageKind("IO", index.Instance{ToothCodes: []string{"16"}}))
	require.Equal(t, KindPanoramic, ImageKind("PX", index.Instance{}))
	require.Equal(t, KindCBCT, ImageKind("CT", index.Instance{}))
	require.Equal(t, KindPhoto, ImageKind("XC", index.Instance{}))
	require.Equal(t, KindIntraoral, StudyKind([]string{KindIntraoral, KindBitewing, KindBitewing}))
	require.Equal(t, KindBitewing, StudyKind([]string{KindBitewing, KindBitewing}))
	require.Equal(t, KindOther, StudyKind(nil))
}

// TestSynthImagesParse: the synthetic files are valid DICOM that the
// ingest path reads: tooth codes from the Primary Anatomic Structure
// Sequence, spacing, no window on the panoramic, frames on the CBCT.
func TestSynthImagesParse(t *testing.T) {
	p := Patient{ID: "0101121234", Family: "Jensen", Given: "Emma", BirthDate: time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC), Sex: "F", UIDSeed: "t"}
	studies := DemoStudies(0, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	require.Len(t, studies, 5)
	seen := map[string]bool{}
	for _, s := range studies {
		for i, im := range s.Images {
			f := s.File(p, i)
			h, err := header.Read(bytes.NewReader(f), header.Options{})
			require.NoError(t, err)
			d := h.Dataset
			require.Equal(t, s.SOPUID(p, i), d.UID(header.TagSOPInstanceUID))
			require.False(t, seen[s.SOPUID(p, i)], "UIDs are unique")
			seen[s.SOPUID(p, i)] = true
			require.Equal(t, "Jensen^Emma", d.Get(header.TagPatientName))
			require.Equal(t, im.Teeth, ingest.ToothCodes(d))
			attrs := map[string]any{}
			for _, tag := range []header.Tag{header.NewTag(0x0028, 0x0030), header.NewTag(0x0018, 0x1164), header.NewTag(0x0028, 0x1051)} {
				if d.Has(tag) {
					attrs[tag.String()] = d.Get(tag)
				}
			}
			switch im.Kind {
			case KindPanoramic:
				require.NotContains(t, attrs, "(0028,1051)", "a panoramic without a window")
			case KindCBCT:
				n, _ := d.Int(header.TagNumberOfFrames)
				require.EqualValues(t, 40, n)
			case KindIntraoral:
				require.Equal(t, "0.05\\0.05", attrs["(0028,0030)"])
			case KindBitewing:
				if s.Key == "bw" {
					require.Equal(t, "0.04\\0.04", attrs["(0018,1164)"], "imager pixel spacing")
				}
			}
		}
	}
	// Stable: the same patient gets the same UIDs and bytes.
	require.Equal(t, studies[0].File(p, 3), DemoStudies(0, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))[0].File(p, 3))
}

func TestImageFromAttributesAndTags(t *testing.T) {
	attrs := []byte(`{"00280002":{"vr":"US","Value":[1]},"00280100":{"vr":"US","Value":[16]},"00280101":{"vr":"US","Value":[12]},
		"00280004":{"vr":"CS","Value":["MONOCHROME1"]},"00280030":{"vr":"DS","Value":[0.1,0.05]},"00281050":{"vr":"DS","Value":["2048"]},
		"00281051":{"vr":"DS","Value":[4096]},"0008002A":{"vr":"DT","Value":["20250102101010"]},
		"00082228":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["16"]}}]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"A^B"}]},
		"7FE00010":{"vr":"OW","BulkDataURI":"x"}}`)
	n := 3
	im, err := NewImage(index.Instance{SOPInstanceUID: "1.2", Rows: 10, Columns: 20, InstanceNumber: &n, ToothCodes: []string{"17", "16"}}, "IO", attrs)
	require.NoError(t, err)
	require.Equal(t, 12, im.BitsStored)
	require.Equal(t, "MONOCHROME1", im.Photometric)
	require.Equal(t, []float64{0.1, 0.05}, im.PixelSpacing)
	require.Equal(t, "pixel", im.SpacingSource)
	require.Equal(t, 2048.0, *im.WindowCenter)
	require.Equal(t, "2025-01-02", im.Date)
	require.Equal(t, []string{"16", "17"}, im.Teeth)
	require.Equal(t, 1.0, im.Slope)
	// Presentation LUT Shape INVERSE: on MONOCHROME2 the viewer inverts; on
	// MONOCHROME1 (as DX requires it) it is the one inversion MONOCHROME1 gets.
	for _, c := range []struct {
		photometric, shape string
		inverse            bool
	}{{"MONOCHROME2", "INVERSE", true}, {"MONOCHROME2", "IDENTITY", false}, {"MONOCHROME1", "INVERSE", false}, {"MONOCHROME2", "", false}} {
		a := []byte(`{"00280004":{"vr":"CS","Value":["` + c.photometric + `"]},"20500020":{"vr":"CS","Value":["` + c.shape + `"]}}`)
		got, err := NewImage(index.Instance{SOPInstanceUID: "1.3", Rows: 10, Columns: 20}, "DX", a)
		require.NoError(t, err)
		require.Equal(t, c.inverse, got.PresInverse, "%s %s", c.photometric, c.shape)
	}
	// Native little endian frames reach the viewer as stored: the stored
	// bits' position is passed on; decoded frames have them at the bottom.
	for _, c := range []struct {
		ts                  string
		stored, high, shift int
	}{
		{uid.ExplicitVRLittleEndian, 12, 15, 4}, {uid.ImplicitVRLittleEndian, 12, 11, 0}, {uid.DeflatedExplicitVRLittleEndian, 10, 13, 4},
		{uid.JPEGLosslessSV1, 12, 15, 0}, {uid.ExplicitVRBigEndian, 12, 15, 0}, {uid.ExplicitVRLittleEndian, 16, 15, 0},
	} {
		a := []byte(fmt.Sprintf(`{"00280100":{"vr":"US","Value":[16]},"00280101":{"vr":"US","Value":[%d]},"00280102":{"vr":"US","Value":[%d]}}`, c.stored, c.high))
		got, err := NewImage(index.Instance{SOPInstanceUID: "1.4", Rows: 10, Columns: 20, TransferSyntax: c.ts}, "IO", a)
		require.NoError(t, err)
		require.Equal(t, c.shift, got.Shift, "%s %d bits at %d", c.ts, c.stored, c.high)
		require.Equal(t, c.ts, got.TransferSyntax, "the download link asks for the stored syntax")
	}
	tags, err := Tags(attrs)
	require.NoError(t, err)
	byTag := map[string]Tag{}
	for _, tg := range tags {
		byTag[tg.Tag] = tg
	}
	require.Equal(t, "BitsStored", byTag["(0028,0101)"].Name)
	require.Equal(t, "A^B", byTag["(0010,0010)"].Value)
	require.Equal(t, "PatientName", byTag["(0010,0010)"].Name)
	require.Equal(t, "(bulk data)", byTag["(7FE0,0010)"].Value)
	require.Equal(t, 1, byTag["(0008,0100)"].Depth)
	// A volume of single-frame CT slices becomes one item in slice order.
	loc := func(f float64) *float64 { return &f }
	items := Items([]Image{{SOP: "a", Series: "s", Kind: KindCBCT, Frames: 1, SliceLocation: loc(2)}, {SOP: "b", Series: "s", Kind: KindCBCT, Frames: 1, SliceLocation: loc(1)},
		{SOP: "c", Series: "t", Kind: KindIntraoral, Frames: 1, Teeth: []string{"11"}}})
	require.Len(t, items, 2)
	require.True(t, items[0].Volume)
	require.Equal(t, "b", items[0].Images[0].SOP)
	require.Equal(t, "11", items[1].Label)
}

// The header's age is counted on the Danish date, not the server's clock.
func TestPersonViewAgeOnTheDanishDate(t *testing.T) {
	cases := []struct {
		name  string
		birth time.Time
		now   time.Time
		want  int
	}{
		{"23:30 UTC is after midnight in Copenhagen (CET)", time.Date(2010, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 9, 23, 30, 0, 0, time.UTC), 15},
		{"22:59 UTC is 23:59 in Copenhagen", time.Date(2010, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 9, 22, 59, 0, 0, time.UTC), 14},
		{"summer time (CEST)", time.Date(2010, 6, 15, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 14, 22, 30, 0, 0, time.UTC), 15},
	}
	for _, c := range cases {
		pv := personViewAt(&personCtx{person: auth.Person{ID: 1, GivenName: "Ida", FamilyName: "Testesen", BirthDate: c.birth}}, c.now)
		require.Equal(t, c.want, pv.Age, c.name)
	}
}
