package index

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Association is one line of the association log.
type Association struct {
	ID             int64
	Association    string
	CallingAE      string
	CalledAE       string
	Peer           string
	KnownAE        bool
	Opened, Closed time.Time
	Outcome        string
	Requests       int
	Stored, Failed int
	BytesIn        int64
	BytesOut       int64
	Implementation string
	// TenantID is the municipality the association worked for; 0 when
	// none (a rejected association).
	TenantID int64
}

// LogAssociation appends to the association log.
func LogAssociation(ctx context.Context, q Querier, a Association) error {
	var closed *time.Time
	if !a.Closed.IsZero() {
		closed = &a.Closed
	}
	_, err := q.Exec(ctx, `INSERT INTO dicom.association_log (association, calling_ae, called_ae, peer, known_ae, opened, closed,
		outcome, requests, stored, failed, bytes_in, bytes_out, implementation, tenant_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULLIF($15, 0))`,
		a.Association, a.CallingAE, a.CalledAE, a.Peer, a.KnownAE, a.Opened, closed, a.Outcome, a.Requests, a.Stored,
		a.Failed, a.BytesIn, a.BytesOut, a.Implementation, a.TenantID)
	if err != nil {
		return fmt.Errorf("dicom: association log: %w", err)
	}
	return nil
}

// AssociationsOf lists the newest entries of one municipality's
// association log (with, on a single-municipality installation, the
// rejected ones).
func AssociationsOf(ctx context.Context, q Querier, tenant int64, limit int) ([]Association, error) {
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	rows, err := q.Query(ctx, `SELECT id, association, calling_ae, called_ae, peer, known_ae, opened, closed, outcome,
		requests, stored, failed, bytes_in, bytes_out, implementation, coalesce(tenant_id, 0) FROM dicom.association_log
		WHERE `+inTenant+` ORDER BY opened DESC, id DESC LIMIT $2`, tenant, limit)
	if err != nil {
		return nil, fmt.Errorf("dicom: association log: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Association, error) {
		var a Association
		var closed *time.Time
		err := r.Scan(&a.ID, &a.Association, &a.CallingAE, &a.CalledAE, &a.Peer, &a.KnownAE, &a.Opened, &closed, &a.Outcome,
			&a.Requests, &a.Stored, &a.Failed, &a.BytesIn, &a.BytesOut, &a.Implementation, &a.TenantID)
		if closed != nil {
			a.Closed = *closed
		}
		return a, err
	})
}
