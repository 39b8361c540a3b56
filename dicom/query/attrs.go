package query

import "github.com/molar-health/molar/dicom/header"

// kind says how a key matches and how its column is read.
type kind int

const (
	kString kind = iota // exact or wildcard, case-sensitive
	kCI                 // exact or wildcard, case-insensitive (descriptions)
	kPN                 // person name: case-insensitive, fuzzy when asked
	kUID                // single UID or a list
	kDate               // single date or range
	kTime               // single time or range
	kInt                // integer
	kArray              // text[] column (modalities, SOP classes): any value in the list
	kCount              // computed, return only
	kTeeth              // Primary Anatomic Structure Sequence: tooth codes
	kTS                 // available transfer syntax, return only + exact
)

// attr is a key the index holds as a column.
type attr struct {
	level Level
	kind  kind
	col   string // SQL expression of the value
	ci    string // lower-case column (kPN, kCI)
	fuzzy string // fuzzy key column (kPN)
}

// Tags of the query keys the index answers from columns.
var (
	TagPatientName            = header.TagPatientName
	TagPatientID              = header.TagPatientID
	TagIssuerOfPatientID      = header.NewTag(0x0010, 0x0021)
	TagPatientBirthDate       = header.TagPatientBirthDate
	TagPatientSex             = header.NewTag(0x0010, 0x0040)
	TagNumPatientStudies      = header.NewTag(0x0020, 0x1200)
	TagNumPatientSeries       = header.NewTag(0x0020, 0x1202)
	TagNumPatientInstances    = header.NewTag(0x0020, 0x1204)
	TagStudyInstanceUID       = header.TagStudyInstanceUID
	TagStudyDate              = header.TagStudyDate
	TagStudyTime              = header.NewTag(0x0008, 0x0030)
	TagAccessionNumber        = header.TagAccessionNumber
	TagStudyID                = header.NewTag(0x0020, 0x0010)
	TagStudyDescription       = header.NewTag(0x0008, 0x1030)
	TagReferringPhysician     = header.NewTag(0x0008, 0x0090)
	TagModalitiesInStudy      = header.NewTag(0x0008, 0x0061)
	TagSOPClassesInStudy      = header.NewTag(0x0008, 0x0062)
	TagNumStudySeries         = header.NewTag(0x0020, 0x1206)
	TagNumStudyInstances      = header.NewTag(0x0020, 0x1208)
	TagSeriesInstanceUID      = header.TagSeriesInstanceUID
	TagModality               = header.TagModality
	TagSeriesNumber           = header.NewTag(0x0020, 0x0011)
	TagSeriesDescription      = header.NewTag(0x0008, 0x103E)
	TagBodyPartExamined       = header.NewTag(0x0018, 0x0015)
	TagSeriesDate             = header.NewTag(0x0008, 0x0021)
	TagSeriesTime             = header.NewTag(0x0008, 0x0031)
	TagStationName            = header.NewTag(0x0008, 0x1010)
	TagLaterality             = header.NewTag(0x0020, 0x0060)
	TagNumSeriesInstances     = header.NewTag(0x0020, 0x1209)
	TagSOPInstanceUID         = header.TagSOPInstanceUID
	TagSOPClassUID            = header.TagSOPClassUID
	TagInstanceNumber         = header.NewTag(0x0020, 0x0013)
	TagContentDate            = header.NewTag(0x0008, 0x0023)
	TagContentTime            = header.NewTag(0x0008, 0x0033)
	TagRows                   = header.TagRows
	TagColumns                = header.TagColumns
	TagNumberOfFrames         = header.TagNumberOfFrames
	TagImageLaterality        = header.NewTag(0x0020, 0x0062)
	TagPrimaryAnatomic        = header.TagPrimaryAnatomicStructSeq
	TagAvailableTS            = header.NewTag(0x0008, 0x3002)
	TagRetrieveAETitle        = header.NewTag(0x0008, 0x0054)
	TagInstanceAvailability   = header.NewTag(0x0008, 0x0056)
	TagTimezoneOffset         = header.NewTag(0x0008, 0x0201)
	TagSpecificCharacterSet   = header.TagSpecificCharacterSet
	TagQueryRetrieveLevel     = header.TagQueryRetrieveLevel
	tagCodeValue              = header.NewTag(0x0008, 0x0100)
	tagCodingSchemeDesignator = header.NewTag(0x0008, 0x0102)
	tagCodeMeaning            = header.NewTag(0x0008, 0x0104)
)

var attrs = map[header.Tag]attr{
	TagPatientName:         {level: Patient, kind: kPN, col: "p.name", ci: "p.name_ci", fuzzy: "p.name_fuzzy"},
	TagPatientID:           {level: Patient, kind: kString, col: "p.patient_id"},
	TagIssuerOfPatientID:   {level: Patient, kind: kString, col: "p.issuer"},
	TagPatientBirthDate:    {level: Patient, kind: kDate, col: "p.birth_date"},
	TagPatientSex:          {level: Patient, kind: kString, col: "p.sex"},
	TagNumPatientStudies:   {level: Patient, kind: kCount, col: "(SELECT count(*) FROM dicom.study x WHERE x.patient_ref = p.id)"},
	TagNumPatientSeries:    {level: Patient, kind: kCount, col: "(SELECT count(*) FROM dicom.series x JOIN dicom.study y ON y.id = x.study_ref WHERE y.patient_ref = p.id)"},
	TagNumPatientInstances: {level: Patient, kind: kCount, col: "(SELECT count(*) FROM dicom.instance x JOIN dicom.study y ON y.id = x.study_ref WHERE y.patient_ref = p.id)"},

	TagStudyInstanceUID:   {level: Study, kind: kUID, col: "s.study_uid"},
	TagStudyDate:          {level: Study, kind: kDate, col: "s.study_date"},
	TagStudyTime:          {level: Study, kind: kTime, col: "s.study_time"},
	TagAccessionNumber:    {level: Study, kind: kString, col: "s.accession"},
	TagStudyID:            {level: Study, kind: kString, col: "s.study_id"},
	TagStudyDescription:   {level: Study, kind: kCI, col: "s.description", ci: "s.description_ci"},
	TagReferringPhysician: {level: Study, kind: kPN, col: "s.referring", ci: "s.referring_ci", fuzzy: "s.referring_fuzzy"},
	TagModalitiesInStudy:  {level: Study, kind: kArray, col: "s.modalities"},
	TagSOPClassesInStudy:  {level: Study, kind: kArray, col: "s.sop_classes"},
	TagNumStudySeries:     {level: Study, kind: kCount, col: "(SELECT count(*) FROM dicom.series x WHERE x.study_ref = s.id)"},
	TagNumStudyInstances:  {level: Study, kind: kCount, col: "(SELECT count(*) FROM dicom.instance x WHERE x.study_ref = s.id)"},

	TagSeriesInstanceUID:  {level: Series, kind: kUID, col: "se.series_uid"},
	TagModality:           {level: Series, kind: kString, col: "se.modality"},
	TagSeriesNumber:       {level: Series, kind: kInt, col: "se.series_number"},
	TagSeriesDescription:  {level: Series, kind: kCI, col: "se.description", ci: "se.description_ci"},
	TagBodyPartExamined:   {level: Series, kind: kString, col: "se.body_part"},
	TagSeriesDate:         {level: Series, kind: kDate, col: "se.series_date"},
	TagSeriesTime:         {level: Series, kind: kTime, col: "se.series_time"},
	TagStationName:        {level: Series, kind: kString, col: "se.station_name"},
	TagLaterality:         {level: Series, kind: kString, col: "se.laterality"},
	TagNumSeriesInstances: {level: Series, kind: kCount, col: "(SELECT count(*) FROM dicom.instance x WHERE x.series_ref = se.id)"},

	TagSOPInstanceUID:  {level: Image, kind: kUID, col: "i.sop_instance_uid"},
	TagSOPClassUID:     {level: Image, kind: kUID, col: "i.sop_class_uid"},
	TagInstanceNumber:  {level: Image, kind: kInt, col: "i.instance_number"},
	TagContentDate:     {level: Image, kind: kDate, col: "i.content_date"},
	TagContentTime:     {level: Image, kind: kTime, col: "i.content_time"},
	TagRows:            {level: Image, kind: kInt, col: "i.rows"},
	TagColumns:         {level: Image, kind: kInt, col: "i.columns"},
	TagNumberOfFrames:  {level: Image, kind: kInt, col: "i.frames"},
	TagImageLaterality: {level: Image, kind: kString, col: "i.image_laterality"},
	TagPrimaryAnatomic: {level: Image, kind: kTeeth, col: "i.tooth_codes"},
	TagAvailableTS:     {level: Image, kind: kTS, col: "i.transfer_syntax"},
}

// KeyLevel is the level of an indexed attribute (ok false: not indexed).
// Deeper attributes are not answered at a higher level.
func KeyLevel(t header.Tag) (Level, bool) {
	a, ok := attrs[t]
	return a.level, ok
}
