package auth

import (
	"context"
	"fmt"
	"time"
)

// PurgeExpired deletes sessions past their idle or absolute expiry. The
// housekeeping job runs it.
func PurgeExpired(ctx context.Context, q Querier, now time.Time) (sessions int64, err error) {
	tag, err := q.Exec(ctx, `DELETE FROM auth.session
		WHERE expires < $1 OR last_seen + make_interval(secs => idle_seconds) < $1`, now)
	if err != nil {
		return 0, fmt.Errorf("auth: purge sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
