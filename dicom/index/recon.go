package index

import (
	"context"
	"fmt"
	"time"
)

// ReconciliationList lists the tenant's studies waiting for reconciliation
// (unmatched or conflicting), oldest first.
func ReconciliationList(ctx context.Context, q Querier, limit int) ([]Study, error) {
	if limit <= 0 {
		limit = 200
	}
	rows, err := q.Query(ctx, `SELECT `+studyCols+` FROM dicom.study s JOIN dicom.patient p ON p.id = s.patient_ref
		WHERE s.recon_state IN ('unmatched', 'conflict') ORDER BY s.created, s.id LIMIT $1`, limit)
	return collect(rows, err, scanStudy, "reconciliation list")
}

func logRecon(ctx context.Context, q Querier, tenant, study int64, action string, person int64, actor string, detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	_, err := q.Exec(ctx, `INSERT INTO dicom.reconciliation (tenant_id, study_ref, action, person_id, actor, detail)
		VALUES ($1, NULLIF($2, 0), $3, NULLIF($4, 0), $5, $6)`, tenant, study, action, person, actor, detail)
	if err != nil {
		return fmt.Errorf("dicom: reconciliation log: %w", err)
	}
	return nil
}

// Link reconciles a study with a person of the register (staff decided):
// the study and its instances follow the person from now on.
func Link(ctx context.Context, q Querier, studyID, personID int64, actor string) (Study, error) {
	st, err := GetStudyByID(ctx, q, studyID)
	if err != nil {
		return Study{}, err
	}
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM auth.person WHERE id = $1)`, personID).Scan(&ok); err != nil {
		return Study{}, fmt.Errorf("dicom: link: %w", err)
	}
	if !ok {
		return Study{}, fmt.Errorf("%w: person %d", ErrNotFound, personID)
	}
	if _, err := q.Exec(ctx, `UPDATE dicom.study SET person_id = $2, recon_state = 'resolved', recon_note = '', updated = now() WHERE id = $1`,
		studyID, personID); err != nil {
		return Study{}, fmt.Errorf("dicom: link: %w", err)
	}
	if _, err := q.Exec(ctx, `UPDATE dicom.instance SET person_id = $2, updated = now() WHERE study_ref = $1`, studyID, personID); err != nil {
		return Study{}, fmt.Errorf("dicom: link: %w", err)
	}
	// The Patient ID now names this person (later studies still check names).
	if _, err := q.Exec(ctx, `UPDATE dicom.patient SET person_id = $2, updated = now() WHERE id = $1 AND person_id IS NULL`, st.PatientRef, personID); err != nil {
		return Study{}, fmt.Errorf("dicom: link: %w", err)
	}
	if err := logRecon(ctx, q, st.TenantID, studyID, "link", personID, actor, map[string]any{"previous_person": st.PersonID, "previous_state": st.ReconState}); err != nil {
		return Study{}, err
	}
	return GetStudyByID(ctx, q, studyID)
}

// Correction is what staff correct about a study's patient in the index
// (the stored objects are never changed): the Patient ID it belongs under
// (e.g. the right CPR number), name and birth date. Empty fields stay.
type Correction struct {
	PatientID string
	Name      string
	BirthDate time.Time
	// CPR is the corrected Patient ID's digits when it is a CPR number
	// (the caller parses it); the study is then matched to the register
	// again.
	CPR string
}

// Correct moves a study under the corrected patient and matches it
// against the register again (by CPR number, name and birth date).
func Correct(ctx context.Context, q Querier, studyID int64, c Correction, actor string) (Study, error) {
	st, err := GetStudyByID(ctx, q, studyID)
	if err != nil {
		return Study{}, err
	}
	pid := st.Patient.PatientID
	if c.PatientID != "" {
		pid = c.PatientID
	}
	name := st.PatientName
	if c.Name != "" {
		name = NormalizeName(c.Name)
	}
	birth := st.PatientBirthDate
	if !c.BirthDate.IsZero() {
		birth = c.BirthDate
	}
	var birthArg any
	if !birth.IsZero() {
		birthArg = birth
	}
	var patRef int64
	err = q.QueryRow(ctx, `INSERT INTO dicom.patient (tenant_id, patient_id, issuer, name, name_ci, name_fuzzy, birth_date, sex)
		VALUES ($1, $2, '', $3, lower($3), $4, $5, $6)
		ON CONFLICT (tenant_id, patient_id, issuer) DO UPDATE SET updated = now() RETURNING id`,
		st.TenantID, pid, name, FuzzyKey(name), birthArg, st.Patient.Sex).Scan(&patRef)
	if err != nil {
		return Study{}, fmt.Errorf("dicom: correct: %w", err)
	}
	// Match again.
	state, note := ReconUnmatched, "patient id is not a cpr number"
	var person int64
	if c.CPR != "" {
		var pBirth *time.Time
		var pName string
		err := q.QueryRow(ctx, `SELECT id, birth_date, dicom.fuzzy_key(given_name || ' ' || family_name) FROM auth.person WHERE cpr = $1`, c.CPR).
			Scan(&person, &pBirth, &pName)
		var agree bool
		switch {
		case err != nil:
			person, note = 0, "no person with this cpr number"
		case pBirth != nil && !birth.IsZero() && !pBirth.Equal(birth):
			state, note, person = ReconConflict, "birth date differs", 0
		default:
			if err := q.QueryRow(ctx, `SELECT dicom.names_agree($1, $2)`, FuzzyKey(name), pName).Scan(&agree); err != nil {
				return Study{}, fmt.Errorf("dicom: correct: %w", err)
			}
			if agree {
				state, note = ReconResolved, ""
			} else {
				state, note, person = ReconConflict, "name differs", 0
			}
		}
	}
	var personArg any
	if person != 0 {
		personArg = person
	}
	if _, err := q.Exec(ctx, `UPDATE dicom.study SET patient_ref = $2, patient_name = $3, patient_birth = $4, person_id = $5,
		recon_state = $6, recon_note = $7, updated = now() WHERE id = $1`, studyID, patRef, name, birthArg, personArg, state, note); err != nil {
		return Study{}, fmt.Errorf("dicom: correct: %w", err)
	}
	if _, err := q.Exec(ctx, `UPDATE dicom.instance SET person_id = $2, updated = now() WHERE study_ref = $1`, studyID, personArg); err != nil {
		return Study{}, fmt.Errorf("dicom: correct: %w", err)
	}
	if person != 0 {
		if _, err := q.Exec(ctx, `UPDATE dicom.patient SET person_id = $2, updated = now() WHERE id = $1 AND person_id IS NULL`, patRef, person); err != nil {
			return Study{}, fmt.Errorf("dicom: correct: %w", err)
		}
	}
	if err := logRecon(ctx, q, st.TenantID, studyID, "correct", person, actor, map[string]any{"previous_patient_ref": st.PatientRef, "patient_ref": patRef, "state": state}); err != nil {
		return Study{}, err
	}
	return GetStudyByID(ctx, q, studyID)
}

// Merge moves every study of one patient record to another (two Patient
// IDs of one child) and removes the emptied record. Studies take the
// target's reconciled person when it has one.
func Merge(ctx context.Context, q Querier, fromPatient, intoPatient int64, actor string) (int, error) {
	if fromPatient == intoPatient {
		return 0, fmt.Errorf("%w: merge a patient into itself", ErrInvalid)
	}
	var tenant, person int64
	err := q.QueryRow(ctx, `SELECT tenant_id, coalesce(person_id, 0) FROM dicom.patient WHERE id = $1`, intoPatient).Scan(&tenant, &person)
	if err != nil {
		return 0, fmt.Errorf("%w: patient %d", ErrNotFound, intoPatient)
	}
	rows, err := q.Query(ctx, `UPDATE dicom.study SET patient_ref = $2,
			person_id = CASE WHEN $3::bigint <> 0 THEN $3::bigint ELSE person_id END,
			recon_state = CASE WHEN $3::bigint <> 0 THEN 'resolved' ELSE recon_state END, updated = now()
		WHERE patient_ref = $1 RETURNING id`, fromPatient, intoPatient, person)
	if err != nil {
		return 0, fmt.Errorf("dicom: merge: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("dicom: merge: %w", err)
	}
	if person != 0 {
		if _, err := q.Exec(ctx, `UPDATE dicom.instance SET person_id = $2, updated = now() WHERE study_ref = ANY($1)`, ids, person); err != nil {
			return 0, fmt.Errorf("dicom: merge: %w", err)
		}
	}
	if _, err := q.Exec(ctx, `DELETE FROM dicom.patient WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM dicom.study WHERE patient_ref = $1)`, fromPatient); err != nil {
		return 0, fmt.Errorf("dicom: merge: %w", err)
	}
	for _, id := range ids {
		if err := logRecon(ctx, q, tenant, id, "merge", person, actor, map[string]any{"from_patient_ref": fromPatient, "into_patient_ref": intoPatient}); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}
