package query

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/worklist"
	"github.com/molar-health/molar/storage/postgres"
)

// Modality Worklist attributes (PS3.4 K.6.1.2).
var (
	tagSPSSequence          = header.NewTag(0x0040, 0x0100)
	tagStationAE            = header.NewTag(0x0040, 0x0001)
	tagSPSStartDate         = header.NewTag(0x0040, 0x0002)
	tagSPSStartTime         = header.NewTag(0x0040, 0x0003)
	tagPerformingPhysician  = header.NewTag(0x0040, 0x0006)
	tagSPSDescription       = header.NewTag(0x0040, 0x0007)
	tagSPSID                = header.NewTag(0x0040, 0x0009)
	tagStationName          = header.NewTag(0x0040, 0x0010)
	tagSPSLocation          = header.NewTag(0x0040, 0x0011)
	tagRequestedProcID      = header.NewTag(0x0040, 0x1001)
	tagRequestedProcDesc    = header.NewTag(0x0032, 0x1060)
	tagSPSStatus            = header.NewTag(0x0040, 0x0020)
	copenhagen, _           = time.LoadLocation("Europe/Copenhagen")
	wildcardMatcherReplacer = strings.NewReplacer(`\*`, ".*", `\?`, ".")
)

// matchValue is DICOM single value / wildcard matching in Go (for the
// worklist, whose source filters only the main keys).
func matchValue(pattern, value string, ci bool) bool {
	pattern = strings.TrimSpace(pattern)
	if pattern == "" || pattern == "*" {
		return true
	}
	if ci {
		pattern, value = strings.ToLower(pattern), strings.ToLower(value)
	}
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == value
	}
	re, err := regexp.Compile("^" + wildcardMatcherReplacer.Replace(regexp.QuoteMeta(pattern)) + "$")
	return err == nil && re.MatchString(value)
}

func dateRange(v string) (from, to time.Time, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, time.Time{}, true
	}
	lo, hi, isRange := strings.Cut(v, "-")
	if !isRange {
		hi = lo
	}
	if lo != "" {
		t, err := dateValue(lo)
		if err != nil {
			return from, to, false
		}
		from = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, copenhagen)
	}
	if hi != "" {
		t, err := dateValue(hi)
		if err != nil {
			return from, to, false
		}
		to = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, copenhagen).AddDate(0, 0, 1)
	}
	return from, to, true
}

// timeOfDay parses a TM value to the time since midnight; upper bounds
// include the fractions of their last second, as rangeCond does.
func timeOfDay(v string, upper bool) (time.Duration, error) {
	t, err := timeValue(v)
	if err != nil {
		return 0, err
	}
	h, _ := strconv.Atoi(t[0:2])
	m, _ := strconv.Atoi(t[3:5])
	sec, _ := strconv.Atoi(t[6:8])
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	if frac := strings.TrimPrefix(t[8:], "."); frac != "" {
		f, _ := strconv.Atoi((frac + "000000000")[:9])
		d += time.Duration(f)
	} else if upper {
		d += time.Second - time.Microsecond
	}
	return d, nil
}

// timeMatcher is TM single value or range matching on the time of day.
func timeMatcher(v string) (func(time.Duration) bool, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "-" {
		return func(time.Duration) bool { return true }, nil
	}
	lo, hi, isRange := strings.Cut(v, "-")
	if !isRange {
		x, err := timeOfDay(v, false)
		if err != nil {
			return nil, err
		}
		return func(d time.Duration) bool { return d == x }, nil
	}
	from, to := time.Duration(0), 24*time.Hour
	var err error
	if lo != "" {
		if from, err = timeOfDay(lo, false); err != nil {
			return nil, err
		}
	}
	if hi != "" {
		if to, err = timeOfDay(hi, true); err != nil {
			return nil, err
		}
	}
	return func(d time.Duration) bool { return d >= from && d <= to }, nil
}

func sinceMidnight(t time.Time) time.Duration {
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second +
		time.Duration(t.Nanosecond())
}

func (s *Service) findWorklist(ctx context.Context, assoc *dimse.AssociationInfo, tenant int64, id *header.Dataset, emit func(*header.Dataset) error) (dimse.Status, error) {
	var src worklist.Source
	if s.Worklist != nil {
		src = s.Worklist()
	}
	var sps *header.Dataset
	if items := id.Sequence(tagSPSSequence); len(items) > 0 {
		sps = items[0]
	} else {
		sps = header.NewDataset()
	}
	from, to, ok := dateRange(sps.Get(tagSPSStartDate))
	if !ok {
		return failFind(ErrInvalid)
	}
	startTime, err := timeMatcher(sps.Get(tagSPSStartTime))
	if err != nil {
		return failFind(err)
	}
	wq := worklist.Query{From: from, To: to}
	if v := sps.Get(tagStationAE); v != "" && !strings.ContainsAny(v, "*?") {
		wq.StationAETitle = v
	}
	if v := sps.Get(header.TagModality); v != "" && !strings.ContainsAny(v, "*?") {
		wq.Modality = v
	}
	if v := id.Get(header.TagPatientID); v != "" && !strings.ContainsAny(v, "*?") {
		wq.PatientID = v
	}
	if v := id.Get(header.TagAccessionNumber); v != "" && !strings.ContainsAny(v, "*?") {
		wq.AccessionNumber = v
	}
	if src == nil {
		return dimse.StatusSuccess, nil
	}
	items, err := src.Items(ctx, wq)
	if err != nil {
		return failFind(err)
	}
	cs := CharsetOf(id)
	var answer []worklist.Item
	for _, it := range items {
		if it.TenantID != 0 && it.TenantID != tenant {
			continue
		}
		name := it.PatientFamily + "^" + it.PatientGiven
		switch {
		case !matchValue(id.Get(header.TagPatientName), name, true) &&
			!(id.Get(header.TagPatientName) != "" && matchValue(index.FuzzyKey(id.Get(header.TagPatientName)), index.FuzzyKey(name), true)),
			!matchValue(id.Get(header.TagPatientID), it.PatientID, false),
			!matchValue(id.Get(header.TagAccessionNumber), it.AccessionNumber, false),
			!matchValue(sps.Get(tagStationAE), it.ScheduledStationAETitle, false),
			!matchValue(sps.Get(header.TagModality), it.Modality, false),
			!startTime(sinceMidnight(it.ScheduledStart.In(copenhagen))):
			continue
		}
		if len(answer) >= s.max() {
			break
		}
		answer = append(answer, it)
	}
	// Each person in the answer is audited (committed) before it is sent.
	actx := dimseActor(ctx, assoc, tenant)
	err = postgres.InTenant(actx, s.DB, tenant, func(tx pgx.Tx) error {
		seen := map[int64]bool{}
		for _, it := range answer {
			if it.PersonID == 0 || seen[it.PersonID] {
				continue
			}
			seen[it.PersonID] = true
			if err := audit.Record(actx, tx, audit.Event{Action: audit.ActionRead, PersonID: it.PersonID,
				Object: fmt.Sprintf("auth.person/%d", it.PersonID), Detail: map[string]any{"dimse": "C-FIND", "worklist": true}}); err != nil {
				return err
			}
		}
		return audit.Record(actx, tx, audit.Event{Action: audit.ActionSearch, Object: fmt.Sprintf("dicom.worklist/%d", len(answer)),
			Detail: map[string]any{"dimse": "C-FIND", "worklist": true, "results": len(answer)}})
	})
	if err != nil {
		return failFind(err)
	}
	for _, it := range answer {
		if err := emit(worklistResponse(id, sps, it, cs)); err != nil {
			return dimse.StatusCancel, nil
		}
	}
	return dimse.StatusSuccess, nil
}

func worklistResponse(id, sps *header.Dataset, it worklist.Item, cs Charset) *header.Dataset {
	d := header.NewDataset()
	if cs == Latin1 {
		d.SetString(TagSpecificCharacterSet, "CS", "ISO_IR 100")
	} else {
		d.SetString(TagSpecificCharacterSet, "CS", "ISO_IR 192")
	}
	start := it.ScheduledStart.In(copenhagen)
	birth := ""
	if !it.PatientBirthDate.IsZero() {
		birth = it.PatientBirthDate.Format("20060102")
	}
	top := map[header.Tag]string{
		header.TagPatientName:      index.NormalizeName(it.PatientFamily + "^" + it.PatientGiven),
		header.TagPatientID:        it.PatientID,
		header.TagPatientBirthDate: birth,
		TagPatientSex:              it.PatientSex,
		header.TagAccessionNumber:  it.AccessionNumber,
		tagRequestedProcID:         it.RequestedProcedureID,
		tagRequestedProcDesc:       it.RequestedProcedureDescription,
		header.TagStudyInstanceUID: it.StudyInstanceUID,
		TagReferringPhysician:      it.ReferringPhysician,
	}
	step := map[header.Tag]string{
		tagStationAE:           it.ScheduledStationAETitle,
		tagSPSStartDate:        start.Format("20060102"),
		tagSPSStartTime:        start.Format("150405"),
		header.TagModality:     it.Modality,
		tagPerformingPhysician: it.PerformingPhysician,
		tagSPSDescription:      it.ScheduledStepDescription,
		tagSPSID:               it.ScheduledStepID,
		tagStationName:         it.ScheduledStationName,
		tagSPSLocation:         it.Location,
		tagSPSStatus:           "SCHEDULED",
	}
	// Requested keys, plus the ones modalities need anyway.
	for _, t := range []header.Tag{header.TagPatientName, header.TagPatientID, header.TagAccessionNumber, header.TagStudyInstanceUID} {
		setText(d, t, header.DictionaryVR(t), top[t], cs)
	}
	for _, e := range id.Elements {
		if v, ok := top[e.Tag]; ok {
			setText(d, e.Tag, header.DictionaryVR(e.Tag), v, cs)
		} else if e.Tag != tagSPSSequence && e.Tag != TagSpecificCharacterSet && !d.Has(e.Tag) {
			d.Set(&header.Element{Tag: e.Tag, VR: e.VR})
		}
	}
	item := header.NewDataset()
	for t, v := range step {
		if sps.Has(t) || t == tagStationAE || t == tagSPSStartDate || t == tagSPSStartTime || t == header.TagModality || t == tagSPSID || t == tagSPSDescription {
			setText(item, t, header.DictionaryVR(t), v, cs)
		}
	}
	d.SetSequence(tagSPSSequence, item)
	return d
}
