package index

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/molar-health/molar/storage/postgres"
)

// DuplicatePolicy says what happens when a different object arrives under a
// stored SOP Instance UID (MOLAR_DUPLICATE_POLICY). An identical one (same
// SHA-256) never changes anything.
type DuplicatePolicy string

const (
	KeepFirst           DuplicatePolicy = "keep-first"
	Overwrite           DuplicatePolicy = "overwrite"
	OverwriteSameSource DuplicatePolicy = "overwrite-same-source"
)

// ParseDuplicatePolicy checks a policy name ("" = keep-first).
func ParseDuplicatePolicy(s string) (DuplicatePolicy, error) {
	switch p := DuplicatePolicy(s); p {
	case "":
		return KeepFirst, nil
	case KeepFirst, Overwrite, OverwriteSameSource:
		return p, nil
	}
	return "", fmt.Errorf("%w: duplicate policy %q (want keep-first, overwrite or overwrite-same-source)", ErrInvalid, s)
}

// Record is what ingest knows of one stored instance: the key attributes of
// each level (dates as YYYY-MM-DD, times as HH:MM:SS[.ffffff], "" if
// absent), the object, and the remaining attributes as DICOM JSON.
type Record struct {
	TenantID int64 `json:"tenant_id"`
	// Patient.
	PatientID   string `json:"patient_id"`
	Issuer      string `json:"issuer,omitempty"`
	PatientName string `json:"patient_name,omitempty"` // UTF-8 PN, NormalizeName'd
	BirthDate   string `json:"birth_date,omitempty"`
	Sex         string `json:"sex,omitempty"`
	// CPR is the Patient ID's 10 digits when it is a valid CPR number.
	CPR string `json:"cpr,omitempty"`
	// Study.
	StudyInstanceUID   string `json:"study_uid"`
	StudyDate          string `json:"study_date,omitempty"`
	StudyTime          string `json:"study_time,omitempty"`
	AccessionNumber    string `json:"accession,omitempty"`
	StudyID            string `json:"study_id,omitempty"`
	StudyDescription   string `json:"study_desc,omitempty"`
	ReferringPhysician string `json:"referring,omitempty"`
	// Series.
	SeriesInstanceUID string `json:"series_uid"`
	Modality          string `json:"modality,omitempty"`
	SeriesNumber      *int   `json:"series_number,omitempty"`
	SeriesDescription string `json:"series_desc,omitempty"`
	BodyPart          string `json:"body_part,omitempty"`
	SeriesDate        string `json:"series_date,omitempty"`
	SeriesTime        string `json:"series_time,omitempty"`
	StationName       string `json:"station,omitempty"`
	Laterality        string `json:"laterality,omitempty"`
	// Instance.
	SOPInstanceUID  string          `json:"sop_instance_uid"`
	SOPClassUID     string          `json:"sop_class_uid"`
	InstanceNumber  *int            `json:"instance_number,omitempty"`
	TransferSyntax  string          `json:"transfer_syntax"`
	ObjectKey       string          `json:"object_key"`
	Size            int64           `json:"size"`
	SHA256          []byte          `json:"-"`
	SourceAE        string          `json:"source_ae"`
	Rows            *int            `json:"rows,omitempty"`
	Columns         *int            `json:"columns,omitempty"`
	Frames          *int            `json:"frames,omitempty"`
	ContentDate     string          `json:"content_date,omitempty"`
	ContentTime     string          `json:"content_time,omitempty"`
	ImageLaterality string          `json:"image_laterality,omitempty"`
	ToothCodes      []string        `json:"tooth_codes,omitempty"`
	Attrs           json.RawMessage `json:"attrs,omitempty"`
}

// Outcomes of Ingest.
const (
	OutcomeStored      = "stored"
	OutcomeIdentical   = "identical"   // same SOP instance, same bytes: the new copy is redundant
	OutcomeKeptFirst   = "kept-first"  // different bytes, the stored one stays: the new copy is redundant
	OutcomeOverwritten = "overwritten" // the row points to the new object: OldKey is to be deleted
)

// Result is what Ingest did.
type Result struct {
	Outcome    string
	InstanceID int64
	StudyRef   int64
	SeriesRef  int64
	OldKey     string // the replaced object (OutcomeOverwritten)
	PersonID   int64  // reconciled person, 0 = none
	ReconState string
	NewStudy   bool
}

// Ingest indexes one stored object in the tenant transaction q (one round
// trip): duplicate handling by policy, patient/study/series upserts, the
// reconciliation of a new study with the register (auth.person by CPR
// number, name and birth date compared), the instance row.
func Ingest(ctx context.Context, q Querier, rec *Record, policy DuplicatePolicy) (Result, error) {
	return ingest(ctx, q, rec, policy, false)
}

// IngestInTenant is Ingest in a plain transaction (postgres.InTx, not
// InTenant): it scopes the transaction to rec.TenantID itself, in the same
// round trip (dicom.ingest_instance_in), and the scope stays for the rest
// of the transaction as with InTenant.
func IngestInTenant(ctx context.Context, q Querier, rec *Record, policy DuplicatePolicy) (Result, error) {
	return ingest(ctx, q, rec, policy, true)
}

func ingest(ctx context.Context, q Querier, rec *Record, policy DuplicatePolicy, scope bool) (Result, error) {
	sql, args, err := ingestStatement(rec, policy, scope)
	if err != nil {
		return Result{}, err
	}
	var r Result
	if err := scanIngest(q.QueryRow(ctx, sql, args...), &r); err != nil {
		return Result{}, err
	}
	return r, nil
}

// QueueIngestInTenant adds IngestInTenant's statement to b, so it can go
// to the server in one round trip with what comes before it (the BEGIN of
// the ingest transaction); r is filled when the batch runs, and the batch's
// error is the one IngestInTenant would return.
func QueueIngestInTenant(b *pgx.Batch, rec *Record, policy DuplicatePolicy, r *Result) error {
	sql, args, err := ingestStatement(rec, policy, true)
	if err != nil {
		return err
	}
	b.Queue(sql, args...).QueryRow(func(row pgx.Row) error { return scanIngest(row, r) })
	return nil
}

// ingestStatement is the one statement of an ingest: the record as JSON
// for dicom.ingest_instance(_in).
func ingestStatement(rec *Record, policy DuplicatePolicy, scope bool) (string, []any, error) {
	if rec.SOPInstanceUID == "" || rec.StudyInstanceUID == "" || rec.SeriesInstanceUID == "" || rec.SOPClassUID == "" {
		return "", nil, fmt.Errorf("%w: instance lacks a UID", ErrInvalid)
	}
	type payload struct {
		*Record
		SHA            string `json:"sha256"`
		NameCI         string `json:"name_ci,omitempty"`
		NameFuzzy      string `json:"name_fuzzy,omitempty"`
		StudyDescCI    string `json:"study_desc_ci,omitempty"`
		ReferringCI    string `json:"referring_ci,omitempty"`
		ReferringFuzzy string `json:"referring_fuzzy,omitempty"`
		SeriesDescCI   string `json:"series_desc_ci,omitempty"`
	}
	p := payload{Record: rec, SHA: hex.EncodeToString(rec.SHA256),
		NameCI: strings.ToLower(rec.PatientName), NameFuzzy: FuzzyKey(rec.PatientName),
		StudyDescCI: strings.ToLower(rec.StudyDescription), ReferringCI: strings.ToLower(rec.ReferringPhysician),
		ReferringFuzzy: FuzzyKey(rec.ReferringPhysician), SeriesDescCI: strings.ToLower(rec.SeriesDescription)}
	b, err := json.Marshal(p)
	if err != nil {
		return "", nil, fmt.Errorf("dicom: ingest: %w", err)
	}
	if policy == "" {
		policy = KeepFirst
	}
	if scope {
		return `SELECT outcome, instance_id, study_ref, series_ref, old_key, coalesce(person_id, 0), recon_state, new_study
		FROM dicom.ingest_instance_in($1, $2, $3)`, []any{rec.TenantID, b, string(policy)}, nil
	}
	return `SELECT outcome, instance_id, study_ref, series_ref, old_key, coalesce(person_id, 0), recon_state, new_study
		FROM dicom.ingest_instance($1, $2)`, []any{b, string(policy)}, nil
}

// scanIngest reads the statement's result into r.
func scanIngest(row pgx.Row, r *Result) error {
	var oldKey *string
	err := row.Scan(&r.Outcome, &r.InstanceID, &r.StudyRef, &r.SeriesRef, &oldKey, &r.PersonID, &r.ReconState, &r.NewStudy)
	if err != nil {
		if postgres.IsUniqueViolation(err) {
			return fmt.Errorf("dicom: ingest: %w: %w", ErrConflict, err)
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "P0001" && strings.HasPrefix(pgErr.Message, "molar: ") {
			return fmt.Errorf("%w: %s", ErrInconsistent, strings.TrimPrefix(pgErr.Message, "molar: "))
		}
		return fmt.Errorf("dicom: ingest: %w", err)
	}
	if oldKey != nil {
		r.OldKey = *oldKey
	}
	return nil
}

// ErrInconsistent: the instance contradicts what is indexed (a study of
// another patient, a series of another study); nothing was stored.
var ErrInconsistent = errors.New("dicom: the instance contradicts the index")

// ErrConflict: a concurrent ingest of the same SOP instance won; retry.
var ErrConflict = fmt.Errorf("dicom: concurrent ingest of the same instance")
