package bench

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Beginner is what FillIndex writes through (a pool or a connection).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// FillIndex generates an index of n instances in tenant with SQL: n/10
// studies of one series with 10 instances each, one patient per five
// studies. It runs as the cluster's administrator with
// session_replication_role = replica, so no trigger fires: the generated
// rows are consistent by construction, and an archive of that size has
// long finished its thumbnail work (an empty thumbnail queue). The object
// keys point to no object; the rows exist to be searched and to weigh on
// the indexes of new ingests.
func FillIndex(ctx context.Context, db Beginner, tenant int64, n int) (studies, patients int, err error) {
	studies = max(n/10, 1)
	patients = max(studies/5, 1)
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("fill: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit a no-op
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		return 0, 0, fmt.Errorf("fill: %w", err)
	}
	for _, q := range []string{
		`INSERT INTO dicom.patient (tenant_id, patient_id, name, name_ci, name_fuzzy, birth_date, sex)
		 SELECT $1, 'P' || g, 'Family' || (g % 5000) || '^Given' || g, lower('Family' || (g % 5000) || '^Given' || g),
		        'family' || (g % 5000) || ' given' || g, date '2005-01-01' + (g % 6000), CASE WHEN g % 2 = 0 THEN 'F' ELSE 'M' END
		 FROM generate_series(1, ` + strconv.Itoa(patients) + `) g`,
		`INSERT INTO dicom.study (tenant_id, patient_ref, study_uid, study_date, study_time, accession, description, description_ci, modalities, sop_classes, recon_state)
		 SELECT $1, (SELECT min(id) FROM dicom.patient WHERE tenant_id = $1) + (g % ` + strconv.Itoa(patients) + `), '2.25.9.' || g, date '2015-01-01' + (g % 3650), time '08:00' + (g % 600) * interval '1 minute',
		        'A' || g, 'Bitewings', 'bitewings', ARRAY[CASE WHEN g % 3 = 0 THEN 'PX' ELSE 'IO' END], ARRAY['1.2.840.10008.5.1.4.1.1.1.3'], 'matched'
		 FROM generate_series(1, ` + strconv.Itoa(studies) + `) g`,
		`INSERT INTO dicom.series (tenant_id, study_ref, series_uid, modality, series_number)
		 SELECT $1, s.id, s.study_uid || '.1', s.modalities[1], 1 FROM dicom.study s WHERE s.tenant_id = $1 AND s.study_uid LIKE '2.25.9.%'`,
		`INSERT INTO dicom.instance (tenant_id, series_ref, study_ref, sop_instance_uid, sop_class_uid, instance_number, transfer_syntax, object_key, size, sha256, tooth_codes)
		 SELECT $1, se.id, se.study_ref, se.series_uid || '.' || i, '1.2.840.10008.5.1.4.1.1.1.3', i, '1.2.840.10008.1.2.1',
		        'instances/bench/' || se.id || '/' || i || '.dcm', 40000, '\x00', ARRAY[(10 + (i % 8) + 1)::text]
		 FROM dicom.series se, generate_series(1, 10) i WHERE se.tenant_id = $1 AND se.series_uid LIKE '2.25.9.%'`,
	} {
		if _, err := tx.Exec(ctx, q, tenant); err != nil {
			return 0, 0, fmt.Errorf("fill: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("fill: %w", err)
	}
	// Statistics as a long-running archive would have them.
	for _, t := range []string{"dicom.patient", "dicom.study", "dicom.series", "dicom.instance"} {
		if err := exec(ctx, db, "ANALYZE "+t); err != nil {
			return 0, 0, err
		}
	}
	return studies, patients, nil
}

func exec(ctx context.Context, db Beginner, q string) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit a no-op
	if _, err := tx.Exec(ctx, q); err != nil {
		return fmt.Errorf("fill: %s: %w", q, err)
	}
	return tx.Commit(ctx)
}
