package journal

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// ScorAges are the ages reported to SCOR, the national child dental
// register (DOMAIN.md "Dental care").
var ScorAges = []int{5, 7, 12, 15}

// ScorRecord is one child of a SCOR extract: the caries indices from the
// chart state at the child's last signed examination in the year.
type ScorRecord struct {
	Year      int
	ClinicID  int64
	PersonID  int64
	CPR       string // ten digits: the register identifies children by CPR number
	BirthDate time.Time
	Sex       string
	Age       int // age reached in the year
	Examined  bool
	ExamDate  time.Time
	Dentition Dentition
	Indices   Indices
	// Teeth codes every counted tooth and surface: "16:D:O 36:M 46:F:MODBL",
	// tooth, then D/M/F (permanent) or d/e/f (deciduous), then the surfaces.
	Teeth string
}

// ScorExporter writes a SCOR extract in a register's format. The file
// format of SCOR is not verified here (DOMAIN.md), so it is pluggable:
// CSVExporter is the first.
type ScorExporter interface {
	// ContentType is the MIME type of the output; Ext its file extension.
	ContentType() string
	Ext() string
	Export(w io.Writer, recs []ScorRecord) error
}

// CSVExporter writes one row per child with a header, comma-separated, UTF-8.
type CSVExporter struct{}

// ContentType implements ScorExporter.
func (CSVExporter) ContentType() string { return "text/csv; charset=utf-8" }

// Ext implements ScorExporter.
func (CSVExporter) Ext() string { return "csv" }

// Export implements ScorExporter.
func (CSVExporter) Export(w io.Writer, recs []ScorRecord) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"year", "clinic_id", "cpr", "birth_date", "sex", "age", "examined", "exam_date", "dentition",
		"D", "M", "F", "DMFS", "DMFT", "d", "e", "f", "defs", "deft", "teeth"})
	for _, r := range recs {
		exam := ""
		if r.Examined {
			exam = r.ExamDate.Format(time.DateOnly)
		}
		ix := r.Indices
		i := strconv.Itoa
		_ = cw.Write([]string{i(r.Year), strconv.FormatInt(r.ClinicID, 10), r.CPR, r.BirthDate.Format(time.DateOnly), r.Sex, i(r.Age),
			strconv.FormatBool(r.Examined), exam, string(r.Dentition),
			i(ix.DS), i(ix.MS), i(ix.FS), i(ix.DMFS), i(ix.DMFT), i(ix.Ds), i(ix.Es), i(ix.Fs), i(ix.DefS), i(ix.DefT), r.Teeth})
	}
	cw.Flush()
	return cw.Error()
}

// teethCode codes the counted teeth of a chart for ScorRecord.Teeth.
func teethCode(c *Chart) string {
	var parts []string
	for _, t := range AllTeeth() {
		s := c.Teeth[t]
		dm, mm, fm := "D", "M", "F"
		if t.Deciduous() {
			dm, mm, fm = "d", "e", "f"
		}
		switch {
		case c.extractedForCaries(t):
			parts = append(parts, fmt.Sprintf("%d:%s", int(t), mm))
		case s.Status.InMouth():
			var d, f strings.Builder
			for _, l := range surfaceOrder {
				ss := s.Surfaces[string(l)]
				if ss.Caries != "" {
					d.WriteByte(byte(l))
				} else if ss.Filling != "" || s.Crown != "" {
					f.WriteByte(byte(l))
				}
			}
			if s.Crown != "" {
				f.Reset()
				for _, l := range t.Surfaces() {
					if s.Surfaces[string(l)].Caries == "" {
						f.WriteByte(byte(l))
					}
				}
			}
			if d.Len() > 0 {
				parts = append(parts, fmt.Sprintf("%d:%s:%s", int(t), dm, d.String()))
			}
			if f.Len() > 0 {
				parts = append(parts, fmt.Sprintf("%d:%s:%s", int(t), fm, f.String()))
			}
		}
	}
	return strings.Join(parts, " ")
}

// ScorExtract builds the SCOR records of a clinic for a year: every child
// the clinic cares for (at the end of the year, or today) who reaches 5, 7,
// 12 or 15 in it, with the indices at their last signed examination of the
// year (Examined false when there is none). Each child's record is
// audit-logged as an export.
func (s *Service) ScorExtract(ctx context.Context, p *auth.Principal, clinicID int64, year int) ([]ScorRecord, error) {
	if err := requirePerm(p, auth.PermJournalReport); err != nil {
		return nil, err
	}
	now := s.now()
	if year < 2000 || year > now.Year() {
		return nil, inputErr("year.invalid")
	}
	ctx = auth.WithPrincipal(ctx, p)
	date := time.Date(year, 12, 31, 0, 0, 0, 0, time.UTC)
	if today := auth.DateIn(now, auth.Copenhagen); date.After(today) {
		date = today
	}
	yearStart := time.Date(year, 1, 1, 0, 0, 0, 0, auth.Copenhagen)
	yearEnd := time.Date(year+1, 1, 1, 0, 0, 0, 0, auth.Copenhagen)
	var out []ScorRecord
	err := postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		if err := requireClinic(ctx, tx, p, clinicID); err != nil {
			return err
		}
		d, err := loadClinic(ctx, tx, clinicID, date)
		if err != nil {
			return err
		}
		for _, c := range d.children {
			age := year - c.BirthDate.Year()
			if !slices.Contains(ScorAges, age) {
				continue
			}
			r := ScorRecord{Year: year, ClinicID: clinicID, PersonID: c.ID, CPR: c.digits, BirthDate: c.BirthDate, Sex: c.Sex, Age: age}
			var last *Entry
			for i, e := range d.entries[c.ID] {
				if e.Kind == KindExamination && e.Current() && e.Signed() && !e.CareTime.Before(yearStart) && e.CareTime.Before(yearEnd) &&
					(last == nil || e.CareTime.After(last.CareTime)) {
					last = &d.entries[c.ID][i]
				}
			}
			if last != nil {
				chart := BuildChart(c.BirthDate, d.entries[c.ID], nil, s.Catalogue, last.CareTime, true)
				r.Examined, r.ExamDate = true, auth.DateIn(last.CareTime, auth.Copenhagen)
				r.Dentition, r.Indices, r.Teeth = chart.Dentition, ComputeIndices(chart), teethCode(chart)
			}
			out = append(out, r)
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionExport, PersonID: c.ID,
				Object: fmt.Sprintf("journal.scor/%d/%d", clinicID, year)}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
