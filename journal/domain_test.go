package journal

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestTeethAndSurfaces(t *testing.T) {
	valid := []int{11, 18, 21, 28, 31, 38, 41, 48, 51, 55, 61, 65, 71, 75, 81, 85}
	for _, n := range valid {
		require.True(t, Tooth(n).Valid(), "%d", n)
	}
	for _, n := range []int{0, 1, 10, 19, 20, 29, 49, 50, 56, 66, 76, 86, 91, 99, 111} {
		require.False(t, Tooth(n).Valid(), "%d", n)
	}
	require.Len(t, AllTeeth(), 52)
	require.Equal(t, Tooth(15), Tooth(55).Successor())
	require.Equal(t, Tooth(75), Tooth(35).Predecessor())
	require.Equal(t, Tooth(0), Tooth(36).Predecessor(), "molars replace nothing")
	require.True(t, Tooth(53).Anterior())
	require.False(t, Tooth(54).Anterior())

	cases := []struct {
		tooth Tooth
		in    string
		want  string
		err   string // message key, "" = valid
	}{
		{26, "dop", "ODL", ""},
		{26, "M,O,D", "MOD", ""},
		{11, "f", "B", ""},
		{11, "vp", "BL", ""},
		{11, "MID", "MID", ""},
		{16, "mmo", "MO", ""},
		{16, "", "", ""},
		{16, "I", "", "surface.notontooth"}, // incisal on a molar
		{46, "MI", "", "surface.notontooth"},
		{11, "O", "", "surface.notontooth"}, // occlusal on an incisor
		{16, "X", "", "surface.unknown"},
	}
	for _, c := range cases {
		got, err := ParseSurfaces(c.tooth, c.in)
		if c.err == "" {
			require.NoError(t, err, "%d %s", c.tooth, c.in)
			require.Equal(t, c.want, got, "%d %s", c.tooth, c.in)
			continue
		}
		var ie *InputError
		require.ErrorAs(t, err, &ie, "%d %s", c.tooth, c.in)
		require.Equal(t, c.err, ie.Key)
		require.ErrorIs(t, err, ErrInvalid)
	}
	var ie *InputError
	_, err := ParseSurfaces(16, "I")
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "Tand 16 har ingen flade I (okklusal kun på kindtænder, incisal kun på for- og hjørnetænder).", ie.Message("da"))
	require.Contains(t, err.Error(), "Tooth 16 has no surface I")

	tt, err := ParseTooth(" 55 ")
	require.NoError(t, err)
	require.Equal(t, Tooth(55), tt)
	for _, s := range []string{"19", "5", "abc", "016", "56"} {
		_, err := ParseTooth(s)
		require.ErrorIs(t, err, ErrInvalid, s)
	}
	require.Equal(t, "øverste højre 6-års tand (16)", ToothName(16, "da"))
	require.Equal(t, "lower left second milk molar (75)", ToothName(75, "en"))
}

func TestDentitionByAge(t *testing.T) {
	birth := day(2020, 1, 1)
	cases := []struct {
		at   time.Time
		want Dentition
	}{
		{day(2020, 5, 1), DentitionNone},      // 4 months
		{day(2020, 9, 1), DentitionDeciduous}, // 8 months: central incisors
		{day(2023, 1, 1), DentitionDeciduous}, // 3 years
		{day(2025, 12, 31), DentitionDeciduous},
		{day(2026, 1, 1), DentitionMixed}, // 6 years: first permanent molars
		{day(2029, 6, 1), DentitionMixed},
		{day(2030, 12, 31), DentitionMixed},
		{day(2031, 1, 1), DentitionPermanent}, // 11 years: the last milk teeth are shed
		{day(2035, 1, 1), DentitionPermanent},
	}
	for _, c := range cases {
		require.Equal(t, c.want, ExpectedDentition(birth, c.at), "%s", c.at.Format(time.DateOnly))
		// With no entries the chart says the same.
		require.Equal(t, c.want, BuildChart(birth, nil, nil, DefaultCatalogue(), c.at, false).Dentition, "%s", c.at.Format(time.DateOnly))
	}
	// Findings override the age: a persistent milk tooth at 17 makes the
	// dentition mixed; a permanent molar at 5 years too.
	teen := BuildChart(day(2008, 1, 1), []Entry{exam(1, day(2025, 1, 1), f(55, "", CondSound), f(15, "", CondMissing))}, nil, DefaultCatalogue(), day(2025, 2, 1), false)
	require.Equal(t, DentitionMixed, teen.Dentition)
	require.Equal(t, StatusPresent, teen.Tooth(55).Status)
	require.False(t, teen.Tooth(55).Expected)
	require.Equal(t, StatusMissing, teen.Tooth(15).Status)
	early := BuildChart(day(2020, 1, 1), []Entry{exam(1, day(2025, 1, 1), f(36, "", CondErupting))}, nil, DefaultCatalogue(), day(2025, 1, 2), false)
	require.Equal(t, DentitionMixed, early.Dentition)
}

func f(tooth Tooth, surfaces string, c Condition) Finding {
	fd := Finding{Tooth: tooth, Surfaces: surfaces, Condition: c}
	switch c {
	case CondCaries:
		fd.Depth = "dentin"
	case CondFilling:
		fd.Material = "composite"
	case CondCrown:
		fd.Material = "other"
	}
	return fd
}

func extracted(tooth Tooth, reason string) Finding {
	return Finding{Tooth: tooth, Condition: CondExtracted, Reason: reason}
}

func exam(id int64, at time.Time, findings ...Finding) Entry {
	return Entry{ID: id, Kind: KindExamination, CareTime: at, SignedAt: at, Content: Content{Findings: findings}}
}

// Golden DMF-S / def-s cases, computed by hand (see the comments).
func TestCariesIndicesGolden(t *testing.T) {
	cat := DefaultCatalogue()
	t.Run("permanent dentition at 15", func(t *testing.T) {
		birth := day(2010, 3, 1)
		e := exam(1, day(2025, 3, 10),
			f(16, "O", CondCaries),       // D 1
			f(26, "MOD", CondFilling),    // F 3
			extracted(36, "caries"),      // M 5 (molar)
			extracted(14, "orthodontic"), // not counted
			f(11, "M", CondFilling),      // filled, then …
			f(11, "M", CondCaries),       // … secondary caries on the same surface: D 1, not F
			f(46, "", CondCrown),         // F 5 (molar crown)
			f(21, "IM", CondCaries),      // D 2 (incisal counts on an incisor)
			f(47, "O", CondSealant),      // not counted
			f(12, "MIDBL", CondCaries),   // D 4: an incisor counts at most 4 surfaces
		)
		c := BuildChart(birth, []Entry{e}, nil, cat, day(2025, 3, 11), true)
		require.Equal(t, DentitionPermanent, c.Dentition)
		ix := ComputeIndices(c)
		require.Equal(t, Indices{DS: 8, MS: 5, FS: 8, DMFS: 21, DMFT: 7}, ix)
	})
	t.Run("mixed dentition at 8", func(t *testing.T) {
		birth := day(2017, 6, 15)
		// At 8y0m the central and lateral milk incisors are shed (their
		// successors erupt at 7 and 8), 53–55 are still there.
		e := exam(1, day(2025, 7, 1),
			f(55, "MO", CondCaries),      // d 2
			extracted(54, "caries"),      // e 5
			f(75, "O", CondFilling),      // f 1
			f(85, "DO", CondFilling),     // …
			f(85, "D", CondCaries),       // d 1 (D), f 1 (O)
			f(36, "O", CondCaries),       // D 1 (permanent)
			f(16, "O", CondSealant),      // not counted
			extracted(64, "orthodontic"), // not counted
		)
		c := BuildChart(birth, []Entry{e}, nil, cat, day(2025, 7, 2), true)
		require.Equal(t, DentitionMixed, c.Dentition)
		require.Equal(t, StatusExfoliated, c.Tooth(51).Status)
		require.True(t, c.Tooth(51).Expected)
		require.Equal(t, StatusExfoliated, c.Tooth(52).Status)
		require.Equal(t, StatusPresent, c.Tooth(53).Status)
		require.Equal(t, StatusPresent, c.Tooth(11).Status)
		ix := ComputeIndices(c)
		require.Equal(t, Indices{DS: 1, DMFS: 1, DMFT: 1, Ds: 3, Es: 5, Fs: 2, DefS: 10, DefT: 4}, ix)
	})
	t.Run("state at a date: caries then filled", func(t *testing.T) {
		birth := day(2012, 1, 1)
		entries := []Entry{
			exam(1, day(2024, 1, 10), f(16, "O", CondCaries)),
			{ID: 2, Kind: KindTreatmentPerformed, CareTime: day(2024, 6, 1), SignedAt: day(2024, 6, 1),
				Content: Content{Treatments: []Treatment{{Tooth: 16, Surfaces: "O", Procedure: "FYLD"}}}},
		}
		before := ComputeIndices(BuildChart(birth, entries, nil, cat, day(2024, 3, 1), true))
		require.Equal(t, Indices{DS: 1, DMFS: 1, DMFT: 1}, before)
		after := ComputeIndices(BuildChart(birth, entries, nil, cat, day(2024, 7, 1), true))
		require.Equal(t, Indices{FS: 1, DMFS: 1, DMFT: 1}, after)
		none := ComputeIndices(BuildChart(birth, entries, nil, cat, day(2024, 1, 9), true))
		require.Equal(t, Indices{CariesFree: true}, none)
	})
	t.Run("caries then extraction for orthodontic reasons", func(t *testing.T) {
		birth := day(2010, 1, 1)
		entries := []Entry{
			exam(1, day(2023, 1, 10), f(24, "MO", CondCaries), f(14, "O", CondCaries)),
			exam(2, day(2023, 5, 10), extracted(24, "orthodontic"), extracted(14, "caries")),
		}
		ix := ComputeIndices(BuildChart(birth, entries, nil, cat, day(2023, 6, 1), true))
		require.Equal(t, Indices{MS: 5, DMFS: 5, DMFT: 1}, ix, "24 does not count, 14 counts as 5 missing surfaces")
	})
	t.Run("a correction replaces the finding", func(t *testing.T) {
		birth := day(2010, 1, 1)
		orig := exam(1, day(2023, 1, 10), f(26, "O", CondCaries))
		orig.SupersededBy = 2
		corr := exam(2, day(2023, 1, 10), f(26, "O", CondSound))
		corr.Supersedes, corr.Reason = 1, "wrong tooth"
		ix := ComputeIndices(BuildChart(birth, []Entry{orig, corr}, nil, cat, day(2023, 2, 1), true))
		require.Equal(t, Indices{CariesFree: true}, ix)
	})
	t.Run("unsigned entries do not count in reports", func(t *testing.T) {
		birth := day(2010, 1, 1)
		e := exam(1, day(2023, 1, 10), f(26, "O", CondCaries))
		e.SignedAt = time.Time{}
		require.Equal(t, 0, ComputeIndices(BuildChart(birth, []Entry{e}, nil, cat, day(2023, 2, 1), true)).DMFS)
		require.Equal(t, 1, ComputeIndices(BuildChart(birth, []Entry{e}, nil, cat, day(2023, 2, 1), false)).DMFS)
	})
	t.Run("a permanent tooth replaces its predecessor", func(t *testing.T) {
		birth := day(2015, 1, 1)
		entries := []Entry{
			exam(1, day(2024, 1, 1), f(54, "O", CondCaries)),
			exam(2, day(2025, 6, 1), f(14, "", CondSound)),
		}
		at9 := BuildChart(birth, entries, nil, cat, day(2024, 6, 1), true)
		require.Equal(t, Indices{Ds: 1, DefS: 1, DefT: 1}, ComputeIndices(at9))
		at10 := BuildChart(birth, entries, nil, cat, day(2025, 7, 1), true)
		require.Equal(t, StatusExfoliated, at10.Tooth(54).Status)
		require.Equal(t, Indices{CariesFree: true}, ComputeIndices(at10), "a shed milk tooth is not e")
		// Without a record of 14, the carious 54 is not assumed shed.
		at12 := BuildChart(birth, entries[:1], nil, cat, day(2027, 1, 1), true)
		require.Equal(t, StatusPresent, at12.Tooth(54).Status)
	})
	t.Run("a milk tooth extracted for caries counts as e until its successor erupts", func(t *testing.T) {
		birth := day(2010, 3, 10)
		pulled := exam(1, day(2015, 5, 1), extracted(85, "caries")) // e 5 (molar)
		e5 := Indices{Es: 5, DefS: 5, DefT: 1}
		cases := []struct {
			name  string
			later []Finding // recorded on 2025-03-12
			at    time.Time
			want  Indices
			teeth string
		}{
			{"before the successor is due", nil, day(2016, 1, 1), e5, "85:e"},
			{"successor found sound", []Finding{f(45, "", CondSound)}, day(2025, 4, 1), Indices{CariesFree: true}, ""},
			{"successor erupting", []Finding{f(45, "", CondErupting)}, day(2025, 4, 1), Indices{CariesFree: true}, ""},
			{"successor with caries", []Finding{f(45, "O", CondCaries)}, day(2025, 4, 1), Indices{DS: 1, DMFS: 1, DMFT: 1}, "45:D:O"},
			{"successor not recorded: expected by age only", []Finding{f(46, "", CondSound)}, day(2025, 4, 1), e5, "85:e"},
			{"successor not erupted", []Finding{f(45, "", CondNotErupted)}, day(2025, 4, 1), e5, "85:e"},
			{"successor missing (agenesis)", []Finding{f(45, "", CondMissing)}, day(2025, 4, 1), e5, "85:e"},
			{"the chart before the successor was found", []Finding{f(45, "", CondSound)}, day(2025, 3, 11), e5, "85:e"},
		}
		for _, c := range cases {
			entries := []Entry{pulled}
			if c.later != nil {
				entries = append(entries, exam(2, day(2025, 3, 12), c.later...))
			}
			ch := BuildChart(birth, entries, nil, cat, c.at, true)
			require.Equal(t, StatusExtracted, ch.Tooth(85).Status, c.name)
			require.Equal(t, c.want, ComputeIndices(ch), c.name)
			require.Equal(t, c.teeth, teethCode(ch), c.name)
		}
		// A successor that erupted and was later extracted itself had still
		// replaced the milk tooth.
		ortho := exam(3, day(2025, 9, 1), extracted(45, "orthodontic"))
		ch := BuildChart(birth, []Entry{pulled, exam(2, day(2025, 3, 12), f(45, "", CondSound)), ortho}, nil, cat, day(2025, 10, 1), true)
		require.Equal(t, Indices{CariesFree: true}, ComputeIndices(ch))
	})
	t.Run("young child, nothing found", func(t *testing.T) {
		c := BuildChart(day(2021, 5, 1), nil, nil, cat, day(2025, 5, 1), true)
		require.Equal(t, DentitionDeciduous, c.Dentition)
		require.Equal(t, Indices{CariesFree: true}, ComputeIndices(c))
	})
	t.Run("plan marks and recorded not erupted", func(t *testing.T) {
		birth := day(2018, 1, 1)
		entries := []Entry{exam(1, day(2023, 6, 1), f(16, "", CondNotErupted))}
		plan := []PlanItem{{ID: 7, Tooth: 16, Surfaces: "O", Procedure: "FORS", Status: ItemPlanned}, {ID: 8, Tooth: 26, Procedure: "FORS", Surfaces: "O", Status: ItemCancelled}}
		c := BuildChart(birth, entries, plan, cat, day(2023, 7, 1), false)
		require.Equal(t, StatusNotErupted, c.Tooth(16).Status)
		require.Equal(t, []PlanMark{{PlanItemID: 7, Procedure: "FORS", Surfaces: "O"}}, c.Tooth(16).Planned)
		require.Empty(t, c.Tooth(26).Planned)
		// After the typical eruption (6 years) the recorded "not erupted" gives way.
		later := BuildChart(birth, entries, nil, cat, day(2024, 2, 1), false)
		require.Equal(t, StatusPresent, later.Tooth(16).Status)
		require.True(t, later.Tooth(16).Expected)
	})
}

func TestRecallGolden(t *testing.T) {
	r := DefaultRecallRules()
	require.NoError(t, r.Validate())
	birth := day(2024, 1, 15)
	cases := []struct {
		name  string
		in    RecallInput
		want  time.Time
		basis string
	}{
		{"never examined: 8 months", RecallInput{BirthDate: birth}, day(2024, 9, 15), BasisMilestone},
		{"examined at 8 months: 16 months", RecallInput{BirthDate: birth, LastExam: day(2024, 9, 20)}, day(2025, 5, 15), BasisMilestone},
		{"examined at 16 months: 26 months", RecallInput{BirthDate: birth, LastExam: day(2025, 5, 20)}, day(2026, 3, 15), BasisMilestone},
		{"examined at 26 months: 3 years", RecallInput{BirthDate: birth, LastExam: day(2026, 3, 15)}, day(2027, 1, 15), BasisMilestone},
		{"examined at 5 years, low risk: 7 years", RecallInput{BirthDate: birth, LastExam: day(2029, 2, 1), Risk: RiskLow}, day(2031, 1, 15), BasisMilestone},
		{"examined at 5 years, high risk: 12 months", RecallInput{BirthDate: birth, LastExam: day(2029, 2, 1), Risk: RiskHigh}, day(2030, 2, 1), BasisInterval},
		{"examined 1 month before 5 years: the 5-year call-in is skipped", RecallInput{BirthDate: birth, LastExam: day(2028, 12, 20), Risk: RiskLow}, day(2030, 12, 20), BasisInterval},
		{"7 years, high risk", RecallInput{BirthDate: birth, LastExam: day(2031, 3, 1), Risk: RiskHigh}, day(2032, 3, 1), BasisInterval},
		{"10 years, medium risk", RecallInput{BirthDate: birth, LastExam: day(2034, 5, 5), Risk: RiskMedium}, day(2035, 11, 5), BasisInterval},
		{"10 years, low risk: 2 years", RecallInput{BirthDate: birth, LastExam: day(2034, 5, 5), Risk: RiskLow}, day(2036, 5, 5), BasisInterval},
		{"10 years, risk never assessed: the medium interval, not the longest", RecallInput{BirthDate: birth, LastExam: day(2034, 5, 5)}, day(2035, 11, 5), BasisUnassessed},
		{"examined at 5 years, risk not assessed: 18 months beat the 7-year call-in", RecallInput{BirthDate: birth, LastExam: day(2029, 2, 1)}, day(2030, 8, 1), BasisUnassessed},
		{"examined at 6 years, risk not assessed: the 7-year call-in comes first", RecallInput{BirthDate: birth, LastExam: day(2030, 2, 1)}, day(2031, 1, 15), BasisMilestone},
		{"examiner chose 6 months", RecallInput{BirthDate: birth, LastExam: day(2034, 5, 5), ChosenMonths: 6}, day(2034, 11, 5), BasisExaminer},
		{"examiner's 30 months capped at 2 years", RecallInput{BirthDate: birth, LastExam: day(2034, 5, 5), ChosenMonths: 30}, day(2036, 5, 5), BasisExaminer},
		{"month ends clamp", RecallInput{BirthDate: day(2023, 6, 30)}, day(2024, 2, 29), BasisMilestone},
		{"31 December + 8 months", RecallInput{BirthDate: day(2023, 12, 31)}, day(2024, 8, 31), BasisMilestone},
		{"exam late in the evening counts on its Danish date", RecallInput{BirthDate: birth, LastExam: time.Date(2034, 5, 4, 22, 30, 0, 0, time.UTC), Risk: RiskLow}, day(2036, 5, 5), BasisInterval},
	}
	for _, c := range cases {
		due, basis, ok := r.NextRecall(c.in)
		require.True(t, ok, c.name)
		require.Equal(t, c.want, due, c.name)
		require.Equal(t, c.basis, basis, c.name)
		if !c.in.LastExam.IsZero() {
			require.LessOrEqual(t, due.Sub(dateOnly(c.in.LastExam)), 731*24*time.Hour, "never more than 2 years: %s", c.name)
		}
	}
	_, _, ok := r.NextRecall(RecallInput{BirthDate: day(2004, 3, 1), LastExam: day(2025, 6, 1)})
	require.False(t, ok, "no recall after the 22nd birthday")

	bad := DefaultRecallRules()
	bad.MaxMonths = 36
	require.Error(t, bad.Validate())
}

func TestValidateNewEntry(t *testing.T) {
	cat := DefaultCatalogue()
	sks, err := LoadSKS()
	require.NoError(t, err)
	now := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	child := Patient{PersonID: 1, BirthDate: day(2016, 2, 1)}
	adult := Patient{PersonID: 2, BirthDate: day(2006, 2, 1)}
	examOf := func(fs ...Finding) NewEntry {
		return NewEntry{Kind: KindExamination, CareTime: now.Add(-time.Hour), Content: Content{Findings: fs}}
	}
	cases := []struct {
		name string
		p    Patient
		e    NewEntry
		key  string
	}{
		{"tooth that does not exist", child, examOf(Finding{Tooth: 19, Condition: CondSound}), "tooth.invalid"},
		{"deciduous quadrant position 6", child, examOf(Finding{Tooth: 56, Condition: CondSound}), "tooth.invalid"},
		{"incisal on a molar", child, examOf(Finding{Tooth: 36, Surfaces: "I", Condition: CondCaries}), "surface.notontooth"},
		{"future time of care", child, NewEntry{Kind: KindNote, CareTime: now.Add(time.Hour), Content: Content{Text: "x"}}, "caretime.future"},
		{"caries without surface", child, examOf(Finding{Tooth: 16, Condition: CondCaries}), "finding.needssurfaces"},
		{"crown with surfaces", child, examOf(Finding{Tooth: 16, Surfaces: "O", Condition: CondCrown}), "finding.wholetooth"},
		{"unknown condition", child, examOf(Finding{Tooth: 16, Condition: "rotten"}), "condition.invalid"},
		{"empty examination", child, examOf(), "examination.empty"},
		{"unknown kind", child, NewEntry{Kind: "gossip", CareTime: now, Content: Content{Text: "x"}}, "kind.invalid"},
		{"unknown SKS code", child, NewEntry{Kind: KindDiagnosis, CareTime: now, Content: Content{Diagnoses: []Diagnosis{{Code: "DK999"}}}}, "diagnosis.unknown"},
		{"unknown procedure", child, NewEntry{Kind: KindTreatmentPerformed, CareTime: now, Content: Content{Treatments: []Treatment{{Tooth: 16, Procedure: "GOLD"}}}}, "procedure.unknown"},
		{"filling without surfaces", child, NewEntry{Kind: KindTreatmentPerformed, CareTime: now, Content: Content{Treatments: []Treatment{{Tooth: 16, Procedure: "FYLD"}}}}, "procedure.needssurfaces"},
		{"findings in a note", child, NewEntry{Kind: KindNote, CareTime: now, Content: Content{Text: "x", Findings: []Finding{{Tooth: 16, Condition: CondSound}}}}, "kind.content"},
		{"recall beyond 2 years", child, NewEntry{Kind: KindExamination, CareTime: now, Content: Content{Text: "x", RecallMonths: 36}}, "recall.range"},
		{"x-ray without a valid UID", child, NewEntry{Kind: KindXRay, CareTime: now, Content: Content{Text: "x", XRay: &XRay{StudyUID: "abc"}}}, "xray.uid"},
	}
	for _, c := range cases {
		err := c.e.Validate(c.p, now, cat, sks)
		var ie *InputError
		require.ErrorAs(t, err, &ie, c.name)
		require.Equal(t, c.key, ie.Key, c.name)
		require.True(t, errors.Is(err, ErrInvalid), c.name)
		require.NotEqual(t, "journal."+ie.Key, ie.Message("da"), "Danish message for %s", c.key)
		require.NotContains(t, ie.Message("en"), "%!", c.name)
		require.NotContains(t, ie.Message("da"), "%!", c.name)
	}

	ok := examOf(Finding{Tooth: 26, Surfaces: "dop", Condition: CondCaries}, Finding{Tooth: 11, Surfaces: "f", Condition: CondFilling})
	require.NoError(t, ok.Validate(child, now, cat, sks))
	require.Equal(t, "ODL", ok.Findings[0].Surfaces)
	require.Equal(t, "dentin", ok.Findings[0].Depth)
	require.Equal(t, "B", ok.Findings[1].Surfaces)
	require.Equal(t, "composite", ok.Findings[1].Material)
	diag := NewEntry{Kind: KindDiagnosis, CareTime: now, Content: Content{Diagnoses: []Diagnosis{{Code: "dk021", Tooth: 16}}}}
	require.NoError(t, diag.Validate(child, now, cat, sks))
	require.Equal(t, "DK021", diag.Diagnoses[0].Code)
	require.Equal(t, "Karies i tandbenet", diag.Diagnoses[0].Text)
	// A permanent tooth of an adult and a milk tooth of a 17-year-old are fine.
	adultExam := examOf(Finding{Tooth: 16, Condition: CondSound})
	adultExam.CareTime = day(2023, 1, 31)
	require.NoError(t, adultExam.Validate(adult, now, cat, sks))
	// Milk teeth persist when the successor is missing (agenesis): they are
	// recorded at any age, also after 18 and after care ends at 22.
	for _, c := range []struct {
		name  string
		birth time.Time
	}{
		{"17 years", day(2007, 5, 2)},
		{"18th birthday", day(2007, 5, 1)},
		{"19 years", day(2006, 2, 1)},
		{"21 years", day(2003, 5, 2)},
		{"30 years", day(1995, 1, 1)},
	} {
		p := Patient{PersonID: 3, BirthDate: c.birth}
		for _, n := range []NewEntry{
			examOf(Finding{Tooth: 75, Condition: CondSound}, Finding{Tooth: 35, Condition: CondMissing}),
			examOf(Finding{Tooth: 85, Surfaces: "O", Condition: CondCaries}),
			{Kind: KindTreatmentPerformed, CareTime: now.Add(-time.Hour), Content: Content{Treatments: []Treatment{{Tooth: 85, Surfaces: "O", Procedure: "FYLD"}}}},
		} {
			require.NoError(t, n.Validate(p, now, cat, sks), c.name)
		}
	}
}

func TestSKSSearch(t *testing.T) {
	s, err := LoadSKS()
	require.NoError(t, err)
	res := s.Search("karies tandben", 10)
	require.NotEmpty(t, res)
	require.Equal(t, "DK021", res[0].Code)
	res = s.Search("DK02", 50)
	require.Equal(t, "DK02", res[0].Code)
	for _, c := range res {
		require.Contains(t, c.Code, "DK02")
	}
	// Danish letters match the transliterated texts.
	res = s.Search("tænders udvikling", 5)
	require.NotEmpty(t, res)
	require.Equal(t, "DK00", res[0].Code)
	require.Empty(t, s.Search("   ", 5))
	text, ok := s.Lookup("DK029")
	require.True(t, ok)
	require.Equal(t, "Karies UNS", text)
	// The texts carry their Danish letters (upstream stripped them), and
	// the old spelling still finds them.
	text, _ = s.Lookup("DK00")
	require.Equal(t, "Forstyrrelser i tænders udvikling og frembrud", text)
	require.Equal(t, "DK00", s.Search("taenders udvikling", 5)[0].Code)
}

// Every word of the SKS file holding ae, oe or aa is respelled or known to
// be Latin: a new code list cannot bring back "taender" unnoticed.
func TestSKSDanishSpellingIsComplete(t *testing.T) {
	for _, w := range regexp.MustCompile(`\p{L}+`).FindAllString(string(sksDiagnoses), -1) {
		l := strings.ToLower(w)
		if !strings.Contains(l, "ae") && !strings.Contains(l, "oe") && !strings.Contains(l, "aa") {
			continue
		}
		_, danish := danishSKSWords[l]
		require.True(t, danish || latinSKSWords[l], "SKS word %q: add it to danishSKSWords or latinSKSWords", w)
	}
	require.Equal(t, "Underkæbecyste på tænder", danishSpelling("Underkaebecyste paa taender"))
	require.Equal(t, "Gingivae mandibulae", danishSpelling("Gingivae mandibulae"))
}

func TestPersonAgeOnTheDanishDate(t *testing.T) {
	cases := []struct {
		name  string
		birth time.Time
		now   time.Time
		want  int
	}{
		{"23:30 UTC is after midnight in Copenhagen (CET)", day(2010, 3, 10), time.Date(2025, 3, 9, 23, 30, 0, 0, time.UTC), 15},
		{"22:59 UTC is 23:59 in Copenhagen", day(2010, 3, 10), time.Date(2025, 3, 9, 22, 59, 0, 0, time.UTC), 14},
		{"summer time (CEST)", day(2010, 6, 15), time.Date(2025, 6, 14, 22, 30, 0, 0, time.UTC), 15},
		{"summer time, before midnight", day(2010, 6, 15), time.Date(2025, 6, 14, 21, 59, 0, 0, time.UTC), 14},
		{"22nd birthday", day(2003, 3, 10), time.Date(2025, 3, 9, 23, 30, 0, 0, time.UTC), 22},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Person{BirthDate: c.birth}.ageAt(c.now), c.name)
	}
}

// The family's line for a tooth with open findings names what is found,
// also a whole-tooth finding without surfaces (a fracture), and never ends
// in a bare colon.
func TestFamilyFindingLines(t *testing.T) {
	cat := DefaultCatalogue()
	caries := map[string]SurfaceState{"O": {Caries: "dentin"}, "M": {Caries: "enamel"}}
	plan := []PlanMark{{PlanItemID: 1, Procedure: "FYLD", Surfaces: "MO"}}
	cases := []struct {
		name string
		st   ToothState
		lang string
		want string
	}{
		{"fracture", ToothState{Tooth: 21, Fracture: true}, "da", "øverste venstre midterste fortand (21): fraktur"},
		{"fracture, English", ToothState{Tooth: 21, Fracture: true}, "en", "upper left central incisor (21): fracture"},
		{"caries", ToothState{Tooth: 16, Surfaces: caries}, "da", "øverste højre 6-års tand (16): caries på fladen mod midten og tyggefladen"},
		{"caries and fracture", ToothState{Tooth: 16, Surfaces: caries, Fracture: true}, "da", "øverste højre 6-års tand (16): caries på fladen mod midten og tyggefladen, fraktur"},
		{"fracture with a plan", ToothState{Tooth: 16, Fracture: true, Planned: plan}, "da", "øverste højre 6-års tand (16): fraktur (planlagt: fyldning)"},
		{"only a plan", ToothState{Tooth: 16, Planned: plan}, "da", "øverste højre 6-års tand (16) (planlagt: fyldning)"},
	}
	for _, c := range cases {
		got := familyFinding(c.st, cat, c.lang)
		require.Equal(t, c.want, got, c.name)
		require.NotContains(t, got, ": (", c.name)
		require.False(t, strings.HasSuffix(strings.TrimSpace(got), ":"), c.name)
	}
}

func TestPlanProgress(t *testing.T) {
	p := Plan{Items: []PlanItem{{Status: ItemDone}, {Status: ItemPlanned}, {Status: ItemCancelled}, {Status: ItemReferred}}}
	require.Equal(t, Progress{Done: 2, Total: 3, Percent: 66}, p.Progress())
}

func TestMessagesDanishAndEnglish(t *testing.T) {
	m := Messages()
	for k := range m["da"] {
		require.Contains(t, m["en"], k, "English text for %s", k)
	}
	for k := range m["en"] {
		require.Contains(t, m["da"], k, "Danish text for %s", k)
	}
	for _, k := range Kinds {
		require.Contains(t, m["da"], "journal.kind."+string(k))
	}
	for _, c := range Conditions {
		require.Contains(t, m["en"], "journal.cond."+string(c))
	}
	// No recall from the 22nd birthday: "fyldt 22", not "over 22" (which
	// would mean 23 and older).
	require.Equal(t, "Ingen (fyldt 22 år)", m["da"]["journal.recall.none"])
}

// The chart's age counts on the Danish date: at 23:30 UTC on the evening
// before a child's 5th birthday it is already the birthday in Denmark.
func TestChartAgeOnTheDanishDate(t *testing.T) {
	birth := day(2020, 3, 10)
	c := BuildChart(birth, nil, nil, DefaultCatalogue(), time.Date(2025, 3, 9, 23, 30, 0, 0, time.UTC), true)
	require.Equal(t, 60, c.AgeMonths)
	c = BuildChart(birth, nil, nil, DefaultCatalogue(), time.Date(2025, 3, 9, 22, 59, 0, 0, time.UTC), true)
	require.Equal(t, 59, c.AgeMonths)
}
