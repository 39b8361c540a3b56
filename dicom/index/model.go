package index

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Reconciliation states of a study.
const (
	ReconMatched   = "matched"   // the Patient ID named a person of the register whose name and birth date agree
	ReconUnmatched = "unmatched" // no person found (not a CPR number, or unknown): on the reconciliation list
	ReconConflict  = "conflict"  // a person was found but name or birth date differ: on the list
	ReconResolved  = "resolved"  // staff linked, corrected or merged it
)

// Patient is a patient as the modalities named them (one row per Patient ID
// and issuer within a tenant).
type Patient struct {
	ID        int64
	TenantID  int64
	PatientID string
	Issuer    string
	Name      string // DICOM PN, UTF-8 ("Family^Given^Middle")
	BirthDate time.Time
	Sex       string
	PersonID  int64 // reconciled person; 0 = none
	Created   time.Time
}

// Study is one study.
type Study struct {
	ID                 int64
	TenantID           int64
	PatientRef         int64
	StudyInstanceUID   string
	StudyDate          time.Time // zero if absent
	StudyTime          string    // HH:MM:SS[.ffffff], "" if absent
	AccessionNumber    string
	StudyID            string
	Description        string
	ReferringPhysician string
	Modalities         []string
	SOPClasses         []string
	// PatientName and PatientBirthDate are what this study's first instance
	// said (may differ from the patient row; reconciliation shows both).
	PatientName      string
	PatientBirthDate time.Time
	PersonID         int64 // reconciled person; 0 = none
	ReconState       string
	ReconNote        string
	Created          time.Time
	// Counts (filled by the lookups of this package).
	NumSeries, NumInstances int
	// Patient (filled by the lookups of this package).
	Patient Patient
}

// Series is one series.
type Series struct {
	ID                int64
	TenantID          int64
	StudyRef          int64
	SeriesInstanceUID string
	Modality          string
	SeriesNumber      *int
	Description       string
	BodyPart          string
	SeriesDate        time.Time
	SeriesTime        string
	StationName       string
	Laterality        string
	NumInstances      int
}

// Instance is one stored instance: where its Part-10 object is and what it holds.
type Instance struct {
	ID                int64
	TenantID          int64
	SeriesRef         int64
	StudyRef          int64
	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPInstanceUID    string
	SOPClassUID       string
	InstanceNumber    *int
	TransferSyntax    string
	ObjectKey         string
	Size              int64
	SHA256            []byte
	SourceAE          string
	Rows, Columns     int
	Frames            int
	ImageLaterality   string
	ToothCodes        []string
	PersonID          int64
	Created           time.Time
}

const studyCols = `s.id, s.tenant_id, s.patient_ref, s.study_uid, s.study_date, coalesce(s.study_time::text, ''), s.accession, s.study_id,
	s.description, s.referring, s.modalities, s.sop_classes, s.patient_name, s.patient_birth, coalesce(s.person_id, 0),
	s.recon_state, s.recon_note, s.created,
	(SELECT count(*) FROM dicom.series x WHERE x.study_ref = s.id), (SELECT count(*) FROM dicom.instance x WHERE x.study_ref = s.id),
	p.id, p.tenant_id, p.patient_id, p.issuer, p.name, p.birth_date, p.sex, coalesce(p.person_id, 0), p.created`

func scanStudy(r pgx.Row) (Study, error) {
	var s Study
	var sd, pb, bd *time.Time
	err := r.Scan(&s.ID, &s.TenantID, &s.PatientRef, &s.StudyInstanceUID, &sd, &s.StudyTime, &s.AccessionNumber, &s.StudyID,
		&s.Description, &s.ReferringPhysician, &s.Modalities, &s.SOPClasses, &s.PatientName, &pb, &s.PersonID,
		&s.ReconState, &s.ReconNote, &s.Created, &s.NumSeries, &s.NumInstances,
		&s.Patient.ID, &s.Patient.TenantID, &s.Patient.PatientID, &s.Patient.Issuer, &s.Patient.Name, &bd, &s.Patient.Sex,
		&s.Patient.PersonID, &s.Patient.Created)
	s.StudyDate, s.PatientBirthDate, s.Patient.BirthDate = deref(sd), deref(pb), deref(bd)
	return s, err
}

const seriesCols = `se.id, se.tenant_id, se.study_ref, se.series_uid, se.modality, se.series_number, se.description, se.body_part,
	se.series_date, coalesce(se.series_time::text, ''), se.station_name, se.laterality,
	(SELECT count(*) FROM dicom.instance x WHERE x.series_ref = se.id)`

func scanSeries(r pgx.Row) (Series, error) {
	var s Series
	var d *time.Time
	err := r.Scan(&s.ID, &s.TenantID, &s.StudyRef, &s.SeriesInstanceUID, &s.Modality, &s.SeriesNumber, &s.Description, &s.BodyPart,
		&d, &s.SeriesTime, &s.StationName, &s.Laterality, &s.NumInstances)
	s.SeriesDate = deref(d)
	return s, err
}

const instanceCols = `i.id, i.tenant_id, i.series_ref, i.study_ref, st.study_uid, se.series_uid, i.sop_instance_uid, i.sop_class_uid,
	i.instance_number, i.transfer_syntax, i.object_key, i.size, i.sha256, i.source_ae, coalesce(i.rows, 0), coalesce(i.columns, 0),
	coalesce(i.frames, 1), i.image_laterality, i.tooth_codes, coalesce(i.person_id, 0), i.created`

const instanceFrom = ` FROM dicom.instance i JOIN dicom.series se ON se.id = i.series_ref JOIN dicom.study st ON st.id = i.study_ref `

func scanInstance(r pgx.Row) (Instance, error) {
	var i Instance
	err := r.Scan(&i.ID, &i.TenantID, &i.SeriesRef, &i.StudyRef, &i.StudyInstanceUID, &i.SeriesInstanceUID, &i.SOPInstanceUID,
		&i.SOPClassUID, &i.InstanceNumber, &i.TransferSyntax, &i.ObjectKey, &i.Size, &i.SHA256, &i.SourceAE, &i.Rows, &i.Columns,
		&i.Frames, &i.ImageLaterality, &i.ToothCodes, &i.PersonID, &i.Created)
	return i, err
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func one[T any](v T, err error, what string) (T, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	if err != nil {
		return v, fmt.Errorf("dicom: %s: %w", what, err)
	}
	return v, nil
}

// The lookups below run in the caller's tenant transaction
// (postgres.InTenant): row-level security limits them to that tenant.

// GetStudy returns the study with this Study Instance UID.
func GetStudy(ctx context.Context, q Querier, studyUID string) (Study, error) {
	s, err := scanStudy(q.QueryRow(ctx, `SELECT `+studyCols+` FROM dicom.study s JOIN dicom.patient p ON p.id = s.patient_ref WHERE s.study_uid = $1`, studyUID))
	return one(s, err, "study")
}

// GetStudyByID returns the study with this row id.
func GetStudyByID(ctx context.Context, q Querier, id int64) (Study, error) {
	s, err := scanStudy(q.QueryRow(ctx, `SELECT `+studyCols+` FROM dicom.study s JOIN dicom.patient p ON p.id = s.patient_ref WHERE s.id = $1`, id))
	return one(s, err, "study")
}

// GetSeries returns the series with this Series Instance UID.
func GetSeries(ctx context.Context, q Querier, seriesUID string) (Series, error) {
	s, err := scanSeries(q.QueryRow(ctx, `SELECT `+seriesCols+` FROM dicom.series se WHERE se.series_uid = $1`, seriesUID))
	return one(s, err, "series")
}

// GetInstance returns the instance with this SOP Instance UID.
func GetInstance(ctx context.Context, q Querier, sopInstanceUID string) (Instance, error) {
	i, err := scanInstance(q.QueryRow(ctx, `SELECT `+instanceCols+instanceFrom+`WHERE i.sop_instance_uid = $1`, sopInstanceUID))
	return one(i, err, "instance")
}

func collect[T any](rows pgx.Rows, err error, scan func(pgx.Row) (T, error), what string) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("dicom: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("dicom: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dicom: %s: %w", what, err)
	}
	return out, nil
}

// StudiesOfPerson lists a reconciled person's studies, newest first. This is
// what the viewer and the journal show for a person (access checked by the
// caller with auth.RequireAccess, audit-logged by the caller).
func StudiesOfPerson(ctx context.Context, q Querier, personID int64) ([]Study, error) {
	rows, err := q.Query(ctx, `SELECT `+studyCols+` FROM dicom.study s JOIN dicom.patient p ON p.id = s.patient_ref
		WHERE s.person_id = $1 ORDER BY s.study_date DESC NULLS LAST, s.study_time DESC NULLS LAST, s.id DESC`, personID)
	return collect(rows, err, scanStudy, "studies of person")
}

// SeriesOfStudy lists a study's series by series number.
func SeriesOfStudy(ctx context.Context, q Querier, studyUID string) ([]Series, error) {
	rows, err := q.Query(ctx, `SELECT `+seriesCols+` FROM dicom.series se JOIN dicom.study st ON st.id = se.study_ref
		WHERE st.study_uid = $1 ORDER BY se.series_number NULLS LAST, se.id`, studyUID)
	return collect(rows, err, scanSeries, "series of study")
}

// InstancesOfStudy lists a study's instances by series and instance number.
func InstancesOfStudy(ctx context.Context, q Querier, studyUID string) ([]Instance, error) {
	rows, err := q.Query(ctx, `SELECT `+instanceCols+instanceFrom+`WHERE st.study_uid = $1
		ORDER BY se.series_number NULLS LAST, se.id, i.instance_number NULLS LAST, i.id`, studyUID)
	return collect(rows, err, scanInstance, "instances of study")
}

// InstancesOfSeries lists a series' instances by instance number.
func InstancesOfSeries(ctx context.Context, q Querier, seriesUID string) ([]Instance, error) {
	rows, err := q.Query(ctx, `SELECT `+instanceCols+instanceFrom+`WHERE se.series_uid = $1
		ORDER BY i.instance_number NULLS LAST, i.id`, seriesUID)
	return collect(rows, err, scanInstance, "instances of series")
}

// InstancesByIDs returns instances by row id (query results).
func InstancesByIDs(ctx context.Context, q Querier, ids []int64) ([]Instance, error) {
	rows, err := q.Query(ctx, `SELECT `+instanceCols+instanceFrom+`WHERE i.id = ANY($1)
		ORDER BY st.id, se.series_number NULLS LAST, se.id, i.instance_number NULLS LAST, i.id`, ids)
	return collect(rows, err, scanInstance, "instances")
}

// InstancesBySOPUIDs returns the instances with these SOP Instance UIDs
// (those not indexed are absent).
func InstancesBySOPUIDs(ctx context.Context, q Querier, uids []string) ([]Instance, error) {
	rows, err := q.Query(ctx, `SELECT `+instanceCols+instanceFrom+`WHERE i.sop_instance_uid = ANY($1)`, uids)
	return collect(rows, err, scanInstance, "instances by SOP Instance UID")
}

// InstancesWithTooth lists a person's instances showing an ISO 3950 tooth.
func InstancesWithTooth(ctx context.Context, q Querier, personID int64, tooth string) ([]Instance, error) {
	rows, err := q.Query(ctx, `SELECT `+instanceCols+instanceFrom+`WHERE i.person_id = $1 AND i.tooth_codes @> ARRAY[$2]
		ORDER BY i.created DESC`, personID, tooth)
	return collect(rows, err, scanInstance, "instances with tooth")
}

// InstanceAttrs returns an instance's attributes in the DICOM JSON model
// (PS3.18 F.2; no bulk data) as stored at ingest.
func InstanceAttrs(ctx context.Context, q Querier, sopInstanceUID string) ([]byte, error) {
	var b []byte
	err := q.QueryRow(ctx, `SELECT attrs FROM dicom.instance WHERE sop_instance_uid = $1`, sopInstanceUID).Scan(&b)
	return one(b, err, "instance")
}

// KnownObjectKeys returns which keys an instance row points to, in any
// tenant (for the orphan sweep; no tenant needed).
func KnownObjectKeys(ctx context.Context, q Querier, keys []string) (map[string]bool, error) {
	rows, err := q.Query(ctx, `SELECT dicom.known_object_keys($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("dicom: known object keys: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out[k] = true
	}
	return out, rows.Err()
}

// ObjectRef is what an instance row says of its stored object.
type ObjectRef struct {
	InstanceID int64
	TenantID   int64
	Key        string
	Size       int64
	SHA256     []byte
}

// ObjectRefs returns up to limit instance rows of the transaction's tenant
// with ids above afterID, in id order (for walking the archive in pages).
// The tenant is named in the query too, not left to row-level security
// alone: a role that bypasses it must not see every tenant's rows in each
// tenant's pass.
func ObjectRefs(ctx context.Context, q Querier, afterID int64, limit int) ([]ObjectRef, error) {
	rows, err := q.Query(ctx, `SELECT id, tenant_id, object_key, size, sha256 FROM dicom.instance
		WHERE tenant_id = current_setting('molar.tenant')::bigint AND id > $1 ORDER BY id LIMIT $2`, afterID, limit)
	return collect(rows, err, func(r pgx.Row) (ObjectRef, error) {
		var o ObjectRef
		err := r.Scan(&o.InstanceID, &o.TenantID, &o.Key, &o.Size, &o.SHA256)
		return o, err
	}, "instance objects")
}

// EachObjectRef walks instance rows in pages of size in id order: page
// runs one ObjectRefs query (in whatever transaction the caller keeps: one
// snapshot, or a short one per page), fn sees each row.
func EachObjectRef(size int, page func(afterID int64, limit int) ([]ObjectRef, error), fn func(ObjectRef) error) error {
	after := int64(0)
	for {
		refs, err := page(after, size)
		if err != nil {
			return err
		}
		for _, ref := range refs {
			if err := fn(ref); err != nil {
				return err
			}
		}
		if len(refs) < size {
			return nil
		}
		after = refs[len(refs)-1].InstanceID
	}
}

// TenantIDs lists every municipality's id (for installation-wide walks:
// archive verification, backup, restore).
func TenantIDs(ctx context.Context, q Querier) ([]int64, error) {
	rows, err := q.Query(ctx, `SELECT id FROM auth.tenant ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("dicom: municipalities: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// CountObjects returns how many instance rows the transaction's tenant has
// and the size of their objects together.
func CountObjects(ctx context.Context, q Querier) (n, bytes int64, err error) {
	err = q.QueryRow(ctx, `SELECT count(*), coalesce(sum(size), 0) FROM dicom.instance
		WHERE tenant_id = current_setting('molar.tenant')::bigint`).Scan(&n, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("dicom: count instances: %w", err)
	}
	return n, bytes, nil
}
