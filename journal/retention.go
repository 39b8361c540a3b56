package journal

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RetentionYears is how long a journal is kept after its last entry
// (DOMAIN.md, "Law on records": at least 10 years for dentists).
const RetentionYears = 10

// RetentionHold tells until when the images of a study must be kept
// because a journal refers to them: the study is linked to a journal
// (journal.image_link), described by an X-ray description entry, or
// belongs to a person (personID, 0 if the study is not reconciled) who has
// journal entries. It is held until RetentionYears after the last entry
// (or link) of the persons concerned; held is false when nothing refers to
// the study or that time has passed. Run it in a transaction of the
// study's tenant (postgres.InTenant).
func RetentionHold(ctx context.Context, tx pgx.Tx, personID int64, studyUID string, now time.Time) (until time.Time, held bool, err error) {
	var last *time.Time
	err = tx.QueryRow(ctx, `
		WITH persons AS (
			SELECT $1::bigint AS person_id WHERE $1::bigint <> 0
			UNION SELECT l.person_id FROM journal.image_link l WHERE l.study_uid = $2
			UNION SELECT e.person_id FROM journal.entry e
			      WHERE e.kind = 'xray_description' AND e.body -> 'xray' ->> 'study_uid' = $2
		)
		SELECT greatest(
			(SELECT max(greatest(e.recorded_at, e.care_time)) FROM journal.entry e WHERE e.person_id IN (SELECT person_id FROM persons)),
			(SELECT max(l.linked_at) FROM journal.image_link l WHERE l.person_id IN (SELECT person_id FROM persons)))`,
		personID, studyUID).Scan(&last)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("journal: retention: %w", err)
	}
	if last == nil {
		return time.Time{}, false, nil
	}
	until = last.AddDate(RetentionYears, 0, 0)
	return until, now.Before(until), nil
}
