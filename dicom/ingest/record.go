package ingest

import (
	"strconv"
	"strings"
	"time"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
)

var (
	tagIssuer          = header.NewTag(0x0010, 0x0021)
	tagSex             = header.NewTag(0x0010, 0x0040)
	tagStudyTime       = header.NewTag(0x0008, 0x0030)
	tagStudyID         = header.NewTag(0x0020, 0x0010)
	tagStudyDesc       = header.NewTag(0x0008, 0x1030)
	tagReferring       = header.NewTag(0x0008, 0x0090)
	tagSeriesNumber    = header.NewTag(0x0020, 0x0011)
	tagSeriesDesc      = header.NewTag(0x0008, 0x103E)
	tagBodyPart        = header.NewTag(0x0018, 0x0015)
	tagSeriesDate      = header.NewTag(0x0008, 0x0021)
	tagSeriesTime      = header.NewTag(0x0008, 0x0031)
	tagStation         = header.NewTag(0x0008, 0x1010)
	tagLaterality      = header.NewTag(0x0020, 0x0060)
	tagInstanceNumber  = header.NewTag(0x0020, 0x0013)
	tagContentDate     = header.NewTag(0x0008, 0x0023)
	tagContentTime     = header.NewTag(0x0008, 0x0033)
	tagImageLaterality = header.NewTag(0x0020, 0x0062)
)

// buildRecord fills the index record from the parsed header.
func buildRecord(d *header.Dataset, rec *index.Record) error {
	rec.PatientID = strings.TrimSpace(d.Get(header.TagPatientID))
	rec.Issuer = d.Get(tagIssuer)
	rec.PatientName = index.NormalizeName(d.Get(header.TagPatientName))
	rec.BirthDate = Date(d.Get(header.TagPatientBirthDate))
	rec.Sex = strings.ToUpper(d.Get(tagSex))
	if c, err := auth.ParseCPR(rec.PatientID); err == nil {
		rec.CPR = c.Digits()
	}
	rec.StudyInstanceUID = d.UID(header.TagStudyInstanceUID)
	rec.StudyDate = Date(d.Get(header.TagStudyDate))
	rec.StudyTime = Time(d.Get(tagStudyTime))
	rec.AccessionNumber = d.Get(header.TagAccessionNumber)
	rec.StudyID = d.Get(tagStudyID)
	rec.StudyDescription = d.Get(tagStudyDesc)
	rec.ReferringPhysician = index.NormalizeName(d.Get(tagReferring))
	rec.SeriesInstanceUID = d.UID(header.TagSeriesInstanceUID)
	rec.Modality = strings.ToUpper(d.Get(header.TagModality))
	rec.SeriesNumber = intp(d, tagSeriesNumber)
	rec.SeriesDescription = d.Get(tagSeriesDesc)
	rec.BodyPart = d.Get(tagBodyPart)
	rec.SeriesDate = Date(d.Get(tagSeriesDate))
	rec.SeriesTime = Time(d.Get(tagSeriesTime))
	rec.StationName = d.Get(tagStation)
	rec.Laterality = d.Get(tagLaterality)
	rec.InstanceNumber = intp(d, tagInstanceNumber)
	rec.Rows = intp(d, header.TagRows)
	rec.Columns = intp(d, header.TagColumns)
	rec.Frames = intp(d, header.TagNumberOfFrames)
	rec.ContentDate = Date(d.Get(tagContentDate))
	rec.ContentTime = Time(d.Get(tagContentTime))
	rec.ImageLaterality = d.Get(tagImageLaterality)
	rec.ToothCodes = ToothCodes(d)
	attrs, err := attrsJSON(d)
	if err != nil {
		return err
	}
	rec.Attrs = attrs
	return nil
}

func intp(d *header.Dataset, t header.Tag) *int {
	v, ok := d.Int(t)
	if !ok || v > 1<<31-1 || v < -(1<<31) {
		return nil
	}
	n := int(v)
	return &n
}

// Date converts a DICOM DA value (YYYYMMDD, or the old YYYY.MM.DD) to
// YYYY-MM-DD; "" when absent or not a date.
func Date(da string) string {
	da = strings.ReplaceAll(strings.TrimSpace(da), ".", "")
	if len(da) != 8 {
		return ""
	}
	t, err := time.Parse("20060102", da)
	if err != nil || t.Year() < 1800 {
		return ""
	}
	return t.Format("2006-01-02")
}

// Time converts a DICOM TM value (HH[MM[SS[.F{1,6}]]], or the old
// HH:MM:SS) to HH:MM:SS[.ffffff]; "" when absent or invalid.
func Time(tm string) string {
	tm = strings.ReplaceAll(strings.TrimSpace(tm), ":", "")
	frac := ""
	if i := strings.IndexByte(tm, '.'); i >= 0 {
		tm, frac = tm[:i], tm[i+1:]
	}
	if len(tm) < 2 || len(tm) > 6 || len(tm)%2 != 0 || len(frac) > 6 {
		return ""
	}
	for _, s := range []string{tm, frac} {
		for _, c := range s {
			if c < '0' || c > '9' {
				return ""
			}
		}
	}
	tm += strings.Repeat("0", 6-len(tm))
	h, _ := strconv.Atoi(tm[0:2])
	m, _ := strconv.Atoi(tm[2:4])
	s, _ := strconv.Atoi(tm[4:6])
	if h > 23 || m > 59 || s > 60 {
		return ""
	}
	if s == 60 {
		s = 59
	}
	out := tm[0:2] + ":" + tm[2:4] + ":" + strconv.Itoa(100 + s)[1:]
	if frac != "" {
		out += "." + frac
	}
	return out
}
