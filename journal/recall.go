package journal

import (
	"fmt"
	"time"

	"github.com/molar-health/molar/auth"
)

// RecallRules decide when a child is next called in for an examination.
// The default follows the usual municipal rhythm (DOMAIN.md "Dental care"):
// call-ins at 8, 16 and 26 months, examinations at 3, 5 and 7 years, then
// risk-based intervals (on average about 1.5 years), never more than 2 years.
type RecallRules struct {
	// MilestoneMonths are ages (in months) at which every child is called in.
	MilestoneMonths []int `json:"milestone_months"`
	// IntervalMonths is the interval after an examination by risk level.
	IntervalMonths map[Risk]int `json:"interval_months"`
	// MaxMonths caps every interval (24: never more than 2 years).
	MaxMonths int `json:"max_months"`
	// MinGapMonths: a milestone closer than this after an examination is
	// skipped (the examination covered it).
	MinGapMonths int `json:"min_gap_months"`
	// EndAge: no recall on or after this birthday (free care ends at 22).
	EndAge int `json:"end_age"`
}

// DefaultRecallRules are the rules above: low risk 24 months, medium 18,
// high 12. A child whose caries risk was never assessed gets the medium
// interval (the average rhythm), not the longest one.
func DefaultRecallRules() RecallRules {
	return RecallRules{
		MilestoneMonths: []int{8, 16, 26, 36, 60, 84},
		IntervalMonths:  map[Risk]int{RiskLow: 24, RiskMedium: 18, RiskHigh: 12},
		MaxMonths:       MaxRecallMonths,
		MinGapMonths:    4,
		EndAge:          22,
	}
}

// Validate checks the rules.
func (r RecallRules) Validate() error {
	if r.MaxMonths <= 0 || r.MaxMonths > MaxRecallMonths {
		return fmt.Errorf("journal: recall rules: max_months must be 1–%d", MaxRecallMonths)
	}
	for _, risk := range Risks {
		if m := r.IntervalMonths[risk]; m <= 0 {
			return fmt.Errorf("journal: recall rules: no interval for risk %s", risk)
		}
	}
	prev := 0
	for _, m := range r.MilestoneMonths {
		if m <= prev {
			return fmt.Errorf("journal: recall rules: milestones must increase")
		}
		prev = m
	}
	if r.EndAge <= 0 {
		return fmt.Errorf("journal: recall rules: end_age must be positive")
	}
	return nil
}

// Recall basis: why a date was chosen.
const (
	BasisMilestone = "milestone" // an age-based call-in (8, 16, 26 months; 3, 5, 7 years)
	BasisInterval  = "interval"  // the risk-based interval after the last examination
	BasisExaminer  = "examiner"  // the interval the examiner chose
	// BasisUnassessed: the medium interval, because no caries risk has been
	// recorded (an unassessed child is not taken to be at low risk).
	BasisUnassessed = "unassessed"
)

// RecallInput is what the next recall depends on.
type RecallInput struct {
	BirthDate time.Time
	Risk      Risk      // "" = not assessed (the medium interval)
	LastExam  time.Time // zero: never examined
	// ChosenMonths is the examiner's interval at the last examination (0: none).
	ChosenMonths int
}

// NextRecall returns the date of the next examination and why, or ok
// false when none is due (free care has ended).
//
// Never examined: the first milestone. Otherwise the earlier of the next
// milestone at least MinGapMonths after the last examination and the
// interval for the risk level (or the examiner's chosen interval, which
// replaces both), each at most MaxMonths after the last examination.
func (r RecallRules) NextRecall(in RecallInput) (due time.Time, basis string, ok bool) {
	birth := dateOnly(in.BirthDate)
	if in.LastExam.IsZero() {
		if len(r.MilestoneMonths) == 0 {
			return birth, BasisMilestone, true
		}
		due, basis = addMonths(birth, r.MilestoneMonths[0]), BasisMilestone
	} else {
		last := dateOnly(in.LastExam)
		maxDate := addMonths(last, r.MaxMonths)
		if in.ChosenMonths > 0 {
			due, basis = addMonths(last, min(in.ChosenMonths, r.MaxMonths)), BasisExaminer
		} else {
			risk := in.Risk
			basis = BasisInterval
			if risk == "" {
				risk, basis = RiskMedium, BasisUnassessed
			}
			due = addMonths(last, min(r.IntervalMonths[risk], r.MaxMonths))
			gap := addMonths(last, r.MinGapMonths)
			for _, m := range r.MilestoneMonths {
				md := addMonths(birth, m)
				if !md.Before(gap) {
					if md.Before(due) && !md.After(maxDate) {
						due, basis = md, BasisMilestone
					}
					break
				}
			}
		}
	}
	if !due.Before(birth.AddDate(r.EndAge, 0, 0)) {
		return time.Time{}, "", false
	}
	return due, basis, true
}

// dateOnly is the Danish calendar date of t as UTC midnight (birth dates,
// already dates, stay as they are).
func dateOnly(t time.Time) time.Time {
	if t.Location() == time.UTC && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t
	}
	return auth.DateIn(t, auth.Copenhagen)
}
