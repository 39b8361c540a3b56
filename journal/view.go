package journal

import (
	"fmt"
	"strings"
	"time"

	"github.com/molar-health/molar/auth"
)

// Polygon is one surface of a tooth drawn as a cross (40×40 SVG units).
type Polygon struct {
	Points string
	Letter string
	Class  string
}

// ChartCell is one tooth of the chart as the page draws it.
type ChartCell struct {
	Tooth    Tooth
	Class    string // status and tooth-level marks, CSS classes
	Title    string // tooltip
	Polygons []Polygon
	Planned  bool
}

// ChartView is the chart's four rows for the template.
type ChartView struct {
	Rows [4][]ChartCell
}

var (
	polyTop    = "0,0 40,0 28,12 12,12"
	polyBottom = "0,40 12,28 28,28 40,40"
	polyLeft   = "0,0 12,12 12,28 0,40"
	polyRight  = "40,0 40,40 28,28 28,12"
	polyCenter = "12,12 28,12 28,28 12,28"
)

// cellOf draws a tooth: the centre is the occlusal or incisal surface; the
// outer side (top of the upper rows, bottom of the lower rows) is buccal;
// mesial points to the midline (right for teeth on the patient's right,
// which the dentist sees on the left).
func cellOf(s *ToothState, lang string) ChartCell {
	t := s.Tooth
	outer, inner := SurfaceB, SurfaceL
	if !t.Upper() {
		outer, inner = SurfaceL, SurfaceB
	}
	q := t.Quadrant()
	patientRight := q == 1 || q == 4 || q == 5 || q == 8
	left, right := SurfaceD, SurfaceM
	if !patientRight {
		left, right = SurfaceM, SurfaceD
	}
	centre := SurfaceO
	if t.Anterior() {
		centre = SurfaceI
	}
	c := ChartCell{Tooth: t, Planned: len(s.Planned) > 0}
	classes := []string{"st-" + strings.ReplaceAll(string(s.Status), "_", "-")}
	if s.Expected {
		classes = append(classes, "expected")
	}
	if s.Crown != "" {
		classes = append(classes, "crown")
	}
	if s.RootFilled {
		classes = append(classes, "rootfilled")
	}
	if s.Fracture {
		classes = append(classes, "fracture")
	}
	if s.Hypomin {
		classes = append(classes, "hypomin")
	}
	if c.Planned {
		classes = append(classes, "planned")
	}
	if t.Deciduous() {
		classes = append(classes, "deciduous")
	}
	c.Class = strings.Join(classes, " ")
	m := messages[lang]
	title := []string{fmt.Sprintf("%d: %s", int(t), m["journal.toothstatus."+string(s.Status)])}
	for _, p := range []struct {
		pts string
		sf  Surface
	}{{polyTop, outer}, {polyBottom, inner}, {polyLeft, left}, {polyRight, right}, {polyCenter, centre}} {
		ss := s.Surfaces[string(p.sf)]
		cls := "sf"
		switch {
		case ss.Caries != "":
			cls += " caries"
			title = append(title, string(p.sf)+": "+m["journal.cond.caries"])
		case ss.Filling != "":
			cls += " filling"
			title = append(title, string(p.sf)+": "+m["journal.cond.filling"])
		case ss.Sealant:
			cls += " sealant"
			title = append(title, string(p.sf)+": "+m["journal.cond.sealant"])
		}
		if ss.Fracture {
			cls += " fracture"
		}
		if ss.Hypomin {
			cls += " hypomin"
		}
		c.Polygons = append(c.Polygons, Polygon{Points: p.pts, Letter: string(p.sf), Class: cls})
	}
	if s.Crown != "" {
		title = append(title, m["journal.cond.crown"])
	}
	for _, pl := range s.Planned {
		title = append(title, m["journal.tooth.planned"]+": "+pl.Procedure+" "+pl.Surfaces)
	}
	c.Title = strings.Join(title, "; ")
	return c
}

// ViewChart prepares a chart for the page.
func ViewChart(c *Chart, lang string) ChartView {
	var v ChartView
	for i, row := range c.Rows() {
		for _, s := range row {
			v.Rows[i] = append(v.Rows[i], cellOf(s, lang))
		}
	}
	return v
}

// Display helpers for the templates (Danish dates, Copenhagen time).

func localTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(auth.Copenhagen).Format("02-01-2006 15:04")
}

func localDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return auth.DateIn(t, auth.Copenhagen).Format("02-01-2006")
}

// CareText is the time of care as people read it.
func (e Entry) CareText() string { return localTime(e.CareTime) }

// RecordedText is the time of recording.
func (e Entry) RecordedText() string { return localTime(e.RecordedAt) }

// SignedText is the time of signing ("" when unsigned).
func (e Entry) SignedText() string { return localTime(e.SignedAt) }

// BirthText is the birth date.
func (p Person) BirthText() string {
	if p.BirthDate.IsZero() {
		return ""
	}
	return p.BirthDate.Format("02-01-2006")
}

// Age is the age in whole years today.
func (p Person) Age() int { return p.ageAt(time.Now()) }

// ageAt is the age in whole years at now, counted on the Danish date: a
// birthday starts at midnight in Copenhagen, not on the server's clock.
func (p Person) ageAt(now time.Time) int {
	return ageYears(p.BirthDate, auth.DateIn(now, auth.Copenhagen))
}

// DueText is the due date.
func (r RecallInfo) DueText() string { return localDate(r.Due) }

// LastText is the date of the last examination.
func (r RecallInfo) LastText() string { return localDate(r.LastExam) }

// DueText is the due date.
func (r Recall) DueText() string { return localDate(r.DueDate) }

// LastText is the date of the last examination.
func (r Recall) LastText() string { return localDate(r.LastExam) }

// LinkedText is when the image was linked (or taken).
func (l ImageLink) LinkedText() string { return localDate(l.LinkedAt) }

// Summary lists what an entry says, one line per item, for staff.
func (e Entry) Summary(lang string) []string {
	m := messages[lang]
	if m == nil {
		m = messages["da"]
	}
	var out []string
	for _, f := range e.Findings {
		line := fmt.Sprintf("%d", int(f.Tooth))
		if f.Surfaces != "" {
			line += " " + f.Surfaces
		}
		line += ": " + m["journal.cond."+string(f.Condition)]
		for _, k := range []string{"journal.depth." + f.Depth, "journal.material." + f.Material, "journal.reason." + f.Reason} {
			if v, ok := m[k]; ok {
				line += ", " + v
			}
		}
		if f.Note != "" {
			line += " (" + f.Note + ")"
		}
		out = append(out, line)
	}
	for _, d := range e.Diagnoses {
		line := d.Code + " " + d.Text
		if d.Tooth != 0 {
			line += fmt.Sprintf(" (%d)", int(d.Tooth))
		}
		out = append(out, line)
	}
	for _, t := range e.Treatments {
		line := t.Procedure
		if t.Tooth != 0 {
			line += fmt.Sprintf(" %d", int(t.Tooth))
		}
		if t.Surfaces != "" {
			line += " " + t.Surfaces
		}
		if v, ok := m["journal.material."+t.Material]; ok {
			line += ", " + v
		}
		if v, ok := m["journal.reason."+t.Reason]; ok && t.Reason != "" {
			line += ", " + v
		}
		if t.PlanItemID != 0 {
			line += fmt.Sprintf(" [#%d]", t.PlanItemID)
		}
		out = append(out, line)
	}
	if e.XRay != nil {
		line := "Study " + e.XRay.StudyUID
		if len(e.XRay.Teeth) > 0 {
			line += fmt.Sprintf(" %v", e.XRay.Teeth)
		}
		if e.XRay.ShowsDisease {
			line += " · " + m["journal.xray.disease"]
		}
		out = append(out, line)
	}
	if e.Consent != nil {
		given := "✗"
		if e.Consent.Given {
			given = "✓"
		}
		out = append(out, fmt.Sprintf("%s: %s (%s)", e.Consent.Topic, given, m["journal.consent."+e.Consent.GivenBy]))
	}
	if e.RecallMonths > 0 {
		out = append(out, fmt.Sprintf("%s: %d", m["journal.recallmonths"], e.RecallMonths))
	}
	if e.Risk != "" {
		out = append(out, m["journal.risk"]+": "+m["journal.risk."+string(e.Risk)])
	}
	if e.Text != "" {
		out = append(out, e.Text)
	}
	return out
}
